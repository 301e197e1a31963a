"""What the module shows the administrator: probes, log lines, counters."""

import os
import re
import subprocess
from pathlib import Path

from conftest import (
    ALICE,
    BOB,
    CAROL,
    MODULE,
    STAFF,
    bind1,
    load_module,
    module_loaded,
    rule,
    unload_module,
)

from portctl.hooks import ipmodify_functions
from portctl.netlink import Client

NETNS = os.stat("/proc/self/ns/net").st_ino


def tracefs() -> Path:
    tracing = Path("/sys/kernel/tracing")
    if not (tracing / "enabled_functions").exists():
        subprocess.run(["mount", "-t", "tracefs", "nodev", str(tracing)], check=True)
    return tracing


def test_hooks_are_on_the_bind_functions_and_nowhere_else(module):
    listing = (tracefs() / "enabled_functions").read_text()
    assert Path("/sys/module/sctp").exists()  # vm/guest loads it
    ours = [line for line in listing.splitlines() if "[portowners]" in line]
    hooked = {line.split()[0] for line in ours}
    assert hooked == {"__inet_bind", "__inet6_bind", "sctp_do_bind"}, listing
    # IPMODIFY: the hooks can change where the call goes (deny, redirect).
    assert ipmodify_functions(listing) >= hooked
    # No kprobe of the module's any more: kprobes/enabled cannot disarm it.
    debugfs = Path("/sys/kernel/debug")
    if not (debugfs / "kprobes").exists():
        subprocess.run(["mount", "-t", "debugfs", "none", str(debugfs)], check=True)
    assert "portowners" not in (debugfs / "kprobes" / "list").read_text()


def test_denial_logged_and_counted(po):
    po.replace(
        [
            rule(f"tcp/8080 uid={ALICE}"),
            rule(f"tcp/80 uid={ALICE}"),
            rule(f"tcp/8081 uid={ALICE} gid={STAFF}"),
            rule(f"tcp/8082 gid={STAFF}"),
        ]
    )
    before = po.status()
    subprocess.run(["dmesg", "--clear"], check=True)
    assert bind1(BOB, "tcp4", 8080) == "EACCES"
    assert bind1(ALICE, "tcp4", 80) == "OK"
    assert bind1(ALICE, "tcp4", 8080) == "OK"
    assert bind1(BOB, "tcp4", 8081) == "EACCES"
    assert bind1(BOB, "tcp4", 8082) == "EACCES"
    after = po.status()
    assert after.denied == before.denied + 3
    assert after.granted == before.granted + 2
    log = dmesg()
    assert re.search(
        rf"portowners: denied tcp/8080 to uid {BOB} \(python3\[\d+\]\) in net:\[{NETNS}\]: "
        rf"owned by uid {ALICE}$",
        log,
        re.M,
    ), log
    assert re.search(
        rf"denied tcp/8081 to uid {BOB} .*: owned by uid {ALICE} gid {STAFF}$", log, re.M
    )
    assert re.search(rf"denied tcp/8082 to uid {BOB} .*: owned by gid {STAFF}$", log, re.M)


def dmesg() -> str:
    return subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout


def test_denial_log_escapes_the_task_name(po):
    po.replace([rule(f"tcp/8080 uid={ALICE}")])
    subprocess.run(["dmesg", "--clear"], check=True)
    # A task names itself (PR_SET_NAME, 15 bytes) to forge a log line.
    assert bind1(BOB, "tcp4", 8080, comm="x\nportowners: X") == "EACCES"
    log = dmesg()
    assert not re.search(r"^(\[[ \d.]+\] )?portowners: X", log, re.M), log
    assert re.search(rf"denied tcp/8080 to uid {BOB} \(x\\nportowners: X\[\d+\]\) ", log), log


def test_one_user_cannot_spend_the_log_of_others(module):
    # A fresh module: rate-limit states from earlier tests start over.
    unload_module()
    load_module()
    with Client() as client:
        client.replace([rule(f"tcp/8080 uid={ALICE}")])
        subprocess.run(["dmesg", "--clear"], check=True)
        # CAROL and BOB fall in different uid buckets of the rate limit.
        flood = bind1(CAROL, "tcp4", 8080, comm="flood", repeat=40)
        assert bind1(BOB, "tcp4", 8080, comm="victim") == "EACCES"
        client.flush()
    assert flood == {"EACCES": 40}
    log = dmesg()
    assert re.search(rf"denied tcp/8080 to uid {BOB} \(victim\[\d+\]\) ", log), log
    # ...and the flood itself is still rate-limited (a burst of 10 in 5 s).
    assert 1 <= log.count("(flood[") <= 10, log


def test_status_reports_version_and_settings(po):
    status = po.status()
    assert status.version == Path("/sys/module/portowners/version").read_text().strip()
    assert status.root_exempt is True
    assert status.rule_count == 0


def sysctl_ftrace(value: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        ["sysctl", "-w", f"kernel.ftrace_enabled={value}"], capture_output=True, text=True
    )


def test_ftrace_cannot_be_switched_off_under_the_hooks(module):
    refused = sysctl_ftrace("0")
    assert refused.returncode != 0
    assert "busy" in refused.stderr.lower()
    assert Path("/proc/sys/kernel/ftrace_enabled").read_text().strip() == "1"


def test_module_refuses_to_load_when_ftrace_is_off(module):
    unload_module()
    assert sysctl_ftrace("0").returncode == 0
    try:
        subprocess.run(["dmesg", "--clear"], check=True)
        insmod = subprocess.run(["insmod", str(MODULE)], capture_output=True, text=True)
        assert insmod.returncode != 0
        assert not module_loaded()
        log = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout
        assert "kernel.ftrace_enabled is 0, so the bind hooks could not run: not loading" in log
    finally:
        assert sysctl_ftrace("1").returncode == 0
    load_module()
    assert module_loaded()
