"""The pages trioproxy answers with itself, and the ASGI calls that send them.

Every piece of text that came from outside (a reason, the app's log lines, a
path) is HTML-escaped here, in one place.

Every response trioproxy makes itself carries :data:`OWN_HEADERS`
(:func:`with_own_headers`): the pages built here add them wherever they are
sent, and ``_front.Front`` adds them to everything else it answers itself
(Quart's endpoints, redirects, refusals). The app's responses never get them.
"""

from __future__ import annotations

import html
from collections.abc import Awaitable, Callable, Iterable, Sequence
from typing import Any

Send = Callable[[dict[str, Any]], Awaitable[None]]

#: On every response of trioproxy's own: no other origin may frame its pages
#: (the owner's controls, the login replies: clickjacking), and no browser
#: sniffs a type other than the one sent.
OWN_HEADERS: tuple[tuple[bytes, bytes], ...] = (
    (b"content-security-policy", b"frame-ancestors 'self'"),
    (b"x-content-type-options", b"nosniff"),
)
_OWN_NAMES = frozenset(name for name, _ in OWN_HEADERS)


def with_own_headers(headers: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    """``headers`` and those of :data:`OWN_HEADERS` they lack (by name, any case): each once."""
    out = list(headers)
    present = {name.lower() for name, _ in out} & _OWN_NAMES
    out += [(name, value) for name, value in OWN_HEADERS if name not in present]
    return out

_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1">
{refresh}<title>{title}</title>
<style>
body {{ font-family: system-ui, sans-serif; margin: 2rem auto; max-width: 60rem; padding: 0 1rem; color: #222; }}
pre {{ background: #f4f4f4; padding: 1rem; overflow-x: auto; white-space: pre-wrap; }}
.muted {{ color: #666; }}
</style>
</head>
<body>
<h1>{title}</h1>
{body}
<p class="muted">trioproxy</p>
</body>
</html>
"""


def render(
    title: str,
    paragraphs: Iterable[str],
    *,
    log_lines: Sequence[str] = (),
    refresh_s: int | None = None,
    links: Sequence[tuple[str, str]] = (),
) -> bytes:
    """A small HTML page; ``title``, ``paragraphs``, ``log_lines`` and the
    ``(text, href)`` pairs of ``links`` are plain text."""
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    if links:
        items = "".join(f'<li><a href="{html.escape(href)}">{html.escape(text)}</a></li>' for text, href in links)
        body += f"\n<ul>{items}</ul>"
    if log_lines:
        body += "\n<h2>Last lines of the app's output</h2>\n<pre>" + html.escape("\n".join(log_lines)) + "</pre>"
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">\n' if refresh_s else ""
    return _PAGE.format(title=html.escape(title), body=body, refresh=refresh).encode("utf-8")


def render_html(title: str, body_html: str) -> bytes:
    """A page around ``body_html``, which must be trioproxy's own markup (nothing from outside)."""
    return _PAGE.format(title=html.escape(title), body=body_html, refresh="").encode("utf-8")


def _headers(body: bytes, extra: Iterable[tuple[bytes, bytes]]) -> list[tuple[bytes, bytes]]:
    return [
        (b"content-type", b"text/html; charset=utf-8"),
        (b"content-length", str(len(body)).encode()),
        (b"cache-control", b"no-store"),
        *extra,
        *OWN_HEADERS,
    ]


async def send_http(
    send: Send, status: int, body: bytes, extra: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    await send({"type": "http.response.start", "status": status, "headers": _headers(body, extra)})
    await send({"type": "http.response.body", "body": body, "more_body": False})


async def send_websocket_denial(
    send: Send, status: int, body: bytes, extra: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Refuse a websocket handshake with an HTTP response (ASGI websocket.http.response)."""
    await send({"type": "websocket.http.response.start", "status": status, "headers": _headers(body, extra)})
    await send({"type": "websocket.http.response.body", "body": body, "more_body": False})


async def respond(
    scope: dict[str, Any], send: Send, status: int, body: bytes, extra: Iterable[tuple[bytes, bytes]] = ()
) -> None:
    """Answer an HTTP request or refuse a websocket handshake, whichever ``scope`` is."""
    if scope["type"] == "websocket":
        await send_websocket_denial(send, status, body, extra)
    else:
        await send_http(send, status, body, extra)


def redirect_body(location: bytes) -> bytes:
    loc = location.decode("latin-1")
    return render("Redirect", [f"This page has moved to {loc}."])


NOT_FOUND = render("404: Not Found", ["There is nothing here. This server only serves paths under its prefix."])
