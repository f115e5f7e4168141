"""RFC 6455 websocket framing, pure: encode a frame, parse frame headers incrementally, close payloads.

No I/O and no state beyond the bytes given: a reader that gets its bytes in
any pieces asks :func:`header_size` how many it needs (two are enough to know),
then :func:`parse_header` for the header, exactly as it is on the wire (FIN,
RSV1-3, opcode, MASK, the 7/16/64-bit length as sent, the masking key).
:func:`violation` says what, if anything, RFC 6455 forbids in a header; the
parser itself never refuses one, so a test can see what a peer sent.
:class:`FrameReader` does both for a byte stream fed in arbitrary pieces.

Used by the benchmark's websocket peers, the tests' raw client and the test
apps. :class:`FrameTracker` is what the websocket relay
(:mod:`trioproxy.proxy.ws_relay`) follows each direction with: frame headers
only, payloads never decoded or unmasked.
"""

from __future__ import annotations

import base64
import enum
import hashlib
import struct
from dataclasses import dataclass

__all__ = [
    "GUID",
    "MAX_CONTROL_PAYLOAD",
    "MIN_HEADER",
    "FrameHeader",
    "FrameReader",
    "FrameTracker",
    "Opcode",
    "accept_key",
    "accept_problem",
    "close_payload",
    "encode",
    "encode_header",
    "header_size",
    "mask",
    "parse_close",
    "parse_header",
    "violation",
]

#: Close codes of the tracker's verdicts (RFC 6455 §7.4.1).
PROTOCOL_ERROR = 1002
TOO_BIG = 1009

#: The GUID of the opening handshake (RFC 6455 §1.3).
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: A control frame's payload is at most this long, in bytes (§5.5).
MAX_CONTROL_PAYLOAD = 125
#: Every header has at least these bytes: FIN/RSV/opcode, then MASK and the 7-bit length.
MIN_HEADER = 2
#: The longest header: 2 bytes, a 64-bit length and a masking key.
MAX_HEADER = 14
#: The 7-bit length values that announce a 16-bit and a 64-bit extended length.
_LEN16, _LEN64 = 126, 127
_ZERO_KEY = b"\x00\x00\x00\x00"


class Opcode(enum.IntEnum):
    """The opcodes RFC 6455 defines (3-7 and 0xB-0xF are reserved)."""

    CONTINUATION = 0x0
    TEXT = 0x1
    BINARY = 0x2
    CLOSE = 0x8
    PING = 0x9
    PONG = 0xA

    @staticmethod
    def is_control(opcode: int) -> bool:
        return opcode >= 0x8


_DEFINED = frozenset(int(op) for op in Opcode)


@dataclass(frozen=True)
class FrameHeader:
    """One frame's header, as sent."""

    fin: bool
    #: RSV1, RSV2, RSV3 as a 3-bit number (RSV1 is 0b100: permessage-deflate's bit).
    rsv: int
    #: 0 to 15; not necessarily an :class:`Opcode` (reserved ones are kept as sent).
    opcode: int
    #: The payload length, whichever of the three encodings carried it.
    length: int
    #: The masking key, or None for an unmasked frame.
    mask_key: bytes | None
    #: How many bytes the length took after the first two: 0, 2 or 8.
    length_bytes: int

    @property
    def masked(self) -> bool:
        return self.mask_key is not None

    @property
    def size(self) -> int:
        """Bytes of this header on the wire."""
        return MIN_HEADER + self.length_bytes + (4 if self.mask_key is not None else 0)

    @property
    def rsv1(self) -> bool:
        return bool(self.rsv & 0b100)

    @property
    def rsv2(self) -> bool:
        return bool(self.rsv & 0b010)

    @property
    def rsv3(self) -> bool:
        return bool(self.rsv & 0b001)


def accept_key(key: bytes) -> bytes:
    """``Sec-WebSocket-Accept`` for a ``Sec-WebSocket-Key`` (surrounding white space ignored)."""
    return base64.b64encode(hashlib.sha1(key.strip() + GUID).digest())


