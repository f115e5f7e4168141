"""Ping silent websocket clients; cut those that do not answer.

A client that stops mid-frame, or vanishes without a TCP reset, would hold its
websocket (and the app's) open for ever: hypercorn has no read timeout on an
upgraded connection. :class:`KeepAlive` pings a client that has sent nothing
for ``interval_s`` and closes with 1011 "keepalive ping timeout" (python-
websockets' choice; 1001 would claim the *server* is going away) if nothing at
all arrives in the ``timeout_s`` that follow. Browsers answer pings by
themselves, so an idle but healthy tab (a Streamlit page left open for hours)
stays connected. Anything from the client counts, not only the pong: a client
sending a large message is not silent.

One task watches every websocket (it looks at each a few times per interval),
rather than a task per websocket: an idle websocket is mostly its bookkeeping,
and a sleeping task is about 3 KiB of it. A ping or a close that has to wait
for a slow client goes out from a short-lived task of its own, so it never
holds up the others. What it watches is a :class:`Watched` (the relay,
:class:`trioproxy.proxy.ws_relay.Relay`: it puts the ping between frames and
takes the pong out).
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Iterator
from typing import Protocol

import trio

from ..settings import WS_PING_CHECKS_PER_INTERVAL

logger = logging.getLogger("trioproxy.proxy")

#: The close code and reason for a client that answered nothing.
TIMEOUT_CODE = 1011
TIMEOUT_REASON = "keepalive ping timeout"


class Watched(Protocol):
    """A websocket's client side, as the keepalive sees it."""

    #: True once the client's connection has ended.
    closed: bool
    #: ``trio.current_time()`` when the client last sent anything.
    last_heard: float

    async def ping(self) -> None: ...

    async def fail(self, code: int, reason: str) -> None:
        """Close ``code`` to the client, and end its connection without waiting for an answer."""


Port = Watched


class KeepAlive:
    """Every bridged websocket registers its client side here while it is open; :meth:`run` watches them."""

    def __init__(self, interval_s: float, timeout_s: float) -> None:
        self.interval_s = interval_s
        self.timeout_s = timeout_s
        #: Open websockets, and when each was pinged without an answer yet (None: not pinged).
        self._ports: dict[Port, float | None] = {}

    @property
    def enabled(self) -> bool:
        return self.interval_s > 0

    def __len__(self) -> int:
        return len(self._ports)

    @contextlib.contextmanager
    def watching(self, port: Port) -> Iterator[None]:
        if not self.enabled:
            yield
            return
        self._ports[port] = None
        try:
            yield
        finally:
            self._ports.pop(port, None)

    async def run(self) -> None:
        """Watch until cancelled (the owner's nursery ends it)."""
        if not self.enabled:
            return
        tick = min(self.interval_s, self.timeout_s) / WS_PING_CHECKS_PER_INTERVAL
        async with trio.open_nursery() as sends:
            while True:
                await trio.sleep(tick)
                self.check(trio.current_time(), sends)

    def check(self, now: float, sends: trio.Nursery) -> None:
        """Ping who has been silent for ``interval_s``; cut who stayed silent ``timeout_s`` after a ping."""
        for port, pinged_at in list(self._ports.items()):
            if port.closed:
                continue
            if pinged_at is not None and port.last_heard >= pinged_at:
                pinged_at = self._ports[port] = None  # it answered
            if pinged_at is None:
                if now - port.last_heard >= self.interval_s:
                    self._ports[port] = now
                    sends.start_soon(port.ping)
            elif now - pinged_at >= self.timeout_s:
                logger.info("websocket client silent for %.0f s after a ping: closing with %d",
                            now - pinged_at, TIMEOUT_CODE)
                self._ports.pop(port, None)
                sends.start_soon(port.fail, TIMEOUT_CODE, TIMEOUT_REASON)
