"""Reading Linux ``/proc``: processes, their groups, and the TCP ports they listen on.

The parsers are pure (bytes in, values out); the readers around them do the
file I/O, synchronously (each is a handful of small reads) and never raise
for a process that vanished meanwhile. Elsewhere than Linux they find nothing.

Used to find the port of an app whose command has no ``{port}``
(``streamlit hello`` listens on 8501 whatever it is told): the sockets in
LISTEN state of ``/proc/net/tcp`` and ``tcp6`` whose inodes are open in a
process of the app's process group.
"""

from __future__ import annotations

import ipaddress
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass

#: The state of a listening socket in /proc/net/tcp.
TCP_LISTEN = "0A"
PROC = "/proc"


@dataclass(frozen=True)
class Stat:
    """The fields of ``/proc/<pid>/stat`` trioproxy needs."""

    pid: int
    state: str
    ppid: int
    pgrp: int


def parse_stat(raw: bytes) -> Stat | None:
    """``pid (comm) state ppid pgrp ...``; comm may hold spaces and parentheses."""
    close = raw.rfind(b")")
    head = raw[: raw.find(b" (")] if b" (" in raw else b""
    rest = raw[close + 2 :].split() if close != -1 else []
    if not head.isdigit() or len(rest) < 3:
        return None
    try:
        return Stat(int(head), rest[0].decode("ascii", "replace"), int(rest[1]), int(rest[2]))
    except ValueError:
        return None


@dataclass(frozen=True)
class Listener:
    """A listening TCP socket: its address, port and inode."""

    host: str
    port: int
    inode: int


def _address(hexaddr: str) -> str:
    """The kernel's hex address (host byte order, 32-bit words) as text."""
    raw = bytes.fromhex(hexaddr)
    if len(raw) == 4:
        return str(ipaddress.IPv4Address(raw[::-1]))
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))
    addr = ipaddress.IPv6Address(words)
    return str(addr.ipv4_mapped) if addr.ipv4_mapped else str(addr)


def parse_net_tcp(text: str) -> list[Listener]:
    """The listening sockets of a ``/proc/net/tcp`` or ``tcp6`` table."""
    out: list[Listener] = []
    for line in text.splitlines()[1:]:
        fields = line.split()
        if len(fields) < 10 or fields[3] != TCP_LISTEN:
            continue
        local, _, port = fields[1].partition(":")
        try:
            out.append(Listener(_address(local), int(port, 16), int(fields[9])))
        except ValueError:
            continue
    return out


def socket_inode(link: str) -> int | None:
    """``socket:[12345]`` (an fd's link) -> 12345."""
    if link.startswith("socket:[") and link.endswith("]"):
        inner = link[8:-1]
        return int(inner) if inner.isdigit() else None
    return None


# --- readers ------------------------------------------------------------------------


def _read(path: str) -> bytes | None:
    try:
        with open(path, "rb") as f:
            return f.read()
    except OSError:
        return None


def own_namespace() -> bool:
    """True if /proc shows our own PID namespace (not so after ``unshare --pid`` without --mount-proc)."""
    try:
        return os.readlink(f"{PROC}/self") == str(os.getpid())
    except OSError:
        return False


def processes() -> Iterator[Stat]:
    """Every process /proc shows (none if it shows another PID namespace)."""
    if not own_namespace():
        return
    try:
        entries = os.listdir(PROC)
    except OSError:
        return
    for entry in entries:
        if entry.isdigit():
            raw = _read(f"{PROC}/{entry}/stat")
            stat = parse_stat(raw) if raw else None
            if stat is not None:
                yield stat


def children(parent: int) -> list[Stat]:
    """The direct children of ``parent``."""
    return [s for s in processes() if s.ppid == parent]


def group_members(pgid: int) -> list[int]:
    """The pids of process group ``pgid``."""
    return [s.pid for s in processes() if s.pgrp == pgid]


def socket_inodes(pids: Iterable[int]) -> set[int]:
    """The inodes of the sockets the processes ``pids`` hold open."""
    inodes: set[int] = set()
    for pid in pids:
        fd_dir = f"{PROC}/{pid}/fd"
        try:
            fds = os.listdir(fd_dir)
        except OSError:
            continue
        for fd in fds:
            try:
                inode = socket_inode(os.readlink(f"{fd_dir}/{fd}"))
            except OSError:
                continue
            if inode is not None:
                inodes.add(inode)
    return inodes


def listening_ports(pgid: int) -> list[Listener]:
    """The TCP sockets that process group ``pgid`` listens on, lowest port first."""
    inodes = socket_inodes(group_members(pgid))
    if not inodes:
        return []
    found: dict[int, Listener] = {}
    for table in ("tcp", "tcp6"):
        raw = _read(f"{PROC}/net/{table}")
        if raw is None:
            continue
        for listener in parse_net_tcp(raw.decode("ascii", "replace")):
            if listener.inode in inodes:
                found.setdefault(listener.inode, listener)
    return sorted(found.values(), key=lambda listener: (listener.port, listener.host))
