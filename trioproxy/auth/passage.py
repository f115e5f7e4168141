"""Who may pass: the check every request and websocket handshake goes through before the app.

The front (``_front``) calls :meth:`Authenticator.admit` for HTTP requests
and websocket handshakes alike. It returns the :class:`Passage` to forward
with (the request as the app may see it), or None after answering the
request itself (a login redirect, a 403 page, a refused handshake).

Here: the protocol, ``--authtype none``, and the pure rules both modes share
(what a client may not send the app, the user-info JSON, cross-site
requests). The JupyterHub login is ``_oauth``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol
from urllib.parse import quote

from ..rules import headers as _headers
from ..rules import hub_cookies as _hub_cookies
from ..rules.pages import Send
from ..rules.scopes import NOTHING, ControlAccess

Headers = list[tuple[bytes, bytes]]


@dataclass(frozen=True)
class Passage:
    """A request cleared to reach the app, as the app may see it."""

    #: The client's request headers minus trioproxy's own credentials.
    headers: Headers
    #: The request-target for the app (credentials and spoofed user info removed).
    target: bytes
    #: Headers trioproxy adds after the hop rules (the user-info header).
    add: Headers = field(default_factory=list)
    #: Who it is (the Hub's user model), None without login.
    user: Mapping[str, Any] | None = None
    #: How the request was authenticated: "cookie" (the login cookie: ambient, so
    #: unsafe controls need an anti-forgery token too), "header" (Authorization),
    #: "url" (?token=), "none" (--authtype none).
    credential: str = "none"
    #: SHA-256 of the token that authenticated it (never the token), b"" without one.
    login_digest: bytes = field(default=b"", repr=False)
    #: What of the owner's controls it may reach (``_scopes.control_access``).
    controls: ControlAccess = NOTHING


@dataclass(frozen=True)
class Reply:
    """A complete answer trioproxy gives itself (the OAuth callback)."""

    status: int
    headers: Headers
    body: bytes


class Authenticator(Protocol):
    async def admit(self, scope: dict[str, Any], send: Send, target: bytes) -> Passage | None: ...

    async def callback(self, scope: dict[str, Any]) -> Reply: ...


def user_info(model: Mapping[str, Any]) -> str:
    """The reference's user-info JSON: kind, name, admin, groups (missing ones are null)."""
    return json.dumps({k: model.get(k) for k in ("kind", "name", "admin", "groups")})


def split_target(target: bytes) -> tuple[bytes, bytes]:
    path, _, query = target.partition(b"?")
    return path, query


def join_target(path: bytes, query: bytes) -> bytes:
    return path + b"?" + query if query else path


#: The query argument that carries a token: never reaches the app.
TOKEN_ARG = "token"
#: The Hub's anti-forgery cookie (the app keeps it only if it sets its own).
XSRF_COOKIE = "_xsrf"


def passage(
    headers: Sequence[tuple[bytes, bytes]],
    target: bytes,
    *,
    user: Mapping[str, Any] | None = None,
    forward_user_info: bool = False,
    query_user_info: bool = False,
    drop_query_args: Sequence[str] = (),
    own_cookie: str = "",
    strip_xsrf: bool = False,
    credential: str = "none",
    login_digest: bytes = b"",
    controls: ControlAccess = NOTHING,
) -> Passage:
    """The request for the app, in both auth modes: every credential cookie
    (``_hub_cookies.is_credential``; ``own_cookie`` is trioproxy's login cookie)
    removed, and ``_xsrf`` with ``strip_xsrf``; ``?token=``, client copies of the
    user info and ``drop_query_args`` removed from the query (always);
    trioproxy's user info added."""
    # Here, not at import: cryptography, ~8 ms of start-up (loaded early with oauth).
    from ..rules import cookies as _cookies  # noqa: PLC0415

    kept = _cookies.without(
        headers, lambda name: _hub_cookies.is_credential(name, own_cookie) or (strip_xsrf and name == XSRF_COOKIE)
    )
    path, query = split_target(target)
    for name in (_headers.USER_INFO_ARG, TOKEN_ARG, *drop_query_args):
        query = _headers.strip_query_arg(query, name)
    add: Headers = []
    if user is not None and (forward_user_info or query_user_info):
        info = user_info(user)
        if forward_user_info:
            add.append((_headers.USER_INFO_HEADER, info.encode("latin-1")))
        if query_user_info:
            arg = f"{_headers.USER_INFO_ARG}={quote(info, safe='')}".encode("ascii")
            query = query + b"&" + arg if query else arg
    kept = [(n, v) for n, v in kept if n != _headers.USER_INFO_HEADER]
    return Passage(kept, join_target(path, query), add, user, credential, login_digest, controls)


def _first(value: bytes | None) -> str | None:
    if value is None:
        return None
    return value.split(b",")[0].strip().decode("latin-1") or None


def browser_scheme(headers: Sequence[tuple[bytes, bytes]], scheme: str, public_url: str = "") -> str:
    """The scheme the browser used: the Hub's public URL, else X-Forwarded-Proto, else this hop's."""
    if public_url:
        return "https" if public_url.lower().startswith("https:") else "http"
    forwarded = (_first(_headers.get(headers, b"x-forwarded-proto")) or "").lower()
    # Proxies name a websocket's scheme ws/wss (configurable-http-proxy does): the page's is http/https.
    forwarded = {"ws": "http", "wss": "https"}.get(forwarded, forwarded)
    if forwarded in ("http", "https"):
        return forwarded
    return "https" if scheme in ("https", "wss") else "http"


def is_cross_site(
    headers: Sequence[tuple[bytes, bytes]], scheme: str, trusted_origins: frozenset[str] = frozenset()
) -> bool:
    """Did a browser send this from another site?

    ``Sec-Fetch-Site`` decides where the browser sends it (only
    ``same-origin`` and ``none``, a typed URL, pass: ``same-site`` is another
    user's server in subdomain mode). Otherwise ``Origin`` must be this
    request's own origin, the browser's scheme with the ``Host`` trioproxy
    received (proxies in front, configurable-http-proxy among them, keep the
    browser's), or a trusted one (the Hub's public URL: behind an ingress that
    rewrites ``Host``). ``X-Forwarded-Host`` is never read: any client can send
    one, and configurable-http-proxy passes it on untouched. No header at all:
    not a browser.
    """
    site = _headers.get(headers, b"sec-fetch-site")
    if site is not None:
        return site.strip().lower() not in (b"same-origin", b"none")
    origin = _headers.get(headers, b"origin")
    if origin is None:
        return False
    got = origin.decode("latin-1").strip().lower().rstrip("/")
    if got == "null":
        return True
    if got in trusted_origins:
        return False
    host = (_headers.get(headers, b"host") or b"").decode("latin-1").strip().lower()
    return not host or got != f"{browser_scheme(headers, scheme)}://{host}"


class NoAuth:
    """``--authtype none``: everyone is let in."""

    async def admit(self, scope: dict[str, Any], send: Send, target: bytes) -> Passage | None:
        return passage(scope["headers"], target)

    async def callback(self, scope: dict[str, Any]) -> Reply:
        from ..rules import pages as _pages  # noqa: PLC0415 (only on this rare error path)

        body = _pages.render("400: No login in progress", ["This server does not use JupyterHub login."])
        return Reply(400, [], body)
