"""trio-websocket: the wsproto connection under a connection, and how its reader fails.

* :func:`wsproto_connection`: the websocket size limit on the app's side
  (:mod:`trioproxy.server.ws_limits`) hooks into the wsproto connection that a
  ``WebSocketConnection`` keeps in ``_wsproto`` (a ``wsproto.WSConnection``,
  whose ``connection`` is the established ``wsproto.Connection``).
* A behaviour, not a name: the websocket bridge reads the app's answer to the
  handshake itself, from inside trio-websocket's ``receive_some`` call
  (:class:`trioproxy.proxy.websocket._HandshakeGuard`), and ends the handshake
  by raising there. That works because the reader task
  (``WebSocketConnection._reader_task``) catches only ``BrokenResourceError``
  and ``ClosedResourceError`` around its ``receive_some``: anything else
  leaves the task, and the nursery given to ``wrap_client_stream``.
"""

from __future__ import annotations

from typing import Any

from trio_websocket import WebSocketConnection
from wsproto import WSConnection
from wsproto.connection import Connection

from .probe import Reaches, method, uses

#: The trio-websocket releases this module was read against.
TESTED = ("0.12",)


def wsproto_connection(ws: WebSocketConnection) -> Connection:
    """The established wsproto connection under ``ws`` (its handshake complete)."""
    wrapped: Any = ws._wsproto  # the reach this module is for
    connection: Connection = wrapped.connection
    return connection


def check() -> str:
    reaches = Reaches(__name__, "trio-websocket", TESTED)
    reaches.need(uses(WebSocketConnection, "WebSocketConnection", "__init__", "_wsproto"))
    reaches.need(uses(WSConnection, "wsproto.WSConnection", "__init__", "connection"))
    reaches.need(uses(WebSocketConnection, "WebSocketConnection", "_reader_task",
                      "receive_some", "BrokenResourceError", "ClosedResourceError"))
    for name in ("get_message", "send_message", "aclose"):
        reaches.need(method(WebSocketConnection, "WebSocketConnection", name))
    return reaches.raise_if_any()
