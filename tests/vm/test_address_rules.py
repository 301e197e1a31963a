"""Issue 10, part 2: rules on one address (docs/design.md, "Rules on one address").

A bind to one address is decided by the rule on that address, else by the
rule on every address; a wildcard bind covers every address of its scope, so
every rule of the port in that scope must grant it.
"""

from __future__ import annotations

import errno
import ipaddress
import struct
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest
from conftest import ALICE, BOB, CAROL, STAFF, binds, load_module, rule, unload_module
from nlfuzz import (
    NLA_F_NESTED,
    NLM_F_DUMP,
    NLM_F_REQUEST,
    RA,
    A,
    nla,
    pack,
)
from rawnl import Raw, attrs_of

from portctl.model import PROTOCOLS
from portctl.netlink import CMD_CHECK, CMD_DEL_RULES, CMD_GET_RULES, CMD_REPLACE, VERDICTS, Client

# Addresses of this VM's loopback: all of 127/8 is local; 2001:db8::10 is
# added (nodad: usable at once) by the fixture below.
V6 = "2001:db8::10"


@pytest.fixture(scope="module", autouse=True)
def _v6_address() -> Iterator[None]:
    subprocess.run(["ip", "-6", "addr", "add", f"{V6}/128", "dev", "lo", "nodad"], check=True)
    yield
    subprocess.run(["ip", "-6", "addr", "del", f"{V6}/128", "dev", "lo"], check=True)


def packed(addr: str) -> bytes:
    return ipaddress.ip_address(addr).packed


def raw_rule(proto: str, port: int, uid: int | None = None, addr: bytes | None = None) -> bytes:
    """A rule nest; without uid, as DEL_RULES takes it (protocol and ports)."""
    inner = nla(RA["PROTO"], pack("u8", PROTOCOLS[proto])) + nla(RA["PORT_LO"], pack("u16", port))
    if uid is not None:
        inner += nla(RA["PORT_HI"], pack("u16", port)) + nla(RA["UID"], pack("u32", uid))
    if addr is not None:
        inner += nla(RA["ADDR"], addr)
    return nla(A["RULE"], inner, NLA_F_NESTED)


@pytest.fixture
def raw(po) -> Iterator[Raw]:
    r = Raw(po.sock.prid)
    yield r
    r.close()


def check(raw: Raw, uid: int, proto: str, port: int, addr: str | None) -> str:
    body = nla(A["UID"], pack("u32", uid)) + nla(A["PROTO"], pack("u8", PROTOCOLS[proto]))
    body += nla(A["PORT"], pack("u16", port))
    if addr is not None:
        body += nla(A["ADDR"], packed(addr))
    code, msg, replies = raw.request(CMD_CHECK, body)
    assert code == 0, (code, msg)
    return VERDICTS[attrs_of(replies[0])[A["VERDICT"]][0][0]]


def on(sock: str, addr: str, port: int, **kw) -> dict:
    return {"sock": sock, "addr": addr, "port": port, **kw}


# The same port, two owners on two addresses --------------------------------


@pytest.mark.parametrize("proto", ["tcp", "udp", "sctp"])
def test_one_port_two_owners_on_two_addresses(po, proto):
    po.replace([rule(f"{proto}/127.0.0.1:53 uid={ALICE}"), rule(f"{proto}/127.0.0.2:53 uid={BOB}")])
    po.replace(
        [
            *po.rules(),
            rule(f"{proto}/127.0.0.1:8053 uid={ALICE}"),
            rule(f"{proto}/127.0.0.2:8053 uid={BOB}"),
        ]
    )
    s4, s6 = f"{proto}4", f"{proto}6"
    reqs = [
        on(s4, "127.0.0.1", 53),
        on(s4, "127.0.0.2", 53),
        on(s6, "::ffff:127.0.0.1", 53),  # a v4-mapped address is its v4 address
        on(s4, "127.0.0.1", 8053),
        on(s4, "127.0.0.2", 8053),
        on(s4, "0.0.0.0", 8053),  # every IPv4 address: both rules
        on(s6, "::", 8053),  # every address
        on(s6, "::ffff:0.0.0.0", 8053),  # every IPv4 address, on an IPv6 socket
        on(s4, "127.0.0.3", 8053),  # nobody's on this address
    ]
    assert binds(ALICE, reqs) == ["OK", "EACCES", "OK", "OK", "EACCES"] + ["EACCES"] * 3 + ["OK"]
    assert binds(BOB, reqs) == ["EACCES", "OK", "EACCES", "EACCES", "OK"] + ["EACCES"] * 3 + ["OK"]
    assert binds(CAROL, reqs) == ["EACCES"] * 8 + ["OK"]
    assert binds(None, reqs) == ["OK"] * 9


