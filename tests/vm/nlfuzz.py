"""Netlink fuzzer for the portowners generic netlink family (issue 11, item 3).

Random and mutated messages, packed by hand with struct (pyroute2 sends no
malformed ones), on raw NETLINK_GENERIC sockets. Every reply is checked as it
comes back; the first broken rule stops the run with the seed, the phase and
the message's index, so that `--seed S --count N` replays it exactly (one
random stream per phase: the kernel's state depends on the messages before).

What is checked, for every datagram sent:

* each reply is an NLMSG_ERROR with an errno in -4095..0 (with extack TLVs
  well formed, an offset inside the request), an NLMSG_DONE, or a
  portowners message of a command that replies; it answers a message of
  that datagram (by sequence number);
* a message the kernel dispatches to the family (a request, of the family's
  type, with a whole nlmsghdr) is refused for the reasons genetlink gives:
  EINVAL for a truncated genlmsghdr, EOPNOTSUPP for an unknown command or
  a do/dump mismatch, EPERM for a change by a sender without CAP_NET_ADMIN
  over the namespace (never an ack of 0 for one);
* every refusal the module or its attribute policy makes carries an extack
  message (all but ENOMEM do), and a message given a defect the policy or
  the module must refuse (a wrong length, an unknown or reply-only
  attribute, a missing NLA_F_NESTED, a missing protocol, ...) is refused;
* the table's generation moves by exactly the number of changes acked (0
  for a refusal, 1 for a change), read after each datagram with a change
  in it; unprivileged, it never moves;
* at the end, a dump is one generation, its rules do not overlap, and
  GET_STATUS counts as many.

Modes: "root" (CAP_NET_ADMIN: changes go through), "user" (no capability:
every change refused), "userns" (run under `unshare -Urn`: root of a user
namespace, in its own network namespace). Standard library only, so any
python3 runs it, as any user:

    python3 tests/vm/nlfuzz.py --mode root --seed 1 --count 1000

prints one JSON line: counts per mutation class and outcome.
"""

from __future__ import annotations

import argparse
import errno
import itertools
import json
import os
import random
import re
import socket
import struct
import sys
import time
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

HEADER = Path(__file__).resolve().parents[2] / "kmod" / "uapi" / "portowners.h"


def uapi_constants(path: Path = HEADER) -> dict[str, int]:
    """The enumerators of the UAPI header, so that this file cannot drift from it."""
    text = re.sub(r"/\*.*?\*/", "", path.read_text(), flags=re.S)
    out: dict[str, int] = {}
    for body in re.findall(r"enum\s+\w+\s*\{(.*?)\};", text, flags=re.S):
        value = -1
        for item in body.split(","):
            item = item.strip()
            if not item:
                continue
            name, _, expr = item.partition("=")
            name = name.strip()
            value = eval(expr, {}, dict(out)) if expr.strip() else value + 1
            out[name] = value
    for name, expr in re.findall(r"#define\s+(PORTOWNERS_\w+)\s+\(?([0-9 *]+)\)?\s*$", text, re.M):
        out[name] = eval(expr)
    return out


C = uapi_constants()
CMD = {k[len("PORTOWNERS_CMD_") :]: v for k, v in C.items() if k.startswith("PORTOWNERS_CMD_")}
A = {k[len("PORTOWNERS_A_") :]: v for k, v in C.items() if k.startswith("PORTOWNERS_A_")}
RA = {k[len("PORTOWNERS_RULE_A_") :]: v for k, v in C.items() if k.startswith("PORTOWNERS_RULE_A_")}
F_MORE = C["PORTOWNERS_F_MORE"]

NETLINK_GENERIC = 16
SOL_NETLINK = 270
NETLINK_CAP_ACK, NETLINK_EXT_ACK = 10, 11
SO_RCVBUFFORCE = 33
NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, NLMSG_MIN_TYPE = 1, 2, 3, 16
NLM_F_REQUEST, NLM_F_MULTI, NLM_F_ACK, NLM_F_ECHO = 1, 2, 4, 8
NLM_F_DUMP = 0x300
NLM_F_CAPPED, NLM_F_ACK_TLVS = 0x100, 0x200
NLA_F_NESTED, NLA_F_NET_BYTEORDER = 0x8000, 0x4000
NLMSGERR_ATTR_MSG, NLMSGERR_ATTR_OFFS = 1, 2
GENL_ID_CTRL, CTRL_CMD_GETFAMILY = 16, 3
CTRL_ATTR_FAMILY_ID, CTRL_ATTR_FAMILY_NAME = 1, 2

ADMIN = {CMD["REPLACE"], CMD["ADD_RULES"], CMD["DEL_RULES"], CMD["FLUSH"]}
DOIT = ADMIN | {CMD["GET_STATUS"], CMD["CHECK"]}
DUMPIT = {CMD["GET_RULES"]}
REPLIES = {CMD["GET_RULES"], CMD["GET_STATUS"], CMD["CHECK"]}
# The family's resv_start_op (kmod/netlink.c): every command after CHECK,
# PORTOWNERS_CMD_EVENT (which is no request) included, is checked strictly.
RESV_START_OP = CMD["CHECK"] + 1
PROTOS = (6, 17, 132)
REPLY_ONLY = (
    "GENERATION",
    "RULE_COUNT",
    "GRANTED",
    "DENIED",
    "ROOT_EXEMPT",
    "VERSION",
    "VERDICT",
    "SEQ",
    "NETNS",
    "PID",
    "COMM",
    "EVENTS_DROPPED",
)
SIZES = {"u8": 1, "u16": 2, "u32": 4, "u64": 8}
TOP_KIND = {
    "FLAGS": "u32",
    "OFFSET": "u32",
    "UID": "u32",
    "GID": "u32",
    "GROUP": "u32",
    "PROTO": "u8",
    "PORT": "u16",
    "EXPECT_GENERATION": "u64",
}
RULE_KIND = {"PROTO": "u8", "PORT_LO": "u16", "PORT_HI": "u16", "UID": "u32", "GID": "u32"}
# Most a datagram may be: its refusal echoes it whole, and must fit the
# receive buffer an unprivileged user can have (2 * rmem_max, 425984).
MAX_DATAGRAM = 60000


