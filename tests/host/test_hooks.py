"""portctl status tells whether the bind hooks are armed, from tracefs."""

from pathlib import Path

from portctl.hooks import hooks_armed, ipmodify_functions

# As 6.1 lists a function with one ftrace_ops (its own trampoline), and
# sctp_do_bind as a module's function is named.
LISTING = """\
__inet_bind (1)    I   \ttramp: 0xffffffffc0a01000 (po_inet_bind_hook+0x0/0x170 [portowners]) ->po_inet_bind_hook+0x0/0x170 [portowners]
__inet6_bind (1)    I   \ttramp: 0xffffffffc0a01000 (po_inet_bind_hook+0x0/0x170 [portowners]) ->po_inet_bind_hook+0x0/0x170 [portowners]
"""  # noqa: E501
SCTP_LINE = "sctp_do_bind [sctp] (1)    I   \ttramp: 0xffffffffc0a03000 (po_sctp_bind_hook+0x0/0x1c0 [portowners])\n"  # noqa: E501
# Another tracer on the same function: two callbacks, no trampoline of ours.
SHARED = "__inet_bind (2) R I   \t->ftrace_ops_list_func+0x0/0x1b0\n"
# 6.12 and later print more flag letters.
NEWER = "__inet_bind (1)    I   M \ttramp: 0xffffffffc0a01000 (po_inet_bind_hook+0x0/0x170 [portowners])\n"  # noqa: E501


def tracefs(tmp_path: Path, listing: str) -> Path:
    (tmp_path / "enabled_functions").write_text(listing)
    return tmp_path


def modules(tmp_path: Path, *loaded: str) -> Path:
    root = tmp_path / "module"
    for name in loaded:
        (root / name).mkdir(parents=True)
    root.mkdir(exist_ok=True)
    return root


def test_armed(tmp_path: Path) -> None:
    assert hooks_armed(tracefs(tmp_path, LISTING), modules(tmp_path)) is True


def test_sctp_hook_needed_only_while_sctp_is_loaded(tmp_path: Path) -> None:
    mods = modules(tmp_path, "sctp")
    assert hooks_armed(tracefs(tmp_path, LISTING), mods) is False
    assert hooks_armed(tracefs(tmp_path, LISTING + SCTP_LINE), mods) is True


def test_flags_read_from_other_layouts() -> None:
    assert ipmodify_functions(SHARED) == {"__inet_bind"}
    assert ipmodify_functions(NEWER) == {"__inet_bind"}
    assert ipmodify_functions(SCTP_LINE) == {"sctp_do_bind"}


def test_a_callback_that_cannot_change_the_function_does_not_count(tmp_path: Path) -> None:
    # A plain tracer (function tracing, a kprobe) on __inet_bind: no I flag.
    traced = LISTING.replace("__inet_bind (1)    I   ", "__inet_bind (1)        ")
    assert hooks_armed(tracefs(tmp_path, traced), modules(tmp_path)) is False


def test_one_hook_missing(tmp_path: Path) -> None:
    missing = "\n".join(line for line in LISTING.splitlines() if "__inet6_bind" not in line)
    assert hooks_armed(tracefs(tmp_path, missing), modules(tmp_path)) is False


def test_a_name_that_only_starts_the_same_does_not_count(tmp_path: Path) -> None:
    other = LISTING.replace("__inet6_bind (1)", "__inet6_bind_hash (1)")
    assert hooks_armed(tracefs(tmp_path, other), modules(tmp_path)) is False


def test_unknown_without_tracefs(tmp_path: Path) -> None:
    assert hooks_armed(tmp_path / "absent") is None