def mask(key: bytes, data: bytes) -> bytes:
    """``data`` XOR the repeated 4-byte ``key``: masks and unmasks alike (§5.3)."""
    if key == _ZERO_KEY or not data:
        return bytes(data)
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


def encode_header(
    opcode: int, length: int, *, fin: bool = True, rsv: int = 0, mask_key: bytes | None = None
) -> bytes:
    """A header announcing ``length`` payload bytes, in the shortest length encoding."""
    if not 0 <= opcode <= 0xF or not 0 <= rsv <= 0b111:
        raise ValueError(f"opcode {opcode} or rsv {rsv} out of range")
    if not 0 <= length < 1 << 64:
        raise ValueError(f"length {length} out of range")
    if mask_key is not None and len(mask_key) != 4:
        raise ValueError("a masking key has 4 bytes")
    bit = 0x80 if mask_key is not None else 0
    head = bytes([(0x80 if fin else 0) | (rsv << 4) | opcode])
    if length < _LEN16:
        head += bytes([bit | length])
    elif length < 1 << 16:
        head += bytes([bit | _LEN16]) + struct.pack("!H", length)
    else:
        head += bytes([bit | _LEN64]) + struct.pack("!Q", length)
    return head + (mask_key or b"")


def encode(
    opcode: int,
    payload: bytes,
    *,
    fin: bool = True,
    rsv: int = 0,
    mask_key: bytes | None = None,
    length: int | None = None,
) -> bytes:
    """One frame: header and payload (masked with ``mask_key`` when given).

    ``length`` announces another payload length than ``payload``'s (a test's
    lie, or a stall); it is the only way to write a frame that is not well formed
    here, apart from reserved opcodes and bits, which are written as given.
    """
    n = len(payload) if length is None else length
    header = encode_header(opcode, n, fin=fin, rsv=rsv, mask_key=mask_key)
    return header + (mask(mask_key, payload) if mask_key is not None else bytes(payload))


def header_size(start: bytes | bytearray | memoryview) -> int:
    """Bytes the header needs in all, from its first two (fewer than two: :data:`MIN_HEADER`)."""
    if len(start) < MIN_HEADER:
        return MIN_HEADER
    b1 = start[1]
    n = b1 & 0x7F
    extra = 2 if n == _LEN16 else 8 if n == _LEN64 else 0
    return MIN_HEADER + extra + (4 if b1 & 0x80 else 0)


def parse_header(data: bytes | bytearray | memoryview) -> FrameHeader | None:
    """The header at the start of ``data``, or None while fewer than :func:`header_size` bytes are there.

    Exact: every field as sent, a non-minimal length encoding and a 64-bit
    length with its top bit set included (see :func:`violation`).
    """
    need = header_size(data)
    if len(data) < need:
        return None
    b0, b1 = data[0], data[1]
    n = b1 & 0x7F
    at = MIN_HEADER
    length_bytes = 0
    if n == _LEN16:
        length_bytes = 2
        (n,) = struct.unpack_from("!H", data, at)
    elif n == _LEN64:
        length_bytes = 8
        (n,) = struct.unpack_from("!Q", data, at)
    at += length_bytes
    key = bytes(data[at : at + 4]) if b1 & 0x80 else None
    return FrameHeader(
        fin=bool(b0 & 0x80), rsv=(b0 >> 4) & 0b111, opcode=b0 & 0x0F, length=n, mask_key=key,
        length_bytes=length_bytes,
    )


def violation(header: FrameHeader) -> str | None:
    """What RFC 6455 forbids in ``header`` itself (reserved bits aside: an extension may use them), or None."""
    if header.opcode not in _DEFINED:
        return f"reserved opcode {header.opcode:#x}"
    if Opcode.is_control(header.opcode):
        if not header.fin:
            return "a fragmented control frame"
        if header.length > MAX_CONTROL_PAYLOAD:
            return f"a control frame with {header.length} payload bytes"
    if header.length_bytes == 8 and header.length >> 63:
        return "a 64-bit length with its most significant bit set"
    if (header.length_bytes == 2 and header.length < _LEN16) or (header.length_bytes == 8 and header.length < 1 << 16):
        return "a length not in its shortest encoding"
    return None


