"""The table file /etc/portowners: see portowners(5).

One rule a line, ``PROTO/PORTS OWNER``, or ``PROTO/ADDRESS:PORTS OWNER``
for a rule on one local address only::

    udp/53          named
    tcp/80,443      www-data        # web
    tcp/8000-8099   :developers
    tcp/5432        postgres:dba
    tcp/631         *
    tcp/127.0.0.1:53 named          # on this address only
    udp/[::1]:53    named

``#`` starts a comment; blank lines are ignored. Parsing resolves names and
checks the whole file; every bad line is reported as ``FILE:LINE: message``
in one :class:`ConfigError`. :class:`Document` keeps the text of every line,
so editing (``chown``/``release``) keeps comments and the order of untouched
lines.
"""

from __future__ import annotations

import bisect
import contextlib
import errno
import fcntl
import itertools
import os
import stat
import tempfile
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, field

from portctl import names
from portctl.model import PROTOCOLS, PortRange, Rule, address_key, sorted_rules
from portctl.ports import PortsError, format_ranges, merge_ranges, parse_ports, subtract

DEFAULT_PATH = "/etc/portowners"


class ConfigError(Exception):
    """One or more bad lines; ``messages`` are ``FILE:LINE: message`` each."""

    def __init__(self, messages: Sequence[str]) -> None:
        super().__init__("\n".join(messages))
        self.messages = list(messages)


@dataclass
class Line:
    """One line of the file. ``rules`` is empty for blank and comment lines."""

    text: str
    rules: tuple[Rule, ...] = ()
    proto: str = ""
    owner_text: str = ""
    comment: str = ""
    addr: str = ""  # every rule of a line has the same protocol and address


@dataclass
class Document:
    """A parsed table file that remembers its text."""

    path: str
    lines: list[Line] = field(default_factory=list)

    def rules(self) -> list[Rule]:
        return sorted_rules(r for line in self.lines for r in line.rules)

    def text(self) -> str:
        return "".join(line.text + "\n" for line in self.lines)

    def line_of(self, rule: Rule) -> int | None:
        """The number (from 1) of the line that gives ``rule``'s ports to its
        owner, on its address: a line with that very rule, else one whose
        rule of the same owner and address covers it (the kernel's rule is
        then a piece of it, left by a `release --runtime`). None: no line."""
        covering = None
        for number, line in enumerate(self.lines, 1):
            for r in line.rules:
                if r == rule:
                    return number
                if (
                    covering is None
                    and r._replace(lo=rule.lo, hi=rule.hi) == rule
                    and r.lo <= rule.lo
                    and rule.hi <= r.hi
                ):
                    covering = number
        return covering

    def release(self, ranges: Sequence[PortRange]) -> bool:
        """Take the ports of ``ranges`` off every rule line; True if anything changed.

        Lines losing all their ports go; lines losing some are rewritten
        with the same owner and comment; other lines are kept as written.
        Scope-exact: ranges on an address take ports off lines on that
        address only, ranges without one off lines without one only.
        """
        changed = False
        kept: list[Line] = []
        for line in self.lines:
            if not line.rules:
                kept.append(line)
                continue
            left = [piece for rule in line.rules for piece in subtract(rule, ranges)]
            if left == list(line.rules):
                kept.append(line)
                continue
            changed = True
            if not left:
                continue
            spans = [(r.lo, r.hi) for r in left]
            text = f"{format_ranges(line.proto, spans, line.addr)} {line.owner_text}"
            if line.comment:
                text += f"  {line.comment}"
            kept.append(
                Line(text, tuple(left), line.proto, line.owner_text, line.comment, line.addr)
            )
        self.lines = kept
        return changed

    def chown(self, ranges: Sequence[PortRange], owner: names.Owner) -> None:
        """Give ``ranges`` to ``owner``: release them, then append new lines.

        Ports the file already gives to ``owner`` (on the same address, or
        on every address) are left as written; rules on other addresses too.
        """
        current = self.rules()
        wanted = rules_for(ranges, owner)
        ranges = [
            PortRange(d.proto, d.lo, d.hi, d.addr)
            for d in differences(wanted, current)
            if d.wanted is not None
        ]
        if not ranges:
            return
        self.release(ranges)
        for rule_line in format_lines(rules_for(ranges, owner)):
            self.lines.append(parse_document(rule_line, self.path).lines[0])


