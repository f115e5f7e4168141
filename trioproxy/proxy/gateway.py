"""What every proxied request shares: the app's state, the connection pool, the
activity tracker and the register of long-lived streams; and the gate a request
passes before it may reach the app (starting: wait a bounded time, then 503;
down: 502 with the reason and the app's last lines).
"""

from __future__ import annotations

import contextlib
import html
import json
import logging
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import Any

import trio

from ..child.connection import Pool, Target
from ..child.supervisor import AppState, Status
from ..hub.activity import ActivityTracker
from ..metrics import Metrics
from ..rules import cookies as _cookies
from ..rules import hub_cookies as _hub_cookies
from ..rules import pages as _pages
from ..rules import scopes as _scopes
from ..rules.pages import Send
from ..settings import ERROR_PAGE_TAIL_LINES, OWNER_PAGE_WAIT_S, STARTING_REFRESH_S, ProxySettings
from .ws_keepalive import KeepAlive

logger = logging.getLogger(__name__)



class LongLived:
    """Register of websocket bridges and event streams, so shutdown can end them at once.

    Each registers a cancel scope, and may register a ``goodbye``: a
    synchronous call that says goodbye at once (a websocket's close 1001).
    :meth:`go_away` first calls every goodbye, in one loop, then cancels every
    scope; the owners, cancelled, finish properly (close handshakes, the last
    chunk of an event stream), concurrently, each bounded. Goodbyes first:
    through the tasks, each websocket's 1001 waited for a scheduler pass per
    step of its write, behind every other task's (1,000 websockets: the last
    1001 some 80-200 ms after SIGTERM; in one loop, all of them within ~15 ms).
    """

    def __init__(self) -> None:
        self.going_away = False
        self._scopes: dict[trio.CancelScope, Callable[[], object] | None] = {}

    def __len__(self) -> int:
        return len(self._scopes)

    @contextlib.contextmanager
    def register(self, goodbye: Callable[[], object] | None = None) -> Iterator[trio.CancelScope]:
        with trio.CancelScope() as scope:
            if self.going_away:
                scope.cancel()
            self._scopes[scope] = goodbye
            try:
                yield scope
            finally:
                self._scopes.pop(scope, None)

    def go_away(self) -> int:
        self.going_away = True
        registered = list(self._scopes.items())
        said = tried = 0
        for _, goodbye in registered:
            if goodbye is not None:
                tried += 1
                try:
                    said += bool(goodbye())
                except Exception as exc:  # one broken goodbye must not keep the others waiting
                    logger.debug("shutdown: a goodbye failed: %r", exc)
        for scope, _ in registered:
            scope.cancel()
        if tried:
            logger.info("shutdown: close 1001 written at once to %d of %d websocket(s)", said, tried)
        return len(registered)


