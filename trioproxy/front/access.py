"""The access log (``--access-log``): one line per request, on the ``trioproxy.access`` logger.

Requests are seen in one place, the front (:class:`~.front.Front` wraps each
HTTP request and websocket in :func:`logged`), so every answer is logged once:
the app's, trioproxy's own pages, redirects to the login, refusals. A request
is logged when its answer ends; a websocket when it closes (after a hand-off,
``ClientPort.after_hand_off``: the relaying outlives the ASGI app), with its duration
and the messages it carried each way (the bridge's frame trackers count them
and fill in the :class:`~trioproxy.websocket_port.MessageCounts` this module
puts in the scope: the bridge's frames do not pass through ASGI).

Text: the common log format (client, ``-``, user, time, request line, status,
bytes of the body) followed by the duration in seconds and, for a websocket,
``ws in=N out=M`` (messages from and to the client), e.g.::

    127.0.0.1 - alice [02/Dec/2026:12:00:01 +0000] "GET /user/alice/app/?x=1 HTTP/1.1" 200 5120 0.012s

With ``--log-format json`` the same line is the message and the fields are
keys of the JSON object (``cli.JSONFormatter``): ``client``, ``remote_user``
(the logged-in user; ``user`` is the server's owner, in every line),
``method``, ``path``, ``status``, ``bytes``, ``duration_s`` and, for a
websocket, ``websocket``, ``messages_in``, ``messages_out``. One format per
log stream: a JSON log stays all JSON, so there is no separate access format.

Never logged: credentials. The query's ``token=`` (and ``access_token``,
and the OAuth callback's ``code`` and ``state``) keep their name, their value
becomes ``[secret]``; headers and cookies are not logged at all.
"""

from __future__ import annotations

import logging
import time
import urllib.parse
from collections.abc import Awaitable, Callable, Mapping
from typing import Any

import trio

from ..websocket_port import COUNTS_EXTENSION, MessageCounts, port_of

logger = logging.getLogger("trioproxy.access")

#: Query parameters whose value is a credential: logged as ``name=[secret]``.
SECRET_PARAMS = frozenset({"token", "access_token", "code", "state"})
SECRET = "[secret]"

Send = Callable[[dict[str, Any]], Awaitable[None]]
App = Callable[[dict[str, Any], Any, Send], Awaitable[None]]


def clean_query(query: bytes) -> str:
    """The query string as logged: each credential's value replaced, the rest as sent. Pure."""
    if not query:
        return ""
    text = query.decode("latin-1")
    parts = []
    for part in text.split("&"):
        name, eq, _value = part.partition("=")
        if urllib.parse.unquote_plus(name).lower() in SECRET_PARAMS:
            part = f"{name}={SECRET}" if eq else name
        parts.append(part)
    return "&".join(parts)


def _printable(text: str) -> str:
    # A path is bytes the client chose: no control characters or quotes in our line.
    return "".join(c if " " < c < "\x7f" and c != '"' else f"%{ord(c):02X}" for c in text)


class Entry:
    """What one request's line says, filled in as its answer goes out."""

    __slots__ = ("_user", "bytes", "client", "counts", "method", "path", "protocol", "scope",
                 "started", "started_wall", "status", "websocket")

    def __init__(self, scope: Mapping[str, Any]) -> None:
        self.scope = scope
        client = scope.get("client")
        host = str(client[0]) if client else "-"
        # A dual-stack socket sees IPv4 clients as ::ffff:a.b.c.d: logged as a.b.c.d.
        self.client = host[7:] if host.startswith("::ffff:") and "." in host else host
        self.websocket = scope["type"] == "websocket"
        self.method = "GET" if self.websocket else str(scope.get("method", "GET"))
        raw = scope.get("raw_path") or scope.get("path", "/").encode("utf-8")
        query = clean_query(scope.get("query_string", b""))
        self.path = _printable(raw.decode("latin-1") + ("?" + query if query else ""))
        self.protocol = "HTTP/" + str(scope.get("http_version", "1.1"))
        self.status = 0
        self.bytes = 0
        self.counts = MessageCounts()
        self.started = trio.current_time()
        self.started_wall = time.time()
        self._user: str | None = None

    def settle(self) -> None:
        """The request's part is over (a websocket relayed on after its ASGI app): what the line needs
        of the scope is kept, not the scope (its headers, the passage)."""
        self._user = self.user
        self.scope = {}

    @property
    def user(self) -> str:
        """The logged-in user's name (set by the front once admitted), else ''."""
        if self._user is not None:
            return self._user
        model = self.scope.get("trioproxy.user")
        name = model.get("name") if isinstance(model, Mapping) else None
        return str(name) if name else ""

    def sent(self, message: dict[str, Any]) -> None:
        kind = message["type"]
        if kind in ("http.response.start", "websocket.http.response.start"):
            self.status = int(message["status"])
        elif kind in ("http.response.body", "websocket.http.response.body"):
            self.bytes += len(message.get("body", b""))
        elif kind == "websocket.accept":
            self.status = 101
        elif kind == "websocket.close" and not self.status:
            self.status = 403  # closed before accepting: hypercorn answers 403

    async def log(self) -> None:
        """Its line, now (async only to be run after a websocket handed off: it never waits)."""
        duration = trio.current_time() - self.started
        logger.info("%s", self.line(duration), extra={"access": self.fields(duration)})

    def fields(self, duration_s: float) -> dict[str, Any]:
        out: dict[str, Any] = {
            "client": self.client,
            "user": self.user,
            "method": self.method,
            "path": self.path,
            "status": self.status,
            "bytes": self.bytes,
            "duration_s": round(duration_s, 6),
        }
        if self.websocket:
            out.update(websocket=True, messages_in=self.counts.messages_in, messages_out=self.counts.messages_out)
        return out

    def line(self, duration_s: float) -> str:
        """The common log format, plus the duration (and a websocket's messages). Pure."""
        when = time.strftime("%d/%b/%Y:%H:%M:%S +0000", time.gmtime(self.started_wall))
        user = _printable(self.user) or "-"
        text = (f'{self.client} - {user} [{when}] "{self.method} {self.path} {self.protocol}" '
                f"{self.status or '-'} {self.bytes} {duration_s:.3f}s")
        if self.websocket:
            text += f" ws in={self.counts.messages_in} out={self.counts.messages_out}"
        return text


async def logged(app: App, scope: dict[str, Any], receive: Any, send: Send) -> None:
    """Run ``app`` for one request or websocket, and log its line when it ends (however it ends)."""
    entry = Entry(scope)
    if entry.websocket:
        extensions = {**(scope.get("extensions") or {}), COUNTS_EXTENSION: {"counts": entry.counts}}
        scope = {**scope, "extensions": extensions}
        entry.scope = scope

    async def observed(message: dict[str, Any]) -> None:
        entry.sent(message)
        await send(message)

    try:
        await app(scope, receive, observed)
    finally:
        port = port_of(scope) if entry.websocket else None
        if port is not None and port.after_hand_off(entry.log):
            entry.settle()
        else:
            await entry.log()
