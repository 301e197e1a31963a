"""Bind events of the portowners module: each bind a rule refused, or granted.

The module sends one PORTOWNERS_CMD_EVENT on its generic netlink multicast
group "denials" for every bind a rule refused, and on "grants" for every
bind a rule granted (kmod/uapi/portowners.h). `portctl watch` prints them;
the kernel tests (tests/vm) read them with the same API:

    from portctl import events

    with events.Listener(grants=True) as listener:  # denials, and grants too
        while True:
            for event in listener.recv(timeout=1.0):   # [] when none came in time
                print(event.verdict, event.proto, event.port, event.uid, event.lost)

Listener(grants=False, denials=True) joins the groups, this network
namespace's only (a listener hears its own namespace's binds). It raises
netlink.ModuleNotLoaded, netlink.NotPermitted (joining needs CAP_NET_ADMIN
over the user namespace owning the network namespace), or a PortownersError
saying the module is older than portctl (it has no such groups).

Listener.recv(timeout) returns the events that arrived, in order, waiting
at most timeout seconds (None: until one does) for the first. It raises
  Overrun         the socket's receive buffer overran and the kernel dropped
                  events for it (ENOBUFS). Listening goes on: the next event
                  of each group tells how many were lost in its ``lost``.
  ModuleUnloaded  the portowners family went away (nlctrl's DELFAMILY): no
                  event can come any more.

Event fields: seq (u64, counts this namespace's events of one group from 1,
lost ones included), netns (inode number), uid, gid (the binder's effective
ids, in the user namespace owning the network namespace), pid (as the
initial pid namespace numbers it), comm (the task name, bytes the task set
decoded as UTF-8 with surrogateescape: print it with escape_comm()), proto
("tcp", "udp", "sctp"), addr (the address the bind asked for, canonical
text: "0.0.0.0" and "::" for wildcard binds), port, verdict ("grant" or
"deny"), rule (portctl.model.Rule, the rule that decided; None if the
kernel sent none), lost (events of this group lost just before this one,
from the gap in seq; 0 for the first event heard). Event.group is
"denials" or "grants".

decode(data, family_id) and SeqTracker are the parts without a socket, for
tests.
"""

from __future__ import annotations

import errno
import select
import socket
import struct
from collections.abc import Iterator
from dataclasses import dataclass, replace
from types import TracebackType
from typing import Any

from portctl import netlink
from portctl.model import PROTO_NAMES, Rule, address_from_bytes

# pyroute2's names, but not imported from it: events are read on a plain
# socket (see Listener), and these are fixed by the kernel's ABI.
NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_ADD_MEMBERSHIP = 1
GENL_ID_CTRL = 16  # the nlctrl family's id, and its message type
CTRL_CMD_DELFAMILY = 2
CTRL_NOTIFY = "notify"  # nlctrl's multicast group: families coming and going

_NLMSGHDR_SIZE = 16
_LEN_TYPE = struct.Struct("=IH")  # a netlink header's first fields, host order
# Events are small (about 150 bytes), but a datagram is one message: room
# for the largest the kernel makes (NLMSG_GOODSIZE) and more.
RECV_SIZE = 65536
# A burst of binds must not overrun the listener: about 4,000 events. Root
# may set more than net.core.rmem_max (SO_RCVBUFFORCE); others get the cap.
RCVBUF = 4 << 20
SO_RCVBUFFORCE = 33

GROUPS = {"grant": netlink.MCGRP_GRANTS, "deny": netlink.MCGRP_DENIALS}


class Overrun(netlink.PortownersError):
    def __init__(self) -> None:
        super().__init__(
            "events were lost: portctl's socket buffer overran "
            "(the next event of each kind says how many)"
        )


class ModuleUnloaded(netlink.PortownersError):
    def __init__(self) -> None:
        super().__init__("portowners module unloaded")


@dataclass(frozen=True)
class Event:
    seq: int
    netns: int
    uid: int
    gid: int
    pid: int
    comm: str
    proto: str
    addr: str
    port: int
    verdict: str
    rule: Rule | None
    lost: int = 0

    @property
    def group(self) -> str:
        return GROUPS.get(self.verdict, self.verdict)


@dataclass(frozen=True)
class FamilyGone:
    """nlctrl's notice that the portowners family was unregistered."""


def escape_comm(comm: str) -> str:
    """A task name safe to print on one line: printable characters as they
    are, a backslash and a quote escaped (\\\\, \\'), every other byte as \\xHH.
    A task may name itself anything, a newline or a terminal escape too."""
    out: list[str] = []
    for ch in comm:
        if ch in "\\'":
            out.append("\\" + ch)
        elif ch.isprintable() and not 0xDC80 <= ord(ch) <= 0xDCFF:
            out.append(ch)
        else:
            out.extend(f"\\x{b:02x}" for b in ch.encode("utf-8", "surrogateescape"))
    return "".join(out)


def _comm(data: bytes | None) -> str:
    return (data or b"").split(b"\0", 1)[0].decode("utf-8", "surrogateescape")


