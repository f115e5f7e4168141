"""Plain HTTP: small GETs at several concurrencies, downloads, uploads."""

from __future__ import annotations

from typing import Any

from benchmarks import clients
from benchmarks.columns import Target
from benchmarks.profiles import MIB, Profile, size_label
from benchmarks.scenarios import Context, Meter, Metric


def ok(run: clients.Transfer, size: int) -> bool:
    return run.status == 200 and run.size == size and run.curl_exit == 0


def failure(run: clients.Transfer) -> str:
    """A failed transfer in a few words: ``failed: HTTP 400 after 2.6 MiB (curl exit 56)``."""
    how = f" (curl exit {run.curl_exit})" if run.curl_exit else ""
    status = f"HTTP {run.status}" if run.status else "no response"
    return f"failed: {status} after {run.size / MIB:.1f} MiB{how}"


class SmallGet:
    def __init__(self, conns: int) -> None:
        self.conns = conns
        self.name = f"get_c{conns}"

    def metrics(self, profile: Profile) -> list[Metric]:
        what = f"GET {size_label(profile.small_size)}, {self.conns} conn"
        k = self.name
        return [
            Metric(f"{k}_rps", f"{what}: requests/s", "req/s", True),
            Metric(f"{k}_p50", f"{what}: latency p50", "ms", False),
            Metric(f"{k}_p99", f"{what}: latency p99", "ms", False),
            Metric(f"{k}_cpu", f"{what}: proxy CPU per request", "µs", False),
            Metric(f"{k}_busy", f"{what}: proxy core busy", "%", None, "limits"),
            Metric(f"{k}_errors", f"{what}: failed requests", "", None, "limits"),
        ]

    async def run(self, ctx: Context, target: Target) -> dict[str, Any]:
        profile, path = ctx.profile, target.path("/static/" + ctx.file(ctx.profile.small_size))
        load = clients.wrk if ctx.has_wrk else clients.python_get_load
        with Meter(target) as meter:
            run = await load(target.port, path, conns=self.conns, seconds=profile.get_seconds)
        k = self.name
        return {f"{k}_rps": run.requests / run.seconds, f"{k}_p50": run.p50_ms, f"{k}_p99": run.p99_ms,
                f"{k}_cpu": meter.per(run.requests, 1e6), f"{k}_busy": meter.busy, f"{k}_errors": run.errors}


class Download:
    def __init__(self, name: str, which: str) -> None:
        self.name, self.which = name, which

    def spec(self, profile: Profile) -> tuple[int, int]:
        return profile.dl_small if self.which == "small" else profile.dl_big

    def metrics(self, profile: Profile) -> list[Metric]:
        size, count = self.spec(profile)
        what = f"download {size_label(size)} ×{count}"
        return [
            Metric(f"{self.name}_mibs", f"{what}: throughput", "MiB/s", True),
            Metric(f"{self.name}_cpu", f"{what}: proxy CPU per MiB", "ms", False),
            Metric(f"{self.name}_busy", f"{what}: proxy core busy", "%", None, "limits"),
        ]

    async def run(self, ctx: Context, target: Target) -> dict[str, Any]:
        if not ctx.has_curl:
            return {f"{self.name}_mibs": "no curl"}
        size, count = self.spec(ctx.profile)
        with Meter(target) as meter:
            runs = await clients.curl_download(target.port, target.path("/static/" + ctx.file(size)), count=count,
                                               timeout=ctx.profile.scenario_timeout)
        bad = [r for r in runs if not ok(r, size)]
        if bad:
            return {f"{self.name}_mibs": failure(bad[0])}
        mib = size * count / MIB
        return {f"{self.name}_mibs": mib / sum(r.seconds for r in runs), f"{self.name}_cpu": meter.per(mib, 1e3),
                f"{self.name}_busy": meter.busy}


class Upload:
    name = "up"

    def metrics(self, profile: Profile) -> list[Metric]:
        size, count = profile.upload
        what = f"upload {size_label(size)} ×{count} (hashed by the app)"
        return [
            Metric("up_mibs", f"{what}: throughput", "MiB/s", True),
            Metric("up_cpu", f"{what}: proxy CPU per MiB", "ms", False),
            Metric("up_busy", f"{what}: proxy core busy", "%", None, "limits"),
        ]

    async def run(self, ctx: Context, target: Target) -> dict[str, Any]:
        if not ctx.has_curl:
            return {"up_mibs": "no curl"}
        size, count = ctx.profile.upload
        source = str(ctx.data / ctx.file(size))
        with Meter(target) as meter:
            runs = [await clients.curl_upload(target.port, target.path("/upload"), source,
                                              timeout=ctx.profile.scenario_timeout) for _ in range(count)]
        bad = [r for r in runs if not ok(r, size)]
        if bad:
            return {"up_mibs": failure(bad[0])}
        mib = size * count / MIB
        return {"up_mibs": mib / sum(r.seconds for r in runs), "up_cpu": meter.per(mib, 1e3), "up_busy": meter.busy}


def scenarios(profile: Profile) -> list:
    return [*(SmallGet(c) for c in profile.get_concurrency), Download("dl_small", "small"),
            Download("dl_big", "big"), Upload()]
