"""Where the server's websocket stream and the websocket bridge meet: two small protocols.

The server (:mod:`trioproxy.server.ws_stream`) offers the client side of each
websocket as a :class:`ClientPort`, in the ASGI scope's ``extensions`` under
:data:`PORT_EXTENSION` (as a server offers any extension: the scope says what
it can do). The bridge (:mod:`trioproxy.proxy.websocket`) takes it with
:func:`port_of`, attaches its :class:`ClientSink` before it accepts the
websocket, and from then on the two call each other directly:

* client to app: the port calls ``sink.from_client(message)`` from the
  connection's reader task for each whole message (so a slow app holds the
  client back), and ``sink.client_closed(code, reason)`` once when the
  client's side ends;
* app to client: the bridge calls ``port.send_message(message)``; the
  keepalive (:mod:`trioproxy.proxy.ws_keepalive`) reads ``last_heard`` and
  ``closed`` and calls ``ping()`` and ``fail(code, reason)``; shutdown calls
  ``close_at_once(code, reason)``.

Accepting, refusing and closing go through the ASGI messages as usual
(``websocket.accept``, ``websocket.http.response.*``, ``websocket.close``);
only messages take the direct path: no dict, queue or task switch per message.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any, Protocol

#: The scope extension that carries the port: ``scope["extensions"][PORT_EXTENSION]["port"]``.
PORT_EXTENSION = "trioproxy.websocket.port"


class ClientSink(Protocol):
    """What receives a client's messages (the bridge)."""

    async def from_client(self, message: bytes | str) -> None: ...

    def client_closed(self, code: int, reason: str) -> None: ...


class ClientPort(Protocol):
    """The client side of one websocket (the server's stream)."""

    #: True once the client's side has ended.
    closed: bool
    #: ``trio.current_time()`` when the client last sent anything.
    last_heard: float

    def attach(self, sink: ClientSink) -> None:
        """Send the client's messages to ``sink`` from now on (call before accepting).

        If the client is gone already, ``sink.client_closed`` is called at once.
        """

    async def send_message(self, message: bytes | str) -> None:
        """One message to the client (nothing once the websocket is closed)."""

    async def ping(self) -> None: ...

    async def fail(self, code: int, reason: str) -> None:
        """Close frame ``code`` to the client, then end the connection without waiting for its answer."""

    def close_at_once(self, code: int, reason: str) -> bool:
        """Write a close frame now, without waiting; True if it went out whole (else the usual close sends it)."""


def port_extension(port: ClientPort) -> dict[str, Any]:
    """The scope extension that offers ``port``."""
    return {PORT_EXTENSION: {"port": port}}


def port_of(scope: Mapping[str, Any]) -> ClientPort | None:
    """The port a websocket's scope offers, or None (another server)."""
    offered = (scope.get("extensions") or {}).get(PORT_EXTENSION)
    port: ClientPort | None = offered.get("port") if isinstance(offered, dict) else None
    return port
