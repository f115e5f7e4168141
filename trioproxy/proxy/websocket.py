"""Bridge one websocket between the client (hypercorn, ASGI) and the app (trio-websocket).

Order: the app's handshake first, with the client's subprotocols, cookies and
other end-to-end headers. If the app refuses, the client gets the app's
status, headers and body. If it accepts, the client is accepted with the
subprotocol the app chose and the app's handshake headers (Set-Cookie). Only
then do messages flow, so nothing from the app can reach a client that has not
been accepted yet. Set-Cookie of a JupyterHub or trioproxy credential cookie is
dropped from both answers (``Gateway.app_set_cookies``).

The app's answer to the handshake is read here first (:class:`_HandshakeGuard`),
then a 101 is handed to trio-websocket byte for byte: trio-websocket never
returns from its handshake when a refusal's body ends with the connection (a
bare ``HTTP/1.1 400 Bad Request`` and close), nor when the app closes without
a word or answers garbage. Every wait is bounded by --request-timeout (504);
a refusal is relayed at once, the others are a 502 at once.

Carrying messages: the server offers the client's side as a
:class:`trioproxy.websocket_port.ClientPort` in the scope; the bridge attaches
its :class:`_Pair` (a ``ClientSink``) before accepting. The client's messages
go to the app straight from hypercorn's reader task, so a slow app holds the
client back; the app's messages go to the client from this bridge's task. No
pump tasks, queues or ASGI dicts per message. The app's TCP stream is an
:class:`.eager_stream.EagerStream`. Frames announcing more than
--websocket-max-message-size are refused with 1009 from their header on, in
both directions (:mod:`trioproxy.server.ws_limits`); a silent client is pinged
and cut with 1011 if it never answers (:mod:`.ws_keepalive`).

Ending: whichever side ends first cancels the bridge; its close code and
reason are passed on (1005 "no code" and 1006 "abnormal" are never sent on the
wire: they are mapped). At shutdown :class:`LongLived` cancels the bridge and
both sides get 1001 "going away". Closing handshakes are bounded, and the
app's TCP connection is closed in every case.
"""

from __future__ import annotations

import logging
from typing import Any, cast

import h11
import trio
import trio_websocket
from trio_websocket import ConnectionClosed, HandshakeError
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from ..auth.passage import Passage
from ..compat.trio_websocket import wsproto_connection
from ..rules import headers as _headers
from ..rules import pages as _pages
from ..rules.pages import Send
from ..server import ws_limits as _ws_limits
from ..settings import WS_APP_QUEUE_MESSAGES, WS_APP_RECEIVE_BYTES, WS_REFUSAL_BODY_MAX_BYTES
from ..websocket_port import ClientPort, port_of
from .eager_stream import EagerStream, open_eager_stream
from .gateway import Gateway

logger = logging.getLogger("trioproxy.proxy")

Receive = Any


GOING_AWAY = 1001
INTERNAL_ERROR = 1011
TOO_BIG = 1009


def close_code_for_wire(code: int | None, *, peer_failed: int) -> int:
    """A close code that may be sent in a close frame (RFC 6455 §7.4).

    1005 (no code given) becomes 1000; 1006/1015 (connection lost, TLS) and
    anything not sendable become ``peer_failed``.
    """
    if code is None or code == 1005:
        return 1000
    if code in (1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 1012, 1013, 1014) or 3000 <= code <= 4999:
        return code
    return peer_failed


