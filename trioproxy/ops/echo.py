"""``{prefix}/_trioproxy/echo``: a websocket trioproxy answers itself, for ``trioproxy doctor``.

The doctor opens it through the Hub's route (and on the server's own address)
to tell "websockets pass end to end" from "the proxy in front does not pass
them" without depending on what the app does with websockets.

Who may open it: exactly whom the owner's controls admit (``controls``): the
front sends ``{prefix}/_trioproxy/*`` through the same login as every request,
and the echo needs the owner's access (the owner, or a token of the owner's
that opens this server, like the server's own ``$JUPYTERHUB_API_TOKEN``).
With ``--authtype none`` it is off (403) unless ``--public-controls``.
Everyone else gets the same 403 page the controls give, before any upgrade.
A plain GET (a handshake some proxy stripped of its ``Upgrade``) gets 426 and
a page that says so.

Served as an ordinary Quart websocket route, that is by hypercorn's own
websocket code (the relay's raw-bytes port is attached by the bridge to the
app only): nothing here goes near the app, the gateway or its activity
tracker, so an echo never counts as activity. Bounded: at most
``ECHO_MAX_MESSAGES`` messages of ``ECHO_MAX_MESSAGE_BYTES`` each (a larger
one is answered 1009), for ``ECHO_TIMEOUT_S`` at most, then it closes 1000;
1001 when trioproxy shuts down. Frames are assembled by hypercorn, so a
message the echo refuses has been held once in full, up to
``--websocket-max-message-size``, as for any websocket of this server.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import trio
from quart import Response, websocket
from quart_trio import QuartTrio

from ..auth.passage import Passage
from ..rules import pages as _pages
from ..rules import routing as _routing
from ..rules import scopes as _scopes
from ..settings import ECHO_MAX_MESSAGE_BYTES, ECHO_MAX_MESSAGES, ECHO_TIMEOUT_S, AuthType, Settings
from ..shutdown import Shutdown
from ..websocket_port import MessageCounts, counts_of

logger = logging.getLogger("trioproxy.ops")

#: The echo's path under the prefix (routed as one of the controls: login first).
ECHO_PATH = _routing.ECHO.decode("ascii")
#: Close codes (RFC 6455 §7.4.1).
CLOSE_NORMAL = 1000
CLOSE_GOING_AWAY = 1001
CLOSE_TOO_BIG = 1009
#: The title of the 426 page a GET of the echo gets (the doctor recognises it).
NO_UPGRADE_TITLE = "426: Websocket only"


def may_echo(settings: Settings, scope: dict[str, Any]) -> bool:
    """Does this handshake have the owner's access to the controls (see the module docstring)?"""
    if settings.hub.authtype is AuthType.NONE:
        return settings.hub.public_controls
    passage = scope.get("trioproxy.passage")
    return isinstance(passage, Passage) and passage.controls == _scopes.OWNER


def register(app: QuartTrio, settings: Settings, shutdown: Shutdown) -> None:
    open_mode = settings.hub.authtype is AuthType.NONE

    @app.route(f"{settings.proxy.prefix}{ECHO_PATH}", methods=["GET", "HEAD"])
    async def not_upgraded() -> Any:
        """A GET without the upgrade: a websocket handshake a proxy in front stripped of its
        ``Upgrade`` (nginx without ``proxy_set_header Upgrade``): say so, for the doctor."""
        body = _pages.render(NO_UPGRADE_TITLE, ["This is a websocket endpoint, and this request reached trioproxy "
                             "without 'Upgrade: websocket': a proxy on the way does not pass websockets."])
        return Response(body, status=426, content_type="text/html; charset=utf-8",
                        headers={"Cache-Control": "no-store", "Upgrade": "websocket"})

    @app.websocket(f"{settings.proxy.prefix}{ECHO_PATH}")
    async def echo() -> Any:
        if not may_echo(settings, cast(dict[str, Any], websocket.scope)):
            if open_mode:
                body = _pages.render("403: Controls off", ["This server is public (--authtype none): its "
                                     "websocket echo is off unless trioproxy runs with --public-controls."])
            else:
                body = _pages.render("403: Owner only", ["The websocket echo belongs to the server's owner."])
            return Response(body, status=403, content_type="text/html; charset=utf-8",
                            headers={"Cache-Control": "no-store"})
        await websocket.accept()
        code = CLOSE_GOING_AWAY
        async with trio.open_nursery() as nursery:

            async def on_shutdown() -> None:
                await shutdown.requested.wait()
                nursery.cancel_scope.cancel()

            async def echo_some() -> None:
                nonlocal code
                code = await _echo_messages(counts_of(websocket.scope) or MessageCounts())
                nursery.cancel_scope.cancel()

            nursery.start_soon(on_shutdown)
            nursery.start_soon(echo_some)
        await websocket.close(code)
        return None


async def _echo_messages(counts: MessageCounts) -> int:
    """Echo up to ``ECHO_MAX_MESSAGES`` messages within ``ECHO_TIMEOUT_S``; the close code to end with.
    ``counts``: the messages each way, for the access log (as the bridge fills them in)."""
    with trio.move_on_after(ECHO_TIMEOUT_S):
        for _ in range(ECHO_MAX_MESSAGES):
            message = await websocket.receive()
            counts.messages_in += 1
            if message is None:  # an empty binary message, as Quart hands it on
                message = b""
            size = len(message.encode() if isinstance(message, str) else message)
            if size > ECHO_MAX_MESSAGE_BYTES:
                logger.info("websocket echo: a message of %d bytes, over %d: closing 1009", size,
                            ECHO_MAX_MESSAGE_BYTES)
                return CLOSE_TOO_BIG
            await websocket.send(message)
            counts.messages_out += 1
    return CLOSE_NORMAL
