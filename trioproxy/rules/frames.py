"""RFC 6455 websocket framing, pure: encode a frame, parse frame headers incrementally, close payloads.

No I/O and no state beyond the bytes given: a reader that gets its bytes in
any pieces asks :func:`header_size` how many it needs (two are enough to know),
then :func:`parse_header` for the header, exactly as it is on the wire (FIN,
RSV1-3, opcode, MASK, the 7/16/64-bit length as sent, the masking key).
:func:`violation` says what, if anything, RFC 6455 forbids in a header; the
parser itself never refuses one, so a test can see what a peer sent.
:class:`FrameReader` does both for a byte stream fed in arbitrary pieces.

Used by the benchmark's websocket peers, the tests' raw client and the test
apps (trioproxy itself frames with wsproto).
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
    "Opcode",
    "accept_key",
    "close_payload",
    "encode",
    "encode_header",
    "header_size",
    "mask",
    "parse_close",
    "parse_header",
    "violation",
]

#: The GUID of the opening handshake (RFC 6455 §1.3).
GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"
#: A control frame's payload is at most this long, in bytes (§5.5).
MAX_CONTROL_PAYLOAD = 125
#: Every header has at least these bytes: FIN/RSV/opcode, then MASK and the 7-bit length.
MIN_HEADER = 2
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
