"""Who holds an owned port now: `portctl list --holders`.

The sockets come from the kernel's sock_diag (inet_diag, as ss(8) reads
them), never from /proc/net text; the processes that have each one open
from the /proc/PID/fd links `socket:[INODE]` (as `ss -p` finds them: a
process whose fds portctl may not read just has no pid shown).

sock_diag is asked with a plain netlink socket packed with struct: pyroute2's
DiagSocket drops the kernel's error messages (its message map takes the
error type, 2, for AF_INET), so a missing tcp_diag module would pass for a
port nobody holds.

Which sockets hold a rule's ports (docs/portctl.md, "list --holders"):
every socket bound to one of the ports on the rule's address, and wildcard
sockets of the port (0.0.0.0 covers IPv4 addresses, :: every address unless
it is IPV6_V6ONLY), since they hold it there too; for a rule on every
address, every socket of the port. TCP connections accepted from a
listening socket of the port are left out (the listener stands for them);
TIME-WAIT and SYN-RECV ones are not asked for (no process has them).
SCTP is not shown: sock_diag lists SCTP endpoints only through the
sctp_diag module, by association, which portctl does not read.
"""

from __future__ import annotations

import errno
import os
import socket
import struct
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass

from portctl import names
from portctl.events import escape_comm
from portctl.model import PROTOCOLS, Rule, address_from_bytes

SUPPORTED = ("tcp", "udp")

NETLINK_SOCK_DIAG = 4
SOCK_DIAG_BY_FAMILY = 20
NLM_F_REQUEST, NLM_F_DUMP = 0x1, 0x300
NLMSG_ERROR, NLMSG_DONE = 2, 3
INET_DIAG_SKV6ONLY = 11

# include/net/tcp_states.h. UDP uses CLOSE for an unconnected socket and
# ESTABLISHED for a connected one.
STATES = {
    1: "ESTABLISHED",
    2: "SYN-SENT",
    3: "SYN-RECV",
    4: "FIN-WAIT-1",
    5: "FIN-WAIT-2",
    6: "TIME-WAIT",
    7: "UNCONN",
    8: "CLOSE-WAIT",
    9: "LAST-ACK",
    10: "LISTEN",
    11: "CLOSING",
    12: "SYN-RECV",
    13: "UNCONN",
}
TCP_LISTEN = 10
TCP_CLOSE = 7
# TCP_BOUND_INACTIVE (13, Linux 6.7+): a TCP socket bound and not listening
# is dumped only when this pseudo-state is asked for; older kernels (6.1)
# never dump one, and ignore the bit.
_ASKED = sum(1 << s for s in STATES if s not in (3, 6, 12))

_NLMSGHDR = struct.Struct("=IHHII")
_REQ = struct.Struct("=BBBxI56x")  # inet_diag_req_v2; its inet_diag_sockid zero
_MSG = struct.Struct("=BBBBHH16s16sI8sIIIII")  # inet_diag_msg
_NLA = struct.Struct("=HH")


@dataclass(frozen=True)
class Socket:
    proto: str
    addr: str  # canonical text; "0.0.0.0" and "::" for wildcards
    port: int
    state: str
    uid: int
    inode: int
    v6only: bool = False
    connected: bool = False  # has a peer (a TCP connection, a connected UDP socket)


@dataclass(frozen=True)
class Process:
    pid: int
    comm: str


@dataclass(frozen=True)
class Holder:
    socket: Socket
    processes: tuple[Process, ...]
    owner: bool  # the rule grants the socket's uid


# What a refused dump most likely means, for the administrator.
_HINTS = {
    errno.ENOENT: " (this kernel has no sock_diag handler for the protocol:"
    " CONFIG_INET_TCP_DIAG / CONFIG_INET_UDP_DIAG, modules tcp_diag / udp_diag)",
}


class DiagError(OSError):
    """sock_diag failed; str() is for people."""


def _request(family: int, proto: int, seq: int) -> bytes:
    body = _REQ.pack(family, proto, 0, _ASKED)
    return (
        _NLMSGHDR.pack(
            _NLMSGHDR.size + len(body), SOCK_DIAG_BY_FAMILY, NLM_F_REQUEST | NLM_F_DUMP, seq, 0
        )
        + body
    )


def parse_diag(data: bytes, proto: str) -> tuple[list[Socket], bool]:
    """The sockets of one datagram of a dump, and whether the dump is done.
    Raises DiagError for the kernel's NLMSG_ERROR."""
    out: list[Socket] = []
    pos = 0
    while pos + _NLMSGHDR.size <= len(data):
        length, kind, _, _, _ = _NLMSGHDR.unpack_from(data, pos)
        if length < _NLMSGHDR.size:
            break
        body = pos + _NLMSGHDR.size
        # A dump that failed ends with NLMSG_DONE carrying the negative
        # errno (netlink_dump()), as a kernel without udp_diag does for UDP:
        # read as "done", it would show a held port as free.
        if kind in (NLMSG_DONE, NLMSG_ERROR):
            code = struct.unpack_from("=i", data, body)[0] if length >= _NLMSGHDR.size + 4 else 0
            if code < 0:
                raise DiagError(-code, f"{proto}: {os.strerror(-code)}{_HINTS.get(-code, '')}")
            return out, True
        if kind == SOCK_DIAG_BY_FAMILY and length >= _NLMSGHDR.size + _MSG.size:
            fam, state, _, _, sport, _, src, _, _, _, _, _, _, uid, inode = _MSG.unpack_from(
                data, body
            )
            v6only = False
            at = body + _MSG.size
            while at + 4 <= pos + length:
                size, atype = _NLA.unpack_from(data, at)
                if size < 4:
                    break
                if atype & 0x3FFF == INET_DIAG_SKV6ONLY and size >= 5:
                    v6only = bool(data[at + 4])
                at += (size + 3) & ~3
            addr = address_from_bytes(src[:4] if fam == socket.AF_INET else src)
            out.append(
                Socket(
                    proto=proto,
                    addr=addr,
                    port=socket.ntohs(sport),
                    state=STATES.get(state, str(state)),
                    uid=uid,
                    inode=inode,
                    v6only=v6only,
                    connected=state not in (TCP_LISTEN, TCP_CLOSE, 13),
                )
            )
        pos += (length + 3) & ~3
    return out, False


