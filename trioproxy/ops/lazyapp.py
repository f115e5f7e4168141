"""An ASGI app made on its first request: how the Quart-Trio app is served.

Importing Quart (with Flask, Werkzeug, Jinja and hypercorn's asyncio side) is
about 150 ms of CPU, more than a third of trioproxy's start-up, and nothing
on the way to the app's first page needs it: proxied requests never go
through Quart. So the Quart-Trio app is built on the first request that
needs it (an OAuth callback, a health probe, a 404, the owner's controls),
or in the background shortly after the app is first ready (:meth:`warm`),
whichever comes first.

This wrapper answers the server's lifespan itself and gives the app what
Quart-Trio's own lifespan would have: its nursery (for background tasks),
``startup()`` before its first request and ``shutdown()`` at the end.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import trio

logger = logging.getLogger(__name__)


class LazyApp:
    def __init__(self, build: Callable[[], Any], modules: Sequence[str] = ()) -> None:
        """``build()`` returns the Quart-Trio app; ``modules`` are what it imports (for :meth:`warm`)."""
        self._build = build
        self._modules = tuple(modules)
        self._app: Any = None
        self._lock = trio.Lock()
        self._nursery: trio.Nursery | None = None

    @property
    def built(self) -> bool:
        return self._app is not None

    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            await self._lifespan(receive, send)
            return
        app = self._app if self._app is not None else await self.app()
        await app(scope, receive, send)

    async def app(self) -> Any:
        """The app, built (and started) on the first call."""
        async with self._lock:
            if self._app is None:
                app = self._build()
                if self._nursery is not None:
                    app.nursery = self._nursery
                await app.startup()
                self._app = app
        return self._app

    async def warm(self) -> None:
        """Import what the app needs in a worker thread (the event loop keeps serving), then build it."""
        if self._app is not None:
            return
        for name in self._modules:
            await trio.to_thread.run_sync(importlib.import_module, name)
        await self.app()
        logger.debug("the Quart-Trio app is ready")

    async def _lifespan(self, receive: Any, send: Any) -> None:
        async with trio.open_nursery() as nursery:
            self._nursery = nursery
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    async with self._lock:
                        if self._app is not None:
                            await self._app.shutdown()
                    await send({"type": "lifespan.shutdown.complete"})
                    break
            nursery.cancel_scope.cancel()
