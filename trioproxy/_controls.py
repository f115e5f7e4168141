"""The owner's controls and the metrics endpoint, as Quart routes.

Under the prefix, after the same login as every request (``_front`` checks
it and puts the user in ``scope["trioproxy.user"]``), for the server's owner
only (with ``--authtype none``: whoever reaches it):

* ``{prefix}/_trioproxy/``        a page: the app's state, a restart button, its log live;
* ``{prefix}/_trioproxy/status``  JSON: state, reason, pid, uptime, restarts, ready;
* ``{prefix}/_trioproxy/restart`` POST with ``X-Trioproxy-Action: restart`` (a header no
  other site can make a browser send, on top of the cross-site refusal of every login);
* ``{prefix}/_trioproxy/logs``    the app's last lines; ``?follow=1``: an event stream of
  them and of every new one.

Outside the prefix, on the pod's port only: ``/_trioproxy/metrics`` (Prometheus text),
for users the login admits (``Authorization: token ...``), or anyone with
``--metrics-public``.
"""

from __future__ import annotations

import json
import time
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import trio
from quart import Response, request
from quart_trio import QuartTrio

from . import _metrics, _pages
from ._child import AppState, Status, Supervisor
from ._metrics import Metrics
from ._settings import Settings
from ._shutdown import Shutdown
from ._version import __version__

#: Header a restart request must carry.
ACTION_HEADER = "X-Trioproxy-Action"
#: An idle log stream sends a comment this often, in seconds (keeps proxies from cutting it).
FOLLOW_KEEPALIVE_S = 15.0

_HTML = "text/html; charset=utf-8"


def _sse(event: str, data: str) -> bytes:
    lines = "".join(f"data: {part}\n" for part in data.split("\n"))
    return f"event: {event}\n{lines}\n".encode()


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
    open_mode = settings.hub.authtype == "none"
    started = time.time()

    def owner() -> bool:
        if open_mode:
            return True
        user = request.scope.get("trioproxy.user") or {}
        return user.get("kind", "user") == "user" and bool(user.get("name")) and user.get("name") == settings.hub.user

    def not_owner() -> Response:
        body = _pages.render("403: Owner only", ["These controls belong to the server's owner."])
        return Response(body, status=403, content_type=_HTML)

    def status_model() -> dict[str, Any]:
        now = trio.current_time()
        return {
            "status": state.status.name.lower(),
            "reason": state.reason,
            "ready": state.status is Status.READY,
            "pid": supervisor.pid,
            "app_uptime_s": round(now - supervisor.started_at, 3) if supervisor.started_at is not None else None,
            "restarts": supervisor.restarts,
            "trioproxy_uptime_s": round(time.time() - started, 3),
            "trioproxy_version": __version__,
        }

    @app.route(f"{base}/status", methods=["GET"])
    async def status() -> Any:
        if not owner():
            return not_owner()
        return Response(json.dumps(status_model()), content_type="application/json",
                        headers={"Cache-Control": "no-store"})

    @app.route(f"{base}/restart", methods=["POST"])
    async def restart() -> Any:
        if not owner():
            return not_owner()
        if request.headers.get(ACTION_HEADER, "").lower() != "restart":
            body = _pages.render("403: Restart refused", [f"A restart request must carry '{ACTION_HEADER}: restart'."])
            return Response(body, status=403, content_type=_HTML)
        if not supervisor.restart():
            return Response(json.dumps({"restarting": False, "reason": "shutting down"}), status=409,
                            content_type="application/json")
        return Response(json.dumps({"restarting": True}), status=202, content_type="application/json")

    @app.route(f"{base}/logs", methods=["GET"])
    async def logs() -> Any:
        if not owner():
            return not_owner()
        tail = state.tail
        if request.args.get("follow") != "1":
            text = "\n".join(tail.lines()) + ("\n" if tail.count else "")
            return Response(text, content_type="text/plain; charset=utf-8", headers={"Cache-Control": "no-store"})

        async def stream() -> AsyncIterator[bytes]:
            seq = max(0, tail.count - len(tail.lines()))
            last_status = None
            while not shutdown.requested.is_set():
                for line in tail.since(seq):
                    yield _sse("line", line)
                seq = tail.count
                if state.status is not last_status:
                    last_status = state.status
                    yield _sse("status", json.dumps(status_model()))
                with trio.move_on_after(FOLLOW_KEEPALIVE_S) as idle:
                    await _first(lambda: tail.wait_past(seq), state.changed, shutdown.requested.wait)
                if idle.cancelled_caught:
                    yield b": keep-alive\n\n"

        response = Response(stream(), content_type="text/event-stream",
                            headers={"Cache-Control": "no-store", "X-Accel-Buffering": "no"})
        response.timeout = None
        return response

    @app.route(f"{base}/", methods=["GET"])
    async def page() -> Any:
        if not owner():
            return not_owner()
        return Response(control_page(base), content_type=_HTML, headers={"Cache-Control": "no-store"})

    @app.route("/_trioproxy/metrics", methods=["GET"])
    async def metrics_endpoint() -> Any:
        admitted = open_mode or settings.proxy.metrics_public or request.scope.get("trioproxy.user") is not None
        if not admitted:
            body = _pages.render("403: Metrics", ["Send a JupyterHub token of a user of this server, "
                                                  "or start trioproxy with --metrics-public."])
            return Response(body, status=403, content_type=_HTML)
        metrics.app_restarts = supervisor.restarts
        text = _metrics.render(metrics, app_ready=lambda: state.status is Status.READY,
                               app_up=lambda: supervisor.pid is not None)
        return Response(text, content_type="text/plain; version=0.0.4; charset=utf-8")


def control_page(base: str) -> bytes:
    """The owner's page; its script only talks to ``base`` (same origin)."""
    script = """
<p>State: <b id="state">…</b> <span id="reason" class="muted"></span></p>
<p>pid <span id="pid">–</span>, up <span id="up">–</span> s, restarts <span id="restarts">–</span>
 <button id="restart">Restart the app</button></p>
<h2>The app's output</h2>
<pre id="log"></pre>
<script>
const base = BASE;
const log = document.getElementById("log");
function show(s) {
  document.getElementById("state").textContent = s.status;
  document.getElementById("reason").textContent = s.reason || "";
  document.getElementById("pid").textContent = s.pid ?? "–";
  document.getElementById("up").textContent = s.app_uptime_s ?? "–";
  document.getElementById("restarts").textContent = s.restarts;
}
const es = new EventSource(base + "/logs?follow=1");
es.addEventListener("line", e => { log.textContent += e.data + "\\n"; window.scrollTo(0, document.body.scrollHeight); });
es.addEventListener("status", e => show(JSON.parse(e.data)));
document.getElementById("restart").onclick = () =>
  fetch(base + "/restart", {method: "POST", headers: {"X-Trioproxy-Action": "restart"}});
</script>
""".replace("BASE", json.dumps(base))
    return _pages.render_html("trioproxy: the app", script)
