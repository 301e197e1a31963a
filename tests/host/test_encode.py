"""REPLACE's hand-packed rules are byte for byte what pyroute2 encodes.

portctl.netlink packs a REPLACE chunk with struct (replace_messages,
encode_rules) and sends it on a plain socket (RawChannel): pyroute2 costs
about 150 us a rule. The reference here is the way every other message is built:
pyroute2's nla classes (pomsg, rulemsg) given rule_attrs(). Every field of a
rule has a value of its own, so a field swapped, moved or mis-sized changes
the bytes.
"""

from __future__ import annotations

import errno
import importlib.util
import itertools
import os
import struct
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest
from pyroute2.netlink import NLM_F_ACK, NLM_F_REQUEST
from pyroute2.netlink.exceptions import NetlinkError

from portctl import netlink
from portctl.model import Rule
from portctl.netlink import CHUNK

ROOT = Path(__file__).resolve().parents[2]
FAMILY = 0x1D  # any generic netlink family id
NLMSG_HDR = 16
GENL_HDR = 4


def pyroute2_message(attrs: list[list[Any]], seq: int = 1) -> bytes:
    """What pyroute2 alone makes of a portowners message (header fixed)."""
    msg = netlink.pomsg()
    msg["cmd"] = netlink.CMD_REPLACE
    msg["version"] = netlink.GENL_VERSION
    msg["attrs"] = attrs
    return encoded(msg, seq)


def encoded(msg: Any, seq: int = 1) -> bytes:
    """msg encoded as pyroute2's nlm_request encodes it."""
    msg["header"]["type"] = FAMILY
    msg["header"]["flags"] = NLM_F_REQUEST | NLM_F_ACK
    msg["header"]["sequence_number"] = seq
    msg["header"]["pid"] = 0
    msg.reset()
    msg.encode()
    return bytes(msg.data)


def pyroute2_rules(rules: Sequence[Rule]) -> bytes:
    """The PORTOWNERS_A_RULE nests pyroute2 encodes for rules."""
    data = pyroute2_message([["PORTOWNERS_A_RULE", netlink.rule_attrs(r)] for r in rules])
    return data[NLMSG_HDR + GENL_HDR :]


def pyroute2_replace(rules: Sequence[Rule], expect_generation: int | None) -> list[bytes]:
    """Client.replace's messages as it built them before the rules were
    packed by hand: everything through pyroute2."""
    out = []
    size = netlink.CHUNK  # read at the call: some tests make it small
    for start in range(0, max(len(rules), 1), size):
        attrs: list[list[Any]] = [["PORTOWNERS_A_OFFSET", start]]
        if start + size < len(rules):
            attrs.append(["PORTOWNERS_A_FLAGS", netlink.F_MORE])
        if start == 0 and expect_generation is not None:
            attrs.append(["PORTOWNERS_A_EXPECT_GENERATION", expect_generation])
        chunk = rules[start : start + size]
        attrs += [["PORTOWNERS_A_RULE", netlink.rule_attrs(r)] for r in chunk]
        out.append(pyroute2_message(attrs, seq=len(out) + 1))
    return out


def fast_replace(rules: Sequence[Rule], expect_generation: int | None) -> list[bytes]:
    return [
        netlink.frame(body, FAMILY, seq)
        for seq, (_start, body) in enumerate(netlink.replace_messages(rules, expect_generation), 1)
    ]


