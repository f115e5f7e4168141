"""Hypercorn's websocket stream, adjusted for a proxy that relays frames undecoded.

:class:`ProxyWSStream` is the websocket stream of each connection trioproxy
serves: hypercorn makes its own ``WSStream`` and
:class:`trioproxy.compat.hypercorn.ServerConnection` makes it this subclass,
for that connection only (hypercorn is left as it was for anyone else).
Hypercorn still serves the connection and the client's handshake (the front
authenticates it; the bridge accepts or refuses it); what this changes:

* **The relay's port.** The stream is a :class:`trioproxy.websocket_port.ClientPort`,
  offered in the scope's extensions. A bridge that attaches its sink before
  accepting gets the client's bytes as read, from the 101 on
  (:meth:`ServerConnection.divert <trioproxy.compat.hypercorn.ServerConnection.divert>`:
  hypercorn's wsproto connection never sees a frame), and writes to the
  client with :meth:`ProxyWSStream.write` (at once when the kernel takes
  it, else through the connection's bounded write, :mod:`.tcp`),
  :meth:`ProxyWSStream.write_now` (the shutdown's one pass: 1,000
  websockets get their 1001 in ~15 ms instead of a scheduler pass per step
  of hypercorn's write path for each) and :meth:`ProxyWSStream.end`. An
  app that attaches nothing is served by hypercorn's own websocket code.
* **The hand-off.** Once accepted, the bridge hands the rest of the websocket
  to :meth:`ProxyWSStream.hand_off` and returns: when the ASGI app's task
  ends (hypercorn's ``app_send(None)``), the stream drops hypercorn's app
  queue and starts what was handed off (and what was added after it,
  :meth:`ProxyWSStream.after_hand_off`) in one task of the connection's
  nursery. An idle websocket is then that task and the connection's reader,
  without the app task, its queue, and the frames of every ASGI layer above
  the bridge.
* **Handshakes.** A ``Sec-WebSocket-Version`` other than 13 gets 426 with
  ``Sec-WebSocket-Version: 13`` (RFC 6455 §4.4), and a key that is not 16
  bytes of base64 gets 400 (hypercorn accepted any key).
* **No compression** toward the client (:data:`CLIENT_COMPRESSION`), so
  frames relay as they are.
* **Nothing before the 101.** Bytes a client sends before the handshake is
  answered, or behind a refusal, are dropped, never parsed; after a refusal
  the connection ends.
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.events import RawData
from hypercorn.protocol.events import Data, EndBody, Request, Response, StreamClosed
from wsproto.connection import Connection

from ..compat.hypercorn import ASGIWebsocketState, BulkReads, ServerConnection, WebsocketStream
from ..settings import WS_CLIENT_RECEIVE_BYTES
from ..websocket_port import ClientSink, port_extension

logger = logging.getLogger("trioproxy.server")

#: States before the handshake is answered, or in which it was answered with an HTTP response (a refusal).
_BEFORE_OR_INSTEAD_OF_101 = frozenset(
    {ASGIWebsocketState.HANDSHAKE, ASGIWebsocketState.RESPONSE, ASGIWebsocketState.HTTPCLOSED}
)

#: permessage-deflate toward the client (every browser offers it). Off: frames are
#: relayed as they are (the app is never offered compression either), each
#: compressed websocket would hold zlib state of some 300 KiB, and between the
#: Hub's proxy and us bytes are cheap. jhsingle-native-proxy (tornado's
#: default) does not compress either.
CLIENT_COMPRESSION = False


class ProxyWSStream(WebsocketStream):
    """A :class:`trioproxy.websocket_port.ClientPort`; see the module docstring."""

    offer_extensions = CLIENT_COMPRESSION
    _sink: ClientSink | None = None
    #: The client's plain TCP stream, from the 101 on (None on TLS, and before).
    _plain: trio.SocketStream | None = None
    #: What :meth:`write_now` could not write: it goes first.
    _rest = b""
    _ended = False
    #: What was handed off (:meth:`hand_off`) and added after it, in order; None: nothing handed off.
    _later: list[Callable[[], Awaitable[None]]] | None = None

    # --- from the client ---------------------------------------------------------------------------------------

    async def handle(self, event: Any) -> None:
        if isinstance(event, Data):
            if self.state in _BEFORE_OR_INSTEAD_OF_101 or self.closed:
                # Bytes before the handshake's answer, or behind a refusal (a client, or a
                # proxy reusing the connection, that did not wait: RFC 6455 §4.1 says wait):
                # dropped, never parsed. hypercorn answers them with a 400 of its own, a
                # second response on a connection that has or will have one, which h11
                # refuses by raising out of the connection's task.
                return
            if self._sink is not None:
                await self._sink.from_client(event.data)  # what hypercorn held before the divert
                return
            await super().handle(event)
        elif isinstance(event, Request):
            refusal = _handshake_refusal(event)
            if refusal is None:
                await super().handle(event)
            else:
                await self._refuse(*refusal)
        elif isinstance(event, StreamClosed) and self._sink is not None:
            if not self.closed:
                self.closed = True
                self._sink.client_closed()
        else:
            await super().handle(event)

    # --- the port (trioproxy.websocket_port) --------------------------------------------------------------------

    def scope_extensions(self) -> dict[str, Any]:
        return port_extension(self)

    def attach(self, sink: ClientSink) -> None:
        if self.closed:  # the client left while the app was being asked
            sink.client_closed()
            return
        self._sink = sink

    def accepted(self, connection: Connection) -> None:
        # hypercorn made its wsproto connection for the 101 and writes the 101 next, with
        # no checkpoint between: from here on the client's bytes go to the relay as read.
        server = self.connection_server
        if self._sink is None or server is None:
            return
        bulk = self._sink if isinstance(self._sink, BulkReads) else None
        if not server.divert(self._sink.from_client, WS_CLIENT_RECEIVE_BYTES, bulk):
            raise RuntimeError("the websocket relay could not take the client's bytes (trioproxy.compat.hypercorn)")
        plain = server.plain_transport()
        self._plain = plain[1] if plain is not None else None

    async def write(self, data: bytes | memoryview) -> None:
        if self._ended or self.closed:
            return
        if self._rest:
            data, self._rest = self._rest + data, b""
        plain = self._plain
        if plain is not None:
            fd = plain.socket.fileno()  # -1 once closed
            if fd >= 0:
                try:
                    sent = os.write(fd, data)
                except (BlockingIOError, InterruptedError):
                    sent = 0
                except OSError:
                    sent = 0  # the bounded write below meets the error and ends the connection
                if sent == len(data):
                    return
                data = data[sent:]
        server = self.connection_server
        if server is not None:
            # The rest, shielded (a write cut short by a cancellation would leave half a frame on
            # the wire) and bounded all the same: each piece by the stall bound, and all of it by
            # the drain deadline, which closes the socket under it (:mod:`.serve`).
            await server.send_rest(data)

    def write_now(self, data: bytes) -> int:
        if self._ended or self.closed or self._rest:
            return 0 if not self.closed else -1
        plain = self._plain
        server = self.connection_server
        if plain is None or server is None or server.send_lock.locked():
            return 0
        fd = plain.socket.fileno()
        if fd < 0:
            return -1
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            return 0
        except OSError:
            return -1
        if sent < len(data):
            self._rest = data[sent:]
        return sent

    async def end(self) -> None:
        if self._ended:
            return
        self._ended = True
        server = self.connection_server
        if server is None:
            return
        if self._rest and not self.closed:
            rest, self._rest = self._rest, b""
            await server.protocol_send(RawData(data=rest))
        await server.end_connection()

    def hand_off(self, run: Callable[[], Awaitable[None]]) -> bool:
        if (self._sink is None or self._later is not None or self.connection_server is None
                or self.state is not ASGIWebsocketState.CONNECTED):
            return False
        self._later = [run]
        return True

    def after_hand_off(self, then: Callable[[], Awaitable[None]]) -> bool:
        if self._later is None:
            return False
        self._later.append(then)
        return True

    def _continue(self, server: ServerConnection) -> None:
        """The ASGI app has returned: what was handed off runs in a task of the connection's nursery."""
        later, self._later = self._later or [], []
        # hypercorn's queue to the app (its app task is gone, and the relay never used it) and the
        # request's scope (its headers, the passage the front put there): nothing reads them again.
        self.app_put = None
        self.__dict__.pop("scope", None)
        server.start_soon(lambda: _run_in_order(later))

    # --- to the client, as hypercorn would -----------------------------------------------------------------------

    async def app_send(self, message: Any) -> None:
        if self._sink is not None and self.state is ASGIWebsocketState.CONNECTED:
            # Relayed: the relay wrote every frame and ends the connection itself; hypercorn's
            # own close frames (on websocket.close, or its 1011 when the app returns) would
            # land in the middle of the relayed bytes.
            if message is None and self._later is not None:
                # Handed off: the relay goes on (hypercorn may say None twice, after an app's error).
                if self._later and self.connection_server is not None:
                    self._continue(self.connection_server)
            elif message is None or message["type"] == "websocket.close":
                await self.end()
            return
        await super().app_send(message)
        if self._sink is not None and self.state is ASGIWebsocketState.CONNECTED:
            # The 101 is out: hypercorn's wsproto connection and handshake will never be used
            # (the relay has the bytes), so they need not be kept for the websocket's life.
            self.__dict__.pop("connection", None)
            self.__dict__.pop("handshake", None)
            if self.connection_server is not None:
                self.connection_server.forget_request()
        if self.state is ASGIWebsocketState.HTTPCLOSED:
            await self._end_connection()

    async def _end_connection(self) -> None:
        """After a refused handshake the connection ends: hypercorn never recycles one that
        asked for a websocket (nor times it out), so it would stay open, swallowing whatever
        the client sends next."""
        if self.connection_server is not None:
            await self.connection_server.end_connection()

    async def _refuse(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.closed = True
        headers = [*headers, (b"content-length", b"0"), (b"connection", b"close")]
        await self.send(Response(stream_id=self.stream_id, status_code=status, headers=headers))
        await self.send(EndBody(stream_id=self.stream_id))
        await self.send(StreamClosed(stream_id=self.stream_id))
        await self._end_connection()


async def _run_in_order(later: list[Callable[[], Awaitable[None]]]) -> None:
    """Each of ``later`` in turn; those after one that failed or was cancelled still run."""
    while later:
        run = later.pop(0)
        try:
            await run()
        except Exception:
            # As hypercorn treats an ASGI app's error: logged, and the connection's task goes on.
            logger.exception("a websocket's relay failed")
        except BaseException:  # cancelled: the rest is cleanup (shielded and bounded each, if it waits)
            await _run_in_order(later)
            raise


def _handshake_refusal(request: Request) -> tuple[int, list[tuple[bytes, bytes]]] | None:
    """(status, headers) for a websocket handshake hypercorn would wrongly accept or refuse, else None."""
    if request.http_version != "1.1":
        return None
    version_ = key = None
    for name, value in request.headers:
        name = name.lower()
        if name == b"sec-websocket-version":
            version_ = value.strip()
        elif name == b"sec-websocket-key":
            key = value.strip()
    if version_ is not None and version_ != b"13":
        return 426, [(b"sec-websocket-version", b"13")]
    if key is not None:
        try:
            if len(base64.b64decode(key, validate=True)) != 16:
                return 400, []
        except (binascii.Error, ValueError):
            return 400, []
    return None

