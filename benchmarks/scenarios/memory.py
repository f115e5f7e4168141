"""The proxy's memory (RSS of the proxy process alone, not its app): idle, after load, per idle
websocket, and its growth while a large body streams through in either direction."""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

from benchmarks import clients
from benchmarks.columns import Target
from benchmarks.profiles import MIB, Profile, size_label
from benchmarks.scenarios import Context, Metric
from benchmarks.scenarios.http import failure, ok

#: Pause before reading an RSS that should have settled (seconds).
SETTLE_S = 0.5
#: RSS sampling period while a body streams (seconds).
SAMPLE_S = 0.01


def _mib(kib: int) -> float:
    return kib / 1024


class Idle:
    """Warm every path up once, then read the resting RSS."""

    name = "idle"

    def metrics(self, profile: Profile) -> list[Metric]:
        return [Metric("rss_idle", "proxy RSS idle (after one request of each kind)", "MiB", False)]

    async def run(self, ctx: Context, target: Target) -> dict[str, Any]:
        for _ in range(20):
            status, _ = await clients.get(target.port, target.path("/static/" + ctx.file(ctx.profile.small_size)))
            if status != 200:
                raise clients.HTTPFailure(f"warm-up GET answered {status}")
        await clients.get(target.port, target.path("/static/" + ctx.file(ctx.profile.dl_small[0])))
        sockets = await clients.ws_open(target.port, target.path("/ws"), 1)
        try:
            await clients.ws_echo(sockets, msgs=10, size=ctx.profile.ws_size, timeout=10)
        finally:
            sockets[0].abort()
        if not target.proxy:
            return {}
        await asyncio.sleep(SETTLE_S)
        return {"rss_idle": _mib(target.proxy.rss())}


class AfterLoad:
    name = "after_load"

    def metrics(self, profile: Profile) -> list[Metric]:
        return [Metric("rss_load", "proxy RSS after the load above", "MiB", False)]

    async def run(self, ctx: Context, target: Target) -> dict[str, Any]:
        if not target.proxy:
            return {}
        await asyncio.sleep(SETTLE_S)
        return {"rss_load": _mib(target.proxy.rss())}


class IdleWebsockets:
    name = "idle_ws"

    def metrics(self, profile: Profile) -> list[Metric]:
        n = profile.idle_ws
        return [
            Metric("rss_ws", f"proxy RSS with {n:,} idle websockets", "MiB", False),
            Metric("rss_per_ws", "proxy RSS per idle websocket", "KiB", False),
        ]

    async def run(self, ctx: Context, target: Target) -> dict[str, Any]:
        if not target.proxy:
            return {}
        n = ctx.profile.idle_ws
        before = target.proxy.rss()
        sockets = await clients.ws_open(target.port, target.path("/ws"), n, parallel=50,
                                        timeout=ctx.profile.scenario_timeout)
        try:
            await clients.ws_echo(sockets, msgs=1, size=ctx.profile.ws_size, timeout=ctx.profile.scenario_timeout)
            await asyncio.sleep(SETTLE_S * 2)
            after = target.proxy.rss()
        finally:
            for ws in sockets:
                ws.abort()
        await asyncio.sleep(SETTLE_S)
        return {"rss_ws": _mib(after), "rss_per_ws": (after - before) / n}


class Stream:
    """One large body through the proxy while its RSS is sampled every 10 ms."""

    def __init__(self, direction: str) -> None:
        self.direction = direction
        self.name = f"stream_{direction}"

    def metrics(self, profile: Profile) -> list[Metric]:
        what = f"{size_label(profile.stream_size)} {self.direction}"
        return [
            Metric(f"{self.name}_growth", f"proxy RSS growth during a {what}", "MiB", False),
            Metric(f"{self.name}_result", f"{what}: outcome", "", None),
        ]

    async def run(self, ctx: Context, target: Target) -> dict[str, Any]:
        if not target.proxy or not ctx.has_curl:
            return {}
        size, proxy = ctx.profile.stream_size, target.proxy
        before, peak = proxy.rss(), proxy.rss()

        async def sample() -> None:
            nonlocal peak
            while True:
                with contextlib.suppress(OSError):
                    peak = max(peak, proxy.rss())
                await asyncio.sleep(SAMPLE_S)

        sampler = asyncio.ensure_future(sample())
        try:
            if self.direction == "download":
                (run,) = await clients.curl_download(target.port, target.path("/static/" + ctx.file(size)), count=1,
                                                     timeout=ctx.profile.scenario_timeout)
            else:
                run = await clients.curl_upload(target.port, target.path("/upload"), str(ctx.data / ctx.file(size)),
                                                timeout=ctx.profile.scenario_timeout)
        finally:
            sampler.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await sampler
        outcome = f"ok, {size / MIB / run.seconds:.0f} MiB/s" if ok(run, size) else failure(run)
        return {f"{self.name}_growth": _mib(peak - before), f"{self.name}_result": outcome}