# One rule per kind of field: every value differs from every other, and from
# its own byte-swapped and neighbouring fields.
SINGLE = {
    "uid": Rule("tcp", 8080, 8080, uid=1000),
    "gid": Rule("udp", 53, 53, gid=0x0102_0304),
    "uid and gid": Rule("sctp", 9899, 9900, uid=0x7FFF_FFFE, gid=33),
    "any owner": Rule("tcp", 631, 631, any_user=True),
    "range": Rule("udp", 8000, 8099, uid=42),
    "uid 0": Rule("tcp", 22, 22, uid=0),
    "gid 0": Rule("udp", 123, 124, gid=0),
    "port 1": Rule("tcp", 1, 1, uid=7),
    "port 65535": Rule("sctp", 65535, 65535, gid=8),
    "every port": Rule("udp", 1, 65535, any_user=True),
    "lo 0x0102": Rule("tcp", 0x0102, 0x0201, uid=0x0A0B_0C0D, gid=0x0D0C_0B0A),
    "largest ids": Rule("sctp", 1000, 2000, uid=0xFFFF_FFFF, gid=0xFFFF_FFFE),
    "ipv4 address": Rule("tcp", 53, 53, uid=1001, addr="192.0.2.10"),
    "ipv6 address": Rule("udp", 5353, 5354, gid=0x0506_0708, addr="2001:db8::a0b:c0d"),
    "any user on an address": Rule("sctp", 9, 9, any_user=True, addr="::1"),
    "both on an address": Rule("tcp", 0x0304, 0x0403, uid=3, gid=4, addr="10.11.12.13"),
}


@pytest.mark.parametrize("rule", SINGLE.values(), ids=SINGLE.keys())
def test_one_rule_is_what_pyroute2_encodes(rule: Rule) -> None:
    assert netlink.encode_rules([rule]) == pyroute2_rules([rule])


def test_rules_of_every_kind_back_to_back_and_the_owner_cache() -> None:
    rules = list(SINGLE.values())
    # The same owners again, other ports: served from the cache of ends.
    again = [r._replace(lo=3000 + i, hi=3000 + 2 * i) for i, r in enumerate(rules)]
    ends: netlink.RuleEnds = {}
    assert netlink.encode_rules(rules, ends) == pyroute2_rules(rules)
    assert netlink.encode_rules(again, ends) == pyroute2_rules(again)
    assert netlink.encode_rules(rules + again) == pyroute2_rules(rules + again)


def test_no_rules_no_bytes() -> None:
    assert netlink.encode_rules([]) == pyroute2_rules([]) == b""


def test_packed_rules_decode_back_to_the_rules() -> None:
    """Read by pyroute2's parser, as the kernel's dump would be."""
    rules = list(SINGLE.values())
    head = pyroute2_message([])
    body = netlink.encode_rules(rules)
    data = bytearray(head + body)
    struct.pack_into("=I", data, 0, len(data))
    msg = netlink.pomsg(data)
    msg.decode()
    assert [netlink.rule_from_nla(a) for a in msg.get_attrs("PORTOWNERS_A_RULE")] == rules


def test_the_layout_by_hand() -> None:
    """One nest spelled out, so a change pyroute2 might make shows too."""
    got = netlink.encode_rules([Rule("udp", 0x0102, 0x0304, uid=0x0A0B0C0D, gid=0x11121314)])
    want = struct.pack(
        "=HH" "HHB3x" "HHH2x" "HHH2x" "HHI" "HHI",
        44, 0x8000 | 2,  # nest PORTOWNERS_A_RULE, NLA_F_NESTED
        5, 1, 17,  # PROTO, u8
        6, 2, 0x0102,  # PORT_LO, u16
        6, 3, 0x0304,  # PORT_HI, u16
        8, 4, 0x0A0B0C0D,  # UID, u32
        8, 5, 0x11121314,  # GID, u32
    )  # fmt: skip
    assert got == want
    any_user = netlink.encode_rules([Rule("tcp", 80, 80, any_user=True)])
    assert any_user[-4:] == struct.pack("=HH", 4, 6)  # ANY: a flag, no payload
    assert struct.unpack_from("=H", any_user)[0] == len(any_user) == 32