def accept_problem(
    headers: list[tuple[bytes, bytes]], key: bytes, offered: list[str]
) -> tuple[str | None, str | None]:
    """Check a server's 101 to a handshake that sent ``key`` and offered ``offered`` subprotocols
    and no extension (RFC 6455 §4.1): (what is wrong or None, the subprotocol chosen or None).

    ``headers`` are the 101's, names in lower case (as h11 gives them).
    """
    upgrade = connection = accept = None
    protocols: list[bytes] = []
    for name, value in headers:
        if name == b"upgrade":
            upgrade = value
        elif name == b"connection":
            connection = value
        elif name == b"sec-websocket-accept":
            accept = value.strip()
        elif name == b"sec-websocket-protocol":
            protocols.append(value.strip())
        elif name == b"sec-websocket-extensions" and value.strip():
            return f"an extension nobody offered ({value.decode('latin-1')[:60]})", None
    if upgrade is None or upgrade.strip().lower() != b"websocket":
        return "no Upgrade: websocket", None
    if connection is None or b"upgrade" not in [t.strip().lower() for t in connection.split(b",")]:
        return "no Connection: upgrade", None
    if accept != accept_key(key):
        return "a wrong Sec-WebSocket-Accept", None
    if not protocols:
        return None, None
    chosen = protocols[0].decode("latin-1")
    if len(protocols) > 1 or chosen not in offered:
        return f"a subprotocol nobody offered ({chosen[:60]})", None
    return None, chosen


def close_payload(code: int, reason: bytes = b"") -> bytes:
    """A close frame's payload: the 2-byte code, then the reason."""
    return struct.pack("!H", code) + reason


def parse_close(payload: bytes) -> tuple[int | None, bytes]:
    """(code, reason) of a close frame's payload; (None, b"") when it has none."""
    if len(payload) < 2:
        return None, b""
    return struct.unpack_from("!H", payload)[0], bytes(payload[2:])


class FrameReader:
    """Bytes in, in any pieces; whole frames out as ``(header, unmasked payload)``.

    Holds at most one frame's bytes beyond what it was given back.
    """

    def __init__(self) -> None:
        self._buf = bytearray()

    def feed(self, data: bytes | bytearray | memoryview) -> list[tuple[FrameHeader, bytes]]:
        self._buf += data
        out = []
        while (header := parse_header(self._buf)) is not None:
            end = header.size + header.length
            if len(self._buf) < end:
                break
            payload = bytes(self._buf[header.size : end])
            del self._buf[:end]
            out.append((header, mask(header.mask_key, payload) if header.mask_key is not None else payload))
        return out

    @property
    def pending(self) -> int:
        """Bytes received that are not yet part of a whole frame."""
        return len(self._buf)


