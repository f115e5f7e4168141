"""Give the ASGI app the client's own websocket close code and reason.

Hypercorn 0.17/0.18 reports every client close as 1000 or 1006 in
``websocket.disconnect``, whatever code the browser sent, so a proxy could not
pass a client's close code on to the app. When the client closes, hypercorn
echoes the client's close frame back through ``_send_wsproto_event`` while the
connection is REMOTE_CLOSING; this subclass notes that frame's code and reason
there and puts them in the disconnect event (ASGI spec 2.3+ has ``reason``).

It is installed by :func:`install`, which the tests check against the pinned
hypercorn versions (``tests/test_hypercorn_ws.py``).
"""

from __future__ import annotations

from typing import Any

import hypercorn.protocol.h11
from hypercorn.protocol.events import StreamClosed
from hypercorn.protocol.ws_stream import WSStream
from wsproto.connection import ConnectionState
from wsproto.events import CloseConnection


class ClientCloseWSStream(WSStream):
    _client_close: tuple[int, str] | None = None

    async def _send_wsproto_event(self, event: Any) -> None:
        if (
            isinstance(event, CloseConnection)
            and self._client_close is None
            and self.connection.state == ConnectionState.REMOTE_CLOSING
        ):
            self._client_close = (event.code, event.reason or "")
        await super()._send_wsproto_event(event)

    async def handle(self, event: Any) -> None:
        if (
            isinstance(event, StreamClosed)
            and not self.closed
            and self._client_close is not None
            and self.app_put is not None
        ):
            self.closed = True
            code, reason = self._client_close
            await self.app_put({"type": "websocket.disconnect", "code": code, "reason": reason})
            return
        await super().handle(event)


def install() -> None:
    """Make hypercorn's HTTP/1.1 protocol use :class:`ClientCloseWSStream`."""
    hypercorn.protocol.h11.WSStream = ClientCloseWSStream  # type: ignore[misc]
