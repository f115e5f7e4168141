"""JupyterHub scopes: does a token's scope list grant one of the scopes a server requires?

Pure. Scopes look like ``access:servers``, ``access:servers!user=dan`` or
``access:servers!server=dan/dash``: a base, optionally restricted by one
filter (``user``, ``server``, ``group``, ``service``). Two lists intersect
when they share a base and their filters overlap, with the Hub's hierarchy
(``user=dan`` covers ``server=dan/x``; an unfiltered scope covers all).

Group filters need to know who is in which group. The Hub's own single-user
servers resolve them without a database, i.e. not at all; trioproxy knows
the groups of the requesting user (from the Hub's user model), and of the
owner when the requester is the owner, and uses what it knows.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

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


def _covers(have: Mapping[str, set[str]], need: Mapping[str, set[str]], who: Who) -> bool:
    """Does a filter set ``have`` overlap the filter set ``need`` (one base, both restricted)?"""
    for kind in have.keys() & need.keys():
        if have[kind] & need[kind]:
            return True
    have_users = have.get("user", set())
    need_users = need.get("user", set())
    # user=U on one side covers server=U/x on the other.
    for server in need.get("server", set()):
        if server.partition("/")[0] in have_users:
            return True
    for server in have.get("server", set()):
        if server.partition("/")[0] in need_users:
            return True
    # group=G covers the users (and their servers) in G, where membership is known.
    for groups, other in ((have.get("group", set()), need), (need.get("group", set()), have)):
        if not groups:
            continue
        names = set(other.get("user", set())) | {s.partition("/")[0] for s in other.get("server", set())}
        if any(who.groups_of(name) & groups for name in names):
            return True
    return False


def intersects(have: Iterable[str], need: Iterable[str], who: Who = Who()) -> bool:
    """True when the scopes ``have`` grant at least one of the scopes ``need``."""
    held = parse(have)
    required = parse(need)
    for base in held.keys() & required.keys():
        h, n = held[base], required[base]
        if h is ALL or n is ALL:
            return True
        if _covers(h, n, who):
            return True
    return False
