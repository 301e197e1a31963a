"""The rule model shared by the file format, the CLI and the netlink client."""

from __future__ import annotations

from dataclasses import dataclass
from typing import NamedTuple

PROTOCOLS: dict[str, int] = {"tcp": 6, "udp": 17, "sctp": 132}
"""Protocol names as written in rules, and their IPPROTO numbers."""

PROTO_NAMES: dict[int, str] = {num: name for name, num in PROTOCOLS.items()}


class Rule(NamedTuple):
    """One protocol's port range given to an owner.

    Exactly one of: ``any_user`` is True, or at least one of ``uid`` and
    ``gid`` is set (both set: the user or any member of the group).

    A named tuple (immutable, ordered by its fields), not a dataclass: so a
    table transposes into columns at C speed (``zip(*rules)``), which is how
    portctl.netlink.encode_rules packs 65,536 rules without Python work per
    rule.
    """

    proto: str
    lo: int
    hi: int
    uid: int | None = None
    gid: int | None = None
    any_user: bool = False

    def ports(self) -> str:
        return str(self.lo) if self.lo == self.hi else f"{self.lo}-{self.hi}"

    def overlaps(self, other: Rule) -> bool:
        return self.proto == other.proto and self.lo <= other.hi and other.lo <= self.hi


@dataclass(frozen=True)
class PortRange:
    """A protocol and ports, without an owner: what `release` and `check` take."""

    proto: str
    lo: int
    hi: int
