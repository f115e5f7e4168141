"""The app never outlives trioproxy: trioproxy's end of the process guard.

:func:`guarding` starts the guard (``guardian``, a separate tiny process)
once, for the supervisor's lifetime, and hands it to the reaper: from then on
every process group trioproxy starts through :func:`._reaper.open_process`
(the app, git, conda) is told to the guard, and forgotten once reaped. If
trioproxy dies, even by SIGKILL, the kernel closes its end of the pipe and the
guard takes those groups down (SIGTERM, then SIGKILL after
``guard_grace_s``). At a normal exit trioproxy has already stopped and reaped
everything in its own order; closing the pipe then leaves the guard nothing
to do, and it is reaped here.

Thread-safe by construction: nothing runs between fork and exec (no
``preexec_fn``), and nothing depends on which thread forked. The pipe's
write end is close-on-exec (PEP 446), so no child ever holds it.

Not started in PID-1 mode: when the init of a PID namespace dies the kernel
kills every other process in it, the app included. Not started either when
``ChildSettings.guard`` is off (tests) or there is no Python to run it with.
"""

from __future__ import annotations

import contextlib
import logging
import os
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import trio

from ..settings import ChildSettings
from . import reaper as _reaper

logger = logging.getLogger("trioproxy.child")

#: The guard's program, run as a file (it imports nothing of trioproxy).
PROGRAM = Path(__file__).with_name("guardian.py")


class Guard:
    """A running guard: tell it the groups to watch; :meth:`close` ends it."""

    def __init__(self, proc: trio.Process, write_fd: int) -> None:
        self.proc = proc
        self._fd = write_fd

    def watch(self, pgid: int) -> None:
        """Take process group ``pgid`` down if trioproxy dies."""
        self._send(b"+%d\n" % pgid)

    def forget(self, pgid: int) -> None:
        """``pgid`` was reaped (its number may be reused): never signal it."""
        self._send(b"-%d\n" % pgid)

    def remove_at_death(self, directory: str) -> None:
        """Remove ``directory`` (and all in it) if trioproxy dies; a normal exit has removed it already."""
        raw = os.fsencode(directory)
        if b"\n" not in raw:
            self._send(b"d" + raw + b"\n")

    def _send(self, line: bytes) -> None:
        if self._fd < 0:
            return
        try:
            os.write(self._fd, line)  # far below PIPE_BUF: whole or not at all; never blocks
        except OSError as exc:  # the guard was killed (EPIPE), or stopped and its pipe full
            logger.warning("the process guard is gone (%s): if trioproxy is killed now, the app may outlive it",
                           exc.strerror or exc)
            self._close_fd()

    def _close_fd(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    async def close(self, timeout_s: float) -> None:
        """Close the pipe; wait (bounded) for the guard to exit, else kill it; reap it."""
        self._close_fd()
        with trio.move_on_after(timeout_s):
            await self.proc.wait()
        if self.proc.returncode is None:
            logger.warning("the process guard did not exit in %g s: killing it", timeout_s)
            self.proc.kill()
            await self.proc.wait()
        _reaper.forget(self.proc.pid)


def argv(settings: ChildSettings) -> list[str]:
    """How the guard is run: this Python, isolated (-I) and without site-packages (-S)."""
    return [sys.executable, "-I", "-S", str(PROGRAM), repr(settings.guard_grace_s), repr(settings.guard_poll_s)]


async def start(settings: ChildSettings) -> Guard | None:
    """Start a guard, or None (PID 1, turned off, or it could not start: logged)."""
    if not settings.guard:
        return None
    if os.getpid() == 1:
        logger.debug("no process guard as PID 1: the kernel ends the namespace's processes with trioproxy")
        return None
    if not sys.executable or not PROGRAM.is_file():
        logger.warning("no process guard (no Python executable or no %s): if trioproxy is killed, "
                       "the app may outlive it", PROGRAM.name)
        return None
    read_fd, write_fd = os.pipe()  # both close-on-exec
    try:
        proc = await _reaper.open_process(
            argv(settings),
            stdin=read_fd,
            stdout=subprocess.DEVNULL,
            env={},  # nothing to leak: the guard is dumpable like any process trioproxy starts
            cwd="/",
            start_new_session=True,  # out of reach of the terminal's and the group's signals
        )
    except OSError as exc:
        os.close(write_fd)
        logger.warning("no process guard (%s): if trioproxy is killed, the app may outlive it", exc.strerror or exc)
        return None
    finally:
        os.close(read_fd)
    os.set_blocking(write_fd, False)
    logger.debug("process guard started (pid %d)", proc.pid)
    return Guard(proc, write_fd)


@contextlib.asynccontextmanager
async def guarding(settings: ChildSettings) -> AsyncIterator[Guard | None]:
    """Guard every process group started within; at the end close the guard (shielded, bounded).

    Exit this only after every guarded process was reaped: the guard kills
    what is still listed when its pipe closes.
    """
    guard = await start(settings)
    _reaper.guard_groups(guard)
    try:
        yield guard
    finally:
        _reaper.guard_groups(None)
        if guard is not None:
            with trio.CancelScope(shield=True):
                await guard.close(settings.guard_close_timeout_s)
