"""PORTS arguments: ``tcp/80``, ``udp/53``, ``tcp/8000-8099``, ``tcp/80,443``.

One spelling only: the protocol first, then ``/``, then a comma list of ports
and ``lo-hi`` ranges. ``80/tcp`` is refused with a message giving the right
spelling.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence

from portctl.model import PROTOCOLS, PortRange, Rule

PORT_MIN = 1
PORT_MAX = 65535

_ITEM_RE = re.compile(r"([0-9]{1,6})(?:-([0-9]{1,6}))?")


class PortsError(ValueError):
    """A PORTS spelling that is not valid; ``str()`` is a message for people."""


def _protos() -> str:
    return ", ".join(PROTOCOLS)


def parse_ports(spec: str) -> list[PortRange]:
    """Parse ``PROTO/PORTS`` into port ranges, in the order written."""
    proto, slash, ports = spec.partition("/")
    if not slash:
        if _ITEM_RE.fullmatch(spec) or spec.replace(",", "").replace("-", "").isdigit():
            raise PortsError(
                f"`{spec}` has no protocol: write tcp/{spec}, udp/{spec} or sctp/{spec}"
            )
        raise PortsError(f"`{spec}` is not PROTO/PORTS: write e.g. tcp/80, udp/53, tcp/8000-8099")
    if ports.lower() in PROTOCOLS and proto.lower() not in PROTOCOLS:
        raise PortsError(f"`{spec}`: the protocol comes first: write {ports.lower()}/{proto}")
    if proto not in PROTOCOLS:
        if proto.lower() in PROTOCOLS:
            raise PortsError(f"`{spec}`: protocols are lowercase: write {proto.lower()}/{ports}")
        raise PortsError(f"`{spec}`: unknown protocol `{proto}` (use {_protos()})")
    if not ports:
        raise PortsError(f"`{spec}`: no ports after `{proto}/`")
    out: list[PortRange] = []
    for item in ports.split(","):
        if not item:
            raise PortsError(f"`{spec}`: empty item in the port list")
        m = _ITEM_RE.fullmatch(item)
        if m is None:
            raise PortsError(
                f"`{spec}`: bad port `{item}`: ports are numbers {PORT_MIN}-{PORT_MAX}"
                " or ranges lo-hi"
            )
        lo = int(m.group(1))
        hi = int(m.group(2)) if m.group(2) is not None else lo
        for p in (lo, hi):
            if not PORT_MIN <= p <= PORT_MAX:
                raise PortsError(f"`{spec}`: port {p} is out of range {PORT_MIN}-{PORT_MAX}")
        if lo > hi:
            raise PortsError(f"`{spec}`: range {lo}-{hi} is backwards: write {hi}-{lo}")
        out.append(PortRange(proto, lo, hi))
    return out


def range_text(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def format_ranges(proto: str, spans: Iterable[tuple[int, int]]) -> str:
    """``tcp/80,443,8000-8099`` from (lo, hi) pairs."""
    return f"{proto}/" + ",".join(range_text(lo, hi) for lo, hi in spans)


def merge_ranges(ranges: Iterable[PortRange]) -> list[PortRange]:
    """Union of ranges: sorted, overlapping and adjacent ranges of a protocol joined."""
    out: list[PortRange] = []
    for r in sorted(ranges, key=lambda r: (r.proto, r.lo, r.hi)):
        if out and out[-1].proto == r.proto and r.lo <= out[-1].hi + 1:
            last = out[-1]
            out[-1] = PortRange(r.proto, last.lo, max(last.hi, r.hi))
        else:
            out.append(r)
    return out


def subtract(rule: Rule, ranges: Sequence[PortRange]) -> list[Rule]:
    """What is left of ``rule`` once the ports of ``ranges`` are taken away."""
    pieces = [(rule.lo, rule.hi)]
    for r in ranges:
        if r.proto != rule.proto:
            continue
        nxt: list[tuple[int, int]] = []
        for lo, hi in pieces:
            if r.hi < lo or r.lo > hi:
                nxt.append((lo, hi))
                continue
            if lo < r.lo:
                nxt.append((lo, r.lo - 1))
            if r.hi < hi:
                nxt.append((r.hi + 1, hi))
        pieces = nxt
    if pieces == [(rule.lo, rule.hi)]:
        return [rule]
    return [
        Rule(rule.proto, lo, hi, uid=rule.uid, gid=rule.gid, any_user=rule.any_user)
        for lo, hi in pieces
    ]


def subtract_all(rules: Iterable[Rule], ranges: Sequence[PortRange]) -> list[Rule]:
    out: list[Rule] = []
    for rule in rules:
        out.extend(subtract(rule, ranges))
    return out
