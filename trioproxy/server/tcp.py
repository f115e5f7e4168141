"""Hypercorn's per-connection server, with a bound on a client that stops reading
and no descriptor held after a client has closed.

Hypercorn's ``TCPServer.protocol_send`` writes under a shield with no time
limit: a client that never reads (its receive window full) holds the
connection, its task and the app's response forever, and it is exactly what a
slow-read attack looks like. Here each write must leave within ``stall_s``;
one that does not means the client has stopped reading. Part of it may be in
the kernel's buffer already, so the stream cannot go on: the connection is
aborted (RST, which also frees the unsent bytes at once) and the protocol told
``Closed()``, so the app's side sees the client gone.

Minimum rate: one write is one h11 event (a response head, one body chunk as
read from the app, at most 256 KiB; one websocket frame, up to
``--websocket-max-message-size``), cut into pieces of :data:`CLIENT_SEND_PIECE_BYTES`
that must each be taken by the kernel within ``stall_s``. A client reading
more slowly than 256 KiB per 60 s (about 4 KiB/s) on top of what the socket
buffers hold is cut; one that reads nothing but is sent nothing (an idle
event stream or websocket) is never cut here.

Savings on every request: an empty write (the end of a body with a
Content-Length) is skipped; a write the kernel takes at once is one send,
with no pass through trio's scheduler (:meth:`StallBoundTCPServer.protocol_send`);
reads go into one buffer per run (:func:`receive`); and hypercorn's
keep-alive timer is :class:`.idle.IdleTimer`.

Two more changes to hypercorn's server:

* Each connection's h11 parser is :class:`.h11_guard.GuardedConnection`
  (strict heads, HTTP/1.1 only, nothing read after a last request), and its
  websocket stream :class:`.ws_stream.ProxyWSStream`.
* When the protocol says the connection is over (``Closed``: an answer with
  ``Connection: close``, a refused request), the socket is closed under a
  shield. Hypercorn's close has checkpoints, and it runs in the task that sent
  the last of the response: the ASGI app's. Quart cancels that task when it
  hears the request is over (the ``http.disconnect`` hypercorn sends just
  before), so every answer of trioproxy's Quart app with ``Connection: close``
  left the socket open until the client went away.

What this builds on in hypercorn (its per-connection server, the protocol
inside it) is :class:`trioproxy.compat.hypercorn.ServerConnection`.
"""

from __future__ import annotations

import logging
import os
import socket
import struct
from collections.abc import Awaitable, Callable
from typing import Any

import trio
from hypercorn.events import Closed, Event, RawData

from ..compat.hypercorn import ServerConnection, Worker
from ..settings import CLIENT_RECEIVE_BYTES, CLIENT_SEND_PIECE_BYTES, EAGER_RUN_CALLS
from .h11_guard import GuardedConnection
from .idle import IdleTimer
from .ws_stream import ProxyWSStream

logger = logging.getLogger("trioproxy.server")



#: SO_LINGER on, 0 s: close() sends RST and drops unsent data.
_LINGER_ABORT = struct.pack("ii", 1, 0)

#: The run's buffer for reads from clients (:func:`receive`): one per trio run.
_SCRATCH: trio.lowlevel.RunVar[memoryview] = trio.lowlevel.RunVar("trioproxy client read buffer")


def _scratch() -> memoryview:
    """This trio run's client read buffer (CLIENT_RECEIVE_BYTES), made at its first read."""
    try:
        return _SCRATCH.get()
    except LookupError:
        buffer = memoryview(bytearray(CLIENT_RECEIVE_BYTES))
        _SCRATCH.set(buffer)
        return buffer