def parse_event(msg: Any) -> Event:
    """An Event from a decoded pomsg of command PORTOWNERS_CMD_EVENT."""
    addr = msg.get_attr("PORTOWNERS_A_ADDR")
    proto = msg.get_attr("PORTOWNERS_A_PROTO")
    rule = msg.get_attr("PORTOWNERS_A_RULE")
    verdict = msg.get_attr("PORTOWNERS_A_VERDICT")
    return Event(
        seq=msg.get_attr("PORTOWNERS_A_SEQ") or 0,
        netns=msg.get_attr("PORTOWNERS_A_NETNS") or 0,
        uid=msg.get_attr("PORTOWNERS_A_UID"),
        gid=msg.get_attr("PORTOWNERS_A_GID"),
        pid=msg.get_attr("PORTOWNERS_A_PID") or 0,
        comm=_comm(msg.get_attr("PORTOWNERS_A_COMM")),
        proto=PROTO_NAMES.get(proto, str(proto)),
        # No address would be a wildcard bind on every address.
        addr=address_from_bytes(addr) if addr else "::",
        port=msg.get_attr("PORTOWNERS_A_PORT"),
        verdict=netlink.VERDICTS.get(verdict, str(verdict)),
        rule=netlink.rule_from_nla(rule) if rule is not None else None,
    )


def _messages(data: bytes) -> Iterator[tuple[int, bytes]]:
    """(type, bytes) of each netlink message of a datagram."""
    pos = 0
    while pos + _NLMSGHDR_SIZE <= len(data):
        length, kind = _LEN_TYPE.unpack_from(data, pos)
        if length < _NLMSGHDR_SIZE or pos + length > len(data):
            return  # malformed: nothing more can be told apart
        yield kind, data[pos : pos + length]
        pos += (length + 3) & ~3


def decode(data: bytes, family_id: int) -> list[Event | FamilyGone]:
    """The events, and any notice that the family went away, of a datagram
    (seq gaps not counted: see SeqTracker)."""
    from pyroute2.netlink import ctrlmsg

    out: list[Event | FamilyGone] = []
    for kind, chunk in _messages(data):
        if kind == family_id:
            msg = netlink.pomsg(chunk)
            msg.decode()
            if msg["cmd"] == netlink.CMD_EVENT:
                out.append(parse_event(msg))
        elif kind == GENL_ID_CTRL:
            ctrl = ctrlmsg(chunk)
            ctrl.decode()
            if (
                ctrl["cmd"] == CTRL_CMD_DELFAMILY
                and ctrl.get_attr("CTRL_ATTR_FAMILY_NAME") == netlink.GENL_NAME
            ):
                out.append(FamilyGone())
    return out


class SeqTracker:
    """Events lost, from the gaps in each group's seq."""

    def __init__(self) -> None:
        self.last: dict[str, int] = {}

    def lost(self, group: str, seq: int) -> int:
        """Events of group lost before seq. The first event heard has no gap
        (a listener that joins late has missed nothing); a seq lower than
        the last one (the namespace's counter restarted) neither."""
        before = self.last.get(group)
        self.last[group] = seq
        if before is None or seq <= before:
            return 0
        return seq - before - 1


class Listener:
    """Joined to the portowners multicast groups of this network namespace.

    A plain netlink socket, read with select and parsed with pyroute2's
    message classes: pyroute2 0.9's sockets read through an asyncio loop of
    their own; with select and recv here, the timeout and ENOBUFS (events
    lost) stay in portctl's hands.
    """

    def __init__(self, grants: bool = False, denials: bool = True) -> None:
        self.seqs = SeqTracker()
        self._pending: netlink.PortownersError | None = None
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        try:
            self._setup(denials, grants)
        except BaseException:
            self.sock.close()
            raise

    def _setup(self, denials: bool, grants: bool) -> None:
        sock = self.sock
        try:
            sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, RCVBUF)
        except OSError:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, RCVBUF)
        sock.bind((0, 0))
        # nlctrl's notices first: an unload after the family is looked up is
        # then still heard.
        _, ctrl_groups = netlink.family_groups("nlctrl")
        notify = ctrl_groups.get(CTRL_NOTIFY, GENL_ID_CTRL)
        sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, notify)
        self.family_id, groups = netlink.family_groups(netlink.GENL_NAME)
        wanted = [
            g for g, on in ((netlink.MCGRP_DENIALS, denials), (netlink.MCGRP_GRANTS, grants)) if on
        ]
        for name in wanted:
            if name not in groups:
                raise netlink.older_module(netlink.EVENTS_UNKNOWN)
            try:
                sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, groups[name])
            except PermissionError:
                raise netlink.NotPermitted("watching binds") from None
            except OSError as e:
                raise netlink.PortownersError(
                    f"cannot join the portowners {name} group: {e.strerror}"
                ) from None

    def __enter__(self) -> Listener:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def fileno(self) -> int:
        return self.sock.fileno()

    def recv(self, timeout: float | None = None) -> list[Event]:
        """The events that arrived, waiting at most timeout seconds for one."""
        if self._pending is not None:
            pending, self._pending = self._pending, None
            raise pending
        ready, _, _ = select.select([self.sock], [], [], timeout)
        if not ready:
            return []
        events: list[Event] = []
        # Every datagram waiting, not only the first: one select for a burst.
        while True:
            try:
                data, (sender, _) = self.sock.recvfrom(RECV_SIZE, socket.MSG_DONTWAIT)
            except BlockingIOError:
                break
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise netlink.PortownersError(f"reading events failed: {e.strerror}") from None
                self._pending = Overrun()
                break
            if sender != 0:
                continue  # not from the kernel
            for item in decode(data, self.family_id):
                if isinstance(item, FamilyGone):
                    self._pending = ModuleUnloaded()
                    break
                events.append(replace(item, lost=self.seqs.lost(item.group, item.seq)))
            if self._pending is not None:
                break
        if not events and self._pending is not None:
            pending, self._pending = self._pending, None
            raise pending
        return events
