"""Bridge one websocket between the client (hypercorn, ASGI) and the app (trio-websocket).

Order: the app's handshake first, with the client's subprotocols, cookies and
other end-to-end headers. If the app refuses, the client gets the app's
status, headers and body. If it accepts, the client is accepted with the
subprotocol the app chose and the app's handshake headers (Set-Cookie). Only
then do messages flow, so nothing from the app can reach a client that has not
been accepted yet.

Carrying messages: the client's messages go to the app straight from
hypercorn's reader task (:class:`_Pair`, handed over in ``websocket.accept``,
see :mod:`._hypercorn_ws`), so a slow app holds the client back; the app's
messages go to the client from this bridge's task. No pump tasks, queues or
ASGI dicts per message. The app's TCP stream is an :class:`._eager_stream.EagerStream`.
Frames announcing more than --websocket-max-message-size are refused with 1009
from their header on, in both directions (:mod:`._ws_limits`); a silent client
is pinged and cut with 1011 if it never answers (:mod:`._ws_keepalive`).

Ending: whichever side ends first cancels the bridge; its close code and
reason are passed on (1005 "no code" and 1006 "abnormal" are never sent on the
wire: they are mapped). At shutdown :class:`LongLived` cancels the bridge and
both sides get 1001 "going away". Closing handshakes are bounded, and the
app's TCP connection is closed in every case.
"""

from __future__ import annotations

import logging
from typing import Any

import trio
import h11
import trio_websocket
from trio_websocket import ConnectionClosed, ConnectionRejected, HandshakeError
from wsproto.utilities import LocalProtocolError, RemoteProtocolError

from . import _headers, _pages, _ws_limits
from ._appgate import Gateway
from ._auth import Passage
from ._eager_stream import open_eager_tcp_stream
from ._hypercorn_ws import BRIDGE_KEY, ProxyWSStream
from ._pages import Send

logger = logging.getLogger(__name__)

Receive = Any