@dataclass
class Gateway:
    """Shared per-process proxy state (one instance, built by ``_run``)."""

    settings: ProxySettings
    state: AppState
    pool: Pool
    tracker: ActivityTracker
    long_lived: LongLived = field(default_factory=LongLived)
    #: Pings silent websocket clients (its watcher runs in the root nursery).
    keepalive: KeepAlive = field(init=False)
    metrics: Metrics = field(default_factory=Metrics)
    #: The app sets an ``_xsrf`` cookie of its own (jupyter-server, Voila): the
    #: login does not treat a cookie of that name as the Hub's.
    app_uses_xsrf: bool = False

    #: Anyone may see the app's output (--authtype none with --public-controls).
    logs_for_all: bool = False
    #: trioproxy's login cookie (``HubSettings.cookie_name``; '' without one).
    own_cookie: str = ""

    def __post_init__(self) -> None:
        self.keepalive = KeepAlive(self.settings.ws_ping_interval_s, self.settings.ws_ping_timeout_s)

    def may_see_logs(self, scope: dict[str, Any]) -> bool:
        """The app's output is the owner's (``_scopes.control_access``, decided at admission and
        carried by the passage): other users, admins and the anonymous never see it."""
        if self.logs_for_all:
            return True
        passage = scope.get("trioproxy.passage")
        return passage is not None and passage.controls == _scopes.OWNER

    def app_set_cookies(self, headers: list[tuple[bytes, bytes]], what: str) -> list[tuple[bytes, bytes]]:
        """The app's response headers without any Set-Cookie of trioproxy's or the Hub's cookies.

        An app that could set or delete one could fix a login session on the Hub
        or on trioproxy, or log its user out. Each one dropped is logged by name
        (never its value); ``what`` names the response.
        """
        kept, dropped = _cookies.without_set_cookies(
            headers, lambda name: _hub_cookies.is_credential(name, own=self.own_cookie)
        )
        for name in dropped:
            logger.warning("%s: the app's Set-Cookie for %r was dropped (a JupyterHub or trioproxy credential cookie)",
                           what, name)
        return kept

    async def open(self, scope: dict[str, Any], send: Send) -> Target | None:
        """The app's address once it is ready; otherwise answer ``scope`` with a page and return None."""
        state = self.state
        if state.status is Status.WAITING:
            host = _host(scope)
            state.offer_origin_host(host)
        owner = self.may_see_logs(scope)
        if state.status in (Status.STARTING, Status.WAITING):
            # A browser of the owner gets the live start-up page soon; others wait longer for the app.
            page = owner and scope["type"] == "http" and b"text/html" in (_header(scope, b"accept") or b"")
            await state.wait_settled(OWNER_PAGE_WAIT_S if page else self.settings.starting_wait_s)
        if state.status is Status.READY and state.address is not None:
            return state.address
        if state.status in (Status.STARTING, Status.WAITING):
            status = 503
            if owner and scope["type"] == "http":
                body = starting_page(self.settings.prefix, state.reason or "The app is starting")
            else:
                body = _pages.render(
                    "The app is starting",
                    ["The app is not ready yet. This page reloads by itself."],
                    refresh_s=STARTING_REFRESH_S,
                )
            await _pages.respond(scope, send, 503, body, [(b"retry-after", str(STARTING_REFRESH_S).encode())])
        elif state.status is Status.STOPPING:
            status = 503
            body = _pages.render("The server is stopping", ["This server is shutting down."])
            await _pages.respond(scope, send, 503, body, [(b"connection", b"close")])
        else:
            status = 502
            body = _pages.render(
                "The app is not running",
                [f"The app {state.reason}.", "trioproxy restarts it; try again in a few seconds."],
                log_lines=state.tail.lines(ERROR_PAGE_TAIL_LINES) if owner else (),
                refresh_s=None,
            )
            await _pages.respond(scope, send, 502, body)
        self.metrics.request_done(status)
        return None


def starting_page(prefix: str, reason: str) -> bytes:
    """The owner's page while the app starts: its output live, and on to the app once it is ready."""
    base = json.dumps(f"{prefix}/_trioproxy")
    body = f"""
<p id="reason">{html.escape(reason)}</p>
<p class="muted">This page follows the app's start and opens it as soon as it is ready.</p>
<h2>The app's output</h2>
<pre id="log"></pre>
<script>
const es = new EventSource({base} + "/logs?follow=1");
const log = document.getElementById("log");
es.addEventListener("line", e => {{ log.textContent += e.data + "\\n"; }});
es.addEventListener("status", e => {{
  const s = JSON.parse(e.data);
  document.getElementById("reason").textContent = s.reason || s.status;
  if (s.ready) {{ es.close(); location.reload(); }}
}});
es.onerror = () => setTimeout(() => location.reload(), 2000);
</script>
"""
    return _pages.render_html("The app is starting", body)


def _header(scope: dict[str, Any], name: bytes) -> bytes | None:
    for key, value in scope["headers"]:
        if key == name:
            return bytes(value)
    return None


def _host(scope: dict[str, Any]) -> str:
    for name, value in scope["headers"]:
        if name == b"host":
            return str(value.decode("latin-1"))
    server = scope.get("server")
    return f"{server[0]}:{server[1]}" if server else "localhost"
