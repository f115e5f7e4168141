"""Refuse an over-size websocket message from its frame header, before its payload arrives.

wsproto hands a frame's payload over as it arrives, so hypercorn and
trio-websocket count a message's size only from the bytes received. A frame
whose header announces 2 GiB (or 2**63 - 1 bytes) and then nothing is never
refused: the connection waits for bytes that will not come. wsproto's one
hook that sees a frame header is an extension's ``frame_inbound_header``;
returning a close reason there makes wsproto fail the connection with that
code. :class:`InboundLimit` is such an extension, never negotiated (it has no
wire presence): :func:`attach` adds it to an established wsproto connection.

That step reaches into wsproto's frame decoder (``Connection._proto._frame_decoder``)
and, on the app's side, trio-websocket's wsproto connection, which is why
:func:`check_versions` pins the versions this was read against: a new release
fails loudly at start-up instead of silently losing the limit.
"""

from __future__ import annotations

from importlib.metadata import version
from typing import Any

from wsproto.connection import Connection
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason, Opcode, RsvBits

#: Releases whose internals :func:`attach` and :func:`attach_to_trio_websocket` were read against.
WSPROTO_VERSIONS = ("1.2.", "1.3.")
TRIO_WEBSOCKET_VERSIONS = ("0.12.",)
#: A compressed (permessage-deflate) frame may be this much larger than the
#: message it carries (deflate's worst case is ~0.03 % plus a few bytes); the
#: decompressed size is checked again as it is inflated.
DEFLATE_SLACK_BYTES = 1024


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

    def frame_inbound_header(self, proto: Any, opcode: Opcode, rsv: RsvBits, payload_length: int) -> CloseReason | RsvBits:
        if opcode.iscontrol():
            return RsvBits(False, False, False)
        if opcode is Opcode.CONTINUATION:
            self.announced += payload_length
        else:
            self.announced = payload_length
            self.slack = DEFLATE_SLACK_BYTES if rsv.rsv1 else 0
        if self.announced > self.limit + self.slack:
            return CloseReason.MESSAGE_TOO_BIG
        return RsvBits(False, False, False)


def attach(connection: Connection, limit: int) -> bool:
    """Apply ``limit`` to the frames ``connection`` receives from now on.

    Returns False if the frame being received already announced more (its
    header arrived before this call): the caller fails the connection with 1009.
    """
    decoder = connection._proto._frame_decoder  # noqa: SLF001 (see the module docstring)
    guard = InboundLimit(limit)
    decoder.extensions.append(guard)
    header = decoder.header
    if header is None or header.opcode.iscontrol():
        return True
    return header.payload_len <= limit + (DEFLATE_SLACK_BYTES if header.rsv.rsv1 else 0)


def attach_to_trio_websocket(ws: Any, limit: int) -> bool:
    """:func:`attach` for a trio-websocket connection whose handshake is complete."""
    return attach(ws._wsproto.connection, limit)  # noqa: SLF001 (trio-websocket 0.12 keeps wsproto here)


def check_versions() -> None:
    """Fail loudly on a wsproto this module was not read against."""
    for package, known in (("wsproto", WSPROTO_VERSIONS), ("trio-websocket", TRIO_WEBSOCKET_VERSIONS)):
        found = version(package)
        if not found.startswith(known):
            raise RuntimeError(
                f"trioproxy's websocket size limit reaches into {package} and was checked against "
                f"{package} {', '.join(v + 'x' for v in known)}, not {found}: check "
                f"trioproxy/_ws_limits.py against this release and extend its version list"
            )
