"""The root nursery, the shutdown order, and the two ways to run it.

* :func:`serving` runs trioproxy inside the caller's trio loop (tests, or a
  program that embeds it): settings in, a started :class:`Running` out
  (ready to accept), everything torn down, bounded, when the block is left
  or cancelled. It changes nothing process-wide: no signal handler, no
  sweep of the process's children, no prctl.
* :func:`run` is the command line's: :func:`serving`'s root plus what belongs
  to the whole process (``cli.main`` made it a subreaper): SIGTERM/SIGINT ask
  for shutdown, orphans are reaped meanwhile and every child left is killed
  at the end; it returns the exit code.

Nesting, outermost first: the Hub API client; the root nursery, which owns
the reaper, the app's supervisor, the activity reporter and the server
(whose connection nursery holds every request, stream and websocket
bridge). Nothing is fire-and-forget. The shutdown order is
:func:`shut_down`, whole.
"""

from __future__ import annotations

import contextlib
import functools
import importlib
import logging
import os
import signal
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import trio

from ._version import __version__
from .auth.passage import Authenticator, NoAuth
from .child import reaper as _reaper
from .child.connection import Pool
from .child.output import LogTail
from .child.supervisor import AppState, Status, Supervisor
from .errors import AppFailed, HubSetupError, ServerError
from .hub import activity as _activity
from .hub import api as _hub_api
from .hub.activity import ActivityTracker
from .hub.api import HubAPI
from .metrics import Metrics
from .ops.lazyapp import LazyApp
from .proxy.gateway import Gateway, look_of
from .rules.routing import Router
from .server.serve import Listening, serve
from .settings import WEB_WARM_DELAY_S, AuthType, Settings
from .shutdown import Shutdown

logger = logging.getLogger("trioproxy.run")

#: What serving needs beyond this module's imports, loaded by :func:`_preload` while the app
#: starts: the front (and the websocket relay), the OAuth flow (authlib, cryptography) and
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
WEB_MODULES = ("quart", "quart_trio", "trioproxy.ops.web", "trioproxy.ops.controls", "trioproxy.ops.echo")

#: Exit codes.
EXIT_OK = 0
EXIT_APP_FAILED = 1
EXIT_SERVER_FAILED = 3


def run_main(settings: Settings, *, reap_orphans: bool = False) -> int:
    """Run trioproxy to completion as this process's program; return the exit code."""
    return trio.run(functools.partial(run, settings, reap_orphans=reap_orphans))


@dataclass
class Parts:
    """What one run is made of, built before anything starts (no I/O)."""

    settings: Settings
    shutdown: Shutdown
    state: AppState
    metrics: Metrics
    pool: Pool
    tracker: ActivityTracker
    gateway: Gateway
    supervisor: Supervisor
    #: What this run started (no other run in the process sees it).
    reaper: _reaper.Reaper

    @classmethod
    def build(cls, settings: Settings) -> Parts:
        state = AppState(LogTail(settings.child.log_tail_lines))
        metrics = Metrics()
        pool = Pool(settings.proxy.pool_idle_max)
        tracker = ActivityTracker()
        gateway = Gateway(settings.proxy, state, pool, tracker, metrics=metrics,
                          own_cookie=settings.hub.cookie_name,
                          look=look_of(settings),
                          logs_for_all=settings.hub.authtype is AuthType.NONE and settings.hub.public_controls)
        supervisor = Supervisor(settings.child, state, on_ready=pool.reset)
        return cls(settings, Shutdown(), state, metrics, pool, tracker, gateway, supervisor, _reaper.Reaper())


@dataclass
class Running:
    """A started trioproxy, ready to accept connections."""

    parts: Parts
    #: The bound URLs (``http://127.0.0.1:8888``) and ports.
    urls: list[str]
    ports: list[int]

    @property
    def state(self) -> AppState:
        """The app's state (status, reason, output tail)."""
        return self.parts.state

    @property
    def shutdown(self) -> Shutdown:
        return self.parts.shutdown

    @property
    def exit_code(self) -> int:
        """What the command line would exit with (meaningful once the run ended)."""
        return self.parts.shutdown.exit_code

    def request_shutdown(self, reason: str = "asked to stop", *, hurry: bool = False) -> bool:
        """Start the shutdown order, as SIGTERM does (``hurry``: as a second one, no drain).
        True if this call started it."""
        started = self.parts.shutdown.request(reason, budget_s=self.parts.settings.server.shutdown_timeout_s)
        if hurry:
            self.parts.shutdown.hurry()
        return started


