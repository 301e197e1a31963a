"""Client for the portowners generic netlink family (kmod/uapi/portowners.h).

Messages are described with pyroute2's nla maps, with one exception: a
REPLACE is packed by hand, with struct (replace_messages, encode_rules), and
sent on a plain netlink socket of its own (RawChannel). Why: pyroute2 builds
Python objects for every attribute, about 0.15 ms a rule on a development
machine and 0.7 ms under emulation, so `portctl load` of 65,536 rules took
45 s there, against 0.15-0.4 s for the kernel to take them; and even with
the rules packed, its per-message work was a third of the rest. pyroute2
still resolves the family, and sends and parses every other message, errors
and extack messages included; RawChannel reads a REPLACE chunk's ack, or its
errno and extack message, with struct. tests/host/test_encode.py proves the
packed bytes equal what pyroute2 encodes from pomsg and rulemsg, rule by rule
and message by message. The constants below, the attribute numbers packed
by hand included, are checked against the UAPI header by
tests/host/test_uapi.py.
"""

from __future__ import annotations

import array
import errno
import importlib.util
import itertools
import socket
import struct
import sys
import types
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any

from portctl.model import (
    PROTO_NAMES,
    PROTOCOLS,
    PortRange,
    Rule,
    address_bytes,
    address_from_bytes,
    rule_key,
    sorted_rules,
)


def _skip_pyroute2_init() -> None:
    """Let pyroute2's subpackages load without its package __init__.

    That __init__ imports every protocol pyroute2 has (IPRoute, NDB, conntrack,
    ipset, ...): about 60% of portctl's start-up, for generic netlink only.
    """
    if "pyroute2" in sys.modules:
        return
    spec = importlib.util.find_spec("pyroute2")
    if spec is None or spec.submodule_search_locations is None:
        return  # the imports below then fail as usual
    package = types.ModuleType("pyroute2")
    package.__path__ = list(spec.submodule_search_locations)
    package.__spec__ = spec
    sys.modules["pyroute2"] = package


_skip_pyroute2_init()

from pyroute2.netlink import (  # noqa: E402
    NLA_F_NESTED,
    NLM_F_ACK,
    NLM_F_DUMP,
    NLM_F_DUMP_INTR,
    NLM_F_REQUEST,
    genlmsg,
    nla,
)
from pyroute2.netlink.exceptions import NetlinkError  # noqa: E402
from pyroute2.netlink.generic import GenericNetlinkSocket  # noqa: E402

GENL_NAME = "portowners"
# 2: rules may hold on one address (PORTOWNERS_RULE_A_ADDR). The kernel
# refuses a version 1 dump of a table with such a rule: a reader that cannot
# see the address would take it for a rule on every address.
# 3: events on the multicast groups below, per-rule counters (F_STATS),
# PORTOWNERS_A_EVENTS_DROPPED. Nothing a version 2 module refuses by the
# version alone: what it lacks shows as an unknown flag or a missing group.
GENL_VERSION = 3
MCGRP_DENIALS = "denials"
MCGRP_GRANTS = "grants"
MAX_RULES = 3 * 65535

CMD_UNSPEC = 0
CMD_GET_RULES = 1
CMD_REPLACE = 2
CMD_ADD_RULES = 3
CMD_DEL_RULES = 4
CMD_FLUSH = 5
CMD_GET_STATUS = 6
CMD_CHECK = 7
CMD_EVENT = 8  # never a request: the message of the multicast groups

F_MORE = 1
F_STATS = 1 << 1

VERDICTS = {0: "pass", 1: "grant", 2: "deny"}

# Times a dump is read again when the table changed under it.
DUMP_TRIES = 10

# Rules a REPLACE chunk carries: about 44 bytes each, so a chunk stays well
# inside the default netlink socket send buffer (212992 bytes).
CHUNK = 2048


# pyroute2 is untyped, and names its message classes in lower case.
class rulemsg(nla):  # type: ignore[misc]
    nla_flags = NLA_F_NESTED  # the kernel parses nests strictly
    prefix = "PORTOWNERS_RULE_A_"
    nla_map = (
        ("PORTOWNERS_RULE_A_UNSPEC", "none"),
        ("PORTOWNERS_RULE_A_PROTO", "uint8"),
        ("PORTOWNERS_RULE_A_PORT_LO", "uint16"),
        ("PORTOWNERS_RULE_A_PORT_HI", "uint16"),
        ("PORTOWNERS_RULE_A_UID", "uint32"),
        ("PORTOWNERS_RULE_A_GID", "uint32"),
        ("PORTOWNERS_RULE_A_ANY", "flag"),
        ("PORTOWNERS_RULE_A_ADDR", "cdata"),  # 4 or 16 bytes, network order
        ("PORTOWNERS_RULE_A_PAD", "none"),
        ("PORTOWNERS_RULE_A_GRANTED", "uint64"),  # in dumps asked for with F_STATS
        ("PORTOWNERS_RULE_A_DENIED", "uint64"),
    )


