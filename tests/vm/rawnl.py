"""Generic netlink by hand, for tests that look at the ABI byte by byte.

Standard library only (with nlfuzz's header-derived constants), so scripts
run as other users or in other namespaces can use it with Debian's python3:

* Raw: requests built byte by byte, replies as payloads, errno and extack.
* Listener: a socket joined to the family's multicast groups ("denials",
  "grants"); events() parses each PORTOWNERS_CMD_EVENT into a dict.
"""

from __future__ import annotations

import errno
import ipaddress
import os
import socket
import struct
from collections.abc import Iterator
from typing import Any

from nlfuzz import (
    CMD,
    CTRL_ATTR_FAMILY_ID,
    CTRL_ATTR_FAMILY_NAME,
    CTRL_CMD_GETFAMILY,
    GENL_ID_CTRL,
    NETLINK_CAP_ACK,
    NETLINK_EXT_ACK,
    NETLINK_GENERIC,
    NLM_F_ACK,
    NLM_F_REQUEST,
    NLMSG_DONE,
    NLMSG_ERROR,
    NLMSGERR_ATTR_MSG,
    RA,
    SOL_NETLINK,
    A,
    C,
    align,
    nla,
    nlmsg,
    parse_attrs,
)

CTRL_ATTR_MCAST_GROUPS = 7
CTRL_ATTR_MCAST_GRP_NAME, CTRL_ATTR_MCAST_GRP_ID = 1, 2
NETLINK_ADD_MEMBERSHIP = 1
SO_RCVBUFFORCE = 33
VERSION = C["PORTOWNERS_GENL_VERSION"]


class Raw:
    """A plain generic netlink socket: requests built byte by byte."""

    def __init__(self, family: int) -> None:
        self.family = family
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.sock.bind((0, 0))
        self.sock.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
        self.sock.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)

    def send(
        self, cmd: int, body: bytes, flags: int = NLM_F_REQUEST | NLM_F_ACK, version: int = VERSION
    ):
        self.sock.send(nlmsg(self.family, flags, 1, struct.pack("=BBH", cmd, version, 0) + body))

    def replies(self) -> Iterator[tuple[int, bytes]]:
        """(type, payload) of each message up to the ack, the error or NLMSG_DONE."""
        while True:
            data = self.sock.recv(1 << 20)
            off = 0
            while off < len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                yield kind, data[off + 16 : off + length]
                if kind in (NLMSG_ERROR, NLMSG_DONE):
                    return
                off += align(length)

    def request(self, cmd: int, body: bytes, **kw) -> tuple[int, str, list[bytes]]:
        """(errno, extack message, payloads of the replies before the ack)."""
        self.send(cmd, body, **kw)
        got = []
        for kind, payload in self.replies():
            if kind in (NLMSG_ERROR, NLMSG_DONE):
                code = -struct.unpack_from("=i", payload)[0] if payload else 0
                return code, extack_msg(payload, kind), got
            got.append(payload)
        raise AssertionError("no ack")

    def close(self) -> None:
        self.sock.close()


def extack_msg(payload: bytes, kind: int) -> str:
    """NLMSGERR_ATTR_MSG of an error: after the errno and, in NLMSG_ERROR, the
    request's header, which alone is echoed (NETLINK_CAP_ACK)."""
    start = 4 + 16 if kind == NLMSG_ERROR else 4
    msg = attrs_of(payload, start).get(NLMSGERR_ATTR_MSG, [b""])[0]
    return msg.rstrip(b"\0").decode()


def attrs_of(payload: bytes, start: int = 4) -> dict[int, list[bytes]]:
    """Attributes after the genl header (or from start), by type without flags."""
    out: dict[int, list[bytes]] = {}
    for kind, value in parse_attrs(payload, start, len(payload)):
        out.setdefault(kind & 0x3FFF, []).append(value)
    return out


