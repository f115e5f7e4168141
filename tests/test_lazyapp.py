"""The Quart-Trio app is built on first need, once, and started and shut down like its own lifespan would."""

from __future__ import annotations

import subprocess
import sys

import trio

from trioproxy.ops.lazyapp import LazyApp


class FakeApp:
    """An ASGI app with a lifespan, as Quart-Trio's: it runs in a task with a nursery of its own."""

    def __init__(self, log: list[str]) -> None:
        self.log = log
        self.nursery: trio.Nursery | None = None

    async def __call__(self, scope, receive, send) -> None:
        if scope["type"] == "lifespan":
            async with trio.open_nursery() as nursery:
                self.nursery = nursery
                while True:
                    message = await receive()
                    if message["type"] == "lifespan.startup":
                        self.log.append("startup")
                        await trio.sleep(0.01)  # a checkpoint: concurrent first requests must still build one app
                        await send({"type": "lifespan.startup.complete"})
                    elif message["type"] == "lifespan.shutdown":
                        self.log.append("shutdown")
                        await send({"type": "lifespan.shutdown.complete"})
                        return
        self.log.append(f"request {scope['path']}")
        await send({"type": "http.response.start", "status": 200, "headers": []})


async def _lifespan(app: LazyApp, nursery: trio.Nursery) -> tuple[trio.MemorySendChannel, trio.MemoryReceiveChannel]:
    to_app, app_in = trio.open_memory_channel(4)
    app_out, from_app = trio.open_memory_channel(4)
    nursery.start_soon(app, {"type": "lifespan"}, app_in.receive, app_out.send)
    await to_app.send({"type": "lifespan.startup"})
    assert (await from_app.receive())["type"] == "lifespan.startup.complete"
    return to_app, from_app


async def test_built_once_on_first_request_and_shut_down():
    log: list[str] = []
    builds: list[FakeApp] = []

    def build() -> FakeApp:
        builds.append(FakeApp(log))
        return builds[-1]

    app = LazyApp(build)
    sent: list[dict] = []

    async def send(message: dict) -> None:
        sent.append(message)

    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            to_app, from_app = await _lifespan(app, nursery)
            assert not app.built and not builds  # the lifespan alone builds nothing
            async with trio.open_nursery() as requests:
                for i in range(3):
                    requests.start_soon(app, {"type": "http", "path": f"/{i}"}, None, send)
            assert len(builds) == 1 and builds[0].nursery is not None
            assert log[0] == "startup" and sorted(log[1:]) == ["request /0", "request /1", "request /2"]
            await to_app.send({"type": "lifespan.shutdown"})
            assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"
    assert log[-1] == "shutdown" and len(sent) == 3


async def test_warm_builds_without_a_request_and_unbuilt_shutdown_is_quiet():
    log: list[str] = []
    app = LazyApp(lambda: FakeApp(log), modules=("json",))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            to_app, from_app = await _lifespan(app, nursery)
            await app.warm()
            await app.warm()
            assert app.built and log == ["startup"]
            await to_app.send({"type": "lifespan.shutdown"})
            assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"
    assert log == ["startup", "shutdown"]

    never: list[str] = []
    unbuilt = LazyApp(lambda: FakeApp(never))
    with trio.fail_after(5):
        async with trio.open_nursery() as nursery:
            to_app, from_app = await _lifespan(unbuilt, nursery)
            await to_app.send({"type": "lifespan.shutdown"})
            assert (await from_app.receive())["type"] == "lifespan.shutdown.complete"
    assert never == []


def test_the_server_starts_without_its_heavy_imports():
    """What start-up imports before the app starts (benchmarks: start to first 200): Quart and httpx
    come when needed; hypercorn, trio-websocket and authlib load in a thread while the app starts."""
    heavy = ("quart", "flask", "httpx", "hypercorn", "trio_websocket", "authlib")
    code = f"import sys, trioproxy.run; print(' '.join(m for m in {heavy!r} if m in sys.modules))"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == ""