async def bridge(
    gw: Gateway,
    scope: dict[str, Any],
    receive: Receive,
    send: Send,
    passage: Passage,
) -> None:
    """Proxy one websocket as ``passage`` says (its target has the prefix stripped)."""
    first = await receive()
    if first["type"] != "websocket.connect":
        return
    port = port_of(scope)
    if port is None:
        raise RuntimeError(
            "the websocket bridge needs the client port of trioproxy's server (trioproxy.server.ws_stream)"
        )
    address = await gw.open(scope, send)
    if address is None:
        return
    gw.tracker.touch()
    headers = _headers.upstream_websocket(passage.headers, **_headers.peer(scope), prefix=gw.settings.prefix)
    headers += passage.add
    target = passage.target
    host = _headers.get(scope["headers"], b"host")
    host_str = host.decode("latin-1") if host else address.authority
    resource = target.decode("latin-1")
    limit = gw.settings.ws_max_message_bytes

    problem: tuple[int, str] | None = None
    refused: _Refused | None = None
    try:
        with trio.fail_after(gw.settings.request_timeout_s):
            stream = await open_eager_stream(address)
    except trio.TooSlowError:
        problem = (504, "the app did not accept the websocket connection in time")
    except OSError as exc:
        problem = (502, f"the app refused the websocket connection ({exc.strerror or exc})")
    if problem is not None:
        await _refuse(gw, scope, send, *problem)
        return

    _HandshakeGuard(stream, gw.settings.app_head_max_bytes, WS_REFUSAL_BODY_MAX_BYTES)
    try:
        async with trio.open_nursery() as conn_nursery:
            try:
                with trio.fail_after(gw.settings.request_timeout_s):
                    upstream = await trio_websocket.wrap_client_stream(
                        conn_nursery,
                        cast(trio.SocketStream, stream),  # documented as any trio.abc.Stream
                        host_str,
                        resource,
                        subprotocols=scope.get("subprotocols") or None,
                        extra_headers=headers,
                        message_queue_size=WS_APP_QUEUE_MESSAGES,
                        max_message_size=limit,
                        receive_buffer_size=WS_APP_RECEIVE_BYTES,
                    )
            except trio.TooSlowError:
                problem = (504, "the app did not complete the websocket handshake in time (--request-timeout)")
            except (HandshakeError, trio.BrokenResourceError, OSError) as exc:
                problem = (502, f"the websocket handshake with the app failed ({exc!r})")
            if problem is not None:
                conn_nursery.cancel_scope.cancel()
            else:
                await _run_pair(gw, f"websocket {scope['path']}", send, upstream, port)
                conn_nursery.cancel_scope.cancel()
    except* _Refused as group:
        refused = group.exceptions[0]  # type: ignore[assignment]
    except* _NoAnswer as group:
        problem = (502, str(group.exceptions[0]))
    except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as group:
        problem = (502, f"the app's websocket failed during the handshake ({group.exceptions[0]!r})")
    except* (h11.ProtocolError, LocalProtocolError, RemoteProtocolError) as group:
        # Garbage instead of an HTTP answer (h11, in the guard), or e.g. a wrong
        # Sec-WebSocket-Accept (trio-websocket's reader fails inside wsproto).
        problem = (502, f"the app's websocket handshake is malformed ({group.exceptions[0]})")
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)  # the app's end is closed, whatever happened
    if refused is not None:
        await _relay_refusal(gw, scope, send, refused)
    elif problem is not None:
        await _refuse(gw, scope, send, *problem)


class _Refused(Exception):
    """The app answered the websocket handshake with an HTTP response: its status, headers and body."""

    def __init__(self, status: int, headers: list[tuple[bytes, bytes]], body: bytes) -> None:
        super().__init__(status)
        self.status = status
        self.headers = headers
        self.body = body


class _NoAnswer(Exception):
    """The app's connection ended (closed or reset) before its answer to the handshake."""


