"""The columns of the report: a direct connection (the limit) and the proxies, how each is started.

A proxy column starts the proxy (pinned to the proxy core) with the app stack as its app on
``{port}``; the direct column starts only the app stack. Either way the harness then talks to a
:class:`Target`: a port, a path prefix, and the proxy process whose CPU and memory are read.
"""

from __future__ import annotations

import asyncio
import os
import socket
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from benchmarks import clients
from benchmarks.procs import ProcessSet, Spawned, pin_argv

PREFIX = "/user/bench"
ROOT = Path(__file__).resolve().parent.parent
WORK = ROOT / "benchmarks" / ".work"
JHSINGLE_BIN = WORK / "venv-jhsingle" / "bin" / "jhsingle-native-proxy"
#: How long a column may take from start to its first 200.
START_TIMEOUT_S = 60.0
#: Arguments both proxies are given (no Hub: auth off, no activity reports).
COMMON = ["--authtype", "none", "--ip", "127.0.0.1", "--last-activity-interval", "0"]


@dataclass(frozen=True)
class Column:
    name: str
    title: str
    extra: tuple[str, ...] = ()
    #: The scenarios this column runs (None: all). A reference column runs only where it means something.
    only: frozenset[str] | None = None

    @property
    def is_proxy(self) -> bool:
        """Started with the app as its child, pinned to the proxy core, its CPU and memory read."""
        return self.name != "direct"

    @property
    def serves_prefix(self) -> bool:
        """Serves the app under PREFIX (the proxies under test); the others pass paths as they are."""
        return self.name not in ("direct", "trio-relay")

    def runs(self, scenario: str) -> bool:
        return self.only is None or scenario in self.only

    def proxy_bin(self) -> list[str]:
        if self.name == "trioproxy":
            script = Path(sys.executable).parent / "trioproxy"
            return [str(script)] if script.exists() else [sys.executable, "-m", "trioproxy"]
        if self.name == "trio-relay":
            return [sys.executable, "-m", "benchmarks.floor_relay"]
        return [str(JHSINGLE_BIN)]

    def missing(self) -> str | None:
        """Why this column cannot run here, or None."""
        if self.name.startswith("jhsingle") and not JHSINGLE_BIN.exists():
            return f"{JHSINGLE_BIN.relative_to(ROOT)} is missing (make bench-install)"
        return None


COLUMNS = {
    c.name: c for c in (
        Column("direct", "direct"),
        Column("trioproxy", "trioproxy"),
        Column("jhsingle", "jhsingle 0.8.3"),
        Column("jhsingle-progressive", "jhsingle 0.8.3 --progressive", ("--progressive",)),
        # The floor of any relay on trio (benchmarks/floor_relay.py): a reference for the websocket rows.
        Column("trio-relay", "trio relay (floor)", only=frozenset({"ws1", "wsN", "wsbig", "idle_ws"})),
    )
}


@dataclass
class Target:
    """A started column."""

    column: Column
    port: int
    prefix: str
    process: Spawned  # the proxy, or for the direct column the app stack
    startup_ms: float | None = None

    @property
    def proxy(self) -> Spawned | None:
        return self.process if self.column.is_proxy else None

    def path(self, path: str) -> str:
        return self.prefix + path


@dataclass(frozen=True)
class Launcher:
    """What every column needs to start: where things are and which cores to use."""

    procs: ProcessSet
    data: Path
    proxy_core: int | None
    load_core: int | None
    use_nginx: bool

    def app_argv(self, port: str) -> list[str]:
        argv = [sys.executable, "-m", "benchmarks.appstack", "--port", port, "--data", str(self.data),
                "--work", str(self.procs.logs.parent / "stacks")]
        if self.load_core is not None:
            argv += ["--core", str(self.load_core)]
        if not self.use_nginx:
            argv.append("--no-nginx")
        return argv

    def argv(self, column: Column, port: int | str) -> list[str]:
        if not column.is_proxy:
            return self.app_argv(str(port))
        common = COMMON if column.serves_prefix else []
        return [*column.proxy_bin(), *common, *column.extra, "--port", str(port), "--", *self.app_argv("{port}")]

    def core(self, column: Column) -> int | None:
        return self.proxy_core if column.is_proxy else self.load_core

    def command_line(self, column: Column) -> list[str]:
        """The column's command as the report shows it (pinned, ``PORT`` for the port)."""
        return pin_argv(self.argv(column, "PORT"), self.core(column) if column.is_proxy else None)

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("JUPYTERHUB_")}
        env["JUPYTERHUB_SERVICE_PREFIX"] = PREFIX + "/"
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH")]))
        return env

    async def start(self, column: Column) -> Target:
        """Start the column and wait for its first 200 on ``/``; records the time that took."""
        port = free_port()
        began = time.monotonic()
        process = self.procs.spawn(column.name, self.argv(column, port), core=self.core(column), env=self.env(),
                                   cwd=ROOT)
        target = Target(column, port, PREFIX if column.serves_prefix else "", process)
        await first_200(target, began)
        target.startup_ms = (time.monotonic() - began) * 1e3
        process.note_tree()
        return target


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def first_200(target: Target, began: float) -> None:
    """Poll ``GET prefix/`` every 5 ms until it answers 200."""
    last = "no answer"
    while time.monotonic() - began < START_TIMEOUT_S:
        if not target.process.running():
            raise RuntimeError(f"{target.column.name} exited with {target.process.proc.returncode}; "
                               f"see {target.process.log}")
        try:
            status, _ = await clients.get(target.port, target.path("/"), timeout=START_TIMEOUT_S)
            if status == 200:
                return
            last = f"HTTP {status}"
        except (OSError, asyncio.IncompleteReadError, TimeoutError, clients.HTTPFailure) as exc:
            last = type(exc).__name__
        await asyncio.sleep(0.005)
    raise RuntimeError(f"{target.column.name}: no 200 within {START_TIMEOUT_S:.0f} s ({last}); "
                       f"see {target.process.log}")
