"""wsproto: the frame decoder that the inbound size limit hooks into.

wsproto hands a frame's payload over as it arrives; its one hook that sees a
frame's header is an extension's ``frame_inbound_header``, called by the
connection's frame decoder for every extension in its list.
:mod:`trioproxy.server.ws_limits` adds a never-negotiated extension to that
list on an established connection, which no public API offers: the decoder
is ``Connection._proto._frame_decoder``, and the header being received is
its ``header`` (:func:`frame_decoder`).
"""

from __future__ import annotations

from typing import Any

from wsproto.connection import Connection, ConnectionType
from wsproto.extensions import Extension
from wsproto.frame_protocol import CloseReason

from .probe import Reaches, attribute, method, probe

#: The wsproto releases this module was read against.
TESTED = ("1.3",)


def frame_decoder(connection: Connection) -> Any:
    """The decoder of ``connection``'s incoming frames: it has ``extensions`` (a list) and ``header``."""
    return connection._proto._frame_decoder  # the reach this module is for


def check() -> str:
    reaches = Reaches(__name__, "wsproto", TESTED)
    connection, problem = probe("wsproto.connection.Connection", lambda: Connection(ConnectionType.SERVER))
    reaches.need(problem)
    if connection is not None:
        proto = getattr(connection, "_proto", None)
        decoder = getattr(proto, "_frame_decoder", None)
        if proto is None:
            reaches.need("Connection._proto is gone")
        elif decoder is None:
            reaches.need("Connection._proto._frame_decoder is gone")
        else:
            if not isinstance(getattr(decoder, "extensions", None), list):
                reaches.need("FrameDecoder.extensions is no longer a list")
            reaches.need(attribute(decoder, "FrameDecoder", "header"))
    reaches.need(method(Extension, "wsproto.extensions.Extension", "frame_inbound_header",
                        ("proto", "opcode", "rsv", "payload_length")))
    for name in ("enabled", "offer"):
        reaches.need(method(Extension, "wsproto.extensions.Extension", name))
    reaches.need(attribute(CloseReason, "wsproto.frame_protocol.CloseReason", "MESSAGE_TOO_BIG"))
    return reaches.raise_if_any()