class pomsg(genlmsg):  # type: ignore[misc]
    prefix = "PORTOWNERS_A_"
    nla_map = (
        ("PORTOWNERS_A_UNSPEC", "none"),
        ("PORTOWNERS_A_PAD", "none"),
        ("PORTOWNERS_A_RULE", "rule"),
        ("PORTOWNERS_A_FLAGS", "uint32"),
        ("PORTOWNERS_A_OFFSET", "uint32"),
        ("PORTOWNERS_A_GENERATION", "uint64"),
        ("PORTOWNERS_A_RULE_COUNT", "uint32"),
        ("PORTOWNERS_A_GRANTED", "uint64"),
        ("PORTOWNERS_A_DENIED", "uint64"),
        ("PORTOWNERS_A_ROOT_EXEMPT", "uint8"),
        ("PORTOWNERS_A_VERSION", "asciiz"),
        ("PORTOWNERS_A_UID", "uint32"),
        ("PORTOWNERS_A_GID", "uint32"),
        ("PORTOWNERS_A_GROUP", "uint32"),
        ("PORTOWNERS_A_PROTO", "uint8"),
        ("PORTOWNERS_A_PORT", "uint16"),
        ("PORTOWNERS_A_VERDICT", "uint8"),
        ("PORTOWNERS_A_EXPECT_GENERATION", "uint64"),
        ("PORTOWNERS_A_ADDR", "cdata"),  # 4 or 16 bytes, network order
        ("PORTOWNERS_A_SEQ", "uint64"),
        ("PORTOWNERS_A_NETNS", "uint32"),
        ("PORTOWNERS_A_PID", "uint32"),
        # The task name as the task set it: any bytes, so not decoded here.
        ("PORTOWNERS_A_COMM", "cdata"),
        ("PORTOWNERS_A_EVENTS_DROPPED", "uint64"),
    )
    rule = rulemsg


def _attr_type(msg_class: type[Any], name: str) -> int:
    """An attribute's number: its index in the nla map (test_uapi checks those)."""
    return [entry[0] for entry in msg_class.nla_map].index(name)


A_RULE = _attr_type(pomsg, "PORTOWNERS_A_RULE")
RULE_A_PROTO = _attr_type(rulemsg, "PORTOWNERS_RULE_A_PROTO")
RULE_A_PORT_LO = _attr_type(rulemsg, "PORTOWNERS_RULE_A_PORT_LO")
RULE_A_PORT_HI = _attr_type(rulemsg, "PORTOWNERS_RULE_A_PORT_HI")
RULE_A_UID = _attr_type(rulemsg, "PORTOWNERS_RULE_A_UID")
RULE_A_GID = _attr_type(rulemsg, "PORTOWNERS_RULE_A_GID")
RULE_A_ANY = _attr_type(rulemsg, "PORTOWNERS_RULE_A_ANY")
RULE_A_ADDR = _attr_type(rulemsg, "PORTOWNERS_RULE_A_ADDR")

# A rule nest as rulemsg lays it out (native byte order, every attribute
# padded to 4 bytes, its length field without the padding, the nest's with):
#   nest header | PROTO u8 | PORT_LO u16 | PORT_HI u16 | [ANY] [UID u32] [GID u32]
#   [ADDR 4 or 16 bytes]
# Only the ports differ between the rules of one owner, protocol and address.
# So a run of such rules (a table sorted by protocol, address and port has
# long ones; an address breaks a run of one owner, no more) is one template
# repeated, and its ports are written into it in two strided
# stores, PORT_LO's and PORT_HI's values (_Template): no Python code runs
# per rule, only C (zip transposes the rules, array converts the ports,
# memoryview stores them). Under emulation that is what brings a 65,536-rule
# load near the kernel's own time (bench/).
_NLA = struct.Struct("=HH")


@dataclass(frozen=True)
class _Template:
    nest: bytes  # one rule's nest, ports 0
    lo: int  # where PORT_LO's and PORT_HI's values are, in u16 units
    hi: int


