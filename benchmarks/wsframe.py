"""Just enough RFC 6455 for the benchmark's websocket peers (upstream echo and load generator).

The framing itself is trioproxy's pure :mod:`trioproxy.rules.frames`; this is its asyncio
glue. Small on purpose: the peers must cost far less CPU than the proxy under test, so there
is no extension, no fragmentation on send and no UTF-8 validation. The load generator masks
its frames with the all-zero key, which RFC 6455 allows (any 32-bit key); it makes masking
free for the generator while a proxy still has to apply it.
"""

from __future__ import annotations

import asyncio

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
