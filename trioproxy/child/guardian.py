"""The process guard's own program: it outlives trioproxy only to take the app down with it.

trioproxy (``guard``) runs this file as ``python -I -S guardian.py GRACE POLL``,
isolated, with an empty environment (so it holds no Hub credential), in a session
of its own, and with the read end of a pipe as its stdin. Only trioproxy holds
the write end (close-on-exec, never inherited by the app), on which it writes
one line per process group: ``+PGID`` when it starts one, ``-PGID`` once it
has reaped it; and ``dPATH`` for a directory to remove once the groups are down
(``{unix_socket}``'s private directory).

End of file on stdin means trioproxy is gone, however it ended (a normal exit
closes the pipe too, with no group left). Then every group still listed gets
SIGTERM, SIGKILL after GRACE seconds if any member is left (checked every POLL
seconds), and the guard exits. It ignores SIGINT, SIGTERM and SIGHUP: a signal
meant for trioproxy's terminal or process group must not take the guard away
while trioproxy runs on.

This is the thread-safe stand-in for ``PR_SET_PDEATHSIG``, which trioproxy
cannot use: it needs a ``preexec_fn``, and it fires when the *thread* that
forked exits (trio forks in worker threads, which retire when idle).

Standard library only, no import of trioproxy: with ``-I -S`` neither
trioproxy nor site-packages are on ``sys.path``.
"""

from __future__ import annotations

import os
import shutil
import signal
import sys
import time
from collections.abc import Callable, Iterable

#: Bytes read from the pipe at a time.
READ_BYTES = 4096


def apply(groups: set[int], line: bytes, dirs: list[str] | None = None) -> None:
    """One line of the protocol: ``+PGID`` adds a group, ``-PGID`` removes it, ``dPATH`` adds an
    absolute directory to ``dirs``; anything else is ignored."""
    op, number = line[:1], line[1:].strip()
    if op == b"d":
        path = os.fsdecode(line[1:])
        if dirs is not None and os.path.isabs(path):
            dirs.append(path)
        return
    if not number.isdigit():
        return
    pgid = int(number)
    if pgid <= 1:
        return  # 0 would be the guard's own group, 1 init's
    if op == b"+":
        groups.add(pgid)
    elif op == b"-":
        groups.discard(pgid)


def read_until_eof(fd: int, groups: set[int], dirs: list[str] | None = None) -> None:
    """Apply every line from ``fd`` to ``groups`` (and ``dirs``) until end of file (or a read error)."""
    pending = b""
    while True:
        try:
            data = os.read(fd, READ_BYTES)
        except OSError:
            return
        if not data:
            return
        *lines, pending = (pending + data).split(b"\n")
        for line in lines:
            apply(groups, line, dirs)


def group_alive(pgid: int) -> bool:
    """Has the process group any member left (a zombie counts until it is reaped)?"""
    try:
        os.killpg(pgid, 0)
    except (ProcessLookupError, PermissionError):
        return False
    return True


def _signal_all(pgids: Iterable[int], sig: signal.Signals) -> None:
    for pgid in pgids:
        try:
            os.killpg(pgid, sig)
        except (ProcessLookupError, PermissionError):
            pass


def take_down(
    groups: Iterable[int],
    grace_s: float,
    poll_s: float,
    *,
    alive: Callable[[int], bool] = group_alive,
    send: Callable[[Iterable[int], signal.Signals], None] = _signal_all,
    clock: Callable[[], float] = time.monotonic,
    sleep: Callable[[float], None] = time.sleep,
) -> list[int]:
    """SIGTERM every live group; SIGKILL those still alive after ``grace_s``. Return the ones killed."""
    live = [g for g in sorted(groups) if alive(g)]
    if not live:
        return []
    send(live, signal.SIGTERM)
    deadline = clock() + grace_s
    while live and clock() < deadline:
        sleep(poll_s)
        live = [g for g in live if alive(g)]
    if live:
        send(live, signal.SIGKILL)
    return live


def main(argv: list[str]) -> int:
    for sig in (signal.SIGINT, signal.SIGTERM, signal.SIGHUP):
        signal.signal(sig, signal.SIG_IGN)
    try:
        grace_s, poll_s = float(argv[0]), float(argv[1])
    except (IndexError, ValueError):
        print("usage: guardian.py GRACE_S POLL_S (stdin: +PGID/-PGID lines)", file=sys.stderr)
        return 2
    try:
        os.chdir("/")  # hold no mount busy
    except OSError:
        pass
    groups: set[int] = set()
    dirs: list[str] = []
    read_until_eof(0, groups, dirs)
    take_down(groups, grace_s, poll_s)
    for path in dirs:  # gone already after a normal exit
        shutil.rmtree(path, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
