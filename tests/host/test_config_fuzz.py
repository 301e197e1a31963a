"""File fuzz (issue 11, item 4): whatever /etc/portowners holds, the parser
and `portctl load` answer cleanly.

Generated files: valid lines, near-valid mutations of them, garbage,
unicode, bytes that are not UTF-8, long lines, comments, duplicated and
overlapping rules, bad owners, ports, ranges and protocols. For each, either
the parser refuses with a ConfigError whose messages are each one
`FILE:LINE: message` naming a line the file has, or the table it gives
round-trips (format, then parse, gives the same table). `portctl load FILE`
through the CLI (against tests/host/fakekernel.py) then exits 0 having
loaded exactly that table, or exits 1 with those messages and leaves the
kernel's table alone; never a traceback.

Bounded and reproducible: a fixed number of examples, derandomized, so CI
runs the same ones every time.
"""

from __future__ import annotations

import itertools
import re
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner
from fakekernel import FakeKernel
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from portctl import cli, config
from portctl.model import Rule

FUZZ = settings(
    max_examples=100,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture],
)

PROTOS = ["tcp", "udp", "sctp"]
OWNERS_GOOD = ["root", "0", ":root", "root:root", "0:0", "*", "1000", ":1001", "1000:1001"]
OWNERS_GOOD += ["4294967294", ":4294967294"]
OWNERS_BAD = ["nosuchuser-xyz", "root:nosuchgroup-xyz", ":", "root:", "a:b:c", "*:root", "**"]
OWNERS_BAD += ["4294967295", "99999999999", "-1", "root\x00", "rööt", "\udcff\udcfe", ""]
PROTOS_BAD = ["TCP", "icmp", "tcp6", "", "udp ", "sctp/", "t\u0441p"]  # a Cyrillic es
PORTS_BAD = ["0", "65536", "-1", "80-", "-80", "90-80", "80,,81", "80,", ",80", "0x50", "٣"]
PORTS_BAD += ["99999999999999999999", "80-90-100", "1e3", "\uff18\uff10"]  # fullwidth digits
# Addresses as written before the ports, `:` included; the same address in
# other spellings (v4-mapped, uppercase, uncompressed) makes overlaps.
ADDRS_GOOD = ["", "", "", "127.0.0.1:", "192.0.2.10:", "[::1]:", "[2001:db8::1]:"]
ADDRS_GOOD += ["[::ffff:127.0.0.1]:", "[2001:DB8:0::1]:", "[127.0.0.1]:"]
ADDRS_BAD = ["0.0.0.0:", "[::]:", "[::ffff:0.0.0.0]:", "::1:", "[fe80::1%eth0]:", "fe80::1%lo:"]
ADDRS_BAD += ["localhost:", "1.2.3:", "256.1.1.1:", "[::1", "[::1]", ":", "[]:", "127.0.0.01:"]
ADDRS_BAD += ["[1.2.3.4.5]:", "[::1]]:", "[::1%]:", "\u0661.2.3.4:"]  # an Arabic-Indic 1
# Characters str.split() takes for whitespace, and others a file may hold.
ODD = ["\t", "\x0b", "\x0c", "\r", "\x1c", "\x85", "\xa0", "\u2028", "\u3000", "\x00", "\x1b"]
ODD += ["#", ",", "-", "/", ":", "*", "é", "٣", "\udcff", "\ufeff", "\U0001f600"]


def port() -> st.SearchStrategy[int]:
    return st.one_of(st.integers(1, 300), st.integers(1, 65535), st.sampled_from([1, 65535]))


@st.composite
def port_item(draw: st.DrawFn) -> str:
    lo = draw(port())
    if draw(st.booleans()):
        return str(lo)
    hi = draw(st.integers(lo, min(65535, lo + draw(st.integers(0, 200)))))
    text = f"{lo}-{hi}"
    return "0" + text if draw(st.integers(0, 20)) == 0 else text  # leading zeros parse


@st.composite
def valid_line(draw: st.DrawFn) -> str:
    proto = draw(st.sampled_from(PROTOS))
    addr = draw(st.sampled_from(ADDRS_GOOD))
    items = ",".join(draw(st.lists(port_item(), min_size=1, max_size=4)))
    owner = draw(st.sampled_from(OWNERS_GOOD))
    space = draw(st.sampled_from([" ", "  ", "\t", " \t ", "\xa0"]))
    line = f"{proto}/{addr}{items}{space}{owner}"
    if draw(st.booleans()):
        line = draw(st.sampled_from(["", " ", "\t"])) + line
    if draw(st.integers(0, 3)) == 0:
        line += draw(st.sampled_from(["  # c", "#x", " # é ünïcode 😀", " #", "\t# a # b"]))
    return line