def test_ipv6_address_rule_and_the_wildcards_that_cover_it(po):
    po.replace([rule(f"udp/[{V6}]:8053 uid={ALICE}"), rule(f"udp/[::1]:8054 uid={ALICE}")])
    reqs = [
        on("udp6", V6, 8053),
        on("udp6", "::1", 8054),
        on("udp4", "127.0.0.1", 8054),  # another address (IPv4)
        on("udp4", "0.0.0.0", 8054),  # an IPv4 wildcard covers no IPv6 address
        on("udp6", "::", 8054),  # covers ::1
        # IPV6_V6ONLY is set before the bind, and another thread could clear it
        # until the bind locks the socket: :: is decided for both families.
        on("udp6", "::", 8054, v6only=1),
        on("udp6", "::ffff:0.0.0.0", 8054),
    ]
    assert binds(ALICE, reqs) == ["OK"] * 7
    assert binds(BOB, reqs) == ["EACCES", "EACCES", "OK", "OK", "EACCES", "EACCES", "OK"]


def test_an_address_rule_decides_its_address_over_a_rule_on_every_address(po):
    po.replace([rule(f"tcp/8053 uid={ALICE}"), rule(f"tcp/127.0.0.1:8053 uid={BOB}")])
    reqs = [
        on("tcp4", "127.0.0.1", 8053),
        on("tcp4", "127.0.0.2", 8053),
        on("tcp6", "::1", 8053),
        on("tcp4", "0.0.0.0", 8053),
        on("tcp6", "::", 8053),
    ]
    assert binds(ALICE, reqs) == ["EACCES", "OK", "OK", "EACCES", "EACCES"]
    assert binds(BOB, reqs) == ["OK", "EACCES", "EACCES", "EACCES", "EACCES"]
    assert binds(None, reqs) == ["OK"] * 5


def test_an_address_range_covers_its_ends_and_nothing_past_them(po):
    po.replace([rule(f"udp/127.0.0.1:8100-8199 uid={BOB}"), rule(f"udp/[::1]:8150 uid={BOB}")])
    ports = [8099, 8100, 8150, 8199, 8200]
    reqs = [on("udp4", "127.0.0.1", p) for p in ports] + [on("udp6", "::", p) for p in ports]
    assert binds(ALICE, reqs) == ["OK", "EACCES", "EACCES", "EACCES", "OK"] * 2
    assert binds(BOB, reqs) == ["OK"] * 10


def test_a_wildcard_bind_is_granted_to_whom_every_rule_grants(po):
    po.replace(
        [
            rule(f"tcp/8053 gid={STAFF}"),
            rule(f"tcp/127.0.0.1:8053 uid={ALICE}"),
            rule(f"tcp/[::1]:8053 gid={STAFF}"),
            rule("tcp/127.0.0.2:8053 any"),
        ]
    )
    wild = [on("tcp4", "0.0.0.0", 8053), on("tcp6", "::", 8053), on("tcp4", "127.0.0.3", 8053)]
    assert binds(ALICE, wild, groups=[STAFF]) == ["OK", "OK", "OK"]
    assert binds(CAROL, wild, groups=[STAFF]) == ["EACCES", "EACCES", "OK"]
    assert binds(ALICE, wild) == ["EACCES", "EACCES", "EACCES"]
    assert binds(CAROL, [on("tcp4", "127.0.0.2", 8053)]) == ["OK"]


# CHECK asks what a bind would get ------------------------------------------


