"""The app's stdout and stderr: pumped line by line into the log, the last lines kept.

A pump reads for as long as the pipe is open, from the moment the process
starts, so the app can never block on a full pipe (the reference read nothing
until the app was ready). Lines are decoded as UTF-8 (bad bytes replaced) and
cut at a maximum length with a mark.
"""

from __future__ import annotations

import collections
import logging

import trio

logger = logging.getLogger("trioproxy.app")

#: Bytes read from a pipe per call.
READ_BYTES = 64 * 2**10


class LogTail:
    """The last lines of the app's output, for error pages and the owner's live view.

    Every line gets a sequence number (``count`` is the next one), so a
    follower can ask for what came after the last line it saw.
    """

    def __init__(self, maxlen: int) -> None:
        self._lines: collections.deque[str] = collections.deque(maxlen=maxlen)
        self.count = 0
        self._new = trio.Event()

    def add(self, line: str) -> None:
        self._lines.append(line)
        self.count += 1
        self._new.set()
        self._new = trio.Event()

    def lines(self, n: int | None = None) -> list[str]:
        lines = list(self._lines)
        return lines if n is None else lines[-n:]

    def since(self, seq: int) -> list[str]:
        """Lines numbered ``seq`` and later that are still kept."""
        fresh = self.count - seq
        if fresh <= 0:
            return []
        return list(self._lines)[-fresh:]

    async def wait_past(self, seq: int) -> None:
        """Return once a line numbered ``seq`` or later exists."""
        while self.count <= seq:
            await self._new.wait()

    def clear(self) -> None:
        self._lines.clear()


class LineSplitter:
    """Bytes in, complete lines out; an over-long line is cut with a mark. Pure."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self._buf = bytearray()
        self._head: bytes | None = None  # kept start of a line being cut
        self._dropped = 0  # bytes of that line cut so far

    def feed(self, data: bytes) -> list[str]:
        out = []
        self._buf += data
        while True:
            nl = self._buf.find(b"\n")
            if nl < 0:
                if len(self._buf) > self.max_bytes:
                    if self._head is None:
                        self._head = bytes(self._buf[: self.max_bytes])
                        self._dropped += len(self._buf) - self.max_bytes
                    else:
                        self._dropped += len(self._buf)
                    self._buf.clear()
                return out
            line = bytes(self._buf[:nl])
            del self._buf[: nl + 1]
            out.append(self._finish(line))

    def flush(self) -> list[str]:
        if self._buf or self._head is not None:
            line = bytes(self._buf)
            self._buf.clear()
            return [self._finish(line)]
        return []

    def _finish(self, line: bytes) -> str:
        if self._head is not None:
            text = _decode(self._head) + f" … [{self._dropped + len(line)} bytes cut]"
            self._head, self._dropped = None, 0
            return text
        if len(line) > self.max_bytes:
            cut = len(line) - self.max_bytes
            return _decode(line[: self.max_bytes]) + f" … [{cut} bytes cut]"
        return _decode(line)


def _decode(b: bytes) -> str:
    return b.rstrip(b"\r").decode("utf-8", errors="replace")


async def pump(
    stream: trio.abc.ReceiveStream,
    *,
    name: str,
    level: int,
    tail: LogTail,
    echo: bool,
    max_line_bytes: int,
) -> None:
    """Read ``stream`` to EOF; log each line at ``level`` (if ``echo``) and keep it in ``tail``."""
    splitter = LineSplitter(max_line_bytes)
    try:
        while True:
            data = await stream.receive_some(READ_BYTES)
            lines = splitter.feed(data) if data else splitter.flush()
            for line in lines:
                tail.add(f"[{name}] {line}")
                if echo:
                    logger.log(level, "[%s] %s", name, line)
            if not data:
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
