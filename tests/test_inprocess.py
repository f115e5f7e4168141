"""trioproxy.run.serving: trioproxy in a test's own trio loop, settings in, a started server out.

Two runs in one process share nothing (each owns its reaper's registry); leaving the
block runs the shutdown order; cancelling it tears everything down at once; nothing
process-wide is touched (no signal handler, no subreaper, no sweep of the process's
children). Every test is bounded by ``trio.fail_after``; loopback only.
"""

from __future__ import annotations

import signal

import httpx
import trio

from trioproxy.child import reaper as _reaper
from trioproxy.child.supervisor import Status
from trioproxy.run import serving

from .conftest import app_cmd, proxy_settings, replace, serve_proxy

ECHO = app_cmd("echo_app.py")


def _alive(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0] != b"Z"
    except OSError:
        return False


async def _ready(running) -> None:
    while running.state.status is not Status.READY:
        await running.state.changed()


async def test_serving_yields_a_started_server_and_leaving_runs_the_shutdown_order():
    with trio.fail_after(30):
        async with serving(proxy_settings(ECHO)) as running:
            assert running.urls and running.ports[0] == int(running.urls[0].rsplit(":", 1)[1])
            await _ready(running)
            app = running.parts.supervisor.pid
            assert app is not None and _alive(app)
            async with httpx.AsyncClient(trust_env=False) as c:  # accepting now
                r = await c.get(f"http://127.0.0.1:{running.ports[0]}/user/test/x")
            assert r.status_code == 200 and r.json()["raw_path"] == "/x"
        assert running.shutdown.reason == "the in-process run was left" and running.exit_code == 0
        assert not _alive(app)  # SIGTERM, drained, reaped


async def test_cancelling_the_block_tears_down_the_app_and_its_connections():
    with trio.fail_after(30):
        with trio.CancelScope() as scope:
            async with serving(proxy_settings(ECHO)) as running:
                await _ready(running)
                app = running.parts.supervisor.pid
                assert app is not None
                stream = await trio.open_tcp_stream("127.0.0.1", running.ports[0])
                scope.cancel()
                await trio.sleep_forever()
        assert scope.cancelled_caught
        assert not _alive(app)  # killed and reaped, no drain
        with trio.fail_after(5):  # and trioproxy's end of the connection is closed
            assert await stream.receive_some(65536) == b""
        await stream.aclose()


async def test_two_runs_in_one_process_have_their_own_reapers_and_leave_the_process_alone():
    handlers = (signal.SIGTERM, signal.SIGINT, signal.SIGCHLD)
    before = [signal.getsignal(s) for s in handlers]
    with trio.fail_after(30):
        async with serve_proxy(ECHO) as p, serve_proxy(ECHO) as q:
            await p.wait_ready()
            await q.wait_ready()
            runs = [x.running.parts for x in (p, q)]
            apps = [parts.supervisor.pid for parts in runs]
            assert None not in apps
            # Each run registered its own app only (and its own guard), in its own reaper.
            assert apps[0] in runs[0].reaper.ours and apps[0] not in runs[1].reaper.ours
            assert apps[1] in runs[1].reaper.ours and apps[1] not in runs[0].reaper.ours
            assert _reaper.current() is not runs[0].reaper and _reaper.current() is not runs[1].reaper
            assert [signal.getsignal(s) for s in handlers] == before
            # Each run's log lines are its own.
            [started_p] = [line.split("] ", 1)[1] for line in p.lines if "starting the app on port" in line]
            [started_q] = [line.split("] ", 1)[1] for line in q.lines if "starting the app on port" in line]
            assert started_p != started_q and started_p not in q.log and started_q not in p.log
        assert not any(_alive(pid) for pid in apps)
        assert not runs[0].reaper.ours and not runs[1].reaper.ours  # all reaped, all forgotten
    assert [signal.getsignal(s) for s in handlers] == before


async def test_request_shutdown_with_hurry_skips_the_drain(jump_clock):
    # A request the app never answers would hold the drain for the whole (long) budget.
    settings = replace(proxy_settings(app_cmd("bad_app.py")), "server", shutdown_timeout_s=30.0)
    with trio.fail_after(60):
        async with serving(settings) as running:
            await _ready(running)
            stream = await trio.open_tcp_stream("127.0.0.1", running.ports[0])
            await stream.send_all(b"GET /user/test/never HTTP/1.1\r\nHost: a\r\n\r\n")
            await trio.sleep(0.5)
            t0 = trio.current_time()
            assert running.request_shutdown("asked", hurry=True)
        assert trio.current_time() - t0 < 5 and running.shutdown.reason == "asked"
        await stream.aclose()


async def test_each_run_finds_its_own_reaper_and_no_sweep_runs_during_its_starts():
    a, b = _reaper.Reaper(), _reaper.Reaper()
    seen: dict[str, _reaper.Reaper] = {}

    async def a_run(name: str, reaper: _reaper.Reaper) -> None:
        _reaper.own(reaper)
        await trio.lowlevel.checkpoint()
        async def started_by_the_run() -> None:
            seen[name] = _reaper.current()

        async with trio.open_nursery() as n:  # what the run starts inherits it
            n.start_soon(started_by_the_run)

    async with trio.open_nursery() as n:
        n.start_soon(a_run, "a", a)
        n.start_soon(a_run, "b", b)
    assert seen == {"a": a, "b": b} and _reaper.current() not in (a, b)

    # An exited child nobody registered: swept, except while a start is under way.
    orphan = await trio.lowlevel.open_process(["true"])
    with trio.fail_after(10):
        while _state(orphan.pid) != "Z":
            await trio.sleep(0.01)
    a.starting = 1
    assert a.reap_zombies(lambda: None) == 0 and _state(orphan.pid) == "Z"
    a.starting = 0
    assert a.reap_zombies(lambda: None) >= 1 and _state(orphan.pid) is None
    with trio.fail_after(5):
        await orphan.wait()  # already reaped: trio reads no status (ECHILD)


def _state(pid: int) -> str | None:
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            return f.read().rsplit(b")", 1)[1].split()[0].decode()
    except OSError:
        return None