class StallBoundTCPServer(ServerConnection):
    """hypercorn's per-connection server whose writes give up after ``stall_s``."""

    def __init__(self, worker: Worker, stream: Any, *, stall_s: float) -> None:
        app, config, context, state = worker.connection_args()
        max_head_bytes = config.h11_max_incomplete_size
        self._idle = IdleTimer()  # one task per connection, not two per request (see .idle)
        super().__init__(
            app, config, context, state, stream,
            idle_timer=self._idle,
            h11_connection=lambda: GuardedConnection(max_head_bytes),
            websocket_stream=ProxyWSStream,
        )
        self.stall_s = stall_s
        #: Writes in a row that passed without a checkpoint (see protocol_send).
        self._eager_writes = 0

    async def protocol_send(self, event: Event) -> None:
        if isinstance(event, Closed):
            with trio.CancelScope(shield=True):
                await self._end_stream()  # cannot block: a shutdown(2) and a close(2)
            await self.protocol.handle(Closed())
            return
        if not isinstance(event, RawData):
            await super().protocol_send(event)
            return
        if not event.data:
            return  # the end of a body with a Content-Length: nothing to write (a lock and a checkpoint saved)
        lock = self.send_lock
        if lock.locked() or not isinstance(self.stream, trio.SocketStream):
            async with lock:
                await self._write_locked(event.data)
            return
        # Nobody is writing: the lock is taken at once (no checkpoint) and the kernel given
        # what it takes now, so a head or a chunk that fits the socket's buffer (nearly every
        # write) costs one send and no pass through trio's scheduler (the lock and trio's
        # send_all yield once each). Only a rest waits, bounded and shielded like any write.
        # Every EAGER_RUN_CALLS such writes in a row, one yields all the same, so a sender
        # that has its data at hand (a body parsed from one read of the app) lets others run.
        lock.acquire_nowait()
        try:
            rest = _write_now(self.stream.socket, event.data)
            if rest is None:
                await self.protocol.handle(Closed())
            elif rest:
                await self._write_locked(rest)
        finally:
            lock.release()
        self._eager_writes = 0 if rest else self._eager_writes + 1
        if self._eager_writes >= EAGER_RUN_CALLS:
            self._eager_writes = 0
            await trio.lowlevel.cancel_shielded_checkpoint()

    async def send_rest(self, data: bytes | memoryview) -> None:
        """What the kernel did not take of a diverted websocket's write: the rest of a frame under
        way, so shielded (half a frame must not be left), and bounded like every write
        (:meth:`_write_locked`). ``data`` is written as it is (a view of the relay's buffer
        included) and not kept once this returns."""
        with trio.CancelScope(shield=True):
            async with self.send_lock:
                await self._write_locked(data)

    async def _write_locked(self, data: bytes | memoryview) -> None:
        """Write all of ``data``, the send lock held. A piece not taken within ``stall_s`` means
        the client stopped reading: the connection is cut (RST). A client gone is told to the
        protocol (``Closed``)."""
        try:
            sent = await self._send_bounded(data)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await self.protocol.handle(Closed())
            return
        if not sent:
            logger.info("a client at %s read nothing for %g s: connection cut", _peer(self.stream), self.stall_s)
            abort(self.stream)
            await self.protocol.handle(Closed())

    async def _end_stream(self) -> None:
        """A FIN after what was sent (plain TCP), then close (TLS: without waiting for close_notify)."""
        try:
            await self.stream.send_eof()
        except (AttributeError, trio.BrokenResourceError, trio.BusyResourceError, trio.ClosedResourceError):
            pass  # TLS (no half-close), gone already, or a write in progress: close all the same
        await self.stream.aclose()

    async def not_http11(self) -> None:
        logger.warning("a client at %s negotiated a protocol other than HTTP/1.1: closed", _peer(self.stream))

    async def read_loop(self) -> None:
        # hypercorn's loop without its read_timeout, which trioproxy does not set (stalls are
        # bounded per request and per write), with reads of CLIENT_RECEIVE_BYTES (256 KiB:
        # fewer, bigger chunks of an upload through hypercorn, h11 and the pump) that cost a
        # request head no more than a small read would (:func:`receive`). Reads of 64 KiB
        # until one came back full, then 256 KiB, alternated during an upload here (a full
        # 64 KiB, then a 256 KiB one with less than 64 KiB left to take): twice the chunks.
        reader = None
        while True:
            reader = self.diverted
            if reader is not None and isinstance(self.stream, trio.SocketStream):
                break
            reader = None
            try:
                data = await receive(self.stream, self.receive_bytes or CLIENT_RECEIVE_BYTES)
            except (trio.ClosedResourceError, trio.BrokenResourceError):
                break
            await self.protocol.handle(RawData(data))
            if not data:
                break
        if reader is not None:
            await self._read_diverted(reader)
        await self.protocol.handle(Closed())
        # The client is gone (EOF, reset, or cut). Hypercorn leaves its
        # keep-alive timer running, which holds the connection's task and
        # descriptor (in CLOSE-WAIT) for up to KEEP_ALIVE_S after every
        # client that closed an idle connection; the timer only runs while no
        # request is in flight, so stopping it here ends nothing else.
        await self._idle.stop()

    async def _read_diverted(self, reader: Callable[[bytes], Awaitable[None]]) -> None:
        """A diverted websocket's reads (plain TCP), until the connection ends: each straight to ``reader``.

        The relay's per-message path, so it is short: readiness first (a read right
        after the last one would mostly fail: a syscall saved per message), then one
        ``read``, no stream or socket wrapper in between (their frames, kept by every idle
        websocket's waiting task, are saved too). The descriptor is looked up before each
        read, with no checkpoint in between: once the socket is closed it is -1, never
        another connection's. What ends it is what ends hypercorn's loop: EOF (handed on
        to the protocol as hypercorn does), a reset, the socket closed under it.
        """
        sock = self.stream.socket
        size = self.receive_bytes or CLIENT_RECEIVE_BYTES
        wait_readable = trio.lowlevel.wait_readable
        bulk = self.bulk
        while True:
            try:
                await wait_readable(sock)
            except trio.ClosedResourceError:
                return
            fd = sock.fileno()
            if fd < 0:
                return
            try:
                if bulk is not None and (want := bulk.client_bulk()):
                    # Inside a big payload: the relay reads up to its end in one call (proxy/ws_bulk.py).
                    if not await bulk.from_client_fd(fd, want):
                        await self.protocol.handle(RawData(b""))
                        return
                    continue
                data = os.read(fd, size)
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                return  # reset: as trio's BrokenResourceError in hypercorn's loop
            if not data:
                await self.protocol.handle(RawData(b""))
                return
            await reader(data)

    async def _send_bounded(self, data: bytes | memoryview) -> bool:
        """Write ``data``; False if one piece (CLIENT_SEND_PIECE_BYTES) was not taken within ``stall_s``.

        Shielded like hypercorn's own write (a cancelled write would leave half a
        message on the wire), but bounded by its own deadline per piece. Plain TCP is
        written from ``data`` as it is, waiting for room only when the kernel takes
        nothing; TLS goes through its stream.
        """
        if not isinstance(self.stream, trio.SocketStream):
            view = memoryview(data)
            for start in range(0, len(view), CLIENT_SEND_PIECE_BYTES):
                with trio.CancelScope(shield=True, deadline=trio.current_time() + self.stall_s) as scope:
                    await self.stream.send_all(view[start : start + CLIENT_SEND_PIECE_BYTES])
                if scope.cancelled_caught:
                    return False
            return True
        sock = self.stream.socket
        view = memoryview(data)
        with trio.CancelScope(shield=True):
            deadline = trio.current_time() + self.stall_s
            taken = 0
            while view:
                fd = sock.fileno()  # -1 once closed; no checkpoint between it and the write
                if fd < 0:
                    raise trio.ClosedResourceError("the client's socket was closed")
                try:
                    n = os.write(fd, view)
                except (BlockingIOError, InterruptedError):
                    with trio.move_on_at(deadline) as scope:
                        await trio.lowlevel.wait_writable(sock)  # ClosedResourceError if closed meanwhile
                    if scope.cancelled_caught:
                        return False
                    continue
                except OSError as exc:
                    raise trio.BrokenResourceError(f"the client's connection failed: {exc}") from exc
                view = view[n:]
                taken += n
                if taken >= CLIENT_SEND_PIECE_BYTES:
                    taken, deadline = 0, trio.current_time() + self.stall_s
        return True



