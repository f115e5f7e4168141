"""The root nursery and the shutdown order.

Nesting, outermost first: the Hub API client; the root nursery, which owns
the signal watcher, the reaper, the app's supervisor, the activity reporter
and the server (whose connection nursery holds every request, stream and
websocket bridge). Nothing is fire-and-forget.

Shutdown (SIGTERM/SIGINT, or the app failing for good), each phase logged
with its time since the signal:

1. stop accepting connections (the server closes its listeners);
2. every websocket gets close 1001 and its app side is closed; event streams
   end with their last chunk;
3. SIGTERM to the app's whole process group, and no more restarts;
4. in-flight requests drain until ``--shutdown-timeout``;
5. SIGKILL to what is left of the group, reap it and any orphans; exit.

A second signal skips the drain.
"""

from __future__ import annotations

import importlib
import logging
import os
import signal
from typing import Any

import trio

from .hub import activity as _activity

from .hub import api as _hub_api

from .child import reaper as _reaper
from .hub.activity import ActivityTracker
from .child.output import LogTail
from .proxy.gateway import Gateway
from .auth.passage import Authenticator, NoAuth
from .hub.api import HubAPI
from .ops.lazyapp import LazyApp
from .metrics import Metrics
from .child.supervisor import AppFailed, AppState, Status, Supervisor
from .rules.routing import Router
from .server.serve import ServerError, serve
from .settings import WEB_WARM_DELAY_S, Settings
from .shutdown import Shutdown
from .child.connection import Pool
from ._version import __version__

logger = logging.getLogger(__name__)

#: What serving needs beyond this module's imports, loaded by :func:`_preload` while the app
#: starts: the front (websockets: trio-websocket), the OAuth flow (authlib, cryptography) and
#: hypercorn with trioproxy's adjustments (what ``_server.serve`` imports).
STACK_MODULES = (
    "trioproxy.front.front",
    "trioproxy.auth.oauth",
    "hypercorn.config",
    "hypercorn.trio.lifespan",
    "hypercorn.trio.worker_context",
    "hypercorn.utils",
    "trioproxy.server.ws_stream",
    "trioproxy.server.accept",
    "trioproxy.server.tcp",
)
#: What the Quart-Trio app imports, loaded in a worker thread by :func:`_warm_web`.
WEB_MODULES = ("quart", "quart_trio", "trioproxy.ops.web", "trioproxy.ops.controls")

#: Exit codes.
EXIT_OK = 0
EXIT_APP_FAILED = 1
EXIT_SERVER_FAILED = 3


def run_main(settings: Settings) -> int:
    """Run trioproxy to completion; return the process exit code."""
    return trio.run(run, settings)


async def run(settings: Settings) -> int:
    shutdown = Shutdown()
    state = AppState(LogTail(settings.child.log_tail_lines))
    metrics = Metrics()
    pool = Pool(settings.proxy.pool_idle_max)
    tracker = ActivityTracker()
    gateway = Gateway(settings.proxy, state, pool, tracker, metrics=metrics, owner=settings.hub.user,
                      own_cookie=settings.hub.cookie_name,
                      logs_for_all=settings.hub.authtype == "none" and settings.hub.public_controls)
    supervisor = Supervisor(settings.child, state, on_ready=pool.reset)
    budget = settings.server.shutdown_timeout_s
    subreaper = _reaper.become_subreaper()
    _warn_unimplemented(settings)
    if os.getpid() == 1:
        logger.info("running as PID 1: handling signals and reaping orphans")

    try:
        opened = _hub_api.open_hub(settings.hub)
    except _hub_api.HubSetupError as exc:
        logger.error("%s", exc)
        return EXIT_SERVER_FAILED
    server_error: ServerError | None = None
    async with opened as hub:
        try:
            async with trio.open_nursery() as root:
                app_done, server_done = trio.Event(), trio.Event()
                if settings.hub.api_token:
                    root.start_soon(hub.learn_version)
                root.start_soon(_watch_signals, shutdown, budget)
                if subreaper or os.getpid() == 1:
                    root.start_soon(_reaper.reap_forever, lambda: supervisor.pid)
                await root.start(_supervise, supervisor, shutdown, budget, app_done)
                # The app is starting now. Load the serving stack in a worker thread meanwhile
                # (the loop keeps pumping the app's output): start-up overlaps instead of adding up.
                await trio.to_thread.run_sync(_preload, STACK_MODULES)
                front, web = _make_front(settings, hub, gateway, metrics, state, supervisor, shutdown)
                root.start_soon(_activity.report_activity, tracker, settings.activity, settings.hub, hub, metrics)
                urls = await root.start(_serve, front, settings, shutdown, server_done)
                root.start_soon(_warm_web, web, state)
                root.start_soon(gateway.keepalive.run)
                logger.info(
                    "trioproxy %s listening on %s, prefix %s, auth %s",
                    __version__, ", ".join(urls), settings.proxy.prefix + "/", settings.hub.authtype,
                )
                await shutdown.requested.wait()
                logger.info("shutdown: %s", shutdown.reason)
                n = gateway.long_lived.go_away()
                logger.info("shutdown: closing %d websocket(s) and event stream(s) (+%.0f ms)", n, shutdown.elapsed_ms())
                supervisor.stop(shutdown.deadline)
                logger.info("shutdown: SIGTERM sent to the app's process group (+%.0f ms)", shutdown.elapsed_ms())
                # Drain: until requests and the app are done, or the deadline (a second signal moves it).
                with trio.CancelScope() as drain:
                    shutdown.drain_scope(drain)
                    await app_done.wait()
                    await server_done.wait()
                supervisor.kill()
                logger.info("shutdown: SIGKILL sent to what is left of the app (+%.0f ms)", shutdown.elapsed_ms())
                root.cancel_scope.cancel()
        except* ServerError as group:
            server_error = group.exceptions[0]  # type: ignore[assignment]
        finally:
            with trio.CancelScope(shield=True):
                supervisor.kill()
                killed = await _reaper.kill_descendants(lambda: None)
                if killed:
                    logger.info("shutdown: killed %d leftover process(es)", killed)
    if server_error is not None:
        logger.error("%s", server_error)
        return EXIT_SERVER_FAILED
    logger.info("shutdown: done, exit code %d (+%.0f ms)", shutdown.exit_code, shutdown.elapsed_ms())
    return shutdown.exit_code


