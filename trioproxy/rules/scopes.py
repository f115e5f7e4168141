"""JupyterHub scopes: does a token's scope list grant one of the scopes a server requires?

Pure. Scopes look like ``access:servers``, ``access:servers!user=dan`` or
``access:servers!server=dan/dash``: a base, optionally restricted by one
filter (``user``, ``server``, ``group``, ``service``). A held scope grants a
required one when it has the same base and is at least as broad: unfiltered
grants everything; ``user=dan`` grants ``user=dan`` and ``server=dan/x``;
``server=dan/x`` grants only ``server=dan/x``; ``group=g`` grants what its
members' ``user=`` would.

This is stricter than the Hub's own single-user servers, which admit on any
*overlap*: there ``access:servers!server=dan/other`` (one shared named
server) overlaps the ``access:servers!user=dan`` every server requires, and so
opens all of dan's servers to API tokens. Here it opens only dan/other.

Group filters need to know who is in which group. trioproxy knows the groups
of the requesting user (from the Hub's user model), and of the owner when the
requester is the owner, and uses what it knows.

Who may enter (:func:`admits`), given the Hub's model of a token (its
``scopes`` are the token's own, expanded):

* With access scopes (``$JUPYTERHUB_OAUTH_ACCESS_SCOPES``, always set by
  JupyterHub 2+), only scopes open the server, as in the Hub's own
  single-user servers ("if hub_scopes are used, *only* hub_scopes are used"):
  a name never does, the owner's included. A token of the owner that the Hub
  issued for another server, a read-only token, a token with no access scope:
  refused. ``$JUPYTERHUB_GROUP`` and ``$JUPYTERHUB_ANYONE=1`` still widen the
  door, for a user's general-purpose credential only: a token whose scopes
  grant ``access:servers!user=<that user>`` (or broader). A token the Hub
  issued for another server (``access:servers!server=x/y`` only) never opens
  this one, so the owner of a shared server cannot replay a visitor's token here.
* Without them (a Hub older than 2.0): the owner by name, the group's members,
  anyone with ``$JUPYTERHUB_ANYONE=1``. Services are admitted by scopes only.

What of the owner's controls an admitted request may reach
(:func:`control_access`): all of them for the owner (kind user, name ==
``$JUPYTERHUB_USER``) whose token passed the rule above; read-only status for
an admin admitted by scopes; nothing for anyone else.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal

#: The filter of an unrestricted scope.
ALL = None


def parse(scopes: Iterable[str]) -> dict[str, dict[str, set[str]] | None]:
    """``{base: None}`` for unrestricted, else ``{base: {kind: {values}}}``; bad entries are skipped."""
    out: dict[str, dict[str, set[str]] | None] = {}
    for scope in scopes:
        base, bang, filt = str(scope).partition("!")
        if not base:
            continue
        if not bang:
            out[base] = ALL
            continue
        kind, eq, value = filt.partition("=")
        if not eq or not value or not kind:
            continue
        current = out.setdefault(base, {})
        if current is ALL:
            continue
        current.setdefault(kind, set()).add(value)
    return out


@dataclass(frozen=True)
class Who:
    """What is known about the people a group filter may refer to."""

    #: The requesting user's name and groups.
    user: str = ""
    groups: frozenset[str] = frozenset()
    #: The owner of this server and, when known, the owner's groups.
    owner: str = ""
    owner_groups: frozenset[str] = field(default_factory=frozenset)

    def groups_of(self, username: str) -> frozenset[str]:
        if username and username == self.user:
            return self.groups
        if username and username == self.owner:
            return self.owner_groups
        return frozenset()


def _grants(have: Mapping[str, set[str]], need: Mapping[str, set[str]], who: Who) -> bool:
    """Does the filter set ``have`` grant at least one filter of ``need`` (one base, both restricted)?"""
    for kind in have.keys() & need.keys():
        if have[kind] & need[kind]:
            return True
    # Users named (directly or as owners of servers) by the requirement.
    needed_users = set(need.get("user", set())) | {s.partition("/")[0] for s in need.get("server", set())}
    # user=U grants server=U/x.
    if have.get("user", set()) & {s.partition("/")[0] for s in need.get("server", set())}:
        return True
    # group=G grants what user=U would, for the members U we know of.
    groups = have.get("group", set())
    return bool(groups and any(who.groups_of(name) & groups for name in needed_users))


def grants(have: Iterable[str], need: Iterable[str], who: Who = Who()) -> bool:
    """True when the scopes ``have`` grant at least one of the scopes ``need``."""
    held = parse(have)
    required = parse(need)
    for base in held.keys() & required.keys():
        h, n = held[base], required[base]
        if h is ALL:
            return True
        if n is not ALL and _grants(h, n, who):
            return True
    return False


# --- who may enter, and what of the owner's controls --------------------------------

#: Why a token was let in: its scopes grant this server; a group member's or
#: (``$JUPYTERHUB_ANYONE``) any user's general-purpose token; the owner's name
#: (only without access scopes, a pre-2.0 Hub).
Reason = Literal["scopes", "group", "anyone", "owner"]
#: What of the owner's controls a request may reach: all (``"owner"``), the
#: read-only status (``"status"``), nothing (``""``).
ControlAccess = Literal["owner", "status", ""]
OWNER: ControlAccess = "owner"
STATUS: ControlAccess = "status"
NOTHING: ControlAccess = ""


@dataclass(frozen=True)
class Door:
    """Who this server lets in: its owner, the scopes it requires, the wider doors."""

    owner: str
    #: ``$JUPYTERHUB_OAUTH_ACCESS_SCOPES``; empty on Hubs older than 2.0.
    access_scopes: tuple[str, ...] = ()
    #: ``$JUPYTERHUB_GROUP`` (its comma-separated names).
    groups: frozenset[str] = frozenset()
    #: ``$JUPYTERHUB_ANYONE=1``.
    anyone: bool = False


def _identity(model: Mapping[str, Any]) -> tuple[str, str, frozenset[str], tuple[str, ...]]:
    kind = str(model.get("kind") or "user")
    name = str(model.get("name") or "")
    groups = model.get("groups") or ()
    scopes = model.get("scopes") or ()
    if isinstance(groups, str) or not isinstance(groups, Iterable):
        groups = ()
    if isinstance(scopes, str) or not isinstance(scopes, Iterable):
        scopes = ()
    return kind, name, frozenset(str(g) for g in groups), tuple(str(s) for s in scopes)


def general_purpose(scopes: Iterable[str], user: str, groups: frozenset[str] = frozenset()) -> bool:
    """Could a token with ``scopes`` open every server of ``user`` (``access:servers!user=<user>``
    or broader: unfiltered, or a group filter naming one of ``groups``)?"""
    if not user:
        return False
    return grants(scopes, [f"access:servers!user={user}"], Who(user=user, groups=groups))


def admits(model: Mapping[str, Any], door: Door) -> Reason | None:
    """Why the Hub's ``model`` of a token may enter through ``door``, or None (see the module's docstring)."""
    kind, name, groups, scopes = _identity(model)
    if not name:
        return None
    if door.access_scopes:
        is_owner = kind == "user" and name == door.owner
        who = Who(user=name, groups=groups, owner=door.owner, owner_groups=groups if is_owner else frozenset())
        if grants(scopes, door.access_scopes, who):
            return "scopes"
        if kind != "user" or not (door.anyone or door.groups & groups):
            return None
        if general_purpose(scopes, name, groups):
            return "anyone" if door.anyone else "group"
        return None
    if kind != "user":
        return None
    if door.owner and name == door.owner:
        return "owner"
    if door.anyone:
        return "anyone"
    if door.groups & groups:
        return "group"
    return None


def control_access(model: Mapping[str, Any] | None, door: Door) -> ControlAccess:
    """What of the owner's controls the bearer of ``model`` may reach (the one owner check).

    The owner: kind user, name the server's owner, and a token that opens this
    server by its scopes (or, on a pre-2.0 Hub, by the owner's name). An admin
    whose token opens this server by its scopes: the status. Anyone else: nothing.
    """
    if model is None:
        return NOTHING
    kind, name, _, _ = _identity(model)
    if kind != "user" or not name:
        return NOTHING
    reason = admits(model, door)
    if door.owner and name == door.owner and reason in ("scopes", "owner"):
        return OWNER
    if model.get("admin") is True and door.access_scopes and reason == "scopes":
        return STATUS
    return NOTHING
