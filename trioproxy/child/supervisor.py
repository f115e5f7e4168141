"""The app as a child process: start, readiness, log pumps, restart with backoff, stop.

Each incarnation runs in its own process group (``start_new_session``), so a
signal reaches the app and everything it forked. Its pipes are pumped from the
first byte. It counts as ready once a probe of ``--ready-check-path`` gets any
HTTP answer. When it exits on its own it is restarted after a backoff that
doubles up to a cap; after ``--max-restarts`` consecutive failures
:class:`AppFailed` ends trioproxy, so the Spawner sees the server as stopped.

Where the app is reached (``ChildSettings.reach``, one :data:`~.connection.Target`
per incarnation in :attr:`AppState.address`): on ``{port}`` (or ``--destport``),
probed on loopback; on ``{unix_socket}``, a socket in a private directory
(``socketdir``) made for the supervisor's lifetime, the last run's socket removed
before each start; or, for a command with neither, on the port its process group
is found listening on (``procfs``), the lowest that answers HTTP.

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
import os
import re
import shlex
import signal
import socket
import subprocess
import time
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import trio

from ..errors import AppFailed as AppFailed  # raised here; defined with the others
from ..errors import TemplateError
from ..rules import template as _template
from ..rules.pages import AppView
from ..settings import (
    APP_GROUP_POLL_S,
    PROBE_INTERVAL_FIRST_S,
    PROBE_INTERVAL_GROWTH,
    PROBE_INTERVAL_MAX_S,
    RESTART_HISTORY,
    ChildSettings,
    Reach,
)
from . import connection as _upstream
from . import guard as _guard
from . import procfs as _procfs
from . import progress as _progress
from . import reaper as _reaper
from . import socketdir as _socketdir
from .bootstrap import Bootstrap, Launch
from .commands import EXIT_USAGE, not_startable
from .connection import Target, TcpTarget, UnixTarget
from .groups import group_alive, signal_group
from .output import LogTail, pump

logger = logging.getLogger("trioproxy.child")



class Status(enum.Enum):
    WAITING = "waiting for the first request"  # {origin_host} not known yet
    STARTING = "starting"
    READY = "ready"
    DOWN = "down"
    #: trioproxy gave up on the app (--max-restarts); it exits soon.
    FAILED = "gave up"
    STOPPING = "stopping"


@dataclass
class Exit:
    """One end of the app, for the owner's control page."""

    #: Wall-clock time (epoch seconds).
    at: float
    attempt: int
    code: int | None
    reason: str


