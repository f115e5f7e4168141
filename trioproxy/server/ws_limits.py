"""Refuse an over-size websocket message from its frame header, before its payload arrives.

wsproto hands a frame's payload over as it arrives, so hypercorn and
trio-websocket count a message's size only from the bytes received. A frame
whose header announces 2 GiB (or 2**63 - 1 bytes) and then nothing is never
refused: the connection waits for bytes that will not come. wsproto's one
hook that sees a frame header is an extension's ``frame_inbound_header``;
returning a close reason there makes wsproto fail the connection with that
code. :class:`InboundLimit` is such an extension, never negotiated (it has no
wire presence): :func:`attach` adds it to an established wsproto connection
(the client's, in :mod:`.ws_stream`; the app's, under trio-websocket, in
:mod:`trioproxy.proxy.websocket`).

That step reaches into wsproto's frame decoder and, on the app's side,
trio-websocket's wsproto connection: both reaches are in
:mod:`trioproxy.compat.wsproto` and :mod:`trioproxy.compat.trio_websocket`,
whose checks fail loudly at start-up on a release they were not read
against, instead of silently losing the limit.
"""

from __future__ import annotations

from typing import Any

from wsproto.connection import Connection
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits

from ..compat.wsproto import frame_decoder
from ..settings import WS_DEFLATE_SLACK_BYTES


class InboundLimit(Extension):
    """Fail a connection (1009) whose next message is announced larger than ``limit`` bytes."""

    name = "trioproxy-inbound-limit"  # never offered, never on the wire

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.announced = 0  # payload bytes announced so far for the current message
        self.slack = 0

    def enabled(self) -> bool:
        return True

    def offer(self) -> bool:
        return False

    def frame_inbound_header(
        self, proto: Any, opcode: Opcode, rsv: RsvBits, payload_length: int
    ) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            return RsvBits(False, False, False)
        if opcode is Opcode.CONTINUATION:
            self.announced += payload_length
        else:
            self.announced = payload_length
            self.slack = WS_DEFLATE_SLACK_BYTES if rsv.rsv1 else 0
        if self.announced > self.limit + self.slack:
            return CloseReason.MESSAGE_TOO_BIG
        return RsvBits(False, False, False)


def attach(connection: Connection, limit: int) -> bool:
    """Apply ``limit`` to the frames ``connection`` receives from now on.

    Returns False if the frame being received already announced more (its
    header arrived before this call): the caller fails the connection with 1009.
    """
    decoder = frame_decoder(connection)
    guard = InboundLimit(limit)
    decoder.extensions.append(guard)
    header = decoder.header
    if header is None or header.opcode.iscontrol():
        return True
    return bool(header.payload_len <= limit + (WS_DEFLATE_SLACK_BYTES if header.rsv.rsv1 else 0))

