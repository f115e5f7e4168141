"""Shared fixtures: trioproxy in front of a real test app, in this test's trio loop
(:func:`serve_proxy`) or as a real process (:func:`run_proxy`).

In-process is the default: the same command line (``cli.parse``), the same
log lines, no interpreter to start and no SIGTERM to wait out. A real process
stays for what only it can show: signals, exit codes, PID 1, the CLI, the
process guard, what the app can see of trioproxy's process.

Rules for every test that does I/O: loopback only, and bounded by a trio
timeout (``fail_after``) or a subprocess timeout, so nothing can hang.
"""

from __future__ import annotations

import contextlib
import contextvars
import dataclasses
import itertools
import logging
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import trio
from trio.testing import MockClock

from trioproxy import cli as _cli
from trioproxy.settings import Settings

HERE = Path(__file__).parent
APPS = HERE / "apps"
PY = sys.executable


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def app_cmd(name: str, *args: str) -> list[str]:
    """``-- argv`` of a test app (last on the line); trioproxy fills in ``{port}``."""
    return ["--", PY, str(APPS / name), "--port", "{port}", *args]


@dataclass
class Proxy:
    proc: trio.Process
    port: int
    prefix: str
    lines: list[str] = field(default_factory=list)
    listening: trio.Event = field(default_factory=trio.Event)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}{self.prefix}"

    @property
    def ws_url(self) -> str:
        return f"ws://127.0.0.1:{self.port}{self.prefix}"

    @property
    def log(self) -> str:
        return "\n".join(self.lines)

    async def wait_log(self, needle: str, timeout: float = 10) -> str:
        with trio.fail_after(timeout):
            while True:
                for line in self.lines:
                    if needle in line:
                        return line
                await trio.sleep(0.02)

    async def wait_ready(self, timeout: float = 15) -> None:
        await self.wait_log("the app is ready", timeout)

    @property
    def pid(self) -> int:
        """trioproxy's pid (to read its /proc)."""
        return self.proc.pid

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)


async def _collect(proxy: Proxy) -> None:
    assert proxy.proc.stderr is not None
    buf = b""
    async for chunk in proxy.proc.stderr:
        buf += chunk
        *done, buf = buf.split(b"\n")
        for raw in done:
            line = raw.decode("utf-8", "replace")
            proxy.lines.append(line)
            if " listening on " in line and "trioproxy.app" not in line:  # not an app's own "listening"
                proxy.listening.set()
    if buf:
        proxy.lines.append(buf.decode("utf-8", "replace"))


def _environ(prefix: str, env: dict[str, str] | None) -> dict[str, str]:
    """The environment trioproxy is started with: this one without the Hub's variables, plus ``env``."""
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    full_env["JUPYTERHUB_SERVICE_PREFIX"] = prefix
    full_env.update(env or {})
    return full_env


@dataclass
class InProcessProxy:
    """:class:`Proxy`'s view of a trioproxy run in this trio loop (no ``proc``: use run_proxy for that)."""

    running: Any  # trioproxy.run.Running
    port: int
    prefix: str
    lines: list[str] = field(default_factory=list)

    url = Proxy.url
    ws_url = Proxy.ws_url
    pid = property(lambda self: os.getpid())
    log = Proxy.log
    wait_log = Proxy.wait_log
    wait_ready = Proxy.wait_ready


#: Which in-process run a task belongs to: every task a run starts inherits its id,
#: so each run's log lines are its own even with two runs in one test.
_RUN_ID: contextvars.ContextVar[int] = contextvars.ContextVar("test_run_id", default=0)
_run_ids = itertools.count(1)
#: trioproxy's text log format (``cli._configure_logging``).
_LOG_FORMAT = logging.Formatter("[%(levelname).1s %(asctime)s.%(msecs)03d %(name)s] %(message)s", "%Y-%m-%d %H:%M:%S")


class _Lines(logging.Handler):
    def __init__(self, run_id: int, lines: list[str]) -> None:
        super().__init__()
        self._id, self._lines = run_id, lines
        self.setFormatter(_LOG_FORMAT)

    def emit(self, record: logging.LogRecord) -> None:
        if _RUN_ID.get() == self._id:
            self._lines.extend(self.format(record).split("\n"))


def proxy_settings(
    args: Sequence[str], *, env: dict[str, str] | None = None, prefix: str = "/user/test/", port: int | None = None,
    authtype: str = "none",
) -> Settings:
    """The Settings ``trioproxy --authtype A --port P ARGS`` would run with (as :func:`run_proxy` starts it)."""
    port = port or free_port()
    return _cli.parse(["--authtype", authtype, "--port", str(port), *args], _environ(prefix, env))


