"""`portctl watch`: one line per bind a rule decided, as the kernel tells it.

The receiving is portctl.events'; here is what a line says (portctl(8),
docs/portctl.md) and the loop that prints them.
"""

from __future__ import annotations

import datetime
import json
import os
from collections.abc import Callable
from types import TracebackType
from typing import Any, Protocol

from portctl import config, names
from portctl.events import Event, Overrun, escape_comm
from portctl.render import rule_json, rule_text

VERDICT_WORDS = {"deny": "denied", "grant": "granted"}


class EventSource(Protocol):
    """What the loop needs of events.Listener (tests give a script)."""

    def recv(self, timeout: float | None = None) -> list[Event]: ...


class EventListener(EventSource, Protocol):
    """events.Listener as the CLI opens it: a context manager too."""

    def __enter__(self) -> EventListener: ...
    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None: ...


def now() -> datetime.datetime:
    """When portctl read the event (the kernel sends no time): local, with its offset."""
    return datetime.datetime.now().astimezone()


class RuleLines:
    """Where each rule is written in the table file: read again whenever the
    file changes (an edit while watching), never for every event."""

    def __init__(self, path: str, warn: Callable[[str], None]) -> None:
        self.path = path
        self.warn = warn
        self._stamp: tuple[int, int, int] | None = None
        self._doc: config.Document | None = None
        self._warned: str | None = None

    def _load(self) -> None:
        try:
            st = os.stat(self.path)
        except OSError:
            self._stamp, self._doc = None, None
            return
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        if stamp == self._stamp:
            return
        self._stamp = stamp
        try:
            self._doc = config.read_document(self.path, missing_ok=True)
        except config.ConfigError as e:
            self._doc = None
            self._say(f"{self.path} has errors ({e.messages[0]}): rules are shown without lines")
        except OSError as e:
            self._doc = None
            self._say(f"cannot read {self.path}: {e.strerror}: rules are shown without lines")

    def _say(self, message: str) -> None:
        if message != self._warned:  # once, not once an event
            self._warned = message
            self.warn(message)

    def where(self, event: Event) -> str | None:
        """``FILE:LINE`` of the event's rule, None when the file has no line for it."""
        if event.rule is None:
            return None
        self._load()
        line = self._doc.line_of(event.rule) if self._doc is not None else None
        return f"{self.path}:{line}" if line is not None else None


def _who(uid: int, gid: int) -> str:
    user, group = names.user_name(uid), names.group_name(gid)
    who = f"{user} (uid {uid})" if user else f"uid {uid}"
    return who + (f" group {group} (gid {gid})" if group else f" gid {gid}")


def event_line(event: Event, ts: datetime.datetime, where: str | None, path: str) -> str:
    """One event for people, on one line whatever the task named itself:
    2026-12-02T01:23:45 denied tcp/80 on 0.0.0.0 to bob (uid 1001) group bob
    (gid 1001) pid 812 comm 'nginx' by rule tcp/80 www-data (/etc/portowners:3)"""
    verdict = VERDICT_WORDS.get(event.verdict, event.verdict)
    text = (
        f"{ts.strftime('%Y-%m-%dT%H:%M:%S')} {verdict} {event.proto}/{event.port} "
        f"on {event.addr} to {_who(event.uid, event.gid)} pid {event.pid} "
        f"comm '{escape_comm(event.comm)}'"
    )
    if event.rule is not None:
        text += f" by rule {rule_text(event.rule)} ({where or 'not in ' + path})"
    return text


def event_json(event: Event, ts: datetime.datetime, where: str | None) -> dict[str, Any]:
    return {
        "ts": ts.isoformat(timespec="milliseconds"),
        "verdict": event.verdict,
        "proto": event.proto,
        "port": event.port,
        "address": event.addr,
        "uid": event.uid,
        "user": names.user_name(event.uid),
        "gid": event.gid,
        "group": names.group_name(event.gid),
        "pid": event.pid,
        "comm": escape_comm(event.comm),
        "netns": event.netns,
        "seq": event.seq,
        "rule": rule_json(event.rule) if event.rule is not None else None,
        "file_line": where,
    }


def lost_line(lost: int, kind: str, ts: datetime.datetime, as_json: bool) -> str:
    if as_json:
        return json.dumps({"ts": ts.isoformat(timespec="milliseconds"), "lost": lost, "kind": kind})
    s = "s" if lost != 1 else ""
    return f"{ts.strftime('%Y-%m-%dT%H:%M:%S')} lost {lost} event{s} ({kind})"


def overrun_line(ts: datetime.datetime, as_json: bool) -> str:
    if as_json:
        return json.dumps({"ts": ts.isoformat(timespec="milliseconds"), "overrun": True})
    return f"{ts.strftime('%Y-%m-%dT%H:%M:%S')} {Overrun()}"


def run(
    source: EventSource,
    emit: Callable[[str], None],
    lines: RuleLines,
    as_json: bool,
    clock: Callable[[], datetime.datetime] | None = None,
) -> None:
    """Print events as they come, until source raises (ModuleUnloaded, or
    KeyboardInterrupt from Ctrl-C or SIGTERM: the caller's to handle)."""
    clock = clock or now
    while True:
        try:
            events = source.recv(None)
        except Overrun:
            emit(overrun_line(clock(), as_json))
            continue
        for event in events:
            ts = clock()
            if event.lost:
                emit(lost_line(event.lost, event.group, ts, as_json))
            where = lines.where(event)
            if as_json:
                emit(json.dumps(event_json(event, ts, where)))
            else:
                emit(event_line(event, ts, where, lines.path))