#: Messages buffered from the app before its reader waits for the client.
UPSTREAM_QUEUE = 8
#: Bytes read from the app's socket per call.
UPSTREAM_RECEIVE_BYTES = 64 * 2**10

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
    address = await gw.open(scope, send)
    if address is None:
        return
    gw.tracker.touch()
    headers = _headers.upstream_websocket(passage.headers, **_headers.peer(scope), prefix=gw.settings.prefix)
    headers += passage.add
    target = passage.target
    host = _headers.get(scope["headers"], b"host")
    host_str = host.decode("latin-1") if host else f"localhost:{address[1]}"
    resource = target.decode("latin-1")
    limit = gw.settings.ws_max_message_bytes

    problem: tuple[int, str] | None = None
    rejected: BaseException | None = None
    try:
        with trio.fail_after(gw.settings.request_timeout_s):
            stream = await open_eager_tcp_stream(*address)
    except trio.TooSlowError:
        problem = (504, "the app did not accept the websocket connection in time")
    except OSError as exc:
        problem = (502, f"the app refused the websocket connection ({exc.strerror or exc})")
    if problem is not None:
        await _refuse(gw, scope, send, *problem)
        return

    try:
        async with trio.open_nursery() as conn_nursery:
            try:
                with trio.fail_after(gw.settings.request_timeout_s):
                    upstream = await trio_websocket.wrap_client_stream(
                        conn_nursery,
                        stream,
                        host_str,
                        resource,
                        subprotocols=scope.get("subprotocols") or None,
                        extra_headers=headers,
                        message_queue_size=UPSTREAM_QUEUE,
                        max_message_size=limit,
                        receive_buffer_size=UPSTREAM_RECEIVE_BYTES,
                    )
            except trio.TooSlowError:
                problem = (504, "the app did not complete the websocket handshake in time")
            except (HandshakeError, trio.BrokenResourceError, OSError) as exc:
                problem = (502, f"the websocket handshake with the app failed ({exc!r})")
            if problem is not None:
                conn_nursery.cancel_scope.cancel()
            else:
                await _run_pair(gw, send, upstream)
                conn_nursery.cancel_scope.cancel()
    except* ConnectionRejected as group:
        rejected = group.exceptions[0]
    except* (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as group:
        problem = (502, f"the app's websocket failed during the handshake ({group.exceptions[0]!r})")
    except* (h11.ProtocolError, LocalProtocolError, RemoteProtocolError) as group:
        # e.g. a wrong Sec-WebSocket-Accept: trio-websocket's reader fails inside wsproto/h11.
        problem = (502, f"the app's websocket handshake is malformed ({group.exceptions[0]})")
    finally:
        with trio.CancelScope(shield=True):
            await trio.aclose_forcefully(stream)  # the app's end is closed, whatever happened
    if isinstance(rejected, ConnectionRejected):
        await _relay_rejection(send, rejected)
    elif problem is not None:
        await _refuse(gw, scope, send, *problem)


class _Pair:
    """One bridged websocket: what ended it, and the client's messages on their way to the app.

    hypercorn's stream (:class:`._hypercorn_ws.ProxyWSStream`) calls
    :meth:`from_client` from its reader task for each message, and
    :meth:`client_closed` when the client's side ends; the bridge's own task
    carries the app's messages to the client. ``ended`` is the first side to
    end: ("client" or "app", close code, reason); None until then, and at shutdown.
    """

    __slots__ = ("upstream", "port", "ended", "scope", "touch", "metrics")

    def __init__(self, gw: Gateway, upstream: trio_websocket.WebSocketConnection) -> None:
        self.upstream = upstream
        self.port: ProxyWSStream | None = None  # set by the stream when it takes the accept
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

    def end(self, what: tuple[str, int | None, str]) -> None:
        if self.ended is None:
            self.ended = what
        if self.scope is not None:
            self.scope.cancel()


async def _run_pair(gw: Gateway, send: Send, upstream: trio_websocket.WebSocketConnection) -> None:
    """Accept the client, carry messages both ways until one side ends; then close the other side with the right code."""
    pair = _Pair(gw, upstream)
    fits = _ws_limits.attach_to_trio_websocket(upstream, gw.settings.ws_max_message_bytes)
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": upstream.subprotocol,
            "headers": _headers.downstream_websocket_accept(upstream.handshake_headers),
            BRIDGE_KEY: pair,
        }
    )
    port = pair.port
    if port is None:
        raise RuntimeError("the websocket bridge needs hypercorn's stream from trioproxy._hypercorn_ws.install()")
    if not fits:
        pair.end(("app", TOO_BIG, "message too big"))
    gw.metrics.websockets_open += 1
    gw.metrics.websockets_total += 1
    try:
        with gw.keepalive.watching(port), gw.long_lived.register() as scope:
            pair.scope = scope
            if pair.ended is not None:
                scope.cancel()
            await _app_to_client(pair, port)
        with trio.CancelScope(shield=True), trio.move_on_after(gw.settings.ws_close_timeout_s):
            await _close_other_side(pair, send)
    finally:
        gw.metrics.websockets_open -= 1


async def _app_to_client(pair: _Pair, port: ProxyWSStream) -> None:
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


async def _relay_rejection(send: Send, rejected: ConnectionRejected) -> None:
    headers = _headers.strip_hop_by_hop(rejected.headers or ())
    body = rejected.body or b""
    headers = [(n, v) for n, v in headers if n != b"content-length"]
    headers.append((b"content-length", str(len(body)).encode()))
    await send({"type": "websocket.http.response.start", "status": rejected.status_code, "headers": headers})
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


async def _refuse(gw: Gateway, scope: dict[str, Any], send: Send, status: int, reason: str) -> None:
    logger.warning("websocket %s -> %d: %s", scope["path"], status, reason)
    body = _pages.render("The app did not accept the websocket", [reason + "."])
    await _pages.send_websocket_denial(send, status, body)
