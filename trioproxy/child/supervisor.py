"""The app as a child process: start, readiness, log pumps, restart with backoff, stop.

Each incarnation runs in its own process group (``start_new_session``), so a
signal reaches the app and everything it forked. Its pipes are pumped from the
first byte. It counts as ready once a probe of ``--ready-check-path`` gets any
HTTP answer. When it exits on its own it is restarted after a backoff that
doubles up to a cap; after ``--max-restarts`` consecutive failures
:class:`AppFailed` ends trioproxy, so the Spawner sees the server as stopped.

Before the first start, a :class:`~._bootstrap.Bootstrap` clones or updates
``--repo`` (the app then runs in that folder: its ``cwd``, never trioproxy's
own ``chdir``) and activates ``--conda-env`` (the app gets that environment).
If that fails the app is not started; the state says why and trioproxy stays up.

Shutdown (driven by ``_run``): :meth:`Supervisor.stop` sends SIGTERM to the
group and forbids restarts; :meth:`Supervisor.kill` sends SIGKILL to the
group; the supervising task reaps the leader and returns.

If trioproxy dies without that (SIGKILL, the OOM killer), the process guard
(``_guard``), started once by :meth:`Supervisor.run`, takes the app's group down.
"""

from __future__ import annotations

import enum
import logging
import shlex
import signal
import socket
import subprocess
from collections.abc import Callable

import trio

from ..errors import AppFailed as AppFailed  # raised here; defined with the others
from ..errors import TemplateError
from ..rules import template as _template
from ..settings import (
    APP_GROUP_POLL_S,
    PROBE_INTERVAL_FIRST_S,
    PROBE_INTERVAL_GROWTH,
    PROBE_INTERVAL_MAX_S,
    ChildSettings,
)
from . import connection as _upstream
from . import guard as _guard
from . import reaper as _reaper
from .bootstrap import Bootstrap, Launch
from .groups import group_alive, signal_group
from .output import LogTail, pump

logger = logging.getLogger(__name__)



class Status(enum.Enum):
    WAITING = "waiting for the first request"  # {origin_host} not known yet
    STARTING = "starting"
    READY = "ready"
    DOWN = "down"
    STOPPING = "stopping"


class AppState:
    """What requests need to know about the app. Changed only by the supervisor."""

    def __init__(self, tail: LogTail) -> None:
        self.status = Status.STARTING
        self.reason = ""
        self.address: tuple[str, int] | None = None
        self.tail = tail
        self.origin_host: str | None = None
        self.origin_known = trio.Event()
        self._changed = trio.Event()

    def set(self, status: Status, reason: str = "", address: tuple[str, int] | None = None) -> None:
        self.status, self.reason, self.address = status, reason, address
        self._changed.set()
        self._changed = trio.Event()

    async def changed(self) -> None:
        """Return at the next change of state."""
        await self._changed.wait()

    def offer_origin_host(self, host: str) -> None:
        """The first request's Host starts a lazy ({origin_host}) app."""
        if self.origin_host is None:
            self.origin_host = host
            self.origin_known.set()

    async def wait_settled(self, timeout_s: float) -> Status:
        """Wait (bounded) while the app is starting; return the status then."""
        with trio.move_on_after(timeout_s):
            while self.status in (Status.STARTING, Status.WAITING):
                await self._changed.wait()
        return self.status


def _free_port() -> int:
    # Bind-then-close leaves a short race with other programs; the app reports
    # a bind failure on stderr and the restart takes a new port.
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _describe_exit(code: int | None) -> str:
    if code is None:
        return "is still running"
    if code < 0:
        try:
            return f"was killed by {signal.Signals(-code).name}"
        except ValueError:
            return f"was killed by signal {-code}"
    return f"exited with code {code}"