def test_the_address_by_hand() -> None:
    """ADDR is the last attribute of the nest: 4 or 16 bytes, network order."""
    v4 = netlink.encode_rules([Rule("tcp", 53, 53, uid=7, addr="192.0.2.10")])
    assert len(v4) == struct.unpack_from("=H", v4)[0] == 28 + 8 + 8
    assert v4[-8:] == struct.pack("=HH", 8, 7) + bytes([192, 0, 2, 10])
    v6 = netlink.encode_rules([Rule("tcp", 53, 53, uid=7, addr="2001:db8::1")])
    assert len(v6) == struct.unpack_from("=H", v6)[0] == 28 + 8 + 20
    assert v6[-20:] == struct.pack("=HH", 20, 7) + bytes.fromhex("20010db8" + "00" * 11 + "01")


def decoded_rules(body: bytes | bytearray) -> list[Rule]:
    """The rules pyroute2's parser reads from rule nests, as from a dump."""
    data = bytearray(pyroute2_message([]) + body)
    struct.pack_into("=I", data, 0, len(data))
    msg = netlink.pomsg(data)
    msg.decode()
    return [netlink.rule_from_nla(a) for a in msg.get_attrs("PORTOWNERS_A_RULE")]


def test_a_v4_mapped_address_from_the_kernel_is_its_ipv4_address() -> None:
    """The kernel dumps an IPv4 address as 4 bytes; 16 bytes of ::ffff:a.b.c.d
    read as a.b.c.d all the same."""
    mapped = pyroute2_rules([Rule("udp", 53, 53, uid=1, addr="::ffff:127.0.0.1")])
    assert decoded_rules(mapped) == [Rule("udp", 53, 53, uid=1, addr="127.0.0.1")]


def test_address_rules_break_a_run_and_nothing_else() -> None:
    """One template per owner and address: rules of one owner on every address,
    then on an address, then on every address again, each its own run."""
    wide = [Rule("tcp", p, p, uid=5) for p in range(1, 400)]
    on = [r._replace(addr="127.0.0.1") for r in wide[:200]]
    v6 = [r._replace(addr="::1", hi=r.hi + 1000) for r in wide[:100]]
    rules = wide[:100] + on + wide[100:] + v6
    ends: netlink.RuleEnds = {}
    assert netlink.encode_rules(rules, ends) == pyroute2_rules(rules)
    assert sorted(key[4] for key in ends) == ["", "127.0.0.1", "::1"]
    assert decoded_rules(netlink.encode_rules(rules)) == rules


def table(n: int) -> list[Rule]:
    """n rules cycling through protocols, owner kinds and port shapes."""
    owners: list[dict[str, Any]] = [
        {"uid": 1000},
        {"gid": 100},
        {"uid": 0, "gid": 4},
        {"any_user": True},
        {"uid": 65534},
    ]
    protos = itertools.cycle(["tcp", "udp", "sctp", "udp"])
    kinds = itertools.cycle(owners)
    # Mostly rules on every address, some on an IPv4 or an IPv6 address.
    addrs = itertools.cycle(["", "", "127.0.0.1", "", "", "", "2001:db8::1"])
    rules = []
    for i in range(n):
        lo = 1 + (i * 7919) % 65535
        hi = min(65535, lo + i % 3)
        rules.append(Rule(next(protos), lo, hi, addr=next(addrs), **next(kinds)))
    return rules


@pytest.mark.parametrize("n", [0, 1, CHUNK - 1, CHUNK, CHUNK + 1])
def test_replace_messages_are_what_pyroute2_built(n: int) -> None:
    rules = table(n)
    assert fast_replace(rules, None) == pyroute2_replace(rules, None)


@pytest.fixture
def small_chunks(monkeypatch: pytest.MonkeyPatch) -> int:
    """Chunks of 3 rules: many chunks, and their boundaries, for little
    pyroute2 time (about 0.15 ms a rule)."""
    monkeypatch.setattr(netlink, "CHUNK", 3)
    return 3


@pytest.mark.parametrize("gen", [None, 0xFFFF_FFFF_FFFF_FFFF])
def test_many_chunks_are_what_pyroute2_built(small_chunks: int, gen: int | None) -> None:
    for n in range(4 * small_chunks + 2):
        rules = table(n)
        assert fast_replace(rules, gen) == pyroute2_replace(rules, gen), n


