"""An in-memory stand-in for portctl.netlink.Client, for host tests of the CLI.

It decides as the module does (docs/design.md): rules of one protocol on
one address (or on every address) never overlap; a bind to an address is
decided by the rule on that address, else by the rule on every address; a
wildcard bind by every rule of the port in its scope.
"""

from __future__ import annotations

import ipaddress
import itertools
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from types import TracebackType

from click.testing import CliRunner, Result

from portctl import netlink
from portctl.model import PortRange, Rule, sorted_rules
from portctl.ports import subtract_all


@dataclass
class FakeKernel:
    rules: list[Rule] = field(default_factory=list)
    loaded: bool = True
    privileged: bool = True
    root_exempt: bool = False
    generation: int = 0
    granted: int = 0
    denied: int = 0
    # Per-rule counters (granted, denied), for `list --stats`; a module of
    # version 2 has none (stats False), nor events_dropped (None).
    counters: dict[Rule, tuple[int, int]] = field(default_factory=dict)
    stats: bool = True
    events_dropped: int | None = 0
    calls: list[str] = field(default_factory=list)
    checks: list[tuple[str, int, str]] = field(default_factory=list)  # (proto, port, addr)
    # Another writer: called after each read of the table, while it returns
    # True, to change the table behind the reader's back (a race, in order).
    intruder: Callable[[FakeKernel], bool] | None = None

    def factory(self) -> FakeClient:
        if not self.loaded:
            raise netlink.ModuleNotLoaded()
        return FakeClient(self)


class FakeClient:
    def __init__(self, kernel: FakeKernel) -> None:
        self.k = kernel

    def __enter__(self) -> FakeClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        pass

    def _admin(self, name: str) -> None:
        self.k.calls.append(name)
        if not self.k.privileged:
            raise netlink.NotPermitted()

    def table(self) -> tuple[int, list[Rule]]:
        seen = self.k.generation, sorted_rules(self.k.rules)
        if self.k.intruder is not None and not self.k.intruder(self.k):
            self.k.intruder = None
        return seen

    def rules(self) -> list[Rule]:
        return self.table()[1]

    def rule_stats(self) -> list[netlink.RuleStats]:
        if not self.k.stats:
            raise netlink.older_module(netlink.STATS_UNKNOWN)
        return [
            netlink.RuleStats(r, *self.k.counters.get(r, (0, 0)))
            for r in sorted_rules(self.k.rules)
        ]

    def replace(self, rules: Sequence[Rule], expect_generation: int | None = None) -> None:
        self._admin("replace")
        if expect_generation is not None and expect_generation != self.k.generation:
            raise netlink.TableChanged("the table changed since this writer read it")
        ordered = sorted_rules(rules)
        for r in ordered:
            if r.addr and ipaddress.ip_address(r.addr).is_unspecified:
                raise netlink.KernelRejected("a rule on 0.0.0.0 or ::")
        # Sorted by protocol, address, port: an overlap shows between neighbours.
        for a, b in itertools.pairwise(ordered):
            if a.overlaps(b):
                raise netlink.KernelRejected("rules overlap")
        self.k.rules = ordered
        self.k.generation += 1

    def add(self, rules: Sequence[Rule]) -> None:
        self._admin("add")
        self.replace([*self.k.rules, *rules])

    def release(self, ranges: Sequence[PortRange]) -> None:
        self._admin("release")
        self.k.rules = sorted_rules(subtract_all(self.k.rules, ranges))
        self.k.generation += 1

    def flush(self) -> None:
        self._admin("flush")
        self.k.rules = []

    def status(self) -> netlink.Status:
        return netlink.Status(
            version="0.1.0-fake",
            generation=self.k.generation,
            rule_count=len(self.k.rules),
            granted=self.k.granted,
            denied=self.k.denied,
            root_exempt=self.k.root_exempt,
            events_dropped=self.k.events_dropped,
        )

    def check(
        self,
        uid: int,
        gid: int | None,
        groups: Sequence[int],
        proto: str,
        port: int,
        addr: str = "",
    ) -> netlink.CheckResult:
        self.k.checks.append((proto, port, addr))
        scope = self.deciding(proto, port, addr)
        if not scope:
            return netlink.CheckResult("pass", None)

        def grants(r: Rule) -> bool:
            return (
                r.any_user
                or (r.uid is not None and r.uid == uid)
                or (r.gid is not None and (r.gid == gid or r.gid in groups))
            )

        # Every rule in scope must grant (a wildcard bind covers them all).
        refused = [r for r in scope if not grants(r)]
        if refused:
            return netlink.CheckResult("deny", refused[0])
        return netlink.CheckResult("grant", scope[0])

    def deciding(self, proto: str, port: int, addr: str) -> list[Rule]:
        """The rules that decide a bind to addr and port: on an address, its
        rule or else the rule on every address; 0.0.0.0 (an IPv4 socket's
        wildcard), the rule on every address and every IPv4 address's; ::
        or no address, every rule of the port (IPV6_V6ONLY can change
        during the bind, so the kernel takes :: as dual-stack)."""
        rules = sorted_rules(r for r in self.k.rules if r.proto == proto and r.lo <= port <= r.hi)
        if addr in ("", "::"):
            return rules
        if addr == "0.0.0.0":
            return [r for r in rules if not r.addr or ipaddress.ip_address(r.addr).version == 4]
        exact = [r for r in rules if r.addr == addr]
        return exact or [r for r in rules if not r.addr]


def run_portctl(table: Path, *args: str) -> Result:
    """portctl --file TABLE ARGS..., in-process."""
    from portctl import cli

    return CliRunner().invoke(cli.cli, ["--file", str(table), *args], prog_name="portctl")


def complete(words: str) -> str:
    """What portctl's bash completion offers for the last of words."""
    from portctl import cli

    env = {
        "_PORTCTL_COMPLETE": "bash_complete",
        "COMP_WORDS": words,
        "COMP_CWORD": str(len(words.split()) - 1),
    }
    return CliRunner().invoke(cli.cli, [], prog_name="portctl", env=env).stdout
