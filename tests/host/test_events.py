"""Bind events (portctl.events) and `portctl watch`, without a kernel: the
datagrams are made with pyroute2's encoders from portctl's own message
maps (test_uapi checks those against the header), the listener is a script."""

from __future__ import annotations

import datetime
import errno
import json
import os
from pathlib import Path
from types import TracebackType
from typing import Any

import pytest
from fakekernel import run_portctl
from pyroute2.netlink import ctrlmsg

from portctl import cli, events, netlink, watch
from portctl.events import Event
from portctl.model import Rule

FAMILY = 0x1E
RULE = Rule("tcp", 80, 80, uid=0)


def event_msg(
    seq: int = 1,
    verdict: int = 2,
    addr: bytes = bytes(4),
    comm: bytes = b"nginx\0",
    proto: int = 6,
    rule: Rule | None = RULE,
) -> bytes:
    msg = netlink.pomsg()
    msg["cmd"] = netlink.CMD_EVENT
    msg["version"] = netlink.GENL_VERSION
    attrs: list[list[Any]] = [
        ["PORTOWNERS_A_SEQ", seq],
        ["PORTOWNERS_A_NETNS", 4026531840],
        ["PORTOWNERS_A_UID", 1001],
        ["PORTOWNERS_A_GID", 1002],
        ["PORTOWNERS_A_PID", 812],
        ["PORTOWNERS_A_COMM", comm],
        ["PORTOWNERS_A_PROTO", proto],
        ["PORTOWNERS_A_ADDR", addr],
        ["PORTOWNERS_A_PORT", 80],
        ["PORTOWNERS_A_VERDICT", verdict],
    ]
    if rule is not None:
        attrs.append(["PORTOWNERS_A_RULE", netlink.rule_attrs(rule)])
    msg["attrs"] = attrs
    msg["header"]["type"] = FAMILY
    msg.encode()
    return bytes(msg.data)


def delfamily(name: str = "portowners") -> bytes:
    msg = ctrlmsg()
    msg["cmd"] = events.CTRL_CMD_DELFAMILY
    msg["version"] = 2
    msg["attrs"] = [["CTRL_ATTR_FAMILY_ID", FAMILY], ["CTRL_ATTR_FAMILY_NAME", name]]
    msg["header"]["type"] = events.GENL_ID_CTRL
    msg.encode()
    return bytes(msg.data)


def test_an_event_is_parsed_whole() -> None:
    (ev,) = events.decode(event_msg(seq=7), FAMILY)
    assert ev == Event(
        seq=7,
        netns=4026531840,
        uid=1001,
        gid=1002,
        pid=812,
        comm="nginx",
        proto="tcp",
        addr="0.0.0.0",
        port=80,
        verdict="deny",
        rule=RULE,
    )
    assert isinstance(ev, Event) and ev.group == "denials"


@pytest.mark.parametrize(
    ("data", "text"),
    [
        (bytes(4), "0.0.0.0"),
        (bytes(16), "::"),
        (bytes([127, 0, 0, 1]), "127.0.0.1"),
        (bytes(15) + b"\1", "::1"),
        (bytes(10) + b"\xff\xff" + bytes([192, 0, 2, 1]), "192.0.2.1"),  # v4-mapped
    ],
)
def test_addresses(data: bytes, text: str) -> None:
    (ev,) = events.decode(event_msg(addr=data), FAMILY)
    assert isinstance(ev, Event) and ev.addr == text


def test_a_grant_and_its_rule_on_an_address() -> None:
    rule = Rule("udp", 53, 53, gid=5, addr="::1")
    (ev,) = events.decode(event_msg(verdict=1, proto=17, rule=rule), FAMILY)
    assert isinstance(ev, Event)
    assert (ev.verdict, ev.group, ev.proto, ev.rule) == ("grant", "grants", "udp", rule)


