"""The start-up and error pages follow the app (issue 13): what they say, the state behind them,
the Hub's readiness probe once the app fails, slow apps under --ready-timeout, giving up."""

from __future__ import annotations

import base64
import dataclasses
import hashlib
import json
import re

import httpx
import trio

from trioproxy.child import gitrepo as _gitrepo
from trioproxy.child import progress as _progress
from trioproxy.child.output import LogTail
from trioproxy.rules import pages as _pages

from .conftest import APPS, PY, app_cmd, free_port, serve_proxy

HTML = {"Accept": "text/html"}


def _child(**changes):
    return lambda s: dataclasses.replace(s, child=dataclasses.replace(s.child, **changes))


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=20)


# --- pure: the texts and the page ------------------------------------------------------------


def test_the_texts_say_what_is_going_on_what_comes_next_and_the_fix():
    starting = _pages.AppView(status="starting", reason="the app is starting", attempt=2, max_attempts=6,
                              waiting_for="the app on port 41873", elapsed_s=12.4, idle_s=3, limit_s=10)
    t = _pages.describe(starting)
    assert t["title"] == "The app is starting"
    assert t["now"] == "Waiting for the app on port 41873: 12 s (attempt 2 of 6)."
    assert "3 s ago" in t["limits"] and "after 10 s without one (--ready-timeout)" in t["limits"]
    down = _pages.AppView(status="down", reason="exited with code 1", attempt=2, max_attempts=6,
                          next_what="restarting it (attempt 3 of 6)", next_in_s=3.6,
                          fix="if the app needs longer, raise --ready-timeout")
    t = _pages.describe(down)
    assert t["now"] == "The app exited with code 1 (attempt 2 of 6)."
    assert t["next"] == "Restarting it (attempt 3 of 6) in 4 s."
    assert t["fix"] == "Fix: if the app needs longer, raise --ready-timeout."
    failed = _pages.AppView(status="failed", reason="failed 6 times in a row; last: it exited with code 1",
                            gave_up=True, exits_in_s=9.2)
    t = _pages.describe(failed)
    assert t["title"] == "trioproxy gave up on the app"
    assert t["next"].startswith("This server stops in 9 s; start it again from the Hub's home page")
    # A failed checkout: one message, one next step (not "trying again" and "restarts it" at once).
    git = _pages.AppView(status="down", reason="was not started: cloning x failed", next_what="trying again",
                         next_in_s=10)
    t = _pages.describe(git)
    assert t["now"] == "The app was not started: cloning x failed." and t["next"] == "Trying again in 10 s."


def test_the_page_escapes_everything_and_runs_only_its_hashed_script():
    evil = "<script>alert(1)</script>&amp;"
    view = _pages.AppView(status="down", reason=evil, hint=evil, fix=evil, next_what=evil, next_in_s=1)
    page = _pages.render_state(view, log_lines=[evil], events="/user/a/_trioproxy/logs", after=7,
                               refresh_s=2).decode()
    assert "<script>alert" not in page and page.count("&lt;script&gt;alert(1)&lt;/script&gt;&amp;amp;") == 5
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert scripts == [_pages.STATE_SCRIPT]
    digest = base64.b64encode(hashlib.sha256(scripts[0].encode()).digest()).decode()
    assert f"script-src 'sha256-{digest}'" in _pages.STATE_CSP.decode()
    assert 'data-after="7"' in page and 'data-events="/user/a/_trioproxy/logs"' in page
    # Without a script the page still reloads itself; a live one only in <noscript>.
    assert '<noscript><meta http-equiv="refresh" content="2"></noscript>' in page
    plain = _pages.render_state(view, refresh_s=2).decode()
    assert "<script" not in plain and '<meta http-equiv="refresh" content="2">' in plain
    gave_up = _pages.render_state(dataclasses.replace(view, status="failed", gave_up=True)).decode()
    assert "refresh" not in gave_up


