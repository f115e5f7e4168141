"""The owner's controls and the metrics endpoint, as Quart routes.

Under the prefix, after the same login as every request: ``_front`` sends
these paths through ``admit`` and puts the resulting passage in
``scope["trioproxy.passage"]``; only ``admit`` makes one, and it carries what of
the controls the request may reach (``_scopes.control_access``: the owner
whose token opens this server gets all of them; an admin the scopes admit,
the status only). With ``--authtype none`` they are off (403) unless
``--public-controls`` opens them to whoever reaches the server.

* ``{prefix}/_trioproxy/``        a page: the app's state, a restart button, its log live
  (owner; a navigation only, never framed);
* ``{prefix}/_trioproxy/status``  JSON: state, reason, pid, uptime, restarts, ready (owner, admins);
* ``{prefix}/_trioproxy/restart`` POST with ``X-Trioproxy-Action: restart`` and, when the
  login cookie authenticated it, ``X-Trioproxy-Xsrf: <token>`` (owner). Without subdomains
  every user's server is same-origin, so another user's page may send any header with
  ``fetch``; the anti-forgery token is an HMAC (the cookie secret) of the login's token
  digest, embedded in the control page and compared in constant time. A request
  authenticated by ``Authorization`` carries no ambient credential and needs none;
* ``{prefix}/_trioproxy/logs``    the app's last lines; ``?follow=1``: an event stream of
  them and of every new one (owner).

Outside the prefix, on the pod's port only: ``/_trioproxy/metrics`` (Prometheus text),
for users the login admits (``Authorization: token ...``), or anyone with
``--metrics-public``.
"""

from __future__ import annotations

import hashlib
import hmac
import html
import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from functools import partial
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from .. import metrics as _metrics
from .._version import __version__
from ..auth.passage import Passage
from ..child.connection import TcpTarget, UnixTarget
from ..child.supervisor import AppState, Status, Supervisor
from ..metrics import Metrics
from ..proxy.gateway import look_of
from ..rules import pages as _pages
from ..rules import scopes as _scopes
from ..settings import CONTROLS_FOLLOW_KEEPALIVE_S, VIEW_TICK_S, AuthType, Settings
from ..shutdown import Shutdown

#: Header a restart request must carry.
ACTION_HEADER = "X-Trioproxy-Action"
#: Header with the anti-forgery token a cookie-authenticated restart must carry.
XSRF_HEADER = "X-Trioproxy-Xsrf"
#: What the anti-forgery token is an HMAC of, before the login's digest.
XSRF_PURPOSE = b"trioproxy-controls-xsrf\0"

_HTML = "text/html; charset=utf-8"


def _sse(event: str, data: str) -> bytes:
    lines = "".join(f"data: {part}\n" for part in data.split("\n"))
    return f"event: {event}\n{lines}\n".encode()


def xsrf_token(secret: bytes, login_digest: bytes) -> str:
    """The anti-forgery token of one login: HMAC-SHA256 (the cookie secret) of its token's digest."""
    return hmac.new(secret, XSRF_PURPOSE + login_digest, hashlib.sha256).hexdigest()


def xsrf_ok(secret: bytes, passage: Passage, sent: str) -> bool:
    """May this restart go ahead? Cookie logins must send their token; others carry no ambient credential."""
    if passage.credential != "cookie":
        return True
    if not passage.login_digest or not sent:
        return False
    return hmac.compare_digest(xsrf_token(secret, passage.login_digest).encode(), sent.encode("latin-1", "replace"))


def _is_navigation(headers: Any) -> bool:
    """Is this a top-level page load (or no browser at all), not a script's fetch or a frame?"""
    mode = str(headers.get("Sec-Fetch-Mode", "navigate")).lower()
    dest = str(headers.get("Sec-Fetch-Dest", "document")).lower()
    return mode == "navigate" and dest == "document"


