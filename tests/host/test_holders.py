"""`portctl list --stats` and `--holders`, `status`'s lost events, and what an
older module says: sock_diag and /proc given by the test, the kernel faked."""

from __future__ import annotations

import errno
import json
import os
import socket
import struct
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pytest
from fakekernel import FakeKernel, run_portctl
from pyroute2.netlink.exceptions import NetlinkError
from test_addresses import Recorder, client, reply

from portctl import cli, holders, netlink
from portctl.holders import Process, Socket
from portctl.model import Rule


@pytest.fixture
def table(tmp_path: Path) -> Path:
    return tmp_path / "portowners"


# list --stats ---------------------------------------------------------------------


def test_list_stats(kernel: FakeKernel, table: Path) -> None:
    web, dns = Rule("tcp", 80, 80, uid=0), Rule("udp", 53, 53, gid=0, addr="::1")
    kernel.rules = [web, dns]
    kernel.counters = {web: (12, 3)}
    r = run_portctl(table, "list", "--stats")
    assert r.exit_code == 0, r.output
    assert r.stdout.splitlines() == [
        "PROTO  PORTS     OWNER  GRANTED  DENIED",
        "tcp    80        root   12       3",
        "udp    [::1]:53  :root  0        0",
    ]
    data = json.loads(run_portctl(table, "list", "--stats", "--json").stdout)
    assert [(x["granted"], x["denied"]) for x in data["rules"]] == [(12, 3), (0, 0)]
    assert data["rules"][0] == {**cli.rule_json(web), "granted": 12, "denied": 3}
    assert "granted" not in json.loads(run_portctl(table, "list", "--json").stdout)["rules"][0]


def test_list_stats_from_an_older_module(kernel: FakeKernel, table: Path) -> None:
    kernel.stats = False
    r = run_portctl(table, "list", "--stats")
    assert r.exit_code == 1
    assert "older than this portctl: it keeps no counters per rule" in r.stderr


def test_the_client_asks_for_stats_and_reads_them() -> None:
    rule = Rule("tcp", 80, 80, uid=0)
    nest = netlink.rule_attrs(rule)
    nest["attrs"] += [["PORTOWNERS_RULE_A_GRANTED", 2**40], ["PORTOWNERS_RULE_A_DENIED", 7]]
    rec = Recorder(
        [
            reply(
                netlink.CMD_GET_RULES,
                [["PORTOWNERS_A_GENERATION", 4], ["PORTOWNERS_A_RULE", nest]],
            )
        ]
    )
    assert client(rec).rule_stats() == [netlink.RuleStats(rule, 2**40, 7)]
    (sent,) = rec.sent
    assert sent["cmd"] == netlink.CMD_GET_RULES
    assert sent.get_attr("PORTOWNERS_A_FLAGS") == netlink.F_STATS


@pytest.mark.parametrize("text", ["reserved bit set", "Unknown attribute type"])
def test_a_version_2_module_refusing_the_stats_flag(text: str) -> None:
    def refuse(msg: Any, flags: int = 0) -> list[Any]:
        raise netlink._rejected(NetlinkError(errno.EINVAL, text))

    c = netlink.Client.__new__(netlink.Client)
    c._send = refuse  # type: ignore[method-assign]
    with pytest.raises(netlink.PortownersError, match="older than this portctl"):
        c.rule_stats()


def test_status_reads_and_shows_events_dropped(kernel: FakeKernel, table: Path) -> None:
    kernel.events_dropped = 17
    assert "events lost:  17" in run_portctl(table, "status").stdout
    assert json.loads(run_portctl(table, "status", "--json").stdout)["events_dropped"] == 17
    kernel.events_dropped = None  # a version 2 module
    assert "events lost" not in run_portctl(table, "status").stdout
    assert json.loads(run_portctl(table, "status", "--json").stdout)["events_dropped"] is None
    answer = reply(
        netlink.CMD_GET_STATUS,
        [["PORTOWNERS_A_VERSION", "0.2.0"], ["PORTOWNERS_A_EVENTS_DROPPED", 5]],
    )
    assert client(Recorder([answer])).status().events_dropped == 5


# sock_diag, parsed ---------------------------------------------------------------


def diag_msg(family: int, state: int, addr: str, port: int, uid: int, inode: int) -> bytes:
    packed = socket.inet_pton(family, addr).ljust(16, b"\0")
    body = holders._MSG.pack(
        family,
        state,
        0,
        0,
        socket.htons(port),
        0,
        packed,
        bytes(16),
        0,
        bytes(8),
        0,
        0,
        0,
        uid,
        inode,
    )
    if family == socket.AF_INET6:
        body += struct.pack("=HHB3x", 5, holders.INET_DIAG_SKV6ONLY, 1)
    return holders._NLMSGHDR.pack(16 + len(body), holders.SOCK_DIAG_BY_FAMILY, 2, 1, 0) + body


