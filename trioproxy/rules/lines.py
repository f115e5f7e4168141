"""Splitting a process's output into lines, pure: bytes in, complete lines out.

One splitter for the app's output and the bootstrap commands' (git, conda):
lines are decoded as UTF-8 (bad bytes replaced), a ``\\r`` before the ``\\n``
is dropped, and a line longer than ``max_bytes`` is cut with a mark, the rest
of it dropped as it arrives (memory stays bounded by ``max_bytes`` plus one read).
"""

from __future__ import annotations

__all__ = ["LineSplitter"]


class LineSplitter:
    """Bytes in, complete lines out; an over-long line is cut with a mark. Pure.

    ``lone_cr``: a ``\\r`` alone ends a line too (git's progress meters redraw
    with it). ``skip_blank``: lines of white space only are not returned.
    """

    def __init__(self, max_bytes: int, *, lone_cr: bool = False, skip_blank: bool = False) -> None:
        self.max_bytes = max_bytes
        self.lone_cr = lone_cr
        self.skip_blank = skip_blank
        self._buf = bytearray()
        self._head: bytes | None = None  # kept start of a line being cut
        self._dropped = 0  # bytes of that line cut so far

    def _end(self) -> tuple[int, int]:
        """Where the first whole line in the buffer ends and its end's length; (-1, 0): none yet."""
        nl = self._buf.find(b"\n")
        if not self.lone_cr:
            return nl, 1
        cr = self._buf.find(b"\r", 0, nl if nl >= 0 else len(self._buf))
        if cr < 0:
            return nl, 1
        if cr + 1 == len(self._buf):
            return -1, 0  # a \r at the end: wait to see whether \n follows
        return cr, 2 if self._buf[cr + 1] == 0x0A else 1

    def feed(self, data: bytes | bytearray) -> list[str]:
        out: list[str] = []
        self._buf += data
        while True:
            end, width = self._end()
            if end < 0:
                if len(self._buf) > self.max_bytes:
                    if self._head is None:
                        self._head = bytes(self._buf[: self.max_bytes])
                        self._dropped += len(self._buf) - self.max_bytes
                    else:
                        self._dropped += len(self._buf)
                    self._buf.clear()
                return out
            line = bytes(self._buf[:end])
            del self._buf[: end + width]
            self._keep(out, self._finish(line))

    def flush(self) -> list[str]:
        """The unfinished last line, if any (at the end of the stream)."""
        out: list[str] = []
        if self._buf or self._head is not None:
            line = bytes(self._buf)
            self._buf.clear()
            self._keep(out, self._finish(line))
        return out

    def _keep(self, out: list[str], line: str) -> None:
        if not (self.skip_blank and not line.strip()):
            out.append(line)

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