def test_check_with_an_address_agrees_with_real_binds(po, raw):
    po.replace(
        [
            rule(f"tcp/8053 uid={ALICE}"),
            rule(f"tcp/127.0.0.1:8053 uid={BOB}"),
            rule(f"tcp/[{V6}]:8053 uid={ALICE}"),
            rule(f"tcp/127.0.0.2:9053 uid={BOB}"),
        ]
    )
    cases = [
        ("tcp4", "127.0.0.1", 8053),
        ("tcp4", "127.0.0.2", 8053),
        ("tcp6", V6, 8053),
        ("tcp6", "::ffff:127.0.0.1", 8053),
        ("tcp4", "0.0.0.0", 8053),
        ("tcp6", "::", 8053),
        ("tcp4", "127.0.0.2", 9053),
        ("tcp4", "127.0.0.1", 9053),
        ("tcp4", "0.0.0.0", 9053),
    ]
    for uid in (ALICE, BOB, CAROL):
        got = binds(uid, [on(s, a, p) for s, a, p in cases])
        verdicts = [check(raw, uid, "tcp", p, a) for _, a, p in cases]
        for (sock, addr, port), bound, verdict in zip(cases, got, verdicts, strict=True):
            # pass: the kernel's own rules, and these ports are all high.
            expect = {"grant": "OK", "pass": "OK", "deny": "EACCES"}[verdict]
            assert bound == expect, (uid, sock, addr, port, verdict)
    # No address: the wildcard bind of every address.
    assert check(raw, ALICE, "tcp", 8053, None) == "deny"
    assert check(raw, BOB, "tcp", 9053, None) == "grant"
    assert check(raw, CAROL, "tcp", 9053, "127.0.0.1") == "pass"


# The ABI --------------------------------------------------------------------


def test_rules_overlap_only_on_the_same_address(po, raw):
    replace = lambda *rules: raw.request(CMD_REPLACE, b"".join(rules))  # noqa: E731
    lo1, lo2 = packed("127.0.0.1"), packed("127.0.0.2")
    assert replace(raw_rule("tcp", 80, ALICE, lo1), raw_rule("tcp", 80, BOB, lo2))[0] == 0
    assert replace(raw_rule("tcp", 80, ALICE), raw_rule("tcp", 80, BOB, lo1))[0] == 0
    code, msg, _ = replace(raw_rule("tcp", 80, ALICE, lo1), raw_rule("tcp", 80, BOB, lo1))
    assert (code, msg) == (
        errno.EEXIST,
        "rule overlaps another rule for the same protocol and address",
    )
    # ::ffff:127.0.0.1 is 127.0.0.1.
    mapped = packed("::ffff:127.0.0.1")
    assert (
        replace(raw_rule("tcp", 80, ALICE, lo1), raw_rule("tcp", 80, BOB, mapped))[0]
        == errno.EEXIST
    )
    assert len(po.rules()) == 2  # the last good table stands


@pytest.mark.parametrize(
    "addr,error,why",
    [
        (packed("0.0.0.0"), errno.EINVAL, "not 0.0.0.0 or ::"),
        (packed("::"), errno.EINVAL, "not 0.0.0.0 or ::"),
        (packed("::ffff:0.0.0.0"), errno.EINVAL, "not 0.0.0.0 or ::"),
        (b"\x7f\0\0\x01\0", errno.EINVAL, "4 bytes (IPv4) or 16 bytes (IPv6)"),
        (b"", errno.EINVAL, "4 bytes (IPv4) or 16 bytes (IPv6)"),
        # Over the policy's length: the policy's own errno and message.
        (bytes(17), errno.ERANGE, "Attribute failed policy validation"),
    ],
    ids=["0.0.0.0", "::", "::ffff:0.0.0.0", "5 bytes", "0 bytes", "17 bytes"],
)
def test_a_bad_rule_address_is_refused_and_changes_nothing(po, raw, addr, error, why):
    po.replace([rule(f"tcp/80 uid={ALICE}")])
    code, msg, _ = raw.request(CMD_REPLACE, raw_rule("tcp", 81, BOB, addr))
    assert code == error, msg
    assert why in msg
    assert [(r.lo, r.uid) for r in po.rules()] == [(80, ALICE)]


