"""The table file: parsing, errors, formatting, editing (portowners(5))."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from portctl import config
from portctl.model import PortRange, Rule, sorted_rules
from portctl.names import MAX_ID, Owner
from portctl.ports import parse_ports, subtract_all

EXAMPLE = """\
# who owns what
udp/53          root            # dns
tcp/80,443      0:0
tcp/8000-8099   :root

tcp/631         *
tcp/9090 1000   # numeric
sctp/9899 :1001
"""


def test_parse_example() -> None:
    rules = config.parse(EXAMPLE, "/etc/portowners")
    assert rules == sorted(
        [
            Rule("udp", 53, 53, uid=0),
            Rule("tcp", 80, 80, uid=0, gid=0),
            Rule("tcp", 443, 443, uid=0, gid=0),
            Rule("tcp", 8000, 8099, gid=0),
            Rule("tcp", 631, 631, any_user=True),
            Rule("tcp", 9090, 9090, uid=1000),
            Rule("sctp", 9899, 9899, gid=1001),
        ]
    )


def test_empty_and_comments_only() -> None:
    assert config.parse("") == []
    assert config.parse("# nothing\n\n   \n\t# more\n") == []


def test_crlf_lines() -> None:
    assert config.parse("tcp/80 root\r\n") == [Rule("tcp", 80, 80, uid=0)]


def test_lone_cr_is_no_line_break(tmp_path: Path) -> None:
    # Found by test_config_fuzz.py: the file was read with universal
    # newlines, so a lone "\r" counted as a line break, and FILE:LINE named
    # line 2 of a file that grep -n and editors show as one line.
    path = tmp_path / "portowners"
    path.write_bytes(b"tcp/80 root\rbad\n")
    with pytest.raises(config.ConfigError) as info:
        config.read_document(str(path))
    assert [m.split(": ")[0] for m in info.value.messages] == [f"{path}:1"]
    assert "too many fields" in info.value.messages[0]
    path.write_bytes(b"tcp/80 root\r\nbad\r\n")  # CRLF lines stay lines
    with pytest.raises(config.ConfigError) as info:
        config.read_document(str(path))
    assert info.value.messages == [
        f"{path}:2: missing owner after `bad`: expected `PROTO/PORTS OWNER`, e.g. `tcp/80 www-data`"
    ]
    path.write_bytes(b"tcp/80 root\r\n")
    assert config.read_document(str(path)).rules() == [Rule("tcp", 80, 80, uid=0)]


def errors_of(text: str, path: str = "F") -> list[str]:
    with pytest.raises(config.ConfigError) as info:
        config.parse(text, path)
    return info.value.messages


def test_every_bad_line_is_reported_with_file_and_line() -> None:
    text = "tcp/80 root\n80/tcp root\nfoo\ntcp/70000 root\nudp/1 nosuchuser-xyz\ntcp/90 root\n"
    errs = errors_of(text, "/etc/portowners")
    assert [e.split(":")[1] for e in errs] == ["2", "3", "4", "5"]
    assert all(e.startswith("/etc/portowners:") for e in errs)
    assert "write tcp/80" in errs[0]
    assert "nosuchuser-xyz" in errs[3]


def test_one_spelling_only() -> None:
    (err,) = errors_of("80/tcp root\n")
    assert "tcp/80" in err
    (err,) = errors_of("TCP/80 root\n")
    assert "tcp/80" in err
    (err,) = errors_of("icmp/80 root\n")
    assert "unknown protocol" in err


@pytest.mark.parametrize(
    "line",
    [
        "tcp/0 root",
        "tcp/65536 root",
        "tcp/90-80 root",
        "tcp/ root",
        "tcp/80, root",
        "tcp/80,,81 root",
        "tcp/80 root extra",
        "tcp/80, 443 root",
        "tcp/80 user:",
        "tcp/80 :",
        "tcp/80 a:b:c",
        "tcp/80 *:root",
        "tcp/80 4294967295",
        "tcp/99999999999999999999999 root",
        "tcp/٣ root",
    ],
)
def test_bad_lines(line: str) -> None:
    (err,) = errors_of(line + "\n")
    assert err.startswith("F:1: ")


def test_overlap_names_both_lines() -> None:
    errs = errors_of("tcp/1-100 root\n# c\ntcp/50 :root\nudp/50 root\n")
    assert errs == ["F:3: tcp/50 overlaps tcp/1-100 on line 1"]


def test_duplicate_names_both_lines() -> None:
    errs = errors_of("tcp/80 root\ntcp/80 root\n")
    assert errs == ["F:2: tcp/80 is also given on line 1"]


def test_overlap_in_one_line() -> None:
    (err,) = errors_of("tcp/80,70-90 root\n")
    assert err.startswith("F:1: ") and "same line" in err


def test_overlaps_and_syntax_errors_together() -> None:
    errs = errors_of("tcp/80 root\nbad\ntcp/79-81 root\n")
    assert [e.split(":")[1] for e in errs] == ["2", "3"]
    assert "line 1" in errs[1]


def test_release_keeps_comments_and_order() -> None:
    doc = config.parse_document(EXAMPLE)
    doc.release(parse_ports("tcp/443") + parse_ports("tcp/8050") + parse_ports("udp/53"))
    assert doc.text() == (
        "# who owns what\n"
        "tcp/80 0:0\n"
        "tcp/8000-8049,8051-8099 :root\n"
        "\n"
        "tcp/631         *\n"
        "tcp/9090 1000   # numeric\n"
        "sctp/9899 :1001\n"
    )


def test_release_keeps_trailing_comment_of_edited_line() -> None:
    doc = config.parse_document("tcp/80,443 root  # web\n")
    doc.release(parse_ports("tcp/443"))
    assert doc.text() == "tcp/80 root  # web\n"


def test_chown_appends_and_reassigns() -> None:
    doc = config.parse_document("# top\ntcp/80,443 root\nudp/53 root\n")
    doc.chown(parse_ports("tcp/443,444") + parse_ports("udp/5"), Owner(gid=0))
    assert doc.text() == "# top\ntcp/80 root\nudp/53 root\ntcp/443-444 :root\nudp/5 :root\n"
    assert config.parse(doc.text()) == doc.rules()


# Round trips ----------------------------------------------------------------

ids = st.one_of(st.sampled_from([0, 1, 65534, 1000, MAX_ID]), st.integers(0, MAX_ID))


@st.composite
def owners(draw: st.DrawFn) -> tuple[int | None, int | None, bool]:
    kind = draw(st.sampled_from(["any", "user", "group", "both"]))
    if kind == "any":
        return (None, None, True)
    uid = draw(ids) if kind in ("user", "both") else None
    gid = draw(ids) if kind in ("group", "both") else None
    return (uid, gid, False)


# Every address ("") and a few: IPv4, IPv6, one that sorts apart as text and
# as a number (10.0.0.2 > 9.0.0.1).
ADDRESSES = ["", "127.0.0.1", "9.0.0.1", "10.0.0.2", "::1", "2001:db8::1"]


@st.composite
def tables(draw: st.DrawFn) -> list[Rule]:
    """Valid tables: rules of one protocol and address never overlap; rules
    on an address may share ports with rules on every address."""
    rules: list[Rule] = []
    for proto in ("tcp", "udp", "sctp"):
        for addr in draw(st.sets(st.sampled_from(ADDRESSES[1:]), max_size=2)) | {""}:
            points = sorted(draw(st.sets(st.integers(1, 65535), max_size=8)))
            # pair up consecutive points into disjoint ranges; odd one out is a single port
            while points:
                lo = points.pop(0)
                is_range: bool = bool(points) and draw(st.booleans())
                hi = points.pop(0) if is_range else lo
                uid, gid, any_user = draw(owners())
                rules.append(Rule(proto, lo, hi, uid, gid, any_user, addr))
    return sorted_rules(rules)


@given(tables(), st.booleans())
def test_format_round_trip(rules: list[Rule], numeric: bool) -> None:
    text = config.format(rules, header="a header\nline two", numeric=numeric)
    assert config.parse(text) == rules


@given(tables())
def test_format_parse_format_is_stable(rules: list[Rule]) -> None:
    text = config.format(rules)
    assert config.format(config.parse(text)) == text


line_parts = st.one_of(
    st.sampled_from(
        [
            "tcp/",
            "udp/",
            "sctp/",
            "80",
            "443",
            ",",
            "-",
            " ",
            "\t",
            "#",
            "root",
            ":",
            "*",
            "0",
            "65535",
            "65536",
            "/",
            "root:root",
            ":0",
            "\r",
            "\x00",
            "é",
            "٣",
        ]
    ),
    st.text(max_size=4),
)
garbage_lines = st.lists(st.lists(line_parts, max_size=8).map("".join), max_size=8).map("\n".join)


@settings(suppress_health_check=[HealthCheck.too_slow])
@given(st.one_of(garbage_lines, st.text()))
def test_garbage_only_raises_config_error(text: str) -> None:
    try:
        rules = config.parse(text, "G")
    except config.ConfigError as e:
        assert e.messages
        for m in e.messages:
            assert m.startswith("G:")
            assert int(m.split(":")[1]) >= 1
        return
    # whatever parsed must format back to the same rules
    assert config.parse(config.format(rules)) == rules


@st.composite
def range_lists(draw: st.DrawFn) -> list[PortRange]:
    out = []
    for _ in range(draw(st.integers(0, 4))):
        lo = draw(st.integers(1, 65535))
        hi = draw(st.integers(lo, min(65535, lo + draw(st.integers(0, 3000)))))
        proto = draw(st.sampled_from(["tcp", "udp", "sctp"]))
        out.append(PortRange(proto, lo, hi, draw(st.sampled_from(ADDRESSES))))
    return out


@given(tables(), range_lists())
def test_release_edits_like_the_kernel(rules: list[Rule], ranges: list[PortRange]) -> None:
    doc = config.parse_document("# keep me\n" + config.format(rules) + "# end\n")
    doc.release(ranges)
    text = doc.text()
    assert text.startswith("# keep me\n") and text.endswith("# end\n")
    assert not config.differences(config.parse(text), subtract_all(rules, ranges))


@given(tables(), range_lists(), owners())
def test_chown_edits_like_the_kernel(
    rules: list[Rule], ranges: list[PortRange], owner: tuple[int | None, int | None, bool]
) -> None:
    o = Owner(*owner)
    doc = config.parse_document(config.format(rules))
    doc.chown(ranges, o)
    expected = subtract_all(rules, ranges) + config.rules_for(ranges, o)
    assert not config.differences(config.parse(doc.text()), expected)


def test_differences_are_per_port() -> None:
    a = [Rule("tcp", 80, 90, uid=0)]
    b = [Rule("tcp", 80, 85, uid=0), Rule("tcp", 86, 90, uid=0)]
    assert config.differences(a, b) == []
    c = [Rule("tcp", 80, 85, uid=0), Rule("tcp", 86, 90, uid=1)]
    (d,) = config.differences(a, c)
    assert (d.lo, d.hi, d.wanted, d.live) == (86, 90, a[0], c[1])
    assert config.diff_lines(a, c, numeric=True) == ["- tcp/86-90 1", "+ tcp/86-90 0"]


def test_chown_to_the_same_owner_leaves_the_file_alone() -> None:
    text = "tcp/80,443 root  # web\nudp/53 root\n"
    doc = config.parse_document(text)
    doc.chown(parse_ports("tcp/443"), Owner(uid=0))
    assert doc.text() == text
    doc.chown(parse_ports("tcp/443-444"), Owner(uid=0))
    assert doc.text() == text + "tcp/444 root\n"