def test_a_datagram_of_several_messages_and_the_unload() -> None:
    data = event_msg(seq=1) + event_msg(seq=2) + delfamily("other") + delfamily()
    got = events.decode(data, FAMILY)
    assert [type(x).__name__ for x in got] == ["Event", "Event", "FamilyGone"]
    # Another family's messages are not ours.
    assert events.decode(event_msg(), FAMILY + 1) == []


@pytest.mark.parametrize(
    ("comm", "shown"),
    [
        (b"nginx", "nginx"),
        (b"evil\nline", "evil\\x0aline"),
        (b"\x1b[31mred", "\\x1b[31mred"),
        (b"it's", "it\\'s"),
        (b"back\\slash", "back\\\\slash"),
        (b"caf\xc3\xa9", "café"),
        (b"bad\xff", "bad\\xff"),
    ],
)
def test_comm_is_escaped_onto_one_line(comm: bytes, shown: str) -> None:
    (ev,) = events.decode(event_msg(comm=comm + b"\0"), FAMILY)
    assert isinstance(ev, Event)
    assert events.escape_comm(ev.comm) == shown
    assert "\n" not in shown and "\x1b" not in shown


def test_seq_gaps_are_lost_events_per_group() -> None:
    seqs = events.SeqTracker()
    assert seqs.lost("denials", 41) == 0  # joined late: nothing missed
    assert seqs.lost("denials", 42) == 0
    assert seqs.lost("grants", 7) == 0  # its own count
    assert seqs.lost("denials", 46) == 3
    assert seqs.lost("grants", 8) == 0
    assert seqs.lost("denials", 1) == 0  # restarted


# The watch loop ----------------------------------------------------------------


class Script:
    """A listener that returns batches, raising the exceptions among them."""

    def __init__(self, *steps: list[Event] | BaseException) -> None:
        self.steps = list(steps)
        self.closed = False

    def __enter__(self) -> Script:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.closed = True

    def recv(self, timeout: float | None = None) -> list[Event]:
        step = self.steps.pop(0) if self.steps else KeyboardInterrupt()
        if isinstance(step, BaseException):
            raise step
        return step


def ev(seq: int = 1, lost: int = 0, **kw: Any) -> Event:
    fields: dict[str, Any] = dict(
        seq=seq,
        netns=4026531840,
        uid=0,
        gid=0,
        pid=812,
        comm="nginx",
        proto="tcp",
        addr="0.0.0.0",
        port=80,
        verdict="deny",
        rule=Rule("tcp", 80, 80, uid=0),
        lost=lost,
    )
    fields.update(kw)
    return Event(**fields)


TS = datetime.datetime(2026, 12, 2, 1, 23, 45, tzinfo=datetime.UTC)


