"""Signs that a starting app is getting somewhere, read from Linux ``/proc``.

A slow first answer is not a failure while the app's process group works: the
supervisor samples the group (:func:`sample`) and restarts the app only after
``--ready-timeout`` seconds without a sign of progress. A sign is any change
between two samples of: the group's processes (one started or ended), their
CPU time (``utime + stime`` of ``/proc/<pid>/stat``), the bytes they read and
wrote through system calls (``rchar + wchar`` of ``/proc/<pid>/io``: disk and
network alike), or the TCP ports they listen on. New output lines are a sign
too (the supervisor counts them itself).

A process that sleeps in silence shows none: it is taken for stuck. Elsewhere
than Linux (or with a /proc of another PID namespace) nothing can be read, and
only the app's output counts.
"""

from __future__ import annotations

from dataclasses import dataclass

from . import procfs as _procfs


@dataclass(frozen=True)
class Sample:
    """One look at the app's process group."""

    pids: frozenset[int]
    #: CPU time in clock ticks, all processes together.
    cpu_ticks: int
    #: Bytes read and written through system calls, all processes together.
    io_bytes: int
    #: The TCP ports the group listens on.
    ports: frozenset[int]

    def progressed_since(self, before: Sample | None) -> bool:
        """True if anything changed since ``before`` (None: the first sample)."""
        return before is None or self != before


def cpu_ticks(stat: bytes) -> int | None:
    """``utime + stime`` (fields 14 and 15) of a ``/proc/<pid>/stat`` line."""
    close = stat.rfind(b")")
    rest = stat[close + 2 :].split() if close != -1 else []
    # rest[0] is field 3 (state): utime is field 14, stime 15.
    if len(rest) < 13:
        return None
    try:
        return int(rest[11]) + int(rest[12])
    except ValueError:
        return None


def io_bytes(io: bytes) -> int | None:
    """``rchar + wchar`` of a ``/proc/<pid>/io`` text."""
    total, seen = 0, 0
    for line in io.splitlines():
        name, _, value = line.partition(b":")
        if name in (b"rchar", b"wchar"):
            try:
                total += int(value)
            except ValueError:
                return None
            seen += 1
    return total if seen == 2 else None


def _read(path: str) -> bytes:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return b""


def sample(pgid: int) -> Sample:
    """The process group ``pgid`` now (synchronous: run it in a thread)."""
    pids = frozenset(_procfs.group_members(pgid))
    cpu = io = 0
    for pid in pids:
        cpu += cpu_ticks(_read(f"{_procfs.PROC}/{pid}/stat")) or 0
        io += io_bytes(_read(f"{_procfs.PROC}/{pid}/io")) or 0
    ports = frozenset(listener.port for listener in _procfs.listening_ports(pgid)) if pids else frozenset()
    return Sample(pids, cpu, io, ports)