@contextlib.asynccontextmanager
async def serving(settings: Settings) -> AsyncIterator[Running]:
    """Run trioproxy in this trio loop; yield once it accepts connections.

    Leaving the block runs the shutdown order (:func:`shut_down`, bounded by
    ``settings.server.shutdown_timeout_s``); cancelling it, or an error in it,
    tears everything down at once (the app's process group is killed and
    reaped, every connection and websocket bridge cancelled).

    Raises (in an exception group, as from any nursery):
        ServerError: the server could not listen.
        HubSetupError: the Hub API client could not be set up.
    """
    async with trio.open_nursery() as nursery:
        running: Running = await nursery.start(_own_run, Parts.build(settings))
        try:
            yield running
        except BaseException:
            # Cancelled or failed: no drain. The app's group goes at once (stop() with the deadline
            # now: SIGTERM, then SIGKILL), without being taken for a crash.
            running.parts.supervisor.stop(trio.current_time())
            raise
        finally:
            running.request_shutdown("the in-process run was left")


async def _own_run(parts: Parts, *, task_status: trio.TaskStatus[Running]) -> None:
    _reaper.own(parts.reaper)  # this task's, and its children's: no other run sees it
    await _root(parts, task_status=task_status)


async def run(settings: Settings, *, reap_orphans: bool = False) -> int:
    """trioproxy as a whole process's program (the command line's); return the exit code.

    SIGTERM/SIGINT ask for shutdown (a second one skips the drain). With
    ``reap_orphans`` (the process is a subreaper, or PID 1) orphaned
    descendants are reaped as they exit. At the end every child left is killed.
    """
    parts = Parts.build(settings)
    _reaper.own(parts.reaper)
    budget = settings.server.shutdown_timeout_s
    if os.getpid() == 1:
        logger.info("running as PID 1: handling signals and reaping orphans")
    failure: BaseException | None = None
    try:
        async with trio.open_nursery() as process:
            process.start_soon(_watch_signals, parts.shutdown, budget)
            if reap_orphans:
                process.start_soon(_reaper.reap_forever, lambda: parts.supervisor.pid)
            await _root(parts)
            process.cancel_scope.cancel()
    except* (ServerError, HubSetupError) as group:
        failure = _first_leaf(group)
    finally:
        with trio.CancelScope(shield=True):
            killed = await _reaper.kill_descendants(lambda: None)
            if killed:
                logger.info("shutdown: killed %d leftover process(es)", killed)
    if failure is not None:
        logger.error("%s", failure)
        return EXIT_SERVER_FAILED
    logger.info("shutdown: done, exit code %d (+%.0f ms)", parts.shutdown.exit_code, parts.shutdown.elapsed_ms())
    return parts.shutdown.exit_code


async def _root(parts: Parts, *, task_status: trio.TaskStatus[Running] = trio.TASK_STATUS_IGNORED) -> None:
    """The root nursery: start everything; once shutdown is requested, run :func:`shut_down`."""
    settings, shutdown, supervisor = parts.settings, parts.shutdown, parts.supervisor
    budget = settings.server.shutdown_timeout_s
    _warn_unimplemented(settings)
    opened = _hub_api.open_hub(settings.hub)
    async with opened as hub:
        try:
            async with trio.open_nursery() as root:
                app_done, server_done = trio.Event(), trio.Event()
                if settings.hub.api_token:
                    root.start_soon(hub.learn_version)
                await root.start(_supervise, supervisor, shutdown, budget, app_done)
                # The app is starting now. Load the serving stack in a worker thread meanwhile
                # (the loop keeps pumping the app's output): start-up overlaps instead of adding up.
                await trio.to_thread.run_sync(_preload, STACK_MODULES)
                front, web = _make_front(settings, hub, parts.gateway, parts.metrics, parts.state, supervisor, shutdown)
                root.start_soon(_activity.report_activity, parts.tracker, settings.activity, settings.hub, hub,
                                parts.metrics)
                server: Listening = await root.start(_serve, front, settings, shutdown, server_done)
                root.start_soon(_warm_web, web, parts.state)
                root.start_soon(parts.gateway.keepalive.run)
                logger.info(
                    "trioproxy %s listening on %s, prefix %s, auth %s",
                    __version__, ", ".join(server.urls), settings.proxy.prefix + "/", settings.hub.authtype,
                )
                task_status.started(Running(parts, server.urls, server.ports))
                await shutdown.requested.wait()
                await shut_down(shutdown, server, parts.gateway, supervisor, app_done, server_done)
                root.cancel_scope.cancel()
        finally:
            supervisor.kill()  # cancelled or failed: the app's group goes at once