def test_parse_diag() -> None:
    data = diag_msg(socket.AF_INET, 10, "127.0.0.1", 80, 33, 99) + diag_msg(
        socket.AF_INET6, 7, "::", 53, 0, 100
    )
    found, done = holders.parse_diag(data, "tcp")
    assert not done
    assert found == [
        Socket("tcp", "127.0.0.1", 80, "LISTEN", 33, 99),
        Socket("tcp", "::", 53, "UNCONN", 0, 100, v6only=True),
    ]
    assert holders.parse_diag(holders._NLMSGHDR.pack(20, 3, 2, 1, 0) + bytes(4), "tcp") == (
        [],
        True,
    )
    error = holders._NLMSGHDR.pack(36, 2, 0, 1, 0) + struct.pack("=i", -errno.ENOENT) + bytes(16)
    with pytest.raises(holders.DiagError):
        holders.parse_diag(error, "tcp")
    # A kernel without udp_diag ends the dump with NLMSG_DONE and -ENOENT.
    failed_dump = holders._NLMSGHDR.pack(20, 3, 2, 1, 0) + struct.pack("=i", -errno.ENOENT)
    with pytest.raises(holders.DiagError, match=r"udp: No such file or directory.*udp_diag"):
        holders.parse_diag(data + failed_dump, "udp")


def test_dump_sockets_on_this_machine() -> None:
    """The real sock_diag of the host's kernel: a socket bound here is found."""
    with socket.socket(socket.AF_INET6, socket.SOCK_DGRAM) as s:
        s.bind(("::1", 0))
        port = s.getsockname()[1]
        ours = [x for x in holders.dump_sockets(["udp"]) if x.port == port]
        assert [(x.addr, x.state) for x in ours] == [("::1", "UNCONN")]
        procs = holders.socket_processes([ours[0].inode])
        assert (
            Process(os.getpid(), Path("/proc/self/comm").read_text().strip())
            in procs[ours[0].inode]
        )


def test_socket_processes_from_a_proc_tree(tmp_path: Path) -> None:
    for pid, comm, links in [
        ("12", "nginx", ["socket:[5]", "/dev/null"]),
        ("13", "x\ny", ["socket:[5]", "socket:[6]"]),
    ]:
        fd = tmp_path / pid / "fd"
        fd.mkdir(parents=True)
        (tmp_path / pid / "comm").write_text(comm + "\n")
        for n, target in enumerate(links):
            (fd / str(n)).symlink_to(target)
    (tmp_path / "14").mkdir()  # no fd directory readable: skipped
    (tmp_path / "self").mkdir()
    found = holders.socket_processes([5, 6, 7], proc=str(tmp_path))
    assert sorted(found[5], key=lambda p: p.pid) == [Process(12, "nginx"), Process(13, "x\ny")]
    assert found[6] == [Process(13, "x\ny")] and 7 not in found


# Which sockets hold a rule ----------------------------------------------------


@pytest.mark.parametrize(
    ("rule_addr", "sock_addr", "v6only", "held"),
    [
        ("", "192.0.2.1", False, True),
        ("127.0.0.1", "127.0.0.1", False, True),
        ("127.0.0.1", "127.0.0.2", False, False),
        ("127.0.0.1", "0.0.0.0", False, True),
        ("127.0.0.1", "::", False, True),  # dual-stack covers IPv4
        ("127.0.0.1", "::", True, False),  # IPV6_V6ONLY does not
        ("::1", "::", True, True),
        ("::1", "0.0.0.0", False, False),
        ("::1", "::1", False, True),
    ],
)
def test_covers(rule_addr: str, sock_addr: str, v6only: bool, held: bool) -> None:
    rule = Rule("tcp", 80, 81, uid=0, addr=rule_addr)
    assert holders.covers(rule, Socket("tcp", sock_addr, 80, "LISTEN", 0, 1, v6only)) is held
    assert not holders.covers(rule, Socket("udp", sock_addr, 80, "UNCONN", 0, 1, v6only))
    assert not holders.covers(rule, Socket("tcp", sock_addr, 82, "LISTEN", 0, 1, v6only))