def test_addresses_dump_as_given_and_v4_mapped_as_ipv4(po, raw):
    body = raw_rule("udp", 53, ALICE, packed("::ffff:10.0.0.1")) + raw_rule(
        "udp", 53, BOB, packed(V6)
    )
    assert raw.request(CMD_REPLACE, body)[0] == 0
    code, _, replies = raw.request(CMD_GET_RULES, b"", flags=NLM_F_REQUEST | NLM_F_DUMP)
    assert code == 0
    got = set()
    for payload in replies:
        for nest in attrs_of(payload).get(A["RULE"], []):
            a = attrs_of(nest, 0)
            got.add((struct.unpack("=I", a[RA["UID"]][0])[0], a[RA["ADDR"]][0]))
    assert got == {(ALICE, packed("10.0.0.1")), (BOB, packed(V6))}
    # portctl reads the same.
    assert sorted((r.uid, r.addr) for r in po.rules()) == [(ALICE, "10.0.0.1"), (BOB, V6)]


def test_a_reader_of_version_1_cannot_see_addresses_and_is_refused(po, raw):
    po.replace([rule(f"tcp/80 uid={ALICE}")])
    dump = NLM_F_REQUEST | NLM_F_DUMP
    assert raw.request(CMD_GET_RULES, b"", flags=dump, version=1)[0] == 0
    po.replace([rule(f"tcp/80 uid={ALICE}"), rule(f"tcp/127.0.0.1:80 uid={BOB}")])
    code, msg, _ = raw.request(CMD_GET_RULES, b"", flags=dump, version=1)
    assert code == errno.EOPNOTSUPP
    assert "update portctl" in msg
    assert raw.request(CMD_GET_RULES, b"", flags=dump, version=2)[0] == 0


def test_release_takes_ports_off_the_same_address_only(po, raw):
    po.replace(
        [
            rule(f"tcp/8000-8009 uid={ALICE}"),
            rule(f"tcp/127.0.0.1:8000-8009 uid={BOB}"),
            rule(f"tcp/127.0.0.2:8005 uid={BOB}"),
        ]
    )

    def release(port: int, addr: str | None) -> int:
        body = raw_rule("tcp", port, addr=packed(addr) if addr else None)
        return raw.request(CMD_DEL_RULES, body)[0]

    assert release(8005, "127.0.0.1") == 0
    assert sorted((r.addr, r.lo, r.hi) for r in po.rules()) == [
        ("", 8000, 8009),
        ("127.0.0.1", 8000, 8004),
        ("127.0.0.1", 8006, 8009),
        ("127.0.0.2", 8005, 8005),
    ]
    assert release(8005, None) == 0
    assert sorted((r.addr, r.lo, r.hi) for r in po.rules()) == [
        ("", 8000, 8004),
        ("", 8006, 8009),
        ("127.0.0.1", 8000, 8004),
        ("127.0.0.1", 8006, 8009),
        ("127.0.0.2", 8005, 8005),
    ]


# What else follows the table ------------------------------------------------


def test_an_owned_address_rule_keeps_its_port_from_autobind(po):
    reserved = Path("/proc/sys/net/ipv4/ip_local_reserved_ports")
    po.replace([rule(f"tcp/127.0.0.1:40001 uid={ALICE}"), rule("tcp/127.0.0.2:40002 any")])
    assert reserved.read_text().split() == ["40001"]
    po.flush()
    assert reserved.read_text().strip() == ""


def test_the_denial_log_names_the_address_of_the_rule(module):
    # A fresh module: the log's rate limits start over.
    unload_module()
    load_module()
    subprocess.run(["dmesg", "--clear"], check=True)
    with Client() as client:
        client.replace(
            [rule(f"tcp/127.0.0.1:8053 uid={ALICE}"), rule(f"tcp/[{V6}]:8054 uid={ALICE}")]
        )
        assert binds(BOB, [on("tcp4", "127.0.0.1", 8053), on("tcp6", V6, 8054)]) == ["EACCES"] * 2
        client.flush()
    log = subprocess.run(["dmesg"], capture_output=True, text=True, check=True).stdout
    assert f"denied tcp/8053 to uid {BOB}" in log
    assert f"owned on 127.0.0.1 by uid {ALICE}" in log
    assert f"owned on {V6} by uid {ALICE}" in log
