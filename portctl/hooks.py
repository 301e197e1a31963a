"""Whether the module's bind hooks are live, as the kernel lists them.

The hooks are ftrace_ops with IPMODIFY at the entry of each hooked function
(docs/design.md). tracefs's enabled_functions lists every function with a
callback attached, and flags "I" where one may change where the function
goes on: at most one ftrace_ops per function may, so while the module is
loaded that one is its hook.
"""

from __future__ import annotations

import re
from pathlib import Path

# tracefs is mounted at /sys/kernel/tracing, and shows inside debugfs too.
TRACEFS = (Path("/sys/kernel/tracing"), Path("/sys/kernel/debug/tracing"))
MODULES = Path("/sys/module")
HOOKED = ("__inet_bind", "__inet6_bind")
# In sctp.ko: hooked while that module is loaded, and only then.
SCTP_HOOK = "sctp_do_bind"


def ipmodify_functions(listing: str) -> set[str]:
    """The functions enabled_functions lists with the I (IPMODIFY) flag.

    A line is "NAME [MODULE] (COUNT) FLAGS<tab>tramp: ...": the flags are
    single letters, each after a space, before the tab.
    """
    found = set()
    for line in listing.splitlines():
        m = re.match(r"(\S+)(?: \[\w+\])? \((\d+)\)([^\t]*)", line)
        if m and int(m.group(2)) > 0 and "I" in m.group(3).split():
            found.add(m.group(1))
    return found


def hooks_armed(tracefs: Path | None = None, modules: Path | None = None) -> bool | None:
    """True if armed, False if not, None if tracefs cannot tell (not mounted, not root)."""
    modules = MODULES if modules is None else modules
    listing = None
    for directory in (tracefs,) if tracefs is not None else TRACEFS:
        try:
            listing = (directory / "enabled_functions").read_text()
            break
        except OSError:
            continue
    if listing is None:
        return None
    hooked = [*HOOKED, SCTP_HOOK] if (modules / "sctp").exists() else list(HOOKED)
    return set(hooked) <= ipmodify_functions(listing)