@pytest.fixture
def table(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setattr(watch, "now", lambda: TS)
    path = tmp_path / "portowners"
    path.write_text("# web\nudp/53 root\ntcp/80,443 root\n")
    return path


def watching(monkeypatch: pytest.MonkeyPatch, script: Script) -> list[bool]:
    asked: list[bool] = []

    def factory(grants: bool) -> Script:
        asked.append(grants)
        return script

    monkeypatch.setattr(cli, "listener_factory", factory)
    return asked


def test_watch_prints_a_line_an_event_with_the_rules_file_line(
    table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    script = Script([ev(1), ev(5, lost=3, comm="a\nb", rule=Rule("tcp", 81, 81, uid=0))])
    asked = watching(monkeypatch, script)
    r = run_portctl(table, "watch")
    assert r.exit_code == 0, r.output
    assert asked == [False] and script.closed
    assert r.stdout.splitlines() == [
        "2026-12-02T01:23:45 denied tcp/80 on 0.0.0.0 to root (uid 0) group root (gid 0) "
        f"pid 812 comm 'nginx' by rule tcp/80 root ({table}:3)",
        "2026-12-02T01:23:45 lost 3 events (denials)",
        "2026-12-02T01:23:45 denied tcp/80 on 0.0.0.0 to root (uid 0) group root (gid 0) "
        f"pid 812 comm 'a\\x0ab' by rule tcp/81 root (not in {table})",
    ]


def test_watch_json(table: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    grant = ev(9, lost=2, verdict="grant", uid=4242, gid=4243, addr="::1")
    watching(monkeypatch, Script([grant], events.Overrun(), [ev(2)]))
    r = run_portctl(table, "watch", "--json", "--grants")
    assert r.exit_code == 0, r.output
    lines = [json.loads(line) for line in r.stdout.splitlines()]
    assert lines[0] == {"ts": "2026-12-02T01:23:45.000+00:00", "lost": 2, "kind": "grants"}
    assert lines[1] == {
        "ts": "2026-12-02T01:23:45.000+00:00",
        "verdict": "grant",
        "proto": "tcp",
        "port": 80,
        "address": "::1",
        "uid": 4242,
        "user": None,
        "gid": 4243,
        "group": None,
        "pid": 812,
        "comm": "nginx",
        "netns": 4026531840,
        "seq": 9,
        "rule": cli.rule_json(Rule("tcp", 80, 80, uid=0)),
        "file_line": f"{table}:3",
    }
    assert lines[2] == {"ts": "2026-12-02T01:23:45.000+00:00", "overrun": True}
    assert lines[3]["seq"] == 2


def test_a_range_piece_is_found_in_the_line_that_gives_the_range(tmp_path: Path) -> None:
    path = tmp_path / "t"
    path.write_text("tcp/8000-8099 root\ntcp/127.0.0.1:8050 root\n")
    lines = watch.RuleLines(str(path), print)
    assert lines.where(ev(rule=Rule("tcp", 8000, 8049, uid=0))) == f"{path}:1"
    assert lines.where(ev(rule=Rule("tcp", 8050, 8050, uid=0, addr="127.0.0.1"))) == f"{path}:2"
    assert lines.where(ev(rule=Rule("tcp", 8000, 8049, uid=1))) is None  # another owner
    path.write_text("# moved\ntcp/8000-8099 root\n")  # read again when it changes
    assert lines.where(ev(rule=Rule("tcp", 8000, 8049, uid=0))) == f"{path}:2"


def test_a_bad_file_is_said_once_and_events_still_shown(
    table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    table.write_text("tcp/80 nosuchuser-xyz\n")
    watching(monkeypatch, Script([ev(1)], [ev(2)]))
    r = run_portctl(table, "watch")
    assert r.exit_code == 0
    assert r.stderr.count("has errors") == 1
    assert len(r.stdout.splitlines()) == 2


def test_the_module_unloaded_under_watch_exits_1(
    table: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    watching(monkeypatch, Script([ev(1)], events.ModuleUnloaded()))
    r = run_portctl(table, "watch")
    assert r.exit_code == 1
    assert r.stderr == "portctl: portowners module unloaded\n"
    assert len(r.stdout.splitlines()) == 1


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (netlink.ModuleNotLoaded(), "module is not loaded"),
        (netlink.NotPermitted("watching binds"), "watching binds needs CAP_NET_ADMIN"),
        (netlink.older_module(netlink.EVENTS_UNKNOWN), "older than this portctl: it sends no"),
    ],
)
def test_watch_cannot_start(
    table: Path, monkeypatch: pytest.MonkeyPatch, error: Exception, message: str
) -> None:
    def factory(grants: bool) -> Script:
        raise error

    monkeypatch.setattr(cli, "listener_factory", factory)
    r = run_portctl(table, "watch")
    assert r.exit_code == 1
    assert message in r.stderr and "Traceback" not in r.output


def test_sigterm_stops_watch_as_ctrl_c_does(table: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    import os
    import signal

    class Terminated(Script):
        def recv(self, timeout: float | None = None) -> list[Event]:
            os.kill(os.getpid(), signal.SIGTERM)
            return []

    before = signal.getsignal(signal.SIGTERM)
    watching(monkeypatch, Terminated())
    r = run_portctl(table, "watch")
    assert r.exit_code == 0 and r.output == ""
    assert signal.getsignal(signal.SIGTERM) == before


def test_listener_without_the_module_says_so(monkeypatch: pytest.MonkeyPatch) -> None:
    """The real Listener, on this machine's kernel: nlctrl is there, the
    portowners family is not (a host has no module loaded)."""
    try:
        netlink.family_groups(netlink.GENL_NAME)
    except netlink.ModuleNotLoaded:
        pass
    else:
        pytest.fail("this test needs a host without the portowners module")
    with pytest.raises(netlink.ModuleNotLoaded):
        events.Listener()


def test_an_older_module_without_groups(monkeypatch: pytest.MonkeyPatch) -> None:
    def groups(name: str) -> tuple[int, dict[str, int]]:
        return (16, {"notify": 16}) if name == "nlctrl" else (FAMILY, {})

    monkeypatch.setattr(netlink, "family_groups", groups)
    with pytest.raises(
        netlink.PortownersError, match="older than this portctl: it sends no events"
    ):
        events.Listener()


def test_joining_without_cap_net_admin(monkeypatch: pytest.MonkeyPatch) -> None:
    """An unprivileged user may join nlctrl's notify, not the module's
    groups: the kernel's EPERM, imitated on a group id nobody checks."""

    def groups(name: str) -> tuple[int, dict[str, int]]:
        return (16, {"notify": 16}) if name == "nlctrl" else (FAMILY, {"denials": 999})

    real = events.socket.socket.setsockopt

    def setsockopt(self: Any, level: int, opt: int, value: Any) -> None:
        if level == events.SOL_NETLINK and value == 999:
            raise PermissionError(errno.EPERM, "Operation not permitted")
        real(self, level, opt, value)

    monkeypatch.setattr(netlink, "family_groups", groups)
    monkeypatch.setattr(events.socket.socket, "setsockopt", setsockopt)
    with pytest.raises(netlink.NotPermitted, match="watching binds needs CAP_NET_ADMIN"):
        events.Listener()


class Datagrams:
    """A socket stand-in for Listener.recv: select sees a pipe made readable
    while data is queued; recvfrom hands out the queue."""

    def __init__(self, *items: tuple[bytes, int] | OSError) -> None:
        self.items = list(items)
        self.r, self.w = os.pipe()
        if items:
            os.write(self.w, b"x")

    def fileno(self) -> int:
        return self.r

    def recvfrom(self, size: int, flags: int = 0) -> tuple[bytes, tuple[int, int]]:
        if not self.items:
            raise BlockingIOError(errno.EAGAIN, "again")
        item = self.items.pop(0)
        if isinstance(item, OSError):
            raise item
        data, sender = item
        return data, (sender, 1)

    def close(self) -> None:
        os.close(self.r)
        os.close(self.w)


def listener(sock: Datagrams) -> events.Listener:
    lst = events.Listener.__new__(events.Listener)
    lst.seqs = events.SeqTracker()
    lst._pending = None
    lst.family_id = FAMILY
    lst.sock = sock  # type: ignore[assignment]
    return lst


def test_recv_counts_gaps_skips_strangers_and_reports_overrun_then_unload() -> None:
    sock = Datagrams(
        (event_msg(seq=4), 0),
        (event_msg(seq=99), 4242),  # not from the kernel: ignored
        (event_msg(seq=8) + event_msg(seq=3, verdict=1), 0),
        OSError(errno.ENOBUFS, "No buffer space available"),
    )
    lst = listener(sock)
    got = lst.recv(0)
    assert [(e.seq, e.group, e.lost) for e in got] == [
        (4, "denials", 0),
        (8, "denials", 3),
        (3, "grants", 0),
    ]
    with pytest.raises(events.Overrun):
        lst.recv(0)
    assert lst.recv(0) == []  # nothing readable: the timeout
    sock.items = [(event_msg(seq=20), 0), (delfamily(), 0)]
    os.write(sock.w, b"x")
    (after,) = lst.recv(0)
    assert after.lost == 11  # the overrun's events, counted from the gap
    with pytest.raises(events.ModuleUnloaded):
        lst.recv(0)
    sock.close()
