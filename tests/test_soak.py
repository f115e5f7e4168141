"""Soak (issue 6, fourth bullet): many open websockets, many event streams and steady small
requests through a real trioproxy, then SIGTERM in the middle of it all.

Checks: no error during the load; no file descriptor or memory growth between the end of the
warm-up and the end of the load; and on SIGTERM the shutdown guarantees of the core issue
(listeners closed at once, 1001 to every websocket within ~100 ms, event streams ended cleanly,
in-flight requests drained until --shutdown-timeout, the app's group killed, exit 0).

Quick form (the default, in ``make test``): 300 websockets, 30 streams, ~12 s of load.
Long form (``make soak``, ``SOAK_SECONDS=180``): 1,000 websockets, 100 streams, SOAK_SECONDS of load.
The figures are printed at the end (``pytest -s``).

Clients are raw sockets (``tests/rawnet.py``), so the test process costs little next to trioproxy.
Loopback only; bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import collections
import json
import os
import re
import resource
import signal
import time

import pytest
import trio

from . import rawnet
from .conftest import app_cmd, run_proxy
from .rawnet import OP_CLOSE, OP_TEXT

SOAK_SECONDS = float(os.environ.get("SOAK_SECONDS", "0") or 0)
LONG = SOAK_SECONDS > 0
N_WS = 1000 if LONG else 300
N_STREAMS = 100 if LONG else 30
LOAD_S = SOAK_SECONDS if LONG else 12.0
WARMUP_S = 15.0 if LONG else 4.0
#: Each websocket sends a message every this many seconds (staggered): ~100 messages/s in all.
WS_INTERVAL_S = 10.0 if LONG else 3.0
#: Small requests: this many keep-alive clients, each every REQ_INTERVAL_S (~20 requests/s).
REQ_CLIENTS = 4
REQ_INTERVAL_S = 0.2
SSE_INTERVAL_S = 1.0
#: The drain: the request in flight at SIGTERM needs 0.3 s more. 0.8 s (the default) was too
#: tight for a proxy under this load sharing 2 cores with another test worker (`make test`
#: runs two): the request was cut at the deadline, which is right, but not what this test asks.
SHUTDOWN_TIMEOUT_S = 2.0
#: Websockets must all see 1001 within this long after SIGTERM: well before the drain deadline.
#: The ~100 ms figure for a few websockets is test_shutdown's; here hundreds of closes are timed
#: from one busy test process, so the figure is reported.
CLOSE_WITHIN_S = 0.8
#: Growth allowed between the end of the warm-up and the end of the load.
FD_SLACK = 8
RSS_SLACK_KIB = 8 * 1024 if not LONG else 16 * 1024

# trioproxy holds two sockets per websocket or stream, the app and this process one each.
FDS_NEEDED = 2 * (N_WS + N_STREAMS) + 512


def _raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft >= FDS_NEEDED:
        return
    if hard != resource.RLIM_INFINITY and hard < FDS_NEEDED:
        pytest.skip(f"needs {FDS_NEEDED} file descriptors, the hard limit is {hard}")
    # trioproxy and its app inherit it.
    resource.setrlimit(resource.RLIMIT_NOFILE, (FDS_NEEDED, hard))


class Stats:
    def __init__(self) -> None:
        self.errors: list[str] = []
        self.requests = 0
        self.ws_messages = 0
        self.sse_events = 0
        self.sse_max_gap = 0.0
        self.signal_at: float | None = None
        self.ws_closed: list[tuple[int | None, float]] = []  # (code, seconds after the signal)
        self.sse_endings: collections.Counter[str] = collections.Counter()
        self.samples: list[tuple[float, int, int]] = []  # (time, fds, rss KiB)

    def error(self, text: str) -> None:
        if self.signal_at is None and len(self.errors) < 50:
            self.errors.append(text)


async def _websocket(port: int, i: int, st: Stats, task_status=trio.TASK_STATUS_IGNORED) -> None:
    ws = await rawnet.ws_connect(port, f"/user/test/ws/{i}")
    expected: collections.deque[bytes] = collections.deque()
    task_status.started()

    async def reader(cancel: trio.CancelScope) -> None:
        try:
            while True:
                op, payload = await ws.message()
                if op == OP_CLOSE:
                    code = int.from_bytes(payload[:2], "big") if len(payload) >= 2 else None
                    st.ws_closed.append((code, time.monotonic() - (st.signal_at or time.monotonic())))
                    break
                if not expected or payload != expected.popleft():
                    st.error(f"websocket {i}: unexpected {payload[:40]!r}")
                st.ws_messages += 1
        except rawnet.Closed:
            st.ws_closed.append((None, time.monotonic() - (st.signal_at or time.monotonic())))
        cancel.cancel()

    async with trio.open_nursery() as n:
        n.start_soon(reader, n.cancel_scope)
        await trio.sleep(WS_INTERVAL_S * (i % 100) / 100)  # staggered
        k = 0
        try:
            while True:
                message = b"%d:%d" % (i, k)
                expected.append(message)
                await ws.send(OP_TEXT, message)
                k += 1
                await trio.sleep(WS_INTERVAL_S)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            await trio.sleep_forever()  # the reader says how it ended
    await ws.aclose()


async def _stream(port: int, i: int, st: Stats, task_status=trio.TASK_STATUS_IGNORED) -> None:
    conn = await rawnet.connect(port)
    try:
        await conn.send(rawnet.request("GET", f"/user/test/sse?interval={SSE_INTERVAL_S}&i={i}"))
        head = await conn.response(head=True)
        assert head.status == 200 and head.header(b"transfer-encoding") == b"chunked", head
        task_status.started()
        last = time.monotonic()
        while True:
            size = int((await conn.read_until(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                await conn.read_until(b"\r\n")
                st.sse_endings["clean"] += 1
                return
            data = await conn.read_exactly(size + 2)
            st.sse_events += data.count(b"data:")
            now = time.monotonic()
            if st.signal_at is None:
                st.sse_max_gap = max(st.sse_max_gap, now - last)
            last = now
    except rawnet.Closed:
        st.sse_endings["cut"] += 1
        st.error(f"stream {i} cut")
    finally:
        await conn.aclose()


async def _requests(port: int, i: int, st: Stats) -> None:
    conn = None
    k = 0
    while st.signal_at is None:
        try:
            if conn is None:
                conn = await rawnet.connect(port)
            target = f"/small/{i}/{k}"
            await conn.send(rawnet.request("GET", "/user/test" + target))
            r = await conn.response()
            if r.status != 200 or json.loads(r.body)["raw_path"] != target:
                st.error(f"request {target}: {r.status} {r.body[:80]!r}")
            st.requests += 1
        except (rawnet.Closed, OSError, trio.BrokenResourceError) as exc:
            st.error(f"request client {i}: {exc!r}")
            if conn is not None:
                await conn.aclose()
            conn = None
        k += 1
        await trio.sleep(REQ_INTERVAL_S)
    if conn is not None:
        await conn.aclose()


async def test_soak_then_sigterm_in_the_middle():
    _raise_fd_limit()
    st = Stats()
    budget = LOAD_S + WARMUP_S + 120
    with trio.fail_after(budget):
        async with run_proxy(["--shutdown-timeout", str(SHUTDOWN_TIMEOUT_S), *app_cmd("echo_app.py")]) as p:
            await p.wait_ready()
            pid = p.proc.pid
            port = p.port
            conn = await rawnet.connect(port)
            await conn.send(rawnet.request("GET", "/user/test/pid", close=True))
            app_pid = json.loads((await conn.response()).body)["pid"]
            await conn.aclose()
            fds_idle, rss_idle = rawnet.fd_count(pid), rawnet.rss_kib(pid)
            cpu_start = rawnet.cpu_seconds(pid)
            t_open = time.monotonic()
            outcome: dict = {}

            async with trio.open_nursery() as load:
                limiter = trio.CapacityLimiter(50)

                async def open_one(kind, i):
                    async with limiter:
                        await load.start(kind, port, i, st)

                async with trio.open_nursery() as opening:
                    for i in range(N_WS):
                        opening.start_soon(open_one, _websocket, i)
                    for i in range(N_STREAMS):
                        opening.start_soon(open_one, _stream, i)
                opened_in = time.monotonic() - t_open
                for i in range(REQ_CLIENTS):
                    load.start_soon(_requests, port, i, st)

                await trio.sleep(WARMUP_S)
                fds_warm, rss_warm = rawnet.fd_count(pid), rawnet.rss_kib(pid)
                t_warm = time.monotonic()
                while time.monotonic() - t_warm < LOAD_S:
                    await trio.sleep(1)
                    st.samples.append((time.monotonic() - t_warm, rawnet.fd_count(pid), rawnet.rss_kib(pid)))
                fds_end, rss_end = rawnet.fd_count(pid), rawnet.rss_kib(pid)
                cpu_load = rawnet.cpu_seconds(pid) - cpu_start

                # SIGTERM with everything still running, plus a request in flight and a long download.
                async def in_flight() -> None:
                    c = await rawnet.connect(port)
                    await c.send(rawnet.request("GET", "/user/test/slow?delay=0.4"))
                    try:
                        r = await c.response()
                        outcome["in_flight"] = (r.status, r.body)
                    except rawnet.Closed:
                        outcome["in_flight"] = "cut"
                    await c.aclose()

                async def download() -> None:
                    c = await rawnet.connect(port)
                    await c.send(rawnet.request("GET", "/user/test/large?size=1000000000&delay=0.01"))
                    try:
                        await c.response()
                        outcome["download"] = "complete"
                    except rawnet.Closed:
                        outcome["download"] = "cut"
                    outcome["download_ended"] = time.monotonic() - (st.signal_at or 0)
                    await c.aclose()

                async def refused() -> None:
                    while True:
                        try:
                            s = await trio.open_tcp_stream("127.0.0.1", port)
                        except OSError:
                            outcome["refused_after"] = time.monotonic() - (st.signal_at or 0)
                            return
                        await s.aclose()
                        await trio.sleep(0.002)

                load.start_soon(in_flight)
                load.start_soon(download)
                await trio.sleep(0.1)
                st.signal_at = time.monotonic()
                p.signal(signal.SIGTERM)
                load.start_soon(refused)
                with trio.fail_after(10):
                    outcome["exit_code"] = await p.proc.wait()
                outcome["exit_after"] = time.monotonic() - st.signal_at
                with trio.move_on_after(5):
                    while len(st.ws_closed) < N_WS or sum(st.sse_endings.values()) < N_STREAMS:
                        await trio.sleep(0.05)
                load.cancel_scope.cancel()
        log = p.log

    codes = collections.Counter(code for code, _ in st.ws_closed)
    phases = {m.group(1): float(m.group(2)) for m in re.finditer(r"shutdown: (.+?) \(\+(\d+) ms\)", log)}
    slowest_close = max((t for _, t in st.ws_closed), default=float("nan"))
    figures = {
        "websockets": N_WS, "streams": N_STREAMS, "load_seconds": LOAD_S, "opened_in_s": round(opened_in, 1),
        "requests": st.requests, "ws_messages": st.ws_messages, "sse_events": st.sse_events,
        "sse_max_gap_s": round(st.sse_max_gap, 2), "errors": len(st.errors),
        "trioproxy_cpu_s": round(cpu_load, 1),
        "fds": {"idle": fds_idle, "warm": fds_warm, "end": fds_end, "max": max(f for _, f, _ in st.samples)},
        "rss_mib": {"idle": round(rss_idle / 1024, 1), "warm": round(rss_warm / 1024, 1),
                    "end": round(rss_end / 1024, 1), "max": round(max(r for _, _, r in st.samples) / 1024, 1)},
        "shutdown": {"logged_phases_ms": phases,
                     "refused_after_ms": round(outcome.get("refused_after", float("nan")) * 1000, 1),
                     "ws_close_codes": dict(codes), "slowest_1001_ms": round(slowest_close * 1000, 1),
                     "sse_endings": dict(st.sse_endings),
                     "in_flight": outcome.get("in_flight") if outcome.get("in_flight") == "cut"
                     else (outcome.get("in_flight") or ("?",))[0],
                     "download": outcome.get("download"),
                     "exit_code": outcome.get("exit_code"), "exit_after_s": round(outcome.get("exit_after", -1), 2)},
    }
    print("\nsoak figures:", json.dumps(figures, indent=1))

    # During the load.
    assert not st.errors, st.errors[:10]
    assert st.requests > 0.8 * LOAD_S * REQ_CLIENTS / REQ_INTERVAL_S
    assert st.ws_messages > 0.8 * N_WS * LOAD_S / WS_INTERVAL_S
    assert st.sse_max_gap < 3 * SSE_INTERVAL_S
    assert fds_warm >= 2 * (N_WS + N_STREAMS), figures["fds"]  # they really were all open
    assert fds_end <= fds_warm + FD_SLACK, figures["fds"]
    assert rss_end <= rss_warm + RSS_SLACK_KIB, figures["rss_mib"]
    # The shutdown.
    # Listeners closed at once (measured by probing from this busy process: bounded generously).
    assert outcome.get("refused_after", 1) < 0.5, figures["shutdown"]
    assert codes == {1001: N_WS}, figures["shutdown"]
    assert slowest_close <= CLOSE_WITHIN_S, figures["shutdown"]
    assert st.sse_endings == {"clean": N_STREAMS}, figures["shutdown"]
    assert outcome.get("in_flight") == (200, b"slow done"), figures["shutdown"]  # drained
    assert outcome.get("download") == "cut" and outcome["download_ended"] < SHUTDOWN_TIMEOUT_S + 0.5
    assert outcome["exit_code"] == 0 and outcome["exit_after"] < SHUTDOWN_TIMEOUT_S + 1.5, figures["shutdown"]
    assert not os.path.exists(f"/proc/{app_pid}"), "the app survived"
    assert f"closing {N_WS + N_STREAMS} websocket(s) and event stream(s)" in log
    for phase in ("stopped accepting", "SIGTERM sent", "done, exit code 0"):
        assert phase in log, phase
    assert "Traceback" not in log
