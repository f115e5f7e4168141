"""Hypercorn's keep-alive timer, without waiting for a new task at every request.

Hypercorn stops a connection's idle timer when a request arrives and starts
it again when the response is done. Its ``TrioSingleTask`` does each restart
under a lock with ``nursery.start()``: the connection's task waits until the
new timer task has run once, two trips through the scheduler per request.
That is about 6% of trioproxy's CPU per small proxied request (py-spy, wrk at
10 connections).

:class:`IdleTimer` has the same two methods: a restart cancels the wait in
progress and starts the action in a new task without waiting for it
(``start_soon``); a stop cancels it. Nothing runs while stopped, so a
websocket (whose timer hypercorn stops for good at the upgrade) carries no
timer task. The action is hypercorn's (wait for the keep-alive timeout or the
server's end, then close), so what it does is unchanged. The task starts with
the ``spawn`` of hypercorn's task group (``hypercorn.typing.TaskGroup``), the
connection's nursery; the interface is :class:`trioproxy.compat.hypercorn.IdleTimer`.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import trio


class IdleTimer:
    """A drop-in for hypercorn's ``TrioSingleTask`` (``restart``/``stop``)."""

    def __init__(self) -> None:
        self._scope: trio.CancelScope | None = None

    async def restart(self, task_group: Any, action: Callable[[], Awaitable[None]]) -> None:
        """Cancel the run in progress, if any, and run ``action`` anew: hypercorn's ``restart``."""
        if self._scope is not None:
            self._scope.cancel()
        self._scope = scope = trio.CancelScope()
        task_group.spawn(_run, scope, action)

    async def stop(self) -> None:
        """Cancel the run in progress, if any: hypercorn's ``stop``."""
        if self._scope is not None:
            self._scope.cancel()
            self._scope = None


async def _run(scope: trio.CancelScope, action: Callable[[], Awaitable[None]]) -> None:
    with scope:
        await action()
