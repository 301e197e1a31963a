"""portctl: give ports to users and groups, as chown gives files.

The admin CLI of the portowners kernel module. See portctl(8), portowners(5)
and docs/portctl.md.
"""

from __future__ import annotations

import contextlib
import json
import os
import random
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from types import TracebackType
from typing import Any, NoReturn, Protocol

import click
from click.shell_completion import CompletionItem

from portctl import __version__, config, events, holders, hooks, names, netlink, watch
from portctl.model import PROTOCOLS, PortRange, Rule, scope_text, sorted_rules
from portctl.ports import PortsError, merge_ranges, parse_ports, range_text, subtract_all
from portctl.render import owner_text, rule_json, rule_text

UNPRIVILEGED_PORT_START = "/proc/sys/net/ipv4/ip_unprivileged_port_start"
CHECK_MAX_PORTS = 4096
"""Most ports one `portctl check` asks the kernel about."""
REPLACE_TRIES = 10
"""Times a read-modify-replace of the kernel table is tried (see edit_table)."""

EXIT_OK, EXIT_FAIL, EXIT_USAGE = 0, 1, 2


class KernelClient(Protocol):
    """What portctl needs of :class:`portctl.netlink.Client` (tests use a fake)."""

    def __enter__(self) -> KernelClient: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...
    def table(self) -> tuple[int, list[Rule]]: ...
    def rules(self) -> list[Rule]: ...
    def rule_stats(self) -> list[netlink.RuleStats]: ...
    def replace(self, rules: Sequence[Rule], expect_generation: int | None = None) -> None: ...
    def release(self, ranges: Sequence[PortRange]) -> None: ...
    def status(self) -> netlink.Status: ...
    def check(
        self,
        uid: int,
        gid: int | None,
        groups: Sequence[int],
        proto: str,
        port: int,
        addr: str = "",
    ) -> netlink.CheckResult: ...


client_factory: Callable[[], KernelClient] = netlink.Client
"""Opens the kernel connection; host tests replace it with an in-memory fake."""

listener_factory: Callable[[bool], watch.EventListener] = events.Listener
"""Joins the event groups (`watch`); host tests replace it with a script."""

socket_source: Callable[[Sequence[str]], list[holders.Socket]] = holders.dump_sockets
"""The sockets of protocols, from sock_diag (`list --holders`); tests replace it."""

process_source: Callable[[Iterable[int]], dict[int, list[holders.Process]]] = (
    holders.socket_processes
)
"""The processes having each socket inode open (`list --holders`); tests replace it."""


def unprivileged_port_start() -> int:
    """The kernel's ip_unprivileged_port_start (1024 if it cannot be read)."""
    try:
        with open(UNPRIVILEGED_PORT_START) as f:
            return int(f.read().strip())
    except (OSError, ValueError):
        return 1024


class Fail(click.ClickException):
    """A failure explained for people: ``portctl: message`` on stderr, exit 1."""

    exit_code = EXIT_FAIL

    def show(self, file: Any = None) -> None:
        click.echo(f"portctl: {self.format_message()}", err=True)


def fail(message: str) -> NoReturn:
    raise Fail(message)


def edit_table(client: KernelClient, change: Callable[[list[Rule]], list[Rule]]) -> None:
    """Replace the kernel table with change(table), losing no other writer's change.

    The replace is conditional on the generation read: if another process
    changed the table in between, the kernel refuses it (ESTALE) and it is
    done again from the new table, REPLACE_TRIES times at most.
    """
    for attempt in range(REPLACE_TRIES):
        generation, current = client.table()
        try:
            client.replace(change(current), expect_generation=generation)
            return
        except netlink.TableChanged:
            # Back off by chance, longer each time (up to 2 s), so two
            # writers stop colliding even on a slow, busy machine.
            time.sleep(random.uniform(0, min(2.0, 0.05 * 2**attempt)))
    raise netlink.PortownersError(
        f"another writer changed the port table while portctl was changing it, "
        f"{REPLACE_TRIES} times in a row: gave up"
    )


@contextlib.contextmanager
def kernel() -> Iterator[KernelClient]:
    """A client; the module's errors become messages for people."""
    try:
        with client_factory() as client:
            yield client
    except netlink.PortownersError as e:
        fail(str(e))


# Settings ------------------------------------------------------------------