# Rules on these meet each other: 127.0.0.1, 10.0.0.1, ::1, 2001:db8::1 and
# ::ffff:127.0.0.1 (which is 127.0.0.1).
ADDRESSES = [
    bytes([127, 0, 0, 1]),
    bytes([10, 0, 0, 1]),
    bytes(15) + b"\x01",
    bytes.fromhex("20010db8000000000000000000000001"),
    bytes(10) + b"\xff\xff" + bytes([127, 0, 0, 1]),
]


class FuzzFailure(AssertionError):
    pass


def align(n: int) -> int:
    return (n + 3) & ~3


def nla(kind: int, payload: bytes, flags: int = 0) -> bytes:
    return struct.pack("=HH", 4 + len(payload), kind | flags) + payload + bytes(-len(payload) % 4)


def pack(kind: str, value: int) -> bytes:
    return struct.pack({"u8": "=B", "u16": "=H", "u32": "=I", "u64": "=Q"}[kind], value)


def nlmsg(kind: int, flags: int, seq: int, payload: bytes, pid: int = 0) -> bytes:
    return struct.pack("=IHHII", 16 + len(payload), kind, flags, seq, pid) + payload


def parse_attrs(data: bytes, off: int, end: int) -> list[tuple[int, bytes]]:
    """Attributes of data[off:end], strictly: a broken one raises FuzzFailure."""
    out = []
    while off < end:
        if end - off < 4:
            raise FuzzFailure(f"{end - off} bytes left over after attributes")
        length, kind = struct.unpack_from("=HH", data, off)
        if length < 4 or off + length > end:
            raise FuzzFailure(f"attribute {kind:#x} of length {length} overruns its message")
        out.append((kind, data[off + 4 : off + length]))
        off += align(length)
    return out


def family_id(sock: socket.socket, name: str = "portowners") -> int:
    payload = struct.pack("=BBH", CTRL_CMD_GETFAMILY, 1, 0) + nla(
        CTRL_ATTR_FAMILY_NAME, name.encode() + b"\0"
    )
    sock.send(nlmsg(GENL_ID_CTRL, NLM_F_REQUEST, 1, payload))
    data = sock.recv(65536)
    length, kind = struct.unpack_from("=IH", data)
    if kind == NLMSG_ERROR:
        code = -struct.unpack_from("=i", data, 16)[0]
        raise OSError(code, f"generic netlink family {name}: {os.strerror(code)}")
    for akind, value in parse_attrs(data, 20, length):
        if akind == CTRL_ATTR_FAMILY_ID:
            return int(struct.unpack("=H", value[:2])[0])
    raise FuzzFailure("no family id in nlctrl's reply")


def open_socket(cap_ack: bool = False) -> socket.socket:
    s = socket.socket(socket.AF_NETLINK, socket.SOCK_RAW, NETLINK_GENERIC)
    s.bind((0, 0))
    s.setsockopt(SOL_NETLINK, NETLINK_EXT_ACK, 1)
    if cap_ack:
        s.setsockopt(SOL_NETLINK, NETLINK_CAP_ACK, 1)
    try:
        s.setsockopt(socket.SOL_SOCKET, SO_RCVBUFFORCE, 1 << 20)
    except PermissionError:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 1 << 20)
    return s


@dataclass
class Msg:
    """One netlink message of a datagram, and what the kernel must make of it."""

    data: bytes
    cls: str
    seq: int
    # The message carries a defect the policy or the module must refuse.
    must_refuse: bool = False


@dataclass
class Sent:
    """What the kernel's netlink_rcv_skb() makes of one message we sent."""

    msg: Msg
    kind: int  # nlmsg_type
    dispatched: bool  # reaches genetlink and the family
    flags: int
    cmd: int | None
    length: int
    reserved: int = 0  # genlmsghdr.reserved
    more: bool = False  # REPLACE: its last PORTOWNERS_A_FLAGS has F_MORE
    replies: list[tuple[int, int, bytes]] = field(default_factory=list)  # (type, flags, data)


@dataclass
class Stream:
    """A chunked REPLACE one socket is sending."""

    chunks: list[list[bytes]]
    next: int = 0
    sent_rules: int = 0
    expect: int | None = None