def _template(proto: str, uid: int | None, gid: int | None, any_user: bool, addr: str) -> _Template:
    tail = b""
    if any_user:
        tail += _NLA.pack(4, RULE_A_ANY)
    if uid is not None:
        tail += struct.pack("=HHI", 8, RULE_A_UID, uid)
    if gid is not None:
        tail += struct.pack("=HHI", 8, RULE_A_GID, gid)
    if addr:
        packed = address_bytes(addr)  # 4 or 16 bytes: no padding
        tail += _NLA.pack(4 + len(packed), RULE_A_ADDR) + packed
    size = 4 + 8 + 8 + 8 + len(tail)
    head = (
        _NLA.pack(size, A_RULE | NLA_F_NESTED)
        + struct.pack("=HHB3x", 5, RULE_A_PROTO, PROTOCOLS[proto])
        + _NLA.pack(6, RULE_A_PORT_LO)
    )
    # PORT_LO's value and padding, PORT_HI's header (6: its length), its value and padding
    ports = struct.pack("=H2xHHH2x", 0, 6, RULE_A_PORT_HI, 0)
    return _Template(head + ports + tail, len(head) // 2, (len(head) + 8) // 2)


RuleEnds = dict[tuple[str, int | None, int | None, bool, str], _Template]


def encode_rules(
    rules: Sequence[Rule], ends: RuleEnds | None = None, out: bytearray | None = None
) -> bytearray:
    """The PORTOWNERS_A_RULE nests of rules, back to back: byte for byte what
    pyroute2 makes of [["PORTOWNERS_A_RULE", rule_attrs(r)] for r in rules].
    Appended to out, if given (no copy of a chunk's 90 KB), and returned.

    ends caches the template of each owner, protocol and address; pass the
    same dict to the calls for one table.
    """
    if out is None:
        out = bytearray()
    if not rules:
        return out
    if ends is None:
        ends = {}
    protos, los, his, uids, gids, anys, addrs = zip(*rules, strict=True)
    owners = (protos, uids, gids, anys, addrs)
    if all(col.count(col[0]) == len(col) for col in owners):
        runs: Iterable[tuple[Any, Any]] = [((protos[0], uids[0], gids[0], anys[0], addrs[0]), los)]
    else:
        runs = itertools.groupby(zip(*owners, strict=True))
    first = 0
    for key, group in runs:
        count = len(list(group))
        tmpl = ends.get(key)
        if tmpl is None:
            tmpl = ends[key] = _template(*key)
        start = len(out)
        out += tmpl.nest * count
        step = len(tmpl.nest) // 2
        lo, hi = los[first : first + count], his[first : first + count]
        lo_words = array.array("H", lo)
        # Single ports (lo == hi) are the common case: one conversion for both.
        hi_words = lo_words if lo == hi else array.array("H", hi)
        with memoryview(out) as whole, whole[start:].cast("H") as words:
            words[tmpl.lo :: step] = lo_words
            words[tmpl.hi :: step] = hi_words
        first += count
    return out


A_FLAGS = _attr_type(pomsg, "PORTOWNERS_A_FLAGS")
A_GENERATION = _attr_type(pomsg, "PORTOWNERS_A_GENERATION")
A_OFFSET = _attr_type(pomsg, "PORTOWNERS_A_OFFSET")
A_EXPECT_GENERATION = _attr_type(pomsg, "PORTOWNERS_A_EXPECT_GENERATION")
_NLMSGHDR = struct.Struct("=IHHII")  # length, type (the family), flags, sequence, port id
_GENLHDR = struct.Struct("=BBH")  # command, version, reserved
_U32_ATTR = struct.Struct("=HHI")
_U64_ATTR = struct.Struct("=HHQ")


def netlink_header(
    body: bytes | bytearray, family: int, seq: int, flags: int = NLM_F_REQUEST | NLM_F_ACK
) -> bytes:
    """The netlink header of a generic netlink request whose body (from the
    generic netlink header on, as replace_messages() makes them) is body."""
    return _NLMSGHDR.pack(_NLMSGHDR.size + len(body), family, flags, seq, 0)


def frame(
    body: bytes | bytearray, family: int, seq: int, flags: int = NLM_F_REQUEST | NLM_F_ACK
) -> bytes:
    """The whole request: netlink_header() and body."""
    return netlink_header(body, family, seq, flags) + body


class PortownersError(Exception):
    """A failure explained for people: str(error) is the whole message."""


class ModuleNotLoaded(PortownersError):
    def __init__(self) -> None:
        super().__init__(
            "the portowners kernel module is not loaded: "
            "run `modprobe portowners` (or `insmod kmod/portowners.ko`)"
        )


class NotPermitted(PortownersError):
    def __init__(self, doing: str = "changing the port table") -> None:
        super().__init__(f"{doing} needs CAP_NET_ADMIN (run it as root)")


class KernelRejected(PortownersError):
    """The kernel refused a request; the message is its extack text."""

    def __init__(self, message: str, code: int = 0) -> None:
        super().__init__(message)
        self.code = code  # the errno, when the kernel gave one


class TableChanged(KernelRejected):
    """ESTALE: a conditional change met a table another writer had changed."""


@dataclass(frozen=True)
class Status:
    version: str
    generation: int
    rule_count: int
    granted: int
    denied: int
    root_exempt: bool
    # Events of this namespace the kernel dropped (its queue full); None
    # from a module older than version 3, which does not count them.
    events_dropped: int | None = None


@dataclass(frozen=True)
class RuleStats:
    """A rule and the binds it decided (a GET_RULES dump with F_STATS)."""

    rule: Rule
    granted: int
    denied: int


@dataclass(frozen=True)
class CheckResult:
    verdict: str  # "pass" | "grant" | "deny"
    rule: Rule | None


def rule_attrs(rule: Rule | PortRange) -> dict[str, Any]:
    attrs: list[list[Any]] = [
        ["PORTOWNERS_RULE_A_PROTO", PROTOCOLS[rule.proto]],
        ["PORTOWNERS_RULE_A_PORT_LO", rule.lo],
        ["PORTOWNERS_RULE_A_PORT_HI", rule.hi],
    ]
    if isinstance(rule, Rule):
        if rule.any_user:
            attrs.append(["PORTOWNERS_RULE_A_ANY", True])
        if rule.uid is not None:
            attrs.append(["PORTOWNERS_RULE_A_UID", rule.uid])
        if rule.gid is not None:
            attrs.append(["PORTOWNERS_RULE_A_GID", rule.gid])
    if rule.addr:
        attrs.append(["PORTOWNERS_RULE_A_ADDR", address_bytes(rule.addr)])
    return {"attrs": attrs}


def rule_from_nla(attr: Any) -> Rule:
    addr = attr.get_attr("PORTOWNERS_RULE_A_ADDR")
    return Rule(
        proto=PROTO_NAMES[attr.get_attr("PORTOWNERS_RULE_A_PROTO")],
        lo=attr.get_attr("PORTOWNERS_RULE_A_PORT_LO"),
        hi=attr.get_attr("PORTOWNERS_RULE_A_PORT_HI"),
        uid=attr.get_attr("PORTOWNERS_RULE_A_UID"),
        gid=attr.get_attr("PORTOWNERS_RULE_A_GID"),
        any_user=attr.get_attr("PORTOWNERS_RULE_A_ANY") is not None,
        addr=address_from_bytes(addr) if addr is not None else "",
    )


def _rejected(err: NetlinkError) -> PortownersError:
    """The kernel's refusal, explained."""
    if err.code == errno.EPERM:
        return NotPermitted()
    text = err.args[1] if len(err.args) > 1 and err.args[1] else None
    text = text or errno.errorcode.get(err.code, str(err.code))
    if err.code == errno.ESTALE:
        return TableChanged(text, err.code)
    return KernelRejected(text, err.code)


def is_unknown_attribute(error: PortownersError) -> bool:
    """The kernel's policy refused an attribute newer than the module."""
    return (
        isinstance(error, KernelRejected)
        and error.code == errno.EINVAL
        and str(error) == "Unknown attribute type"
    )


def older_module(cannot: str) -> PortownersError:
    """The kernel refused an attribute it does not know: the module is older."""
    return PortownersError(
        f"the loaded portowners module is older than this portctl: it {cannot}; "
        "load the module that came with portctl "
        "(modprobe -r portowners && modprobe portowners)"
    )


ADDRESS_RULES_UNKNOWN = "cannot hold a rule on one address"
STATS_UNKNOWN = "keeps no counters per rule"
EVENTS_UNKNOWN = "sends no events"


def is_unknown_flag(error: PortownersError) -> bool:
    """The kernel's policy refused a flag bit newer than the module
    (NLA_POLICY_MASK: lib/nlattr.c says "reserved bit set")."""
    return (
        isinstance(error, KernelRejected)
        and error.code == errno.EINVAL
        and str(error) == "reserved bit set"
    )


def replace_messages(
    rules: Sequence[Rule], expect_generation: int | None = None
) -> Iterator[tuple[int, bytearray]]:
    """The REPLACE chunks of a table, each with the offset of its first rule:
    each chunk from its generic netlink header on (frame() adds the netlink
    header), byte for byte what pyroute2 makes of pomsg (tests/host/
    test_encode.py). Encoded one at a time: a chunk the kernel refuses ends
    the replace before the others are made.
    """
    ends: RuleEnds = {}
    size = CHUNK  # read at the call: tests make it small
    for start in range(0, max(len(rules), 1), size):
        attrs = _U32_ATTR.pack(8, A_OFFSET, start)
        if start + size < len(rules):
            attrs += _U32_ATTR.pack(8, A_FLAGS, F_MORE)
        if start == 0 and expect_generation is not None:
            # Checked here and again, by the kernel, at the final swap.
            attrs += _U64_ATTR.pack(12, A_EXPECT_GENERATION, expect_generation)
        body = bytearray(_GENLHDR.pack(CMD_REPLACE, GENL_VERSION, 0) + attrs)
        yield start, encode_rules(rules[start : start + size], ends, body)


_NLA_TYPE_MASK = 0x3FFF  # without NLA_F_NESTED and NLA_F_NET_BYTEORDER
_U8 = struct.Struct("=B")
_U16 = struct.Struct("=H")
_U32 = struct.Struct("=I")
_U64 = struct.Struct("=Q")


def decode_rules_reply(msg: bytes | memoryview) -> tuple[int | None, list[Rule]]:
    """A GET_RULES dump message's generation and rules, read with struct.

    What rule_from_nla() makes of pyroute2's parse, about 20 times faster:
    pyroute2 spends some 100 us a rule, over 7 s for a 65,536-rule table on
    a real machine and minutes under emulation (tests/host/test_encode.py
    checks the two agree). Attributes it does not know are skipped.
    """
    generation: int | None = None
    rules: list[Rule] = []
    end = min(len(msg), _U32.unpack_from(msg, 0)[0])
    pos = _NLMSGHDR.size + _GENLHDR.size
    while pos + 4 <= end:
        size, kind = _NLA.unpack_from(msg, pos)
        if size < 4:
            break
        kind &= _NLA_TYPE_MASK
        if kind == A_GENERATION and size >= 12:
            (generation,) = _U64.unpack_from(msg, pos + 4)
        elif kind == A_RULE:
            rules.append(_decode_rule(msg, pos + 4, min(pos + size, end)))
        pos += (size + 3) & ~3
    return generation, rules


def _decode_rule(msg: bytes | memoryview, pos: int, end: int) -> Rule:
    proto = lo = hi = 0
    uid: int | None = None
    gid: int | None = None
    any_user = False
    addr = ""
    while pos + 4 <= end:
        size, kind = _NLA.unpack_from(msg, pos)
        if size < 4:
            break
        kind &= _NLA_TYPE_MASK
        if kind == RULE_A_PROTO:
            (proto,) = _U8.unpack_from(msg, pos + 4)
        elif kind == RULE_A_PORT_LO:
            (lo,) = _U16.unpack_from(msg, pos + 4)
        elif kind == RULE_A_PORT_HI:
            (hi,) = _U16.unpack_from(msg, pos + 4)
        elif kind == RULE_A_UID:
            (uid,) = _U32.unpack_from(msg, pos + 4)
        elif kind == RULE_A_GID:
            (gid,) = _U32.unpack_from(msg, pos + 4)
        elif kind == RULE_A_ANY:
            any_user = True
        elif kind == RULE_A_ADDR:
            addr = address_from_bytes(bytes(msg[pos + 4 : pos + size]))
        pos += (size + 3) & ~3
    return Rule(PROTO_NAMES[proto], lo, hi, uid=uid, gid=gid, any_user=any_user, addr=addr)


class RawChannel:
    """A plain generic netlink socket, for the chunks of a REPLACE.

    pyroute2 builds and parses Python objects for every message it sends,
    about 5 ms a 2,048-rule chunk under emulation: a third of a 65,536-rule
    load. A REPLACE's chunks are bytes already (replace_messages()), and the
    kernel's answer to each is an ack, so they go out on a socket of their
    own, read back with struct. The staged table belongs to this socket: it
    is dropped if the socket closes before the last chunk.
    """

    SOL_NETLINK = 270
    NETLINK_CAP_ACK = 10  # an error does not echo the 80 KB chunk back
    NETLINK_EXT_ACK = 11  # and carries the kernel's message
    NLMSG_ERROR = 2
    NLMSG_DONE = 3
    NLM_F_ACK_TLVS = 0x200
    NLMSGERR_ATTR_MSG = 1
    NETLINK_GENERIC = 16  # not in Python's socket module

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, self.NETLINK_GENERIC)
        try:
            self.sock.setsockopt(self.SOL_NETLINK, self.NETLINK_CAP_ACK, 1)
            self.sock.setsockopt(self.SOL_NETLINK, self.NETLINK_EXT_ACK, 1)
            self.sock.bind((0, 0))
        except OSError:
            self.sock.close()
            raise
        self.seq = 0

    def close(self) -> None:
        self.sock.close()

    def request(self, body: bytes | bytearray, family: int) -> None:
        """Send one request and wait for its ack; a NetlinkError (with the
        kernel's extack message, if any) when the kernel refused it."""
        self.seq += 1
        # Header and body gathered by the kernel: no copy of the body here.
        self.sock.sendmsg([netlink_header(body, family, self.seq), body])
        for kind, flags, msg in self._replies():
            if kind == self.NLMSG_ERROR:
                self._raise_for(msg, flags)
                return

    def _replies(self) -> Iterator[tuple[int, int, bytes]]:
        """The kernel's messages answering the last request (type, flags,
        bytes), as they come; the caller stops reading."""
        while True:
            # A dump's messages come in skbs of 32 KiB at most (netlink_dump()).
            reply = self.sock.recv(65536)
            pos = 0
            while pos + _NLMSGHDR.size <= len(reply):
                length, kind, flags, seq, _ = _NLMSGHDR.unpack_from(reply, pos)
                if length < _NLMSGHDR.size:
                    raise NetlinkError(errno.EPROTO, "malformed reply from the kernel")
                if seq == self.seq:
                    yield kind, flags, reply[pos : pos + length]
                pos += (length + 3) & ~3

    def dump(self, body: bytes | bytearray, family: int) -> list[tuple[int, bytes]]:
        """Send a dump request; each reply message's flags and bytes, up to
        NLMSG_DONE (its flags too, with an empty message), or a NetlinkError."""
        self.seq += 1
        flags = NLM_F_REQUEST | NLM_F_DUMP
        self.sock.sendmsg([netlink_header(body, family, self.seq, flags), body])
        out: list[tuple[int, bytes]] = []
        for kind, mflags, msg in self._replies():
            if kind == self.NLMSG_ERROR:
                self._raise_for(msg, mflags)
                raise NetlinkError(errno.EPROTO, "a dump answered with an ack")
            if kind == self.NLMSG_DONE:
                out.append((mflags, b""))
                return out
            out.append((mflags, msg))
        raise AssertionError("unreachable: _replies() never ends")

    def _raise_for(self, msg: bytes, flags: int) -> None:
        (error,) = struct.unpack_from("=i", msg, _NLMSGHDR.size)
        if error == 0:
            return
        text = ""
        if flags & self.NLM_F_ACK_TLVS:
            # After the error: the request's header (capped: no payload), then attributes.
            pos = _NLMSGHDR.size + 4 + _NLMSGHDR.size
            while pos + 4 <= len(msg):
                size, kind = _NLA.unpack_from(msg, pos)
                if size < 4:
                    break
                if kind & 0x3FFF == self.NLMSGERR_ATTR_MSG:
                    text = msg[pos + 4 : pos + size].split(b"\0", 1)[0].decode(errors="replace")
                pos += (size + 3) & ~3
        raise NetlinkError(-error, text) if text else NetlinkError(-error)