@pytest.mark.parametrize("n", [0, 1, CHUNK, CHUNK + 1])
def test_replace_messages_with_expect_generation(n: int) -> None:
    rules = table(n)
    gen = 0x0102_0304_0506_0708
    fast = fast_replace(rules, gen)
    assert fast == pyroute2_replace(rules, gen)
    assert fast != fast_replace(rules, None)


def test_chunks_offsets_flags_and_generation(small_chunks: int) -> None:
    """What each chunk says, read back by pyroute2's parser."""
    chunk = small_chunks
    rules = table(2 * chunk + 1)
    seen = []
    for data in fast_replace(rules, 77):
        msg = netlink.pomsg(bytearray(data))
        msg.decode()
        seen.append(
            (
                msg.get_attr("PORTOWNERS_A_OFFSET"),
                msg.get_attr("PORTOWNERS_A_FLAGS"),
                msg.get_attr("PORTOWNERS_A_EXPECT_GENERATION"),
                [netlink.rule_from_nla(a) for a in msg.get_attrs("PORTOWNERS_A_RULE")],
                msg["header"]["length"] == len(data),
            )
        )
    assert seen == [
        (0, netlink.F_MORE, 77, rules[:chunk], True),
        (chunk, netlink.F_MORE, None, rules[chunk : 2 * chunk], True),
        (2 * chunk, None, None, rules[2 * chunk :], True),
    ]


class StubSocket:
    """pyroute2's socket, as far as Client.replace uses it: the family id."""

    prid = FAMILY


class StubChannel:
    """RawChannel without a kernel: frames what it is given, as request()
    does, and answers with an ack or the error set for a chunk."""

    def __init__(self, fail_at: int | None = None, error: NetlinkError | None = None) -> None:
        self.sent: list[bytes] = []
        self.fail_at = fail_at
        self.error = error
        self.closed = False

    def request(self, body: bytes | bytearray, family: int) -> None:
        self.sent.append(netlink.frame(body, family, len(self.sent) + 1))
        if self.error is not None and len(self.sent) == self.fail_at:
            raise self.error

    def close(self) -> None:
        self.closed = True


def client(channel: StubChannel) -> netlink.Client:
    c = netlink.Client.__new__(netlink.Client)  # no kernel
    c.sock = StubSocket()
    c.channel = lambda: channel  # type: ignore[method-assign]
    return c


@pytest.mark.parametrize("gen", [None, 5])
def test_client_replace_sends_each_chunk_for_an_ack(small_chunks: int, gen: int | None) -> None:
    rules = table(2 * small_chunks + 1)
    sock = StubChannel()
    client(sock).replace(rules, expect_generation=gen)
    heads = [struct.unpack_from("=HH", data, 4) for data in sock.sent]
    assert heads == [(FAMILY, NLM_F_REQUEST | NLM_F_ACK)] * 3
    assert sock.sent == pyroute2_replace(rules, gen)
    assert sock.closed


def test_client_replace_of_nothing_sends_one_empty_chunk() -> None:
    sock = StubChannel()
    client(sock).replace([])
    assert sock.sent == pyroute2_replace([], None)


def test_a_refused_chunk_ends_the_replace_with_the_kernels_message() -> None:
    sock = StubChannel(fail_at=2, error=NetlinkError(errno.EINVAL, "rules overlap: tcp/80"))
    with pytest.raises(netlink.KernelRejected) as info:
        client(sock).replace(table(3 * CHUNK))
    assert (str(info.value), info.value.code) == ("rules overlap: tcp/80", errno.EINVAL)
    assert len(sock.sent) == 2  # the third chunk is never sent
    assert sock.closed  # and the kernel drops what was staged