class Fuzzer:
    def __init__(self, mode: str, seed: int, count: int, offline_family: int = 0) -> None:
        """offline_family: make messages for that family id, open no socket."""
        self.mode = mode
        self.seed = seed
        self.count = count
        self.rng = random.Random(f"portowners-nlfuzz/{seed}/{mode}")
        self.privileged = mode in ("root", "userns")
        self.streams: dict[int, Stream] = {}
        self.seq = 1000
        self.index = 0
        self.stats: Counter[str] = Counter()
        self.acked_changes = 0
        self.socks: list[socket.socket] = []
        self.family = self.generation = 0
        if offline_family:
            self.family = offline_family
            return
        self.socks = [open_socket(), open_socket(cap_ack=True)]
        self.family = family_id(self.socks[0])
        self.generation = self.status()[0]
        self.start_generation = self.generation

    # -- building ----------------------------------------------------------

    def next_seq(self) -> int:
        self.seq += 1
        return self.seq

    def port(self) -> int:
        r = self.rng.random()
        if r < 0.7:
            return self.rng.randint(1, 300)
        if r < 0.95:
            return self.rng.randint(1, 65535)
        return self.rng.choice([1, 65535, 1023, 1024])

    def owner_attrs(self) -> list[bytes]:
        rng = self.rng
        ids = [0, 0, 1000, 1001, 65534, rng.randint(0, 2**32 - 1), 2**32 - 1]
        r = rng.random()
        if r < 0.2:
            return [nla(RA["ANY"], b"")]
        out = []
        if r < 0.75 or rng.random() < 0.5:
            out.append(nla(RA["UID"], pack("u32", rng.choice(ids))))
        if r >= 0.55:
            out.append(nla(RA["GID"], pack("u32", rng.choice(ids))))
        return out

    def rule_inner(self, owned: bool = True) -> list[bytes]:
        rng = self.rng
        proto = rng.choice(PROTOS) if rng.random() < 0.97 else rng.randint(0, 255)
        lo = self.port()
        hi = lo if rng.random() < 0.5 else min(65535, lo + rng.randint(0, 50))
        if rng.random() < 0.03:
            hi = max(1, lo - rng.randint(1, 10))  # backwards
        inner = [nla(RA["PROTO"], pack("u8", proto)), nla(RA["PORT_LO"], pack("u16", lo))]
        if hi != lo or rng.random() < 0.5:
            inner.append(nla(RA["PORT_HI"], pack("u16", hi)))
        if rng.random() < 0.25:
            inner.append(nla(RA["ADDR"], self.address()))
        if owned:
            inner += self.owner_attrs()
        rng.shuffle(inner)
        return inner

    def address(self) -> bytes:
        """Mostly a few addresses (so rules on one meet), some wrong ones:
        0.0.0.0, ::, ::ffff:0.0.0.0 and lengths other than 4 and 16."""
        rng = self.rng
        r = rng.random()
        if r < 0.6:
            return rng.choice(ADDRESSES)
        if r < 0.8:
            return rng.randbytes(rng.choice([4, 16]))
        if r < 0.9:
            return rng.choice([bytes(4), bytes(16), bytes(10) + b"\xff\xff" + bytes(4)])
        return rng.randbytes(rng.choice([0, 1, 3, 5, 8, 15, 17, 32]))

    def rule(self, owned: bool = True) -> bytes:
        return nla(A["RULE"], b"".join(self.rule_inner(owned)), NLA_F_NESTED)

    def clean_rules(self, n: int) -> list[bytes]:
        """n valid rules of uid 0 (mapped in any user namespace), none overlapping."""
        out = []
        for port in self.rng.sample(range(1, 2000), n):
            inner = [
                nla(RA["PROTO"], pack("u8", self.rng.choice(PROTOS))),
                nla(RA["PORT_LO"], pack("u16", port)),
                nla(RA["UID"], pack("u32", 0)),
            ]
            out.append(nla(A["RULE"], b"".join(inner), NLA_F_NESTED))
        return out

    def rules(self, owned: bool = True, most: int = 4) -> list[bytes]:
        r = self.rng.random()
        n = self.rng.randint(0, most) if r < 0.995 else self.rng.randint(50, 1200)
        return [self.rule(owned) for _ in range(n)]

    def top(self, name: str, value: int) -> bytes:
        return nla(A[name], pack(TOP_KIND[name], value))

    def base(self) -> tuple[int, list[bytes], int]:
        """A well-formed request: (cmd, attributes, nlmsg flags)."""
        rng = self.rng
        flags = NLM_F_REQUEST | (NLM_F_ACK if rng.random() < 0.9 else 0)
        cmd = rng.choice(
            [CMD["GET_RULES"]] * 2
            + [CMD["REPLACE"]] * 4
            + [CMD["ADD_RULES"]] * 3
            + [CMD["DEL_RULES"]] * 2
            + [CMD["FLUSH"]]
            + [CMD["GET_STATUS"]] * 2
            + [CMD["CHECK"]] * 2
        )
        attrs: list[bytes] = []
        if cmd == CMD["GET_RULES"]:
            flags |= NLM_F_DUMP
        elif cmd == CMD["REPLACE"]:
            if rng.random() < 0.5:
                attrs.append(self.top("OFFSET", 0 if rng.random() < 0.8 else rng.randint(1, 9)))
            if rng.random() < 0.3:
                attrs.append(self.top("FLAGS", F_MORE if rng.random() < 0.7 else 0))
            attrs += self.rules()
        elif cmd == CMD["ADD_RULES"]:
            attrs += self.rules()
        elif cmd == CMD["DEL_RULES"]:
            attrs += self.rules(owned=False)
        elif cmd == CMD["CHECK"]:
            attrs.append(self.top("UID", rng.choice([0, 1000, 1001, rng.randint(0, 2**32 - 1)])))
            attrs.append(self.top("PROTO", rng.choice(PROTOS)))
            attrs.append(self.top("PORT", self.port()))
            if rng.random() < 0.5:
                attrs.append(self.top("GID", rng.choice([0, 1000, 2000])))
            attrs += [self.top("GROUP", rng.randint(0, 3000)) for _ in range(rng.randint(0, 5))]
            if rng.random() < 0.4:
                attrs.append(nla(A["ADDR"], self.address()))
            rng.shuffle(attrs)
        if cmd in ADMIN and cmd != CMD["DEL_RULES"] and rng.random() < 0.15:
            expect = self.generation + rng.choice([0, 0, 0, -1, 1])
            attrs.append(self.top("EXPECT_GENERATION", max(0, expect)))
        return cmd, attrs, flags

    def genl(self, cmd: int, attrs: list[bytes], version: int = 2, reserved: int = 0) -> bytes:
        return struct.pack("=BBH", cmd, version, reserved) + b"".join(attrs)

    def must_refuse_defect(self, cmd: int, attrs: list[bytes]) -> tuple[str, list[bytes]]:
        """One defect that the attribute policy or the module must refuse."""
        rng = self.rng
        rules = [i for i, a in enumerate(attrs) if struct.unpack_from("=H", a, 2)[0] & 0x3FFF == 2]
        choices = ["unknown_attr", "unspec_attr", "pad_attr", "reply_only", "bad_length"]
        choices += ["nested_flag_on_scalar", "trailing_bytes", "flags_mask", "zero_port"]
        if cmd in (CMD["REPLACE"], CMD["ADD_RULES"], CMD["DEL_RULES"]):
            choices += ["rule_not_nested", "rule_unknown_inner", "rule_bad_inner_len"]
            choices += ["rule_missing_proto", "rule_missing_port", "rule_garbage", "rule_nested"]
            choices += ["rule_wrong_level", "rule_bad_proto", "rule_backwards", "rule_port_zero"]
            choices += ["rule_counters"]
            if cmd != CMD["DEL_RULES"]:
                choices += ["rule_no_owner", "rule_any_and_uid", "rule_uid_minus_one"]
            else:
                choices += ["del_with_owner"]
        if cmd == CMD["ADD_RULES"] or cmd == CMD["DEL_RULES"]:
            choices.append("no_rules")
        if cmd == CMD["CHECK"]:
            choices += ["check_missing", "check_bad_proto"]
        kind = rng.choice(choices)
        attrs = list(attrs)

        def rule_with(inner: list[bytes], flags: int = NLA_F_NESTED) -> bytes:
            return nla(A["RULE"], b"".join(inner), flags)

        if kind == "unknown_attr":
            junk = rng.randbytes(rng.choice([0, 4, 8]))
            attrs.append(nla(rng.randint(A["MAX"] + 1, 0x3FFF), junk))
        elif kind == "unspec_attr":
            attrs.append(nla(A["UNSPEC"], pack("u32", 0)))
        elif kind == "pad_attr":
            attrs.append(nla(A["PAD"], bytes(rng.choice([0, 4, 8]))))
        elif kind == "reply_only":
            name = rng.choice(REPLY_ONLY)
            attrs.append(nla(A[name], bytes(rng.choice([1, 4, 8]))))
        elif kind == "bad_length":
            name = rng.choice(list(TOP_KIND))
            size = SIZES[TOP_KIND[name]]
            bad = rng.choice([n for n in (0, 1, 2, 3, 4, 5, 8, 12, 16, 4096) if n != size])
            attrs.append(nla(A[name], bytes(bad)))
        elif kind == "nested_flag_on_scalar":
            name = rng.choice(list(TOP_KIND))
            attrs.append(nla(A[name], bytes(SIZES[TOP_KIND[name]]), NLA_F_NESTED))
        elif kind == "trailing_bytes":
            attrs.append(rng.randbytes(rng.randint(1, 3)))
        elif kind == "flags_mask":
            # Bits no command has (PORTOWNERS_F_STATS, 2, is GET_RULES's).
            attrs.append(self.top("FLAGS", rng.choice([4, 0x80000000, 0xFFFFFFFF])))
        elif kind == "zero_port":
            attrs.append(self.top("PORT", 0))
        elif kind == "no_rules":
            attrs = [a for i, a in enumerate(attrs) if i not in rules]
        elif kind == "check_missing":
            drop = rng.choice(["UID", "PROTO", "PORT"])
            attrs = [a for a in attrs if struct.unpack_from("=H", a, 2)[0] != A[drop]]
        elif kind == "check_bad_proto":
            attrs = [a for a in attrs if struct.unpack_from("=H", a, 2)[0] != A["PROTO"]]
            attrs.append(self.top("PROTO", rng.choice([0, 1, 41, 99, 136, 255])))
        else:  # one bad rule, among the others
            owned = cmd != CMD["DEL_RULES"]
            inner = self.rule_inner(owned)

            def without(name: str) -> list[bytes]:
                return [x for x in inner if struct.unpack_from("=H", x, 2)[0] != RA[name]]

            if kind == "rule_not_nested":
                bad = rule_with(inner, 0)
            elif kind == "rule_unknown_inner":
                bad = rule_with([*inner, nla(rng.randint(RA["MAX"] + 1, 0x3FFF), bytes(4))])
            elif kind == "rule_bad_inner_len":
                name = rng.choice(list(RULE_KIND))
                size = SIZES[RULE_KIND[name]]
                bad_size = rng.choice([n for n in (0, 1, 3, 4, 8, 100) if n != size])
                bad = rule_with([*without(name), nla(RA[name], bytes(bad_size))])
            elif kind == "rule_missing_proto":
                bad = rule_with(without("PROTO"))
            elif kind == "rule_missing_port":
                bad = rule_with(without("PORT_LO"))
            elif kind == "rule_garbage":
                # an inner "attribute" claiming more bytes than the nest has
                junk = rng.randbytes(rng.randint(0, 40))
                bad = nla(A["RULE"], struct.pack("=HH", 200 + len(junk), 1) + junk, NLA_F_NESTED)
            elif kind == "rule_nested":
                bad = rule_with([self.rule(owned)])  # type 2 inside is PORT_LO, a u16
            elif kind == "rule_wrong_level":
                bad = rule_with([*inner, self.top("EXPECT_GENERATION", 1)])  # 17 > RULE_A_MAX
            elif kind == "rule_bad_proto":
                proto = rng.choice([0, 1, 41, 99, 136, 255])
                bad = rule_with([*without("PROTO"), nla(RA["PROTO"], pack("u8", proto))])
            elif kind == "rule_backwards":
                lo = rng.randint(2, 65535)
                keep = [x for x in inner if attr_type(x) not in (RA["PORT_LO"], RA["PORT_HI"])]
                lo_attr = nla(RA["PORT_LO"], pack("u16", lo))
                bad = rule_with([*keep, lo_attr, nla(RA["PORT_HI"], pack("u16", lo - 1))])
            elif kind == "rule_port_zero":
                bad = rule_with([*without("PORT_LO"), nla(RA["PORT_LO"], pack("u16", 0))])
            elif kind == "rule_no_owner":
                bad = rule_with([x for x in inner if attr_type(x) not in owner_types()])
            elif kind == "rule_any_and_uid":
                keep = [x for x in inner if attr_type(x) not in owner_types()]
                bad = rule_with([*keep, nla(RA["ANY"], b""), nla(RA["UID"], pack("u32", 0))])
            elif kind == "rule_uid_minus_one":
                keep = [x for x in inner if attr_type(x) not in owner_types()]
                bad = rule_with([*keep, nla(RA["UID"], pack("u32", 2**32 - 1))])
            elif kind == "rule_counters":  # dump-only: a request may not set them
                name = rng.choice(["GRANTED", "DENIED"])
                bad = rule_with([*inner, nla(RA[name], pack("u64", rng.randint(0, 99)))])
            elif kind == "del_with_owner":
                bad = rule_with([*inner, nla(RA["UID"], pack("u32", 0))])
            else:
                raise AssertionError(kind)
            attrs.insert(rng.randint(0, len(attrs)), bad)
        if kind != "trailing_bytes":
            rng.shuffle(attrs)
        return kind, attrs

    def message(self) -> Msg:
        """One message: valid, with a defect to refuse, or mutated anyhow."""
        rng = self.rng
        cmd, attrs, flags = self.base()
        seq = self.next_seq()
        r = rng.random()
        if r < 0.25:
            return Msg(nlmsg(self.family, flags, seq, self.genl(cmd, attrs)), "valid", seq)
        if r < 0.55:
            kind, attrs = self.must_refuse_defect(cmd, attrs)
            data = nlmsg(self.family, flags, seq, self.genl(cmd, attrs))
            return Msg(data, f"defect:{kind}", seq, must_refuse=True)
        if r < 0.65:  # duplicated attributes, any order
            dup = attrs + [rng.choice(attrs)] * rng.randint(1, 3) if attrs else attrs
            dup.append(self.top("OFFSET", rng.choice([0, 0, 1, 2**32 - 1])))
            if rng.random() < 0.5:
                dup.append(self.top("FLAGS", rng.choice([0, F_MORE])))
            rng.shuffle(dup)
            return Msg(nlmsg(self.family, flags, seq, self.genl(cmd, dup)), "duplicated", seq)
        if r < 0.70:  # oversized: one huge attribute, or a rule stuffed with attributes
            if rng.random() < 0.5:
                # a scalar, or a rule without NLA_F_NESTED: the policy refuses it
                name = rng.choice([*TOP_KIND, "RULE"])
                big = nla(A[name], rng.randbytes(rng.randint(1000, 40000)))
                data = nlmsg(self.family, flags, seq, self.genl(cmd, [*attrs[:8], big]))
                return Msg(data, "oversized_attr", seq, must_refuse=True)
            inner = b"".join(self.rule_inner() * rng.randint(100, 2000))[:40000]
            big = nla(A["RULE"], inner, NLA_F_NESTED)
            data = nlmsg(self.family, flags, seq, self.genl(cmd, [*attrs[:8], big]))
            return Msg(data, "oversized_rule", seq)
        if r < 0.78:  # the genetlink header
            choice = rng.random()
            if choice < 0.4:
                bad_cmd = rng.choice([0, CMD["MAX"] + 1, rng.randint(CMD["MAX"] + 1, 255)])
                data = nlmsg(self.family, flags, seq, self.genl(bad_cmd, attrs))
                return Msg(data, "genl_bad_cmd", seq)
            if choice < 0.7:
                v, res = rng.randint(0, 255), rng.randint(0, 0xFFFF)
                data = nlmsg(self.family, flags, seq, self.genl(cmd, attrs, v, res))
                return Msg(data, "genl_version_reserved", seq)
            short = self.genl(cmd, attrs)[: rng.randint(0, 3)]
            return Msg(nlmsg(self.family, flags, seq, short), "genl_truncated", seq)
        if r < 0.86:  # the netlink header's flags and type
            payload = self.genl(cmd, attrs)
            choice = rng.random()
            if choice < 0.5:
                bad_flags = rng.randint(0, 0xFFFF) if rng.random() < 0.5 else flags ^ NLM_F_DUMP
                return Msg(nlmsg(self.family, bad_flags, seq, payload), "nlmsg_flags", seq)
            if choice < 0.8:
                kind = rng.choice([0, NLMSG_NOOP, NLMSG_ERROR, NLMSG_DONE, 4, 15])
                return Msg(nlmsg(kind, flags, seq, payload), "nlmsg_control_type", seq)
            return Msg(nlmsg(0xFFF0, flags, seq, payload), "nlmsg_no_family", seq)
        if r < 0.93:  # random bytes over the genetlink header and the attributes
            data = bytearray(nlmsg(self.family, flags, seq, self.genl(cmd, attrs)))
            for _ in range(rng.randint(1, 8)):
                if len(data) > 16:
                    at = rng.randrange(16, len(data))
                    data[at] = (
                        rng.randrange(256)
                        if rng.random() < 0.5
                        else data[at] ^ (1 << rng.randrange(8))
                    )
            return Msg(bytes(data), "byte_flips", seq)
        # garbage attributes, right headers
        junk = rng.randbytes(rng.randint(0, 200))
        return Msg(nlmsg(self.family, flags, seq, self.genl(cmd, [junk])), "garbage_attrs", seq)

    def datagram(self) -> tuple[list[Msg], bytes, str]:
        """Messages and the bytes sent; the last may be cut short."""
        rng = self.rng
        r = rng.random()
        msgs = [self.message()]
        if r >= 0.85:
            msgs += [self.message() for _ in range(rng.randint(1, 3))]
            while len(msgs) > 1 and sum(align(len(m.data)) for m in msgs) > MAX_DATAGRAM:
                msgs.pop()
        data = b"".join(m.data + bytes(-len(m.data) % 4) for m in msgs)
        how = "whole"
        r = rng.random()
        if r < 0.04:  # the datagram cut short: the kernel drops the message cut
            data = data[: rng.randrange(0, len(data))]
            how = "cut"
        elif r < 0.08:  # nlmsg_len lies about the last message
            last = len(data) - align(len(msgs[-1].data))
            bad = rng.choice([0, 1, 15, 16, 17, len(data) - last + rng.randint(1, 100), 2**32 - 1])
            data = data[:last] + struct.pack("=I", bad) + data[last + 4 :]
            if 16 <= bad <= len(data) - last:
                # shorter but whole: the bytes after it must be no message
                data = data[: last + align(bad)]
            how = "bad_nlmsg_len"
        return msgs, data, how

    # -- the chunked REPLACE streams ---------------------------------------

    def stream_datagram(self, which: int) -> tuple[list[Msg], bytes, str]:
        rng = self.rng
        st = self.streams.get(which)
        if st is None or st.next >= len(st.chunks) or rng.random() < 0.05:
            n = rng.randint(2, 5)
            if rng.random() < 0.7:
                # a table the kernel takes: its swap is what the stream is for
                clean = self.clean_rules(n * 6)
                chunks = [[clean.pop() for _ in range(rng.randint(0, 6))] for _ in range(n)]
            else:
                chunks = [[self.rule() for _ in range(rng.randint(0, 6))] for _ in range(n)]
            st = Stream(chunks)
            if rng.random() < 0.3:
                st.expect = self.generation
            self.streams[which] = st
        i = st.next
        offset = sum(len(c) for c in st.chunks[:i])
        how = "in_order"
        r = rng.random()
        if r < 0.1 and len(st.chunks) > 1:
            i = rng.randrange(len(st.chunks))  # out of order
            offset = sum(len(c) for c in st.chunks[:i])
            how = "out_of_order"
        elif r < 0.15:
            offset += rng.choice([-1, 1, 2**31, 2**32 - 1]) if offset else rng.randint(1, 5)
            offset %= 2**32
            how = "bad_offset"
        attrs = [self.top("OFFSET", offset)]
        if i < len(st.chunks) - 1:
            attrs.append(self.top("FLAGS", F_MORE))
        if st.expect is not None and i == 0:
            attrs.append(self.top("EXPECT_GENERATION", st.expect))
        attrs += st.chunks[i]
        st.next = i + 1
        seq = self.next_seq()
        data = nlmsg(self.family, NLM_F_REQUEST | NLM_F_ACK, seq, self.genl(CMD["REPLACE"], attrs))
        return [Msg(data, f"chunk:{how}", seq)], data, "whole"

    # -- sending and checking ----------------------------------------------

    def fail(self, what: str, data: bytes = b"", extra: object = None) -> None:
        detail = (
            f"nlfuzz {self.mode}: message {self.index} (seed {self.seed}, count {self.count}): "
            f"{what}"
        )
        if data:
            detail += f"\n  sent {len(data)} bytes: {data[:256].hex()}"
        if extra is not None:
            detail += f"\n  {extra}"
        raise FuzzFailure(detail)

    def kernel_view(self, msgs: list[Msg], data: bytes) -> list[Sent]:
        """Split the datagram as netlink_rcv_skb() does."""
        by_seq = {m.seq: m for m in msgs}
        out = []
        off = 0
        while len(data) - off >= 16:
            length, kind, flags, seq = struct.unpack_from("=IHHI", data, off)
            if length < 16 or length > len(data) - off:
                break
            msg = by_seq.get(seq)
            if msg is None:
                self.fail(f"a message with seq {seq} this datagram did not make", data)
            assert msg is not None
            dispatched = bool(flags & NLM_F_REQUEST) and kind == self.family
            cmd = data[off + 16] if length >= 17 else None
            sent = Sent(msg, kind, dispatched, flags, cmd, length)
            if length >= 20:
                sent.reserved = struct.unpack_from("=H", data, off + 18)[0]
            if cmd == CMD["REPLACE"] and length >= 20:
                try:
                    for akind, value in parse_attrs(data, off + 20, off + length):
                        if akind & 0x3FFF == A["FLAGS"] and len(value) == 4:
                            sent.more = bool(struct.unpack("=I", value)[0] & F_MORE)
                except FuzzFailure:
                    pass  # the kernel refuses it: no ack of 0 to count
            out.append(sent)
            off += align(length)
        return out

    def receive(self, sock: socket.socket, sent: list[Sent], data: bytes) -> None:
        by_seq = {s.msg.seq: s for s in sent}
        while True:
            try:
                chunk = sock.recv(1 << 20, socket.MSG_DONTWAIT)
            except BlockingIOError:
                return
            off = 0
            while off < len(chunk):
                if len(chunk) - off < 16:
                    self.fail("a reply shorter than a netlink header", data, chunk.hex())
                length, kind, flags, seq = struct.unpack_from("=IHHI", chunk, off)
                if length < 16 or off + length > len(chunk):
                    self.fail(f"a reply of nlmsg_len {length}", data, chunk.hex())
                s = by_seq.get(seq)
                if s is None:
                    self.fail(f"a reply (type {kind}) to seq {seq}, not sent", data)
                assert s is not None
                s.replies.append((kind, flags, chunk[off : off + length]))
                off += align(length)

    def check_reply(self, s: Sent, data: bytes) -> tuple[int | None, str | None, bool]:
        """Check s's replies: (errno or None, extack message, done seen)."""
        error: int | None = None
        message: str | None = None
        done = False
        for kind, flags, reply in s.replies:
            if kind == NLMSG_ERROR:
                if len(reply) < 36:
                    self.fail("an NLMSG_ERROR too short for its header", data, reply.hex())
                (code,) = struct.unpack_from("=i", reply, 16)
                if not -4095 <= code <= 0:
                    self.fail(f"NLMSG_ERROR with error {code}", data, reply.hex())
                if error is not None and (error or code):
                    self.fail("two NLMSG_ERRORs for one message", data, s.replies)
                error = -code
                orig_len = struct.unpack_from("=I", reply, 20)[0]
                echoed = 16 if (flags & NLM_F_CAPPED or code == 0) else orig_len
                if code and not flags & NLM_F_CAPPED and orig_len != s.length:
                    self.fail("the refusal echoes another length", data, reply.hex())
                if flags & NLM_F_ACK_TLVS:
                    for akind, value in parse_attrs(reply, align(20 + echoed), len(reply)):
                        if akind == NLMSGERR_ATTR_MSG:
                            if not value.endswith(b"\0"):
                                self.fail("extack message not NUL-terminated", data, value)
                            message = value[:-1].decode()
                        elif akind == NLMSGERR_ATTR_OFFS:
                            (where,) = struct.unpack("=I", value)
                            if not 16 <= where < s.length:
                                self.fail(f"extack offset {where} outside the request", data)
            elif kind == NLMSG_DONE:
                if len(reply) < 20 or struct.unpack_from("=i", reply, 16)[0] > 0:
                    self.fail("a bad NLMSG_DONE", data, reply.hex())
                done = True
            elif kind == self.family:
                if len(reply) < 20:
                    self.fail("a portowners reply with no genetlink header", data, reply.hex())
                if reply[16] not in REPLIES or reply[16] != s.cmd:
                    self.fail(f"a reply of command {reply[16]} to command {s.cmd}", data)
                parse_attrs(reply, 20, len(reply))
            else:
                self.fail(f"a reply of type {kind}", data, reply.hex())
        return error, message, done

    def judge(self, s: Sent, data: bytes) -> int:
        """Check what the kernel said of one message; 1 if it changed the table."""
        error, message, done = self.check_reply(s, data)
        m = s.msg
        cls = m.cls
        if not s.flags & NLM_F_REQUEST or s.kind < NLMSG_MIN_TYPE:
            # netlink_rcv_skb() handles requests only, and skips control messages
            if error:
                self.fail(f"{cls}: a message the kernel skips refused: {error}", data)
            self.stats[f"{cls}: skipped"] += 1
            return 0
        if not s.dispatched:
            if error != errno.ENOENT:
                self.fail(f"{cls}: a request of type {s.kind} answered {error}", data)
            self.stats[f"{cls}: ENOENT"] += 1
            return 0
        taken = done or any(kind == self.family for kind, _, _ in s.replies)
        dump = (s.flags & NLM_F_DUMP) == NLM_F_DUMP
        outcome = "ok" if not error else errno.errorcode.get(error, str(error))
        if error and message:
            outcome += "+extack"
        self.stats[f"{cls}: {outcome}"] += 1
        if s.length < 20:
            if error != errno.EINVAL:
                self.fail(f"{cls}: truncated genlmsghdr answered {outcome}, not EINVAL", data)
            return 0
        assert s.cmd is not None
        if s.cmd >= RESV_START_OP:
            # Commands from the family's resv_start_op on are checked
            # strictly (genl_header_check()): the reserved field and the
            # nlmsg flags, then "no such command".
            loose = s.flags & ~NLM_F_DUMP if dump else s.flags
            if s.reserved or loose & ~(NLM_F_REQUEST | NLM_F_ACK | NLM_F_ECHO):
                if error != errno.EINVAL or not message:
                    self.fail(f"{cls}: cmd {s.cmd}, reserved header bits, answered {outcome}", data)
            elif error != errno.EOPNOTSUPP:
                self.fail(f"{cls}: cmd {s.cmd} answered {outcome}, not EOPNOTSUPP", data)
            return 0
        valid_cmd = (s.cmd in DUMPIT) if dump else (s.cmd in DOIT)
        if not valid_cmd:
            allowed = {errno.EOPNOTSUPP}
            if s.cmd in ADMIN and not self.privileged:
                allowed.add(errno.EPERM)  # 6.1 checks permission first
            if error not in allowed:
                self.fail(f"{cls}: cmd {s.cmd} dump={dump} answered {outcome}", data)
            return 0
        if s.cmd in ADMIN and not self.privileged:
            if error != errno.EPERM:
                self.fail(f"{cls}: unprivileged cmd {s.cmd} answered {outcome}, not EPERM", data)
            return 0
        # A second dump on a socket whose first is still running: netlink's
        # own EBUSY, before the family sees it.
        core = errno.ENOMEM, errno.EBUSY if dump else errno.ENOMEM
        if error and error not in core and not message:
            self.fail(f"{cls}: cmd {s.cmd} refused ({outcome}) without an extack message", data)
        if m.must_refuse and not error and (error is not None or taken):
            self.fail(f"{cls}: cmd {s.cmd} taken, but has a defect to refuse", data)
        if dump and not error and not done:
            self.fail(f"{cls}: a dump with no NLMSG_DONE", data)
        if s.cmd in ADMIN and error == 0:
            if s.cmd == CMD["REPLACE"] and s.more:
                return 0
            if cls.startswith("chunk:"):
                self.stats["chunked replace swapped in"] += 1
            return 1
        return 0

    def send(self, sock: socket.socket, msgs: list[Msg], data: bytes, how: str) -> None:
        sent = self.kernel_view(msgs, data)
        try:
            sock.send(data)
        except OSError as e:
            if data or e.errno != errno.ENODATA:  # netlink takes no empty datagram
                self.fail(f"send failed: {e}", data)
        else:
            if not data:
                self.fail("an empty datagram taken")
        self.receive(sock, sent, data)
        changes = unknown = 0
        admin_sent = False
        for s in sent:
            changes += self.judge(s, data)
            if s.dispatched and s.cmd in ADMIN:
                admin_sent = True
                if not s.replies and not s.flags & NLM_F_ACK:
                    unknown += 1  # taken or refused: no ack asked for
        self.stats[f"datagram: {how}"] += 1
        self.acked_changes += changes
        if admin_sent and (self.privileged or self.index % 64 == 0):
            generation = self.status()[0]
            moved = generation - self.generation
            if not self.privileged:
                unknown = 0
            if not changes <= moved <= changes + unknown:
                self.fail(
                    f"generation moved by {moved}, but {changes} changes were acked "
                    f"({unknown} unacked)",
                    data,
                )
            self.generation = generation

    def status(self) -> tuple[int, int]:
        """(generation, rule count), from GET_STATUS."""
        sock = self.socks[0]
        seq = self.next_seq()
        sock.send(nlmsg(self.family, NLM_F_REQUEST, seq, self.genl(CMD["GET_STATUS"], [])))
        data = sock.recv(65536)
        length, kind, _, rseq = struct.unpack_from("=IHHI", data)
        if kind != self.family or rseq != seq:
            raise FuzzFailure(f"GET_STATUS answered with type {kind}, seq {rseq}: {data.hex()}")
        values = {k: v for k, v in parse_attrs(data, 20, length)}
        generation = struct.unpack("=Q", values[A["GENERATION"]])[0]
        count = struct.unpack("=I", values[A["RULE_COUNT"]])[0]
        return generation, count

    def dump(self) -> tuple[set[int], list[tuple[int, bytes, int, int]]]:
        sock = self.socks[0]
        seq = self.next_seq()
        sock.send(
            nlmsg(self.family, NLM_F_REQUEST | NLM_F_DUMP, seq, self.genl(CMD["GET_RULES"], []))
        )
        gens: set[int] = set()
        rules: list[tuple[int, bytes, int, int]] = []
        while True:
            data = sock.recv(1 << 20)
            off = 0
            while off < len(data):
                length, kind = struct.unpack_from("=IH", data, off)
                if kind == NLMSG_DONE:
                    return gens, rules
                if kind != self.family:
                    raise FuzzFailure(f"the final dump got a message of type {kind}")
                for akind, value in parse_attrs(data, off + 20, off + length):
                    if akind == A["GENERATION"]:
                        gens.add(struct.unpack("=Q", value)[0])
                    elif akind & 0x3FFF == A["RULE"]:
                        inner = dict(parse_attrs(value, 0, len(value)))
                        rules.append(
                            (
                                inner[RA["PROTO"]][0],
                                inner.get(RA["ADDR"], b""),
                                struct.unpack("=H", inner[RA["PORT_LO"]])[0],
                                struct.unpack("=H", inner[RA["PORT_HI"]])[0],
                            )
                        )
                off += align(length)

    def next_datagram(self) -> tuple[int, tuple[list[Msg], bytes, str]]:
        """The socket (0 or 1) and the datagram to send on it next."""
        r = self.rng.random()
        which = self.rng.randrange(2)
        if r < 0.2:
            return which, self.stream_datagram(which)
        return which, self.datagram()

    def run(self) -> dict[str, object]:
        started = time.monotonic()
        rng = self.rng
        for index in range(self.count):
            self.index = index
            which, (msgs, data, how) = self.next_datagram()
            self.send(self.socks[which], msgs, data, how)
            if rng.random() < 0.002:
                # a socket closed mid-stream: the kernel drops its stage
                self.socks[which].close()
                self.socks[which] = open_socket(cap_ack=which == 1)
                self.streams.pop(which, None)
                self.stats["socket reopened"] += 1
        gens, rules = self.dump()
        generation, count = self.status()
        if gens != {generation}:
            raise FuzzFailure(f"final dump generations {gens}, status says {generation}")
        if len(rules) != count:
            raise FuzzFailure(f"final dump has {len(rules)} rules, status says {count}")
        for proto, addr in {(p, a) for p, a, _, _ in rules}:
            if len(addr) not in (0, 4, 16) or addr in (bytes(4), bytes(16)):
                raise FuzzFailure(f"the table has a rule on address {addr.hex()}")
            spans = sorted((lo, hi) for p, a, lo, hi in rules if (p, a) == (proto, addr))
            for (_, hi), (lo, _) in itertools.pairwise(spans):
                if lo <= hi:
                    raise FuzzFailure(
                        f"the table has overlapping rules for {proto} on {addr.hex()}: {spans}"
                    )
        return {
            "mode": self.mode,
            "seed": self.seed,
            "count": self.count,
            "seconds": round(time.monotonic() - started, 1),
            "generation": [self.start_generation, generation],
            "acked_changes": self.acked_changes,
            "rules": count,
            "stats": dict(sorted(self.stats.items())),
        }


def attr_type(a: bytes) -> int:
    return int(struct.unpack_from("=H", a, 2)[0]) & 0x3FFF


def owner_types() -> set[int]:
    return {RA["UID"], RA["GID"], RA["ANY"]}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--mode", choices=["root", "user", "userns"], required=True)
    p.add_argument("--seed", type=int, required=True)
    p.add_argument("--count", type=int, required=True)
    args = p.parse_args()
    try:
        result = Fuzzer(args.mode, args.seed, args.count).run()
    except FuzzFailure as e:
        print(json.dumps({"mode": args.mode, "seed": args.seed, "failure": str(e)}))
        return 1
    print(json.dumps(result))
    return 0


if __name__ == "__main__":
    sys.exit(main())
