"""Log output: readable text or JSON lines, the app's lines tagged or silenced, no secrets."""

from __future__ import annotations

import json

import httpx
import trio

from .conftest import PY, run_proxy
from .fake_hub import API_TOKEN, fake_hub

SAY = ["--", PY, "-c",
       "import sys, time; print('out-line', flush=True); print('err-line', file=sys.stderr, flush=True); "
       "import http.server as h; "
       "h.test(HandlerClass=h.SimpleHTTPRequestHandler, port=int(sys.argv[1]), bind='127.0.0.1')",
       "{port}"]


async def test_json_lines_with_the_apps_stream():
    with trio.fail_after(20):
        async with run_proxy(["--log-format", "json", *SAY]) as proxy:
            await proxy.wait_log('"stream": "stderr"')
            await proxy.wait_log('"stream": "stdout"')
    records = [json.loads(line) for line in proxy.lines if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    app = {r["message"]: r for r in records if r["logger"] == "trioproxy.app"}
    assert app["out-line"]["stream"] == "stdout" and app["out-line"]["level"] == "info"
    assert app["err-line"]["stream"] == "stderr" and app["err-line"]["level"] == "warning"
    assert any("listening on" in r["message"] for r in records)


async def test_text_lines_tag_the_app_and_no_logs_silences_it():
    with trio.fail_after(20):
        async with run_proxy(SAY) as proxy:
            await proxy.wait_log("[stderr] err-line")
            await proxy.wait_log("[stdout] out-line")
        async with run_proxy(["--no-logs", *SAY]) as proxy:
            await proxy.wait_ready()
            await trio.sleep(0.3)
    assert "] out-line" not in proxy.log and "] err-line" not in proxy.log


async def test_tokens_never_reach_the_log_even_with_debug():
    async with fake_hub() as hub:
        user_token = hub.add_user("dan")
        port = 0
        from .conftest import free_port

        port = free_port()
        env = hub.env(proxy_port=port)
        with trio.fail_after(30):
            async with run_proxy(["--debug", "--last-activity-interval", "1", *SAY], env=env, port=port,
                                 prefix="/user/dan/", authtype="oauth") as proxy:
                await proxy.wait_ready()
                async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
                    r = await c.get(proxy.url + "/", headers={"Authorization": f"token {user_token}"})
                    assert r.status_code == 200
                    r = await c.get(proxy.url + "/", follow_redirects=True)
                    assert r.status_code == 200
                while not hub.activity:
                    await trio.sleep(0.1)
    assert API_TOKEN not in proxy.log and user_token not in proxy.log
    assert "login: user dan" in proxy.log