def family_groups(name: str = "portowners") -> tuple[int, dict[str, int]]:
    """The family's id and its multicast groups' ids, by name, from nlctrl."""
    sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    try:
        sock.bind((0, 0))
        payload = struct.pack("=BBH", CTRL_CMD_GETFAMILY, 1, 0)
        payload += nla(CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0")
        sock.send(nlmsg(GENL_ID_CTRL, NLM_F_REQUEST, 1, payload))
        data = sock.recv(65536)
    finally:
        sock.close()
    length, kind = struct.unpack_from("=IH", data)
    if kind == NLMSG_ERROR:
        code = -struct.unpack_from("=i", data, 16)[0]
        raise OSError(code, f"generic netlink family {name}: {os.strerror(code)}")
    attrs = attrs_of(data[16:length])
    family = struct.unpack("=H", attrs[CTRL_ATTR_FAMILY_ID][0][:2])[0]
    groups = {}
    for nest in attrs.get(CTRL_ATTR_MCAST_GROUPS, []):
        for _, grp in parse_attrs(nest, 0, len(nest)):
            g = attrs_of(grp, 0)
            groups[g[CTRL_ATTR_MCAST_GRP_NAME][0].rstrip(b"\0").decode()] = struct.unpack(
                "=I", g[CTRL_ATTR_MCAST_GRP_ID][0]
            )[0]
    return family, groups


def addr_text(value: bytes) -> str:
    return str(ipaddress.ip_address(value))


def parse_rule(nest: bytes) -> dict[str, Any]:
    a = attrs_of(nest, 0)
    rule: dict[str, Any] = {
        "proto": a[RA["PROTO"]][0][0],
        "lo": struct.unpack("=H", a[RA["PORT_LO"]][0])[0],
        "hi": struct.unpack("=H", a[RA["PORT_HI"]][0])[0],
    }
    for name in ("UID", "GID"):
        if RA[name] in a:
            rule[name.lower()] = struct.unpack("=I", a[RA[name]][0])[0]
    if RA["ANY"] in a:
        rule["any"] = True
    if RA["ADDR"] in a:
        rule["addr"] = addr_text(a[RA["ADDR"]][0])
    for name in ("GRANTED", "DENIED"):
        if RA[name] in a:
            rule[name.lower()] = struct.unpack("=Q", a[RA[name]][0])[0]
    return rule


def parse_event(payload: bytes) -> dict[str, Any]:
    """A PORTOWNERS_CMD_EVENT's genl payload; every attribute is required."""
    if payload[0] != CMD["EVENT"]:
        raise AssertionError(f"message of command {payload[0]} on an event group")
    a = attrs_of(payload)
    rules = a[A["RULE"]]
    assert len(rules) == 1, rules
    return {
        "seq": struct.unpack("=Q", a[A["SEQ"]][0])[0],
        "netns": struct.unpack("=I", a[A["NETNS"]][0])[0],
        "uid": struct.unpack("=I", a[A["UID"]][0])[0],
        "gid": struct.unpack("=I", a[A["GID"]][0])[0],
        "pid": struct.unpack("=I", a[A["PID"]][0])[0],
        "comm": a[A["COMM"]][0].rstrip(b"\0").decode("utf-8", "surrogateescape"),
        "proto": a[A["PROTO"]][0][0],
        "addr": addr_text(a[A["ADDR"]][0]),
        "addr_len": len(a[A["ADDR"]][0]),
        "port": struct.unpack("=H", a[A["PORT"]][0])[0],
        "verdict": a[A["VERDICT"]][0][0],
        "rule": parse_rule(rules[0]),
    }


class Listener:
    """A socket on the family's multicast groups. Joining needs CAP_NET_ADMIN
    over the namespace's user namespace: PermissionError otherwise."""

    def __init__(self, groups: tuple[str, ...] = ("denials",), rcvbuf: int = 1 << 20) -> None:
        self.family, ids = family_groups()
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
        self.overruns = 0
        try:
            self.sock.bind((0, 0))
            try:
                self.sock.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, rcvbuf)
            except PermissionError:
                self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
            for name in groups:
                self.sock.setsockopt(SOL_NETLINK, NETLINK_ADD_MEMBERSHIP, ids[name])
        except BaseException:
            self.sock.close()
            raise

    def events(self, timeout: float, first: float | None = None) -> Iterator[dict[str, Any]]:
        """Events until none came for timeout seconds (for the first one:
        first seconds, if given). An overrun of the socket's buffer (ENOBUFS)
        is counted in self.overruns."""
        self.sock.settimeout(timeout if first is None else first)
        while True:
            try:
                data = self.sock.recv(1 << 20)
            except TimeoutError:
                return
            except OSError as e:
                if e.errno != errno.ENOBUFS:
                    raise
                self.overruns += 1
                continue
            self.sock.settimeout(timeout)
            off = 0
            while off < len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if kind != self.family:
                    raise AssertionError(f"netlink message of type {kind} on the event groups")
                yield parse_event(data[off + 16 : off + length])
                off += align(length)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> Listener:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
