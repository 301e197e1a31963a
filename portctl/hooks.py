"""Whether the module's bind hooks are live, as far as debugfs tells.

The hooks are kprobes: `echo 0 > /sys/kernel/debug/kprobes/enabled` disarms
every kprobe in the system, and owned ports are then not enforced (see
docs/design.md). The module cannot see that; debugfs can.
"""

from __future__ import annotations

import re
from pathlib import Path

KPROBES = Path("/sys/kernel/debug/kprobes")
MODULES = Path("/sys/module")
HOOKED = ("__inet_bind", "__inet6_bind")
# In sctp.ko: probed while that module is loaded, and only then.
SCTP_HOOK = "sctp_do_bind"
# A probe at a function's entry is listed at +0x0, or at +0x4 on kernels built
# with CONFIG_X86_KERNEL_IBT (Debian's 6.12 and later): there the kprobe sits
# after the function's 4-byte ENDBR64, where it still runs before the body.
ENTRY_OFFSETS = ("0x0", "0x4")


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
        at_entry = re.compile(rf"\s{re.escape(function)}\+({'|'.join(ENTRY_OFFSETS)})\s")
        probes = [line for line in listing if at_entry.search(f"{line} ")]
        if not any("[DISABLED]" not in p and "[GONE]" not in p for p in probes):
            return False
    return True
