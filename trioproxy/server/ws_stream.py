"""Hypercorn's websocket stream, adjusted for a proxy.

:class:`ProxyWSStream` is the websocket stream of each connection trioproxy
serves: hypercorn makes its own ``WSStream`` and
:class:`trioproxy.compat.hypercorn.ServerConnection` makes it this subclass,
for that connection only (hypercorn is left as it was for anyone else). What
it changes:

* **Close codes in.** hypercorn reports every client close as 1000 or 1006 in
  ``websocket.disconnect``; here the client's own code and reason pass (ASGI 2.3 has ``reason``).
* **Close codes out.** When wsproto finds a client breaking RFC 6455 (bad
  UTF-8: 1007; reserved bits or opcodes, unmasked or malformed frames, bad
  close codes: 1002), hypercorn dropped the connection without the close frame
  wsproto had prepared; and its 1009 for an over-size message left the
  connection open. Here the client gets the close frame, then the connection
  ends (failing the connection, RFC 6455 §7.1.7: no wait for a reply).
  Over-size messages are refused from the frame header on (:mod:`.ws_limits`).
* **Handshakes.** A ``Sec-WebSocket-Version`` other than 13 gets 426 with
  ``Sec-WebSocket-Version: 13`` (RFC 6455 §4.4), and a key that is not 16
  bytes of base64 gets 400 (hypercorn accepted any key).
* **A direct path for the bridge.** Each websocket message through hypercorn's
  ASGI interface costs a dict, a queue and a switch to the app's task. The
  stream is a :class:`trioproxy.websocket_port.ClientPort`, offered in the
  scope's extensions: a bridge that attaches its sink gets the client's
  messages from hypercorn's reader task (so a slow app still holds the client
  back) and sends with :meth:`ProxyWSStream.send_message`. Accepting and
  closing still go through ASGI messages; an app that attaches nothing gets
  ``websocket.receive`` messages as usual.
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
from typing import Any

import trio
from hypercorn.protocol.events import (
    Data,
    EndBody,
    EndData,
    Request,
    Response,
    StreamClosed,
)
from wsproto.connection import Connection, ConnectionState
from wsproto.events import BytesMessage, CloseConnection, Message, Ping, TextMessage

from ..compat.hypercorn import ASGIWebsocketState, WebsocketStream
from ..websocket_port import ClientSink, port_extension
from . import ws_limits as _ws_limits

logger = logging.getLogger("trioproxy.server")

#: States before the handshake is answered, or in which it was answered with an HTTP response (a refusal).
_BEFORE_OR_INSTEAD_OF_101 = frozenset(
    {ASGIWebsocketState.HANDSHAKE, ASGIWebsocketState.RESPONSE, ASGIWebsocketState.HTTPCLOSED}
)

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


class ProxyWSStream(WebsocketStream):
    """A :class:`trioproxy.websocket_port.ClientPort`; see the module docstring."""

    offer_extensions = CLIENT_COMPRESSION
    _sink: ClientSink | None = None
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
                return
            if self.closed:
                return
            if self.state is ASGIWebsocketState.CONNECTED:
                self.last_heard = trio.current_time()
            # CONNECTED, or CLOSED (the app closed: the client's answer is still read here)
            if self.connection.state is ConnectionState.CLOSED:
                return
            self.connection.receive_data(event.data)
            await self._client_events()
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

    async def _client_events(self) -> None:
        for event in self.connection.events():
            if isinstance(event, Message):
                if not await self._take(event):
                    return
            elif isinstance(event, Ping):
                await self.send_event(event.response())
            elif isinstance(event, CloseConnection):
                state = self.connection.state
                if state is ConnectionState.REMOTE_CLOSING:  # the client closed: answer in kind
                    self._client_close = (event.code, event.reason or "")
                    await self.send_event(event.response())
                elif state is not ConnectionState.CLOSED:  # wsproto failed the connection (a bad frame)
                    await self._send_close(event.code, event.reason)
                await self.send(StreamClosed(stream_id=self.stream_id))
                return
            # Pongs need nothing: last_heard is already set.

    async def _take(self, event: Message[Any]) -> bool:
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
        if self._sink is not None:
            await self._sink.from_client(message)
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
        if self._sink is not None:
            self._sink.client_closed(code, reason)
        elif self.app_put is not None:
            await self.app_put({"type": "websocket.disconnect", "code": code, "reason": reason})

    # --- the port (trioproxy.websocket_port) --------------------------------------------------------------------

    def scope_extensions(self) -> dict[str, Any]:
        return port_extension(self)

    def attach(self, sink: ClientSink) -> None:
        if self.closed:  # the client left while the app was being asked
            sink.client_closed(CLIENT_FAILED, "")
            return
        self._sink = sink

    # --- to the client -----------------------------------------------------------------------------------------

    #: What :meth:`close_at_once` could not write at once: written before anything else goes out.
    _close_rest: bytes | None = None
    #: The client connection's write lock and plain TCP stream (None on TLS), from the accept on.
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
        await super().app_send(message)
        if self.state is ASGIWebsocketState.HTTPCLOSED:
            await self._end_connection()

    async def _end_connection(self) -> None:
        """After a refused handshake the connection ends: hypercorn never recycles one that
        asked for a websocket (nor times it out), so it would stay open, swallowing whatever
        the client sends next."""
        if self.connection_server is not None:
            await self.connection_server.end_connection()

    def accepted(self, connection: Connection) -> None:
        # The size limit is attached before the first frame can be parsed (hypercorn has just
        # made the wsproto connection, with no checkpoint since).
        _ws_limits.attach(connection, self.config.websocket_max_message_size)
        self.last_heard = trio.current_time()
        server = self.connection_server
        self._client_io = server.plain_transport() if server is not None else None

    async def send_message(self, message: bytes | str) -> None:
        """Send one message to the client (nothing once the websocket is closed)."""
        if self.closed or self.state is not ASGIWebsocketState.CONNECTED:
            return
        event = TextMessage(data=message) if isinstance(message, str) else BytesMessage(data=message)
        await self.send_event(event)

    async def ping(self) -> None:
        if not self.closed and self.state is ASGIWebsocketState.CONNECTED:
            await self.send_event(Ping(payload=b"trioproxy"))

    async def fail(self, code: int, reason: str) -> None:
        """Close frame ``code`` to the client, then end the connection without waiting for its answer."""
        if self.closed:
            return
        await self._send_close(code, reason)
        await self.send(StreamClosed(stream_id=self.stream_id))

    async def _send_close(self, code: int, reason: str | None) -> None:
        self._client_close = (CLIENT_FAILED, reason or "")
        await self.send_event(CloseConnection(code=code, reason=(reason or "")[:REASON_MAX] or None))

    async def _refuse(self, status: int, headers: list[tuple[bytes, bytes]]) -> None:
        self.closed = True
        headers = [*headers, (b"content-length", b"0"), (b"connection", b"close")]
        await self.send(Response(stream_id=self.stream_id, status_code=status, headers=headers))
        await self.send(EndBody(stream_id=self.stream_id))
        await self.send(StreamClosed(stream_id=self.stream_id))
        await self._end_connection()


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

