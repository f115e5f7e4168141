"""Just enough RFC 6455 for the benchmark's websocket peers (upstream echo and load generator).

The framing itself is trioproxy's pure :mod:`trioproxy.rules.frames`; this is its asyncio
glue. Small on purpose: the peers must cost far less CPU than the proxy under test, so there
is no extension, no fragmentation on send and no UTF-8 validation. The load generator masks
its frames with the all-zero key, which RFC 6455 allows (any 32-bit key); it makes masking
free for the generator while a proxy still has to apply it.
"""

from __future__ import annotations

import asyncio
import socket

from trioproxy.rules import frames as _frames

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = (int(op) for op in _frames.Opcode)

#: The all-zero masking key of the generator's frames.
ZERO_MASK = b"\x00\x00\x00\x00"

accept_key = _frames.accept_key
close_payload = _frames.close_payload


def frame(opcode: int, payload: bytes, *, masked: bool = False) -> bytes:
    """One final frame; ``masked`` uses the zero key (client to server)."""
    return _frames.encode(opcode, payload, mask_key=ZERO_MASK if masked else None)


async def read_frame(reader: asyncio.StreamReader) -> tuple[bool, int, bytes]:
    """(fin, opcode, unmasked payload) of the next frame; IncompleteReadError at EOF."""
    head = await reader.readexactly(_frames.MIN_HEADER)
    rest = _frames.header_size(head) - len(head)
    if rest:
        head += await reader.readexactly(rest)
    header = _frames.parse_header(head)
    assert header is not None  # header_size bytes are all it needs
    payload = await reader.readexactly(header.length) if header.length else b""
    if header.mask_key is not None:
        payload = _frames.mask(header.mask_key, payload)
    return header.fin, header.opcode, payload


async def read_message(reader: asyncio.StreamReader) -> tuple[int, bytes]:
    """(opcode, payload) of the next message, joining fragments; a control frame alone is returned as is."""
    fin, opcode, payload = await read_frame(reader)
    if fin or opcode >= OP_CLOSE:
        return opcode, payload
    parts = [payload]
    while True:
        fin, op, more = await read_frame(reader)
        if op == OP_CLOSE:
            return op, more
        if op >= OP_CLOSE:  # a ping or pong between fragments: not part of the message
            continue
        parts.append(more)
        if fin:
            return opcode, b"".join(parts)


def close_code(payload: bytes) -> int | None:
    return _frames.parse_close(payload)[0]


class Skimmer:
    """Frames followed through a byte stream fed in any pieces, without copying data payloads.

    For the bulk paths of the benchmark's peers (1 MiB messages): the reader reads into one
    preallocated buffer (``recv_into``) and feeds views of it; a binary payload is counted and
    skipped, never made into an object. Text and control frames (the peers' small commands and
    answers) are kept, unmasked. :meth:`feed` returns the messages completed in the piece, each
    (opcode, payload length, payload: empty for binary), joining fragments; a control frame alone.
    """

    __slots__ = ("_ctl", "_fin", "_head", "_keep", "_key", "_left", "_op", "_size", "_text")

    def __init__(self) -> None:
        self._head = bytearray()  # the start of a header a piece ended in
        self._left = 0  # payload bytes of the current frame still to come
        self._keep: bytearray | None = None  # the current frame's payload, when it is kept
        self._key: bytes | None = None
        self._fin = True
        self._ctl = 0  # the current frame's opcode when it is a control frame, else 0
        self._op = 0  # the open message's opcode
        self._size = 0  # payload bytes of the open message so far
        self._text = bytearray()  # the open text message's payload so far

    @property
    def skippable(self) -> int:
        """Payload bytes of the current frame still to come that need not be seen (a binary one's)."""
        return self._left if self._keep is None else 0

    def skip(self, n: int) -> list[tuple[int, int, bytes]]:
        """``n`` (at most :attr:`skippable`) bytes of the payload went by unseen; like :meth:`feed`."""
        assert 0 < n <= self.skippable
        self._left -= n
        out: list[tuple[int, int, bytes]] = []
        if not self._left:
            self._frame_done(out)
        return out

    @property
    def idle(self) -> bool:
        """All that was fed ends a frame."""
        return not self._left and not self._head

    def feed(self, view: memoryview) -> list[tuple[int, int, bytes]]:
        out: list[tuple[int, int, bytes]] = []
        n, at = len(view), 0
        while at < n:
            left = self._left
            if left:
                take = min(left, n - at)
                if self._keep is not None:
                    self._keep += view[at : at + take]
                self._left = left - take
                at += take
                if not self._left:
                    self._frame_done(out)
                continue
            head = self._head
            had = len(head)
            take = min(n - at, _frames.MAX_HEADER - had)
            head += view[at : at + take]
            need = _frames.header_size(head)
            if len(head) < need:
                return out  # all of the rest starts a header
            header = _frames.parse_header(head)
            assert header is not None
            del head[:]
            at += need - had
            self._frame_start(header.fin, header.opcode, header.length, header.mask_key, out)
        return out

    def _frame_start(self, fin: bool, opcode: int, length: int, key: bytes | None,
                     out: list[tuple[int, int, bytes]]) -> None:
        self._fin, self._key, self._left = fin, key, length
        if opcode >= OP_CLOSE:
            self._ctl = opcode
        else:
            self._ctl = 0
            if opcode != OP_CONT:
                self._op, self._size = opcode, 0
                del self._text[:]
            self._size += length
        self._keep = bytearray() if self._ctl or self._op == OP_TEXT else None
        if not length:
            self._frame_done(out)

    def _frame_done(self, out: list[tuple[int, int, bytes]]) -> None:
        payload = b""
        if self._keep is not None:
            payload = _frames.mask(self._key, bytes(self._keep)) if self._key is not None else bytes(self._keep)
            self._keep = None
        if self._ctl:
            out.append((self._ctl, len(payload), payload))
            return
        self._text += payload
        if self._fin:
            out.append((self._op, self._size, bytes(self._text)))
            del self._text[:]



#: What a bulk reader reads at once where it needs the bytes (headers, text and control frames).
BULK_HEAD_READ = 4096


async def _readable(sock: socket.socket) -> None:
    loop = asyncio.get_running_loop()
    ready = loop.create_future()
    fd = sock.fileno()
    loop.add_reader(fd, lambda: ready.done() or ready.set_result(None))
    try:
        await ready
    finally:
        loop.remove_reader(fd)


async def bulk_read(sock: socket.socket, buf: bytearray, skim: Skimmer) -> list[tuple[int, int, bytes]] | None:
    """One read from the non-blocking ``sock`` (no transport on its descriptor) through ``skim``: the
    messages it completed, None at the end of the stream.

    A binary payload is discarded in the kernel (``MSG_TRUNC``: TCP drops the bytes without copying
    them out), its length counted; only headers, text and control frames are read into ``buf``.
    (A low-water mark, ``SO_RCVLOWAT``, to wake less often cost more than it saved: stalls.)
    """
    skip = skim.skippable
    while True:
        await _readable(sock)
        try:
            if skip:
                n = sock.recv_into(buf, min(skip, len(buf)), socket.MSG_TRUNC)
                return skim.skip(n) if n else None
            n = sock.recv_into(buf, BULK_HEAD_READ)
            return skim.feed(memoryview(buf)[:n]) if n else None
        except (BlockingIOError, InterruptedError):
            continue

