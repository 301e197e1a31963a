"""portctl status tells whether the bind hooks are armed, from debugfs."""

from pathlib import Path

from portctl.hooks import hooks_armed

LISTING = """\
ffffffff81a0c8e0  k  __inet_bind+0x0    [FTRACE]
ffffffff81b0c8e0  k  __inet6_bind+0x0    [FTRACE]
"""
SCTP_LINE = "ffffffffc0a25090  k  sctp_do_bind+0x0  sctp  [FTRACE]\n"


def kprobes(tmp_path: Path, enabled: str, listing: str) -> Path:
    (tmp_path / "enabled").write_text(enabled)
    (tmp_path / "list").write_text(listing)
    return tmp_path


def modules(tmp_path: Path, *loaded: str) -> Path:
    root = tmp_path / "module"
    for name in loaded:
        (root / name).mkdir(parents=True)
    root.mkdir(exist_ok=True)
    return root


def test_armed(tmp_path: Path) -> None:
    assert hooks_armed(kprobes(tmp_path, "1\n", LISTING), modules(tmp_path)) is True


def test_sctp_probe_needed_only_while_sctp_is_loaded(tmp_path: Path) -> None:
    mods = modules(tmp_path, "sctp")
    assert hooks_armed(kprobes(tmp_path, "1\n", LISTING), mods) is False
    assert hooks_armed(kprobes(tmp_path, "1\n", LISTING + SCTP_LINE), mods) is True
    gone = SCTP_LINE.replace("[FTRACE]", "[GONE][FTRACE]")
    assert hooks_armed(kprobes(tmp_path, "1\n", LISTING + gone), mods) is False


# CONFIG_X86_KERNEL_IBT (6.12, 7.2): entry probes sit after the ENDBR64.
LISTING_IBT = LISTING.replace("+0x0 ", "+0x4 ")


def test_armed_with_ibt(tmp_path: Path) -> None:
    assert "+0x4 " in LISTING_IBT and "+0x0" not in LISTING_IBT
    mods = modules(tmp_path)
    assert hooks_armed(kprobes(tmp_path, "1\n", LISTING_IBT), mods) is True
    disabled = LISTING_IBT.replace(
        "__inet6_bind+0x4    [FTRACE]", "__inet6_bind+0x4    [DISABLED][FTRACE]"
    )
    assert hooks_armed(kprobes(tmp_path, "1\n", disabled), mods) is False
    sctp_ibt = SCTP_LINE.replace("+0x0 ", "+0x4 ")
    with_sctp = modules(tmp_path / "s", "sctp")
    assert hooks_armed(kprobes(tmp_path, "1\n", LISTING_IBT + sctp_ibt), with_sctp) is True


def test_probes_elsewhere_in_the_function_do_not_count(tmp_path: Path) -> None:
    # Another tool's probe inside __inet_bind is not the module's entry hook.
    elsewhere = LISTING.replace("__inet_bind+0x0 ", "__inet_bind+0x1c ")
    assert hooks_armed(kprobes(tmp_path, "1\n", elsewhere), modules(tmp_path)) is False


def test_kprobes_disabled_system_wide(tmp_path: Path) -> None:
    assert hooks_armed(kprobes(tmp_path, "0\n", LISTING), modules(tmp_path)) is False


def test_one_probe_disabled_or_missing(tmp_path: Path) -> None:
    mods = modules(tmp_path)
    disabled = LISTING.replace(
        "__inet_bind+0x0    [FTRACE]", "__inet_bind+0x0    [DISABLED][FTRACE]"
    )
    assert hooks_armed(kprobes(tmp_path, "1\n", disabled), mods) is False
    missing = "\n".join(line for line in LISTING.splitlines() if "__inet6_bind" not in line)
    assert hooks_armed(kprobes(tmp_path, "1\n", missing), mods) is False


def test_unknown_without_debugfs(tmp_path: Path) -> None:
    assert hooks_armed(tmp_path / "absent") is None
