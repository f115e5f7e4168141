"""Forward one HTTP request to the app, streaming both bodies.

Flow: the gate (app ready?) -> headers (pure rules) -> a pooled h11
connection -> request head and the first body chunk in one write -> the rest
of the body pumped by a second task (started once that write is done: two
writers on one connection would interleave) while the main task waits for
the response head -> response head to the client (its redirects and cookies kept
inside the prefix: ``Gateway.app_response_headers``) -> body chunks as they come.

Cancellation: one nursery per request holds the body pump, which after the
body watches for the client's ``http.disconnect``; a disconnect cancels the
whole exchange and the upstream connection is closed, never reused. For a
request without a body the pump starts only when the exchange has to wait:
an answer slower than ``WATCH_AFTER_S`` (50 ms) or a body still to come (a
stream, a download): the task is about 9% of the CPU of a small GET. A small
answer that arrives whole is relayed without it, its last chunk carrying the
end of the body.

Error handling: failures before the response head become a page, mapped once
in :func:`_fail_page` (refused/reset/malformed: 502, no head within
``--request-timeout``: 504). After the head is sent a failure can only be
signalled by cutting the response short; hypercorn then closes the
connection without the final chunk, so the client sees an incomplete body.

A stalled upload: each read of the client's body waits at most
``client_stall_s``; past that the exchange with the app is stopped and the
client gets a 408 (or, once the answer has started, a cut answer). Either way
its body is unfinished, so hypercorn closes the connection after it.
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from typing import Any

import h11
import trio

from ..auth.passage import Passage
from ..child.connection import Connection
from ..errors import UpstreamError
from ..rules import headers as _headers
from ..rules import pages as _pages
from ..rules.pages import Send
from ..settings import HEAD_HOLD_S, WATCH_AFTER_S
from .gateway import Gateway

logger = logging.getLogger("trioproxy.proxy")

Receive = Any

#: Upstream failures that mean "connection unusable".
_IO_ERRORS = (OSError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError)

#: Methods that may be sent a second time, on a fresh connection, when a reused
#: one fails before a byte of the answer: the safe ones (RFC 9110 §9.2.1), whose
#: repetition changes nothing on the server. Not PUT or DELETE, although RFC 9110
#: §9.2.2 calls them idempotent: an app's handler for them often is not (a DELETE
#: that logs, counts or cascades), and the app may have acted on the first one
#: before its connection failed. The client decides whether to try again.
RETRYABLE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def may_retry(method: str, *, reused: bool, whole_body: bool, received: int) -> bool:
    """May a request that failed on its connection be sent once more, on a fresh one?

    Only a safe method, whose body we hold whole, on a connection that had
    served before (an idle keep-alive connection the app closed meanwhile: the
    usual race) and on which not one byte of this answer came.
    """
    return method in RETRYABLE_METHODS and reused and whole_body and received == 0


async def forward(
    gw: Gateway,
    scope: dict[str, Any],
    receive: Receive,
    send: Send,
    passage: Passage,
) -> None:
    """Proxy one request as ``passage`` says (its target has the prefix stripped)."""
    address = await gw.open(scope, send)
    if address is None:
        return
    gw.tracker.touch()
    target = passage.target
    headers = _headers.upstream_request(passage.headers, **_headers.peer(scope), prefix=gw.settings.prefix)
    headers += passage.add
    if _headers.get(headers, b"host") is None:
        headers.append((b"host", address.authority.encode()))
    request = h11.Request(method=scope["method"], target=target, headers=headers)

    first: dict[str, Any] | None = None
    with trio.move_on_after(gw.settings.client_stall_s):
        first = await receive()
    if first is None:
        await _client_stalled(gw, scope, send)
        return
    if first["type"] == "http.disconnect":
        return
    body = first.get("body", b"")
    gw.metrics.bytes_received += len(body)
    more_body = first.get("more_body", False)
    head_events: list[h11.Event] = [request]
    if body:
        head_events.append(h11.Data(data=body))
    if not more_body:
        head_events.append(h11.EndOfMessage())

    # A safe request whose whole body we hold may be retried once on a fresh
    # connection if a pooled one turns out to be stale (closed by the app
    # while idle) before any byte of the response (see may_retry).
    what = f"{scope['method']} {scope['path']}"
    for attempt in (1, 2):
        try:
            conn = await (gw.pool.acquire() if attempt == 1 else gw.pool.connect())
        except UpstreamError as exc:
            await _fail_page(gw, scope, send, exc.status, exc.reason)
            return
        logger.debug("%s: %s connection to the app", what, "a pooled" if conn.reused else "a new")
        try:
            outcome = await _exchange(gw, scope, receive, send, conn, head_events, more_body)
        except BaseException:  # cancelled (shutdown): the connection is in an unknown state
            conn.close()
            raise
        if outcome == "retry" and attempt == 1:
            logger.debug("%s: the pooled connection was closed by the app before an answer: sent again on a new one",
                         what)
            conn.close()
            continue
        if outcome == "done":
            gw.pool.release(conn, what)
        else:
            conn.close()
        return


async def _exchange(
    gw: Gateway,
    scope: dict[str, Any],
    receive: Receive,
    send: Send,
    conn: Connection,
    head_events: list[h11.Event],
    more_body: bool,
) -> str:
    """One request/response on ``conn``. Returns "done" (conn reusable), "closed" or "retry"."""
    client = _Client()
    outcome = "closed"
    async with trio.open_nursery() as nursery:

        def watch() -> None:
            """Start the task that sends the request body and sees the client leave (once)."""
            if not client.watched:
                client.watched = True
                nursery.start_soon(_pump_request, gw, conn, receive, more_body, nursery.cancel_scope, client)

        outcome = await _talk(gw, scope, client.watching(send), conn, head_events, more_body, watch)
        nursery.cancel_scope.cancel()
    if client.stalled:
        if not client.started:
            await _client_stalled(gw, scope, send)
        return "closed"
    return "closed" if client.gone else outcome


async def _talk(
    gw: Gateway,
    scope: dict[str, Any],
    send: Send,
    conn: Connection,
    head_events: list[h11.Event],
    more_body: bool,
    watch: Callable[[], None],
) -> str:
    sent_at = trio.current_time()
    try:
        with trio.fail_after(gw.settings.request_timeout_s):
            await conn.send(*head_events)
            if more_body:
                watch()  # the rest of the body, on the connection now free for it
            response = None
            with trio.move_on_after(WATCH_AFTER_S):
                response = await _response_head(conn)
            if response is None:  # a slow answer: watch the client meanwhile
                watch()
                response = await _response_head(conn)
    except trio.TooSlowError:
        reason = f"the app did not answer within {gw.settings.request_timeout_s:g} s (--request-timeout)"
        await _fail_page(gw, scope, send, 504, reason)
        return "closed"
    except _IO_ERRORS as exc:
        if may_retry(scope["method"], reused=conn.reused, whole_body=not more_body, received=conn.received):
            return "retry"
        await _fail_page(gw, scope, send, 502, _describe(exc))
        return "closed"
    head_bytes = sum(len(n) + len(v) + 4 for n, v in response.headers)
    if head_bytes > gw.settings.app_head_max_bytes:
        await _fail_page(gw, scope, send, 502, f"the app sent a response head of {head_bytes} bytes (the limit is "
                         f"{gw.settings.app_head_max_bytes})")
        return "closed"
    gw.metrics.upstream_latency(trio.current_time() - sent_at)
    resp_headers = gw.app_response_headers(
        _headers.downstream_response(response.headers),
        f"{scope['method']} {scope['path']}",
        _headers.get(scope["headers"], b"host"),
    )
    is_stream = (_headers.get(resp_headers, b"content-type") or b"").startswith(b"text/event-stream")
    first: h11.Event | None = None
    if not is_stream:  # an event stream's head goes at once: EventSource opens on it
        try:
            first = await _first_body_event(conn, watch)
        except _IO_ERRORS as exc:
            await _fail_page(gw, scope, send, 502, f"the app's answer broke off after its head ({_describe(exc)})")
            return "closed"
    gw.metrics.request_done(response.status_code)
    if not gw.app_uses_xsrf and _headers.sets_cookie(resp_headers, b"_xsrf"):
        gw.app_uses_xsrf = True  # its _xsrf is the app's from now on, not the Hub's: pass it
    await send({"type": "http.response.start", "status": response.status_code, "headers": resp_headers})
    try:
        complete = await _relay_body(gw, conn, send, is_stream, watch, first)
    except _IO_ERRORS as exc:
        # Cut mid-body (or the app broke the protocol): end without the final
        # chunk, so the client sees an incomplete response, not a complete one.
        logger.warning("%s %s: the app's response was cut short: %s", scope["method"], scope["path"], _describe(exc))
        return "closed"
    return "done" if complete and conn.reusable else "closed"


class _Client:
    """Whether the client went away before its answer was complete.

    Hypercorn reports ``http.disconnect`` to a pending ``receive`` as soon as
    a response has ended; that is not the client leaving, and must not cost
    the pooled connection to the app (it did: one new upstream connection per
    request, the top of the CPU profile).
    """

    gone = False
    #: The pump task runs (it is started only once the exchange has to wait; see _exchange).
    watched = False
    #: Its request body stopped coming (the pump gave up on it).
    stalled = False
    started = False
    answered = False

    def watching(self, send: Send) -> Send:
        async def tracked(message: dict[str, Any]) -> None:
            kind = message["type"]
            if kind == "http.response.start":
                self.started = True
            elif kind == "http.response.body" and not message.get("more_body", False):
                self.answered = True
            await send(message)

        return tracked


async def _response_head(conn: Connection) -> h11.Response:
    while True:
        event = await conn.next_event()
        if isinstance(event, h11.Response):
            return event
        if isinstance(event, h11.InformationalResponse):
            continue  # 100 Continue and 103 Early Hints are for this hop only
        raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} before the response head")


async def _first_body_event(conn: Connection, watch: Callable[[], None]) -> h11.Event | None:
    """The body's first event (Data or EndOfMessage) if it is here within HEAD_HOLD_S; None if not yet.

    The head waits for it, so that head and first chunk go to the client
    together: hypercorn writes a head the moment it gets it, and an app that
    died between its head and its body (its process killed between two writes)
    left the client a head promising a body that never came. Now that is a 502
    page; only a body slower than HEAD_HOLD_S can still be cut after its head.
    """
    event = conn.buffered_event()
    if event is None:
        with trio.move_on_after(HEAD_HOLD_S):
            event = await conn.next_event(before_wait=watch)
    if isinstance(event, h11.ConnectionClosed):
        raise h11.RemoteProtocolError("the app closed the connection")
    return event


async def _relay_body(
    gw: Gateway, conn: Connection, send: Send, is_stream: bool, watch: Callable[[], None], first: h11.Event | None
) -> bool:
    """Copy the app's body to the client (``first``: its first event, already read). True if it ended normally."""
    if is_stream:
        # An event stream never ends by itself: at shutdown end it cleanly so
        # EventSource clients reconnect (to the Hub, the route being gone).
        ended = False
        with gw.long_lived.register():
            ended = await _copy_body(gw, conn, send, watch, first)
        if not ended:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
        return ended
    return await _copy_body(gw, conn, send, watch, first)


