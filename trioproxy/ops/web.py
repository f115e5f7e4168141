"""The Quart-Trio app for trioproxy's own endpoints (not the proxied app).

The proxied path does not go through Quart: ``_front`` hands it straight to
``_http_proxy``/``_ws_proxy`` (Quart's routing and request objects cost about
0.2 ms per request and it would parse bodies we must stream). Quart serves
what trioproxy answers itself: the OAuth callback, the 404 page, and the
control endpoints that later issues add.
"""

from __future__ import annotations

from typing import Any, cast

from quart import Response, request
from quart_trio import QuartTrio
from werkzeug.datastructures import Headers

from ..auth.passage import Authenticator, Passage
from ..child.supervisor import AppState, Status
from ..proxy.gateway import look_of
from ..rules import pages as _pages
from ..rules import scopes as _scopes
from ..settings import AuthType, Settings


def make_app(settings: Settings, auth: Authenticator, state: AppState) -> QuartTrio:
    app = QuartTrio("trioproxy")
    # Quart's defaults would cut long responses (60 s) and bodies (16 MB) and
    # answer OPTIONS itself; none of that may touch what passes through here.
    app.config.update(
        RESPONSE_TIMEOUT=None,
        BODY_TIMEOUT=None,
        MAX_CONTENT_LENGTH=None,
        PROVIDE_AUTOMATIC_OPTIONS=False,
    )
    prefix = settings.proxy.prefix

    @app.route(f"{prefix}/oauth_callback", methods=["GET"])
    async def oauth_callback() -> Any:
        reply = await auth.callback(cast(dict[str, Any], request.scope))
        headers = [(k.decode("latin-1"), v.decode("latin-1")) for k, v in reply.headers]
        headers.append(("Cache-Control", "no-store"))
        return Response(reply.body, status=reply.status, headers=Headers(headers),
                        content_type="text/html; charset=utf-8")

    @app.route("/_trioproxy/live", methods=["GET", "HEAD"])
    async def live() -> Any:
        """Liveness: trioproxy serves (no login; says nothing else)."""
        return Response("ok\n", status=200, content_type="text/plain; charset=utf-8",
                        headers={"Cache-Control": "no-store"})

    @app.route("/_trioproxy/ready", methods=["GET", "HEAD"])
    async def ready() -> Any:
        """Readiness: the app answers (no login; says only ready or not)."""
        is_ready = state.status is Status.READY
        return Response("ready\n" if is_ready else "not ready\n", status=200 if is_ready else 503,
                        content_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-store"})

    look = look_of(settings)

    def owner() -> bool:
        """The request came through the owner's login (under the prefix), or the controls are public."""
        if settings.hub.authtype is AuthType.NONE:
            return settings.hub.public_controls
        passage = request.scope.get("trioproxy.passage")
        return isinstance(passage, Passage) and passage.controls == _scopes.OWNER

    def not_found_body() -> bytes:
        home = look.app
        links = [(f"This server's app: {home}", home)]
        if look.hub_home:
            links.append(("The JupyterHub home page", look.hub_home))
        return _pages.render("404: Not Found",
                             [f"There is nothing here. This server serves its app under {home} only."],
                             links=links, look=look.for_owner(owner()))

    @app.errorhandler(404)
    async def not_found(_error: Exception) -> Any:
        return Response(not_found_body(), status=404, content_type="text/html; charset=utf-8")

    @app.errorhandler(405)
    async def not_allowed(_error: Exception) -> Any:
        body = _pages.render("405: Method Not Allowed", ["This endpoint does not take that method."],
                             look=look.for_owner(owner()))
        return Response(body, status=405, content_type="text/html; charset=utf-8")

    return app