def test_grants_uid() -> None:
    assert holders.grants_uid(Rule("tcp", 1, 1, any_user=True), 4242)
    assert holders.grants_uid(Rule("tcp", 1, 1, uid=0), 0)
    assert not holders.grants_uid(Rule("tcp", 1, 1, uid=1), 0)
    assert holders.grants_uid(Rule("tcp", 1, 1, gid=0), 0)  # root is in group root
    assert not holders.grants_uid(Rule("tcp", 1, 1, gid=0), 4242)  # no such user


SOCKETS = [
    Socket("tcp", "0.0.0.0", 80, "LISTEN", 0, 10),
    Socket("tcp", "0.0.0.0", 80, "ESTABLISHED", 0, 11, connected=True),  # accepted
    Socket("tcp", "127.0.0.1", 8080, "ESTABLISHED", 4242, 12, connected=True),  # a client's
    Socket("udp", "::1", 53, "UNCONN", 4242, 13),
    Socket("tcp", "::", 9, "LISTEN", 0, 14),
]
PROCS = {10: [Process(812, "nginx"), Process(813, "nginx")], 13: [Process(9, "d\x1bns")]}


@pytest.fixture
def sockets(monkeypatch: pytest.MonkeyPatch) -> list[Sequence[str]]:
    asked: list[Sequence[str]] = []

    def source(protos: Sequence[str]) -> list[Socket]:
        asked.append(protos)
        return SOCKETS

    def processes(inodes: Iterable[int]) -> dict[int, list[Process]]:
        wanted = set(inodes)
        return {i: p for i, p in PROCS.items() if i in wanted}

    monkeypatch.setattr(cli, "socket_source", source)
    monkeypatch.setattr(cli, "process_source", processes)
    return asked


def test_list_holders(kernel: FakeKernel, table: Path, sockets: list[Sequence[str]]) -> None:
    kernel.rules = [
        Rule("tcp", 80, 80, uid=0),
        Rule("tcp", 8080, 8080, uid=0),
        Rule("udp", 53, 53, any_user=True, addr="::1"),
        Rule("udp", 53, 53, uid=0, addr="127.0.0.1"),
        Rule("sctp", 9899, 9899, uid=0),
    ]
    r = run_portctl(table, "list", "--holders")
    assert r.exit_code == 0, r.output
    assert sockets == [["tcp", "udp"]]
    assert r.stdout.splitlines() == [
        "PROTO  PORTS         OWNER",
        "sctp   9899          root",
        "    (sctp sockets are not shown)",
        "tcp    80            root",
        "    0.0.0.0:80 LISTEN uid 0 (root) pid 812 nginx, 813 nginx",
        "tcp    8080          root",
        "    127.0.0.1:8080 ESTABLISHED uid 4242 pid ?  not owner",
        "udp    127.0.0.1:53  root",
        "udp    [::1]:53      *",
        "    [::1]:53 UNCONN uid 4242 pid 9 d\\x1bns",
    ]
    data = json.loads(run_portctl(table, "list", "--holders", "--json").stdout)["rules"]
    assert data[1]["holders"] == [
        {
            "address": "0.0.0.0",
            "port": 80,
            "state": "LISTEN",
            "uid": 0,
            "user": "root",
            "inode": 10,
            "processes": [{"pid": 812, "comm": "nginx"}, {"pid": 813, "comm": "nginx"}],
            "owner": True,
        }
    ]
    assert data[0]["holders"] is None  # sctp
    assert data[2]["holders"][0]["owner"] is False
    assert data[3]["holders"] == []


def test_list_holders_and_stats_together(
    kernel: FakeKernel, table: Path, sockets: list[Sequence[str]]
) -> None:
    kernel.rules = [Rule("tcp", 80, 80, uid=1)]
    r = run_portctl(table, "list", "--holders", "--stats", "--numeric")
    assert r.stdout.splitlines() == [
        "PROTO  PORTS  OWNER  GRANTED  DENIED",
        "tcp    80     1      0        0",
        "    0.0.0.0:80 LISTEN uid 0 (root) pid 812 nginx, 813 nginx  not owner",
    ]


def test_sock_diag_failing_is_explained(kernel: FakeKernel, table: Path, monkeypatch: Any) -> None:
    def broken(protos: Sequence[str]) -> list[Socket]:
        raise holders.DiagError(errno.ENOENT, "No such file or directory")

    monkeypatch.setattr(cli, "socket_source", broken)
    kernel.rules = [Rule("tcp", 80, 80, uid=1)]
    r = run_portctl(table, "list", "--holders")
    assert r.exit_code == 1
    assert "cannot list the sockets (sock_diag): No such file or directory" in r.stderr
