"""The ASGI callable hypercorn serves: routes each request, checks who may pass, forwards.

Proxied requests go from here straight to the forwarding code; redirects of
the bare and the ``%40``-encoded prefix (and of the prefix to
``$JUPYTERHUB_DEFAULT_URL``) are answered here, and so is the
Hub's readiness probe while the app is not ready (held with 503 while it starts,
up to ``--hub-ready-timeout`` and until it first fails; then 200); everything else (trioproxy's own
endpoints, 404s, lifespan) goes to the Quart-Trio app.

Responses trioproxy makes itself (everything sent through ``own``) carry
``X-JupyterHub-Version`` (the Hub reads it from its readiness probe) and
``_pages.OWN_HEADERS``; the app's own responses pass as they are.

Every request is seen here first, so here is where ``--access-log`` logs it
(``front/access.py``, one line when its answer ends) and where ``--debug``
says how it was routed.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import trio

from ..auth.passage import Authenticator
from ..child.supervisor import Status
from ..proxy import http as _http_proxy
from ..proxy import websocket as _ws_proxy
from ..proxy.gateway import Gateway
from ..rules import headers as _headers
from ..rules import pages as _pages
from ..rules import routing as _routing
from ..rules.pages import Send
from ..settings import HUB_PROBE_RETRY_AFTER_S, REFUSE_DRAIN_BYTES, REFUSE_DRAIN_S
from . import access as _access

logger = logging.getLogger("trioproxy.proxy")

#: The path (under the prefix) the Hub probes to see whether the server is up.
HUB_PROBE = b"/api"
#: Prometheus metrics, outside the prefix.
METRICS = b"/_trioproxy/metrics"


class Front:
    def __init__(
        self,
        gateway: Gateway,
        auth: Authenticator,
        web: Any,
        router: _routing.Router,
        *,
        hub_version: Callable[[], str | None] = lambda: None,
        hold_probe_s: float = 0.0,
        metrics_login: Callable[[dict[str, Any]], bool] = lambda scope: False,
        max_header_bytes: int = 64 * 2**10,
        access_log: bool = False,
    ) -> None:
        #: --access-log: each request's line when it ends (``front/access.py``).
        self.access_log = access_log
        self.max_header_bytes = max_header_bytes
        self.metrics_login = metrics_login
        self.gateway = gateway
        self.auth = auth
        self.web = web
        self.router = router
        self.hub_version = hub_version
        self.hold_probe_until = trio.current_time() + hold_probe_s

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self.web(scope, receive, send)
        elif self.access_log:
            await _access.logged(self._handle, scope, receive, send)
        else:
            await self._handle(scope, receive, send)

    async def _handle(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        own = self._stamped(send)
        problem = _headers.request_problem(
            scope.get("http_version", "1.1"), scope["raw_path"], scope["query_string"], scope["headers"],
            self.max_header_bytes,
        )
        if problem is not None:
            status, reason = problem
            body = _pages.render(f"{status}: Bad request", [reason[:1].upper() + reason[1:] + "."])
            if kind == "http":
                await _drain(receive)
            await _pages.respond(scope, own, status, body, [(b"connection", b"close")])
            return
        method = scope.get("method", "GET")
        route = self.router.route(method, scope["raw_path"], scope["query_string"], websocket=kind == "websocket")
        if logger.isEnabledFor(logging.DEBUG):  # --debug: where each request goes (its path, never its query)
            logger.debug("%s %s: %s", "websocket" if kind == "websocket" else method, scope["path"], _describe(route))
        if isinstance(route, _routing.Forward):
            if kind == "http" and route.target == HUB_PROBE and self.gateway.state.status is not Status.READY:
                if self._holding_probe():
                    body = _pages.render("The app is starting", ["The app is not ready yet."])
                    await _pages.respond(scope, own, 503, body,
                                         [(b"retry-after", str(HUB_PROBE_RETRY_AFTER_S).encode())])
                    return
                if self.gateway.state.status is not Status.STOPPING:
                    # Past the hold (the bound, or the app failed): the Hub counts the server up and
                    # sends the user to trioproxy's pages, whatever the login (no login: no details).
                    body = _pages.render("trioproxy is up", ["trioproxy is up; the app is not ready."])
                    await _pages.respond(scope, own, 200, body)
                    return
            passage = await self.auth.admit(scope, own, route.target)
            if passage is None:
                return
            scope["trioproxy.user"] = passage.user
            scope["trioproxy.passage"] = passage
            if kind == "http":
                await _http_proxy.forward(self.gateway, scope, receive, send, passage)
            else:
                await _ws_proxy.bridge(self.gateway, scope, receive, send, passage)
        elif isinstance(route, _routing.Redirect):
            location = route.location
            await _pages.respond(scope, own, route.status, _pages.redirect_body(location), [(b"location", location)])
        elif isinstance(route, _routing.Internal) and route.path == METRICS and self.metrics_login(scope):
            # Metrics for API clients of this server: their token is checked like any.
            passage = await self.auth.admit(scope, own, b"/")
            if passage is None:
                return
            scope["trioproxy.user"] = passage.user or {}
            await self.web(scope, receive, own)
        elif isinstance(route, _routing.Internal) and route.login:
            # The owner's controls: logged in like any request, then Quart (which checks the owner).
            passage = await self.auth.admit(scope, own, route.path)
            if passage is None:
                return
            scope["trioproxy.user"] = passage.user
            scope["trioproxy.passage"] = passage  # what _controls checks: only admit makes one
            await self.web(scope, receive, own)
        else:
            await self.web(scope, receive, own)

    def _holding_probe(self) -> bool:
        """Answer the Hub's probe with 503: the app is starting, has not failed yet, and the bound is
        not reached. Once it failed (it exited, was restarted for want of progress, its checkout
        failed), the probe passes: the Hub counts the server up and sends the user to trioproxy's
        page, which says why, instead of its own "didn't respond" after http_timeout."""
        state = self.gateway.state
        return (state.status is Status.STARTING and not state.failed_once
                and trio.current_time() < self.hold_probe_until)

    def _stamped(self, send: Send) -> Send:
        """``send`` for the responses trioproxy makes itself: with its own headers and the Hub's version."""
        version = self.hub_version()
        stamp = [(b"x-jupyterhub-version", version.encode("latin-1", "replace"))] if version else []

        async def stamped(message: dict[str, Any]) -> None:
            if message["type"] in ("http.response.start", "websocket.http.response.start"):
                headers = _pages.with_own_headers(message.get("headers", ()))
                message = {**message, "headers": headers + stamp}
            await send(message)

        return stamped


def _describe(route: object) -> str:
    """A routing decision, for the debug log (paths only: a query may hold a token)."""
    if isinstance(route, _routing.Forward):
        return "to the app (after the login check)"
    if isinstance(route, _routing.Redirect):
        return f"redirect {route.status}"
    if isinstance(route, _routing.Internal):
        return "trioproxy's own endpoint (login first)" if route.login else "trioproxy's own endpoint"
    return type(route).__name__


async def _drain(receive: Any) -> None:
    """Read the body hypercorn has already taken in, bounded in time and size.

    A refused request is answered with ``Connection: close``. If that answer goes
    out while hypercorn is still parsing bytes the client sent behind the head (a
    pipelined request, as in a smuggling attempt), h11 reports them as "data when
    expecting EOF" and hypercorn closes the socket under the answer being written
    (the client gets nothing, the log a BusyResourceError). Once the body is read,
    hypercorn waits for the answer before it looks at what follows.
    """
    seen = 0
    with trio.move_on_after(REFUSE_DRAIN_S):
        while seen <= REFUSE_DRAIN_BYTES:
            message = await receive()
            if message["type"] != "http.request" or not message.get("more_body", False):
                return
            seen += len(message.get("body", b""))