def rules_for(ranges: Iterable[PortRange], owner: names.Owner) -> list[Rule]:
    """Rules giving ``ranges`` (merged) to ``owner``."""
    return [
        Rule(r.proto, r.lo, r.hi, owner.uid, owner.gid, owner.any_user, r.addr)
        for r in merge_ranges(ranges)
    ]


_SYNTAX = "expected `PROTO/PORTS OWNER`, e.g. `tcp/80 www-data`"


def _parse_line(text: str) -> tuple[Line, list[str]]:
    body, hash_, comment = text.partition("#")
    comment = hash_ + comment
    fields = body.split()
    if not fields:
        return Line(text), []
    if len(fields) == 1:
        return Line(text), [f"missing owner after `{fields[0]}`: {_SYNTAX}"]
    if len(fields) > 2:
        hint = ""
        if fields[0].endswith(",") or fields[1].startswith(","):
            hint = " (no spaces inside a port list: `tcp/80,443`)"
        return Line(text), [f"too many fields{hint}: {_SYNTAX}"]
    errors: list[str] = []
    ranges: list[PortRange] = []
    owner: names.Owner | None = None
    try:
        ranges = parse_ports(fields[0])
    except PortsError as e:
        errors.append(str(e))
    try:
        owner = names.parse_owner(fields[1])
    except (names.OwnerError, names.UnknownName) as e:
        errors.append(str(e))
    if errors or owner is None:
        return Line(text), errors
    rules = tuple(
        Rule(r.proto, r.lo, r.hi, owner.uid, owner.gid, owner.any_user, r.addr) for r in ranges
    )
    line = Line(text, rules, ranges[0].proto, fields[1], comment.strip(), ranges[0].addr)
    return line, []


def _overlaps(lines: Sequence[Line]) -> list[tuple[int, str]]:
    """Overlapping rules within one document, each naming both lines.

    Rules overlap when they share a protocol, an address (or both have
    none) and a port: a rule on an address may share its ports with a rule
    on every address, and then decides for its address.
    """
    errors: list[tuple[int, str]] = []
    seen: set[tuple[int, int]] = set()
    scopes: dict[tuple[str, str], list[tuple[int, int, int]]] = {}
    for lineno, line in enumerate(lines, 1):
        for rule in line.rules:
            scopes.setdefault((rule.proto, rule.addr), []).append((rule.lo, rule.hi, lineno))
    order = sorted(scopes, key=lambda s: (list(PROTOCOLS).index(s[0]), address_key(s[1])))
    for proto, addr in order:
        located = sorted(scopes[proto, addr])
        reach: tuple[int, int, int] | None = None  # the rule reaching highest so far
        for lo, hi, lineno in located:
            if reach is not None and lo <= reach[1]:
                other_lo, other_hi, other_line = reach
                first, second = sorted((lineno, other_line))
                a = format_ranges(proto, [(other_lo, other_hi)], addr)
                b = format_ranges(proto, [(lo, hi)], addr)
                if (first, second) not in seen or first == second:
                    seen.add((first, second))
                    if first == second:
                        errors.append((first, f"{b} overlaps {a} on the same line"))
                    elif a == b:
                        errors.append((second, f"{b} is also given on line {first}"))
                    else:
                        there, here = (a, b) if other_line == first else (b, a)
                        errors.append((second, f"{here} overlaps {there} on line {first}"))
            if reach is None or hi > reach[1]:
                reach = (lo, hi, lineno)
    return errors


def parse_document(text: str, path: str = "<string>") -> Document:
    """Parse a whole file. Raises ConfigError with every bad line."""
    raw = text.split("\n")
    if raw and raw[-1] == "":
        raw.pop()
    lines: list[Line] = []
    errors: list[tuple[int, str]] = []
    for lineno, line_text in enumerate(raw, 1):
        if line_text.endswith("\r"):
            line_text = line_text[:-1]
        line, errs = _parse_line(line_text)
        lines.append(line)
        errors.extend((lineno, msg) for msg in errs)
    errors.extend(_overlaps(lines))
    if errors:
        errors.sort(key=lambda e: e[0])
        raise ConfigError([f"{path}:{lineno}: {msg}" for lineno, msg in errors])
    return Document(path, lines)


