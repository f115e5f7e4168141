"""Shared fixtures: start trioproxy as a real process in front of a real test app.

Rules for every test that does I/O: loopback only, and bounded by a trio
timeout (``fail_after``) or a subprocess timeout, so nothing can hang.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import trio

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
    full_env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
    full_env["JUPYTERHUB_SERVICE_PREFIX"] = prefix
    full_env.update(env or {})
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
