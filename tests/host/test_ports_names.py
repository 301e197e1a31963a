"""PORTS and OWNER spellings, name resolution."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from portctl import names
from portctl.model import PortRange, Rule
from portctl.ports import PortsError, merge_ranges, parse_ports, subtract


def test_parse_ports() -> None:
    assert parse_ports("tcp/80") == [PortRange("tcp", 80, 80)]
    assert parse_ports("udp/53") == [PortRange("udp", 53, 53)]
    assert parse_ports("sctp/9899") == [PortRange("sctp", 9899, 9899)]
    assert parse_ports("tcp/8000-8099") == [PortRange("tcp", 8000, 8099)]
    assert parse_ports("tcp/80,443,1-2") == [
        PortRange("tcp", 80, 80),
        PortRange("tcp", 443, 443),
        PortRange("tcp", 1, 2),
    ]
    assert parse_ports("tcp/1-65535") == [PortRange("tcp", 1, 65535)]


@pytest.mark.parametrize(
    ("spec", "hint"),
    [
        ("80/tcp", "write tcp/80"),
        ("53/UDP", "write udp/53"),
        ("Tcp/80", "write tcp/80"),
        ("80", "tcp/80"),
        ("tcp/0", "out of range"),
        ("tcp/65536", "out of range"),
        ("tcp/9-8", "write 8-9"),
        ("tcp/", "no ports"),
        ("tcp/a", "bad port"),
        ("tcp/1-", "bad port"),
        ("tcp/1,", "empty"),
        ("icmp/1", "unknown protocol"),
        ("", "PROTO/PORTS"),
    ],
)
def test_bad_ports(spec: str, hint: str) -> None:
    with pytest.raises(PortsError) as info:
        parse_ports(spec)
    assert hint in str(info.value)


@given(st.text(max_size=30))
def test_ports_garbage(spec: str) -> None:
    try:
        ranges = parse_ports(spec)
    except PortsError:
        return
    assert all(1 <= r.lo <= r.hi <= 65535 for r in ranges)


def test_merge_and_subtract() -> None:
    assert merge_ranges(
        [PortRange("tcp", 5, 9), PortRange("tcp", 1, 4), PortRange("udp", 1, 1)]
    ) == [PortRange("tcp", 1, 9), PortRange("udp", 1, 1)]
    rule = Rule("tcp", 10, 20, uid=5)
    assert subtract(rule, [PortRange("udp", 10, 20)]) == [rule]
    assert subtract(rule, [PortRange("tcp", 12, 13), PortRange("tcp", 20, 30)]) == [
        Rule("tcp", 10, 11, uid=5),
        Rule("tcp", 14, 19, uid=5),
    ]
    assert subtract(rule, [PortRange("tcp", 1, 65535)]) == []


@given(
    st.integers(1, 200),
    st.integers(0, 50),
    st.lists(st.tuples(st.integers(1, 300), st.integers(0, 40)), max_size=5),
)
def test_subtract_is_set_difference(lo: int, span: int, cuts: list[tuple[int, int]]) -> None:
    rule = Rule("tcp", lo, lo + span, gid=1)
    ranges = [PortRange("tcp", a, a + w) for a, w in cuts]
    left = {p for r in subtract(rule, ranges) for p in range(r.lo, r.hi + 1)}
    cut = {p for r in ranges for p in range(r.lo, r.hi + 1)}
    assert left == set(range(rule.lo, rule.hi + 1)) - cut


def test_parse_owner() -> None:
    assert names.parse_owner("*") == names.Owner(any_user=True)
    assert names.parse_owner("root") == names.Owner(uid=0)
    assert names.parse_owner("root:root") == names.Owner(uid=0, gid=0)
    assert names.parse_owner(":root") == names.Owner(gid=0)
    assert names.parse_owner("1000") == names.Owner(uid=1000)
    assert names.parse_owner(":1001") == names.Owner(gid=1001)
    assert names.parse_owner("1000:1001") == names.Owner(uid=1000, gid=1001)


@pytest.mark.parametrize("text", ["", ":", "root:", "a:b:c", "*:root", "**", "4294967295"])
def test_bad_owner(text: str) -> None:
    with pytest.raises((names.OwnerError, names.UnknownName)):
        names.parse_owner(text)


def test_unknown_names_are_named() -> None:
    with pytest.raises(names.UnknownName, match="no-such-user-q"):
        names.parse_owner("no-such-user-q")
    with pytest.raises(names.UnknownName, match="no-such-group-q"):
        names.parse_owner("root:no-such-group-q")


def test_format_owner() -> None:
    assert names.format_owner(0, None, False) == "root"
    assert names.format_owner(0, 0, False) == "root:root"
    assert names.format_owner(None, 0, False) == ":root"
    assert names.format_owner(0, 0, False, numeric=True) == "0:0"
    assert names.format_owner(None, None, True) == "*"
    assert names.format_owner(4294967294, None, False) == "4294967294"
    with pytest.raises(ValueError):
        names.format_owner(None, None, False)


def test_credentials() -> None:
    root = names.credentials("root")
    assert (root.name, root.uid, root.gid) == ("root", 0, 0)
    assert 0 in root.groups
    ghost = names.credentials("4294967000")
    assert (ghost.uid, ghost.gid, ghost.groups) == (4294967000, None, ())