def parse(text: str, path: str = "<string>") -> list[Rule]:
    """The rules of a file's text, sorted. Raises ConfigError."""
    return parse_document(text, path).rules()


def read_document(path: str, missing_ok: bool = True) -> Document:
    """Read and parse ``path``; a missing file is an empty table if ``missing_ok``."""
    try:
        # newline="": lines end at "\n" only (parse_document drops a "\r"
        # before it), so FILE:LINE counts lines as grep -n and editors do; a
        # lone "\r" is no line break.
        with open(path, encoding="utf-8", errors="surrogateescape", newline="") as f:
            text = f.read()
    except FileNotFoundError:
        if missing_ok:
            return Document(path)
        raise
    return parse_document(text, path)


def _owner_key(rule: Rule) -> tuple[int | None, int | None, bool]:
    if rule.any_user:
        return (None, None, True)
    return (rule.uid, rule.gid, False)


def format_owner(rule: Rule, numeric: bool = False) -> str:
    return names.format_owner(rule.uid, rule.gid, rule.any_user, numeric)


def format_lines(rules: Iterable[Rule], numeric: bool = False) -> list[str]:
    """Rule lines for ``rules``: consecutive rules of one protocol, address
    and owner share a line."""
    out: list[str] = []
    group: list[Rule] = []

    def flush() -> None:
        if group:
            first = group[0]
            spans = [(r.lo, r.hi) for r in group]
            ports = format_ranges(first.proto, spans, first.addr)
            out.append(f"{ports} {format_owner(first, numeric)}")
            group.clear()

    for rule in sorted_rules(rules):
        if group and (
            (group[0].proto, group[0].addr) != (rule.proto, rule.addr)
            or _owner_key(group[0]) != _owner_key(rule)
        ):
            flush()
        group.append(rule)
    flush()
    return out


def format(rules: Iterable[Rule], header: str | None = None, numeric: bool = False) -> str:
    """File text for ``rules``; ``parse(format(rules)) == sorted_rules(rules)``."""
    text = ""
    if header:
        text = "".join(f"# {h}".rstrip() + "\n" for h in header.split("\n"))
    lines = format_lines(rules, numeric)
    if lines and text:
        text += "\n"
    # Align the owner column for people reading the file.
    width = max((len(line.split(" ", 1)[0]) for line in lines), default=0)
    for line in lines:
        ports, owner = line.split(" ", 1)
        text += f"{ports:<{width}}  {owner}\n" if len(ports) < 40 else f"{ports} {owner}\n"
    return text


# Comparing tables ---------------------------------------------------------

OwnerKey = tuple[int | None, int | None, bool]


@dataclass(frozen=True)
class Difference:
    """Ports owned differently: ``wanted`` (file) vs ``live`` (kernel); None = unowned.

    ``addr``: the address of the rules compared ("" for rules on every address).
    """

    proto: str
    lo: int
    hi: int
    wanted: Rule | None
    live: Rule | None
    addr: str = ""


def _owner_at(starts: list[int], rules: list[Rule], port: int) -> Rule | None:
    i = bisect.bisect_right(starts, port) - 1
    if i >= 0 and rules[i].lo <= port <= rules[i].hi:
        return rules[i]
    return None


def _by_scope(rules: Iterable[Rule]) -> dict[tuple[str, str], list[Rule]]:
    """Rules by protocol and address, each list sorted by port."""
    out: dict[tuple[str, str], list[Rule]] = {}
    for rule in sorted_rules(rules):
        out.setdefault((rule.proto, rule.addr), []).append(rule)
    return out