def family_groups(name: str) -> tuple[int, dict[str, int]]:
    """A generic netlink family's id and its multicast groups (name: id).
    ModuleNotLoaded when the family is portowners and is not registered."""
    from pyroute2.netlink import CTRL_CMD_GETFAMILY, GENL_ID_CTRL, NLM_F_REQUEST, ctrlmsg

    sock = GenericNetlinkSocket()
    try:
        msg = ctrlmsg()
        msg["cmd"] = CTRL_CMD_GETFAMILY
        msg["version"] = 1
        msg["attrs"] = [["CTRL_ATTR_FAMILY_NAME", name]]
        sock.marshal.msg_map[GENL_ID_CTRL] = ctrlmsg
        (reply,) = sock.nlm_request(msg, msg_type=GENL_ID_CTRL, msg_flags=NLM_F_REQUEST)
    except NetlinkError as err:
        if err.code == errno.ENOENT and name == GENL_NAME:
            raise ModuleNotLoaded() from None
        raise PortownersError(f"cannot look up the {name} netlink family: {err}") from None
    finally:
        sock.close()
    groups = {
        g.get_attr("CTRL_ATTR_MCAST_GRP_NAME"): g.get_attr("CTRL_ATTR_MCAST_GRP_ID")
        for g in reply.get_attr("CTRL_ATTR_MCAST_GROUPS") or []
    }
    return int(reply.get_attr("CTRL_ATTR_FAMILY_ID")), groups


