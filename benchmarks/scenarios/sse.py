"""Server-sent events: how soon the first event arrives, and how evenly the rest follow."""

from __future__ import annotations

import statistics
from typing import Any

from benchmarks import clients
from benchmarks.columns import Target
from benchmarks.profiles import Profile
from benchmarks.scenarios import Context, Metric


class EventStream:
    name = "sse"

    def metrics(self, profile: Profile) -> list[Metric]:
        _, events, interval = profile.sse
        what = f"SSE, {events} events {interval * 1e3:g} ms apart"
        return [
            Metric("sse_first", f"{what}: request to first event", "ms", False),
            Metric("sse_spread", f"{what}: spread of event delays (max − min)", "ms", False),
        ]

    async def run(self, ctx: Context, target: Target) -> dict[str, Any]:
        streams, events, interval = ctx.profile.sse
        path = target.path(f"/sse?n={events}&interval={interval}")
        firsts, spreads = [], []
        for _ in range(streams):
            first, delays = await clients.sse(target.port, path, timeout=events * interval + 30)
            if len(delays) != events:
                return {"sse_first": f"failed: {len(delays)} of {events} events"}
            firsts.append(first)
            spreads.append(max(delays) - min(delays))
        return {"sse_first": statistics.median(firsts), "sse_spread": statistics.median(spreads)}
