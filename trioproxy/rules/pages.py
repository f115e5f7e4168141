"""The pages trioproxy answers with itself, and the ASGI calls that send them.

Every piece of text that came from outside (a reason, the app's log lines, a
path) is HTML-escaped here, in one place.

Every response trioproxy makes itself carries :data:`OWN_HEADERS`
(:func:`with_own_headers`): the pages built here add them wherever they are
sent, and ``_front.Front`` adds them to everything else it answers itself
(Quart's endpoints, redirects, refusals). The app's responses never get them.
"""

from __future__ import annotations

import base64
import hashlib
import html
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass
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
.hint, .fix {{ border-left: 4px solid #f0ad4e; padding-left: .6rem; }}
pre#tp-log {{ max-height: 28rem; overflow-y: auto; }}
</style>
</head>
<body>
<h1 id="tp-title">{title}</h1>
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


# --- the app's state: the start-up and error pages ----------------------------------------


@dataclass(frozen=True)
class AppView:
    """The app's state as the pages show it (``AppState.view``); times in seconds, None: not known."""

    #: ``starting``, ``waiting``, ``ready``, ``down``, ``failed`` (given up) or ``stopping``.
    status: str
    reason: str
    ready: bool = False
    attempt: int = 1
    max_attempts: int = 1
    #: What a starting app is waited for on ("the app on port 41873").
    waiting_for: str = ""
    elapsed_s: float | None = None
    #: Since the last sign of progress, against ``limit_s`` (--ready-timeout).
    idle_s: float | None = None
    limit_s: float = 0.0
    #: What trioproxy does next ("restarting the app (attempt 3 of 6)"), in how long.
    next_what: str = ""
    next_in_s: float | None = None
    hint: str = ""
    fix: str = ""
    gave_up: bool = False
    exits_in_s: float | None = None

    def as_json(self) -> dict[str, Any]:
        return asdict(self)


TITLES = {
    "starting": "The app is starting",
    "waiting": "The app starts with the first request",
    "ready": "The app is ready",
    "down": "The app is not running",
    "failed": "trioproxy gave up on the app",
    "stopping": "The server is stopping",
}


def _sentence(text: str) -> str:
    text = text.strip()
    if not text:
        return ""
    text = text[:1].upper() + text[1:]
    return text if text.endswith((".", "!", "?")) else text + "."


def describe(view: AppView) -> dict[str, str]:
    """The texts of the state page, by element: ``title``, ``now`` (what is going on), ``limits``
    (elapsed time against the bounds), ``next`` (what trioproxy does next), ``hint`` and ``fix``.
    Plain text (escaped where it is put in a page); the live page gets the same texts."""
    attempt = f" (attempt {view.attempt} of {view.max_attempts})" if view.max_attempts > 1 else ""
    now = limits = nxt = ""
    if view.status == "starting":
        if view.waiting_for and view.elapsed_s is not None:
            now = f"Waiting for {view.waiting_for}: {view.elapsed_s:.0f} s{attempt}."
        else:
            now = _sentence(view.reason or "the app is starting")
        if view.idle_s is not None and view.limit_s:
            limits = (f"Last sign of progress (output, CPU time, I/O, a new process or socket) {view.idle_s:.0f} s "
                      f"ago; the app is restarted after {view.limit_s:g} s without one (--ready-timeout).")
        nxt = "This page follows the app's start and opens it as soon as it answers."
    elif view.status == "down":
        now = _sentence(f"the app {view.reason}{attempt}")
        if view.next_in_s is not None and view.next_what:
            nxt = _sentence(f"{view.next_what} in {view.next_in_s:.0f} s")
        elif view.next_what:
            nxt = _sentence(view.next_what)
    elif view.status == "failed":
        now = _sentence(f"the app {view.reason}")
        if view.exits_in_s:
            nxt = f"This server stops in {view.exits_in_s:.0f} s; start it again from the Hub's home page."
        else:
            nxt = "This server is stopping; start it again from the Hub's home page."
    elif view.status == "waiting":
        now = "The app starts when the first request arrives."
    else:
        now = _sentence(view.reason) if view.reason else ""
    return {
        "title": TITLES.get(view.status, "The app"),
        "now": now,
        "limits": limits,
        "next": nxt,
        "hint": _sentence(view.hint) if view.hint else "",
        "fix": _sentence(f"fix: {view.fix}") if view.fix else "",
    }


def view_event(view: AppView) -> dict[str, Any]:
    """What a state page's event stream sends: the texts, and whether to open the app or stop."""
    return {"texts": describe(view), "ready": view.ready, "gave_up": view.gave_up, "status": view.status}


#: The state page's script: static, so its hash goes in the page's Content-Security-Policy.
#: It reads ``data-events`` (the owner's event stream) and ``data-after`` (the output lines
#: already shown) from ``#tp``; it sets text only (textContent), never markup.
STATE_SCRIPT = """
(() => {
  const root = document.getElementById("tp");
  const url = root.dataset.events + "?follow=1&after=" + encodeURIComponent(root.dataset.after);
  const log = document.getElementById("tp-log");
  let gaveUp = root.dataset.status === "failed";
  if (gaveUp) return;
  const es = new EventSource(url);
  es.addEventListener("line", e => {
    if (log) { log.textContent += e.data + "\\n"; log.scrollTop = log.scrollHeight; }
  });
  es.addEventListener("view", e => {
    const v = JSON.parse(e.data);
    for (const [key, text] of Object.entries(v.texts)) {
      const el = document.getElementById("tp-" + key);
      if (el) { el.textContent = text; el.hidden = !text; }
    }
    document.title = v.texts.title;
    root.dataset.status = v.status;
    if (v.ready) { es.close(); location.reload(); }
    if (v.gave_up) { gaveUp = true; }
  });
  es.onerror = () => {
    es.close();
    const next = document.getElementById("tp-next");
    if (gaveUp) { if (next) next.textContent = "This server has stopped; start it again from the Hub's home page."; }
    else { setTimeout(() => location.reload(), 2000); }
  };
})();
"""
STATE_SCRIPT_HASH = "sha256-" + base64.b64encode(hashlib.sha256(STATE_SCRIPT.encode()).digest()).decode()
#: The state pages' policy: their one script by its hash, requests to this origin only.
STATE_CSP = (
    f"default-src 'none'; script-src '{STATE_SCRIPT_HASH}'; connect-src 'self'; img-src 'self'; "
    "style-src 'unsafe-inline'; base-uri 'none'; form-action 'none'; frame-ancestors 'self'"
).encode()


def render_state(
    view: AppView,
    *,
    log_lines: Sequence[str] = (),
    events: str = "",
    after: int = 0,
    refresh_s: int | None = None,
    links: Sequence[tuple[str, str]] = (),
) -> bytes:
    """The start-up or error page of ``view``. With ``events`` (the owner's event stream's URL)
    it follows the app live (script), ``log_lines`` being the output up to line ``after``;
    ``refresh_s`` reloads it without a script (``<noscript>`` when it is live). Send it with
    ``(b"content-security-policy", STATE_CSP)``."""
    texts = describe(view)

    def para(key: str, cls: str = "") -> str:
        text = texts[key]
        attrs = f' id="tp-{key}"' + (f' class="{cls}"' if cls else "") + ("" if text else " hidden")
        return f"<p{attrs}>{html.escape(text)}</p>"

    body = [
        f'<div id="tp" data-events="{html.escape(events)}" data-after="{int(after)}" '
        f'data-status="{html.escape(view.status)}">',
        para("now"), para("limits", "muted"), para("next"), para("hint", "hint"), para("fix", "fix"),
    ]
    if links:
        body.append("<ul>" + "".join(f'<li><a href="{html.escape(h)}">{html.escape(t)}</a></li>'
                                     for t, h in links) + "</ul>")
    if events or log_lines:
        body.append("<h2>The app's output</h2>")
        body.append('<pre id="tp-log">' + html.escape("".join(line + "\n" for line in log_lines)) + "</pre>")
    body.append("</div>")
    if events:
        body.append(f"<script>{STATE_SCRIPT}</script>")
    refresh = ""
    if refresh_s:
        tag = f'<meta http-equiv="refresh" content="{int(refresh_s)}">'
        refresh = (f"<noscript>{tag}</noscript>" if events else tag) + "\n"
    return _PAGE.format(title=html.escape(texts["title"]), body="\n".join(body), refresh=refresh).encode("utf-8")


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