async def _copy_body(
    gw: Gateway, conn: Connection, send: Send, watch: Callable[[], None], pending: h11.Event | None = None
) -> bool:
    """Relay the body; the client is watched from the first wait for the app's bytes on.

    A body that came whole with the head (most small answers) needs neither
    the watcher task nor a last empty message: its last chunk carries the end.
    """
    metrics = gw.metrics
    touch = gw.tracker.touch
    while True:
        event = pending or await conn.next_event(before_wait=watch)
        pending = None
        if isinstance(event, h11.Data):
            touch()
            metrics.bytes_sent += len(event.data)
            pending = conn.buffered_event()
            if isinstance(pending, h11.EndOfMessage):
                await send({"type": "http.response.body", "body": bytes(event.data), "more_body": False})
                return True
            await send({"type": "http.response.body", "body": bytes(event.data), "more_body": True})
        elif isinstance(event, h11.EndOfMessage):
            await send({"type": "http.response.body", "body": b"", "more_body": False})
            return True
        elif isinstance(event, h11.ConnectionClosed):
            raise h11.RemoteProtocolError("the app closed the connection in the middle of the body")
        else:
            raise h11.RemoteProtocolError(f"unexpected {type(event).__name__} in the body")


async def _pump_request(
    gw: Gateway, conn: Connection, receive: Receive, more_body: bool, scope: trio.CancelScope, client: _Client
) -> None:
    """Send the rest of the request body, then wait for the client to go away.

    A failure to write to the app stops the upload but not the exchange: the
    app may already have answered (413, or a reply before reading the body).
    A body that stalls for ``client_stall_s`` stops the whole exchange.
    """
    upstream_ok = True
    stall_s = gw.settings.client_stall_s
    while True:
        if more_body:
            message = None
            with trio.move_on_after(stall_s):
                message = await receive()
            if message is None:
                client.stalled = True
                scope.cancel()
                return
        else:
            message = await receive()
        if message["type"] == "http.disconnect":
            if not client.answered:
                client.gone = True
                scope.cancel()
            return
        if not more_body:
            continue
        data = message.get("body", b"")
        gw.metrics.bytes_received += len(data)
        more_body = message.get("more_body", False)
        if not upstream_ok:
            continue
        try:
            if data:
                await conn.send_data(data)
            if not more_body:
                await conn.send(h11.EndOfMessage())
        except _IO_ERRORS as exc:
            logger.debug("upload to the app stopped: %r", exc)
            upstream_ok = False