def test_git_progress_is_thinned_out_and_shown_as_it_goes():
    tail, seen = LogTail(100), []
    import logging

    progress = _gitrepo.GitProgress(tail, logging.getLogger("test.git"), "git", lambda t: t, seen.append)
    progress.line("Cloning into 'x'...")
    for pct in range(0, 101):
        progress.line(f"Receiving objects: {pct:3d}% ({pct}/100), 1.00 KiB | 1.00 KiB/s")
    progress.line("Receiving objects: 100% (100/100), 1.00 KiB | 1.00 KiB/s, done.")
    progress.line("remote: Counting objects: 100% (5/5), done.")
    kept = tail.lines()
    assert kept[0] == "[git] Cloning into 'x'..."
    assert [line.split("%")[0][-3:].strip() for line in kept[1:6]] == ["0", "25", "50", "75", "100"]
    assert len(kept) == 8  # the first, one per 25 %, both 100 % lines, and the next phase
    assert seen[:2] == ["Receiving objects 0%", "Receiving objects 1%"] and seen[-1] == "Counting objects 100%"
    assert _gitrepo.progress_of("remote: Compressing objects:  50% (1/2)") == ("Compressing objects", 50)


def test_progress_is_read_from_proc():
    import os
    from pathlib import Path

    stat = Path(f"/proc/{os.getpid()}/stat").read_bytes()
    assert (_progress.cpu_ticks(stat) or 0) > 0
    assert _progress.io_bytes(b"rchar: 10\nwchar: 5\nsyscr: 1\n") == 15
    assert _progress.io_bytes(b"rchar: 10\n") is None
    here = _progress.sample(os.getpgrp())
    assert os.getpid() in here.pids and here.progressed_since(None)


# --- in-process: the state machine behind the pages ------------------------------------------


async def _events(url: str, stop: trio.Event, into: list[tuple[str, str]]) -> None:
    """Collect the events of a page's stream until ``stop``."""
    async with client() as c, c.stream("GET", url) as r:
        assert r.status_code == 200
        event = ""
        async for line in r.aiter_lines():
            if line.startswith("event: "):
                event = line[7:]
            elif line.startswith("data: "):
                into.append((event, line[6:]))
            if stop.is_set():
                return


async def test_a_crashing_app_page_counts_attempts_separates_runs_and_gives_up_then_exits_1():
    cmd = ["--public-controls", "--max-restarts", "2", *app_cmd("crash_app.py", "--mode", "exit1")]
    with trio.fail_after(40):
        async with serve_proxy(cmd, adjust=_child(give_up_linger_s=3.0)) as p:
            events: list[tuple[str, str]] = []
            stop = trio.Event()
            async with trio.open_nursery() as n:
                n.start_soon(_events, p.url + "/_trioproxy/logs?follow=1&after=0", stop, events)
                state = p.running.state
                while state.status.name != "FAILED":
                    await state.changed()
                async with client() as c:
                    page = await c.get(p.url + "/", headers=HTML)
                stop.set()
                n.cancel_scope.cancel()
            with trio.fail_after(10):
                await p.running.shutdown.requested.wait()
            assert p.running.exit_code == 1
    assert page.status_code == 502
    text = page.text
    assert "trioproxy gave up on the app" in text and "failed 3 times in a row" in text
    assert "This server stops in" in text and "http-equiv=\"refresh\"" not in text  # no reload once given up
    assert "fatal: boom &lt;b&gt;&amp;amp;" in text
    assert re.search(r"──── \d\d:\d\d:\d\d start 2: attempt 2 of 3 ────", text)
    assert re.search(r"──── \d\d:\d\d:\d\d start 3: attempt 3 of 3 ────", text)
    nexts = [json.loads(d)["texts"]["next"] for e, d in events if e == "view"]
    assert any(t.startswith("Restarting it (attempt 2 of 3) in") for t in nexts), nexts
    assert any(t.startswith("Restarting it (attempt 3 of 3) in") for t in nexts), nexts
    assert any(t.startswith("This server stops in") for t in nexts), nexts
    assert any(e == "line" and "attempt 3 of 3" in d for e, d in events)
    assert "trioproxy gives up and exits in 3 s" in p.log
    # Where to go from there: for the owner, the controls; no Hub spawned this one (no API token),
    # so no Hub's links nor logo (tests/test_look.py: with a Hub, its home, where the server stops).
    assert 'href="/user/test/_trioproxy/"' in text
    assert 'href="/hub/home"' not in text and "/hub/logo" not in text


