"""No zombies, no orphans: reaping descendants that are not the app itself.

On Linux trioproxy makes itself a child subreaper (``PR_SET_CHILD_SUBREAPER``),
so a grandchild whose parent dies (or that escaped the app's process group
with ``setsid``) is re-parented to trioproxy instead of to init. Run as PID 1
(a container without tini) it gets them anyway. Either way:

* :func:`reap_forever` reaps such processes when they exit. It never calls a
  blanket ``waitpid(-1)``: that would steal the exit status of the app, which
  trio waits for itself. It reaps only zombie children it finds in /proc
  that trioproxy did not start itself: every process trioproxy starts goes
  through :func:`open_process`, which registers its pid, and no sweep runs
  while a start is under way (a child that exits before its pid is known
  would otherwise be reaped here and reported to trio as a success).
* :func:`kill_descendants` at the very end kills every process still
  re-parented to us, and reaps it.

The registry (what the run started, the starts under way, the guard) is a
:class:`Reaper` owned by each run and found through a context variable, so
runs in one process (tests run trioproxy in their own trio loop) share
nothing. The sweeps themselves are the process's: only the run that owns the
process (the command line's, which made it a subreaper) runs them.

And when trioproxy dies without that end (SIGKILL), the process guard
(``_guard``) takes down the process groups it started: :func:`open_process`
tells the guard installed with :func:`guard_groups` every new session's
group, :func:`forget` tells it when the group's leader was reaped.
"""

from __future__ import annotations

import contextvars
import ctypes
import logging
import os
import signal
import sys
from collections.abc import Callable
from typing import Any, Protocol

import trio

from ..settings import REAPER_FINAL_SWEEP_S, REAPER_SWEEP_INTERVAL_S

logger = logging.getLogger("trioproxy.child")

#: prctl option number (linux/prctl.h).
PR_SET_CHILD_SUBREAPER = 36


def become_subreaper() -> bool:
    """Ask Linux to re-parent orphaned descendants to us. False where unsupported."""
    if not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL(None, use_errno=True)
        return bool(libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0)
    except (OSError, AttributeError):
        return False


def _proc_is_ours() -> bool:
    """True if /proc shows our own PID namespace (not so after ``unshare --pid`` without --mount-proc)."""
    try:
        return os.readlink("/proc/self") == str(os.getpid())
    except OSError:
        return False


def _children() -> list[tuple[int, str]]:
    """(pid, state letter) of our direct children, from /proc."""
    me = os.getpid()
    out: list[tuple[int, str]] = []
    if not _proc_is_ours():
        return out  # another namespace's pids: never signal or reap by them
    try:
        entries = os.listdir("/proc")
    except OSError:
        return out
    for entry in entries:
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                stat = f.read()
        except OSError:
            continue
        # "pid (comm) state ppid ..." where comm may contain spaces and parens.
        rest = stat[stat.rfind(b")") + 2 :].split()
        if len(rest) >= 2 and int(rest[1]) == me:
            out.append((int(entry), rest[0].decode()))
    return out


class GroupWatcher(Protocol):
    """What the reaper tells the process guard (``_guard.Guard``)."""

    def watch(self, pgid: int) -> None: ...

    def forget(self, pgid: int) -> None: ...


