"""Log output: readable text or JSON lines, the app's lines tagged or silenced, no secrets."""

from __future__ import annotations

import json
import re
import subprocess
import sys

import httpx
import pytest
import trio

import trioproxy

from .conftest import PY, app_cmd, run_proxy, serve_proxy
from .fake_hub import API_TOKEN, fake_hub

SAY = ["--", PY, "-c",
       "import sys, time; print('out-line', flush=True); print('err-line', file=sys.stderr, flush=True); "
       "import http.server as h; "
       "h.test(HandlerClass=h.SimpleHTTPRequestHandler, port=int(sys.argv[1]), bind='127.0.0.1')",
       "{port}"]


async def test_json_lines_with_the_apps_stream_and_whose_server_they_are():
    env = {"JUPYTERHUB_USER": "alice", "JUPYTERHUB_SERVER_NAME": "dash"}
    with trio.fail_after(20):
        async with run_proxy(["--log-format", "json", *SAY], env=env) as proxy:
            await proxy.wait_log('"stream": "stderr"')
            await proxy.wait_log('"stream": "stdout"')
    records = [json.loads(line) for line in proxy.lines if line.strip()]
    assert all({"time", "level", "logger", "message"} <= set(r) for r in records)
    # Every line says whose server it comes from (from the settings: JUPYTERHUB_USER, _SERVER_NAME).
    assert all(r["user"] == "alice" and r["server"] == "dash" for r in records)
    app = {r["message"]: r for r in records if r["logger"] == "trioproxy.app"}
    assert app["out-line"]["stream"] == "stdout" and app["out-line"]["level"] == "info"
    # stderr is info by default: frameworks write their normal output there.
    assert app["err-line"]["stream"] == "stderr" and app["err-line"]["level"] == "info"
    assert any("listening on" in r["message"] for r in records)
    # Public logger names only: the package's parts, never a module path.
    assert {r["logger"] for r in records} <= PUBLIC_LOGGERS


#: The logger names an operator may filter on (README "Logs").
PUBLIC_LOGGERS = {"trioproxy.app", "trioproxy.access", "trioproxy.git", "trioproxy.conda", "trioproxy.child",
                  "trioproxy.proxy", "trioproxy.auth", "trioproxy.hub", "trioproxy.server", "trioproxy.ops",
                  "trioproxy.run", "trioproxy.hypercorn"}


def test_every_logger_is_a_public_name():
    import pathlib
    import re

    names = set()
    for path in pathlib.Path(trioproxy.__file__).parent.rglob("*.py"):
        text = path.read_text()
        assert "getLogger(__name__)" not in text, path
        names |= set(re.findall(r'getLogger\("(trioproxy[^"]*)"\)', text))
    assert names == PUBLIC_LOGGERS


def test_text_lines_tagged_with_the_server_under_a_hub_only():
    import logging

    from trioproxy import cli

    record = logging.LogRecord("trioproxy.app", logging.INFO, __file__, 1, "[%s] %s", ("stdout", "hi"), None)
    assert logging.Formatter(cli.text_format()).format(record).endswith(" trioproxy.app] [stdout] hi")
    assert "trioproxy.app alice] " in logging.Formatter(cli.text_format("alice")).format(record)
    assert "trioproxy.app a%b/dash] " in logging.Formatter(cli.text_format("a%b", "dash")).format(record)
    entry = json.loads(cli.JSONFormatter("alice", "").format(record))
    assert entry["user"] == "alice" and "server" not in entry and entry["stream"] == "stdout"
    assert "user" not in json.loads(cli.JSONFormatter().format(record))


@pytest.mark.parametrize(("option", "level"), [((), "I"), (("--app-stderr-level", "error"), "E"),
                                                (("--app-stderr-level", "warning"), "W")])
async def test_stderr_level(option, level):
    with trio.fail_after(20):
        async with serve_proxy([*option, *SAY]) as proxy:
            line = await proxy.wait_log("[stderr] err-line")
            out = await proxy.wait_log("[stdout] out-line")
    assert line.startswith(f"[{level} ") and " trioproxy.app] " in line
    assert out.startswith("[I ")


def test_stderr_level_is_checked():
    r = subprocess.run([sys.executable, "-m", "trioproxy", "--app-stderr-level", "loud", "true"],
                       capture_output=True, text=True, timeout=20)
    assert r.returncode == 2 and "--app-stderr-level" in r.stderr


async def test_requested_restart_is_info_a_crash_an_error():
    with trio.fail_after(30):
        async with serve_proxy(SAY) as proxy:
            await proxy.wait_ready()
            assert proxy.running.parts.supervisor.restart()
            await proxy.wait_log("the app stopped for the requested restart")
            while proxy.log.count("the app is ready") < 2:
                await trio.sleep(0.05)
        crash = ["--max-restarts", "0", "--", PY, "-c", "raise SystemExit(3)"]
        async with serve_proxy(crash) as crashed:
            await crashed.wait_log("trioproxy gives up")
    stopped = next(line for line in proxy.lines if "requested restart" in line)
    assert stopped.startswith("[I ") and "killed by SIGTERM" in stopped
    assert not [line for line in proxy.lines if line.startswith(("[E ", "[W "))]
    assert any(line.startswith("[E ") and "exited with code 3" in line for line in crashed.lines)


