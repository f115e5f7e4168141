"""Bridge one websocket: the app's handshake, then its frames relayed undecoded (:mod:`.ws_relay`).

Order: the app's handshake first, with the client's subprotocols, cookies and
other end-to-end headers (:func:`_app_handshake`: trioproxy is the app's
websocket client; it never offers an extension, so frames relay as they are).
If the app refuses, the client gets the app's status, headers and body. If
it accepts, the client is accepted with the subprotocol the app chose and the
app's handshake headers (Set-Cookie). Only then do frames flow, so nothing
from the app can reach a client that has not been accepted yet. Set-Cookie of
a JupyterHub or trioproxy credential cookie is dropped from both answers
(``Gateway.app_response_headers``: credential cookies dropped, redirects and cookie paths kept under the prefix).

The app's answer is read with h11: a 101 is checked (Upgrade, Connection,
Sec-WebSocket-Accept, a subprotocol that was offered, no extension) and
whatever came after its head is the start of the app's frames; any other
final status is read with its body (to its end, the end of the connection, or
WS_REFUSAL_BODY_MAX_BYTES) and relayed; the connection ending first, or
garbage, is a 502. Every wait is bounded by --request-timeout (504).

Relaying: the server offers the client's side as a
:class:`trioproxy.websocket_port.ClientPort` in the scope; the bridge
attaches its :class:`.ws_relay.Relay` before accepting, and once accepted
hands the rest (:class:`_Relaying`) to the port and returns (the ASGI app's
task, its queue and its frames are not kept for the websocket's life; a port
that cannot take it has the bridge run it). The client's bytes go to the app
from the connection's reader task, the app's to the client from the task the
port started in the connection's nursery, in :meth:`Gateway.long_lived
<.gateway.LongLived>`'s scope and watched by the keepalive
(:mod:`.ws_keepalive`); how each way of ending is answered is in
:mod:`.ws_relay`. The app's TCP stream is an :class:`.eager_stream.EagerStream`,
closed in every case; the client's connection is ended once the relaying is over.
"""

from __future__ import annotations

import base64
import logging
import os
from typing import Any

import h11
import trio

from ..auth.passage import Passage
from ..rules import frames as _frames
from ..rules import headers as _headers
from ..rules import pages as _pages
from ..rules.pages import Send
from ..settings import WS_APP_RECEIVE_BYTES, WS_REFUSAL_BODY_MAX_BYTES
from ..websocket_port import ClientPort, MessageCounts, counts_of, port_of
from .eager_stream import open_eager_stream
from .gateway import Gateway
from .ws_relay import Relay

logger = logging.getLogger("trioproxy.proxy")

Receive = Any


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
    host = _headers.get(scope["headers"], b"host") or address.authority.encode()
    offered = list(scope.get("subprotocols") or [])

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

    owned = True  # the app's end is closed here (unless handed off with the rest)
    try:
        try:
            with trio.fail_after(gw.settings.request_timeout_s):
                accepted = await _app_handshake(
                    stream, host, passage.target, offered, headers, gw.settings.app_head_max_bytes
                )
        except trio.TooSlowError:
            problem = (504, "the app did not complete the websocket handshake in time (--request-timeout)")
        except _Refused as exc:
            refused = exc
        except (_NoAnswer, _BadHandshake) as exc:
            problem = (502, str(exc))
        except (trio.BrokenResourceError, trio.ClosedResourceError, OSError) as exc:
            problem = (502, f"the app's websocket failed during the handshake ({exc!r})")
        except h11.ProtocolError as exc:
            problem = (502, f"the app's websocket handshake is malformed ({exc})")
        else:
            del headers
            relaying = await _accept(gw, f"websocket {scope['path']}", send, stream, port, accepted,
                                     counts_of(scope))
            if port.hand_off(relaying.run):
                # A task of the connection's relays from here on, and closes the app's end; this
                # task (hypercorn's ASGI app task, with its queue) ends now: a websocket may stay
                # open for days, and it would hold every frame above this one for nothing.
                owned = False
            else:
                await relaying.run()
    finally:
        if owned:
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


class _BadHandshake(Exception):
    """The app's 101 is not a websocket's (a wrong Sec-WebSocket-Accept, an extension nobody offered...)."""


