"""Shutdown as Kubernetes does it: SIGTERM with a websocket, an event stream and a
slow download open; the websocket sees 1001 within 100 ms, the app and its
grandchildren are gone, the exit code is 0. Also as PID 1 in a new PID namespace.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import time

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, open_websocket_url

from .conftest import app_cmd, run_proxy

ECHO = app_cmd("echo_app.py")


def gone(pid: int) -> bool:
    """Not running (a zombie left to init counts as running: it must have been reaped)."""
    return not os.path.exists(f"/proc/{pid}")


async def _scenario(p, c, *, sigterm) -> dict:
    """Open a websocket, an SSE stream and a slow download; send SIGTERM; measure."""
    out: dict = {}
    info = (await c.get(p.url + "/pid")).json()
    out["app_pid"] = info["pid"]
    out["grandchild"] = (await c.get(p.url + "/fork")).json()["grandchild_pid"]
    out["escaped"] = (await c.get(p.url + "/fork?setsid=1&devnull=1")).json()["grandchild_pid"]
    ws_closed = trio.Event()

    async def websocket(task_status):
        async with open_websocket_url(p.ws_url + "/ws") as ws:
            await ws.send_message("hi")
            await ws.get_message()
            task_status.started()
            try:
                while True:
                    await ws.get_message()
            except ConnectionClosed as exc:
                out["ws_code"] = exc.reason.code
                out["ws_at"] = time.monotonic()
                ws_closed.set()

    async def sse(task_status):
        n = 0
        async with c.stream("GET", p.url + "/sse?interval=0.1") as r:
            async for line in r.aiter_lines():
                if line.startswith("data:"):
                    n += 1
                    if n == 1:
                        task_status.started()
        out["sse_ended_cleanly"] = True

    async def download(task_status):
        got = 0
        try:
            async with c.stream("GET", p.url + "/large?size=100000000&chunk=65536&delay=0.01") as r:
                task_status.started()
                async for chunk in r.aiter_raw():
                    got += len(chunk)
        except httpx.HTTPError as exc:
            out["download_error"] = type(exc).__name__
        out["download_bytes"] = got

    async with trio.open_nursery() as n:
        await n.start(websocket)
        await n.start(sse)
        await n.start(download)
        out["signal_at"] = time.monotonic()
        sigterm()
        with trio.fail_after(10):
            out["exit_code"] = await p.proc.wait()
        out["exit_at"] = time.monotonic()
    return out


async def test_sigterm_closes_websockets_fast_kills_the_group_exits_zero():
    with trio.fail_after(60):
        async with (
            run_proxy(["--shutdown-timeout", "0.8", *ECHO]) as p,
            httpx.AsyncClient(trust_env=False, timeout=20) as c,
        ):
            await p.wait_ready()
            out = await _scenario(p, c, sigterm=lambda: p.signal(signal.SIGTERM))
    assert out["ws_code"] == 1001
    assert out["ws_at"] - out["signal_at"] < 0.1
    assert out.get("sse_ended_cleanly") is True
    assert out["exit_code"] == 0
    assert out["exit_at"] - out["signal_at"] < 2.0
    for pid in (out["app_pid"], out["grandchild"], out["escaped"]):
        assert gone(pid), f"process {pid} survived"
    assert "closing 2 websocket(s) and event stream(s)" in p.log  # the websocket and the SSE stream
    # The 1001 went out from the shutdown's own loop, before any task ran (see LongLived.go_away).
    assert "close 1001 written at once to 1 of 1 websocket(s)" in p.log
    for phase in ("stopped accepting", "SIGTERM sent", "SIGKILL sent", "done, exit code 0"):
        assert phase in p.log


async def test_second_signal_skips_the_drain_and_stubborn_app_is_killed():
    with trio.fail_after(60):
        argv = ["--shutdown-timeout", "30", *app_cmd("crash_app.py", "--mode", "ignore-term")]
        async with run_proxy(argv) as p, httpx.AsyncClient(trust_env=False, timeout=20) as c:
            await p.wait_ready()
            assert (await c.get(p.url + "/")).status_code == 200
            t0 = time.monotonic()
            p.signal(signal.SIGTERM)
            await trio.sleep(0.3)
            p.signal(signal.SIGTERM)
            with trio.fail_after(5):
                code = await p.proc.wait()
            assert code == 0 and time.monotonic() - t0 < 3
            assert "skipping the drain" in p.log


def _unshare_works() -> bool:
    if os.geteuid() != 0 or not shutil.which("unshare"):
        return False
    r = subprocess.run(["unshare", "--pid", "--fork", "--mount-proc", "true"], capture_output=True, timeout=10)
    return r.returncode == 0


def _pid1_of(unshare_pid: int) -> int:
    with open(f"/proc/{unshare_pid}/task/{unshare_pid}/children") as f:
        return int(f.read().split()[0])


@pytest.mark.skipif(not _unshare_works(), reason="needs root and unshare --pid")
async def test_as_pid1_in_a_new_pid_namespace():
    with trio.fail_after(60):
        argv_prefix = ["unshare", "--pid", "--fork", "--mount-proc"]
        async with run_proxy(["--shutdown-timeout", "0.8", *ECHO], argv_prefix=argv_prefix) as p:
            async with httpx.AsyncClient(trust_env=False, timeout=20) as c:
                await p.wait_ready()
                assert "running as PID 1" in p.log
                inner = _pid1_of(p.proc.pid)
                out = await _scenario(p, c, sigterm=lambda: os.kill(inner, signal.SIGTERM))
    assert out["ws_code"] == 1001 and out["ws_at"] - out["signal_at"] < 0.1
    assert out["exit_code"] == 0
    assert "done, exit code 0" in p.log


#: Websockets open at SIGTERM in the test below, and the bound for all their 1001s: a quarter of its
#: 2 s budget. The property is that every 1001 is written in one pass at the start of the drain, long
#: before the budget ends; how fast that pass is (26-35 ms for 1,000 here, quiet) is a benchmark's
#: figure, not an assertion: with the suite's other worker beside it, it took 104 ms once.
MANY_WEBSOCKETS = 1000
ALL_1001_WITHIN_MS = 500


async def test_a_thousand_websockets_all_get_1001_in_one_pass_early_in_the_drain():
    """trioproxy writes every 1001 in one pass before any task runs; its log times that pass
    from the signal (measured inside trioproxy: a test process reading 1,000 sockets
    cannot time them to the millisecond itself). Every client then reads its 1001."""
    import re
    import resource

    from . import rawnet

    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    need = 3 * MANY_WEBSOCKETS + 512
    if soft < need:
        if hard != resource.RLIM_INFINITY and hard < need:
            pytest.skip(f"needs {need} file descriptors, the hard limit is {hard}")
        resource.setrlimit(resource.RLIMIT_NOFILE, (need, hard))  # trioproxy and its app inherit it
    with trio.fail_after(90):
        async with run_proxy(["--shutdown-timeout", "2", *ECHO]) as p:
            await p.wait_ready()
            sockets: list[rawnet.WS] = []
            limit = trio.CapacityLimiter(50)

            async def open_one(i: int) -> None:
                async with limit:
                    sockets.append(await rawnet.ws_connect(p.port, f"/user/test/ws/{i}"))

            async with trio.open_nursery() as nursery:
                for i in range(MANY_WEBSOCKETS):
                    nursery.start_soon(open_one, i)
            assert len(sockets) == MANY_WEBSOCKETS
            p.signal(signal.SIGTERM)
            codes: list[int | None] = []

            async def closed(ws: rawnet.WS) -> None:
                op, payload = await ws.message()
                codes.append(int.from_bytes(payload[:2], "big") if op == rawnet.OP_CLOSE and payload else None)

            with trio.fail_after(10):
                async with trio.open_nursery() as nursery:
                    for ws in sockets:
                        nursery.start_soon(closed, ws)
            with trio.fail_after(10):
                await p.proc.wait()
    assert codes == [1001] * MANY_WEBSOCKETS
    assert f"close 1001 written at once to {MANY_WEBSOCKETS} of {MANY_WEBSOCKETS} websocket(s)" in p.log
    took = re.search(rf"closing {MANY_WEBSOCKETS} websocket\(s\) and event stream\(s\) \(\+(\d+) ms\)", p.log)
    assert took is not None, p.log[-2000:]
    assert int(took.group(1)) < ALL_1001_WITHIN_MS, took.group(0)
