"""The rule model shared by the file format, the CLI and the netlink client."""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from typing import NamedTuple

PROTOCOLS: dict[str, int] = {"tcp": 6, "udp": 17, "sctp": 132}
"""Protocol names as written in rules, and their IPPROTO numbers."""

PROTO_NAMES: dict[int, str] = {num: name for name, num in PROTOCOLS.items()}

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address


class Rule(NamedTuple):
    """One protocol's port range given to an owner, on every local address
    (``addr`` empty) or on one (``addr``, its text as :func:`canonical` gives it).

    Exactly one of: ``any_user`` is True, or at least one of ``uid`` and
    ``gid`` is set (both set: the user or any member of the group).

    A named tuple (immutable), not a dataclass: so a table transposes into
    columns at C speed (``zip(*rules)``), which is how
    portctl.netlink.encode_rules packs 65,536 rules without Python work per
    rule. Sort rules with :func:`rule_key`, not by their fields: a rule on an
    address may share its ports with a rule on every address, and then the
    fields compare a uid with None.
    """

    proto: str
    lo: int
    hi: int
    uid: int | None = None
    gid: int | None = None
    any_user: bool = False
    addr: str = ""

    def ports(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"

    def overlaps(self, other: Rule) -> bool:
        """Whether both rules cannot be in one table: a rule on an address
        may overlap a rule on every address (it decides for its address)."""
        return (
            self.proto == other.proto
            and self.addr == other.addr
            and self.lo <= other.hi
            and other.lo <= self.hi
        )

    def text(self) -> str:
        """``tcp/80``, ``tcp/127.0.0.1:53``, ``udp/[::1]:53-54``: the PORTS spelling."""
        return scope_text(self.proto, self.addr) + self.ports()


@dataclass(frozen=True)
class PortRange:
    """A protocol and ports, without an owner: what `release` and `check` take.

    ``addr`` as in :class:`Rule`: empty for every address.
    """

    proto: str
    lo: int
    hi: int
    addr: str = ""


def address_bytes(addr: str) -> bytes:
    """The 4 (IPv4) or 16 (IPv6) bytes of a canonical address, network order."""
    return ipaddress.ip_address(addr).packed


def canonical(ip: IPAddress) -> str:
    """An address's text in rules: an IPv4-mapped IPv6 address is its IPv4
    address (the kernel holds it so, and a bind to it is a bind to that)."""
    if isinstance(ip, ipaddress.IPv6Address) and ip.ipv4_mapped is not None:
        return str(ip.ipv4_mapped)
    return str(ip)


def address_from_bytes(data: bytes) -> str:
    """The canonical text of 4 or 16 bytes from the kernel; ValueError otherwise."""
    if len(data) == 4:
        return str(ipaddress.IPv4Address(data))
    if len(data) == 16:
        return canonical(ipaddress.IPv6Address(data))
    raise ValueError(f"an address of {len(data)} bytes")


def scope_text(proto: str, addr: str) -> str:
    """What comes before the ports: ``tcp/``, ``tcp/127.0.0.1:``, ``tcp/[::1]:``."""
    if not addr:
        return f"{proto}/"
    return f"{proto}/[{addr}]:" if ":" in addr else f"{proto}/{addr}:"


@functools.lru_cache(maxsize=4096)
def address_key(addr: str) -> tuple[int, int]:
    """Sort key of an address: every address first, then IPv4, then IPv6, by value."""
    if not addr:
        return (0, 0)
    ip = ipaddress.ip_address(addr)
    return (ip.version, int(ip))


def rule_key(rule: Rule | PortRange) -> tuple[str, tuple[int, int], int, int]:
    """Rules in table order: by protocol, address, ports. Unique in a valid
    table (rules of one protocol and address never overlap)."""
    return (rule.proto, address_key(rule.addr), rule.lo, rule.hi)


def sorted_rules(rules: Iterable[Rule]) -> list[Rule]:
    return sorted(rules, key=rule_key)
