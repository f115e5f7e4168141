"""What every proxied request shares: the app's state, the connection pool, the
activity tracker and the register of long-lived streams; and the gate a request
passes before it may reach the app (starting: wait a bounded time, then 503;
down: 502 with the reason and the app's last lines).
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import trio

from . import _pages
from ._activity import ActivityTracker
from ._child import AppState, Status
from ._pages import Send
from ._settings import ProxySettings
from ._upstream import Pool

#: Lines of the app's output shown on a 502 page.
PAGE_TAIL_LINES = 25
#: The "starting" page reloads itself this often, in seconds.
STARTING_REFRESH_S = 2


class LongLived:
    """Register of websocket bridges and event streams, so shutdown can end them at once.

    Each registers a cancel scope; :meth:`go_away` cancels them all, and the
    owner, seeing :attr:`going_away`, says goodbye properly (close 1001, the
    last chunk of an event stream).
    """

    def __init__(self) -> None:
        self.going_away = False
        self._scopes: set[trio.CancelScope] = set()

    def __len__(self) -> int:
        return len(self._scopes)

    @contextlib.contextmanager
    def register(self) -> Iterator[trio.CancelScope]:
        with trio.CancelScope() as scope:
            if self.going_away:
                scope.cancel()
            self._scopes.add(scope)
            try:
                yield scope
            finally:
                self._scopes.discard(scope)

    def go_away(self) -> int:
        self.going_away = True
        for scope in self._scopes:
            scope.cancel()
        return len(self._scopes)


@dataclass
class Gateway:
    """Shared per-process proxy state (one instance, built by ``_run``)."""

    settings: ProxySettings
    state: AppState
    pool: Pool
    tracker: ActivityTracker
    long_lived: LongLived = field(default_factory=LongLived)
    #: The app sets an ``_xsrf`` cookie of its own (jupyter-server, Voila): the
    #: login does not treat a cookie of that name as the Hub's.
    app_uses_xsrf: bool = False

    async def open(self, scope: dict[str, Any], send: Send) -> tuple[str, int] | None:
        """The app's address once it is ready; otherwise answer ``scope`` with a page and return None."""
        state = self.state
        if state.status is Status.WAITING:
            host = _host(scope)
            state.offer_origin_host(host)
        if state.status in (Status.STARTING, Status.WAITING):
            await state.wait_settled(self.settings.starting_wait_s)
        if state.status is Status.READY and state.address is not None:
            return state.address
        if state.status in (Status.STARTING, Status.WAITING):
            body = _pages.render(
                "The app is starting",
                ["The app is not ready yet. This page reloads by itself."],
                refresh_s=STARTING_REFRESH_S,
            )
            await _pages.respond(scope, send, 503, body, [(b"retry-after", str(STARTING_REFRESH_S).encode())])
        elif state.status is Status.STOPPING:
            body = _pages.render("The server is stopping", ["This server is shutting down."])
            await _pages.respond(scope, send, 503, body, [(b"connection", b"close")])
        else:
            body = _pages.render(
                "The app is not running",
                [f"The app {state.reason}.", "trioproxy restarts it; try again in a few seconds."],
                log_lines=state.tail.lines(PAGE_TAIL_LINES),
                refresh_s=None,
            )
            await _pages.respond(scope, send, 502, body)
        return None


def _host(scope: dict[str, Any]) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            return str(value.decode("latin-1"))
    server = scope.get("server")
    return f"{server[0]}:{server[1]}" if server else "localhost"
