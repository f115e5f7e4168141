"""The app's stdout and stderr: pumped line by line into the log, the last lines kept.

A pump reads for as long as the pipe is open, from the moment the process
starts, so the app can never block on a full pipe (the reference read nothing
until the app was ready). Lines are decoded as UTF-8 (bad bytes replaced) and
cut at a maximum length with a mark. They are logged on ``trioproxy.app``,
each tagged with its stream (``[stdout] ...``; the JSON log's ``stream``):
stdout at info, stderr at ``--app-stderr-level`` (info by default, as most
frameworks write their normal output there; the reference's was error).
"""

from __future__ import annotations

import collections
import logging

import trio

from ..rules.lines import LineSplitter
from ..settings import PIPE_READ_BYTES

logger = logging.getLogger("trioproxy.app")



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
            data = await stream.receive_some(PIPE_READ_BYTES)
            lines = splitter.feed(data) if data else splitter.flush()
            for line in lines:
                tail.add(f"[{name}] {line}")
                if echo:
                    logger.log(level, "[%s] %s", name, line)
            if not data:
                return
    except (trio.BrokenResourceError, trio.ClosedResourceError):
        return
