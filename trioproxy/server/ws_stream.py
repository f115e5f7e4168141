"""Hypercorn's websocket stream, adjusted for a proxy.

:class:`ProxyWSStream` replaces hypercorn's ``WSStream`` in its HTTP/1.1
protocol (:func:`install`). It was read against hypercorn 0.17 and 0.18 (see
:data:`HYPERCORN_VERSIONS`; :func:`install` refuses any other) and changes:

* **Close codes in.** hypercorn reports every client close as 1000 or 1006 in
  ``websocket.disconnect``; here the client's own code and reason pass (ASGI 2.3 has ``reason``).
* **Close codes out.** When wsproto finds a client breaking RFC 6455 (bad
  UTF-8: 1007; reserved bits or opcodes, unmasked or malformed frames, bad
  close codes: 1002), hypercorn dropped the connection without the close frame
  wsproto had prepared; and its 1009 for an over-size message left the
  connection open. Here the client gets the close frame, then the connection
  ends (failing the connection, RFC 6455 §7.1.7: no wait for a reply).
  Over-size messages are refused from the frame header on (:mod:`._ws_limits`).
* **Handshakes.** A ``Sec-WebSocket-Version`` other than 13 gets 426 with
  ``Sec-WebSocket-Version: 13`` (RFC 6455 §4.4), and a key that is not 16
  bytes of base64 gets 400 (hypercorn accepted any key).
* **A direct path for the bridge.** Each websocket message through hypercorn's
  ASGI interface costs a dict, a queue and a switch to the app's task. The
  bridge passes an object with ``from_client(message)`` and
  ``client_closed(code, reason)`` in its ``websocket.accept`` (key
  :data:`BRIDGE_KEY`); from then on the client's messages are handed to it from
  hypercorn's reader task (so a slow app still holds the client back), and the
  bridge sends with :meth:`ProxyWSStream.send_message`. Closing still goes
  through ASGI messages.
* **No compression** toward the client (:data:`CLIENT_COMPRESSION`).
* **Keepalive.** :attr:`ProxyWSStream.last_heard` is when the client last sent
  anything; :meth:`ProxyWSStream.ping` and :meth:`ProxyWSStream.fail` let the
  bridge probe a silent client and cut one that does not answer.
* **Goodbye at once.** :meth:`ProxyWSStream.close_at_once` writes a close frame
  to the client synchronously, so shutdown can say 1001 to every websocket in
  one pass before any task runs (through the tasks it took a scheduler pass per
  step of hypercorn's write path, for each of them: 1,000 websockets saw their
  last 1001 some 80-200 ms after SIGTERM).
"""

from __future__ import annotations

import base64
import binascii
import logging
import os
from importlib.metadata import version
from typing import Any, Protocol

import hypercorn.protocol.h11
import trio
from hypercorn.events import Closed
from hypercorn.protocol.events import Data, EndBody, EndData, Request, Response, StreamClosed
from hypercorn.protocol.ws_stream import ASGIWebsocketState, WSStream
from wsproto.connection import ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage

from . import ws_limits as _ws_limits

logger = logging.getLogger(__name__)

#: States before the handshake is answered, or in which it was answered with an HTTP response (a refusal).
_BEFORE_OR_INSTEAD_OF_101 = frozenset(
    {ASGIWebsocketState.HANDSHAKE, ASGIWebsocketState.RESPONSE, ASGIWebsocketState.HTTPCLOSED}
)

#: hypercorn releases whose WSStream this subclass was read against.
HYPERCORN_VERSIONS = ("0.17.", "0.18.")
#: The key in ``websocket.accept`` that hands over the bridge (see the module docstring).
BRIDGE_KEY = "trioproxy.bridge"
#: The close code sent to the client when we fail the connection is reported to
#: the app as this (the client failed; RFC 6455's "abnormal closure").
CLIENT_FAILED = 1006
#: permessage-deflate toward the client (every browser offers it). Off: each
#: compressed websocket holds zlib state of some 300 KiB, and every message
#: would be inflated and deflated again here (the app side, trio-websocket, has
#: no compression), while between the Hub's proxy and us bytes are cheap.
#: jhsingle-native-proxy (tornado's default) does not compress either.
CLIENT_COMPRESSION = False
#: wsproto's reasons are developer prose; a close reason is at most 123 bytes.
REASON_MAX = 120


class Bridge(Protocol):
    port: ProxyWSStream | None

    async def from_client(self, message: bytes | str) -> None: ...

    def client_closed(self, code: int, reason: str) -> None: ...