def dump_sockets(protos: Iterable[str]) -> list[Socket]:
    """Every IPv4 and IPv6 socket of protos (tcp, udp) in this network
    namespace, from sock_diag. Raises DiagError."""
    out: list[Socket] = []
    try:
        sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_SOCK_DIAG)
    except OSError as e:
        raise DiagError(e.errno, e.strerror) from None
    with sock:
        seq = 0
        for proto in protos:
            for family in (socket.AF_INET, socket.AF_INET6):
                seq += 1
                try:
                    sock.send(_request(family, PROTOCOLS[proto], seq))
                    done = False
                    while not done:
                        found, done = parse_diag(sock.recv(65536), proto)
                        out += found
                except DiagError:
                    raise
                except OSError as e:
                    raise DiagError(e.errno, e.strerror) from None
    return out


def socket_processes(inodes: Iterable[int], proc: str = "/proc") -> dict[int, list[Process]]:
    """The processes that have each socket inode open, from /proc/PID/fd.
    Processes whose fds cannot be read (another user's, without root) and
    processes that exit meanwhile are just not found."""
    wanted = {f"socket:[{i}]": i for i in inodes if i}
    found: dict[int, list[Process]] = {}
    if not wanted:
        return found
    try:
        pids = [p for p in os.listdir(proc) if p.isdigit()]
    except OSError:
        return found
    for pid in pids:
        fd_dir = f"{proc}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        hits = set()
        for fd in fds:
            try:
                inode = wanted.get(os.readlink(f"{fd_dir}/{fd}"))
            except OSError:
                continue
            if inode is not None:
                hits.add(inode)
        if not hits:
            continue
        try:
            with open(f"{proc}/{pid}/comm", "rb") as f:
                comm = f.read().rstrip(b"\n").decode("utf-8", "surrogateescape")
        except OSError:
            comm = ""
        for inode in hits:
            found.setdefault(inode, []).append(Process(int(pid), comm))
    return found


def covers(rule: Rule, sock: Socket) -> bool:
    """Whether sock holds one of rule's ports where the rule holds."""
    if sock.proto != rule.proto or not rule.lo <= sock.port <= rule.hi:
        return False
    if not rule.addr or sock.addr == rule.addr or (sock.addr == "::" and not sock.v6only):
        return True
    if sock.addr == "::":  # IPV6_V6ONLY: every IPv6 address
        return ":" in rule.addr
    return sock.addr == "0.0.0.0" and ":" not in rule.addr


def grants_uid(rule: Rule, uid: int) -> bool:
    """Whether rule lets uid bind (its primary and supplementary groups
    counted, from the group database)."""
    if rule.any_user or rule.uid == uid:
        return True
    if rule.gid is None:
        return False
    name = names.user_name(uid)
    if name is None:
        return False
    try:
        return rule.gid in names.credentials(name).groups
    except names.UnknownName:
        return False


def _accepted(sockets: Sequence[Socket]) -> set[Socket]:
    """TCP connections on a port some socket listens on: accepted ones."""
    listening = {s.port for s in sockets if s.proto == "tcp" and s.state == "LISTEN"}
    return {s for s in sockets if s.proto == "tcp" and s.connected and s.port in listening}


def holders(
    rules: Sequence[Rule],
    sockets: Sequence[Socket],
    processes: Mapping[int, Sequence[Process]],
) -> dict[Rule, list[Holder] | None]:
    """Each rule's holders, in port and address order; None for a protocol
    whose sockets are not listed (SCTP)."""
    accepted = _accepted(sockets)
    shown = sorted(
        (s for s in sockets if s not in accepted),
        key=lambda s: (s.port, ":" in s.addr, s.addr, s.state, s.inode),
    )
    out: dict[Rule, list[Holder] | None] = {}
    for rule in rules:
        if rule.proto not in SUPPORTED:
            out[rule] = None
            continue
        out[rule] = [
            Holder(s, tuple(processes.get(s.inode, ())), grants_uid(rule, s.uid))
            for s in shown
            if covers(rule, s)
        ]
    return out


def endpoint(sock: Socket) -> str:
    return f"[{sock.addr}]:{sock.port}" if ":" in sock.addr else f"{sock.addr}:{sock.port}"


def holder_text(holder: Holder) -> str:
    """``0.0.0.0:80 LISTEN uid 33 (www-data) pid 812 nginx, 813 nginx``, and
    ``not owner`` when the rule does not grant the socket's uid."""
    s = holder.socket
    user = names.user_name(s.uid)
    text = f"{endpoint(s)} {s.state} uid {s.uid}" + (f" ({user})" if user else "")
    if holder.processes:
        text += " pid " + ", ".join(f"{p.pid} {escape_comm(p.comm)}" for p in holder.processes)
    else:
        text += " pid ?"
    if not holder.owner:
        text += "  not owner"
    return text


def holder_json(holder: Holder) -> dict[str, object]:
    s = holder.socket
    return {
        "address": s.addr,
        "port": s.port,
        "state": s.state,
        "uid": s.uid,
        "user": names.user_name(s.uid),
        "inode": s.inode,
        "processes": [{"pid": p.pid, "comm": escape_comm(p.comm)} for p in holder.processes],
        "owner": holder.owner,
    }