@st.composite
def bad_line(draw: st.DrawFn) -> str:
    proto = draw(st.sampled_from(PROTOS))
    kind = draw(
        st.sampled_from(["owner", "proto", "ports", "swap", "fields", "missing", "address"])
    )
    if kind == "address":
        return f"{proto}/{draw(st.sampled_from(ADDRS_BAD))}{draw(port())} root"
    if kind == "owner":
        return f"{proto}/{draw(port())} {draw(st.sampled_from(OWNERS_BAD))}"
    if kind == "proto":
        return f"{draw(st.sampled_from(PROTOS_BAD))}/{draw(port())} root"
    if kind == "ports":
        return f"{proto}/{draw(st.sampled_from(PORTS_BAD))} root"
    if kind == "swap":
        return f"{draw(port())}/{proto} root"
    if kind == "fields":
        return f"{proto}/80, 443 root extra"
    return draw(st.sampled_from([f"{proto}/80", "root", f"{proto}/", "/80 root", ":"]))


@st.composite
def mutated(draw: st.DrawFn) -> str:
    """A valid line with a few characters inserted, deleted or replaced."""
    chars = list(draw(valid_line()))
    for _ in range(draw(st.integers(1, 3))):
        at = draw(st.integers(0, len(chars)))
        op = draw(st.sampled_from(["insert", "delete", "replace"]))
        ch = draw(st.one_of(st.sampled_from(ODD), st.characters(exclude_categories=("Cs",))))
        if op == "insert":
            chars.insert(at, ch)
        elif chars and at < len(chars):
            if op == "delete":
                del chars[at]
            else:
                chars[at] = ch
    return "".join(chars).replace("\n", "")


def long_line(draw: st.DrawFn) -> str:
    proto = draw(st.sampled_from(PROTOS))
    n = draw(st.integers(100, 1500))
    start = draw(st.integers(1, 60000))
    ports = ",".join(str(p) for p in range(start, min(65536, start + n)))
    return f"{proto}/{ports} {draw(st.sampled_from(OWNERS_GOOD + OWNERS_BAD[:2]))}"


@st.composite
def file_text(draw: st.DrawFn) -> str:
    """A whole file: a mix of every kind of line."""
    lines: list[str] = []
    for _ in range(draw(st.integers(0, 12))):
        kind = draw(
            st.sampled_from(
                ["valid"] * 6
                + ["bad", "mutated", "mutated", "comment", "blank", "garbage"]
                + ["dup", "long", "long_comment"]
            )
        )
        if kind == "valid":
            lines.append(draw(valid_line()))
        elif kind == "bad":
            lines.append(draw(bad_line()))
        elif kind == "mutated":
            lines.append(draw(mutated()))
        elif kind == "comment":
            lines.append("#" + draw(st.text(max_size=30)).replace("\n", " "))
        elif kind == "blank":
            lines.append(draw(st.sampled_from(["", " ", "\t", "\r", " \x0c "])))
        elif kind == "garbage":
            lines.append(draw(st.text(max_size=40)).replace("\n", ""))
        elif kind == "dup" and lines:
            lines.append(draw(st.sampled_from(lines)))  # duplicates, or overlaps
        elif kind == "long":
            lines.append(long_line(draw))
        elif kind == "long_comment":
            lines.append("# " + "x" * draw(st.integers(1000, 5000)))
    ending = draw(st.sampled_from(["\n", "\r\n"]))
    text = ending.join(lines)
    if lines and draw(st.integers(0, 4)):
        text += ending  # most files end with a newline; some do not
    return text


files = st.one_of(file_text(), st.text(), st.lists(valid_line()).map("\n".join))
raw_files = st.one_of(
    file_text().map(lambda t: t.encode("utf-8", "surrogateescape")),
    st.binary(max_size=200),
    st.tuples(file_text(), st.binary(max_size=8), st.integers(0, 200)).map(
        lambda t: t[0].encode("utf-8", "surrogateescape")[: t[2]] + t[1]
    ),
)

MESSAGE = re.compile(r"(?P<path>.*?):(?P<line>[0-9]+): (?P<text>\S.*)", re.S)


def file_lines(raw: bytes) -> int:
    """Lines of a file as grep -n and editors count them: ended by b"\\n"."""
    return raw.count(b"\n") + (0 if raw.endswith(b"\n") or not raw else 1)


def check_parse(text: str, path: str, nlines: int) -> list[Rule] | None:
    """The parser's answer to text: the rules, or None after a clean refusal."""
    try:
        rules = config.parse(text, path)
    except config.ConfigError as e:
        assert e.messages
        assert str(e) == "\n".join(e.messages)
        for message in e.messages:
            m = MESSAGE.fullmatch(message)
            assert m is not None, f"not FILE:LINE: message: {message!r}"
            assert m["path"] == path
            assert 1 <= int(m["line"]) <= nlines, f"{message!r}: the file has {nlines} lines"
            assert "\n" not in message and "\r" not in message, repr(message)
        return None
    # A table: each rule sound, none overlapping, and it round-trips.
    for rule in rules:
        assert 1 <= rule.lo <= rule.hi <= 65535
        assert rule.any_user or rule.uid is not None or rule.gid is not None
    for a, b in itertools.pairwise(rules):
        assert not a.overlaps(b), (a, b)
    for numeric in (False, True):
        saved = config.format(rules, header=cli.SAVE_HEADER, numeric=numeric)
        assert config.parse(saved, "saved") == rules
    return rules


