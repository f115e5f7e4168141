"""Who may pass: the check every request and websocket handshake goes through before the app.

The front (``_front``) calls :meth:`Authenticator.check` for HTTP requests and
websocket handshakes alike. It returns the :class:`Identity` to forward with,
or None after answering the request itself (a login redirect, a 403).
"""

from __future__ import annotations

import logging
from dataclasses import dataclass, field
from typing import Any, Protocol

from . import _pages
from ._pages import Send
from ._settings import HubSettings

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Identity:
    """Who is making the request (``user`` is the Hub's user model, None without auth)."""

    user: dict[str, Any] | None = None
    #: Request headers trioproxy consumed (its own credentials): never sent to the app.
    drop_headers: frozenset[bytes] = field(default_factory=frozenset)


class Authenticator(Protocol):
    async def check(self, scope: dict[str, Any], send: Send) -> Identity | None: ...


class NoAuth:
    """``--authtype none``: everyone is let in."""

    async def check(self, scope: dict[str, Any], send: Send) -> Identity | None:
        return Identity()


class HubOAuthUnavailable:
    """``--authtype oauth`` in a build without the Hub login: refuse, never let anyone in."""

    def __init__(self, hub: HubSettings) -> None:
        self.hub = hub

    async def check(self, scope: dict[str, Any], send: Send) -> Identity | None:
        body = _pages.render(
            "403: Login unavailable",
            ["This server requires JupyterHub login, which this trioproxy version cannot perform yet.",
             "Run it with --authtype none behind another authenticating proxy."],
        )
        await _pages.respond(scope, send, 403, body)
        return None


def make_authenticator(hub: HubSettings) -> Authenticator:
    if hub.authtype == "none":
        return NoAuth()
    logger.warning("--authtype oauth: JupyterHub login is not available in this version; every request gets 403")
    return HubOAuthUnavailable(hub)