async def test_access_log_lines_http_and_websocket():
    from trio_websocket import open_websocket_url

    args = ["--access-log", *app_cmd("echo_app.py")]
    with trio.fail_after(30):
        async with serve_proxy(args) as proxy:
            await proxy.wait_ready()
            async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
                r = await c.get(proxy.url + "/status/201?x=1&token=s3cret-value&b=2")
                assert r.status_code == 201
                assert (await c.get(f"http://127.0.0.1:{proxy.port}/elsewhere")).status_code == 404
            async with open_websocket_url(proxy.ws_url + "/ws") as ws:
                for word in ("one", "two", "three"):
                    await ws.send_message(word)
                    assert await ws.get_message() == word
            await proxy.wait_log(" ws in=")
        async with serve_proxy(app_cmd("echo_app.py")) as quiet:
            await quiet.wait_ready()
            async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
                assert (await c.get(quiet.url + "/status/201")).status_code == 201
    access = [line for line in proxy.lines if " trioproxy.access] " in line]
    assert len(access) == 3, access
    http, missing, ws = access
    assert re.search(r'\] 127\.0\.0\.1 - - \[\d\d/\w{3}/\d{4}:[\d:]{8} \+0000\] '
                     r'"GET /user/test/status/201\?x=1&token=\[secret\]&b=2 HTTP/1\.1" 201 10 \d+\.\d{3}s$', http), http
    assert '"GET /elsewhere HTTP/1.1" 404 ' in missing
    assert '"GET /user/test/ws HTTP/1.1" 101 0 ' in ws and ws.endswith(" ws in=3 out=3")
    assert "s3cret-value" not in proxy.log
    assert not [line for line in quiet.lines if "trioproxy.access" in line]  # off by default


def test_access_lines_in_json_and_query_secrets():
    import logging

    from trioproxy import cli
    from trioproxy.front import access

    assert access.clean_query(b"a=1&token=abc&TOKEN&code=x&state=y&tokens=ok") == (
        "a=1&token=[secret]&TOKEN&code=[secret]&state=[secret]&tokens=ok")
    assert access.clean_query(b"access_token=abc%20d&%74oken=z") == "access_token=[secret]&%74oken=[secret]"
    fields = {"client": "10.0.0.1", "user": "bob", "method": "GET", "path": "/x", "status": 200, "bytes": 3,
              "duration_s": 0.5}
    record = logging.LogRecord("trioproxy.access", logging.INFO, __file__, 1, "%s", ("the line",), None)
    record.access = fields
    entry = json.loads(cli.JSONFormatter("alice", "dash").format(record))
    assert entry["message"] == "the line" and entry["remote_user"] == "bob" and entry["user"] == "alice"
    assert {k: entry[k] for k in ("client", "method", "path", "status", "bytes", "duration_s")} == {
        k: v for k, v in fields.items() if k != "user"}


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
        env = {**hub.env(proxy_port=port), "JUPYTERHUB_ALLOW_TOKEN_IN_URL": "1"}
        with trio.fail_after(30):
            async with run_proxy(["--debug", "--access-log", "--last-activity-interval", "1", *SAY], env=env,
                                 port=port, prefix="/user/dan/", authtype="oauth") as proxy:
                await proxy.wait_ready()
                async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
                    r = await c.get(proxy.url + "/", headers={"Authorization": f"token {user_token}"})
                    assert r.status_code == 200
                    r = await c.get(proxy.url + f"/?token={user_token}")
                    assert r.status_code == 200
                    r = await c.get(proxy.url + "/", follow_redirects=True)
                    assert r.status_code == 200
                    cookies = [cookie.value for cookie in c.cookies.jar]
                    r = await c.get(proxy.url + "/")  # with the login cookie
                    assert r.status_code == 200
                while not hub.activity:
                    await trio.sleep(0.1)
                await proxy.wait_log("with the login cookie")
    assert cookies and all(len(value) > 8 for value in cookies)
    for secret in (API_TOKEN, user_token, *cookies):
        assert secret not in proxy.log
    assert "login: user dan" in proxy.log
    # What --debug tells: routing, the login decision, the connection to the app.
    for decision in ("GET /user/dan/: to the app (after the login check)",
                     "admitted user dan with a token in the Authorization header",
                     "admitted user dan with a token in the URL", "admitted user dan with the login cookie",
                     "not logged in: a browser, sent to the Hub to log in", "token check: asking the Hub",
                     "GET /user/dan/: a new connection to the app", "/oauth_callback: trioproxy's own endpoint"):
        assert decision in proxy.log, decision
    assert '/oauth_callback?code=[secret]&state=[secret] HTTP/1.1" 302' in proxy.log
    assert re.search(r'trioproxy\.access dan\] 127\.0\.0\.1 - dan \[.*"GET /user/dan/\?token=\[secret\] HTTP/1\.1" 200',
                     proxy.log)


async def test_debug_tells_a_pooled_connection_from_a_new_one():
    with trio.fail_after(30):
        async with serve_proxy(["--debug", *app_cmd("echo_app.py")]) as proxy:
            await proxy.wait_ready()
            async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
                for _ in range(2):
                    assert (await c.get(proxy.url + "/status/200")).status_code == 200
    assert "GET /user/test/status/200: a new connection to the app" in proxy.log
    assert "GET /user/test/status/200: a pooled connection to the app" in proxy.log


async def test_debug_tells_a_retry_on_a_fresh_connection():
    with trio.fail_after(30):
        async with serve_proxy(["--debug", *app_cmd("sloppy_app.py")]) as proxy:
            await proxy.wait_ready()
            async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
                assert (await c.get(proxy.url + "/warm")).status_code == 200
                assert (await c.get(proxy.url + "/hangup-reused")).status_code == 200
    assert ("GET /user/test/hangup-reused: the pooled connection was closed by the app before an answer: "
            "sent again on a new one") in proxy.log