class AppState:
    """What requests need to know about the app. Changed only by the supervisor.

    Besides the status and its reason, what the pages show while the app starts
    or fails (:meth:`view`): which attempt this is, since when it is waited
    for and what for, when it last showed progress, what happens next and
    when, a hint and a fix when trioproxy can tell. Every change wakes
    :meth:`changed` (the pages' event streams follow it).
    """

    def __init__(self, tail: LogTail) -> None:
        self.status = Status.STARTING
        self.reason = ""
        self.address: Target | None = None
        self.tail = tail
        self.origin_host: str | None = None
        self.origin_known = trio.Event()
        self._changed = trio.Event()
        #: Bumped at every change (a follower compares it).
        self.version = 0
        #: Attempt n of N (N = --max-restarts + 1) of the current run of failures.
        self.attempt = 1
        self.max_attempts = 1
        #: Trio time the current start began, and its last sign of progress.
        self.since: float | None = None
        self.progress_at: float | None = None
        #: "the app on port 41873" while waiting for it.
        self.waiting_for = ""
        #: --ready-timeout, the bound on a start without progress.
        self.limit_s = 0.0
        #: What trioproxy does next ("restarting the app", "trying again") and at what trio time.
        self.next_what = ""
        self.next_at: float | None = None
        #: What trioproxy could tell (the app listens on another port) and the fix.
        self.hint = ""
        self.fix = ""
        #: The app failed at least once since trioproxy started (the Hub's probe then passes).
        self.failed_once = False
        #: Trio time trioproxy exits at, once it gave up.
        self.exits_at: float | None = None

    def set(self, status: Status, reason: str = "", address: Target | None = None) -> None:
        self.status, self.reason, self.address = status, reason, address
        if status is not Status.DOWN:
            self.next_what, self.next_at = "", None
        self.touch()

    def update(self, **fields: Any) -> None:
        """Change some of the attributes above and wake the followers."""
        for name, value in fields.items():
            if not hasattr(self, name) or name.startswith("_"):
                raise AttributeError(name)
            setattr(self, name, value)
        self.touch()

    def touch(self) -> None:
        self.version += 1
        self._changed.set()
        self._changed = trio.Event()

    async def changed(self) -> None:
        """Return at the next change of state."""
        await self._changed.wait()

    def view(self, now: float) -> AppView:
        """What the pages show, at trio time ``now``."""

        def ago(t: float | None) -> float | None:
            return None if t is None else round(max(0.0, now - t), 1)

        def until(t: float | None) -> float | None:
            return None if t is None else round(max(0.0, t - now), 1)

        starting = self.status is Status.STARTING
        return AppView(
            status=self.status.name.lower(),
            reason=self.reason,
            ready=self.status is Status.READY,
            attempt=self.attempt,
            max_attempts=self.max_attempts,
            waiting_for=self.waiting_for if starting else "",
            elapsed_s=ago(self.since) if starting else None,
            idle_s=ago(self.progress_at) if starting else None,
            limit_s=self.limit_s,
            next_what=self.next_what,
            next_in_s=until(self.next_at),
            hint=self.hint,
            fix=self.fix,
            gave_up=self.status is Status.FAILED,
            exits_in_s=until(self.exits_at),
        )

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
        on_ready: Callable[[Target | None], None] | None = None,
    ) -> None:
        self.settings = settings
        self.state = state
        self._on_ready = on_ready or (lambda address: None)
        self._stopping = False
        self._wake = trio.Event()
        self._proc: trio.Process | None = None
        self._fixed_port = settings.destport or None
        #: {unix_socket}: the app's socket path, while the supervisor runs.
        self._socket_path = ""
        #: A command without {port}: whether its group was seen listening at all (this incarnation).
        self._found_listening = False
        self._deadline = float("inf")
        self._bootstrap = Bootstrap(
            settings,
            state.tail,
            starting=lambda reason: state.set(Status.STARTING, reason),
            failed=self._bootstrap_failed,
        )
        self._bootstrap_scope = trio.CancelScope()
        self._launch = Launch(cwd=None, env=settings.env)
        self._last_reason = ""
        self._restart_requested = False
        #: Restarts so far (crashes and owner's requests), and when the current app started (trio time).
        self.restarts = 0
        self.started_at: float | None = None
        #: The app's last exits (newest last), for the owner's control page.
        self.history: deque[Exit] = deque(maxlen=RESTART_HISTORY)
        #: Why the current start was given up on (no progress, the hard limit); '' otherwise.
        self._not_ready = ""
        self._starts = 0
        #: The app's command as last started, credentials redacted (the control page shows it).
        self.command_shown = ""
        state.update(max_attempts=settings.max_restarts + 1, limit_s=settings.ready_timeout_s)

    def _bootstrap_failed(self, reason: str, retry_in: float | None) -> None:
        """The checkout or the environment failed: one message, and what happens next."""
        state = self.state
        state.set(Status.DOWN, f"was not started: {reason}")
        if retry_in is None:
            state.update(failed_once=True, next_what="fix this, then restart the app (the owner's controls) "
                         "or the server", next_at=None)
        else:
            state.update(failed_once=True, next_what="trying again", next_at=trio.current_time() + retry_in)

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
        if s.reach is Reach.FOUND_PORT:
            logger.warning(
                "the command has no {port} (nor {unix_socket}) and there is no --destport: trioproxy will proxy "
                "to the TCP port the app's process group listens on (found in /proc); give the app {port} instead "
                "where it takes one"
            )
            if not _procfs.own_namespace():
                logger.warning("/proc does not show this PID namespace: the app's port cannot be found")
        task_status.started()
        # Every process group started from here on (git, conda, the app) is taken down by the
        # guard if trioproxy dies; the guard ends after the last of them was reaped.
        async with _guard.guarding(s) as guard:
            if s.reach is not Reach.UNIX_SOCKET:
                await self._run()
                return
            try:
                self._socket_path = _socketdir.make(s.socket_dir_parent)
            except OSError as exc:
                raise AppFailed(f"no private directory for the app's Unix socket: {exc.strerror or exc}") from None
            if guard is not None:  # trioproxy killed (SIGKILL, the OOM killer): the guard removes it
                guard.remove_at_death(os.path.dirname(self._socket_path))
            try:
                await self._run()
            finally:
                _socketdir.remove(self._socket_path)  # at exit, SIGTERM, the app failing for good

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
            self.state.update(attempt=failures + 1, hint="")
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
            self.state.update(failed_once=True)
            if failures > s.max_restarts:
                await self._give_up(failures)
                if self._stopping or not self._restart_requested:
                    raise AppFailed(f"the app {_failed_times(failures)}; last: it {self._last_reason}")
                failures, backoff = 0, s.backoff_first_s  # the owner restarted it meanwhile
                self._wake = trio.Event()
                continue
            self.state.update(next_what=f"restarting it (attempt {failures + 1} of {s.max_restarts + 1})",
                              next_at=trio.current_time() + backoff)
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

    async def _give_up(self, failures: int) -> None:
        """Say so (state FAILED, the pages follow) and keep serving them ``give_up_linger_s``,
        unless trioproxy is stopped or the owner restarts the app meanwhile."""
        s = self.settings
        self._last_reason = self.state.reason
        reason = f"{_failed_times(failures)}; last: it {self._last_reason}"
        self.state.set(Status.FAILED, reason)
        self.state.update(exits_at=trio.current_time() + s.give_up_linger_s)
        logger.error("the app %s: trioproxy gives up and exits in %g s", reason, s.give_up_linger_s)
        self._wake = trio.Event()
        self._restart_requested = False
        with trio.move_on_after(s.give_up_linger_s):
            await self._wake.wait()
        self.state.update(exits_at=None)

    async def _one_incarnation(self) -> float | None:
        """Run the app once, until it exits. Return how long it was ready (None: never)."""
        s = self.settings
        port: int | None = None
        if s.reach is Reach.PORT:
            try:
                port = self._fixed_port or _free_port()
            except OSError as exc:  # out of descriptors (EMFILE): a failed start, retried with backoff
                self.state.set(Status.DOWN, f"could not be started: no port for it ({exc.strerror or exc})")
                logger.error("could not start the app: no free port: %s", exc)
                return None
            where = f"on port {port}"
            waiting_for = f"the app on port {port}"
        elif s.reach is Reach.UNIX_SOCKET:
            _socketdir.remove_stale(self._socket_path)  # the last run's: the new one binds afresh
            where = f"on {self._socket_path}"
            waiting_for = f"the app on {self._socket_path}"
        else:
            self._found_listening = False
            where = "(on a port of its own)"
            waiting_for = "the app to listen on a TCP port"
        values = s.template_values(port, self.state.origin_host or "", self._socket_path)
        try:
            argv = _template.render(s.command, values)
        except TemplateError as exc:
            self.state.set(Status.DOWN, str(exc))
            return None
        self.command_shown = _shown(redact_argv(argv))
        logger.info("starting the app %s: %s", where, self.command_shown)
        self._starts += 1
        if self._starts > 1:  # a separator in the shown output between two runs of the app
            state = self.state
            clock = time.strftime("%H:%M:%S")
            state.tail.add(f"──── {clock} start {self._starts}: attempt {state.attempt} of {state.max_attempts} ────")
        self.state.set(Status.STARTING, "the app is starting")
        self.started_at = trio.current_time()
        self.state.update(since=self.started_at, progress_at=self.started_at, waiting_for=waiting_for)
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
            why = not_startable(argv[0], exc, self._launch.cwd)
            if why:  # a command that is not there (or not executable): the next try fails the same way
                self.state.set(Status.DOWN, f"could not be started: {why}")
                raise AppFailed(why, exit_code=EXIT_USAGE) from None
            self.state.set(Status.DOWN, f"could not be started: {exc}")
            logger.error("could not start the app: %s", exc)
            return None
        self._proc = proc
        ready_at: float | None = None
        not_ready = False
        async with trio.open_nursery() as pumps:
            assert proc.stdout is not None and proc.stderr is not None
            pumps.start_soon(self._pump, proc.stdout, "stdout", logging.INFO)
            pumps.start_soon(self._pump, proc.stderr, "stderr", s.stderr_level)
            try:
                address = await self._wait_ready(proc, port, waiting_for)
                if address is not None:
                    ready_at = trio.current_time()
                    self.state.update(hint="", fix="")
                    self.state.set(Status.READY, "", address)
                    self._on_ready(address)
                    logger.info("the app is ready at %s", address)
                elif proc.poll() is None and not self._stopping:
                    not_ready = True
                    reason = self._not_ready or f"did not answer on {s.ready_check_path}"
                    self.state.set(Status.DOWN, reason)
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
                    if self._restart_requested:  # the owner's Restart: not a crash
                        logger.info("the app stopped for the requested restart (it %s)", self.state.reason)
                    else:
                        logger.error("the app %s", self.state.reason)
                if not self._stopping:
                    self.history.append(Exit(time.time(), self.state.attempt, proc.returncode,
                                             "restarted on request" if self._restart_requested else self.state.reason))
        return None if ready_at is None else trio.current_time() - ready_at

    async def _pump(self, stream: trio.abc.ReceiveStream, name: str, level: int) -> None:
        s = self.settings
        await pump(
            stream, name=name, level=level, tail=self.state.tail, echo=s.logs, max_line_bytes=s.log_line_max_bytes
        )

    async def _wait_ready(self, proc: trio.Process, port: int | None, waiting_for: str) -> Target | None:
        """Probe the app until it answers; None once it exited, or was given up on
        (``_not_ready`` says why: no sign of progress for --ready-timeout, or the hard limit)."""
        self._not_ready = ""
        target: Target | None = None
        async with trio.open_nursery() as nursery:
            nursery.start_soon(self._watch_start, proc, port, waiting_for, nursery.cancel_scope)
            target = await self._probe_until_ready(proc, port)
            nursery.cancel_scope.cancel()
        return target

    async def _probe_until_ready(self, proc: trio.Process, port: int | None) -> Target | None:
        s = self.settings
        interval = PROBE_INTERVAL_FIRST_S
        while proc.poll() is None and not self._stopping:
            if s.reach is Reach.UNIX_SOCKET:
                target = await _upstream.probe([UnixTarget(self._socket_path)], s.ready_check_path, s.probe_timeout_s)
            elif port is not None:
                target = await _upstream.probe(self._loopback(port), s.ready_check_path, s.probe_timeout_s)
            else:
                target = await self._probe_found(proc.pid)
            if target is not None:
                return target
            await trio.sleep(interval)
            interval = min(interval * PROBE_INTERVAL_GROWTH, PROBE_INTERVAL_MAX_S)
        return None

    async def _watch_start(
        self, proc: trio.Process, port: int | None, waiting_for: str, waiting: trio.CancelScope
    ) -> None:
        """While the app starts: sample its progress, say every few seconds what is waited for, and
        end the wait (``waiting``) after --ready-timeout without progress or at the hard limit."""
        s, state = self.settings, self.state
        start = trio.current_time()
        limit = s.ready_timeout_s
        every = min(s.progress_sample_s, max(0.05, limit / 4)) if limit > 0 else s.progress_sample_s
        before: _progress.Sample | None = None
        lines, progress_at = state.tail.count, start
        next_report = start + s.wait_report_s
        while True:
            await trio.sleep(every)
            sample = await trio.to_thread.run_sync(_progress.sample, proc.pid, abandon_on_cancel=True)
            now = trio.current_time()
            if sample.progressed_since(before) or state.tail.count != lines:
                progress_at = now
            before, lines = sample, state.tail.count
            # (An empty sample, a process caught between reads, keeps the last hint.)
            hint, fix = self._port_hint(port, sample.ports) if sample.ports else (state.hint, "")
            state.update(progress_at=progress_at, hint=hint, **({"fix": fix} if fix else {}))
            if limit > 0 and now - progress_at >= limit:
                what = ("did not listen on any TCP port" if s.reach is Reach.FOUND_PORT and not sample.ports
                        else f"did not answer on {s.ready_check_path}")
                self._not_ready = f"{what} and showed no sign of progress for {limit:g} s"
                if not fix:
                    state.update(fix="if the app needs longer to start without output, CPU time or I/O, "
                                 "raise --ready-timeout")
                waiting.cancel()
                return
            if now - start >= s.ready_hard_limit_s:
                self._not_ready = f"did not answer on {s.ready_check_path} within {s.ready_hard_limit_s:g} s"
                waiting.cancel()
                return
            if now >= next_report:
                next_report += s.wait_report_s
                logger.info("still waiting for %s: %.0f s (last sign of progress %.0f s ago%s)%s", waiting_for,
                            now - start, now - progress_at,
                            f"; restarted after {limit:g} s without one" if limit > 0 else "",
                            f"; {hint}" if hint else "")

    def _port_hint(self, port: int | None, ports: frozenset[int]) -> tuple[str, str]:
        """The app listens, but not where it was told: a hint and its fix ('' when there is none)."""
        s = self.settings
        if s.reach is not Reach.PORT or port is None or not ports or port in ports:
            return "", ""
        listed = ", ".join(str(p) for p in sorted(ports))
        hint = f"the app listens on {listed}, not on the port it was given ({port})"
        if "port" in s.template_keys:
            fix = ("make the app listen on {port} (its command gets the port there), or leave {port} out of the "
                   "command: trioproxy then finds the port the app listens on")
        else:
            fix = (f"make the app listen on --destport {port}, or leave --destport out: trioproxy then finds "
                   "the port the app listens on")
        return hint, fix

    def _loopback(self, port: int) -> list[Target]:
        hosts = ["127.0.0.1"] if self.settings.ipv4_only else ["127.0.0.1", "::1"]
        return [TcpTarget(host, port) for host in hosts]

    async def _probe_found(self, pgid: int) -> Target | None:
        """A command without {port}: probe the ports the app's group listens on, lowest first;
        the first that answers HTTP is the app's (several: a framework's second server, a
        kernel's ZeroMQ sockets)."""
        s = self.settings
        listeners = await trio.to_thread.run_sync(_procfs.listening_ports, pgid)
        if not listeners:
            return None
        self._found_listening = True
        ports = sorted({listener.port for listener in listeners})
        # One port: probed as a {port} is. Several: each briefly, so a silent one cannot hold up the rest.
        bound = s.probe_timeout_s if len(ports) == 1 else min(s.probe_timeout_s or float("inf"), s.found_port_probe_s)
        for port in ports:
            targets = _found_targets([x for x in listeners if x.port == port], ipv4_only=s.ipv4_only)
            target = await _upstream.probe(targets, s.ready_check_path, bound)
            if target is None:
                continue
            if len(ports) == 1:
                logger.info("the app listens on %d", port)
            else:
                logger.info(
                    "the app listens on ports %s: proxying to %d, the lowest that answers HTTP on %s",
                    ", ".join(map(str, ports)), port, s.ready_check_path,
                )
            return target
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


