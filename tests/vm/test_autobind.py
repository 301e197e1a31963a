"""Owned ports are never handed out automatically (docs/design.md, "Autobind").

The ephemeral range is narrowed to six ports, 40000-40005 (an even count:
TCP's search skips the last port of an odd-sized range); alice owns
tcp/40001 and udp/40002, and the administrator reserved 40003 by hand. bob
then takes every port the kernel will pick for him, by each way it picks
one (bind to port 0, listen() or connect() on an unbound socket, connect()
with IP_BIND_ADDRESS_NO_PORT, UDP sendto()), TCP, UDP, SCTP and MPTCP, v4
and v6: he must get 40000, 40004 and 40005 and nothing else. Without the module's
reservation he gets 40001 and 40002 too.
"""

import json
import socket
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ALICE, BOB, REPO, VENV_PYTHON, load_module, rule, run_as, unload_module

from portctl.netlink import Client

RANGE = Path("/proc/sys/net/ipv4/ip_local_port_range")
RESERVED = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
DRAIN = (REPO / "tests" / "vm" / "autobind.py").read_text()
PEER = 39999  # a listener (TCP) or a bound socket (UDP) on loopback, outside the range
FREE = [40000, 40004, 40005]


def drain(uid: int | None, sock: str, how: str) -> list[int]:
    """Every port uid is handed by the kernel, by way how, until none is left."""
    spec = {"sock": sock, "how": how, "peer": PEER}
    out = run_as(uid, ["/usr/bin/python3", "-c", DRAIN, json.dumps(spec)])
    return sorted(json.loads(out.stdout)["ports"])


def reserved() -> str:
    return RESERVED.read_text().strip()


@pytest.fixture
def narrow(module) -> Iterator[Client]:
    """A client on an empty table, the range narrowed, the peers up."""
    saved = RANGE.read_text(), RESERVED.read_text()
    RANGE.write_text("40000 40005")
    RESERVED.write_text("40003")  # the administrator's own
    peers = []
    for family, addr in ((socket.AF_INET, "127.0.0.1"), (socket.AF_INET6, "::1")):
        for typ in (socket.SOCK_STREAM, socket.SOCK_DGRAM):
            s = socket.socket(family, typ)
            s.bind((addr, PEER))
            if typ == socket.SOCK_STREAM:
                s.listen(64)
            peers.append(s)
    with Client() as client:
        client.flush()
        yield client
    for s in peers:
        s.close()
    load_module()  # a test may have unloaded it: a new client, then
    with Client() as client:
        client.flush()
    RANGE.write_text(saved[0])
    RESERVED.write_text(saved[1])


WAYS = [
    ("tcp4", "bind0"),
    ("tcp6", "bind0"),
    ("tcp4", "listen"),
    ("tcp6", "listen"),
    ("tcp4", "connect"),
    ("tcp6", "connect"),
    ("tcp4", "connect_noport"),
    ("tcp6", "connect_noport"),
    ("udp4", "bind0"),
    ("udp6", "bind0"),
    ("udp4", "sendto"),
    ("udp6", "sendto"),
    ("sctp4", "bind0"),
    ("sctp6", "bind0"),
    ("mptcp4", "bind0"),
    ("mptcp6", "listen"),
]


@pytest.mark.parametrize("sock,how", WAYS)
def test_autobind_never_hands_out_an_owned_port(narrow, sock, how):
    narrow.replace([rule(f"tcp/40001 uid={ALICE}"), rule(f"udp/40002 uid={ALICE}")])
    assert reserved() == "40001-40003"
    assert drain(BOB, sock, how) == FREE
    assert drain(None, sock, how) == FREE  # nor to root: nobody is handed it


def test_released_or_unloaded_ports_are_handed_out_again(narrow):
    narrow.replace([rule(f"tcp/40001-40002 uid={ALICE}")])
    assert drain(BOB, "tcp4", "bind0") == FREE
    narrow.replace([rule(f"tcp/40001 uid={ALICE}")])  # 40002 released
    assert reserved() == "40001,40003"
    assert drain(BOB, "udp4", "sendto") == [40000, 40002, 40004, 40005]
    narrow.flush()
    assert reserved() == "40003"  # the administrator's, exactly
    assert drain(BOB, "tcp6", "bind0") == [40000, 40001, 40002, 40004, 40005]
    narrow.replace([rule(f"tcp/40000-40002 uid={ALICE}")])
    assert reserved() == "40000-40003"
    unload_module()
    assert reserved() == "40003"
    assert drain(BOB, "tcp4", "listen") == [40000, 40001, 40002, 40004, 40005]


def test_a_port_the_administrator_reserved_stays_his(narrow):
    RESERVED.write_text("40001,40003")
    narrow.replace([rule(f"tcp/40001-40002 uid={ALICE}")])
    assert reserved() == "40001-40003"
    narrow.flush()
    assert reserved() == "40001,40003"  # 40001 was his before the rule
    narrow.replace([rule(f"tcp/40002 uid={ALICE}")])
    # He rewrites the list as sysctl users do, read-modify-write, adding 40005:
    RESERVED.write_text(reserved() + ",40005")
    assert reserved() == "40001-40003,40005"
    narrow.flush()
    assert reserved() == "40001,40003,40005"
    narrow.replace([rule(f"tcp/40002 uid={ALICE}")])
    unload_module()
    assert reserved() == "40001,40003,40005"


def test_a_port_any_user_may_bind_is_not_reserved(narrow):
    narrow.replace([rule("tcp/40001 any"), rule(f"udp/40002 uid={ALICE}")])
    assert reserved() == "40002-40003"
    assert drain(BOB, "tcp4", "bind0") == [40000, 40001, 40004, 40005]


def test_each_namespace_reserves_for_its_own_table(narrow):
    narrow.replace([rule(f"tcp/40001 uid={ALICE}")])
    subprocess.run(["ip", "netns", "add", "po-autobind"], check=True)
    try:
        there = ["ip", "netns", "exec", "po-autobind"]
        assert sysctl_in(there) == ""  # a new namespace: nothing of the host's
        replace = (
            "from portctl.netlink import Client; from portctl.model import Rule; "
            f"Client().replace([Rule('udp', 8053, 8053, uid={BOB})])"
        )
        run_as(None, [*there, "env", f"PYTHONPATH={REPO}", VENV_PYTHON, "-c", replace])
        assert sysctl_in(there) == "8053"
        assert reserved() == "40001,40003"
    finally:
        subprocess.run(["ip", "netns", "del", "po-autobind"], check=True)


def sysctl_in(prefix: list[str]) -> str:
    out = run_as(None, [*prefix, "cat", str(RESERVED)])
    return out.stdout.strip()
