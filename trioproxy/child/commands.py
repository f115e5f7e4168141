"""Helper commands of the bootstrap (git, conda): bounded, never prompting, their output as lines.

Each command runs in its own session (no controlling terminal, so nothing can
prompt on a tty), with stdin from /dev/null, under a time bound; on timeout or
cancellation its whole process group gets SIGKILL and is reaped. Its output is
split on ``\\n`` and on a lone ``\\r`` (git's progress), redacted, logged, and
kept in the app's :class:`LogTail` so trioproxy's pages can show it.

The reference ran these commands in a thread, unbounded, printing lines with
``print``; a credential prompt or a stalled fetch hung it for ever, and URLs
with tokens reached the log and the error page.

Commands start through ``_reaper.open_process``, so trioproxy's reaper of
orphans never takes their exit status, however fast they exit.
"""

from __future__ import annotations

import errno
import logging
import os
import shlex
import signal
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass

import trio

from ..errors import BootstrapError
from ..rules.lines import LineSplitter
from ..settings import (
    COMMAND_CAPTURE_MAX_BYTES,
    COMMAND_DRAIN_S,
    COMMAND_LINE_MAX_BYTES,
    COMMAND_REAP_S,
    PIPE_READ_BYTES,
)
from . import reaper as _reaper
from .groups import signal_group
from .output import LogTail

logger = logging.getLogger("trioproxy.child")

#: The exit code of a command line trioproxy cannot run as given (click's, for a usage error).
EXIT_USAGE = 2
#: A start that failed with one of these fails the same way every time.
_NOT_STARTABLE = frozenset({errno.ENOENT, errno.EACCES, errno.ENOEXEC, errno.ENOTDIR, errno.EISDIR})


def not_startable(program: str, exc: OSError, cwd: str | None = None) -> str:
    """Why ``program`` (the first word of a command) cannot be run, or '' when ``exc`` may pass
    (out of memory or descriptors: worth another try)."""
    if exc.errno not in _NOT_STARTABLE:
        return ""
    if exc.errno == errno.ENOENT:
        where = " on PATH" if "/" not in program else f" in {cwd}" if cwd and not os.path.isabs(program) else ""
        what = f"the command {program!r} was not found{where}"
    elif exc.errno in (errno.EACCES, errno.EISDIR):
        what = f"the command {program!r} is not executable (permission denied)"
    else:
        what = f"the command {program!r} cannot be run ({exc.strerror or exc})"
    return what + "; check the first word of the app's command"


class Progress:
    """Where a helper's lines go: redacted, then logged on ``log`` and kept in ``tail`` as ``[tag] line``."""

    def __init__(self, tail: LogTail, log: logging.Logger, tag: str, redact: Callable[[str], str]) -> None:
        self.tail, self.log, self.tag, self.redact = tail, log, tag, redact
        self.last = ""

    def line(self, text: str, level: int = logging.INFO) -> None:
        text = self.redact(text)
        self.last = text
        self.tail.add(f"[{self.tag}] {text}")
        self.log.log(level, "%s", text)


@dataclass(frozen=True)
class Result:
    code: int
    #: Standard output when captured (else b"").
    stdout: bytes


class Runner:
    """Runs helper commands one at a time; :attr:`pid` is the running one's (None between commands)."""

    def __init__(self, env: Mapping[str, str], progress: Progress) -> None:
        self.env = dict(env)
        self.progress = progress
        self.pid: int | None = None

    async def run(
        self,
        argv: Sequence[str],
        *,
        timeout_s: float,
        cwd: str | None = None,
        capture: bool = False,
        echo: bool = True,
    ) -> Result:
        """Run ``argv``; return its exit code (and its stdout with ``capture``).

        Output: without ``capture``, stdout and stderr (merged) are progress
        lines; with it, stdout is returned (at most COMMAND_CAPTURE_MAX_BYTES) and
        stderr lines are progress. ``echo`` also shows ``$ argv`` first.

        Raises:
            BootstrapError: the command could not start, or ran past
                ``timeout_s`` (then it was killed; retry is suggested).

        Cancellation: the command's process group gets SIGKILL and is reaped
        (bounded) before the cancellation goes on.
        """
        shown = " ".join(shlex.quote(a) for a in argv)
        if echo:
            self.progress.line(f"$ {shown}")
        else:
            logger.debug("$ %s", self.progress.redact(shown))
        self.progress.last = ""
        try:
            proc = await _reaper.open_process(
                list(argv),
                stdin=subprocess.DEVNULL,
                stdout=subprocess.PIPE,
                stderr=subprocess.PIPE if capture else subprocess.STDOUT,
                env=self.env,
                cwd=cwd,
                start_new_session=True,
            )
        except OSError as exc:
            where = f" in {cwd}" if cwd else ""
            raise BootstrapError(f"could not run {argv[0]}{where}: {exc.strerror or exc}") from None
        self.pid = proc.pid
        captured = bytearray()
        timed_out = False
        try:
            assert proc.stdout is not None
            async with trio.open_nursery() as readers:
                if capture:
                    assert proc.stderr is not None
                    readers.start_soon(self._capture, proc.stdout, captured)
                    readers.start_soon(self._lines, proc.stderr)
                else:
                    readers.start_soon(self._lines, proc.stdout)
                with trio.move_on_after(timeout_s) as timer:
                    await proc.wait()
                if timer.cancelled_caught:
                    timed_out = True
                    signal_group(proc.pid, signal.SIGKILL)
                    with trio.move_on_after(COMMAND_REAP_S):
                        await proc.wait()
                readers.cancel_scope.deadline = trio.current_time() + COMMAND_DRAIN_S
        finally:
            with trio.CancelScope(shield=True):
                if proc.returncode is None:
                    signal_group(proc.pid, signal.SIGKILL)
                    with trio.move_on_after(COMMAND_REAP_S):
                        await proc.wait()
            self.pid = None
            _reaper.forget(proc.pid)
        if timed_out:
            raise BootstrapError(f"`{self.progress.redact(shown)}` took longer than {timeout_s:g} s", retry=True)
        assert proc.returncode is not None  # waited for above
        return Result(proc.returncode, bytes(captured))

    async def _lines(self, stream: trio.abc.ReceiveStream) -> None:
        splitter = LineSplitter(COMMAND_LINE_MAX_BYTES, lone_cr=True, skip_blank=True)
        try:
            while data := await stream.receive_some(PIPE_READ_BYTES):
                for line in splitter.feed(data):
                    self.progress.line(line)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass
        for line in splitter.flush():
            self.progress.line(line)

    @staticmethod
    async def _capture(stream: trio.abc.ReceiveStream, into: bytearray) -> None:
        try:
            while data := await stream.receive_some(PIPE_READ_BYTES):
                into += data[: max(0, COMMAND_CAPTURE_MAX_BYTES - len(into))]
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            pass