class ProxyWSStream(WSStream):
    _bridge: Bridge | None = None
    _client_close: tuple[int, str] | None = None
    _parts: list[Any] | None = None  # the message being received, when it came in several frames
    _size = 0
    #: trio.current_time() when the client last sent anything.
    last_heard = 0.0

    # --- from the client ---------------------------------------------------------------------------------------

    async def handle(self, event: Any) -> None:
        if isinstance(event, Data):
            # The hot path: bytes of an accepted websocket (hypercorn answers early ones with 400).
            if self.state in _BEFORE_OR_INSTEAD_OF_101:
                # Bytes before the handshake's answer, or behind a refusal (a client, or
                # a proxy reusing the connection, that did not wait: RFC 6455 §4.1 says
                # wait): dropped, never parsed. hypercorn answers them with a 400 of its
                # own, a second response on a connection that has or will have one,
                # which h11 refuses by raising out of the connection's task (the whole
                # server went down). After a refusal the connection ends (app_send).
                return None
            if self.closed or self.state is not ASGIWebsocketState.CONNECTED:
                return await super().handle(event)
            self.last_heard = trio.current_time()
            if self.connection.state is ConnectionState.CLOSED:
                return
            self.connection.receive_data(event.data)
            await self._handle_events()
        elif isinstance(event, Request):
            refusal = _handshake_refusal(event)
            if refusal is None:
                await super().handle(event)
            else:
                await self._refuse(*refusal)
        elif isinstance(event, StreamClosed):
            await self._closed()
        else:
            await super().handle(event)

    async def _handle_events(self) -> None:
        for event in self.connection.events():
            if isinstance(event, Message):
                if not await self._take(event):
                    return
            elif isinstance(event, Ping):
                await self._send_wsproto_event(event.response())
            elif isinstance(event, CloseConnection):
                state = self.connection.state
                if state is ConnectionState.REMOTE_CLOSING:  # the client closed: answer in kind
                    self._client_close = (event.code, event.reason or "")
                    await self._send_wsproto_event(event.response())
                elif state is not ConnectionState.CLOSED:  # wsproto failed the connection (a bad frame)
                    await self._send_close(event.code, event.reason)
                await self.send(StreamClosed(stream_id=self.stream_id))
                return
            # Pongs need nothing: last_heard is already set.

    async def _take(self, event: Message) -> bool:
        """Add a piece of a message; pass on a whole one. False if it is too big (the connection is failed)."""
        limit = self.config.websocket_max_message_size
        if self._parts is None and event.message_finished:
            if len(event.data) > limit:
                await self.fail(1009, "message too big")
                return False
            message = event.data
        else:
            if self._parts is None:
                self._parts, self._size = [], 0
            self._parts.append(event.data)
            self._size += len(event.data)
            if self._size > limit:
                self._parts = None
                await self.fail(1009, "message too big")
                return False
            if not event.message_finished:
                return True
            message = ("" if isinstance(event, TextMessage) else b"").join(self._parts)
            self._parts = None
        if self._bridge is not None:
            await self._bridge.from_client(message)
        elif self.app_put is not None:
            text = isinstance(message, str)
            await self.app_put({"type": "websocket.receive", "bytes": None if text else message,
                                "text": message if text else None})
        return True

    async def _closed(self) -> None:
        if self.closed:
            return
        self.closed = True
        if self._client_close is not None:
            code, reason = self._client_close
        elif self.state in {ASGIWebsocketState.HTTPCLOSED, ASGIWebsocketState.CLOSED}:
            code, reason = 1000, ""
        else:
            code, reason = CLIENT_FAILED, ""
        if self._bridge is not None:
            self._bridge.client_closed(code, reason)
        elif self.app_put is not None:
            await self.app_put({"type": "websocket.disconnect", "code": code, "reason": reason})

    # --- to the client -----------------------------------------------------------------------------------------

    #: What :meth:`close_at_once` could not write at once: written before anything else goes out.
    _close_rest: bytes | None = None
    #: The client connection's write lock and TCP stream (see :func:`_client_io`), from the accept on.
    _client_io: tuple[trio.Lock, trio.SocketStream] | None = None

    def close_at_once(self, code: int, reason: str) -> bool:
        """Write a close frame to the client now, without waiting; True if it went out whole.

        Synchronous, for shutdown: a thousand websockets get their close frame in
        one loop instead of a scheduler pass for each step of hypercorn's write
        path. Only on a plain TCP connection with no write of ours under way (its
        send lock free); otherwise nothing happens here and the bridge's own
        ``websocket.close`` sends the frame as usual. Once the frame is out (or
        its start: the rest, if the kernel took only part, goes first at the next
        send), wsproto knows the close was sent, so the bridge's ``websocket.close``
        sends nothing more, and the client's answer ends the connection.
        """
        if self.closed or self.state is not ASGIWebsocketState.CONNECTED:
            return False
        if self.connection.state is not ConnectionState.OPEN:
            return False
        if self._client_io is None:
            return False
        lock, transport = self._client_io
        fd = transport.socket.fileno()  # -1 once closed (never a stale number: no await since)
        if lock.locked() or fd < 0:
            return False
        data = self.connection.send(CloseConnection(code=code, reason=reason[:REASON_MAX] or None))
        try:
            sent = os.write(fd, data)
        except BlockingIOError:
            sent = 0
        except OSError:
            return False  # the client is gone: its reader sees it
        if sent < len(data):
            self._close_rest = data[sent:]
            return False
        return True

    async def app_send(self, message: Any) -> None:
        if self._close_rest is not None:
            rest, self._close_rest = self._close_rest, None
            await self.send(Data(stream_id=self.stream_id, data=rest))
            if message is not None and message["type"] == "websocket.close":
                self.state = ASGIWebsocketState.CLOSED
                await self.send(EndData(stream_id=self.stream_id))
                return
        if message is not None and message["type"] == "websocket.accept" and BRIDGE_KEY in message:
            bridge = message[BRIDGE_KEY]
            bridge.port = self
            if self.closed:  # the client left while the app was being asked
                bridge.client_closed(CLIENT_FAILED, "")
                return
            self._bridge = bridge
        await super().app_send(message)
        if self.state is ASGIWebsocketState.HTTPCLOSED:
            await self._end_connection()

    async def _end_connection(self) -> None:
        """After a refused handshake the connection ends: hypercorn never recycles one that
        asked for a websocket (nor times it out), so it would stay open, swallowing whatever
        the client sends next."""
        server = _server_of(self)
        if server is not None:
            await server.protocol_send(Closed())

    async def _accept(self, message: Any) -> None:
        # hypercorn's own, plus the size limit attached before the first frame can be parsed
        # (no await between creating the wsproto connection and attaching it).
        self.state = ASGIWebsocketState.CONNECTED
        if not CLIENT_COMPRESSION:
            self.handshake.extensions = None  # as if the client offered none
        status_code, headers, self.connection = self.handshake.accept(
            message.get("subprotocol"), message.get("headers", [])
        )
        _ws_limits.attach(self.connection, self.config.websocket_max_message_size)
        self.last_heard = trio.current_time()
        self._client_io = _client_io(self)
        await self.send(Response(stream_id=self.stream_id, status_code=status_code, headers=headers))
        await self.config.log.access(self.scope, {"status": status_code, "headers": []}, 0.0)

    async def send_message(self, message: bytes | str) -> None:
        """Send one message to the client (nothing once the websocket is closed)."""
        if self.closed or self.state is not ASGIWebsocketState.CONNECTED:
            return
        event = TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
        await self._send_wsproto_event(event)

    async def ping(self) -> None:
        if not self.closed and self.state is ASGIWebsocketState.CONNECTED:
            await self._send_wsproto_event(Ping(payload=b"trioproxy"))

    async def fail(self, code: int, reason: str) -> None:
        """Close frame ``code`` to the client, then end the connection without waiting for its answer."""
        if self.closed:
            return
        await self._send_close(code, reason)
        await self.send(StreamClosed(stream_id=self.stream_id))

    async def _send_close(self, code: int, reason: str | None) -> None:
        self._client_close = (CLIENT_FAILED, reason or "")
        await self._send_wsproto_event(CloseConnection(code=code, reason=(reason or "")[:REASON_MAX] or None))

    async def _refuse(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.closed = True
        headers = [*headers, (b"content-length", b"0"), (b"connection", b"close")]
        await self.send(Response(stream_id=self.stream_id, status_code=status, headers=headers))
        await self.send(EndBody(stream_id=self.stream_id))
        await self.send(StreamClosed(stream_id=self.stream_id))
        await self._end_connection()


def _server_of(stream: ProxyWSStream) -> Any:
    """The TCP server that holds ``stream``'s connection, or None (see :func:`_client_io`)."""
    protocol = getattr(stream.send, "__self__", None)
    server = getattr(getattr(protocol, "send", None), "__self__", None)
    return server if callable(getattr(server, "protocol_send", None)) else None


def _client_io(stream: ProxyWSStream) -> tuple[trio.Lock, trio.SocketStream] | None:
    """The lock that client writes take and the client's plain TCP stream; None if not found (TLS: always).

    hypercorn's chain (0.17, 0.18): the stream's ``send`` is its H11Protocol's
    ``stream_send``, whose ``send`` is the TCPServer's ``protocol_send``; the
    server holds the stream and the lock its writes take. Anything else is
    None, and :meth:`ProxyWSStream.close_at_once` leaves the close to the usual way.
    """
    protocol = getattr(stream.send, "__self__", None)
    server = getattr(getattr(protocol, "send", None), "__self__", None)
    lock = getattr(server, "send_lock", None)
    transport = getattr(server, "stream", None)
    if isinstance(lock, trio.Lock) and isinstance(transport, trio.SocketStream):
        return lock, transport
    return None


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


def check_versions() -> None:
    found = version("hypercorn")
    if not found.startswith(HYPERCORN_VERSIONS):
        raise RuntimeError(
            f"trioproxy subclasses hypercorn's WSStream and was checked against hypercorn "
            f"{', '.join(v + 'x' for v in HYPERCORN_VERSIONS)}, not {found}: check "
            f"trioproxy/_hypercorn_ws.py against this hypercorn and extend HYPERCORN_VERSIONS"
        )
    _ws_limits.check_versions()


def install() -> None:
    """Make hypercorn's HTTP/1.1 protocol use :class:`ProxyWSStream` (after checking the versions)."""
    check_versions()
    hypercorn.protocol.h11.WSStream = ProxyWSStream  # type: ignore[misc]
