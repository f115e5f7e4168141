"""A stream to the app (TCP or Unix) that sends and receives at once when the socket is ready.

trio's ``SocketStream.send_all`` and ``receive_some`` yield to the scheduler
even when the kernel takes the bytes (or has some) immediately: a full pass of
trio's run loop (and an ``epoll_wait``) per call. On a websocket bridge, where
each small message is one send and one receive, that is a measurable share of
the work. :class:`EagerStream` first tries the plain non-blocking socket call
and falls back to trio's (which waits, and translates errors) only when the
socket would block or fails. To stay a good trio citizen it still yields
every :data:`EAGER_RUN_CALLS` eager calls, so a busy connection cannot starve others
and cancellation is noticed.

trio-websocket serialises its sends with a lock and receives from one task, so
the eager path needs no conflict detection of its own.

:attr:`EagerStream.reader`, while set, answers ``receive_some`` instead (the
websocket bridge reads the app's handshake answer itself that way, before
trio-websocket sees a byte of it; see ``_ws_proxy``).
"""

from __future__ import annotations

import socket
from collections.abc import Awaitable, Callable

import trio

from ..child.connection import Target, open_socket
from ..settings import EAGER_RECEIVE_BYTES, EAGER_RUN_CALLS


async def open_eager_stream(target: Target) -> EagerStream:
    """Connect to the app (TCP, with TCP_NODELAY, or its Unix socket) and wrap the stream."""
    raw = await open_socket(target)
    return EagerStream(trio.SocketStream(trio.socket.from_stdlib_socket(raw)), raw)


class EagerStream(trio.abc.HalfCloseableStream):
    def __init__(self, stream: trio.SocketStream, raw: socket.socket) -> None:
        self.stream = stream
        self.socket = stream.socket
        self._raw = raw
        self._run = 0
        #: While set, ``receive_some(n)`` returns ``await reader(n)`` (which reads ``self.stream``).
        self.reader: Callable[[int | None], Awaitable[bytes]] | None = None

    async def send_all(self, data: bytes | bytearray | memoryview) -> None:
        if self._run < EAGER_RUN_CALLS and data:
            try:
                sent = self._raw.send(data)
            except (BlockingIOError, InterruptedError):
                sent = 0
            except OSError:
                sent = -1  # let trio raise the right error
            if sent == len(data):
                self._run += 1
                return
            if sent >= 0:
                # The kernel took part or none: wait for room before the next send (at once it
                # would fail again, as trio's send_all's first try does), a big message's usual case.
                self._run = 0
                await self._send_when_writable(memoryview(data)[sent:])
                return
        self._run = 0
        await self.stream.send_all(data)

    async def _send_when_writable(self, view: memoryview) -> None:
        while view:
            await trio.lowlevel.wait_writable(self._raw)
            try:
                view = view[self._raw.send(view):]
            except (BlockingIOError, InterruptedError):
                continue
            except OSError:
                break  # let trio raise the right error
        if view:
            await self.stream.send_all(view)

    async def receive_some(self, max_bytes: int | None = None) -> bytes:
        if self.reader is not None:
            return await self.reader(max_bytes)
        size = max_bytes or EAGER_RECEIVE_BYTES
        if self._run < EAGER_RUN_CALLS:
            try:
                data = self._raw.recv(size)
            except (BlockingIOError, InterruptedError):
                # Wait here rather than in trio's receive_some, which would try (and fail) once more first.
                self._run = 0
                await trio.lowlevel.wait_readable(self._raw)
                try:
                    return self._raw.recv(size)
                except OSError:
                    pass  # let trio raise the right error (or wait again)
            except OSError:
                pass  # let trio raise the right error
            else:
                self._run += 1
                return data
        self._run = 0
        return await self.stream.receive_some(max_bytes)

    async def wait_send_all_might_not_block(self) -> None:
        await self.stream.wait_send_all_might_not_block()

    async def send_eof(self) -> None:
        await self.stream.send_eof()

    async def aclose(self) -> None:
        await self.stream.aclose()
