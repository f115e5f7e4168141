"""What the Hub said about a token, remembered for a bounded time.

Only well-formed tokens (:func:`well_formed`: visible ASCII, no space, at most
``MAX_TOKEN_BYTES``) are ever looked up: anything else is refused before the Hub
is asked. Keys are SHA-256 digests (:func:`digest`), never the tokens. Answers (a user model, or None
for a token the Hub does not honour) live ``ttl_s`` seconds, so a revoked
token stops working within that time; the table holds at most ``max_entries``
(least recently used go first). Concurrent lookups of one token share a
single call to the Hub; if that call fails, they all see the failure instead
of queueing behind one another.
"""

from __future__ import annotations

import hashlib
import logging
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any

import trio

from ..settings import MAX_TOKEN_BYTES

logger = logging.getLogger("trioproxy.hub")

Model = dict[str, Any]
Lookup = Callable[[str], Awaitable[Model | None]]

#: What is kept of the Hub's user model.
KEPT_FIELDS = ("kind", "name", "admin", "groups", "scopes")


def digest(token: str) -> bytes:
    """The SHA-256 of ``token``: how trioproxy remembers a token without keeping it."""
    return hashlib.sha256(token.encode("utf-8", "surrogateescape")).digest()


_key = digest


def well_formed(token: str, max_bytes: int = MAX_TOKEN_BYTES) -> bool:
    """Could ``token`` be a JupyterHub token: 1 to ``max_bytes`` visible ASCII characters
    (no space, no control character)? Others are refused without asking the Hub."""
    return 0 < len(token) <= max_bytes and token.isascii() and token.isprintable() and " " not in token


def slim(model: Model) -> Model:
    return {k: model.get(k) for k in KEPT_FIELDS}


class _Flight:
    def __init__(self) -> None:
        self.done = trio.Event()
        self.ok = False
        self.result: Model | None = None
        self.error: BaseException | None = None


class TokenCache:
    def __init__(
        self,
        lookup: Lookup,
        ttl_s: float,
        max_entries: int,
        clock: Callable[[], float] = trio.current_time,
    ) -> None:
        self._lookup = lookup
        self._ttl = ttl_s
        self._max = max_entries
        self._clock = clock
        self._entries: OrderedDict[bytes, tuple[float, Model | None]] = OrderedDict()
        self._flights: dict[bytes, _Flight] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def put(self, token: str, model: Model | None) -> None:
        self._store(_key(token), model)

    def forget(self, token: str) -> None:
        self._entries.pop(_key(token), None)

    def _store(self, key: bytes, model: Model | None) -> None:
        if self._ttl <= 0:
            return
        self._entries[key] = (self._clock() + self._ttl, slim(model) if model is not None else None)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)

    async def user(self, token: str) -> Model | None:
        """The token's owner per the Hub, or None. Raises what ``lookup`` raises."""
        key = _key(token)
        while True:
            entry = self._entries.get(key)
            if entry is not None:
                expires, model = entry
                if self._clock() < expires:
                    self._entries.move_to_end(key)
                    logger.debug("token check: the Hub's answer of less than %g s ago (not asked again)", self._ttl)
                    return model
                del self._entries[key]
            flight = self._flights.get(key)
            if flight is None:
                break
            await flight.done.wait()
            if flight.error is not None:
                raise flight.error
            if flight.ok:
                return flight.result
            # The asker was cancelled: look again (one of us asks the Hub).

        flight = _Flight()
        self._flights[key] = flight
        logger.debug("token check: asking the Hub")
        try:
            model = await self._lookup(token)
            flight.result = slim(model) if model is not None else None
            flight.ok = True
            self._store(key, model)
            return flight.result
        except trio.Cancelled:
            raise  # followers look again (one of them asks the Hub)
        except Exception as exc:
            flight.error = exc
            raise
        finally:
            del self._flights[key]
            flight.done.set()
