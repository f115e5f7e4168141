"""The app's life: start, readiness, logs, restart with backoff, giving up."""

from __future__ import annotations

import httpx
import trio

from .conftest import app_cmd, run_proxy

ECHO = app_cmd("echo_app.py")


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=20)


async def test_app_that_exits_is_restarted_and_serves_again():
    with trio.fail_after(60):
        async with run_proxy(ECHO) as p, client() as c:
            first = (await c.get(p.url + "/pid")).json()["pid"]
            for code in (1, 0):
                await c.get(p.url + f"/exit?code={code}")
                await p.wait_log(f"the app exited with code {code}")
                pid = None
                with trio.fail_after(20):
                    while True:
                        r = await c.get(p.url + "/pid")
                        if r.status_code == 200:
                            pid = r.json()["pid"]
                            break
                        assert r.status_code in (502, 503)
                        await trio.sleep(0.1)
                assert pid != first
                first = pid


async def test_repeated_failure_exits_nonzero_with_escaped_page():
    with trio.fail_after(60):
        async with run_proxy(["--public-controls", "--max-restarts", "2", *app_cmd("crash_app.py", "--mode", "exit1")]) as p, client() as c:
            await p.wait_log("the app exited with code 1")
            r = await c.get(p.url + "/")  # down, or starting again and down within the bounded wait
            assert r.status_code == 502
            assert "exited with code 1" in r.text
            assert "fatal: boom &lt;b&gt;&amp;amp;" in r.text and "<b>&amp;" not in r.text
            with trio.fail_after(30):
                code = await p.proc.wait()
            assert code == 1
            assert "giving up" in p.log


async def test_not_ready_gets_starting_page_then_restart():
    with trio.fail_after(60):
        async with run_proxy(["--ready-timeout", "8", *app_cmd("crash_app.py", "--mode", "never-ready")]) as p, client() as c:
            r = await c.get(p.url + "/")
            assert r.status_code == 503 and "starting" in r.text and r.headers["retry-after"]
            await p.wait_log("did not answer on / within 8 s", timeout=20)
            await p.wait_log("restarting the app")


async def test_chatty_app_never_blocks_and_long_lines_are_cut():
    with trio.fail_after(60):
        async with run_proxy(app_cmd("crash_app.py", "--mode", "chatty")) as p, client() as c:
            r = await c.get(p.url + "/")
            assert r.status_code == 200 and "chatty ok" in r.text
            assert "bytes cut]" in p.log


async def test_no_logs_silences_app_lines():
    with trio.fail_after(30):
        async with run_proxy(["--no-logs", *ECHO]) as p, client() as c:
            assert (await c.get(p.url + "/")).status_code == 200
            assert "echo_app listening" not in p.log


async def test_origin_host_starts_the_app_on_first_request():
    with trio.fail_after(40):
        async with run_proxy([*ECHO, "--prefix", "{origin_host}"]) as p, client() as c:
            await trio.sleep(1)
            assert "starting the app" not in p.log
            r = await c.get(p.url + "/x", headers={"Host": "hub.example:8443"})
            assert r.status_code == 200 and r.json()["app_prefix"] == "hub.example:8443"


async def test_ready_check_path_and_destport():
    with trio.fail_after(30):
        from .conftest import free_port

        port = free_port()
        async with run_proxy(["--destport", str(port), "--ready-check-path", "/status/204", *ECHO]) as p, client() as c:
            await p.wait_ready()
            assert f"on port {port}" in p.log
            r = await c.get(p.url + "/")
            assert r.status_code == 200
