"""Header rules for both hops. Pure functions on lists of ``(name, value)`` bytes.

Names arrive lower-cased (hypercorn and h11 both normalise them), values as
raw bytes; nothing here decodes a value it does not need to read.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from typing import Any
from urllib.parse import unquote_plus

Headers = list[tuple[bytes, bytes]]

#: RFC 9110 §7.6.1 connection-specific fields, plus Proxy-Connection and the
#: Proxy-* pair meant for a forward proxy. Each hop sets its own framing.
HOP_BY_HOP = frozenset(
    {
        b"connection",
        b"proxy-connection",
        b"keep-alive",
        b"te",
        b"trailer",
        b"transfer-encoding",
        b"upgrade",
        b"proxy-authorization",
        b"proxy-authenticate",
    }
)

#: Headers of the websocket handshake itself: each hop negotiates its own.
WEBSOCKET_HANDSHAKE = frozenset(
    {
        b"sec-websocket-key",
        b"sec-websocket-version",
        b"sec-websocket-extensions",
        b"sec-websocket-protocol",
        b"sec-websocket-accept",
        b"host",
        b"content-length",
    }
)

#: The user-info header the reference invented; a client may never supply it.
USER_INFO_HEADER = b"x-cdsdashboards-jh-user"
#: The user-info query argument, likewise.
USER_INFO_ARG = "CDSDASHBOARDS_JH_USER"


def _connection_tokens(headers: Iterable[tuple[bytes, bytes]]) -> set[bytes]:
    names: set[bytes] = set()
    for name, value in headers:
        if name == b"connection":
            names.update(t.strip().lower() for t in value.split(b",") if t.strip())
    return names


def strip_hop_by_hop(headers: Iterable[tuple[bytes, bytes]], extra: frozenset[bytes] = frozenset()) -> Headers:
    """Drop hop-by-hop fields, those named in ``Connection``, and ``extra``."""
    headers = list(headers)
    drop = HOP_BY_HOP | _connection_tokens(headers) | extra
    return [(n, v) for n, v in headers if n not in drop]


def get(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bytes | None:
    """The first value of ``name``, or None."""
    for n, v in headers:
        if n == name:
            return v
    return None


def peer(scope: Mapping[str, Any]) -> dict[str, Any]:
    """What an ASGI scope says about the hop: client address, scheme, our port."""
    client = scope.get("client")
    server = scope.get("server")
    return {
        "client_host": client[0] if client else None,
        "scheme": "https" if scope.get("scheme") in ("https", "wss") else "http",
        "server_port": server[1] if server else None,
    }


#: Forwarded fields that describe the hops before trioproxy.
_CHAIN = (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-port")
#: Forwarded fields trioproxy always sets itself: a client's copy never reaches the app.
_OURS = (b"x-forwarded-host", b"x-forwarded-prefix")


def _leftmost(value: bytes) -> bytes:
    """The first element of a comma-separated list (what the outermost proxy set)."""
    return value.split(b",", 1)[0].strip()


def _forwarded(
    headers: Headers,
    *,
    host: bytes | None,
    client_host: str | None,
    scheme: str,
    server_port: int | None,
    prefix: str,
) -> Headers:
    """The X-Forwarded-* fields for the app, in place of the ones that came.

    * ``-For``: what came, with this hop's peer appended.
    * ``-Proto``, ``-Port``: the left-most value that came, else this hop's. A
      proxy in front appends its own hop to what it got (configurable-http-proxy,
      through http-proxy's ``xfwd``, writes ``<what came>,<its hop>``), so the
      left-most is what the outermost proxy saw: the browser's scheme and port,
      JupyterHub's own reading (``get_browser_protocol``). A client can spoof it
      only about its own request.
    * ``-Host``: ``host``, the Host trioproxy received (proxies in front keep the
      browser's), never a client's ``X-Forwarded-Host`` (CHP passes one through).
    * ``-Prefix``: ``prefix``, trioproxy's own, or none.
    """
    out: Headers = []
    seen: dict[bytes, bytes] = {}
    for name, value in headers:
        if name in _CHAIN:
            seen[name] = value if name not in seen else seen[name] + b", " + value
        elif name not in _OURS:
            out.append((name, value))
    xff = seen.get(b"x-forwarded-for")
    if client_host and client_host.startswith("::ffff:") and "." in client_host:
        client_host = client_host[7:]  # an IPv4 client on a dual-stack socket
    if client_host:
        xff = (xff + b", " if xff else b"") + client_host.encode("latin-1")
    if xff:
        out.append((b"x-forwarded-for", xff))
    proto = _leftmost(seen.get(b"x-forwarded-proto", b""))
    out.append((b"x-forwarded-proto", proto or scheme.encode("latin-1")))
    if host:
        out.append((b"x-forwarded-host", host))
    port = _leftmost(seen.get(b"x-forwarded-port", b"")) or (str(server_port).encode() if server_port else b"")
    if port:
        out.append((b"x-forwarded-port", port))
    if prefix:
        out.append((b"x-forwarded-prefix", prefix.encode("latin-1")))
    return out


def without_underscores(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """Drop every field whose name has an ``_`` (nginx's ``underscores_in_headers off``).

    WSGI and CGI turn both ``-`` and ``_`` into ``_`` (``HTTP_X_CDSDASHBOARDS_JH_USER``),
    so a client's ``X_CDSDASHBOARDS_JH_USER`` would pass there as trioproxy's user info.
    """
    return [(n, v) for n, v in headers if b"_" not in n]


def upstream_request(
    headers: Sequence[tuple[bytes, bytes]],
    *,
    client_host: str | None,
    scheme: str,
    server_port: int | None,
    prefix: str,
) -> Headers:
    """Headers to send the app for an HTTP request.

    ``Host`` is kept; names with ``_`` are dropped; ``Expect`` is answered by our side; a client
    ``Transfer-Encoding`` becomes our own chunked framing (a
    ``Content-Length`` beside it is dropped, RFC 9112 §6.3).
    """
    chunked = get(headers, b"transfer-encoding") is not None
    extra = frozenset({b"expect", USER_INFO_HEADER})
    if chunked:
        extra |= {b"content-length"}
    out = strip_hop_by_hop(without_underscores(headers), extra)
    out = _forwarded(
        out, host=get(headers, b"host"), client_host=client_host, scheme=scheme, server_port=server_port, prefix=prefix
    )
    if chunked:
        out.append((b"transfer-encoding", b"chunked"))
    return out


def upstream_websocket(
    headers: Sequence[tuple[bytes, bytes]],
    *,
    client_host: str | None,
    scheme: str,
    server_port: int | None,
    prefix: str,
) -> Headers:
    """End-to-end headers of a websocket handshake for the app (cookies, origin...).

    ``Host`` is dropped here (the websocket client sends its own, the same) but
    still becomes ``X-Forwarded-Host``.
    """
    out = strip_hop_by_hop(without_underscores(headers), WEBSOCKET_HANDSHAKE | {USER_INFO_HEADER})
    return _forwarded(
        out, host=get(headers, b"host"), client_host=client_host, scheme=scheme, server_port=server_port, prefix=prefix
    )


def downstream_response(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """Headers of the app's response for the client: everything end-to-end, in order,
    repeats (Set-Cookie) kept, Content-Encoding untouched. A Content-Length sent
    beside Transfer-Encoding is dropped (RFC 9112 §6.3: the coding wins)."""
    headers = list(headers)
    extra = frozenset({b"content-length"}) if get(headers, b"transfer-encoding") is not None else frozenset()
    return strip_hop_by_hop(headers, extra)


def downstream_websocket_accept(headers: Iterable[tuple[bytes, bytes]]) -> Headers:
    """Headers of the app's 101 worth passing on (Set-Cookie and the like)."""
    return strip_hop_by_hop(
        headers, WEBSOCKET_HANDSHAKE | {b"date", b"server", b"content-type", b"transfer-encoding"}
    )


def sets_cookie(headers: Iterable[tuple[bytes, bytes]], name: bytes) -> bool:
    """Does a response set (or clear) cookie ``name``?"""
    prefix = name + b"="
    return any(n == b"set-cookie" and v.lstrip().startswith(prefix) for n, v in headers)


def strip_query_arg(query: bytes, name: str) -> bytes:
    """Remove every ``name=...`` (or bare ``name``) from a raw query; keep all else byte for byte."""
    if name.encode() not in query and b"%" not in query and b"+" not in query:
        return query
    parts = query.split(b"&")
    kept = [p for p in parts if unquote_plus(p.split(b"=", 1)[0].decode("latin-1")) != name]
    if len(kept) == len(parts):
        return query
    return b"&".join(kept)


#: Characters a Host header may hold (RFC 3986 reg-name, IP literal, port).
_HOST_OK = frozenset(b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:[]%")


def request_problem(
    http_version: str, raw_path: bytes, query: bytes, headers: Sequence[tuple[bytes, bytes]], max_bytes: int
) -> tuple[int, str] | None:
    """Why a request must not reach the app, as (status, reason), or None.

    Checked before anything is forwarded, so that what the app sees is never
    ambiguous: a request with both Content-Length and Transfer-Encoding (the
    classic smuggling vector), a coding other than chunked, several differing
    lengths, a malformed Host, an unknown HTTP version, or a head larger than
    the limit (the server enforces it only on heads that arrive in pieces).
    """
    if http_version not in ("1.0", "1.1"):
        return 505, f"HTTP/{http_version} is not supported"
    if len(raw_path) + len(query) > max_bytes:
        return 414, "the URL is too long"
    size = 0
    lengths: set[bytes] = set()
    codings: list[bytes] = []
    hosts = 0
    for name, value in headers:
        size += len(name) + len(value) + 4
        if name == b"content-length":
            lengths.update(v.strip() for v in value.split(b","))
        elif name == b"transfer-encoding":
            codings += [c.strip().lower() for c in value.split(b",") if c.strip()]
        elif name == b"host":
            hosts += 1
            if not value or any(c not in _HOST_OK for c in value):
                return 400, "the Host header is malformed"
    if size > max_bytes:
        return 431, "the request headers are too large"
    if hosts > 1:
        return 400, "more than one Host header"
    if codings and lengths:
        return 400, "both Content-Length and Transfer-Encoding"
    if codings and codings != [b"chunked"]:
        return 501, "only the chunked transfer coding is supported"
    if len(lengths) > 1 or any(not v.isdigit() for v in lengths):
        return 400, "conflicting or malformed Content-Length"
    return None
