"""An ASGI app made on its first request: how the Quart-Trio app is served.

Importing Quart (with Flask, Werkzeug, Jinja and hypercorn's asyncio side) is
about 150 ms of CPU, more than a third of trioproxy's start-up, and nothing
on the way to the app's first page needs it: proxied requests never go
through Quart. So the Quart-Trio app is built on the first request that
needs it (an OAuth callback, a health probe, a 404, the owner's controls),
or in the background shortly after the app is first ready (:meth:`warm`),
whichever comes first.

This wrapper answers the server's lifespan itself and, once the app is
built, drives the app's own ASGI lifespan (a task in the server lifespan's
nursery): ``lifespan.startup`` before its first request, ``lifespan.shutdown``
when the server's lifespan ends. Quart-Trio's lifespan gives the app its
nursery (for background tasks) and runs its startup and shutdown: only the
ASGI interface is used, nothing of Quart-Trio's internals.
"""

from __future__ import annotations

import importlib
import logging
from collections.abc import Callable, Sequence
from typing import Any

import trio

logger = logging.getLogger("trioproxy.ops")

#: The scope of the app's own lifespan.
LIFESPAN_SCOPE = {"type": "lifespan", "asgi": {"version": "3.0", "spec_version": "2.0"}}


class LifespanFailed(RuntimeError):
    """The app's lifespan answered a startup or a shutdown with a failure (its message says why)."""


class _AppLifespan:
    """One ASGI app's lifespan, driven from here: :meth:`start` in a nursery, then :meth:`stop`."""

    def __init__(self, app: Any) -> None:
        self._app = app
        self._to_app, self._app_in = trio.open_memory_channel[dict[str, Any]](1)
        self._app_out, self._from_app = trio.open_memory_channel[dict[str, Any]](1)

    async def start(self, nursery: trio.Nursery) -> None:
        nursery.start_soon(self._app, dict(LIFESPAN_SCOPE), self._app_in.receive, self._app_out.send)
        await self._step("startup")

    async def stop(self) -> None:
        await self._step("shutdown")

    async def _step(self, stage: str) -> None:
        await self._to_app.send({"type": f"lifespan.{stage}"})
        reply = await self._from_app.receive()
        if reply["type"] != f"lifespan.{stage}.complete":
            raise LifespanFailed(f"the app's lifespan {stage} failed: {reply.get('message', reply['type'])}")


class LazyApp:
    def __init__(self, build: Callable[[], Any], modules: Sequence[str] = ()) -> None:
        """``build()`` returns the Quart-Trio app; ``modules`` are what it imports (for :meth:`warm`)."""
        self._build = build
        self._modules = tuple(modules)
        self._app: Any = None
        self._own_lifespan: _AppLifespan | None = None
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
        """The app, built (and started) on the first call; only while the server's lifespan runs."""
        async with self._lock:
            if self._app is None:
                if self._nursery is None:
                    raise RuntimeError("the Quart-Trio app is served only while the server's lifespan runs")
                app = self._build()
                lifespan = _AppLifespan(app)
                await lifespan.start(self._nursery)
                self._app, self._own_lifespan = app, lifespan
        return self._app

    async def warm(self) -> None:
        """Import what the app needs in a worker thread (the event loop keeps serving), then build it."""
        if self._app is not None:
            return
        for name in self._modules:
            await trio.to_thread.run_sync(importlib.import_module, name)
        if self._nursery is None:
            return  # the server's lifespan is over (or not begun): nothing to warm for
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
                        if self._own_lifespan is not None:
                            await self._own_lifespan.stop()
                    await send({"type": "lifespan.shutdown.complete"})
                    break
            nursery.cancel_scope.cancel()
        self._nursery = None