class Supervisor:
    """Owns the app's processes. Run :meth:`run` in the root nursery."""

    def __init__(
        self,
        settings: ChildSettings,
        state: AppState,
        *,
        on_ready: Callable[[tuple[str, int] | None], None] | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self._on_ready = on_ready or (lambda address: None)
        self._stopping = False
        self._wake = trio.Event()
        self._proc: trio.Process | None = None
        self._fixed_port = settings.destport or None
        self._deadline = float("inf")
        self._bootstrap = Bootstrap(
            settings,
            state.tail,
            starting=lambda reason: state.set(Status.STARTING, reason),
            failed=lambda reason: state.set(Status.DOWN, f"was not started: {reason}"),
        )
        self._bootstrap_scope = trio.CancelScope()
        self._launch = Launch(cwd=None, env=settings.env)
        self._restart_requested = False
        #: Restarts so far (crashes and owner's requests), and when the current app started (trio time).
        self.restarts = 0
        self.started_at: float | None = None

    # -- control, called from _run ------------------------------------------------

    @property
    def pid(self) -> int | None:
        """The app's pid; before its first start, that of the running git or conda command.

        The reaper leaves this process to trio, which reaps it and reads its exit status.
        """
        return self._proc.pid if self._proc is not None else self._bootstrap.pid

    def stop(self, deadline: float) -> None:
        """No more restarts; SIGTERM to the app's process group, SIGKILL at ``deadline`` (trio time)."""
        self._stopping = True
        self._deadline = deadline
        self._wake.set()
        self._bootstrap_scope.cancel()  # kills a running git or conda command
        self.state.set(Status.STOPPING, "trioproxy is shutting down")
        if self._proc is not None and self._proc.returncode is None:
            signal_group(self._proc.pid, signal.SIGTERM)

    def restart(self) -> bool:
        """The owner's restart: stop the app (gracefully) and start it again at once,
        without counting a failure; during a failed bootstrap, try it again. False while stopping."""
        if self._stopping:
            return False
        logger.info("restart requested")
        self._restart_requested = True
        self._bootstrap.try_again()
        if self._proc is not None and self._proc.returncode is None:
            signal_group(self._proc.pid, signal.SIGTERM)
        self._wake.set()
        return True

    def kill(self) -> None:
        """SIGKILL to the app's process group (the leader may already be gone)."""
        if self._proc is not None:
            signal_group(self._proc.pid, signal.SIGKILL)

    # -- the supervising task -------------------------------------------------------

    async def run(self, *, task_status: trio.TaskStatus[None] = trio.TASK_STATUS_IGNORED) -> None:
        """Start the app and keep it running until :meth:`stop`.

        "Started" means supervising: the app may still be starting (see
        :attr:`AppState.status`); the server answers meanwhile.

        Raises:
            AppFailed: after ``max_restarts`` consecutive failed starts.
        """
        s = self.settings
        if s.lazy:
            self.state.set(Status.WAITING)
        task_status.started()
        # Every process group started from here on (git, conda, the app) is taken down by the
        # guard if trioproxy dies; the guard ends after the last of them was reaped.
        async with _guard.guarding(s):
            await self._run()

    async def _run(self) -> None:
        s = self.settings
        if self._bootstrap.needed:
            with self._bootstrap_scope:
                self._launch = await self._bootstrap.run()
            if self._stopping:
                return
            if s.lazy and self.state.origin_host is None:
                self.state.set(Status.WAITING)
        if s.lazy:
            await self.state.origin_known.wait()
        failures = 0
        backoff = s.backoff_first_s
        while not self._stopping:
            self._restart_requested = False
            ready_for = await self._one_incarnation()
            if self._stopping:
                break
            self.restarts += 1
            if self._restart_requested:
                self._wake = trio.Event()
                failures, backoff = 0, s.backoff_first_s
                continue
            if ready_for is not None and ready_for >= s.reset_after_s:
                failures, backoff = 0, s.backoff_first_s
            failures += 1
            if failures > s.max_restarts:
                raise AppFailed(f"the app failed {failures} times in a row; last: it {self.state.reason}")
            logger.warning(
                "restarting the app in %.1f s (failure %d; giving up after %d)", backoff, failures, s.max_restarts + 1
            )
            with trio.move_on_after(backoff):
                await self._wake.wait()
            if self._stopping:
                break
            if self._restart_requested:  # the owner asked during the backoff: start afresh
                failures, backoff = 0, s.backoff_first_s
            else:
                backoff = min(backoff * 2, s.backoff_max_s)
            self._wake = trio.Event()

    async def _one_incarnation(self) -> float | None:
        """Run the app once, until it exits. Return how long it was ready (None: never)."""
        s = self.settings
        try:
            port = self._fixed_port or _free_port()
        except OSError as exc:  # out of descriptors (EMFILE): a failed start, retried with backoff
            self.state.set(Status.DOWN, f"could not be started: no port for it ({exc.strerror or exc})")
            logger.error("could not start the app: no free port: %s", exc)
            return None
        values = s.template_values(port, self.state.origin_host or "")
        try:
            argv = _template.render(s.command, values)
        except TemplateError as exc:
            self.state.set(Status.DOWN, str(exc))
            return None
        logger.info("starting the app on port %d: %s", port, _shown(argv))
        self.state.set(Status.STARTING, "the app is starting")
        self.started_at = trio.current_time()
        try:
            proc = await _reaper.open_process(
                argv,
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE,
                env=dict(self._launch.env),
                cwd=self._launch.cwd,
                start_new_session=True,
            )
        except OSError as exc:
            self.state.set(Status.DOWN, f"could not be started: {exc}")
            logger.error("could not start the app: %s", exc)
            return None
        self._proc = proc
        ready_at: float | None = None
        not_ready = False
        async with trio.open_nursery() as pumps:
            assert proc.stdout is not None and proc.stderr is not None
            pumps.start_soon(self._pump, proc.stdout, "stdout", logging.INFO)
            pumps.start_soon(self._pump, proc.stderr, "stderr", logging.WARNING)
            try:
                address = await self._wait_ready(proc, port)
                if address is not None:
                    ready_at = trio.current_time()
                    self.state.set(Status.READY, "", address)
                    self._on_ready(address)
                    logger.info("the app is ready at http://%s:%d", *_bracket(address))
                elif proc.poll() is None and not self._stopping:
                    not_ready = True
                    self.state.set(
                        Status.DOWN, f"did not answer on {s.ready_check_path} within {s.ready_timeout_s:g} s"
                    )
                    logger.error("the app %s; stopping it", self.state.reason)
                    return None
                await proc.wait()
            finally:
                self._on_ready(None)
                with trio.CancelScope(shield=True):
                    await self._terminate(proc)
                # Reaped and its group killed: never signal that pgid again (pids are reused).
                self._proc = None
                _reaper.forget(proc.pid)
                # Pipes held open by an escaped grandchild must not hold us up.
                pumps.cancel_scope.deadline = trio.current_time() + s.pump_drain_s
                if not self._stopping and not not_ready:
                    self.state.set(Status.DOWN, _describe_exit(proc.returncode))
                    logger.error("the app %s", self.state.reason)
        return None if ready_at is None else trio.current_time() - ready_at

    async def _pump(self, stream: trio.abc.ReceiveStream, name: str, level: int) -> None:
        s = self.settings
        await pump(
            stream, name=name, level=level, tail=self.state.tail, echo=s.logs, max_line_bytes=s.log_line_max_bytes
        )

    async def _wait_ready(self, proc: trio.Process, port: int) -> tuple[str, int] | None:
        s = self.settings
        hosts = ["127.0.0.1"] if s.ipv4_only else ["127.0.0.1", "::1"]
        interval = PROBE_INTERVAL_FIRST_S
        with trio.move_on_after(s.ready_timeout_s):
            while proc.poll() is None and not self._stopping:
                host = await _upstream.probe(hosts, port, s.ready_check_path, s.probe_timeout_s)
                if host is not None:
                    return host, port
                await trio.sleep(interval)
                interval = min(interval * PROBE_INTERVAL_GROWTH, PROBE_INTERVAL_MAX_S)
        return None

    async def _terminate(self, proc: trio.Process) -> None:
        """SIGTERM the group; wait for it to empty until a deadline; SIGKILL the group; reap.

        Bounded: the deadline is the shutdown deadline when stopping, else
        ``stop_grace_s`` from now; after SIGKILL the leader's wait is prompt.
        """
        pgid = proc.pid
        signal_group(pgid, signal.SIGTERM)
        deadline = self._deadline if self._stopping else trio.current_time() + self.settings.stop_grace_s
        with trio.move_on_at(deadline):
            await proc.wait()
            while group_alive(pgid):  # noqa: ASYNC110 (no event tells that a process group emptied: poll)
                await trio.sleep(APP_GROUP_POLL_S)
        signal_group(pgid, signal.SIGKILL)
        await proc.wait()


def _bracket(address: tuple[str, int]) -> tuple[str, int]:
    host, port = address
    return (f"[{host}]" if ":" in host else host), port


def _shown(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)