async def _app_handshake(
    stream: trio.abc.Stream, host: bytes, target: bytes, offered: list[str],
    headers: list[tuple[bytes, bytes]], head_max: int,
) -> list[Any]:
    """The opening handshake with the app, as its client (RFC 6455 §4.1), no extension offered.

    Returns [the subprotocol the app chose, its 101's headers, the bytes that
    followed the 101 (the start of its frames)]. Raises :class:`_Refused`,
    :class:`_NoAnswer`, :class:`_BadHandshake` or h11's ``RemoteProtocolError``.
    """
    key = base64.b64encode(os.urandom(16))
    request = [(b"host", host), (b"upgrade", b"websocket"), (b"connection", b"Upgrade"),
               (b"sec-websocket-key", key), (b"sec-websocket-version", b"13")]
    if offered:
        request.append((b"sec-websocket-protocol", ", ".join(offered).encode()))
    conn = h11.Connection(h11.CLIENT, max_incomplete_event_size=head_max)
    data = conn.send(h11.Request(method="GET", target=target, headers=[*request, *headers]))
    await stream.send_all(data + conn.send(h11.EndOfMessage()))
    while True:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            conn.receive_data(await _read(stream))
        elif isinstance(event, h11.InformationalResponse):
            if event.status_code == 101:
                answer = list(event.headers)
                problem, subprotocol = _frames.accept_problem(answer, key, offered)
                if problem is not None:
                    raise _BadHandshake(f"the app's websocket handshake is not valid: {problem}")
                return [subprotocol, answer, conn.trailing_data[0]]
            # 100 or 103: the real answer follows.
        elif isinstance(event, h11.Response):
            raise _Refused(event.status_code, list(event.headers), await _body(stream, conn))
        elif isinstance(event, h11.ConnectionClosed):
            raise _NoAnswer("the app closed the connection without answering the websocket handshake")
        else:
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in the handshake answer")


async def _read(stream: trio.abc.Stream) -> bytes:
    try:
        return bytes(await stream.receive_some(WS_APP_RECEIVE_BYTES))
    except trio.BrokenResourceError:
        raise _NoAnswer("the app reset the connection during the websocket handshake") from None


async def _body(stream: trio.abc.Stream, conn: h11.Connection) -> bytes:
    """A refusal's body: to its end, the end of the connection, or WS_REFUSAL_BODY_MAX_BYTES."""
    body = bytearray()
    while len(body) < WS_REFUSAL_BODY_MAX_BYTES:
        event = conn.next_event()
        if event is h11.NEED_DATA:
            try:
                conn.receive_data(await _read(stream))
            except _NoAnswer:
                break  # reset under the body: what came is the body
        elif isinstance(event, h11.Data):
            body += event.data
        else:  # EndOfMessage (its end, or the connection's)
            break
    if len(body) > WS_REFUSAL_BODY_MAX_BYTES:
        logger.info("the app's refusal of a websocket was cut to %d bytes", WS_REFUSAL_BODY_MAX_BYTES)
    return bytes(body[:WS_REFUSAL_BODY_MAX_BYTES])


async def _accept(
    gw: Gateway, what: str, send: Send, stream: trio.abc.Stream, port: ClientPort,
    accepted: list[Any], counts: MessageCounts | None = None,
) -> _Relaying:
    """Accept the client with the app's answer, its relay attached; what relays it is returned.

    ``accepted`` is the app's answer (subprotocol, 101 headers, first bytes), emptied here once used.
    """
    subprotocol, answer, first = accepted
    accepted.clear()
    settings = gw.settings
    relay = Relay(stream, port, limit=settings.ws_max_message_bytes, close_timeout_s=settings.ws_close_timeout_s,
                  touch=gw.tracker.touch, metrics=gw.metrics, what=what)
    accept_headers = _headers.downstream_websocket_accept(answer)
    port.attach(relay)
    await send(
        {
            "type": "websocket.accept",
            "subprotocol": subprotocol,
            "headers": gw.app_response_headers(accept_headers, what),
        }
    )
    gw.metrics.websockets_open += 1
    gw.metrics.websockets_total += 1
    return _Relaying(gw, relay, stream, first, counts)


class _Relaying:
    """One accepted websocket's relaying, then the end of both connections (:meth:`run`).

    Run by the bridge, or (usually) handed off to the client's connection
    (``ClientPort.hand_off``): then this object is all that is kept of the bridge.
    """

    __slots__ = ("counts", "first", "gw", "relay", "stream")

    def __init__(self, gw: Gateway, relay: Relay, stream: trio.abc.Stream, first: bytes,
                 counts: MessageCounts | None) -> None:
        self.gw = gw
        self.relay = relay
        self.stream = stream
        self.first = first
        self.counts = counts

    async def run(self) -> None:
        """Relay frames both ways until the websocket ends, then end both connections; bounded cleanup."""
        gw, relay, counts = self.gw, self.relay, self.counts
        first, self.first = self.first, b""
        settings = gw.settings
        try:
            try:
                with gw.keepalive.watching(relay), gw.long_lived.register(goodbye=relay.goodbye) as scope:
                    relay.scope = scope
                    if relay.ended is not None:
                        scope.cancel()
                    await relay.app_to_client(first)
                with trio.CancelScope(shield=True), trio.move_on_after(settings.ws_close_timeout_s):
                    await relay.finish()
            finally:
                gw.metrics.websockets_open -= 1
                if counts is not None:
                    counts.messages_in, counts.messages_out = relay.up.messages, relay.down.messages
                with trio.CancelScope(shield=True), trio.move_on_after(settings.ws_close_timeout_s):
                    await relay.port.end()
        finally:
            with trio.CancelScope(shield=True):
                await trio.aclose_forcefully(self.stream)  # the app's end is closed, whatever happened


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