@pytest.mark.parametrize(
    ("error", "kind", "text"),
    [
        (NetlinkError(errno.ESTALE, "table changed"), netlink.TableChanged, "table changed"),
        (NetlinkError(errno.EPERM), netlink.NotPermitted, "CAP_NET_ADMIN"),
        (
            NetlinkError(errno.EINVAL, "Unknown attribute type"),
            netlink.PortownersError,
            "module is older than this portctl",
        ),
    ],
)
def test_errors_of_a_conditional_replace(error: NetlinkError, kind: type, text: str) -> None:
    sock = StubChannel(fail_at=1, error=error)
    with pytest.raises(kind, match=text):
        client(sock).replace(table(CHUNK + 1), expect_generation=9)
    assert len(sock.sent) == 1


def test_too_many_rules_refused_before_anything_is_sent() -> None:
    sock = StubChannel()
    rules = [Rule("tcp", 1, 1, uid=1)] * (netlink.MAX_RULES + 1)
    with pytest.raises(netlink.PortownersError, match="at most"):
        client(sock).replace(rules)
    assert sock.sent == []


def test_the_benchmarks_pre_encoded_replace_is_portctls(monkeypatch: pytest.MonkeyPatch) -> None:
    """bench/measure.py times portctl's load against RawReplace's messages:
    the same bytes after the netlink header, so like is compared with like."""
    monkeypatch.setattr(sys, "path", list(sys.path))  # measure.py adds the guest's repo
    spec = importlib.util.spec_from_file_location("bench_measure", ROOT / "bench" / "measure.py")
    assert spec is not None and spec.loader is not None
    measure = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(measure)
    for n in (1, CHUNK + 1):
        rules = measure.around(n)
        raw = measure.RawReplace(rules).bodies
        ours = [data[NLMSG_HDR:] for data in fast_replace(rules, None)]
        assert raw == ours


class FakeNetlinkSocket:
    """What RawChannel reads: the replies queued here, one recv() each."""

    def __init__(self, replies: list[bytes]) -> None:
        self.replies = replies
        self.sent: list[bytes] = []

    def sendmsg(self, buffers: list[bytes | bytearray]) -> int:
        self.sent.append(b"".join(buffers))
        return len(self.sent[-1])

    def recv(self, size: int) -> bytes:
        return self.replies.pop(0)


def nlmsgerr(seq: int, error: int, message: str | None = None) -> bytes:
    """The kernel's ack (error 0) or error for request seq, capped (no payload
    echoed), with an extack message if one is given."""
    flags = 0x100  # NLM_F_CAPPED
    tlvs = b""
    if message is not None:
        flags |= 0x200  # NLM_F_ACK_TLVS
        text = message.encode() + b"\0"
        tlvs = struct.pack("=HH", 4 + len(text), 1) + text + bytes(-len(text) % 4)
    request = struct.pack("=IHHII", 16, FAMILY, NLM_F_REQUEST | NLM_F_ACK, seq, 0)
    body = struct.pack("=i", error) + request + tlvs
    return struct.pack("=IHHII", 16 + len(body), 2, flags, seq, 1234) + body


def channel(replies: list[bytes]) -> netlink.RawChannel:
    ch = netlink.RawChannel.__new__(netlink.RawChannel)  # no socket
    ch.sock = FakeNetlinkSocket(replies)  # type: ignore[assignment]
    ch.seq = 0
    return ch


def test_raw_channel_reads_the_ack_of_its_own_request() -> None:
    # An ack for an older sequence number first (ignored), then ours, then another.
    ch = channel([nlmsgerr(7, 0), nlmsgerr(1, 0) + nlmsgerr(9, -errno.EINVAL, "not ours")])
    ch.request(b"body", FAMILY)
    assert ch.sock.sent == [netlink.frame(b"body", FAMILY, 1)]  # type: ignore[attr-defined]