def _found_targets(listeners: list[_procfs.Listener], *, ipv4_only: bool) -> list[Target]:
    """Where to reach listening sockets of one port: a wildcard address through loopback, IPv4 first."""
    hosts: dict[str, None] = {}
    for listener in sorted(listeners, key=lambda x: ":" in x.host):
        host = {"0.0.0.0": "127.0.0.1", "::": "::1"}.get(listener.host, listener.host)
        if not (ipv4_only and ":" in host):
            hosts[host] = None
    return [TcpTarget(host, listeners[0].port) for host in hosts]


#: Option names (and NAME=value names) whose value is a credential: shown as ***.
_SECRET_WORDS = ("token", "password", "passwd", "secret", "apikey", "api-key", "api_key", "credential")
_URL_USERINFO = re.compile(r"(?i)\b([a-z][a-z0-9+.\-]*://)[^/\s@]*@")


def _secret_name(name: str) -> bool:
    name = name.lower()
    return any(word in name for word in _SECRET_WORDS)


def redact_argv(argv: list[str]) -> list[str]:
    """``argv`` with credentials hidden: URL userinfo, ``--token X``, ``--password=X``, ``API_KEY=X``."""
    out: list[str] = []
    hide_next = False
    for arg in argv:
        if hide_next:
            out.append("***")
            hide_next = False
            continue
        name, eq, _value = arg.partition("=")
        if eq and _secret_name(name):
            out.append(f"{name}=***")
            continue
        if arg.startswith("-") and not eq and _secret_name(arg):
            hide_next = True
        out.append(_URL_USERINFO.sub(r"\1***@", arg))
    return out


def _shown(argv: list[str]) -> str:
    return " ".join(shlex.quote(a) for a in argv)


def _failed_times(failures: int) -> str:
    return "failed once" if failures == 1 else f"failed {failures} times in a row"
