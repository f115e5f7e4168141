"""h11's server connection with trioproxy's protocol surface: HTTP/1.1 only, strict heads,
and nothing read after a request that ends its connection.

:class:`GuardedConnection` is the ``h11.Connection`` of hypercorn's HTTP/1.1
protocol for each client connection (:mod:`.tcp` gives it to
:class:`trioproxy.compat.hypercorn.ServerConnection`, which puts it in place
before the first byte is read). It overrides only h11's public methods
(``receive_data``, ``next_event``, ``start_next_cycle``) and reads only public
state (``their_state``, ``trailing_data``, events); h11 does not document the
class for subclassing, so its base is :class:`trioproxy.compat.h11.ServerConnection`:

* **Strict heads.** Every request head is checked by :class:`trioproxy.rules.head.HeadScan`
  before h11 parses it: the first one, and each later one (keep-alive and
  pipelined: the bytes h11 holds when a new cycle starts are scanned then,
  what arrives later as it arrives). A problem is raised as h11's own
  ``RemoteProtocolError`` with its status, which hypercorn answers like any
  refusal of h11's: that status, ``Connection: close``, then the connection
  closes. The app never sees the request.
* **No HTTP/2.** The prior-knowledge preface (``PRI * HTTP/2.0``) is refused
  with 505 by the version rule of :mod:`trioproxy.rules.head`, before hypercorn could switch
  to its HTTP/2 protocol. A request that offers ``Upgrade: h2c`` is served as
  plain HTTP/1.1, as if it carried no ``Upgrade`` (RFC 9110 §7.8 lets a server
  ignore it; nginx and Jupyter's tornado do; ``curl --http2`` then carries on in
  HTTP/1.1): its ``Upgrade`` and ``HTTP2-Settings`` headers are taken out of
  the event, so neither hypercorn's switch to HTTP/2 nor the app sees an upgrade.
* **The last request is the last.** After a request that ends its connection
  (HTTP/1.0, on which h11 does no keep-alive, or ``Connection: close`` in the
  request or in the answer), h11 calls any further byte "data when expecting
  EOF" and hypercorn answers 400 over the response in progress, after the app
  has had the request. Here those bytes are read and dropped, never parsed:
  the response goes out whole, then the connection closes.
"""

from __future__ import annotations

import logging
from typing import Any

import h11

from ..compat.h11 import ServerConnection
from ..rules.head import HeadScan, Problem

logger = logging.getLogger("trioproxy.server")

#: Request headers of an h2c upgrade offer, taken out of the request (lower case).
_H2C_OFFER = frozenset({b"upgrade", b"http2-settings"})

NextEvent = h11.Event | type[h11.NEED_DATA] | type[h11.PAUSED]


class GuardedConnection(ServerConnection):
    """A server-side ``h11.Connection``; see the module docstring for what it adds."""

    def __init__(self, max_head_bytes: int) -> None:
        super().__init__(max_incomplete_event_size=max_head_bytes)
        self._scan = HeadScan()
        self._problem: Problem | None = None

    def receive_data(self, data: bytes) -> None:
        state = self.their_state
        if data and state is h11.MUST_CLOSE:
            return  # after the connection's last request: never parsed
        if state is h11.IDLE and self._problem is None:
            self._problem = self._scan.feed(data)
        super().receive_data(data)

    def next_event(self) -> NextEvent:
        state = self.their_state
        if state is h11.IDLE and self._problem is not None:
            status, reason = self._problem
            logger.debug("request head refused with %d: %s", status, reason)
            raise h11.RemoteProtocolError(reason, error_status_hint=status)
        if state is h11.MUST_CLOSE:
            return h11.NEED_DATA  # what h11 holds past the last request is dropped with the connection
        event = super().next_event()
        if type(event) is h11.Request and offers_h2c(event.headers):
            event = without_h2c_offer(event)
        return event

    def send_with_data_passthrough(self, event: h11.Event) -> list[bytes] | None:
        if type(event) is h11.Response and self.their_state is h11.SEND_BODY:
            # The answer goes before the request's body has all come (a refusal, a redirect, a
            # login page for a POST): hypercorn closes such a connection once the answer is out
            # (it never reads a body nobody asked for), so the answer says so (RFC 9112 §9.6).
            # Else a client sends its next request into the closing connection and gets no answer.
            headers = [(k, v) for k, v in event.headers if k != b"connection"]
            event = h11.Response(status_code=event.status_code, reason=event.reason,
                                 headers=[*headers, (b"connection", b"close")])
        return super().send_with_data_passthrough(event)

    def start_next_cycle(self) -> None:
        super().start_next_cycle()
        self._scan = HeadScan()
        pipelined, _ = self.trailing_data  # empty unless the client sent the next request early
        self._problem = self._scan.feed(pipelined) if pipelined else None


def offers_h2c(headers: Any) -> bool:
    """Whether a request's (lower-case) headers offer an upgrade to h2c (among other protocols or alone)."""
    for name, value in headers:
        if name == b"upgrade" and any(t.strip().lower() == b"h2c" for t in value.split(b",")):
            return True
    return False


def without_h2c_offer(request: h11.Request) -> h11.Request:
    """The request as if it offered no upgrade: no ``Upgrade``, no ``HTTP2-Settings``."""
    headers = [(n, v) for n, v in request.headers.raw_items() if n.lower() not in _H2C_OFFER]
    return h11.Request(
        method=request.method, target=request.target, headers=headers, http_version=request.http_version
    )

