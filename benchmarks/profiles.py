"""How long and how big: the full run, the quick run, and the smoke run of the test suite."""

from __future__ import annotations

from dataclasses import dataclass, replace

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30


@dataclass(frozen=True)
class Profile:
    name: str
    #: Repetitions; each is a fresh start of every column, and the report shows medians.
    reps: int
    #: Columns measured (those not installed are left out with a note).
    columns: tuple[str, ...] = ("direct", "trioproxy", "jhsingle", "jhsingle-progressive", "trio-relay")
    #: Small GET: body size, concurrency levels, seconds of load per level (whole seconds for wrk).
    small_size: int = 100
    get_concurrency: tuple[int, ...] = (1, 10, 100)
    get_seconds: float = 5.0
    #: Downloads: (size, transfers per run) for the small and the big file.
    dl_small: tuple[int, int] = (MIB, 100)
    dl_big: tuple[int, int] = (100 * MIB, 3)
    #: Uploads: size, transfers per run.
    upload: tuple[int, int] = (50 * MIB, 3)
    #: Server-sent events: streams per run, events per stream, seconds between events.
    sse: tuple[int, int, float] = (5, 20, 0.01)
    #: Websocket echo: (connections, messages per connection) for the two runs, message size.
    ws_one: tuple[int, int] = (1, 10_000)
    ws_many: tuple[int, int] = (100, 100)
    ws_size: int = 32
    #: Big websocket messages: (messages, size) streamed each way on one connection.
    ws_big: tuple[int, int] = (200, MIB)
    #: Idle websockets held open to read the proxy's memory per websocket.
    idle_ws: int = 1000
    #: Bytes streamed each way while the proxy's RSS is sampled.
    stream_size: int = GIB
    #: Websockets open when SIGTERM arrives.
    sigterm_ws: int = 10
    #: Upper bound of one scenario on one column (seconds).
    scenario_timeout: float = 300.0


PROFILES = {
    "full": Profile("full", reps=3),
    "quick": Profile(
        "quick", reps=1, get_seconds=2.0, dl_small=(MIB, 30), dl_big=(100 * MIB, 1), upload=(50 * MIB, 1),
        sse=(3, 20, 0.01), ws_one=(1, 3000), ws_many=(100, 30), ws_big=(50, MIB),
        scenario_timeout=120.0,
    ),
    # The test suite's run of the harness itself: every scenario, tiny, three columns, seconds.
    "smoke": Profile(
        "smoke", reps=1, columns=("direct", "trioproxy", "trio-relay"), get_concurrency=(1, 10), get_seconds=1.0,
        dl_small=(MIB, 3), dl_big=(8 * MIB, 1), upload=(8 * MIB, 1), sse=(1, 5, 0.01), ws_one=(1, 200),
        ws_many=(10, 10), ws_big=(4, MIB), idle_ws=50, stream_size=32 * MIB, sigterm_ws=3, scenario_timeout=30.0,
    ),
}


def get(name: str, *, reps: int | None = None, columns: tuple[str, ...] | None = None) -> Profile:
    profile = PROFILES[name]
    if reps is not None:
        profile = replace(profile, reps=reps)
    if columns is not None:
        profile = replace(profile, columns=columns)
    return profile


def size_label(n: int) -> str:
    for unit, scale in (("GiB", GIB), ("MiB", MIB), ("KiB", KIB)):
        if n >= scale and n % scale == 0:
            return f"{n // scale} {unit}"
    return f"{n} B"