class _HandshakeGuard:
    """Reads the app's answer to the opening handshake before trio-websocket does.

    Installed as the stream's :attr:`.eager_stream.EagerStream.reader` until
    the answer's head is in. The head is parsed with h11: a 101 goes to
    trio-websocket byte for byte with whatever followed it (trio-websocket
    checks Sec-WebSocket-Accept and the subprotocol), and the stream reads
    directly from then on; any other final status is read with its body (to
    its end, the end of the connection, or ``body_max`` bytes) and raised as
    :class:`_Refused`; the connection ending first is :class:`_NoAnswer`;
    bytes that are not HTTP raise h11's ``RemoteProtocolError``. The raise
    comes out of trio-websocket's reader task, which ends its handshake.
    """

    def __init__(self, stream: EagerStream, head_max: int, body_max: int) -> None:
        self._stream = stream
        self._body_max = body_max
        self._held = bytearray()
        self._h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=head_max)
        # h11 must know what was asked: a GET with an Upgrade (so a 101 switches, and a refusal has a body).
        self._h11.send(h11.Request(method="GET", target="/", headers=[
            (b"host", b"app"), (b"connection", b"upgrade"), (b"upgrade", b"websocket")]))
        self._h11.send(h11.EndOfMessage())
        stream.reader = self.receive

    async def receive(self, max_bytes: int | None) -> bytes:
        while True:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                data = await self._read(max_bytes)
                self._held += data
                self._h11.receive_data(data)
            elif isinstance(event, h11.InformationalResponse):
                if event.status_code == 101:
                    self._stream.reader = None
                    held, self._held = bytes(self._held), bytearray()
                    return held
                # 100 or 103: the real answer follows.
            elif isinstance(event, h11.Response):
                raise _Refused(event.status_code, list(event.headers), await self._body(max_bytes))
            elif isinstance(event, h11.ConnectionClosed):
                raise _NoAnswer("the app closed the connection without answering the websocket handshake")
            else:
                raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in the handshake answer")

    async def _read(self, max_bytes: int | None) -> bytes:
        try:
            return bytes(await self._stream.stream.receive_some(max_bytes or WS_APP_RECEIVE_BYTES))
        except trio.BrokenResourceError:  # trio-websocket would take this for an abort, and wait forever
            raise _NoAnswer("the app reset the connection during the websocket handshake") from None

    async def _body(self, max_bytes: int | None) -> bytes:
        body = bytearray()
        while len(body) < self._body_max:
            event = self._h11.next_event()
            if event is h11.NEED_DATA:
                try:
                    self._h11.receive_data(await self._read(max_bytes))
                except _NoAnswer:
                    break  # reset under the body: what came is the body
            elif isinstance(event, h11.Data):
                body += event.data
            else:  # EndOfMessage (its end, or the connection's)
                break
        if len(body) > self._body_max:
            logger.info("the app's refusal of a websocket was cut to %d bytes", self._body_max)
        return bytes(body[: self._body_max])


class _Pair:
    """One bridged websocket: what ended it, and the client's messages on their way to the app.

    The :class:`trioproxy.websocket_port.ClientSink` attached to the client's
    port: the port calls :meth:`from_client` from its reader task for each
    message, and :meth:`client_closed` when the client's side ends; the
    bridge's own task carries the app's messages to the client. ``ended`` is
    the first side to end: ("client" or "app", close code, reason); None until
    then, and at shutdown.
    """

    __slots__ = ("ended", "metrics", "port", "scope", "touch", "upstream")

    def __init__(self, gw: Gateway, upstream: trio_websocket.WebSocketConnection, port: ClientPort) -> None:
        self.upstream = upstream
        self.port = port
        self.ended: tuple[str, int | None, str] | None = None
        self.scope: trio.CancelScope | None = None
        self.touch = gw.tracker.touch
        self.metrics = gw.metrics

    async def from_client(self, message: bytes | str) -> None:
        if self.ended is not None:
            return
        self.touch()
        self.metrics.bytes_received += len(message)
        try:
            await self.upstream.send_message(message)
        except ConnectionClosed as exc:
            self.end(_app_closed(exc))

    def client_closed(self, code: int, reason: str) -> None:
        self.end(("client", code, reason))

    def goodbye(self) -> bool:
        """Shutdown: close 1001 to the client at once (see ``LongLived.go_away``); the app's follows from the task.

        False if it could not go at once: the bridge's task sends it then.
        """
        return self.port.close_at_once(GOING_AWAY, "server shutting down")

    def end(self, what: tuple[str, int | None, str]) -> None:
        if self.ended is None:
            self.ended = what
        if self.scope is not None:
            self.scope.cancel()


