"""Where the server's websocket stream and the websocket relay meet: two small protocols.

The server (:mod:`trioproxy.server.ws_stream`) offers the client side of each
websocket as a :class:`ClientPort`, in the ASGI scope's ``extensions`` under
:data:`PORT_EXTENSION` (as a server offers any extension: the scope says what
it can do). The bridge (:mod:`trioproxy.proxy.websocket`) takes it with
:func:`port_of`, attaches its :class:`ClientSink` (the relay,
:mod:`trioproxy.proxy.ws_relay`) before it accepts the websocket, and from the
101 on the two exchange the connection's raw bytes, frames undecoded:

* client to relay: the port calls ``sink.from_client(data)`` from the
  connection's reader task with the bytes as read (so a slow app holds the
  client back), and ``sink.client_closed()`` once when the client's
  connection ends (EOF, reset, cut);
* relay to client: ``port.write(data)`` (all of it, each piece bounded like
  every write to a client), ``port.write_now(data)`` (synchronous, for the
  shutdown's one pass) and ``port.end()`` (the connection closes).

Accepting and refusing still go through the ASGI messages as usual
(``websocket.accept``, ``websocket.http.response.*``); nothing per frame does.

After the accept the bridge hands the rest of the websocket (the relaying and
its ending) to the port, ``port.hand_off(run)``, and returns: the ASGI app's
task ends (with hypercorn's message queue, and the frames of everything that
called the bridge), and ``run`` runs in a task owned by the connection's own
nursery. Whoever wrapped the bridge and has something to do at the
websocket's end (the access log's line) adds it with ``port.after_hand_off``.

A third, optional extension, :data:`COUNTS_EXTENSION`, is how whoever wraps the
bridge (the access log) learns the messages a websocket carried: the bridge
fills in the :class:`MessageCounts` it finds there when the websocket ends.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

#: The scope extension that carries the port: ``scope["extensions"][PORT_EXTENSION]["port"]``.
PORT_EXTENSION = "trioproxy.websocket.port"


#: The scope extension that carries a :class:`MessageCounts`: ``scope["extensions"][COUNTS_EXTENSION]["counts"]``.
COUNTS_EXTENSION = "trioproxy.websocket.counts"


@dataclass(slots=True)
class MessageCounts:
    """The data messages a websocket carried each way (as the bridge's frame trackers counted them)."""

    #: From the client to the app.
    messages_in: int = 0
    #: From the app to the client.
    messages_out: int = 0


class ClientSink(Protocol):
    """What receives a client's bytes after the 101 (the relay)."""

    async def from_client(self, data: bytes) -> None: ...

    def client_closed(self) -> None: ...


class ClientPort(Protocol):
    """The client side of one websocket (the server's stream)."""

    #: True once the client's connection has ended.
    closed: bool

    def attach(self, sink: ClientSink) -> None:
        """Give the client's bytes to ``sink`` from the 101 on (call before accepting).

        If the client is gone already, ``sink.client_closed`` is called at once.
        """

    async def write(self, data: bytes | memoryview) -> None:
        """All of ``data`` to the client; a client that stops reading is cut (then ``sink.client_closed``).
        Nothing keeps ``data`` once this returns (a view of a buffer that is used again)."""

    def write_now(self, data: bytes) -> int:
        """Write without waiting: the bytes the kernel took (the rest goes first at the next write or
        at the end); 0 if none could go now (or this is TLS), -1 if the client is gone."""

    async def end(self) -> None:
        """Close the client's connection (what ``write_now`` left goes first)."""

    def hand_off(self, run: Callable[[], Awaitable[None]]) -> bool:
        """After the accept: ``run`` (the rest of the websocket, its ending included) runs in a task of
        the connection's own once the ASGI app has returned, and that return ends nothing.

        False if this port cannot take it (not accepted, or not relayed): the caller runs it itself.
        """

    def after_hand_off(self, then: Callable[[], Awaitable[None]]) -> bool:
        """If the websocket was handed off, ``then`` runs after it (and after those added before), even
        when it failed or was cancelled; True. False (nothing handed off): the caller does it now."""


def port_extension(port: ClientPort) -> dict[str, Any]:
    """The scope extension that offers ``port``."""
    return {PORT_EXTENSION: {"port": port}}


def port_of(scope: Mapping[str, Any]) -> ClientPort | None:
    """The port a websocket's scope offers, or None (another server)."""
    offered = (scope.get("extensions") or {}).get(PORT_EXTENSION)
    port: ClientPort | None = offered.get("port") if isinstance(offered, dict) else None
    return port


def counts_of(scope: Mapping[str, Any]) -> MessageCounts | None:
    """The counts a websocket's scope asks to be filled in, or None."""
    offered = (scope.get("extensions") or {}).get(COUNTS_EXTENSION)
    counts = offered.get("counts") if isinstance(offered, dict) else None
    return counts if isinstance(counts, MessageCounts) else None
