"""Processes the harness starts: pinned to a core, in a session of their own, always cleaned up.

Every process is started through a :class:`ProcessSet`, which stops them all (SIGTERM to the
group, then SIGKILL to the group and to every descendant seen) when the harness ends, however it
ends. Readings come from ``/proc``: CPU time as the sum of the process's threads' run time
(``schedstat``, nanoseconds), memory as ``VmRSS``.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

#: Grace between SIGTERM and SIGKILL when the harness stops a process.
STOP_GRACE_S = 5.0


def pin_argv(argv: list[str], core: int | None) -> list[str]:
    """``taskset -c CORE argv`` (the command line shown in the report), or argv unpinned."""
    if core is None:
        return argv
    taskset = shutil.which("taskset")
    return [taskset, "-c", str(core), *argv] if taskset else argv


def cpu_seconds(pid: int) -> float:
    """CPU time of every live thread of ``pid`` so far (user + system)."""
    total = 0
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with contextlib.suppress(OSError):
                total += int(Path(f"/proc/{pid}/task/{task}/schedstat").read_text().split()[0])
    except OSError:
        return 0.0
    if total:
        return total / 1e9
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def rss_kib(pid: int) -> int:
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1])
    raise OSError(f"no VmRSS for {pid}")


def descendants(pid: int) -> list[int]:
    """Every process below ``pid`` now (children first seen first)."""
    found, queue = [], [pid]
    while queue:
        parent = queue.pop()
        try:
            tasks = os.listdir(f"/proc/{parent}/task")
        except OSError:
            continue
        for task in tasks:
            with contextlib.suppress(OSError):
                for child in Path(f"/proc/{parent}/task/{task}/children").read_text().split():
                    found.append(int(child))
                    queue.append(int(child))
    return found


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


class Spawned:
    """One process started by the harness (its group leader), with its log file."""

    def __init__(self, name: str, argv: list[str], proc: subprocess.Popen[bytes], log: Path) -> None:
        self.name, self.argv, self.proc, self.log = name, argv, proc, log
        self.started_at = time.monotonic()
        #: Descendants seen by :meth:`note_tree` (a proxy's app may sit in a group of its own).
        self.seen: set[int] = set()

    @property
    def pid(self) -> int:
        return self.proc.pid

    def running(self) -> bool:
        return self.proc.poll() is None

    def cpu(self) -> float:
        return cpu_seconds(self.pid)

    def rss(self) -> int:
        return rss_kib(self.pid)

    def send(self, sig: int) -> None:
        if self.running():
            self.proc.send_signal(sig)

    async def wait_exit(self, timeout: float) -> int | None:
        """The exit code, or None if still running after ``timeout`` seconds (polled every 2 ms)."""
        deadline = time.monotonic() + timeout
        while (code := self.proc.poll()) is None and time.monotonic() < deadline:
            await asyncio.sleep(0.002)
        return code

    def note_tree(self) -> None:
        """Remember the process's descendants now, so :meth:`stop` reaches them after it exited."""
        self.seen.update(descendants(self.pid))

    def stop(self, grace: float = STOP_GRACE_S) -> None:
        """SIGTERM to the group, then SIGKILL to the group and to every descendant seen."""
        self.note_tree()
        tree = [pid for pid in self.seen if _alive(pid)]
        groups = {self.pid}
        for pid in tree:
            with contextlib.suppress(OSError):
                groups.add(os.getpgid(pid))
        for group in groups:
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGTERM)
        deadline = time.monotonic() + grace
        while time.monotonic() < deadline and (self.running() or any(_alive(p) for p in tree)):
            time.sleep(0.01)
        for group in groups:
            with contextlib.suppress(OSError):
                os.killpg(group, signal.SIGKILL)
        for pid in tree:
            with contextlib.suppress(OSError):
                os.kill(pid, signal.SIGKILL)
        with contextlib.suppress(subprocess.TimeoutExpired):
            self.proc.wait(grace)


class ProcessSet:
    """Starts processes and stops every one of them in :meth:`stop_all`."""

    def __init__(self, logs: Path) -> None:
        self.logs = logs
        self.started: list[Spawned] = []
        logs.mkdir(parents=True, exist_ok=True)

    def spawn(self, name: str, argv: list[str], *, core: int | None, env: dict[str, str] | None = None,
              cwd: Path | None = None) -> Spawned:
        argv = pin_argv(argv, core)
        log = self.logs / f"{len(self.started):03d}-{name}.log"
        with log.open("wb") as out:
            proc = subprocess.Popen(argv, stdin=subprocess.DEVNULL, stdout=out, stderr=subprocess.STDOUT,
                                    env=env, cwd=cwd, start_new_session=True)
        spawned = Spawned(name, argv, proc, log)
        self.started.append(spawned)
        return spawned

    def stop_all(self) -> None:
        for spawned in reversed(self.started):
            spawned.stop(grace=1.0)
