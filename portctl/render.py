"""How rules read, for people and for scripts: shared by every command that
shows one (`list`, `check`, `watch`)."""

from __future__ import annotations

from typing import Any

from portctl import names
from portctl.model import Rule


def owner_text(rule: Rule, numeric: bool = False) -> str:
    return names.format_owner(rule.uid, rule.gid, rule.any_user, numeric)


def rule_text(rule: Rule, numeric: bool = False) -> str:
    """``tcp/80 www-data``: the rule as the table file writes it."""
    return f"{rule.text()} {owner_text(rule, numeric)}"


def rule_json(rule: Rule, numeric: bool = False) -> dict[str, Any]:
    """The *rule* object of every --json output (docs/portctl.md)."""
    return {
        "proto": rule.proto,
        "lo": rule.lo,
        "hi": rule.hi,
        "address": rule.addr or None,
        "owner": owner_text(rule, numeric),
        "uid": rule.uid,
        "user": names.user_name(rule.uid) if rule.uid is not None else None,
        "gid": rule.gid,
        "group": names.group_name(rule.gid) if rule.gid is not None else None,
        "any_user": rule.any_user,
    }
