"""PORTS arguments: ``tcp/80``, ``udp/53``, ``tcp/8000-8099``, ``tcp/80,443``,
and on one local address: ``tcp/127.0.0.1:53``, ``udp/[::1]:53``.

One spelling only: the protocol first, then ``/``, then optionally an address
and ``:`` (an IPv6 address in brackets, as in URLs), then a comma list of
ports and ``lo-hi`` ranges. ``80/tcp`` is refused with a message giving the
right spelling. Without an address, PORTS stand for every local address.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable, Sequence

from portctl.model import PROTOCOLS, PortRange, Rule, canonical, rule_key, scope_text

PORT_MIN = 1
PORT_MAX = 65535

_ITEM_RE = re.compile(r"([0-9]{1,6})(?:-([0-9]{1,6}))?")
# An address and ports written without the protocol: 127.0.0.1:53, [::1]:53.
_NO_PROTO_RE = re.compile(r"[0-9A-Fa-f.:\[\]%]*:[0-9,-]+")
_PORTS_RE = re.compile(r"[0-9,-]+")


class PortsError(ValueError):
    """A PORTS spelling that is not valid; ``str()`` is a message for people."""


def _protos() -> str:
    return ", ".join(PROTOCOLS)


def _address(spec: str, text: str, ports: str, wildcard: bool) -> str:
    """The canonical text of the address ``text`` written in ``spec``.

    ``wildcard``: 0.0.0.0 and :: are allowed (a bind asked about), not in
    rules, where they would mean every address: a rule has no address then.
    """
    proto = spec.partition("/")[0]
    ports = ports or "PORTS"
    if "%" in text:
        bare, _, zone = text.partition("%")
        raise _zone_error(spec, bare, zone, ports)
    try:
        ip = ipaddress.ip_address(text)
    except ValueError:
        raise PortsError(
            f"`{spec}`: bad address `{text}`: write an IPv4 address (127.0.0.1) "
            "or an IPv6 one in brackets ([::1])"
        ) from None
    addr = canonical(ip)  # ::ffff:127.0.0.1 is 127.0.0.1
    if not wildcard and ipaddress.ip_address(addr).is_unspecified:
        raise PortsError(
            f"`{spec}`: {text} means every address: write the rule without an "
            f"address, as {proto}/{ports}"
        )
    return addr


def _split_address(spec: str, proto: str, rest: str, wildcard: bool) -> tuple[str, str]:
    """``rest`` (after ``PROTO/``) as (canonical address or "", ports text)."""
    if rest.startswith("["):
        inside, close, after = rest[1:].partition("]")
        if not close:
            raise PortsError(f"`{spec}`: no `]` after the address `[{inside}`")
        if not after.startswith(":"):
            raise PortsError(
                f"`{spec}`: the ports come after the address and a `:`: "
                f"write {proto}/[{inside}]:PORTS"
            )
        return _address(spec, inside, after[1:], wildcard), after[1:]
    head, colon, ports = rest.rpartition(":")
    if not colon:
        if "." in rest and _is_address(rest):
            raise PortsError(f"`{spec}`: no ports after the address: write {spec}:PORTS")
        return "", rest
    if ":" in head:
        # IPv6 without brackets: where the address ends cannot be told (::1:53).
        if "%" in rest:
            bare, _, zone = rest.partition("%")
            zone, _, ports = zone.partition(":")
            raise _zone_error(spec, bare, zone, ports)
        if _is_address(head) and _PORTS_RE.fullmatch(ports):
            example = f"{proto}/[{head}]:{ports}"
        else:
            example = f"{proto}/[{rest}]:PORTS"
        raise PortsError(
            f"`{spec}`: an IPv6 address goes in brackets, then `:` and the ports: "
            f"write e.g. {example}"
        )
    if not head:
        raise PortsError(
            f"`{spec}`: no address before `:`: write {proto}/ADDRESS:PORTS, or "
            f"{proto}/{ports or 'PORTS'} for every address"
        )
    return _address(spec, head, ports, wildcard), ports


def _zone_error(spec: str, bare: str, zone: str, ports: str) -> PortsError:
    proto = spec.partition("/")[0]
    return PortsError(
        f"`{spec}`: zone ids (`%{zone}`) are not supported: a rule holds on an "
        f"address whatever the interface; write {proto}/[{bare}]:{ports or 'PORTS'}"
    )


def _is_address(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def parse_ports(spec: str, wildcard: bool = False) -> list[PortRange]:
    """Parse ``PROTO/[ADDRESS:]PORTS`` into port ranges, in the order written.

    ``wildcard``: the address may be 0.0.0.0 or :: (`portctl check` asks
    about such binds; a rule cannot hold on them).
    """
    proto, slash, rest = spec.partition("/")
    if not slash:
        if (
            _ITEM_RE.fullmatch(spec)
            or spec.replace(",", "").replace("-", "").isdigit()
            or _NO_PROTO_RE.fullmatch(spec)
        ):
            raise PortsError(
                f"`{spec}` has no protocol: write tcp/{spec}, udp/{spec} or sctp/{spec}"
            )
        raise PortsError(f"`{spec}` is not PROTO/PORTS: write e.g. tcp/80, udp/53, tcp/8000-8099")
    if rest.lower() in PROTOCOLS and proto.lower() not in PROTOCOLS:
        raise PortsError(f"`{spec}`: the protocol comes first: write {rest.lower()}/{proto}")
    if proto not in PROTOCOLS:
        if proto.lower() in PROTOCOLS:
            raise PortsError(f"`{spec}`: protocols are lowercase: write {proto.lower()}/{rest}")
        raise PortsError(f"`{spec}`: unknown protocol `{proto}` (use {_protos()})")
    addr, ports = _split_address(spec, proto, rest, wildcard)
    if not ports:
        raise PortsError(f"`{spec}`: no ports after `{spec}`")
    return [PortRange(proto, lo, hi, addr) for lo, hi in _port_items(spec, ports)]


def _port_items(spec: str, ports: str) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
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
        out.append((lo, hi))
    return out


def range_text(lo: int, hi: int) -> str:
    return str(lo) if lo == hi else f"{lo}-{hi}"


def format_ranges(proto: str, spans: Iterable[tuple[int, int]], addr: str = "") -> str:
    """``tcp/80,443,8000-8099`` (or ``tcp/127.0.0.1:80,443``) from (lo, hi) pairs."""
    return scope_text(proto, addr) + ",".join(range_text(lo, hi) for lo, hi in spans)


def merge_ranges(ranges: Iterable[PortRange]) -> list[PortRange]:
    """Union of ranges: sorted, overlapping and adjacent ranges of a protocol
    and address joined."""
    out: list[PortRange] = []
    for r in sorted(ranges, key=rule_key):
        last = out[-1] if out else None
        if last and (last.proto, last.addr) == (r.proto, r.addr) and r.lo <= last.hi + 1:
            out[-1] = PortRange(r.proto, last.lo, max(last.hi, r.hi), r.addr)
        else:
            out.append(r)
    return out


def subtract(rule: Rule, ranges: Sequence[PortRange]) -> list[Rule]:
    """What is left of ``rule`` once the ports of ``ranges`` are taken away.

    Scope-exact, as the kernel's DEL_RULES: ranges on an address take ports
    off rules on that address only; ranges without one, off rules on every
    address only.
    """
    pieces = [(rule.lo, rule.hi)]
    for r in ranges:
        if r.proto != rule.proto or r.addr != rule.addr:
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
    return [rule._replace(lo=lo, hi=hi) for lo, hi in pieces]


def subtract_all(rules: Iterable[Rule], ranges: Sequence[PortRange]) -> list[Rule]:
    out: list[Rule] = []
    for rule in rules:
        out.extend(subtract(rule, ranges))
    return out
