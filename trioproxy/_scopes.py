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
    if groups and any(who.groups_of(name) & groups for name in needed_users):
        return True
    return False


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