async def _client_stalled(gw: Gateway, scope: dict[str, Any], send: Send) -> None:
    """408 for a request whose body stopped coming; the connection closes after it."""
    reason = f"the request body stopped coming for {gw.settings.client_stall_s:g} s"
    gw.metrics.request_done(408)
    logger.info("%s %s -> 408: %s", scope["method"], scope["path"], reason)
    body = _pages.render("Request timeout", [reason[:1].upper() + reason[1:] + "."])
    await _pages.send_http(send, 408, body, [(b"connection", b"close")])


async def _fail_page(gw: Gateway, scope: dict[str, Any], send: Send, status: int, reason: str) -> None:
    gw.metrics.request_done(status)
    title = {502: "The app did not answer", 504: "The app took too long"}.get(status, "Proxy error")
    logger.warning("%s %s -> %d: %s", scope["method"], scope["path"], status, reason)
    owner = gw.may_see_logs(scope)
    lines = gw.state.tail.lines(10) if owner else ()
    body = gw.page(title, [reason[:1].upper() + reason[1:] + "."], owner=owner, log_lines=lines)
    await _pages.send_http(send, status, body)


def _describe(exc: BaseException) -> str:
    if isinstance(exc, h11.ProtocolError):
        return f"the app sent a malformed response ({exc})"
    if isinstance(exc, (trio.BrokenResourceError, ConnectionResetError)):
        return "the app reset the connection"
    if isinstance(exc, OSError):
        return f"the app's connection failed ({exc.strerror or exc})"
    return f"the app's connection failed ({exc!r})"
