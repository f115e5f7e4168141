"""The pages trioproxy answers with itself, and the ASGI calls that send them.

Every piece of text that came from outside (a reason, the app's log lines, a
path) is HTML-escaped here, in one place.

The pages are in the Hub's look (:class:`Look`: a top bar with the Hub's own logo from its
``/hub/logo`` and links to the Hub's home, this app, the owner's controls and the Hub's home
again for stopping the server; a centred panel), written here as one static stylesheet. Each
page carries its policy in a ``<meta>`` Content-Security-Policy: ``default-src 'none'``, the
stylesheet and the page's one script (if any) allowed by their hashes, images from this origin
and the Hub's only; nothing is loaded from anywhere else.

Every response trioproxy makes itself carries :data:`OWN_HEADERS`
(:func:`with_own_headers`): the pages built here add them wherever they are
sent, and ``_front.Front`` adds them to everything else it answers itself
(Quart's endpoints, redirects, refusals). The app's responses never get them.
"""

from __future__ import annotations

import base64
import hashlib
import html
import re
from collections.abc import Awaitable, Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, replace
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

# --- the look: JupyterHub's, written here -------------------------------------------------

#: The pages' one stylesheet: static, so its hash goes in their Content-Security-Policy (no
#: 'unsafe-inline'); the markup uses classes only, never a ``style`` attribute. The Hub's
#: look (JupyterHub 5/6: Bootstrap 5's colours, its system font stack, a light top bar with
#: the logo 28 px high, links in the Hub's blue, buttons in Jupyter's orange), written here.
STYLE = """
:root { --fg: #212529; --bg: #fff; --bar: #f8f9fa; --line: #dee2e6; --link: #2c7bb6; --muted: #6c757d;
  --accent: #f37524; --accent-line: #e34f21; --bad: #d7191c; --code: #f8f9fa; }
@media (prefers-color-scheme: dark) {
  :root { --fg: #dee2e6; --bg: #212529; --bar: #2b3035; --line: #495057; --link: #80b0d3; --muted: #adb5bd;
    --code: #2b3035; }
}
* { box-sizing: border-box; }
html { color-scheme: light dark; }
body { margin: 0; color: var(--fg); background: var(--bg); font-size: 1rem; line-height: 1.5;
  font-family: system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue", "Noto Sans", "Liberation Sans",
    Arial, sans-serif; }
a { color: var(--link); }
[hidden] { display: none !important; }
.tp-bar { display: flex; flex-wrap: wrap; align-items: center; gap: .25rem .5rem; padding: .5rem 1rem;
  background: var(--bar); border-bottom: 1px solid var(--line); margin-bottom: 1.5rem; }
.tp-bar .tp-logo img { display: block; height: 28px; }
.tp-bar .tp-brand { font-weight: 600; color: var(--fg); text-decoration: none; margin-right: .5rem; }
.tp-bar .tp-nav { color: var(--muted); text-decoration: none; padding: .375rem .5rem; border-radius: .375rem; }
.tp-bar .tp-nav:hover, .tp-bar .tp-nav:focus { color: var(--fg); background: var(--line); }
main { max-width: 56rem; margin: 0 auto 1.5rem; padding: 0 1rem; }
.tp-panel { border: 1px solid var(--line); border-radius: .5rem; overflow: hidden; }
.tp-panel > h1 { margin: 0; padding: .75rem 1.25rem; font-size: 1.375rem; font-weight: 500;
  background: var(--bar); border-bottom: 1px solid var(--line); border-left: 6px solid var(--link); }
.tp-panel.tp-error > h1, .tp-panel[data-status="down"] > h1, .tp-panel[data-status="failed"] > h1
  { border-left-color: var(--bad); }
.tp-panel[data-status="starting"] > h1, .tp-panel[data-status="waiting"] > h1 { border-left-color: var(--accent); }
.tp-body { padding: .75rem 1.25rem 1rem; }
.tp-body h2 { font-size: 1.1rem; font-weight: 500; margin: 1.25rem 0 .5rem; }
.tp-links { padding-left: 1.25rem; }
pre { margin: 0; padding: .75rem; background: var(--code); border: 1px solid var(--line); border-radius: .375rem;
  font-size: .875rem; white-space: pre-wrap; overflow-wrap: anywhere; max-height: 28rem; overflow-y: auto; }
code { font-size: .875rem; overflow-wrap: anywhere; }
table { border-collapse: collapse; margin: .5rem 0; }
th, td { text-align: left; vertical-align: top; padding: .3rem 1rem .3rem 0; border-bottom: 1px solid var(--line); }
th { font-weight: 500; color: var(--muted); white-space: nowrap; }
button { font: inherit; color: #fff; background: var(--accent); border: 1px solid var(--accent-line);
  border-radius: .375rem; padding: .375rem .75rem; cursor: pointer; }
button:hover { filter: brightness(.9); }
.muted { color: var(--muted); }
.hint, .fix { border-left: 4px solid var(--accent); padding-left: .6rem; }
footer { max-width: 56rem; margin: 0 auto 1.5rem; padding: 0 1rem; text-align: center; font-size: .875rem; }
"""


