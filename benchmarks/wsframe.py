"""Just enough RFC 6455 for the benchmark's websocket peers (upstream echo and load generator).

Small on purpose: the peers must cost far less CPU than the proxy under test, so there is no
extension, no fragmentation on send and no UTF-8 validation. The load generator masks its frames
with the all-zero key, which RFC 6455 allows (any 32-bit key); it makes masking free for the
generator while a proxy still has to apply it.
"""

from __future__ import annotations

import asyncio
import base64
import hashlib
import struct

GUID = b"258EAFA5-E914-47DA-95CA-C5AB0DC85B11"

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = 0x0, 0x1, 0x2, 0x8, 0x9, 0xA

#: The all-zero masking key of the generator's frames.
ZERO_MASK = b"\x00\x00\x00\x00"


def accept_key(key: bytes) -> bytes:
    """Sec-WebSocket-Accept for a Sec-WebSocket-Key."""
    return base64.b64encode(hashlib.sha1(key.strip() + GUID).digest())


def frame(opcode: int, payload: bytes, *, masked: bool = False) -> bytes:
    """One final frame; ``masked`` uses the zero key (client to server)."""
    n = len(payload)
    head = bytes([0x80 | opcode])
    bit = 0x80 if masked else 0
    if n < 126:
        head += bytes([bit | n])
    elif n < 1 << 16:
        head += bytes([bit | 126]) + struct.pack("!H", n)
    else:
        head += bytes([bit | 127]) + struct.pack("!Q", n)
    return head + (ZERO_MASK if masked else b"") + payload


def close_payload(code: int, reason: bytes = b"") -> bytes:
    return struct.pack("!H", code) + reason


def unmask(key: bytes, data: bytes) -> bytes:
    if key == ZERO_MASK or not data:
        return data
    n = len(data)
    stream = (key * (n // 4 + 1))[:n]
    return (int.from_bytes(data, "big") ^ int.from_bytes(stream, "big")).to_bytes(n, "big")


async def read_frame(reader: asyncio.StreamReader) -> tuple[bool, int, bytes]:
    """(fin, opcode, unmasked payload) of the next frame; IncompleteReadError at EOF."""
    b0, b1 = await reader.readexactly(2)
    n = b1 & 0x7F
    if n == 126:
        (n,) = struct.unpack("!H", await reader.readexactly(2))
    elif n == 127:
        (n,) = struct.unpack("!Q", await reader.readexactly(8))
    key = await reader.readexactly(4) if b1 & 0x80 else b""
    payload = await reader.readexactly(n) if n else b""
    return bool(b0 & 0x80), b0 & 0x0F, unmask(key, payload) if key else payload


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
    return struct.unpack("!H", payload[:2])[0] if len(payload) >= 2 else None
