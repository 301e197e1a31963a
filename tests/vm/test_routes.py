"""Routes to an inet port other than bind(2) on a TCP or UDP socket (issue 9).

Each is decided by the same handler as bind(2): kernel_bind() from the
user's context (SMC, RXRPC), a race on IP_FREEBIND, SCTP's bindx, the SCTP
low-port grant. docs/design.md, "Threat model", lists every route and the
test that proves it. Binds run as other users with setpriv (conftest.run_as),
through tests/vm/routes.py.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import ALICE, BINDER, BOB, REPO, rule, run_as

from portctl.hooks import ipmodify_functions

ROUTES = (REPO / "tests" / "vm" / "routes.py").read_text()
KERNEL = os.uname().release


def routes(uid: int | None, reqs: list[dict[str, Any]]) -> list[Any]:
    out = run_as(uid, ["/usr/bin/python3", "-c", ROUTES, json.dumps(reqs)])
    return list(json.loads(out.stdout))


def route(uid: int | None, **req: Any) -> Any:
    return routes(uid, [req])[0]


def need_module(name: str) -> None:
    """Load a protocol module; skip, saying why, only if this kernel has none."""
    if Path(f"/sys/module/{name}").exists():
        return
    if subprocess.run(["modinfo", name], capture_output=True).returncode != 0:
        pytest.skip(f"kernel {KERNEL} has no {name} module: route absent")
    subprocess.run(["modprobe", name], check=True)


@pytest.mark.parametrize("v6", [False, True], ids=["smc", "smc6"])
def test_smc_bind_is_decided(po, v6):
    """smc_bind() binds its internal TCP socket with kernel_bind()."""
    need_module("smc")
    assert route(BOB, op="smc", v6=v6, port=8181) == "OK"  # the route takes a port
    po.replace([rule(f"tcp/8080 uid={ALICE}"), rule(f"tcp/80 uid={ALICE}")])
    assert route(BOB, op="smc", v6=v6, port=8080) == "EACCES"
    assert route(ALICE, op="smc", v6=v6, port=8080) == "OK"
    assert route(ALICE, op="smc", v6=v6, port=80) == "OK"  # granted below 1024 too
    assert route(BOB, op="smc", v6=v6, port=80) == "EACCES"
    assert route(None, op="smc", v6=v6, port=8080) == "OK"


@pytest.mark.parametrize("v6", [False, True], ids=["udp4", "udp6"])
def test_rxrpc_transport_socket_is_decided(po, v6):
    """rxrpc_bind() opens a kernel UDP socket on the transport port (udp_sock_create)."""
    need_module("rxrpc")
    port = 7011 if v6 else 7001
    assert route(BOB, op="rxrpc", v6=v6, port=port + 1, service=1) == "OK"
    po.replace([rule(f"udp/{port} uid={ALICE}")])
    # Non-owners first: an rxrpc endpoint left on the port would be shared.
    assert route(BOB, op="rxrpc", v6=v6, port=port, service=1) == "EACCES"
    assert route(BOB, op="rxrpc", v6=v6, port=port, service=0) == "EACCES"
    assert route(ALICE, op="rxrpc", v6=v6, port=port + 2, service=1) == "OK"
    assert route(ALICE, op="rxrpc", v6=v6, port=port, service=1) == "OK"


def test_freebind_race_never_gives_a_non_owner_the_port(po):
    """The decision reads nothing a second thread can flip before the kernel's check.

    A forked racer flips IP_FREEBIND on the socket while the binder binds it to
    a non-local address: the kernel sees freebind on at some binds and off at
    others. A non-owner must get EACCES every time, never the port.
    """
    tries = 3000
    control = route(BOB, op="freebind_race", port=8282, addr="192.0.2.1", tries=tries)
    # The racer is effective: on an unowned port, some bind saw IP_FREEBIND on.
    assert control.get("OK") == 1, control
    po.replace([rule(f"tcp/8090 uid={ALICE}")])
    raced = route(BOB, op="freebind_race", port=8090, addr="192.0.2.1", tries=tries)
    assert raced == {"EACCES": tries}, raced
    # The owner's bind still goes through once the address is usable.
    assert route(ALICE, op="freebind_race", port=8090, addr="192.0.2.1", tries=tries)["OK"] == 1


@pytest.mark.parametrize("v6", [False, True], ids=["sctp4", "sctp6"])
def test_sctp_bindx_is_decided_for_every_address(po, v6):
    need_module("sctp")
    lo = "::1" if v6 else "127.0.0.1"
    assert route(BOB, op="bindx", v6=v6, addrs=[[lo, 9898]]) == "OK"
    po.replace([rule(f"sctp/9899 uid={ALICE}"), rule(f"sctp/99 uid={ALICE}")])
    assert route(BOB, op="bindx", v6=v6, addrs=[[lo, 9899]]) == "EACCES"
    assert route(BOB, op="bindx", v6=v6, addrs=[[lo, 9899], ["127.0.0.2", 9899]]) == "EACCES"
    assert route(ALICE, op="bindx", v6=v6, addrs=[[lo, 9899], ["127.0.0.2", 9899]]) == "OK"
    assert route(ALICE, op="bindx", v6=v6, addrs=[[lo, 99]]) == "OK"
    assert route(BOB, op="bindx", v6=v6, addrs=[[lo, 99]]) == "EACCES"
    # Port 0 on a bound socket means its own port: root binds the owned port,
    # drops to a non-owner, and may not add addresses on it.
    dropped = {"op": "bindx", "v6": v6, "prebind": [lo, 9899], "addrs": [["127.0.0.2", 0]]}
    assert route(None, **dropped) == "OK"
    assert route(None, **dropped, drop_to=BOB) == "EACCES"
    assert route(None, **dropped, drop_to=ALICE) == "OK"


@pytest.mark.parametrize("v6", [False, True], ids=["sctp4", "sctp6"])
def test_sctp_owner_granted_low_port_nothing_left_changed(po, v6):
    need_module("sctp")
    po.replace([rule(f"sctp/99 uid={ALICE}")])
    got = route(ALICE, op="sctp_caps", v6=v6, port=99, then=98)
    # Granted without CAP_NET_BIND_SERVICE; afterwards the task has no
    # capability, and an unowned low port is refused as before.
    assert got == {"before": "0" * 16, "bind": "OK", "after": "0" * 16, "then": "EACCES"}
    assert route(BOB, op="sctp_caps", v6=v6, port=99, then=98)["bind"] == "EACCES"
    assert po.status().granted > 0


def test_sctp_hooked_when_sctp_loads_after_the_module():
    """sctp.ko may come after portowners.ko: a module notifier hooks it.

    sctp cannot be unloaded once loaded (its per-namespace control socket pins
    it), so vm/guest loads portowners.ko first, then sctp, and records
    sctp_do_bind's line of tracefs's enabled_functions at that moment in
    SCTP_LATE (tests/vm's environment).
    """
    record = Path(os.environ.get("PORTOWNERS_SCTP_LATE", "/nonexistent"))
    assert record.exists(), "vm/guest did not load sctp after portowners.ko"
    listing = record.read_text()
    assert ipmodify_functions(listing) == {"sctp_do_bind"}, listing


def binds_as_container_root(uid: int, reqs: list[dict[str, Any]]) -> list[str]:
    """Binds by uid as root of a new user namespace, in the machine's network namespace."""
    argv = ["unshare", "--user", "--map-root-user", "/usr/bin/python3", "-c", BINDER]
    return list(json.loads(run_as(uid, [*argv, json.dumps(reqs)]).stdout))


def test_container_root_is_a_user_in_a_namespace_it_does_not_own(po):
    reqs = [{"sock": "tcp4", "port": 8080}, {"sock": "tcp6", "port": 80}]
    assert binds_as_container_root(BOB, reqs) == ["OK", "EACCES"]  # the kernel's own rule
    po.replace(
        [rule(f"tcp/8080 uid={ALICE}"), rule(f"tcp/80 uid={ALICE}"), rule(f"sctp/99 uid={ALICE}")]
    )
    # All capabilities in its own user namespace, none over this network namespace.
    assert binds_as_container_root(BOB, reqs) == ["EACCES", "EACCES"]
    assert binds_as_container_root(ALICE, reqs) == ["OK", "OK"]
    # Known limit (docs/design.md): the SCTP grant raises the capability in
    # the owner's own user namespace, which does not own this one.
    assert binds_as_container_root(ALICE, [{"sock": "sctp4", "port": 99}]) == ["EACCES"]


@pytest.mark.parametrize("mode", ["inline", "async", "sqpoll"])
def test_io_uring_bind_is_decided(po, mode):
    """IORING_OP_BIND (Linux 6.11) reaches __inet_bind() through inet_bind().

    Inline in the task, in an io-wq worker (IOSQE_ASYNC) or in the ring's
    SQPOLL thread: each runs with the submitter's credentials, and is decided
    as the submitter's bind(2). Debian 12's 6.1 has no IORING_OP_BIND.
    """
    major, minor = (int(x) for x in KERNEL.split(".")[:2])
    if (major, minor) < (6, 11):
        pytest.skip(f"kernel {KERNEL} has no IORING_OP_BIND (6.11+): route absent")
    disabled = Path("/proc/sys/kernel/io_uring_disabled")
    assert not disabled.exists() or disabled.read_text().strip() == "0"
    reqs = [
        {"op": "uring_bind", "v6": v6, "port": p, "mode": mode}
        for p in (8181, 8080, 80)
        for v6 in (False, True)
    ]
    assert routes(BOB, reqs[:2]) == ["OK", "OK"]  # the route takes a port
    po.replace([rule(f"tcp/8080 uid={ALICE}"), rule(f"tcp/80 uid={ALICE}")])
    assert routes(BOB, reqs[2:]) == ["EACCES"] * 4
    assert routes(ALICE, reqs[2:]) == ["OK"] * 4  # granted below 1024 too
    assert routes(None, reqs[2:4]) == ["OK", "OK"]