@FUZZ
@given(files)
@example("tcp/80 root\rudp/53 root\n")
@example("tcp/80 root\x85udp/53 root\n")
@example("tcp/80\xa0root\n")
@example("\ufefftcp/80 root\n")
def test_parse_refuses_cleanly_or_round_trips(text: str) -> None:
    check_parse(text, "/etc/portowners", file_lines(text.encode("utf-8", "surrogateescape")))


@FUZZ
@given(raw_files)
@example(b"tcp/80 root\rbad\n")  # a lone CR is no line break: grep -n counts one line
@example(b"tcp/80 root\r\nbad\r\n")
@example(b"tcp/80 \xff\xfe\n")
@example(b"\xef\xbb\xbftcp/80 root\n")
def test_read_document_of_any_bytes(tmp_path: Path, raw: bytes) -> None:
    path = tmp_path / "portowners"
    path.write_bytes(raw)
    try:
        doc = config.read_document(str(path))
    except config.ConfigError as e:
        text = raw.decode("utf-8", "surrogateescape")
        with pytest.raises(config.ConfigError) as again:
            config.parse(text, str(path))
        assert again.value.messages == e.messages
        check_parse(text, str(path), file_lines(raw))
        return
    rules = check_parse(doc.text(), "text", file_lines(raw))
    assert rules == doc.rules()


@FUZZ
@given(raw_files)
@example(b"tcp/80 root\nudp/53 nosuchuser-xyz\n80/tcp root\n")
@example(b"tcp/8080 root\n")
def test_load_through_the_cli(tmp_path: Path, kernel: FakeKernel, raw: bytes) -> None:
    path = tmp_path / "portowners"
    path.write_bytes(raw)
    kernel.rules = [Rule("tcp", 22, 22, uid=0)]
    kernel.generation = 7
    kernel.calls = []  # one kernel for all examples: as it was, each time
    result = CliRunner().invoke(cli.cli, ["load", str(path)], prog_name="portctl")
    assert result.exception is None or isinstance(result.exception, SystemExit), (
        f"{type(result.exception).__name__}: {result.exception}"
    )
    assert "Traceback" not in result.output
    text = raw.decode("utf-8", "surrogateescape")
    try:
        wanted = config.parse(text, str(path))
    except config.ConfigError as e:
        assert result.exit_code == 1, result.output
        errors = result.stderr.splitlines()
        # stderr shows what is not UTF-8 (surrogateescape) backslashed
        shown = [m.encode("utf-8", "backslashreplace").decode() for m in e.messages]
        assert errors[:-1] == shown
        n = len(e.messages)
        assert errors[-1] == (
            f"portctl: {path} has {n} error{'s' if n != 1 else ''}: nothing changed"
        )
        assert kernel.rules == [Rule("tcp", 22, 22, uid=0)] and kernel.generation == 7
        assert kernel.calls == []
        return
    assert result.exit_code == 0, result.output
    assert kernel.rules == wanted and kernel.calls == ["replace"]


BAD_FILES = [
    b"tcp/80 root\n80/tcp root\n",
    b"tcp/80 \xff\xfeuser\n",  # not UTF-8
    b"tcp/80 root\x00\n",
    b"tcp/1-100 root\ntcp/50 root\n",
    b"\x1b[2Jtcp/80 root\n",
    b"sctp/" + b"1," * 5000 + b"1 root\n",
    b"tcp/0.0.0.0:80 root\n",
    b"udp/127.0.0.1:53 root\nudp/[::ffff:127.0.0.1]:53 root\n",
]


@pytest.mark.parametrize("raw", BAD_FILES, ids=range(len(BAD_FILES)))
def test_load_of_a_bad_file_as_a_process(tmp_path: Path, raw: bytes) -> None:
    # The real command, its real streams: a message and exit 1, no traceback
    # (the file is read before any kernel is asked, so none is needed here).
    path = tmp_path / "portowners"
    path.write_bytes(raw)
    out = subprocess.run(
        [sys.executable, "-m", "portctl", "load", str(path)],
        capture_output=True,
        env={"PATH": "/usr/bin:/bin", "LANG": "C.UTF-8"},
        cwd=Path(__file__).resolve().parents[2],
    )
    assert out.returncode == 1, out
    stderr = out.stderr.decode("utf-8", "backslashreplace")
    assert "Traceback" not in stderr
    assert f"{path}:1: " in stderr or f"{path}:2: " in stderr
    assert stderr.rstrip().endswith("nothing changed"), stderr
