"""Whether the module's bind hooks are live, as far as debugfs tells.

The hooks are kprobes: `echo 0 > /sys/kernel/debug/kprobes/enabled` disarms
every kprobe in the system, and owned ports are then not enforced (see
docs/design.md). The module cannot see that; debugfs can.
"""

from __future__ import annotations

from pathlib import Path

KPROBES = Path("/sys/kernel/debug/kprobes")
MODULES = Path("/sys/module")
HOOKED = ("__inet_bind", "__inet6_bind")
# In sctp.ko: probed while that module is loaded, and only then.
SCTP_HOOK = "sctp_do_bind"


def hooks_armed(kprobes: Path | None = None, modules: Path | None = None) -> bool | None:
    """True if armed, False if not, None if debugfs cannot tell (not mounted, not root)."""
    kprobes = KPROBES if kprobes is None else kprobes
    modules = MODULES if modules is None else modules
    try:
        enabled = (kprobes / "enabled").read_text().strip()
        listing = (kprobes / "list").read_text().splitlines()
    except OSError:
        return None
    if enabled != "1":
        return False
    hooked = [*HOOKED, SCTP_HOOK] if (modules / "sctp").exists() else list(HOOKED)
    for function in hooked:
        probes = [line for line in listing if f" {function}+0x0 " in f"{line} "]
        if not any("[DISABLED]" not in p and "[GONE]" not in p for p in probes):
            return False
    return True