async def shut_down(
    shutdown: Shutdown,
    server: Listening,
    gateway: Gateway,
    supervisor: Supervisor,
    app_done: trio.Event,
    server_done: trio.Event,
) -> None:
    """The shutdown order (SIGTERM/SIGINT, the app failing for good, an in-process
    run left), each phase logged with its time since the request:

    1. stop accepting connections: the listeners close (no connection waits in
       a backlog), and so do idle keep-alive connections;
    2. every websocket gets close 1001 and its app side is closed; event
       streams end with their last chunk;
    3. SIGTERM to the app's whole process group, and no more restarts;
    4. in-flight requests and the app drain until the deadline
       (``--shutdown-timeout`` after the request; a second signal makes it now),
       then every connection socket is closed, even one blocked in a send;
    5. SIGKILL to what is left of the app's group.

    The caller then cancels what is left (the root nursery) and, as a process,
    kills and reaps any orphan.
    """
    logger.info("shutdown: %s", shutdown.reason)
    await server.stop_accepting()
    n = gateway.long_lived.go_away()
    logger.info("shutdown: closing %d websocket(s) and event stream(s) (+%.0f ms)", n, shutdown.elapsed_ms())
    supervisor.stop(shutdown.deadline)
    logger.info("shutdown: SIGTERM sent to the app's process group (+%.0f ms)", shutdown.elapsed_ms())
    server.drain()
    with trio.CancelScope() as drain:
        shutdown.drain_scope(drain)
        await app_done.wait()
        await server_done.wait()
    supervisor.kill()
    logger.info("shutdown: SIGKILL sent to what is left of the app (+%.0f ms)", shutdown.elapsed_ms())


def _first_leaf(exc: BaseException) -> BaseException:
    """The first error of a (nested) exception group."""
    while isinstance(exc, BaseExceptionGroup):
        exc = exc.exceptions[0]
    return exc


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
        from .ops import controls as _controls  # noqa: PLC0415 (Quart: see _lazyapp)
        from .ops import echo as _echo  # noqa: PLC0415 (Quart: see _lazyapp)
        from .ops import web as _web  # noqa: PLC0415 (Quart: see _lazyapp)

        app = _web.make_app(settings, auth, state)
        _controls.register(app, settings, state, supervisor, metrics, shutdown)
        _echo.register(app, settings, shutdown)
        return app

    web = LazyApp(build_web, modules=WEB_MODULES)
    front = Front(
        gateway,
        auth,
        web,
        Router.for_prefix(settings.proxy.prefix, keep_prefix=settings.proxy.keep_prefix,
                          default_url=settings.proxy.default_url),
        hub_version=lambda: hub.version,
        hold_probe_s=settings.hub.ready_timeout_s,
        metrics_login=lambda scope: _wants_metrics_login(settings, scope),
        max_header_bytes=settings.server.max_header_bytes,
        access_log=settings.access_log,
    )
    return front, web


def _wants_metrics_login(settings: Settings, scope: dict[str, Any]) -> bool:
    """A metrics request that brings a token to check (not needed when metrics are public)."""
    if settings.proxy.metrics_public or settings.hub.authtype is AuthType.NONE:
        return False
    return any(name == b"authorization" for name, _ in scope["headers"])


def _authenticator(settings: Settings, hub: HubAPI, gateway: Gateway, metrics: Metrics) -> Authenticator:
    if settings.hub.authtype is AuthType.NONE:
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
    if (settings.proxy.forward_user_info or settings.proxy.query_user_info) and settings.hub.authtype is AuthType.NONE:
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
        shutdown.request(str(exc), exit_code=exc.exit_code or EXIT_APP_FAILED, budget_s=budget)
    finally:
        done.set()


async def _serve(
    front: Any, settings: Settings, shutdown: Shutdown, done: trio.Event, *, task_status: trio.TaskStatus[Listening]
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


