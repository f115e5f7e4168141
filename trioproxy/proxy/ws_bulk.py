"""The websocket relay's bulk path: a big payload read in big pieces into a pooled buffer, either way.

Inside a frame whose payload still to come is at least ``WS_BULK_MIN_BYTES``
(:attr:`trioproxy.rules.frames.FrameTracker.passing`), :func:`relay` reads up to
that payload's end (at most ``WS_BULK_READ_BYTES``) in one call into a buffer
of :data:`POOL`, tells the tracker (:meth:`FrameTracker.skip`) and writes a view
of it to the other side: from the app in ``Relay.app_to_client``, from the client
in the server's read loop (``server/tcp.py`` ``_read_diverted``, through
``Relay.from_client_fd``). Against the 64 KiB reads of the usual path
(``WS_APP_RECEIVE_BYTES``, ``WS_CLIENT_RECEIVE_BYTES``): fewer reads, writes and trips through the relay's
loop per MiB, and no new bytes object per read (one over glibc's mmap
threshold is an mmap, a munmap and its page faults per read). A read never
goes past the frame's end, so the tracker sees every header as before and
the relay's control frames still go only between frames.

A buffer is taken after the socket is readable and given back once its bytes
are written: a websocket that waits for the app holds none (an idle websocket
costs nothing more), and the pool keeps at most ``WS_BULK_BUFFERS_KEPT`` for
the next reads. At most ``WS_BULK_BUFFERS_MAX`` are lent at once (many
websockets writing big messages to slow clients): beyond that, reads are the
usual ones, so these buffers never hold more than that many MiB. Nothing
keeps a view after the write returns: each write returns once all of it is
written (the client's, :meth:`trioproxy.server.ws_stream.ProxyWSStream.write`,
writes the rest from the view itself; the app's, ``EagerStream.send_all``, too).
"""

from __future__ import annotations

import os
from collections.abc import Awaitable, Callable

from ..rules.frames import FrameTracker
from ..settings import WS_BULK_BUFFERS_KEPT, WS_BULK_BUFFERS_MAX, WS_BULK_MIN_BYTES, WS_BULK_READ_BYTES


class BufferPool:
    """Equal buffers lent out and given back: at most ``most`` lent at once, at most ``kept`` kept unused."""

    __slots__ = ("_free", "kept", "lent", "most", "size")

    def __init__(self, size: int, *, kept: int, most: int) -> None:
        self.size = size
        self.kept = kept
        self.most = most
        self._free: list[bytearray] = []
        #: Buffers taken and not given back yet.
        self.lent = 0

    @property
    def available(self) -> bool:
        """Whether :meth:`take` may be called (fewer than ``most`` lent)."""
        return self.lent < self.most

    def take(self) -> bytearray:
        if not self.available:
            raise RuntimeError("all the pool's buffers are lent")
        self.lent += 1
        return self._free.pop() if self._free else bytearray(self.size)

    def give(self, buf: bytearray) -> None:
        self.lent -= 1
        if len(self._free) < self.kept:
            self._free.append(buf)

    @property
    def idle(self) -> int:
        """Buffers kept, unused."""
        return len(self._free)


#: The process's bulk buffers (one trio thread: no lock).
POOL = BufferPool(WS_BULK_READ_BYTES, kept=WS_BULK_BUFFERS_KEPT, most=WS_BULK_BUFFERS_MAX)


def wanted(tracker: FrameTracker, pool: BufferPool = POOL) -> int:
    """Bytes a bulk read would take now: the payload still to come, if big enough and a buffer is
    free; else 0 (the usual read)."""
    left = tracker.passing
    return min(left, pool.size) if left >= WS_BULK_MIN_BYTES and pool.available else 0


async def relay(fd: int, want: int, tracker: FrameTracker, write: Callable[[memoryview], Awaitable[None]]) -> int:
    """One bulk read of at most ``want`` bytes (:func:`wanted`, not 0) from the readable ``fd``, and its
    write: the bytes moved, 0 at the end of that side (EOF). ``BlockingIOError`` if nothing was there.
    Both directions use it: the app's bytes to the client, the client's to the app."""
    buf = POOL.take()
    try:
        view = memoryview(buf)
        n = os.readv(fd, [view[:want]])
        if n:
            tracker.skip(n)
            await write(view[:n])
        return n
    finally:
        POOL.give(buf)