class Reaper:
    """What one run of trioproxy started, for its reaper and its process guard.

    Every process the run starts goes through :meth:`open_process`, which
    registers its pid (trio waits for it: no sweep may take its exit status),
    and no sweep runs while a start is under way. Owned by the run, found
    through :func:`current`, so two runs in one process (tests) share nothing.
    """

    def __init__(self) -> None:
        #: Pids of the processes this run started itself, and how many starts are under way.
        self.ours: set[int] = set()
        self.starting = 0
        #: The process guard, while one runs, and the groups it was told of.
        self._watcher: GroupWatcher | None = None
        self._watched: set[int] = set()

    def guard_groups(self, watcher: GroupWatcher | None) -> None:
        """From now on tell ``watcher`` (None: nobody) of every process group started and reaped."""
        self._watcher = watcher
        self._watched.clear()

    async def open_process(self, argv: list[str], **kw: Any) -> trio.Process:
        """``trio.lowlevel.open_process``, registered so the reaper never takes its exit status.

        With ``start_new_session`` the new group is also told to the process guard.
        """
        self.starting += 1
        try:
            proc = await trio.lowlevel.open_process(argv, **kw)
            self.ours.add(proc.pid)
            if kw.get("start_new_session") and self._watcher is not None:
                self._watcher.watch(proc.pid)
                self._watched.add(proc.pid)
            return proc
        finally:
            self.starting -= 1

    def forget(self, pid: int) -> None:
        """``pid`` was waited for (and its group, if it led one, killed): it is no
        longer ours, nor the guard's (pids are reused)."""
        self.ours.discard(pid)
        if pid in self._watched:
            self._watched.discard(pid)
            if self._watcher is not None:
                self._watcher.forget(pid)

    def reap_zombies(self, exclude: Callable[[], int | None]) -> int:
        """Reap exited children of this process other than ours and ``exclude()``; return how many."""
        if self.starting:
            return 0  # a new child's pid may not be registered yet: sweep later
        skip = exclude()
        n = 0
        for pid, state in _children():
            if pid == skip or pid in self.ours or state != "Z":
                continue
            try:
                os.waitpid(pid, os.WNOHANG)
                n += 1
            except ChildProcessError:
                pass
        return n


#: The reaper of the run in whose tasks code runs (each run sets its own, see :func:`owned`);
#: code run outside any run (tests of one part) gets this module's default one.
_DEFAULT = Reaper()
_current: contextvars.ContextVar[Reaper] = contextvars.ContextVar("trioproxy_reaper", default=_DEFAULT)


def current() -> Reaper:
    """The reaper of the run this task belongs to."""
    return _current.get()


def own(reaper: Reaper) -> None:
    """Make ``reaper`` the one of this task and of every task it starts from now on.

    Call it first in a run's own task (its context is that task's copy): the tasks
    the run starts inherit it, and no other run sees it.
    """
    _current.set(reaper)


def guard_groups(watcher: GroupWatcher | None) -> None:
    """:meth:`Reaper.guard_groups` of the current run."""
    current().guard_groups(watcher)


async def open_process(argv: list[str], **kw: Any) -> trio.Process:
    """:meth:`Reaper.open_process` of the current run."""
    return await current().open_process(argv, **kw)


def forget(pid: int) -> None:
    """:meth:`Reaper.forget` of the current run."""
    current().forget(pid)


def reap_zombies(exclude: Callable[[], int | None]) -> int:
    """:meth:`Reaper.reap_zombies` of the current run."""
    return current().reap_zombies(exclude)


async def reap_forever(exclude: Callable[[], int | None]) -> None:
    """Reap orphaned descendants as they exit (cancel to stop)."""
    with trio.open_signal_receiver(signal.SIGCHLD) as signals:
        while True:
            n = reap_zombies(exclude)
            if n:
                logger.debug("reaped %d orphaned process(es)", n)
            with trio.move_on_after(REAPER_SWEEP_INTERVAL_S):
                await signals.__anext__()


async def kill_descendants(exclude: Callable[[], int | None]) -> int:
    """SIGKILL and reap every child left (orphans re-parented to us). Bounded."""
    killed: set[int] = set()
    with trio.move_on_after(REAPER_FINAL_SWEEP_S):
        while True:
            skip = exclude()
            left = [pid for pid, _ in _children() if pid != skip]
            if not left:
                break
            for pid in left:
                try:
                    os.kill(pid, signal.SIGKILL)
                    killed.add(pid)
                except ProcessLookupError:
                    pass
            await trio.sleep(0.01)
            reap_zombies(exclude)
    return len(killed)