async def receive(stream: Any, size: int) -> bytes:
    """One read of up to ``size`` bytes from a client's stream (b"" at EOF), as trio's ``receive_some``.

    A plain TCP connection reads into the run's one scratch buffer
    (:func:`_scratch`) and keeps a copy of what came, so the read size can be
    CLIENT_RECEIVE_BYTES for every read: ``recv(256 KiB)`` allocates its 256 KiB
    first and shrinks it to what came, which glibc may serve with a fresh
    mapping each time (15 µs for a 100-byte read, measured here, against 1.3 µs
    at 64 KiB) depending on its state; the copy of a head is ~1 µs whatever that
    state. The buffer is safe to share: nothing runs between the read into it
    and the copy out (no checkpoint). trio's
    semantics are kept: cancellation is seen before a read (never after bytes
    were taken), a read that did not wait yields once, a socket closed by
    another task is :class:`trio.ClosedResourceError`, a reset
    :class:`trio.BrokenResourceError`. TLS goes through its stream as before.
    """
    if not isinstance(stream, trio.SocketStream):
        return bytes(await stream.receive_some(size))
    sock = stream.socket
    scratch = _scratch()
    view = scratch if size >= len(scratch) else scratch[:size]
    await trio.lowlevel.checkpoint_if_cancelled()
    waited = False
    while True:
        fd = sock.fileno()
        if fd < 0:
            raise trio.ClosedResourceError("the client's socket was closed")
        try:
            got = os.readv(fd, (view,))
        except (BlockingIOError, InterruptedError):
            await trio.lowlevel.wait_readable(sock)  # ClosedResourceError if it is closed meanwhile
            waited = True
            continue
        except OSError as exc:
            raise trio.BrokenResourceError(f"the client's connection failed: {exc}") from exc
        data = bytes(view[:got])
        break
    if not waited:
        await trio.lowlevel.cancel_shielded_checkpoint()
    return data


def _write_now(sock: trio.socket.SocketType, data: bytes) -> bytes | memoryview | None:
    """One non-blocking send of ``data``: what the kernel did not take (empty: all of it), or
    None if the socket is closed or broken. Synchronous: no checkpoint, nothing half-sent by a
    cancellation."""
    fd = sock.fileno()  # -1 once closed
    if fd < 0:
        return None
    try:
        sent = os.write(fd, data)
    except (BlockingIOError, InterruptedError):
        return memoryview(data)
    except OSError:
        return None  # reset or a broken pipe: as trio's BrokenResourceError
    return memoryview(data)[sent:] if sent < len(data) else b""


def abort(stream: Any) -> None:
    """Reset a client connection at once (plain or TLS): any task blocked on it wakes.

    Synchronous, so it is safe in cleanup and under cancellation.
    """
    sock = getattr(stream, "transport_stream", stream).socket
    try:
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, _LINGER_ABORT)
    except OSError:
        pass  # already closed or reset: closing is all that is left
    sock.close()


def _peer(stream: Any) -> str:
    try:
        host, port = getattr(stream, "transport_stream", stream).socket.getpeername()[:2]
    except (OSError, ValueError):
        return "?"
    return f"[{host}]:{port}" if ":" in host else f"{host}:{port}"