def script_hash(text: str) -> str:
    """A CSP source for an inline script or stylesheet: ``sha256-<base64>`` of its text."""
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


STYLE_HASH = script_hash(STYLE)
#: What a Hub's URL may be to be put in a policy and a page (scheme, host, port; no path).
_ORIGIN = re.compile(r"https?://[A-Za-z0-9.\-]+(?::[0-9]{1,5})?|https?://\[[0-9A-Fa-f:.]+\](?::[0-9]{1,5})?")


@dataclass(frozen=True)
class Look:
    """What the pages' top bar shows and links, per process (:func:`hub_look`) and per request
    (``owner``). ``hub``: the Hub's pages (``/hub/``, or ``https://hub.example/hub/`` on another
    origin); '' without a Hub (no logo, no Hub links). ``prefix``: this server's, no trailing slash."""

    hub: str = ""
    prefix: str = ""
    #: The request is the owner's: link the owner's controls.
    owner: bool = False

    @property
    def hub_origin(self) -> str:
        """The Hub's origin when it is another one than the page's ('' when the same, or no Hub)."""
        match = _ORIGIN.match(self.hub)
        return match.group(0) if match else ""

    @property
    def hub_ok(self) -> bool:
        """A Hub to show and link: a path of this origin, or a well-formed other origin."""
        if self.hub.startswith("/") and not self.hub.startswith("//"):
            return True
        return bool(self.hub_origin) and self.hub[len(self.hub_origin):].startswith("/")

    @property
    def logo(self) -> str:
        """The Hub's logo (its ``/hub/logo``, whatever the Hub was configured with)."""
        return self.hub + "logo" if self.hub_ok else ""

    @property
    def hub_home(self) -> str:
        """The Hub's home page: the user's servers, with their Stop buttons."""
        return self.hub + "home" if self.hub_ok else ""

    @property
    def app(self) -> str:
        return self.prefix + "/"

    @property
    def controls(self) -> str:
        return f"{self.prefix}/_trioproxy/"

    def for_owner(self, owner: bool = True) -> Look:
        return replace(self, owner=owner)

    def csp(self, script_hash: str = "", *, frame_ancestors: str = "'self'") -> str:
        """The pages' policy: nothing but their stylesheet (by its hash), the Hub's logo and, when
        ``script_hash`` is given, that one script talking to this origin only. ``frame_ancestors``
        '' leaves that out (a ``<meta>`` policy cannot say it: the header :data:`OWN_HEADERS` does)."""
        img = "'self'" + (f" {self.hub_origin}" if self.hub_ok and self.hub_origin else "")
        script = f"script-src '{script_hash}'; connect-src 'self'; " if script_hash else ""
        frames = f"; frame-ancestors {frame_ancestors}" if frame_ancestors else ""
        return (f"default-src 'none'; {script}img-src {img}; style-src '{STYLE_HASH}'; "
                f"base-uri 'none'; form-action 'none'{frames}")


def hub_look(*, with_hub: bool, host: str, hub_prefix: str, prefix: str) -> Look:
    """The process's look: ``with_hub`` when a Hub spawned it (its API token is there);
    ``host`` is ``$JUPYTERHUB_HOST`` ('' when the Hub shares the origin)."""
    return Look(hub=host.rstrip("/") + hub_prefix if with_hub else "", prefix=prefix.rstrip("/"))


#: The look of a page that knows nothing of its Hub or server.
PLAIN = Look()


def _bar(look: Look) -> str:
    """The top bar: the Hub's logo (to its home), Home, This app; for the owner, Controls and Stop."""
    items = []
    if look.logo:
        items.append(f'<a class="tp-logo" href="{html.escape(look.hub_home)}" title="Home">'
                     f'<img src="{html.escape(look.logo)}" alt="JupyterHub"></a>')
    else:
        items.append(f'<a class="tp-brand" href="{html.escape(look.app)}">trioproxy</a>')
    nav: list[tuple[str, str, str]] = []
    if look.hub_home:
        nav.append(("Home", look.hub_home, "The Hub's home page"))
    nav.append(("This app", look.app, "This server's app"))
    if look.owner:
        nav.append(("Controls", look.controls, "The owner's controls: state, restart, the app's log"))
        if look.hub_home:
            # The Hub stops servers from its home page (a POST of its own, with its XSRF token):
            # a link there, never a cross-site request from here.
            nav.append(("Stop my server", look.hub_home, "On the Hub's home page: the Stop button of this server"))
    items += [f'<a class="tp-nav" href="{html.escape(href)}" title="{html.escape(tip)}">{html.escape(text)}</a>'
              for text, href, tip in nav]
    return '<nav class="tp-bar">' + "".join(items) + "</nav>"