@dataclass
class Settings:
    file: str


def _file(ctx: click.Context, override: str | None) -> str:
    if override:
        return override
    settings = ctx.find_object(Settings)
    return settings.file if settings else config.DEFAULT_PATH


# Parameter types and completion -------------------------------------------


def complete_users(ctx: click.Context, param: click.Parameter, incomplete: str) -> list[str]:
    return [u for u in names.all_users() if u.startswith(incomplete)]


def complete_owner(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    if ":" in incomplete:
        user, _, group = incomplete.partition(":")
        return [CompletionItem(f"{user}:{g}") for g in names.all_groups() if g.startswith(group)]
    items = [CompletionItem(u) for u in names.all_users() if u.startswith(incomplete)]
    if "*".startswith(incomplete):
        items.append(CompletionItem("*", help="any user"))
    return items


def complete_ports(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    if "/" not in incomplete:
        return [CompletionItem(f"{p}/") for p in PROTOCOLS if p.startswith(incomplete)]
    return []


def ports_arg(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...], wildcard: bool = False
) -> list[PortRange]:
    """Callback: PORTS arguments to port ranges (bad spelling: usage error, exit 2)."""
    out: list[PortRange] = []
    for spec in value:
        try:
            out.extend(parse_ports(spec, wildcard))
        except PortsError as e:
            raise click.BadParameter(str(e), ctx=ctx, param=param) from None
    return out


def bind_ports_arg(
    ctx: click.Context, param: click.Parameter, value: tuple[str, ...]
) -> list[PortRange]:
    """Callback: the binds `check` asks about, where 0.0.0.0 and :: (wildcard
    binds) are addresses too, unlike in rules."""
    return ports_arg(ctx, param, value, wildcard=True)


def owner_arg(ctx: click.Context, param: click.Parameter, value: str) -> names.Owner:
    """Callback: OWNER to an Owner (bad spelling or unknown name: usage error)."""
    try:
        return names.parse_owner(value)
    except (names.OwnerError, names.UnknownName) as e:
        raise click.BadParameter(str(e), ctx=ctx, param=param) from None


# Output helpers -------------------------------------------------------------


def emit_json(data: Any) -> None:
    click.echo(json.dumps(data, indent=2, sort_keys=False))


def table(rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip()
        for row in rows
    )


def _read_doc(path: str, missing_ok: bool = True) -> config.Document:
    """Read the table file; its errors are printed, then portctl fails."""
    try:
        return config.read_document(path, missing_ok=missing_ok)
    except FileNotFoundError:
        fail(f"{path}: no such file")
    except config.ConfigError as e:
        for message in e.messages:
            click.echo(message, err=True)
        n = len(e.messages)
        fail(f"{path} has {n} error{'s' if n != 1 else ''}: nothing changed")
    except OSError as e:
        fail(f"cannot read {path}: {e.strerror}")


def _root_hint(error: OSError) -> str:
    return " (run as root)" if isinstance(error, PermissionError) else ""


@contextlib.contextmanager
def _file_lock(path: str) -> Iterator[None]:
    with contextlib.ExitStack() as stack:
        try:
            stack.enter_context(config.locked(path))
        except OSError as e:
            fail(f"cannot lock {config.lock_path(path)}: {e.strerror}{_root_hint(e)}")
        yield


def _write(path: str, text: str, kernel_changed: bool = False) -> None:
    try:
        config.atomic_write(path, text)
    except OSError as e:
        hint = _root_hint(e)
        done = ""
        if kernel_changed:
            done = " The kernel table was changed; run `portctl save` to match."
        fail(f"cannot write {path}: {e.strerror}{hint}.{done}")


# The CLI ----------------------------------------------------------------------

EPILOG = """\b
Exit status:
  0  success; `check`: every port would bind; `diff`: no difference;
     `watch`: stopped by Ctrl-C or SIGTERM
  1  failure (message on stderr); `check`: some port would not bind;
     `diff`: the file and the kernel differ; `status`: module not loaded or
     its hooks disarmed; `watch`: the module was unloaded
  2  usage error: bad option, PORTS, OWNER, or unknown user/group

\b
PORTS: tcp/80  udp/53  sctp/9899  tcp/8000-8099  tcp/80,443
       tcp/127.0.0.1:53  udp/[::1]:53 (on that local address only)
OWNER: user  user:group  :group  '*' (any user); names or numbers

\b
Files: /etc/portowners (see portowners(5)), or --file / $PORTOWNERS_FILE.
Shell completion: eval "$(_PORTCTL_COMPLETE=bash_source portctl)"
(zsh_source, fish_source for zsh and fish).
"""

file_option = click.option(
    "--file",
    "file_override",
    metavar="PATH",
    default=None,
    help="Table file to keep in step (default: global --file).",
)
runtime_option = click.option(
    "--runtime", is_flag=True, help="Change the kernel table only, not the file."
)


@click.group(epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--file",
    "file",
    metavar="PATH",
    envvar="PORTOWNERS_FILE",
    default=config.DEFAULT_PATH,
    show_default=True,
    help="The table file (env PORTOWNERS_FILE).",
)
@click.version_option(__version__, prog_name="portctl")
@click.pass_context
def cli(ctx: click.Context, file: str) -> None:
    """Give network ports to users and groups, as chown gives files.

    Changes go to the live kernel table and to the table file, so they
    survive a reboot.
    """
    ctx.obj = Settings(file=file)


def _edit(
    ctx: click.Context,
    file_override: str | None,
    runtime: bool,
    edit_file: Callable[[config.Document], None],
    edit_kernel: Callable[[KernelClient], None],
) -> None:
    """Change the kernel table and the file, holding the file's lock throughout."""
    path = _file(ctx, file_override)
    if runtime:
        # The kernel edit is read-modify-write too: serialize it with other
        # portctl runs when the lock can be had (it needs no file change).
        with contextlib.ExitStack() as stack:
            with contextlib.suppress(OSError):
                stack.enter_context(config.locked(path))
            with kernel() as client:
                edit_kernel(client)
        return
    with _file_lock(path):
        doc = _read_doc(path)
        before = doc.text()
        edit_file(doc)
        loaded = True
        try:
            with client_factory() as client:
                edit_kernel(client)
        except netlink.ModuleNotLoaded:
            loaded = False
        except netlink.PortownersError as e:
            fail(f"{e}; nothing changed")
        if doc.text() != before:
            _write(path, doc.text(), kernel_changed=loaded)
    if not loaded:
        click.echo(
            f"portctl: the portowners module is not loaded; {path} is updated and the "
            "change takes effect when the module loads (`portctl load`)",
            err=True,
        )


def _names_someone(word: str) -> bool:
    try:
        names.parse_owner(word)
    except (names.OwnerError, names.UnknownName):
        return False
    return True


def split_owner_ports(words: tuple[str, ...]) -> tuple[str, list[str]]:
    """`chown OWNER PORTS...` or `chown PORTS... OWNER`: (owner, ports words).

    A PORTS word always has a `/` (tcp/80) and an OWNER never does, so the
    order is never ambiguous. Raises click.UsageError for anything else.
    """
    for w in words:
        if "/" in w and _names_someone(w):
            raise click.UsageError(
                f"`{w}` is both PORTS and the name of a user or group: "
                "give the owner by number (as in 1000 or :1000)"
            )
    owners = [i for i, w in enumerate(words) if "/" not in w]
    if not owners:
        raise click.UsageError(
            "missing OWNER: write `chown OWNER PORTS...` or `chown PORTS... OWNER`"
        )
    if len(owners) > 1:
        found = ", ".join(f"`{words[i]}`" for i in owners)
        raise click.UsageError(
            f"more than one OWNER ({found}): give one owner, before or after the PORTS "
            "(PORTS always have a `/`, as in tcp/80)"
        )
    i = owners[0]
    if len(words) < 2:
        raise click.UsageError(f"missing PORTS: write `chown {words[i]} PROTO/PORTS...`")
    if 0 < i < len(words) - 1:
        raise click.UsageError(f"OWNER `{words[i]}` stands between PORTS: put it first or last")
    return words[i], [w for j, w in enumerate(words) if j != i]


def complete_owner_or_ports(
    ctx: click.Context, param: click.Parameter, incomplete: str
) -> list[CompletionItem]:
    if "/" in incomplete or any(p.startswith(incomplete) for p in PROTOCOLS if incomplete):
        return complete_ports(ctx, param, incomplete) + (
            [] if "/" in incomplete else complete_owner(ctx, param, incomplete)
        )
    return complete_owner(ctx, param, incomplete)


@cli.command(epilog=EPILOG)
@click.argument(
    "words",
    metavar="OWNER PORTS... | PORTS... OWNER",
    nargs=-1,
    required=True,
    shell_complete=complete_owner_or_ports,
)
@runtime_option
@file_option
@click.pass_context
def chown(
    ctx: click.Context,
    words: tuple[str, ...],
    runtime: bool,
    file_override: str | None,
) -> None:
    """Give PORTS to OWNER (user, user:group, :group or '*').

    OWNER may come first or last: `chown named udp/53` and `chown udp/53
    named` are the same. A port that is already owned changes hands in one
    atomic swap. `tcp/53` changes the rule on every address only,
    `tcp/127.0.0.1:53` the rule on that address only.
    """
    owner_word, ports_words = split_owner_ports(words)
    params = {p.name: p for p in ctx.command.params}
    owner = owner_arg(ctx, params["words"], owner_word)
    ports = ports_arg(ctx, params["words"], tuple(ports_words))
    ranges = merge_ranges(ports)
    new = config.rules_for(ranges, owner)

    def edit_kernel(client: KernelClient) -> None:
        edit_table(client, lambda current: sorted_rules(subtract_all(current, ranges) + new))

    _edit(ctx, file_override, runtime, lambda doc: doc.chown(ranges, owner), edit_kernel)


@cli.command(epilog=EPILOG)
@click.argument("ports", nargs=-1, required=True, callback=ports_arg, shell_complete=complete_ports)
@runtime_option
@file_option
@click.pass_context
def release(
    ctx: click.Context,
    ports: list[PortRange],
    runtime: bool,
    file_override: str | None,
) -> None:
    """Drop the ownership of PORTS: back to the kernel's default.

    Releasing part of a range keeps the rest of it. `tcp/53` releases the
    rule on every address only, `tcp/127.0.0.1:53` the rule on that address
    only.
    """
    ranges = merge_ranges(ports)

    def edit_kernel(client: KernelClient) -> None:
        client.release(ranges)

    def edit_file(doc: config.Document) -> None:
        doc.release(ranges)

    _edit(ctx, file_override, runtime, edit_file, edit_kernel)


@cli.command(name="list", epilog=EPILOG)
@click.option("--json", "as_json", is_flag=True, help="JSON output (see portctl(8)).")
@click.option("-n", "--numeric", is_flag=True, help="Numeric uids and gids.")
@click.option("--stats", is_flag=True, help="Binds each rule granted and denied.")
@click.option("--holders", "show_holders", is_flag=True, help="The sockets bound to each port now.")
def list_(as_json: bool, numeric: bool, stats: bool, show_holders: bool) -> None:
    """Show the live kernel table."""
    counts: dict[Rule, netlink.RuleStats] = {}
    with kernel() as client:
        if stats:
            counted = client.rule_stats()
            counts = {c.rule: c for c in counted}
            rules = [c.rule for c in counted]
        else:
            rules = client.rules()
    held = _holders(rules) if show_holders else {}
    if as_json:
        out = []
        for r in rules:
            item = rule_json(r, numeric)
            if stats:
                item.update(granted=counts[r].granted, denied=counts[r].denied)
            if show_holders:
                found = held[r]
                item["holders"] = None if found is None else [holders.holder_json(h) for h in found]
            out.append(item)
        emit_json({"rules": out})
        return
    head = ["PROTO", "PORTS", "OWNER"] + (["GRANTED", "DENIED"] if stats else [])
    rows = [head]
    for r in rules:
        # PORTS as after PROTO/ in a rule: 53, or 127.0.0.1:53 on one address.
        row = [r.proto, r.text().partition("/")[2], owner_text(r, numeric)]
        if stats:
            row += [str(counts[r].granted), str(counts[r].denied)]
        rows.append(row)
    lines = table(rows).split("\n")
    if not show_holders:
        click.echo("\n".join(lines))
        return
    click.echo(lines[0])
    for r, line in zip(rules, lines[1:], strict=True):
        click.echo(line)
        found = held[r]
        if found is None:
            click.echo(f"    ({r.proto} sockets are not shown)")
        for h in found or ():
            click.echo(f"    {holders.holder_text(h)}")


def _holders(rules: Sequence[Rule]) -> dict[Rule, list[holders.Holder] | None]:
    """Each rule's holders: sock_diag's sockets, /proc's processes."""
    protos = sorted({r.proto for r in rules} & set(holders.SUPPORTED))
    try:
        sockets = socket_source(protos) if protos else []
    except OSError as e:
        fail(f"cannot list the sockets (sock_diag): {e.strerror or e}")
    # /proc is read for the sockets shown only; every socket still counts
    # for telling accepted connections apart (a listener on another address).
    shown = {s.inode for s in sockets if any(holders.covers(r, s) for r in rules)}
    return holders.holders(rules, sockets, process_source(shown))


@dataclass(frozen=True)
class Answer:
    allowed: bool
    verdict: str
    reason: str
    message: str
    rule: Rule | None


WILDCARDS = ("", "0.0.0.0", "::")
"""Binds `check` asks about that cover many addresses: no address is every address."""


def interpret(
    who: names.Credentials,
    result: netlink.CheckResult,
    port: int,
    root_exempt: bool,
    unpriv_start: int,
    addr: str = "",
) -> Answer:
    """Whether ``who`` may bind ``port`` (on ``addr``), given the kernel's verdict."""
    rule = result.rule
    where = f" ({rule_text(rule)})" if rule else ""
    if result.verdict == "grant":
        if rule is not None and rule.any_user:
            return Answer(True, "grant", "any_user", f"any user may bind it{where}", rule)
        if rule is not None and rule.uid is not None and rule.uid == who.uid:
            return Answer(True, "grant", "owner", f"{who.name} owns it{where}", rule)
        if rule is not None and rule.gid is not None:
            group = names.group_token(rule.gid)
            return Answer(True, "grant", "group", f"group member of {group}{where}", rule)
        return Answer(True, "grant", "granted", f"granted{where}", rule)
    if result.verdict == "deny":
        if who.uid == 0 and root_exempt:
            return Answer(
                True,
                "deny",
                "root_exempt",
                f"root (CAP_NET_BIND_SERVICE) and root_exempt=1{where}",
                rule,
            )
        owner = owner_text(rule) if rule else "another owner"
        if rule is not None and rule.addr and addr in WILDCARDS:
            # Asked about every address, refused for one of them: say which.
            owner += f" on {rule.addr}, which a bind to every address covers"
        return Answer(False, "deny", "owned", f"owned by {owner}{where}", rule)
    if port < unpriv_start:
        if who.uid == 0:
            return Answer(
                True,
                "pass",
                "root",
                f"no rule; port < ip_unprivileged_port_start={unpriv_start}, "
                "root has CAP_NET_BIND_SERVICE",
                None,
            )
        return Answer(
            False,
            "pass",
            "privileged_port",
            f"no rule; port < ip_unprivileged_port_start={unpriv_start} needs CAP_NET_BIND_SERVICE",
            None,
        )
    return Answer(True, "pass", "unprivileged_port", "no rule; unprivileged port", None)


@cli.command(epilog=EPILOG)
@click.argument("user", shell_complete=complete_users)
@click.argument(
    "ports", nargs=-1, required=True, callback=bind_ports_arg, shell_complete=complete_ports
)
@click.option("--json", "as_json", is_flag=True, help="JSON output (see portctl(8)).")
def check(user: str, ports: list[PortRange], as_json: bool) -> None:
    """Would USER's bind() of PORTS succeed? Exit 0 yes, 1 no; says why.

    USER is a name or a number; their primary and supplementary groups
    count. Root is taken to have CAP_NET_BIND_SERVICE, others not.
    `tcp/53` asks about a bind to every address (as to :: on a dual-stack
    socket), `tcp/127.0.0.1:53` about a bind to that address, `tcp/0.0.0.0:53`
    about an IPv4 socket's bind to every IPv4 address.
    """
    try:
        who = names.credentials(user)
    except names.UnknownName as e:
        raise click.BadParameter(str(e), param_hint="USER") from None
    ranges = ports
    total = sum(r.hi - r.lo + 1 for r in ranges)
    if total > CHECK_MAX_PORTS:
        raise click.BadParameter(
            f"{total} ports: check at most {CHECK_MAX_PORTS} at a time", param_hint="PORTS"
        )
    unpriv = unprivileged_port_start()
    results: list[tuple[PortRange, Answer]] = []
    with kernel() as client:
        root_exempt = client.status().root_exempt if who.uid == 0 else False
        for r in ranges:
            for port in range(r.lo, r.hi + 1):
                res = client.check(who.uid, who.gid, who.groups, r.proto, port, r.addr)
                ans = interpret(who, res, port, root_exempt, unpriv, r.addr)
                if (
                    results
                    and results[-1][1] == ans
                    and (results[-1][0].proto, results[-1][0].addr) == (r.proto, r.addr)
                    and results[-1][0].hi + 1 == port
                ):
                    prev = results[-1][0]
                    results[-1] = (PortRange(r.proto, prev.lo, port, r.addr), ans)
                else:
                    results.append((PortRange(r.proto, port, port, r.addr), ans))
    allowed = all(a.allowed for _, a in results)
    if as_json:
        emit_json(
            {
                "user": who.name,
                "uid": who.uid,
                "gid": who.gid,
                "groups": list(who.groups),
                "allowed": allowed,
                "results": [
                    {
                        "proto": pr.proto,
                        "lo": pr.lo,
                        "hi": pr.hi,
                        "address": pr.addr or None,
                        "allowed": a.allowed,
                        "verdict": a.verdict,
                        "reason": a.reason,
                        "message": a.message,
                        "rule": rule_json(a.rule) if a.rule else None,
                    }
                    for pr, a in results
                ],
            }
        )
    else:
        for pr, a in results:
            yes = "yes" if a.allowed else "no"
            click.echo(
                f"{scope_text(pr.proto, pr.addr)}{range_text(pr.lo, pr.hi)}: {yes}: {a.message}"
            )
    if not allowed:
        raise SystemExit(EXIT_FAIL)


@cli.command(epilog=EPILOG)
@click.argument("file", required=False, metavar="[FILE]")
@click.pass_context
def load(ctx: click.Context, file: str | None) -> None:
    """Replace the kernel table with FILE (default: the table file).

    All or nothing: a file with errors changes nothing.
    """
    path = _file(ctx, file)
    rules = _read_doc(path, missing_ok=False).rules()
    with kernel() as client:
        client.replace(rules)
    click.echo(f"loaded {len(rules)} rule{'s' if len(rules) != 1 else ''} from {path}")


SAVE_HEADER = "portowners(5) table: PROTO/[ADDRESS:]PORTS OWNER\nwritten by `portctl save`"


@cli.command(epilog=EPILOG)
@click.argument("file", required=False, metavar="[FILE]")
@click.pass_context
def save(ctx: click.Context, file: str | None) -> None:
    """Write the live kernel table to FILE (default: the table file)."""
    path = _file(ctx, file)
    with kernel() as client:
        rules = client.rules()
    with _file_lock(path):
        _write(path, config.format(rules, header=SAVE_HEADER))
    click.echo(f"saved {len(rules)} rule{'s' if len(rules) != 1 else ''} to {path}")


@cli.command(epilog=EPILOG)
@click.argument("file", required=False, metavar="[FILE]")
@click.option("-n", "--numeric", is_flag=True, help="Numeric uids and gids.")
@click.pass_context
def diff(ctx: click.Context, file: str | None, numeric: bool) -> None:
    """What differs between FILE and the kernel. Exit 0 same, 1 different.

    `+ RULE`: in the file, not in the kernel (`load` would add it);
    `- RULE`: in the kernel, not in the file.
    """
    path = _file(ctx, file)
    wanted = _read_doc(path, missing_ok=False).rules()
    with kernel() as client:
        live = client.rules()
    lines = config.diff_lines(wanted, live, numeric)
    for line in lines:
        click.echo(line)
    if lines:
        raise SystemExit(EXIT_FAIL)


@cli.command(epilog=EPILOG)
@click.option("--json", "as_json", is_flag=True, help="JSON output (see portctl(8)).")
@file_option
@click.pass_context
def status(ctx: click.Context, as_json: bool, file_override: str | None) -> None:
    """Is the module loaded? Version, rules, counters, and is the file in sync?"""
    path = _file(ctx, file_override)
    info: dict[str, Any] = {
        "loaded": False,
        "version": None,
        "generation": None,
        "rules": None,
        "granted": None,
        "denied": None,
        "root_exempt": None,
        "file": path,
        "in_sync": None,
        "file_error": None,
        "hooks_armed": None,
        "events_dropped": None,
    }
    live: list[Rule] | None = None
    try:
        with client_factory() as client:
            st = client.status()
            live = client.rules()
    except netlink.ModuleNotLoaded:
        pass
    except netlink.PortownersError as e:
        fail(str(e))
    else:
        info.update(
            loaded=True,
            version=st.version,
            generation=st.generation,
            rules=st.rule_count,
            granted=st.granted,
            denied=st.denied,
            root_exempt=st.root_exempt,
            hooks_armed=hooks.hooks_armed(),
            events_dropped=st.events_dropped,
        )
    try:
        wanted = config.read_document(path, missing_ok=False).rules()
    except FileNotFoundError:
        info["file_error"] = "no such file"
    except config.ConfigError as e:
        info["file_error"] = f"{len(e.messages)} bad line(s); first: {e.messages[0]}"
    except OSError as e:
        info["file_error"] = str(e.strerror)
    else:
        if live is not None:
            info["in_sync"] = not config.differences(wanted, live)
    if as_json:
        emit_json(info)
    else:
        if not info["loaded"]:
            click.echo("module:       not loaded (run `modprobe portowners`)")
        else:
            click.echo(f"module:       loaded, version {info['version']}")
            click.echo(f"rules:        {info['rules']} (generation {info['generation']})")
            click.echo(f"granted:      {info['granted']}")
            click.echo(f"denied:       {info['denied']}")
            if info["events_dropped"] is not None:  # a module of version 3 or later
                click.echo(f"events lost:  {info['events_dropped']}")
            click.echo(f"root_exempt:  {'yes' if info['root_exempt'] else 'no'}")
            click.echo(f"hooks:        {HOOK_STATES[info['hooks_armed']]}")
        if info["file_error"]:
            state = f"error: {info['file_error']}"
        elif info["in_sync"] is None:
            state = "not compared (module not loaded)"
        else:
            state = "in sync" if info["in_sync"] else "differs from the kernel (see `portctl diff`)"
        click.echo(f"file:         {path}: {state}")
    if not info["loaded"] or info["hooks_armed"] is False:
        raise SystemExit(EXIT_FAIL)


@cli.command(name="watch", epilog=EPILOG)
@click.option("--json", "as_json", is_flag=True, help="One JSON object a line (see portctl(8)).")
@click.option("--grants", is_flag=True, help="Granted binds too, not only denied ones.")
@file_option
@click.pass_context
def watch_(ctx: click.Context, as_json: bool, grants: bool, file_override: str | None) -> None:
    """Print each bind a rule denies (or grants) as it happens.

    One line an event, until Ctrl-C or SIGTERM (exit 0). The rule that
    decided is shown with its line in the table file. Needs CAP_NET_ADMIN.
    Exit 1 when the module is unloaded meanwhile.
    """
    path = _file(ctx, file_override)
    lines = watch.RuleLines(path, lambda message: click.echo(f"portctl: {message}", err=True))
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        with listener_factory(grants) as listener:
            watch.run(listener, click.echo, lines, as_json)
    except (KeyboardInterrupt, BrokenPipeError):
        # Ctrl-C, SIGTERM, or the reader of a pipe went away: asked to stop.
        _quiet_stdout()
    except events.ModuleUnloaded:
        click.echo("portctl: portowners module unloaded", err=True)
        raise SystemExit(EXIT_FAIL) from None
    except netlink.PortownersError as e:
        fail(str(e))
    finally:
        signal.signal(signal.SIGTERM, previous)


def _interrupt(signum: int, frame: object) -> NoReturn:
    raise KeyboardInterrupt


def _quiet_stdout() -> None:
    """No "Exception ignored ... BrokenPipeError" when Python flushes stdout
    at exit into a pipe nobody reads any more."""
    with contextlib.suppress(OSError, ValueError):
        devnull = os.open(os.devnull, os.O_WRONLY)
        os.dup2(devnull, sys.stdout.fileno())


HOOK_STATES = {
    True: "armed",
    False: "DISARMED: owned ports are not enforced "
    "(the bind functions are not hooked: see /sys/kernel/tracing/enabled_functions)",
    None: "unknown (run as root, with tracefs or debugfs mounted, to tell)",
}


def main() -> None:
    cli.main(prog_name="portctl")