async def test_the_hubs_probe_is_held_while_the_app_starts_and_passes_once_it_failed():
    with trio.fail_after(30):
        async with client() as c:
            slow = ["--hub-ready-timeout", "60", *app_cmd("crash_app.py", "--mode", "never-ready")]
            async with serve_proxy(slow) as p:
                r = await c.get(p.url + "/api")
                assert r.status_code == 503  # starting, not failed: the Hub waits on its progress page
            crash = ["--hub-ready-timeout", "60", "--max-restarts", "5", *app_cmd("crash_app.py", "--mode", "exit1")]
            async with serve_proxy(crash) as p:
                await p.wait_log("the app exited with code 1")
                r = await c.get(p.url + "/api")
                # Failed once: the Hub counts the server up now and sends the user to the error page.
                assert r.status_code == 200 and "the app is not ready" in r.text and "boom" not in r.text
                r = await c.get(p.url + "/", headers=HTML)
                assert r.status_code in (502, 503) and "the app" in r.text.lower()


async def test_a_slow_app_that_works_is_waited_for_and_a_silent_one_is_restarted():
    # Silent (no output) but busy: it reads a file every 0.2 s for 3 s, three times --ready-timeout.
    busy = ["--", PY, "-c",
            "import sys, time\n"
            "end = time.time() + 3\n"
            "while time.time() < end:\n"
            "    open(sys.executable, 'rb').read(65536); time.sleep(0.2)\n"
            f"import runpy; sys.argv = ['echo', '--port', sys.argv[1]]; runpy.run_path({str(APPS / 'echo_app.py')!r}, "
            "run_name='__main__')",
            "{port}"]
    with trio.fail_after(40):
        async with serve_proxy(busy, adjust=_child(ready_timeout_s=1.0, wait_report_s=1.0)) as p, client() as c:
            await p.wait_ready(timeout=20)
            assert (await c.get(p.url + "/x")).status_code == 200
            assert "still waiting for the app on port" in p.log
            assert "restarting the app" not in p.log and "no sign of progress" not in p.log
        silent = ["--", "sh", "-c", f"sleep 3; exec {PY} {APPS / 'echo_app.py'} --port {{port}}"]
        async with serve_proxy(silent, adjust=_child(ready_timeout_s=1.0)) as p, client() as c:
            await p.wait_log("the app did not answer on / and showed no sign of progress for 1 s; stopping it")
            r = await c.get(p.url + "/", headers={**HTML})
            assert "raise --ready-timeout" in r.text


async def test_an_app_on_another_port_than_it_was_given_gets_the_hint():
    other = free_port()
    cmd = ["--public-controls", "--", "sh", "-c", f"exec {PY} {APPS / 'ports_app.py'} --http {other}", "{port}"]
    with trio.fail_after(30):
        async with serve_proxy(cmd) as p, client() as c:
            state = p.running.state
            while not state.hint:
                await state.changed()
            hint = state.hint
            r = await c.get(p.url + "/", headers=HTML)
            status = (await c.get(p.url + "/_trioproxy/status")).json()
    assert f"the app listens on {other}, not on the port it was given" in hint
    assert r.status_code == 503 and f"The app listens on {other}, not on the port it was given" in r.text
    assert "leave {port} out of the command" in r.text
    assert status["hint"] == hint and status["status"] == "starting"


def test_the_command_is_shown_without_credentials():
    from trioproxy.child.supervisor import redact_argv

    argv = ["app", "--token", "t0k", "--password=pw", "API_KEY=k", "https://u:p@git.example/r", "--port", "5"]
    assert redact_argv(argv) == ["app", "--token", "***", "--password=***", "API_KEY=***",
                                 "https://***@git.example/r", "--port", "5"]


async def test_the_owners_status_has_the_command_the_address_and_the_exits():
    with trio.fail_after(30):
        async with serve_proxy(["--public-controls", *app_cmd("echo_app.py")]) as p, client() as c:
            await p.wait_ready()
            await c.get(p.url + "/exit?code=7")
            await p.wait_log("the app exited with code 7")
            await p.wait_ready()
            state = p.running.state
            while not state.address:
                await state.changed()
            app_port = state.address.port
            status = (await c.get(p.url + "/_trioproxy/status")).json()
            outside = await c.get(f"http://127.0.0.1:{p.port}/elsewhere")
    assert "echo_app.py --port" in status["command"] and status["address"].endswith(f":{app_port}")
    assert [(e["attempt"], e["code"], e["reason"]) for e in status["exits"]] == [(1, 7, "exited with code 7")]
    # A 404 outside the prefix names and links it.
    assert outside.status_code == 404 and 'href="/user/test/"' in outside.text and "/user/test/ only" in outside.text