def _links(links: Sequence[tuple[str, str]]) -> str:
    items = "".join(f'<li><a href="{html.escape(href)}">{html.escape(text)}</a></li>' for text, href in links)
    return f'<ul class="tp-links">{items}</ul>'


_PAGE = """<!DOCTYPE html>
<html lang="en">
<head>
<meta charset="utf-8">
<meta http-equiv="Content-Security-Policy" content="{csp}">
<meta name="viewport" content="width=device-width, initial-scale=1">
{refresh}<title>{title}</title>
<style>{style}</style>
</head>
<body>
{bar}
<main>
<section {panel}>
<h1 id="tp-title">{title}</h1>
<div class="tp-body">
{body}
</div>
</section>
</main>
<footer><p class="muted">trioproxy</p></footer>
{script}</body>
</html>
"""


def _page(title: str, body: str, look: Look, *, panel: str = 'class="tp-panel"', refresh: str = "",
          script: str = "") -> bytes:
    return _PAGE.format(
        csp=html.escape(look.csp(script_hash(script) if script else "", frame_ancestors="")), refresh=refresh,
        title=html.escape(title),
        style=STYLE, bar=_bar(look), panel=panel, body=body,
        script=f"<script>{script}</script>\n" if script else "",
    ).encode("utf-8")


def _is_error(title: str) -> bool:
    return title[:3].isdigit() and title[:1] in "45"


def render(
    title: str,
    paragraphs: Iterable[str],
    *,
    log_lines: Sequence[str] = (),
    refresh_s: int | None = None,
    links: Sequence[tuple[str, str]] = (),
    look: Look = PLAIN,
) -> bytes:
    """A small HTML page in the Hub's look; ``title``, ``paragraphs``, ``log_lines`` and the
    ``(text, href)`` pairs of ``links`` are plain text."""
    body = "\n".join(f"<p>{html.escape(p)}</p>" for p in paragraphs)
    if links:
        body += "\n" + _links(links)
    if log_lines:
        body += "\n<h2>Last lines of the app's output</h2>\n<pre>" + html.escape("\n".join(log_lines)) + "</pre>"
    refresh = f'<meta http-equiv="refresh" content="{int(refresh_s)}">\n' if refresh_s else ""
    panel = 'class="tp-panel tp-error"' if _is_error(title) else 'class="tp-panel"'
    return _page(title, body, look, panel=panel, refresh=refresh)


def render_html(title: str, body_html: str, *, look: Look = PLAIN, script: str = "") -> bytes:
    """A page around ``body_html``, which must be trioproxy's own markup (nothing from outside);
    ``script``: its one script, static (its hash goes in the page's policy)."""
    return _page(title, body_html, look, script=script)


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
STATE_SCRIPT_HASH = script_hash(STATE_SCRIPT)


def state_csp(look: Look = PLAIN) -> bytes:
    """The state pages' policy: their one script by its hash, requests to this origin only,
    their stylesheet by its hash, images from this origin and the Hub's."""
    return look.csp(STATE_SCRIPT_HASH).encode()


#: The state pages' policy when the Hub shares the page's origin.
STATE_CSP = state_csp()


def render_state(
    view: AppView,
    *,
    log_lines: Sequence[str] = (),
    events: str = "",
    after: int = 0,
    refresh_s: int | None = None,
    links: Sequence[tuple[str, str]] = (),
    look: Look = PLAIN,
) -> bytes:
    """The start-up or error page of ``view``. With ``events`` (the owner's event stream's URL)
    it follows the app live (script), ``log_lines`` being the output up to line ``after``;
    ``refresh_s`` reloads it without a script (``<noscript>`` when it is live). Send it with
    ``(b"content-security-policy", state_csp(look))``."""
    texts = describe(view)

    def para(key: str, cls: str = "") -> str:
        text = texts[key]
        attrs = f' id="tp-{key}"' + (f' class="{cls}"' if cls else "") + ("" if text else " hidden")
        return f"<p{attrs}>{html.escape(text)}</p>"

    body = [para("now"), para("limits", "muted"), para("next"), para("hint", "hint"), para("fix", "fix")]
    if links:
        body.append(_links(links))
    if events or log_lines:
        body.append("<h2>The app's output</h2>")
        body.append('<pre id="tp-log">' + html.escape("".join(line + "\n" for line in log_lines)) + "</pre>")
    # The panel is the script's root: its data-status (set live) also gives the heading its colour.
    panel = (f'class="tp-panel" id="tp" data-events="{html.escape(events)}" data-after="{int(after)}" '
             f'data-status="{html.escape(view.status)}"')
    refresh = ""
    if refresh_s:
        tag = f'<meta http-equiv="refresh" content="{int(refresh_s)}">'
        refresh = (f"<noscript>{tag}</noscript>" if events else tag) + "\n"
    return _page(texts["title"], "\n".join(body), look, panel=panel, refresh=refresh,
                 script=STATE_SCRIPT if events else "")


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
