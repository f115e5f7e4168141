"""Websockets: echo (one connection many messages, many connections a few messages each), and
big messages streamed each way on one connection."""

from __future__ import annotations

from typing import Any

from benchmarks import clients, nginx
from benchmarks.columns import Target
from benchmarks.profiles import Profile
from benchmarks.scenarios import Context, Meter, Metric, percentile


class Echo:
    def __init__(self, name: str, which: str) -> None:
        self.name, self.which = name, which

    def spec(self, profile: Profile) -> tuple[int, int]:
        return profile.ws_one if self.which == "one" else profile.ws_many

    def metrics(self, profile: Profile) -> list[Metric]:
        conns, msgs = self.spec(profile)
        what = f"websocket echo {conns}×{msgs:,} ({profile.ws_size} B)"
        k = self.name
        return [
            Metric(f"{k}_msgs", f"{what}: messages/s", "msg/s", True),
            Metric(f"{k}_p50", f"{what}: round trip p50", "ms", False),
            Metric(f"{k}_p99", f"{what}: round trip p99", "ms", False),
            Metric(f"{k}_cpu", f"{what}: proxy CPU per message", "µs", False),
            Metric(f"{k}_busy", f"{what}: proxy core busy", "%", None, "limits"),
        ]

    async def run(self, ctx: Context, target: Target) -> dict[str, Any]:
        conns, msgs = self.spec(ctx.profile)
        sockets = await clients.ws_open(target.port, target.path("/ws"), conns)
        try:
            with Meter(target) as meter:
                run = await clients.ws_echo(sockets, msgs=msgs, size=ctx.profile.ws_size,
                                            timeout=ctx.profile.scenario_timeout)
        finally:
            for ws in sockets:
                ws.abort()
        k = self.name
        return {f"{k}_msgs": run.messages / run.seconds, f"{k}_p50": percentile(run.rtts, 0.5) * 1e3,
                f"{k}_p99": percentile(run.rtts, 0.99) * 1e3, f"{k}_cpu": meter.per(run.messages, 1e6),
                f"{k}_busy": meter.busy}


class Stream:
    """``profile.ws_big`` = (messages, size) one way on one websocket, up then down: MiB/s and CPU per MiB."""

    name = "wsbig"
    #: Run on an app stack without nginx: nginx's relay of these websockets (a read and a write of
    #: every byte, on the load core) alone cost more per MiB than the faster proxies, so with it
    #: the direct column, not the proxies, set the figures.
    BARE_UPSTREAM = True

    def metrics(self, profile: Profile) -> list[Metric]:
        count, size = profile.ws_big
        what = f"websocket, {count} × {size // 2**20} MiB messages"
        out = []
        for way, label in (("up", "to the app"), ("down", "to the client")):
            out += [
                Metric(f"wsbig_{way}_mibs", f"{what} {label}: MiB/s", "MiB/s", True),
                Metric(f"wsbig_{way}_cpu", f"{what} {label}: proxy CPU per MiB", "ms", False),
                Metric(f"wsbig_{way}_busy", f"{what} {label}: proxy core busy", "%", None, "limits"),
            ]
        return out

    async def run(self, ctx: Context, target: Target) -> dict[str, Any]:
        count, size = ctx.profile.ws_big
        mib = count * size / 2**20
        ws = await clients.bulk_ws_connect(target.port, target.path(nginx.BULK_WS_PATH))
        out: dict[str, Any] = {}
        try:
            for way in ("up", "down"):
                with Meter(target) as meter:
                    seconds = await clients.ws_stream(ws, way, count=count, size=size,
                                                      timeout=ctx.profile.scenario_timeout)
                out[f"wsbig_{way}_mibs"] = mib / seconds
                out[f"wsbig_{way}_cpu"] = meter.per(mib, 1e3)
                out[f"wsbig_{way}_busy"] = meter.busy
        finally:
            ws.abort()
        return out
