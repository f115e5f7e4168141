"""The ASGI callable hypercorn serves: routes each request, checks who may pass, forwards.

Proxied requests go from here straight to the forwarding code; redirects of
the bare and the ``%40``-encoded prefix are answered here; everything else
(trioproxy's own endpoints, 404s, lifespan) goes to the Quart-Trio app.
"""

from __future__ import annotations

from typing import Any

from . import _http_proxy, _pages, _routing, _ws_proxy
from ._appgate import Gateway
from ._auth import Authenticator


class Front:
    def __init__(self, gateway: Gateway, auth: Authenticator, web: Any, router: _routing.Router) -> None:
        self.gateway = gateway
        self.auth = auth
        self.web = web
        self.router = router

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        kind = scope["type"]
        if kind == "lifespan":
            await self.web(scope, receive, send)
            return
        method = scope.get("method", "GET")
        route = self.router.route(method, scope["raw_path"], scope["query_string"])
        if isinstance(route, _routing.Forward):
            identity = await self.auth.check(scope, send)
            if identity is None:
                return
            if kind == "http":
                await _http_proxy.forward(
                    self.gateway, scope, receive, send, route.target, drop_headers=identity.drop_headers
                )
            else:
                await _ws_proxy.bridge(
                    self.gateway, scope, receive, send, route.target, drop_headers=identity.drop_headers
                )
        elif isinstance(route, _routing.Redirect):
            location = route.location
            await _pages.respond(scope, send, route.status, _pages.redirect_body(location), [(b"location", location)])
        else:
            await self.web(scope, receive, send)