class Client:
    """One netlink socket to the portowners family of this network namespace."""

    def __init__(self) -> None:
        self.sock = GenericNetlinkSocket(ext_ack=True)
        try:
            self.sock.bind(GENL_NAME, pomsg)
        except NetlinkError as err:
            self.sock.close()
            if err.code == errno.ENOENT:
                raise ModuleNotLoaded() from None
            raise PortownersError(f"cannot reach the portowners module: {err}") from None

    def __enter__(self) -> Client:
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

    def _request(
        self, cmd: int, attrs: list[list[Any]], flags: int = NLM_F_REQUEST | NLM_F_ACK
    ) -> list[Any]:
        msg = pomsg()
        msg["cmd"] = cmd
        msg["version"] = GENL_VERSION
        msg["attrs"] = attrs
        return self._send(msg, flags)

    def _send(self, msg: Any, flags: int = NLM_F_REQUEST | NLM_F_ACK) -> list[Any]:
        """Send a built message; its replies, or the error as a PortownersError."""
        try:
            return list(self.sock.nlm_request(msg, msg_type=self.sock.prid, msg_flags=flags))
        except NetlinkError as err:
            raise _rejected(err) from None

    def _dump(self, attrs: list[list[Any]]) -> tuple[int, list[Any]]:
        """One whole GET_RULES dump: its generation and its rule nests.

        A dump that met a table swap is flagged NLM_F_DUMP_INTR, and carries
        more than one generation: it is read again, DUMP_TRIES times at most.
        """
        for _ in range(DUMP_TRIES):
            msgs = self._request(CMD_GET_RULES, attrs, NLM_F_REQUEST | NLM_F_DUMP)
            gens = {m.get_attr("PORTOWNERS_A_GENERATION") for m in msgs}
            interrupted = any(m["header"]["flags"] & NLM_F_DUMP_INTR for m in msgs)
            if len(gens) == 1 and not interrupted:
                return int(gens.pop()), [a for m in msgs for a in m.get_attrs("PORTOWNERS_A_RULE")]
        raise PortownersError(
            f"the port table kept changing while it was read ({DUMP_TRIES} tries): try again"
        )

    def _rules_dump(self) -> list[tuple[int, bytes]]:
        """One GET_RULES dump: each message's flags and bytes."""
        body = _GENLHDR.pack(CMD_GET_RULES, GENL_VERSION, 0)
        try:
            channel = self.channel()
        except OSError as err:
            raise PortownersError(f"cannot open a netlink socket: {err.strerror}") from None
        try:
            return channel.dump(body, self.sock.prid)
        except OSError as err:
            raise PortownersError(f"reading the table failed: {err.strerror}") from None
        except NetlinkError as err:
            raise _rejected(err) from None
        finally:
            channel.close()

    def table(self) -> tuple[int, list[Rule]]:
        """The live table and its generation, read whole from one table.

        As _dump(), on a plain socket decoded with struct (decode_rules_reply()).
        """
        for _ in range(DUMP_TRIES):
            msgs = self._rules_dump()
            gens: set[int | None] = set()
            rules: list[Rule] = []
            for _, msg in msgs:
                if msg:
                    generation, some = decode_rules_reply(msg)
                    gens.add(generation)
                    rules += some
            interrupted = any(flags & NLM_F_DUMP_INTR for flags, _ in msgs)
            if len(gens) == 1 and None not in gens and not interrupted:
                return int(gens.pop() or 0), sorted_rules(rules)
        raise PortownersError(
            f"the port table kept changing while it was read ({DUMP_TRIES} tries): try again"
        )

    def rule_stats(self) -> list[RuleStats]:
        """The live table with each rule's counters, in table order."""
        try:
            _, nests = self._dump([["PORTOWNERS_A_FLAGS", F_STATS]])
        except NotPermitted:
            # How often a user's daemon binds is the administrator's to know.
            raise NotPermitted("reading the rules' counters") from None
        except KernelRejected as e:
            if is_unknown_flag(e) or is_unknown_attribute(e):
                raise older_module(STATS_UNKNOWN) from None
            raise
        stats = [
            RuleStats(
                rule_from_nla(a),
                a.get_attr("PORTOWNERS_RULE_A_GRANTED") or 0,
                a.get_attr("PORTOWNERS_RULE_A_DENIED") or 0,
            )
            for a in nests
        ]
        return sorted(stats, key=lambda s: rule_key(s.rule))

    def rules(self) -> list[Rule]:
        return self.table()[1]

    def replace(self, rules: Sequence[Rule], expect_generation: int | None = None) -> None:
        """Replace the table; with expect_generation, only if it is still that one.

        A table changed meanwhile raises TableChanged, and nothing changes.
        """
        if len(rules) > MAX_RULES:
            raise PortownersError(f"{len(rules)} rules: a table holds at most {MAX_RULES}")
        family = self.sock.prid
        try:
            channel = self.channel()
        except OSError as err:
            raise PortownersError(f"cannot open a netlink socket: {err.strerror}") from None
        try:
            for start, body in replace_messages(rules, expect_generation):
                try:
                    channel.request(body, family)
                except OSError as err:  # not the kernel's answer: the socket failed
                    raise PortownersError(
                        f"sending the table to the kernel failed: {err.strerror}"
                    ) from None
                except NetlinkError as err:
                    e = _rejected(err)
                    if is_unknown_attribute(e):
                        if any(r.addr for r in rules[start : start + CHUNK]):
                            raise older_module(ADDRESS_RULES_UNKNOWN) from None
                        if start == 0 and expect_generation is not None:
                            raise older_module(
                                "cannot make a change conditional on the table read"
                            ) from None
                    raise e from None
        finally:
            channel.close()

    def channel(self) -> RawChannel:
        """The socket a REPLACE's chunks go out on (tests give a stub)."""
        return RawChannel()

    def _rules_request(self, cmd: int, rules: Sequence[Rule] | Sequence[PortRange]) -> None:
        try:
            self._request(cmd, [["PORTOWNERS_A_RULE", rule_attrs(r)] for r in rules])
        except KernelRejected as e:
            if is_unknown_attribute(e) and any(r.addr for r in rules):
                raise older_module(ADDRESS_RULES_UNKNOWN) from None
            raise

    def add(self, rules: Sequence[Rule]) -> None:
        self._rules_request(CMD_ADD_RULES, rules)

    def release(self, ranges: Sequence[PortRange]) -> None:
        """Release ports, scope-exact: ranges on an address from rules on that
        address only, ranges without one from rules on every address only."""
        self._rules_request(CMD_DEL_RULES, ranges)

    def flush(self) -> None:
        self._request(CMD_FLUSH, [])

    def status(self) -> Status:
        (msg,) = (m for m in self._request(CMD_GET_STATUS, []) if m.get("cmd") == CMD_GET_STATUS)
        return Status(
            version=msg.get_attr("PORTOWNERS_A_VERSION"),
            generation=msg.get_attr("PORTOWNERS_A_GENERATION"),
            rule_count=msg.get_attr("PORTOWNERS_A_RULE_COUNT"),
            granted=msg.get_attr("PORTOWNERS_A_GRANTED"),
            denied=msg.get_attr("PORTOWNERS_A_DENIED"),
            root_exempt=bool(msg.get_attr("PORTOWNERS_A_ROOT_EXEMPT")),
            events_dropped=msg.get_attr("PORTOWNERS_A_EVENTS_DROPPED"),
        )

    def check(
        self,
        uid: int,
        gid: int | None,
        groups: Sequence[int],
        proto: str,
        port: int,
        addr: str = "",
    ) -> CheckResult:
        """The kernel's verdict on a bind to addr (canonical text; 0.0.0.0 an
        IPv4 wildcard bind) and port; no addr: a wildcard bind on every address."""
        attrs: list[list[Any]] = [
            ["PORTOWNERS_A_UID", uid],
            ["PORTOWNERS_A_PROTO", PROTOCOLS[proto]],
            ["PORTOWNERS_A_PORT", port],
        ]
        if gid is not None:
            attrs.append(["PORTOWNERS_A_GID", gid])
        attrs += [["PORTOWNERS_A_GROUP", g] for g in groups]
        if addr:
            attrs.append(["PORTOWNERS_A_ADDR", address_bytes(addr)])
        try:
            replies = self._request(CMD_CHECK, attrs)
        except KernelRejected as e:
            if addr and is_unknown_attribute(e):
                raise older_module("cannot check a bind to one address") from None
            raise
        (msg,) = (m for m in replies if m.get("cmd") == CMD_CHECK)
        rule = msg.get_attr("PORTOWNERS_A_RULE")
        return CheckResult(
            verdict=VERDICTS[msg.get_attr("PORTOWNERS_A_VERDICT")],
            rule=rule_from_nla(rule) if rule is not None else None,
        )