async def _first(*waits: Callable[[], Awaitable[object]]) -> None:
    """Return when the first of ``waits`` returns."""
    async with trio.open_nursery() as nursery:
        for wait in waits:

            async def run(wait: Callable[[], Awaitable[object]] = wait) -> None:
                await wait()
                nursery.cancel_scope.cancel()

            nursery.start_soon(run)


def register(
    app: QuartTrio,
    settings: Settings,
    state: AppState,
    supervisor: Supervisor,
    metrics: Metrics,
    shutdown: Shutdown,
) -> None:
    prefix = settings.proxy.prefix
    base = f"{prefix}/_trioproxy"
    open_mode = settings.hub.authtype is AuthType.NONE
    secret = settings.hub.cookie_secret
    started = time.time()
    look = look_of(settings)
    owner_look = look.for_owner()

    def access() -> _scopes.ControlAccess:
        """What of the controls this request may reach (decided at admission, see the docstring)."""
        if open_mode:
            return _scopes.OWNER if settings.hub.public_controls else _scopes.NOTHING
        passage = request.scope.get("trioproxy.passage")
        return passage.controls if isinstance(passage, Passage) else _scopes.NOTHING

    def passage_of() -> Passage:
        passage = request.scope.get("trioproxy.passage")
        # No passage (never the case past access()): as if an ambient cookie, so the XSRF check holds.
        return passage if isinstance(passage, Passage) else Passage([], b"", credential="cookie")

    def refused() -> Response:
        if open_mode:
            body = _pages.render("403: Controls off", ["This server is public (--authtype none): its owner's "
                                 "controls are off unless trioproxy runs with --public-controls."], look=look)
        else:
            body = _pages.render("403: Owner only", ["These controls belong to the server's owner."], look=look)
        return Response(body, status=403, content_type=_HTML)

    def status_model() -> dict[str, Any]:
        now = trio.current_time()
        return {
            **state.view(now).as_json(),
            "pid": supervisor.pid,
            "command": supervisor.command_shown,
            "address": _address(state),
            "app_uptime_s": round(now - supervisor.started_at, 3) if supervisor.started_at is not None else None,
            "restarts": supervisor.restarts,
            "exits": [{"at": e.at, "attempt": e.attempt, "code": e.code, "reason": e.reason}
                      for e in supervisor.history],
            "trioproxy_uptime_s": round(time.time() - started, 3),
            "trioproxy_version": __version__,
        }

    @app.route(f"{base}/status", methods=["GET"])
    async def status() -> Any:
        if access() not in (_scopes.OWNER, _scopes.STATUS):
            return refused()
        return Response(json.dumps(status_model()), content_type="application/json",
                        headers={"Cache-Control": "no-store"})

    @app.route(f"{base}/restart", methods=["POST"])
    async def restart() -> Any:
        if access() != _scopes.OWNER:
            return refused()
        if request.headers.get(ACTION_HEADER, "").lower() != "restart":
            body = _pages.render("403: Restart refused", [f"A restart request must carry '{ACTION_HEADER}: restart'."],
                                 look=owner_look)
            return Response(body, status=403, content_type=_HTML)
        if not open_mode and not xsrf_ok(secret, passage_of(), request.headers.get(XSRF_HEADER, "")):
            body = _pages.render("403: Restart refused", ["A restart with the login cookie must carry the "
                                 "anti-forgery token of the control page: use its Restart button."], look=owner_look)
            return Response(body, status=403, content_type=_HTML)
        if not supervisor.restart():
            return Response(json.dumps({"restarting": False, "reason": "shutting down"}), status=409,
                            content_type="application/json")
        return Response(json.dumps({"restarting": True}), status=202, content_type="application/json")

    @app.route(f"{base}/logs", methods=["GET"])
    async def logs() -> Any:
        if access() != _scopes.OWNER:
            return refused()
        tail = state.tail
        if request.args.get("follow") != "1":
            text = "\n".join(tail.lines()) + ("\n" if tail.count else "")
            return Response(text, content_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-store"})

        # ?after=N: the lines from N on (a page that shows the lines before N); else the last kept.
        oldest = max(0, tail.count - len(tail.lines()))
        after = request.args.get("after", "")
        start = min(max(int(after), oldest), tail.count) if after.isdigit() else oldest

        async def stream() -> AsyncIterator[bytes]:
            seq = start
            last_version = -1
            while not shutdown.requested.is_set():
                for line in tail.since(seq):
                    yield _sse("line", line)
                seq = tail.count
                if state.version != last_version:
                    last_version = state.version
                    model = status_model()
                    yield _sse("status", json.dumps(model))
                    yield _sse("view", json.dumps(_pages.view_event(state.view(trio.current_time()))))
                # While the app is not ready, the view's clocks (elapsed, next restart) tick each second.
                ticking = state.status is not Status.READY
                with trio.move_on_after(VIEW_TICK_S if ticking else CONTROLS_FOLLOW_KEEPALIVE_S) as idle:
                    await _first(partial(tail.wait_past, seq), state.changed, shutdown.requested.wait)
                if idle.cancelled_caught:
                    if ticking:
                        yield _sse("view", json.dumps(_pages.view_event(state.view(trio.current_time()))))
                    else:
                        yield b": keep-alive\n\n"

        response = Response(stream(), content_type="text/event-stream",
                            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        response.timeout = None
        return response

    @app.route(f"{base}/", methods=["GET"])
    async def page() -> Any:
        if access() != _scopes.OWNER:
            return refused()
        if not _is_navigation(request.headers):
            # The page holds the anti-forgery token: not for a script's fetch, nor a frame.
            body = _pages.render("403: Open this page directly", ["The control page opens as a page of its own."],
                                 look=owner_look)
            return Response(body, status=403, content_type=_HTML)
        passage = passage_of()
        token = xsrf_token(secret, passage.login_digest) if passage.credential == "cookie" else ""
        return Response(control_page(base, token, look), content_type=_HTML,
                        headers={"Cache-Control": "no-store", "Content-Security-Policy": control_csp(look),
                                 "X-Frame-Options": "DENY"})

    @app.route("/_trioproxy/metrics", methods=["GET"])
    async def metrics_endpoint() -> Any:
        admitted = open_mode or settings.proxy.metrics_public or request.scope.get("trioproxy.user") is not None
        if not admitted:
            body = _pages.render("403: Metrics", ["Send a JupyterHub token of a user of this server, "
                                                  "or start trioproxy with --metrics-public."], look=look)
            return Response(body, status=403, content_type=_HTML)
        metrics.app_restarts = supervisor.restarts
        text = _metrics.render(metrics, app_ready=lambda: state.status is Status.READY,
                               app_up=lambda: supervisor.pid is not None)
        return Response(text, content_type="text/plain; version=0.0.4; charset=utf-8")


def _address(state: AppState) -> str:
    """Where the app answers: ``127.0.0.1:41873`` or its socket's path ('' while not ready)."""
    address = state.address
    if isinstance(address, TcpTarget):
        return f"[{address.host}]:{address.port}" if ":" in address.host else f"{address.host}:{address.port}"
    if isinstance(address, UnixTarget):
        return address.path
    return ""


#: The control page's script: static, so its hash goes in the page's policy (no other script
#: runs). It reads ``data-base`` (the controls' URL) and ``data-xsrf`` (the login's anti-forgery
#: token) from ``#tp-controls``, talks to that base only, and sets text only (textContent).
CONTROL_SCRIPT = """
(() => {
const root = document.getElementById("tp-controls");
const base = root.dataset.base, xsrf = root.dataset.xsrf;
const $ = id => document.getElementById(id);
const log = $("log");
let up = null, upAt = 0, lastPid = null, asked = false;
function fmt(s) {
  s = Math.floor(s);
  const h = Math.floor(s / 3600), m = Math.floor(s % 3600 / 60), r = s % 60;
  return (h ? h + " h " : "") + (h || m ? m + " min " : "") + r + " s";
}
function show(s) {
  $("state").textContent = s.status;
  $("reason").textContent = s.reason || "";
  $("pid").textContent = s.pid ?? "–";
  $("address").textContent = s.address || "–";
  $("command").textContent = s.command || "–";
  $("restarts").textContent = s.restarts;
  root.dataset.status = s.status;
  up = s.app_uptime_s; upAt = Date.now();
  const rows = $("exits");
  while (rows.rows.length > 1) rows.deleteRow(1);
  for (const e of s.exits.slice().reverse()) {
    const row = rows.insertRow();
    for (const v of [new Date(e.at * 1000).toLocaleTimeString(), e.attempt, e.code ?? "–", e.reason])
      row.insertCell().textContent = v;
  }
  if (asked && s.ready && s.pid !== lastPid) { $("feedback").textContent = "restarted: pid " + s.pid; asked = false; }
  else if (asked) { $("feedback").textContent = "restarting… (" + s.status + ")"; }
}
setInterval(() => { $("up").textContent = up === null ? "–" : fmt(up + (Date.now() - upAt) / 1000); }, 1000);
const es = new EventSource(base + "/logs?follow=1");
es.addEventListener("line", e => { log.textContent += e.data + "\\n"; log.scrollTop = log.scrollHeight; });
es.addEventListener("status", e => show(JSON.parse(e.data)));
es.onerror = () => { $("feedback").textContent = "lost the connection to trioproxy; reload the page"; };
$("restart").onclick = async () => {
  lastPid = $("pid").textContent === "–" ? null : Number($("pid").textContent);
  $("feedback").textContent = "asking for a restart…";
  try {
    const r = await fetch(base + "/restart", {method: "POST", headers: {"X-Trioproxy-Action": "restart", "X-Trioproxy-Xsrf": xsrf}});
    asked = r.status === 202;
    $("feedback").textContent = asked ? "restarting…" : "refused (" + r.status + ")";
  } catch (err) { $("feedback").textContent = "the request failed: " + err; }
};
})();
"""  # noqa: E501 (the page's script, kept verbatim)
CONTROL_SCRIPT_HASH = _pages.script_hash(CONTROL_SCRIPT)

#: The control page's markup (its values are filled in by the script, as text).
_CONTROL_BODY = """<div id="tp-controls" data-base="{base}" data-xsrf="{xsrf}" data-status="">
<p>State: <b id="state">…</b> <span id="reason" class="muted"></span></p>
<table>
<tr><th>pid</th><td id="pid">–</td></tr>
<tr><th>answers on</th><td id="address">–</td></tr>
<tr><th>up</th><td id="up">–</td></tr>
<tr><th>command</th><td><code id="command">–</code></td></tr>
<tr><th>restarts</th><td id="restarts">–</td></tr>
</table>
<p><button id="restart" type="button">Restart the app</button> <span id="feedback" class="muted"></span></p>
<h2>Exits</h2>
<table id="exits"><tr><th>time</th><th>attempt</th><th>exit code</th><th>why</th></tr></table>
<h2>The app's output</h2>
<pre id="log"></pre>
</div>"""


def control_csp(look: _pages.Look) -> str:
    """The control page's policy: the pages' own, never framed at all (it holds the token)."""
    return look.csp(CONTROL_SCRIPT_HASH, frame_ancestors="'none'")


def control_page(base: str, xsrf: str = "", look: _pages.Look = _pages.PLAIN) -> bytes:
    """The owner's page; its script only talks to ``base`` (same origin); ``xsrf``: the login's
    anti-forgery token, sent with the restart. Everything it shows is set as text (textContent)."""
    body = _CONTROL_BODY.format(base=html.escape(base), xsrf=html.escape(xsrf))
    return _pages.render_html("The app: its controls", body, look=look.for_owner(), script=CONTROL_SCRIPT)
