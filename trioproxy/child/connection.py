"""Connections to the app: where it is (:data:`Target`, a TCP port or a Unix socket), the
one way to connect there (:func:`open_socket`), and a small keep-alive pool of HTTP/1.1
(h11) connections, with the readiness probe.

Why not httpx on this hop: the proxy must send the request-target byte for
byte, pass ``Content-Encoding`` and every header through untouched, share no
cookie jar, read no proxy settings from the environment, and stream both
bodies with backpressure and prompt cancellation. httpx does some of that only
with care (``aiter_raw``, ``trust_env=False``, a no-op jar) and costs about
0.8 ms of CPU per request on loopback; a direct h11 connection does all of it
by construction. httpx stays in use where it is the right tool (the Hub API).
"""

from __future__ import annotations

import logging
import select
import socket
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import h11
import trio

from ..errors import UpstreamError
from ..settings import APP_RECEIVE_BYTES

logger = logging.getLogger("trioproxy.child")


@dataclass(frozen=True)
class TcpTarget:
    """The app listens on a TCP port of a local address."""

    host: str
    port: int

    @property
    def authority(self) -> str:
        """The ``Host`` of a request that brings none."""
        return f"localhost:{self.port}"

    def __str__(self) -> str:
        return f"http://[{self.host}]:{self.port}" if ":" in self.host else f"http://{self.host}:{self.port}"


@dataclass(frozen=True)
class UnixTarget:
    """The app listens on a Unix socket (``{unix_socket}``)."""

    path: str

    @property
    def authority(self) -> str:
        return "localhost"

    def __str__(self) -> str:
        return f"unix:{self.path}"


#: Where the app is reached: one value, in the app's state and the pool.
Target = TcpTarget | UnixTarget


async def open_socket(target: Target) -> socket.socket:
    """A connected, non-blocking socket to the app: the one way to reach it (the pool,
    the readiness probe and the websocket bridge connect here). TCP gets TCP_NODELAY.

    Raises:
        OSError: refused, not there (no socket file), or not allowed.
    """
    if isinstance(target, UnixTarget):
        candidates: list[tuple[int, int, int, Any]] = [
            (socket.AF_UNIX, socket.SOCK_STREAM, 0, target.path)
        ]
    else:
        infos = await trio.socket.getaddrinfo(target.host, target.port, type=socket.SOCK_STREAM)
        candidates = [(family, kind, proto, address) for family, kind, proto, _, address in infos]
    error: OSError | None = None
    for family, kind, proto, address in candidates:
        raw = socket.socket(family, kind, proto)
        raw.setblocking(False)
        try:
            await trio.socket.from_stdlib_socket(raw).connect(address)
        except OSError as exc:
            raw.close()
            error = exc
            continue
        except BaseException:
            raw.close()
            raise
        if family != socket.AF_UNIX:
            raw.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        return raw
    raise error if error is not None else OSError(f"no address for {target}")


async def open_stream(target: Target) -> trio.SocketStream:
    """:func:`open_socket` as a trio stream."""
    return trio.SocketStream(trio.socket.from_stdlib_socket(await open_socket(target)))


def _refused(target: Target, exc: OSError) -> str:
    where = f"on port {target.port}" if isinstance(target, TcpTarget) else f"on its socket {target.path}"
    return f"the app refused the connection {where} ({exc.strerror or exc})"