def differences(wanted: Iterable[Rule], live: Iterable[Rule]) -> list[Difference]:
    """Port by port, where ``wanted`` and ``live`` give a port to different owners.

    Scope by scope: rules on an address are compared with the other side's
    rules on that address, rules on every address with rules on every address.
    """
    a_scopes, b_scopes = _by_scope(wanted), _by_scope(live)
    scopes = sorted(a_scopes.keys() | b_scopes.keys(), key=lambda s: (s[0], address_key(s[1])))
    out: list[Difference] = []
    for proto, addr in scopes:
        a, b = a_scopes.get((proto, addr), []), b_scopes.get((proto, addr), [])
        a_starts, b_starts = [r.lo for r in a], [r.lo for r in b]
        points = sorted({r.lo for r in a + b} | {r.hi + 1 for r in a + b})
        for p, q in itertools.pairwise(points):
            ra, rb = _owner_at(a_starts, a, p), _owner_at(b_starts, b, p)
            ka = _owner_key(ra) if ra else None
            kb = _owner_key(rb) if rb else None
            if ka == kb:
                continue
            prev = out[-1] if out else None
            if (
                prev is not None
                and (prev.proto, prev.addr) == (proto, addr)
                and prev.hi + 1 == p
                and (_owner_key(prev.wanted) if prev.wanted else None) == ka
                and (_owner_key(prev.live) if prev.live else None) == kb
            ):
                out[-1] = Difference(proto, prev.lo, q - 1, prev.wanted, prev.live, addr)
            else:
                out.append(Difference(proto, p, q - 1, ra, rb, addr))
    return out


def _with_ports(rule: Rule, lo: int, hi: int) -> Rule:
    return rule._replace(lo=lo, hi=hi)


def diff_lines(wanted: Iterable[Rule], live: Iterable[Rule], numeric: bool = False) -> list[str]:
    """``- PROTO/PORTS OWNER`` (live only) and ``+ ...`` (wanted only) lines."""
    out: list[str] = []
    for d in differences(wanted, live):
        if d.live is not None:
            out.append("- " + format_lines([_with_ports(d.live, d.lo, d.hi)], numeric)[0])
        if d.wanted is not None:
            out.append("+ " + format_lines([_with_ports(d.wanted, d.lo, d.hi)], numeric)[0])
    return out


# Writing ------------------------------------------------------------------


def lock_path(path: str) -> str:
    return path + ".lock"


@contextlib.contextmanager
def locked(path: str) -> Iterator[None]:
    """Hold an exclusive flock on ``PATH.lock`` (never the file being replaced)."""
    fd = os.open(lock_path(path), os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        remove_stale_temps(path)
        yield
    finally:
        os.close(fd)  # closing drops the lock


def _temp_prefix(path: str) -> str:
    return "." + os.path.basename(path) + "."


def remove_stale_temps(path: str) -> None:
    """Remove temp files a killed writer left behind. Only call with the lock held:
    every portctl writer holds it, so any temp file seen then is stale."""
    directory = os.path.dirname(os.path.abspath(path))
    prefix = _temp_prefix(path)
    with contextlib.suppress(OSError), os.scandir(directory) as entries:
        for entry in entries:
            if entry.name.startswith(prefix) and entry.name.endswith(".tmp"):
                with contextlib.suppress(OSError):
                    os.unlink(entry.path)


def atomic_write(path: str, text: str, default_mode: int = 0o644) -> None:
    """Replace ``path`` with ``text``: temp file in the same directory, fsync,
    rename, fsync the directory. Keeps the old file's mode (and owner if we can).
    Readers see the old file or the new one, never a mix, even after a crash."""
    path = os.path.realpath(path)  # a symlinked table stays a symlink
    directory = os.path.dirname(path)
    try:
        st: os.stat_result | None = os.stat(path)
    except FileNotFoundError:
        st = None
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=_temp_prefix(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "w", encoding="utf-8", errors="surrogateescape") as f:
            f.write(text)
            f.flush()
            os.fchmod(f.fileno(), stat.S_IMODE(st.st_mode) if st else default_mode)
            if st is not None and (st.st_uid != os.geteuid() or st.st_gid != os.getegid()):
                with contextlib.suppress(PermissionError):
                    os.fchown(f.fileno(), st.st_uid, st.st_gid)
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    dfd = os.open(directory, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
    try:
        try:
            os.fsync(dfd)
        except OSError as e:  # some filesystems cannot fsync a directory
            if e.errno not in (errno.EINVAL, errno.ENOTSUP):
                raise
    finally:
        os.close(dfd)