@contextlib.asynccontextmanager
async def serve_proxy(
    args: Sequence[str] = (),
    *,
    env: dict[str, str] | None = None,
    prefix: str = "/user/test/",
    port: int | None = None,
    authtype: str = "none",
    settings: Settings | None = None,
    adjust: Callable[[Settings], Settings] | None = None,
) -> AsyncIterator[InProcessProxy]:
    """:func:`run_proxy`'s in-process twin: the same arguments, trioproxy run by ``trioproxy.run.serving``
    in this trio loop; yields once it accepts connections, with its log lines (trioproxy's text format).

    ``settings`` runs those instead of parsing ``args``; ``adjust`` changes the parsed ones
    (``lambda s: dataclasses.replace(s, ...)``), for bounds no option sets (test hooks are not settings).
    On exit the run's shutdown order runs (bounded), as on SIGTERM.
    """
    # Imported here: the whole server, which test modules that only parse need none of.
    from trioproxy.run import serving

    s = settings or proxy_settings(args, env=env, prefix=prefix, port=port, authtype=authtype)
    if adjust is not None:
        s = adjust(s)
    run_id = next(_run_ids)
    lines: list[str] = []
    handler = _Lines(run_id, lines)
    logger = logging.getLogger("trioproxy")
    level = logger.level
    logger.setLevel(logging.DEBUG if s.debug or level == logging.DEBUG else logging.INFO)
    logger.addHandler(handler)
    token = _RUN_ID.set(run_id)
    try:
        async with serving(s) as running:
            yield InProcessProxy(running, running.ports[0], s.proxy.prefix, lines)
    finally:
        _RUN_ID.reset(token)
        logger.removeHandler(handler)
        logger.setLevel(level)


def replace(s: Settings, part: str, **changes: Any) -> Settings:
    """``s`` with ``s.<part>`` changed: ``replace(s, "proxy", ws_ping_interval_s=0.2)``."""
    return dataclasses.replace(s, **{part: dataclasses.replace(getattr(s, part), **changes)})


@contextlib.asynccontextmanager
async def run_proxy(
    args: Sequence[str],
    *,
    env: dict[str, str] | None = None,
    prefix: str = "/user/test/",
    port: int | None = None,
    authtype: str = "none",
    wait_listening: bool = True,
    argv_prefix: Sequence[str] = (),
    cwd: str | None = None,
) -> AsyncIterator[Proxy]:
    """Run ``trioproxy --authtype none --port P ARGS`` with JUPYTERHUB_SERVICE_PREFIX=prefix.

    On exit the process gets SIGTERM (so it stops its app), SIGKILL if still running 5 s
    later, and is reaped.
    """
    port = port or free_port()
    full_env = _environ(prefix, env)
    argv = [*argv_prefix, PY, "-m", "trioproxy", "--authtype", authtype, "--port", str(port), *args]
    proc = await trio.lowlevel.open_process(
        argv, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, env=full_env, cwd=cwd
    )
    proxy = Proxy(proc, port, prefix.rstrip("/"))
    async with trio.open_nursery() as nursery:
        nursery.start_soon(_collect, proxy)
        try:
            if wait_listening:
                with trio.fail_after(15):
                    await proxy.listening.wait()
            yield proxy
        finally:
            with trio.CancelScope(shield=True):
                # SIGTERM first, so trioproxy takes its app down with it; SIGKILL if it lingers.
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGTERM)
                    with trio.move_on_after(5):
                        await proc.wait()
                if proc.returncode is None:
                    with contextlib.suppress(ProcessLookupError):
                        proc.send_signal(signal.SIGKILL)
                with trio.move_on_after(5):
                    await proc.wait()
            nursery.cancel_scope.deadline = trio.current_time() + 2


#: Real seconds the trio loop must be idle before :func:`jump_clock` jumps to the next deadline.
#: Not 0 (pytest-trio's ``autojump_clock``): the app is a real process, and a jump while it is
#: still answering would fire the test's own timeouts early. Above the app's readiness probe
#: interval (at most 0.25 s), so an app's start-up runs in real time.
JUMP_IDLE_S = 0.3


@pytest.fixture
def jump_clock() -> MockClock:
    """trio's autojumping MockClock, for tests that wait on time (keep-alive, stall and quiet
    bounds) with trioproxy in-process: time runs as usual, and jumps to the next deadline once
    the loop has been idle JUMP_IDLE_S (a wait of minutes takes seconds). A test that knows
    nothing is in flight may lower ``autojump_threshold``. Time in such a test is
    ``trio.current_time()``, never ``time.monotonic()``."""
    return MockClock(rate=1.0, autojump_threshold=JUMP_IDLE_S)


@pytest.fixture(scope="session")
def hubs(tmp_path_factory: pytest.TempPathFactory) -> Any:
    """The session's real JupyterHubs (tests/hub.py ``SharedHubs``), started on first use."""
    from .hub import SharedHubs  # here: tests/hub.py imports this module

    pool = SharedHubs(tmp_path_factory.mktemp("hubs"))
    try:
        yield pool
    finally:
        pool.close()