class FrameTracker:
    """One direction of a websocket, followed from its frame headers alone; payloads pass untouched.

    Sans-IO and pure: :meth:`feed` takes the bytes as they arrive, in any
    pieces, and returns what may be passed on (the very object given, in the
    common case: no copy). What it holds to (RFC 6455 §5), from the headers:

    * frames from a client are masked, frames from a server are not (§5.1);
    * no reserved bit is set (no extension is ever negotiated: §5.2), no
      reserved opcode is used, control frames are whole and at most 125
      bytes (§5.5), lengths are in their shortest encoding, and fragments
      follow each other (§5.4): each a :data:`PROTOCOL_ERROR`;
    * no frame and no message announces more than ``limit`` payload bytes
      (:data:`TOO_BIG`), decided at the header, before any of the payload.

    On a breach, ``error`` is (code, reason) and the bytes before the bad
    header are all that pass (they end a frame: a control frame may follow).
    After a close frame has passed whole, ``closed`` is set and nothing more
    passes (RFC 6455 §5.5.1: nothing follows a close frame).

    What it leaves to the endpoints, like nginx and configurable-http-proxy:
    UTF-8 in text messages and close reasons (§8.1), and the close code (§7.4).
    Checking them here would mean decoding (and for a client, unmasking)
    every payload, and a conformant app must see every such case, and answer
    it, exactly as it would without trioproxy in between.

    Bookkeeping: ``messages`` counts data messages (at their last frame's
    header), ``payload`` the data payload bytes announced; ``boundary`` is
    the offset, in what the last :meth:`feed` returned, of the last frame
    boundary in it (-1: none), and :attr:`at_boundary` whether all that passed
    so far ends a frame: a control frame of the relay's own may go there.

    A reader that moves payload bytes without looking at them (the relay's big reads) tells
    the tracker with :meth:`skip`, up to :attr:`passing` bytes at a time.

    ``pong``, when set, is the payload of a ping the relay sent: a pong that
    answers it (whole within one fed piece, as such small frames arrive) is
    taken out of what passes, and ``pong`` is cleared (``answered`` counts them). A pong
    split across pieces passes on, which is harmless: an unsolicited pong is
    allowed and needs no answer (§5.5.3).
    """

    __slots__ = ("_closing", "_control", "_fragmented", "_head", "_left", "_size", "answered", "boundary",
                 "closed", "error", "from_client", "limit", "messages", "payload", "pong")

    def __init__(self, *, from_client: bool, limit: int) -> None:
        self.from_client = from_client
        self.limit = limit
        self.pong: bytes | None = None
        self.answered = 0
        self.messages = 0
        self.payload = 0
        self.boundary = -1
        self.closed = False
        self.error: tuple[int, str] | None = None
        self._head = b""  # the start of a header that a piece ended in
        self._left = 0  # payload bytes of the current frame still to come
        self._control = False  # the current frame is a control frame
        self._closing = False  # the current frame is a close frame
        self._fragmented = False  # a data message is open (its last frame not seen yet)
        self._size = 0  # payload bytes announced for the open message

    @property
    def at_boundary(self) -> bool:
        return self._left == 0 and not self._head

    @property
    def stopped(self) -> bool:
        """Nothing more passes: a breach, or after a close frame."""
        return self.closed or self.error is not None

    @property
    def passing(self) -> int:
        """Payload bytes of the current frame still to come, all of which may pass as they are
        (0 between frames, within a header, and once :attr:`stopped`): what :meth:`skip` takes."""
        return 0 if self._head or self.closed or self.error is not None else self._left

    def skip(self, n: int) -> None:
        """``n`` payload bytes (at most :attr:`passing`) passed without being fed: exactly as if
        they had been fed (and returned whole), for a reader that moves them unseen."""
        if not 0 < n <= self.passing:
            raise ValueError(f"{n} bytes to skip, {self.passing} passing")
        self.boundary = -1
        self._left -= n
        if not self._left:
            self._frame_done(n)

    def feed(self, data: bytes) -> bytes:
        """Follow ``data``; what of it may be passed on, in order (``data`` itself when all of it).

        The start of a header that ``data`` ends in is held back until the
        header is whole (it is at most 14 bytes), so that nothing of a header
        that breaks a rule is ever passed on.
        """
        self.boundary = -1
        if self.closed or self.error is not None or not data:
            return b""
        n = len(data)
        left = self._left
        prefix = held = self._head  # prefix: passed before data once its header is known to be sound
        if not held:
            if left >= n:  # inside a payload: the hot path of big messages
                self._left = left - n
                if left == n:
                    self._frame_done(n)
                return data
            at = left
            self._left = 0
            if at:
                self._frame_done(at)
                if self.closed:
                    return data[:at]
        else:
            at = 0
        cut: tuple[int, int] | None = None
        while at < n:
            if held:  # a header begun in an earlier piece: at most 13 more bytes of it are needed
                buf = held + data[: MAX_HEADER - len(held)]
                need = header_size(buf)
                if len(buf) < need:
                    self._head = held + data
                    return b""  # nothing passes: all of it is the start of one header
                raw = buf[:need]
                body_at = need - len(held)
                start = -len(held)
                self._head = b""
            else:
                if n - at < MIN_HEADER:
                    self._head = data[at:]
                    return self._passed(data, at, cut, prefix)
                b1 = data[at + 1]
                size = b1 & 0x7F
                need = MIN_HEADER + (2 if size == _LEN16 else 8 if size == _LEN64 else 0) + (4 if b1 & 0x80 else 0)
                if n - at < need:
                    self._head = data[at:]
                    return self._passed(data, at, cut, prefix)
                raw = data[at : at + need]
                body_at = at + need
                start = at
            length, problem = self._header(raw)
            if problem is not None:
                self.error = problem
                return self._passed(data, max(start, 0), cut, prefix if start >= 0 else b"")
            if (self.pong is not None and self._control and raw[0] & 0x0F == Opcode.PONG and start >= 0
                    and length == len(self.pong) and body_at + length <= n and cut is None
                    and mask(raw[-4:], data[body_at : body_at + length]) == self.pong):
                cut = (start, body_at + length)
                self.pong = None
                self.answered += 1
            end = body_at + length
            if end > n:
                self._left = end - n
                return self._passed(data, n, cut, prefix)
            at = end
            self._frame_done(at)
            if self.closed:
                return self._passed(data, at, cut, prefix)
            held = b""
        return self._passed(data, n, cut, prefix)

    def _frame_done(self, at: int) -> None:
        if self.boundary < 0:
            self.boundary = at
        if self._closing:
            self.closed = True

    def _header(self, raw: bytes) -> tuple[int, tuple[int, str] | None]:
        """The payload length of a whole header and what it breaks, if anything; sets the frame's state."""
        b0, b1 = raw[0], raw[1]
        size = b1 & 0x7F
        if size == _LEN16:
            length = struct.unpack_from("!H", raw, MIN_HEADER)[0]
            if length < _LEN16:
                return length, (PROTOCOL_ERROR, "a length not in its shortest encoding")
        elif size == _LEN64:
            length = struct.unpack_from("!Q", raw, MIN_HEADER)[0]
            if length >> 63:
                return length, (PROTOCOL_ERROR, "a 64-bit length with its most significant bit set")
            if length < 1 << 16:
                return length, (PROTOCOL_ERROR, "a length not in its shortest encoding")
        else:
            length = size
        if bool(b1 & 0x80) is not self.from_client:
            return length, (PROTOCOL_ERROR, "an unmasked frame" if self.from_client else "a masked frame")
        if b0 & 0x70:
            return length, (PROTOCOL_ERROR, "reserved bits set")
        opcode = b0 & 0x0F
        fin = bool(b0 & 0x80)
        if opcode >= 0x8:
            if opcode not in _DEFINED:
                return length, (PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
            if not fin:
                return length, (PROTOCOL_ERROR, "a fragmented control frame")
            if length > MAX_CONTROL_PAYLOAD:
                return length, (PROTOCOL_ERROR, "a control frame over 125 bytes")
            self._control = True
            self._closing = opcode == Opcode.CLOSE
            return length, None
        if opcode not in _DEFINED:
            return length, (PROTOCOL_ERROR, f"reserved opcode {opcode:#x}")
        self._control = self._closing = False
        if opcode == Opcode.CONTINUATION:
            if not self._fragmented:
                return length, (PROTOCOL_ERROR, "a continuation frame with no message to continue")
            self._size += length
        else:
            if self._fragmented:
                return length, (PROTOCOL_ERROR, "a new message inside a fragmented one")
            self._size = length
        if self._size > self.limit:
            return length, (TOO_BIG, "message too big")
        self._fragmented = not fin
        self.payload += length
        if fin:
            self.messages += 1
        return length, None

    def _passed(self, data: bytes, end: int, cut: tuple[int, int] | None, held: bytes) -> bytes:
        """``data[:end]`` without ``cut``, after the header bytes ``held`` from earlier pieces;
        ``boundary`` moved to match."""
        out = data if end == len(data) else data[:end]
        if cut is not None:
            a, b = cut
            out = out[:a] + out[b:]
            if self.boundary >= b:
                self.boundary -= b - a
            elif self.boundary > a:
                self.boundary = a
        if held:
            out = held + out
            if self.boundary >= 0:
                self.boundary += len(held)
        return out
