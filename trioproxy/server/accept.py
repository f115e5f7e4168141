"""Accept client connections; near the open-file limit, refuse new ones at once.

Why not ``trio.serve_listeners``: at EMFILE it logs a traceback and retries
every 100 ms, so new clients hang in the kernel's backlog, the log fills, and
the last free descriptors go to whoever connects next, leaving none for the
clients already here (each request of theirs may need a new connection to the
app).

Policy:

- ``accept()`` returns the lowest free descriptor, so its number is a lower
  bound on how many are open. A connection whose descriptor lies within
  ``fd_headroom`` of the soft ``RLIMIT_NOFILE`` is refused: a ``503`` with
  ``Connection: close`` on plain HTTP, a plain close on TLS (no handshake is
  spent on it). What is left stays for the connections already open (their
  connections to the app), the readiness probes, the Hub API and restarts of
  the app. The check costs one ``getrlimit`` per connection, so a limit
  lowered while running (``prlimit``) is honoured.
- Should ``accept()`` still fail with EMFILE/ENFILE (the headroom used up by
  those), a descriptor kept in reserve is closed, the waiting connection
  accepted and refused the same way, and the reserve reopened. With no
  reserve to spare, or out of kernel memory, accepting pauses for
  ``accept_retry_s``: a wait, not a spin.
- One warning per ``fd_warn_every_s`` at most, with the count refused.

Resource handling: the reserve descriptor lives as long as the
:class:`Acceptor` context; the listening sockets belong to the caller.
"""

from __future__ import annotations

import errno
import logging
import os
import resource
import socket
import ssl
from collections.abc import Awaitable, Callable
from math import inf
from typing import Any, NoReturn

import trio

from ..settings import ServerSettings

logger = logging.getLogger("trioproxy.server")

#: accept() errors about one connection only (it went away, or a firewall said
#: no): skip it and go on (the same list as trio's SocketListener).
_SKIP_ERRNOS = {
    getattr(errno, name)
    for name in (
        "EPERM", "ECONNABORTED", "EPROTO", "ENETDOWN", "ENOPROTOOPT", "EHOSTDOWN", "ENONET", "EHOSTUNREACH",
        "EOPNOTSUPP", "ENETUNREACH", "ENOSR", "ESOCKTNOSUPPORT", "EPROTONOSUPPORT", "ETIMEDOUT", "ECONNRESET",
    )
    if hasattr(errno, name)
}
#: Out of descriptors: this process's (EMFILE) or the system's (ENFILE).
_FD_ERRNOS = {errno.EMFILE, errno.ENFILE}
#: Out of kernel memory: nothing to do but wait.
_MEMORY_ERRNOS = {errno.ENOMEM, errno.ENOBUFS}

_REFUSAL_BODY = b"This server has too many open connections; try again shortly.\n"
#: The whole answer to a refused plain-HTTP connection, sent without reading the request.
REFUSAL = (
    b"HTTP/1.1 503 Service Unavailable\r\n"
    b"content-type: text/plain; charset=utf-8\r\n"
    b"content-length: " + str(len(_REFUSAL_BODY)).encode() + b"\r\n"
    b"cache-control: no-store\r\n"
    b"connection: close\r\n\r\n" + _REFUSAL_BODY
)

Handler = Callable[[Any], Awaitable[None]]


class Acceptor:
    """Accept loops for listening sockets, sharing one reserve descriptor and one warning."""

    def __init__(self, settings: ServerSettings, ssl_context: ssl.SSLContext | None) -> None:
        self.ssl_context = ssl_context
        self.headroom = settings.fd_headroom
        self.retry_s = settings.accept_retry_s
        self.warn_every_s = settings.fd_warn_every_s
        self._reserve: int | None = None
        self._refused = 0
        self._warned_at = -inf

    def __enter__(self) -> Acceptor:
        self._reopen_reserve()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._reserve is not None:
            os.close(self._reserve)
            self._reserve = None

    async def serve(self, sock: socket.socket, handle: Handler, connections: trio.Nursery) -> NoReturn:
        """Accept on ``sock`` (non-blocking, listening) until cancelled; each stream goes to
        ``handle`` in ``connections``.

        Error handling: see the module docstring; any other accept() error propagates.
        """
        while True:
            try:
                conn, _ = sock.accept()
            except BlockingIOError:
                await trio.lowlevel.wait_readable(sock)
                continue
            except OSError as exc:
                if exc.errno in _FD_ERRNOS:
                    await self._at_fd_limit(sock)
                elif exc.errno in _MEMORY_ERRNOS:
                    self._warn("accept() failed (%s): retrying every %g s", os.strerror(exc.errno), self.retry_s)
                    await trio.sleep(self.retry_s)
                elif exc.errno in _SKIP_ERRNOS:
                    await trio.lowlevel.checkpoint()
                else:
                    raise
                continue
            if self._near_limit(conn.fileno()):
                self._refuse(conn)
            else:
                connections.start_soon(handle, self._stream(conn))
            await trio.lowlevel.checkpoint()

    def _stream(self, conn: socket.socket) -> Any:
        stream = trio.SocketStream(trio.socket.from_stdlib_socket(conn))
        if self.ssl_context is None:
            return stream
        return trio.SSLStream(stream, self.ssl_context, server_side=True, https_compatible=True)

    def _near_limit(self, fd: int) -> bool:
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        return soft != resource.RLIM_INFINITY and fd >= soft - self.headroom

    async def _at_fd_limit(self, sock: socket.socket) -> None:
        """accept() said EMFILE/ENFILE: refuse one waiting connection with the reserve descriptor."""
        if self._reserve is None:
            self._reopen_reserve()
        if self._reserve is None:
            self._warn("out of file descriptors, none in reserve: accepting pauses for %g s at a time", self.retry_s)
            await trio.sleep(self.retry_s)
            return
        os.close(self._reserve)
        self._reserve = None
        try:
            conn, _ = sock.accept()
        except BlockingIOError:
            conn = None  # no one was waiting: Linux checks for a free descriptor first
        except OSError:
            conn = None
        if conn is not None:
            self._refuse(conn)
        self._reopen_reserve()
        if conn is None:
            await trio.lowlevel.wait_readable(sock)
        else:
            await trio.lowlevel.checkpoint()

    def _reopen_reserve(self) -> None:
        try:
            self._reserve = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        except OSError:
            self._reserve = None

    def _refuse(self, conn: socket.socket) -> None:
        """Answer 503 (plain HTTP) and close, without waiting for anything."""
        try:
            conn.setblocking(False)
            if self.ssl_context is None:
                conn.send(REFUSAL)
                conn.recv(65536)  # what the client sent already: closing on unread data would reset
        except OSError:
            pass  # BlockingIOError (nothing sent yet) included: best effort
        finally:
            conn.close()
        self._refused += 1
        soft, _ = resource.getrlimit(resource.RLIMIT_NOFILE)
        self._warn(
            "near the open-file limit (%d, see `ulimit -n`): %d new connection(s) refused with a 503 "
            "so far; connections already open are still served",
            soft,
            self._refused,
        )

    def _warn(self, message: str, *args: object) -> None:
        now = trio.current_time()
        if now - self._warned_at >= self.warn_every_s:
            self._warned_at = now
            logger.warning(message, *args)
