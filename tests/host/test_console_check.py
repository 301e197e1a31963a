"""vm/console-check: kernel reports fail a VM run, user-space lines do not.

The report lines are in the formats the kernel prints them (WARN(), lockdep,
KASAN, hung task, RCU stall...), as they reach a console with Debian's
CONFIG_PRINTK_TIME. vm/console-selftest proves the same in a real kernel.
"""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest

CHECK = Path(__file__).resolve().parents[2] / "vm" / "console-check"

REPORTS = [
    "[   25.505782] WARNING: CPU: 0 PID: 234 at net/ipv4/af_inet.c:512 __inet_bind+0x11/0x200",
    "[    3.000001] ------------[ cut here ]------------",
    "[   40.100000] WARNING: possible circular locking dependency detected",
    "[   40.100000] WARNING: suspicious RCU usage",
    "[   12.000000] BUG: KASAN: slab-use-after-free in po_lookup+0x2a/0x80 [portowners]",
    "[   12.000000] BUG: sleeping function called from invalid context at mm/slab.h:723",
    "[   12.000000] BUG: kernel NULL pointer dereference, address: 0000000000000008",
    "[   12.000000] kernel BUG at lib/list_debug.c:59!",
    "[   12.000000] Oops: 0000 [#1] PREEMPT SMP NOPTI",
    "[   12.000000] general protection fault, probably for non-canonical address 0xdead: 0000",
    "[   12.000000] Kernel panic - not syncing: Fatal exception",
    "[   60.000000] watchdog: BUG: soft lockup - CPU#1 stuck for 26s! [python3:300]",
    "[  240.000000] INFO: task python3:301 blocked for more than 120 seconds.",
    "[   80.000000] rcu: INFO: rcu_preempt detected stalls on CPUs/tasks:",
    "[   80.000000] rcu: INFO: rcu_sched self-detected stall on CPU",
    "[   90.000000] kmemleak: 2 new suspected memory leaks (see /sys/kernel/debug/kmemleak)",
    "[   90.000000] UBSAN: shift-out-of-bounds in net/core/sock.c:1000:5",
    # The debug kernel's (KERNEL=6.1-debug) lockdep, KASAN, debugobjects and
    # kmemleak reports, as 6.1 prints them.
    "[   40.100000] WARNING: inconsistent lock state",
    "[   40.100000] WARNING: possible recursive locking detected",
    "[   40.100000] WARNING: bad unlock balance detected!",
    "[   40.100000] WARNING: lock held when returning to user space!",
    "[   40.100000] INFO: trying to register non-static key.",
    "[   40.100000] [ BUG: Invalid wait context ]",
    "[   12.000000] BUG: KASAN: use-after-free in po_table_put+0x3c/0x90 [portowners]",
    "[   12.000000] BUG: KASAN: slab-out-of-bounds in po_rule_match+0x51/0x120 [portowners]",
    "[   12.000000] ODEBUG: free active (active state 1) object type: rcu_head hint: 0x0",
    "[    0.500000] kmemleak: Kernel memory leak detector disabled",
    # Kernel output that lands in the middle of a user-space console line.
    "tests/vm/test_bind.py::test_x [   25.505782] WARNING: CPU: 1 PID: 9 at x.c:1 f+0x1/0x2",
    # A console line ending in \r, as QEMU's serial console gives it.
    "[   25.505782] BUG: KASAN: double-free in kfree+0x1/0x2\r",
]

NOT_REPORTS = [
    'virtme-ng-init: WARNING: failed to run: "systemd-tmpfiles"',
    '[    1.500000] virtme-ng-init: WARNING: failed to run: "systemd-tmpfiles"',
    "WARNING: Location 'file:///opt/x' is ignored: it is neither a file nor a directory.",
    "modprobe: WARNING: Module sctp not found in directory /lib/modules/6.1.0-57-amd64",
    "tests/vm/test_console.py::test_warning_is_reported PASSED",
    "tests/vm/test_oops.py::test_no_bug PASSED",
    "[    0.000000] Linux version 6.1.0-57-amd64 (debian-kernel@lists.debian.org)",
    "[    5.000000] portowners: denied tcp/8080 to uid 1001 (python3[300]): owned by uid 1000",
    "PORTOWNERS-VM: done status=0 pytest=0 dmesg_bad=0",
]


def check(text: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(CHECK)], input=text, capture_output=True, text=True, check=False)


@pytest.mark.parametrize("line", REPORTS)
def test_a_kernel_report_fails_and_is_shown(line: str) -> None:
    r = check("\n".join([*NOT_REPORTS, line, *NOT_REPORTS]) + "\n")
    assert r.returncode == 1
    assert r.stdout.strip() == line.strip()


def test_user_space_warnings_do_not_fail_a_run() -> None:
    r = check("\n".join(NOT_REPORTS) + "\n")
    assert r.returncode == 0, r.stdout
    assert r.stdout == ""


def test_reads_a_file_too(tmp_path: Path) -> None:
    log = tmp_path / "console.log"
    log.write_text(REPORTS[0] + "\n")
    r = subprocess.run([str(CHECK), str(log)], capture_output=True, text=True, check=False)
    assert r.returncode == 1 and "WARNING: CPU: 0" in r.stdout
