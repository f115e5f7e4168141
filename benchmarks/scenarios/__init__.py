"""The scenarios, in the order one repetition runs them, and what they share.

A scenario has a name, the :class:`Metric` rows it fills, and ``run(ctx, target)``, which measures
one column once and returns ``{metric key: value}`` (a number, a short text, or None where the
metric does not apply, e.g. proxy CPU on the direct column). The harness runs each scenario on
every column in turn before the next scenario (A B C A B C ...), so the columns see the same
machine at nearly the same time.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

from benchmarks.columns import Target
from benchmarks.profiles import Profile


@dataclass(frozen=True)
class Metric:
    key: str
    label: str
    unit: str
    #: True: more is better; False: less is better; None: not a figure to compare.
    higher_is_better: bool | None
    #: "main" (the results table) or "limits" (what bounded the measurement).
    table: str = "main"


@dataclass(frozen=True)
class Context:
    profile: Profile
    #: Folder of the files the upstream serves (``small.txt``, ``<size>.bin``).
    data: Path
    has_wrk: bool
    has_curl: bool

    def file(self, size: int) -> str:
        return "small.txt" if size == self.profile.small_size else f"{size}.bin"


class Scenario(Protocol):
    name: str

    def metrics(self, profile: Profile) -> list[Metric]: ...

    async def run(self, ctx: Context, target: Target) -> dict[str, Any]: ...


def bare_upstream(scenario: Scenario) -> bool:
    """Whether the scenario talks to the Python upstream with no nginx in front of it (``BARE_UPSTREAM``
    on its class): the harness then starts every column again, on an app stack without nginx, for it."""
    return bool(getattr(scenario, "BARE_UPSTREAM", False))


class Meter:
    """Wall time and the proxy's CPU time over a ``with`` block (no CPU for the direct column)."""

    def __init__(self, target: Target) -> None:
        self.proxy = target.proxy
        self.wall = self.cpu = 0.0

    def __enter__(self) -> Meter:
        self._cpu0 = self.proxy.cpu() if self.proxy else 0.0
        self._t0 = time.perf_counter()
        return self

    def __exit__(self, *exc: object) -> None:
        self.wall = time.perf_counter() - self._t0
        self.cpu = self.proxy.cpu() - self._cpu0 if self.proxy else 0.0

    def per(self, n: float, scale: float = 1.0) -> float | None:
        """Proxy CPU per unit (times ``scale``), None for the direct column."""
        return self.cpu / n * scale if self.proxy and n else None

    @property
    def busy(self) -> float | None:
        """Share of the proxy's core the proxy used, in percent."""
        return 100.0 * self.cpu / self.wall if self.proxy and self.wall else None


def percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(q * len(ordered)))]


def all_scenarios(profile: Profile) -> list[Scenario]:
    from benchmarks.scenarios import http, lifecycle, memory, sse, websocket

    return [
        lifecycle.Startup(),
        memory.Idle(),
        *http.scenarios(profile),
        sse.EventStream(),
        websocket.Echo("ws1", "one"),
        websocket.Echo("wsN", "many"),
        websocket.Stream(),
        memory.AfterLoad(),
        memory.Stream("download"),
        memory.Stream("upload"),
        memory.IdleWebsockets(),
        lifecycle.Sigterm(),
    ]