class Connection:
    """One h11 client connection. Not safe for concurrent requests (h11 is sequential)."""

    def __init__(self, stream: trio.SocketStream) -> None:
        self.stream = stream
        self.h11 = h11.Connection(h11.CLIENT, max_incomplete_event_size=256 * 2**10)
        self.reused = False
        #: Bytes the app sent in the current exchange (0: not one byte of an answer came).
        self.received = 0

    async def send(self, *events: h11.Event) -> None:
        data = b"".join(self.h11.send(e) or b"" for e in events)
        if data:
            await self.stream.send_all(data)

    async def send_data(self, data: bytes) -> None:
        await self.stream.send_all(self.h11.send(h11.Data(data=data)) or b"")

    async def next_event(self, before_wait: Callable[[], None] | None = None) -> h11.Event:
        """The next event from the app; ``before_wait()`` is called before waiting for its bytes."""
        while True:
            event = self.h11.next_event()
            if event is h11.NEED_DATA:
                if before_wait is not None:
                    before_wait()
                data = await self.stream.receive_some(APP_RECEIVE_BYTES)
                self.received += len(data)
                self.h11.receive_data(bytes(data))
                continue
            return event  # type: ignore[return-value]

    def buffered_event(self) -> h11.Event | None:
        """The next event if what was read already holds it (no I/O), else None."""
        event = self.h11.next_event()
        return None if event is h11.NEED_DATA else event  # type: ignore[return-value]

    @property
    def reusable(self) -> bool:
        return self.h11.our_state is h11.DONE and self.h11.their_state is h11.DONE

    def surplus(self) -> int:
        """Bytes the app sent past the end of the response just read (h11 holds them unparsed).

        A body to HEAD, a body on 204/304, more than the Content-Length, bytes after
        the last chunk: after ``start_next_cycle`` h11 would parse them as the answer
        to the NEXT request on this connection, another user's.
        """
        return len(self.h11.trailing_data[0])

    def looks_alive(self) -> bool:
        """An idle connection is alive if nothing (EOF or junk) is waiting to be read.

        Junk (bytes the app sent while the connection was idle: the late rest of a
        sloppy answer) is logged; EOF (the app closed an idle connection) is normal.
        """
        try:
            fd = self.stream.socket.fileno()
            readable, _, _ = select.select([fd], [], [], 0)
            if not readable:
                return True
            sock = self.stream.socket
            # A peek through a duplicate of the descriptor: trio's own recv is async, and this
            # check is synchronous (it only runs when select said readable: EOF or junk).
            with socket.fromfd(fd, sock.family, sock.type) as peek:
                junk = peek.recv(1, socket.MSG_PEEK | socket.MSG_DONTWAIT)
        except (OSError, ValueError):
            return False
        if junk:
            logger.warning(
                "the app sent bytes on an idle keep-alive connection (the rest of an earlier answer?): "
                "connection closed, not reused"
            )
        return False

    def close(self) -> None:
        """Close at once (sync): safe in cleanup, even when cancelled."""
        self.stream.socket.close()


class Pool:
    """Keep-alive connections to one app address.

    Resource handling: a connection is either lent to exactly one request or
    idle here; :meth:`release` puts it back only if its last exchange ended
    cleanly, else closes it. :meth:`reset` (new app incarnation) closes all idle.
    """

    def __init__(self, max_idle: int) -> None:
        self.max_idle = max_idle
        self.address: Target | None = None
        self._idle: list[Connection] = []

    def reset(self, address: Target | None) -> None:
        self.address = address
        idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    async def connect(self) -> Connection:
        """A new connection to the app.

        Raises:
            UpstreamError: 502 when the app refuses or is not there.
        """
        target = self.address
        if target is None:
            raise UpstreamError(502, "the app is not running")
        try:
            stream = await open_stream(target)
        except OSError as exc:
            raise UpstreamError(502, _refused(target, exc)) from None
        return Connection(stream)

    async def acquire(self) -> Connection:
        while self._idle:
            conn = self._idle.pop()
            if conn.looks_alive():
                conn.reused = True
                conn.received = 0
                return conn
            conn.close()
        return await self.connect()

    def release(self, conn: Connection, what: str = "a request") -> None:
        """Keep ``conn`` for the next request if its exchange ended cleanly, else close it.

        ``what`` (method and path, no query) names the exchange in a warning.
        Like nginx ("upstream sent more data than specified in Content-Length"):
        the answer was delivered as framed; what the app sent past its end is
        dropped with the connection, so it can never become the next answer.
        """
        if not conn.reusable:
            conn.close()
            return
        surplus = conn.surplus()
        if surplus:
            logger.warning(
                "%s: the app sent %d byte(s) past the end of its response (a body to HEAD or on 204/304, more "
                "than its Content-Length, or after the last chunk): connection closed, not reused", what, surplus
            )
            conn.close()
            return
        if len(self._idle) < self.max_idle and self.address is not None:
            conn.h11.start_next_cycle()
            self._idle.append(conn)
        else:
            conn.close()


async def probe(targets: Sequence[Target], path: str, timeout_s: float | None) -> Target | None:
    """GET ``path`` on each target in turn; return the first that answers any HTTP status.

    Connection errors and malformed answers count as "not ready". Each attempt
    is bounded by ``timeout_s`` (None: by the caller's deadline only).
    """
    for target in targets:
        with trio.move_on_after(timeout_s if timeout_s is not None else float("inf")):
            try:
                stream = await open_stream(target)
            except OSError:
                continue
            conn = Connection(stream)
            try:
                await conn.send(
                    h11.Request(
                        method="GET",
                        target=path.encode(),
                        headers=[(b"host", target.authority.encode()), (b"user-agent", b"trioproxy-probe")],
                    ),
                    h11.EndOfMessage(),
                )
                event = await conn.next_event()
                while isinstance(event, h11.InformationalResponse):
                    event = await conn.next_event()
                if isinstance(event, h11.Response):
                    return target
            except (OSError, trio.BrokenResourceError, trio.ClosedResourceError, h11.ProtocolError) as exc:
                logger.debug("readiness probe of %s failed: %r", target, exc)
            finally:
                conn.close()
    return None