@pytest.mark.parametrize(
    ("error", "message"),
    [
        (-errno.EINVAL, "rules overlap: tcp/80 (alice) and tcp/80-81 (bob)"),
        (-errno.ESTALE, "the table changed since it was read"),
        (-errno.EPERM, None),
        (-errno.ENOMEM, ""),
    ],
)
def test_raw_channel_raises_the_kernels_errno_and_message(error: int, message: str | None) -> None:
    """As pyroute2 raised it: the extack message, or else strerror."""
    ch = channel([nlmsgerr(1, error, message)])
    with pytest.raises(NetlinkError) as info:
        ch.request(b"x", FAMILY)
    said = message or os.strerror(-error)
    assert info.value.args == (-error, said)
    mapped = netlink._rejected(info.value)
    if error == -errno.EPERM:
        assert isinstance(mapped, netlink.NotPermitted)
    else:
        assert str(mapped) == said


@pytest.mark.parametrize("width", [0, 1])
def test_a_long_run_of_one_owner_is_packed_whole(width: int) -> None:
    """One owner's rules in a row are packed as one template repeated, their
    ports stored into it; single ports (width 0) store one array twice."""
    rules = [Rule("udp", 3 * i + 1, 3 * i + 1 + width, uid=0x0102_0304) for i in range(1500)]
    assert netlink.encode_rules(rules) == pyroute2_rules(rules)


def test_a_failing_socket_is_an_error_for_people_and_closes_the_channel() -> None:
    sock = StubChannel(fail_at=2, error=None)

    def broken(body: bytes | bytearray, family: int) -> None:
        StubChannel.request(sock, body, family)
        if len(sock.sent) == 2:
            raise OSError(errno.ENOBUFS, os.strerror(errno.ENOBUFS))

    sock.request = broken  # type: ignore[method-assign]
    with pytest.raises(netlink.PortownersError, match="sending the table to the kernel failed"):
        client(sock).replace(table(2 * CHUNK + 1))
    assert sock.closed and len(sock.sent) == 2


def dump_message(body: bytes | bytearray, generation: int) -> bytes:
    """A GET_RULES dump message as the kernel sends one: GENERATION (a u64
    after a PAD attribute, as nla_put_u64_64bit() may align it), then rule
    nests."""
    pad = struct.pack("=HH", 4, _attr("PORTOWNERS_A_PAD"))
    gen = struct.pack("=HHQ", 12, netlink.A_GENERATION, generation)
    data = bytearray(pyroute2_message([]) + pad + gen + body)
    struct.pack_into("=I", data, 0, len(data))
    return bytes(data)


def _attr(name: str) -> int:
    return [entry[0] for entry in netlink.pomsg.nla_map].index(name)


def pyroute2_reading(data: bytes) -> tuple[int, list[Rule]]:
    msg = netlink.pomsg(data)
    msg.decode()
    rules = [netlink.rule_from_nla(a) for a in msg.get_attrs("PORTOWNERS_A_RULE")]
    return msg.get_attr("PORTOWNERS_A_GENERATION"), rules


def test_a_dump_message_decodes_as_pyroute2_reads_it() -> None:
    """decode_rules_reply(), Client.table()'s fast reader, against pyroute2's
    parse of the same bytes: rules of every kind and a table's worth."""
    rules = list(SINGLE.values()) + table(3000)
    data = dump_message(netlink.encode_rules(rules), 0x0102_0304_0506_0708)
    assert netlink.decode_rules_reply(data) == pyroute2_reading(data)
    assert netlink.decode_rules_reply(data) == (0x0102_0304_0506_0708, rules)
    empty = dump_message(b"", 7)
    assert netlink.decode_rules_reply(empty) == pyroute2_reading(empty) == (7, [])


def test_a_dump_message_skips_what_it_does_not_know() -> None:
    """Counters (a stats dump) and attributes of a newer module are skipped,
    in a rule and around it."""
    rule = Rule("tcp", 8080, 8081, uid=1000, addr="::1")
    nest = bytearray(netlink.encode_rules([rule]))
    extra = struct.pack("=HHQ", 12, 9, 41) + struct.pack("=HHI", 8, 30, 5)
    nest += extra
    struct.pack_into("=H", nest, 0, len(nest))
    data = dump_message(nest + struct.pack("=HHI", 8, 60, 1), 3)
    assert netlink.decode_rules_reply(data) == (3, [rule])