async def _run_pair(
    gw: Gateway, what: str, send: Send, upstream: trio_websocket.WebSocketConnection, port: ClientPort
) -> None:
    """Accept the client, carry messages both ways until one side ends; then close the other side
    with the right code."""
    pair = _Pair(gw, upstream, port)
    fits = _ws_limits.attach(wsproto_connection(upstream), gw.settings.ws_max_message_bytes)
    accept_headers = _headers.downstream_websocket_accept(upstream.handshake_headers)
    port.attach(pair)
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": upstream.subprotocol,
            "headers": gw.app_response_headers(accept_headers, what),
        }
    )
    if not fits:
        pair.end(("app", TOO_BIG, "message too big"))
    gw.metrics.websockets_open += 1
    gw.metrics.websockets_total += 1
    try:
        with gw.keepalive.watching(port), gw.long_lived.register(goodbye=pair.goodbye) as scope:
            pair.scope = scope
            if pair.ended is not None:
                scope.cancel()
            await _app_to_client(pair, port)
        with trio.CancelScope(shield=True), trio.move_on_after(gw.settings.ws_close_timeout_s):
            await _close_other_side(pair, send)
    finally:
        gw.metrics.websockets_open -= 1


async def _app_to_client(pair: _Pair, port: ClientPort) -> None:
    get_message = pair.upstream.get_message
    send_message = port.send_message
    touch = pair.touch
    metrics = pair.metrics
    try:
        while True:
            message = await get_message()
            touch()
            metrics.bytes_sent += len(message)
            await send_message(message)
    except ConnectionClosed as exc:
        pair.end(_app_closed(exc))


async def _close_other_side(pair: _Pair, send: Send) -> None:
    if pair.ended is None:  # shutdown: say goodbye to both
        await _close_client(send, GOING_AWAY, "server shutting down")
        await pair.upstream.aclose(GOING_AWAY, "server shutting down")
    elif pair.ended[0] == "client":
        _, code, reason = pair.ended
        await pair.upstream.aclose(close_code_for_wire(code, peer_failed=GOING_AWAY), reason or None)
    else:
        _, code, reason = pair.ended
        await _close_client(send, close_code_for_wire(code, peer_failed=INTERNAL_ERROR), reason)


def _app_closed(exc: ConnectionClosed) -> tuple[str, int | None, str]:
    reason = exc.reason
    return ("app", reason.code if reason else None, (reason.reason or "") if reason else "")


async def _close_client(send: Send, code: int, reason: str) -> None:
    await send({"type": "websocket.close", "code": code, "reason": reason[:120]})


async def _relay_refusal(gw: Gateway, scope: dict[str, Any], send: Send, refused: _Refused) -> None:
    """The app's refusal to the client: its status, end-to-end headers and the body as read."""
    logger.info("websocket %s -> %d: refused by the app", scope["path"], refused.status)
    headers = _headers.strip_hop_by_hop(refused.headers, frozenset({b"content-length", b"transfer-encoding"}))
    headers = gw.app_response_headers(headers, f"websocket {scope['path']}", _headers.get(scope["headers"], b"host"))
    headers.append((b"content-length", str(len(refused.body)).encode()))
    await send({"type": "websocket.http.response.start", "status": refused.status, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": refused.body, "more_body": False})


async def _refuse(gw: Gateway, scope: dict[str, Any], send: Send, status: int, reason: str) -> None:
    logger.warning("websocket %s -> %d: %s", scope["path"], status, reason)
    body = _pages.render("The app did not accept the websocket", [reason + "."])
    await _pages.send_websocket_denial(send, status, body)