def _preload(modules: tuple[str, ...]) -> None:
    for name in modules:
        importlib.import_module(name)


def _make_front(
    settings: Settings,
    hub: HubAPI,
    gateway: Gateway,
    metrics: Metrics,
    state: AppState,
    supervisor: Supervisor,
    shutdown: Shutdown,
) -> tuple[Any, LazyApp]:
    """The ASGI app hypercorn serves, and the (lazily built) Quart-Trio app behind it."""
    from .front.front import Front  # noqa: PLC0415 (loaded by _preload, while the app starts)

    auth = _authenticator(settings, hub, gateway, metrics)

    def build_web() -> Any:
        from .ops import controls as _controls  # noqa: PLC0415
        from .ops import web as _web  # noqa: PLC0415(Quart: see _lazyapp)

        app = _web.make_app(settings, auth, state)
        _controls.register(app, settings, state, supervisor, metrics, shutdown)
        return app

    web = LazyApp(build_web, modules=WEB_MODULES)
    front = Front(
        gateway,
        auth,
        web,
        Router.for_prefix(settings.proxy.prefix, keep_prefix=settings.proxy.keep_prefix),
        hub_version=lambda: hub.version,
        hold_probe_s=settings.hub.ready_timeout_s,
        metrics_login=lambda scope: _wants_metrics_login(settings, scope),
        max_header_bytes=settings.server.max_header_bytes,
    )
    return front, web


def _wants_metrics_login(settings: Settings, scope: dict) -> bool:
    """A metrics request that brings a token to check (not needed when metrics are public)."""
    if settings.proxy.metrics_public or settings.hub.authtype == "none":
        return False
    return any(name == b"authorization" for name, _ in scope["headers"])


def _authenticator(settings: Settings, hub: HubAPI, gateway: Gateway, metrics: Metrics) -> Authenticator:
    if settings.hub.authtype == "none":
        return NoAuth()
    h = settings.hub
    missing = [name for name, value in (("JUPYTERHUB_API_TOKEN", h.api_token), ("JUPYTERHUB_CLIENT_ID", h.client_id))
               if not value]
    if missing:
        logger.warning("--authtype oauth without %s: logins will fail at the Hub", " and ".join(missing))
    if h.cookie_secret_source == "random":
        logger.info("login cookies are sealed with a random secret: users log in again after a restart "
                    "(--cookie-secret-file keeps them)")
    else:
        logger.info("login cookies are sealed with the secret from %s", h.cookie_secret_source)
    from .auth.oauth import HubOAuth  # noqa: PLC0415 (loaded by _preload)

    return HubOAuth(h, settings.proxy, hub, app_uses_xsrf=lambda: gateway.app_uses_xsrf, metrics=metrics)


def _warn_unimplemented(settings: Settings) -> None:
    """Options accepted for compatibility that do nothing yet say so, once, at start."""
    if (settings.proxy.forward_user_info or settings.proxy.query_user_info) and settings.hub.authtype == "none":
        logger.warning("--forward-user-info/--query-user-info send nothing with --authtype none (no user is known)")


async def _supervise(
    supervisor: Supervisor,
    shutdown: Shutdown,
    budget: float,
    done: trio.Event,
    *,
    task_status: trio.TaskStatus[None],
) -> None:
    try:
        await supervisor.run(task_status=task_status)
    except AppFailed as exc:
        logger.error("giving up: %s", exc)
        shutdown.request(str(exc), exit_code=EXIT_APP_FAILED, budget_s=budget)
    finally:
        done.set()


async def _serve(
    front: Any, settings: Settings, shutdown: Shutdown, done: trio.Event, *, task_status: trio.TaskStatus[list[str]]
) -> None:
    try:
        await serve(front, settings.server, shutdown, task_status=task_status)
    finally:
        done.set()


async def _warm_web(web: LazyApp, state: AppState) -> None:
    """Build the Quart-Trio app a moment after the app is first ready (if no request has yet)."""
    while state.status is not Status.READY:
        await state.changed()
    await trio.sleep(WEB_WARM_DELAY_S)
    await web.warm()


async def _watch_signals(shutdown: Shutdown, budget: float) -> None:
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async for signum in signals:
            name = signal.Signals(signum).name
            if not shutdown.request(f"received {name}", budget_s=budget):
                logger.info("shutdown: second signal (%s): skipping the drain", name)
                shutdown.hurry()


