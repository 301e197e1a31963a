"""portctl status tells whether the bind hooks are armed, from debugfs."""

from pathlib import Path

from portctl.hooks import hooks_armed

LISTING = """\
ffffffff8120c8e0  k  security_socket_bind+0x0    [FTRACE]
ffffffff81a0c8e0  k  __inet_bind+0x0    [FTRACE]
ffffffff81b0c8e0  k  __inet6_bind+0x0    [FTRACE]
"""


def kprobes(tmp_path: Path, enabled: str, listing: str) -> Path:
    (tmp_path / "enabled").write_text(enabled)
    (tmp_path / "list").write_text(listing)
    return tmp_path


def test_armed(tmp_path: Path) -> None:
    assert hooks_armed(kprobes(tmp_path, "1\n", LISTING)) is True


def test_kprobes_disabled_system_wide(tmp_path: Path) -> None:
    assert hooks_armed(kprobes(tmp_path, "0\n", LISTING)) is False


def test_one_probe_disabled_or_missing(tmp_path: Path) -> None:
    disabled = LISTING.replace(
        "__inet_bind+0x0    [FTRACE]", "__inet_bind+0x0    [DISABLED][FTRACE]"
    )
    assert hooks_armed(kprobes(tmp_path, "1\n", disabled)) is False
    missing = "\n".join(line for line in LISTING.splitlines() if "__inet6_bind" not in line)
    assert hooks_armed(kprobes(tmp_path, "1\n", missing)) is False


def test_unknown_without_debugfs(tmp_path: Path) -> None:
    assert hooks_armed(tmp_path / "absent") is None
