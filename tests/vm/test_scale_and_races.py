"""Large tables, table swaps under a bind storm, and rmmod under a bind storm.

vm/run boots QEMU with single-threaded TCG: patching kprobe sites while
another vCPU runs them breaks multi-threaded TCG itself (see vm/run).
"""

import json
import subprocess
import time

from conftest import (
    ALICE,
    BINDER,
    BOB,
    STAFF,
    bind1,
    binds,
    load_module,
    module_loaded,
    rule,
    unload_module,
)

from portctl.model import Rule
from portctl.netlink import Client


def storm(uid, reqs):
    """Start binds as uid in the background; .communicate() gives the counts."""
    argv = ["setpriv", f"--reuid={uid}", f"--regid={uid}", "--clear-groups", "--"]
    argv += ["/usr/bin/python3", "-c", BINDER, json.dumps(reqs)]
    return subprocess.Popen(argv, stdout=subprocess.PIPE, text=True)


def counts(proc):
    out, _ = proc.communicate(timeout=600)
    assert proc.returncode == 0
    return json.loads(out)


def big_table():
    """65,536 single-port rules over both protocols, owners alternating."""
    rules = []
    for proto in ("tcp", "udp"):
        for port in range(1, 32769):
            owner = {"uid": ALICE} if port % 2 else {"gid": STAFF}
            rules.append(Rule(proto, port, port, **owner))
    return rules


def test_65536_rule_table_loads_in_one_swap_and_decides(po):
    rules = big_table()
    gen = po.status().generation
    po.replace(rules)
    status = po.status()
    assert (status.rule_count, status.generation) == (65536, gen + 1)
    assert po.rules() == sorted(rules)
    reqs = [{"sock": s, "port": p} for s in ("tcp4", "udp6") for p in (1, 2, 80, 32767, 32768)]
    assert binds(ALICE, reqs) == ["OK", "EACCES", "EACCES", "OK", "EACCES"] * 2
    assert binds(BOB, reqs, groups=[STAFF]) == ["EACCES", "OK", "OK", "EACCES", "OK"] * 2
    assert bind1(BOB, "tcp4", 32769) == "OK"  # past the table: the kernel's


def test_replace_under_bind_storm_never_shows_a_table_neither_allows(po):
    # In both tables ALICE owns tcp/80 and tcp/8080; BOB owns tcp/81 in one,
    # tcp/82 in the other. Every bind below has one outcome in both tables,
    # and another with no table at all.
    table_a = [
        rule(f"tcp/80 uid={ALICE}"),
        rule(f"tcp/8080 uid={ALICE}"),
        rule(f"tcp/81 uid={BOB}"),
    ]
    table_b = [
        rule(f"tcp/80 uid={ALICE}"),
        rule(f"tcp/8080 uid={ALICE}"),
        rule(f"tcp/82 uid={BOB}"),
    ]
    po.replace(table_a)
    n = 300
    alice = storm(ALICE, [{"sock": "tcp4", "port": 80, "repeat": n}])
    bob = storm(BOB, [{"sock": "tcp6", "port": 8080, "repeat": n}])
    swaps = 0
    while alice.poll() is None or bob.poll() is None:
        po.replace(table_b if swaps % 2 else table_a)
        swaps += 1
    assert counts(alice) == [{"OK": n}]
    assert counts(bob) == [{"EACCES": n}]
    assert swaps > 10, "the storm ended before the tables were swapped"


def test_rmmod_during_bind_storm_then_kernel_as_before(module):
    with Client() as po:
        po.replace([rule(f"tcp/80 uid={ALICE}"), rule(f"tcp/8080 uid={ALICE}")])
    n = 400
    procs = [
        storm(ALICE, [{"sock": "tcp4", "port": 80, "repeat": n}]),
        storm(BOB, [{"sock": "tcp6", "port": 8080, "repeat": n}]),
    ]
    time.sleep(2)
    unload_module()
    assert not module_loaded()
    alice, bob = (counts(p)[0] for p in procs)
    # Before rmmod: ALICE granted, BOB refused; after: the kernel's own rule.
    assert set(alice) <= {"OK", "EACCES"} and sum(alice.values()) == n
    assert set(bob) <= {"OK", "EACCES"} and sum(bob.values()) == n
    assert bind1(ALICE, "tcp4", 80) == "EACCES"
    assert bind1(BOB, "tcp4", 8080) == "OK"
    load_module()
    with Client() as fresh:
        assert fresh.rules() == []  # a reload starts empty


def test_load_unload_cycles_leave_no_trace(module):
    for _ in range(5):
        unload_module()
        load_module()
    with Client() as po:
        po.replace([rule(f"tcp/8080 uid={ALICE}")])
    unload_module()
    assert bind1(BOB, "tcp4", 8080) == "OK"
    load_module()
