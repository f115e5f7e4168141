"""h11: the server connection that :mod:`trioproxy.server.h11_guard` subclasses.

h11 documents ``Connection`` for use, not for subclassing. trioproxy's guard
(strict request heads, HTTP/1.1 only, nothing parsed after the last request)
is a subclass that overrides three public methods (``receive_data``,
``next_event``, ``start_next_cycle``) and reads public state
(``their_state``, ``trailing_data``), and it raises h11's
``RemoteProtocolError`` with an ``error_status_hint``, which hypercorn turns
into that response (see :mod:`.hypercorn`). :class:`ServerConnection` is
that base; :func:`check` verifies those names and shapes.
"""

from __future__ import annotations

import h11

from .probe import Reaches, attribute, method

#: The h11 releases this module was read against.
TESTED = ("0.16",)

#: The methods the guard overrides, with their parameters after ``self``.
OVERRIDDEN = {"receive_data": ("data",), "next_event": (), "start_next_cycle": ()}
#: The state the guard reads.
READ = ("their_state", "our_state", "trailing_data")


class ServerConnection(h11.Connection):
    """A server-side ``h11.Connection`` meant to be subclassed (see the module docstring)."""

    def __init__(self, max_incomplete_event_size: int) -> None:
        super().__init__(h11.SERVER, max_incomplete_event_size=max_incomplete_event_size)


def check() -> str:
    reaches = Reaches(__name__, "h11", TESTED)
    for name, params in OVERRIDDEN.items():
        reaches.need(method(h11.Connection, "h11.Connection", name, params))
    for name in READ:
        reaches.need(attribute(h11.Connection, "h11.Connection", name))
    for name in ("IDLE", "MUST_CLOSE", "NEED_DATA", "PAUSED", "SERVER", "Request", "RemoteProtocolError"):
        reaches.need(attribute(h11, "h11", name))
    try:
        hint = h11.RemoteProtocolError("probe", error_status_hint=431).error_status_hint
    except TypeError:
        hint = None
    if hint != 431:
        reaches.need("h11.RemoteProtocolError no longer carries error_status_hint")
    return reaches.raise_if_any()
