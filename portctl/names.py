"""User and group names <-> ids, and the OWNER spelling.

OWNER is ``user``, ``user:group``, ``:group`` or ``*`` (any user). Users and
groups are names (looked up with pwd/grp) or numbers. A name made only of
digits is taken as a number, as chown(1) does.
"""

from __future__ import annotations

import grp
import os
import pwd
import re
from dataclasses import dataclass

MAX_ID = 2**32 - 2
"""Largest uid/gid; 2**32-1 is (uid_t)-1, "no id"."""

_ID_RE = re.compile(r"[0-9]{1,10}")
# Names we write back into the file: what parses back as the same name.
_SAFE_NAME_RE = re.compile(r"[A-Za-z_.][A-Za-z0-9_.@$-]*")


class UnknownName(LookupError):
    """A user or group that cannot be resolved; ``str()`` is for people."""


class OwnerError(ValueError):
    """An OWNER spelling that is not valid; ``str()`` is for people."""


@dataclass(frozen=True)
class Owner:
    uid: int | None = None
    gid: int | None = None
    any_user: bool = False


def _as_id(text: str, kind: str) -> int | None:
    if not _ID_RE.fullmatch(text):
        return None
    value = int(text)
    if value > MAX_ID:
        raise UnknownName(f"{kind} id {text} is out of range 0-{MAX_ID}")
    return value


def uid_of(user: str) -> int:
    """uid of a user name or number; raises UnknownName."""
    num = _as_id(user, "user")
    if num is not None:
        return num
    try:
        return pwd.getpwnam(user).pw_uid
    except (KeyError, ValueError):
        raise UnknownName(f"unknown user `{user}`") from None


def gid_of(group: str) -> int:
    """gid of a group name or number; raises UnknownName."""
    num = _as_id(group, "group")
    if num is not None:
        return num
    try:
        return grp.getgrnam(group).gr_gid
    except (KeyError, ValueError):
        raise UnknownName(f"unknown group `{group}`") from None


def user_name(uid: int) -> str | None:
    try:
        return pwd.getpwuid(uid).pw_name
    except (KeyError, OverflowError):
        return None


def group_name(gid: int) -> str | None:
    try:
        return grp.getgrgid(gid).gr_name
    except (KeyError, OverflowError):
        return None


def user_token(uid: int, numeric: bool = False) -> str:
    """How to write a uid: its name when that name reads back as this uid."""
    if not numeric:
        name = user_name(uid)
        if name is not None and _SAFE_NAME_RE.fullmatch(name):
            try:
                if pwd.getpwnam(name).pw_uid == uid:
                    return name
            except KeyError:
                pass
    return str(uid)


def group_token(gid: int, numeric: bool = False) -> str:
    """How to write a gid: its name when that name reads back as this gid."""
    if not numeric:
        name = group_name(gid)
        if name is not None and _SAFE_NAME_RE.fullmatch(name):
            try:
                if grp.getgrnam(name).gr_gid == gid:
                    return name
            except KeyError:
                pass
    return str(gid)


def parse_owner(text: str) -> Owner:
    """Parse and resolve OWNER. Raises OwnerError (spelling) or UnknownName."""
    if text == "*":
        return Owner(any_user=True)
    if not text:
        raise OwnerError("empty owner: write user, user:group, :group or *")
    if "*" in text:
        raise OwnerError(f"owner `{text}`: `*` (any user) stands alone")
    user, colon, group = text.partition(":")
    if ":" in group:
        raise OwnerError(f"owner `{text}`: more than one `:` (write user, user:group or :group)")
    if colon and not group:
        raise OwnerError(
            f"owner `{text}`: no group after `:` (write {user or 'user'} or {user or 'user'}:group)"
        )
    if not user and not group:
        raise OwnerError(f"owner `{text}`: write user, user:group, :group or *")
    uid = uid_of(user) if user else None
    gid = gid_of(group) if group else None
    return Owner(uid=uid, gid=gid)


def format_owner(uid: int | None, gid: int | None, any_user: bool, numeric: bool = False) -> str:
    """The OWNER spelling of an owner; names when they resolve, else numbers."""
    if any_user:
        return "*"
    if uid is None and gid is None:
        raise ValueError("an owner needs a uid, a gid or any_user")
    user = user_token(uid, numeric) if uid is not None else ""
    if gid is None:
        return user
    return f"{user}:{group_token(gid, numeric)}"


@dataclass(frozen=True)
class Credentials:
    """Who a user is for bind(): uid, primary gid and supplementary groups."""

    name: str
    uid: int
    gid: int | None
    groups: tuple[int, ...]


def credentials(user: str) -> Credentials:
    """Resolve USER (name or number) to uid, primary gid and groups."""
    uid = uid_of(user)
    try:
        pw = pwd.getpwuid(uid)
    except KeyError:
        # A bare number with no passwd entry: no groups we can know of.
        return Credentials(name=user, uid=uid, gid=None, groups=())
    try:
        groups = tuple(sorted(set(os.getgrouplist(pw.pw_name, pw.pw_gid))))
    except OSError:
        groups = (pw.pw_gid,)
    return Credentials(name=pw.pw_name, uid=uid, gid=pw.pw_gid, groups=groups)


def all_users() -> list[str]:
    try:
        return sorted({p.pw_name for p in pwd.getpwall()})
    except OSError:
        return []


def all_groups() -> list[str]:
    try:
        return sorted({g.gr_name for g in grp.getgrall()})
    except OSError:
        return []
