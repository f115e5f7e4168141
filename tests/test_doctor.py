"""`trioproxy doctor` in the environment a real JupyterHub Spawner gives, and with it broken."""

from __future__ import annotations

import contextlib
import functools
import io
import subprocess

import pytest
import trio

from trioproxy.ops.doctor import Report
from trioproxy.ops.doctor_ws import (
    DoctorOptions,
    UsageProblem,
    check_websockets,
    describe_rejection,
    split_options,
    target,
)

from .conftest import PY, app_cmd, free_port, proxy_settings, replace, serve_proxy
from .fake_hub import fake_hub
from .hub import shared_hub


def doctor(env: dict[str, str], *args: str) -> subprocess.CompletedProcess:
    return subprocess.run([PY, "-m", "trioproxy", "doctor", *args], env=env, capture_output=True, text=True, timeout=60)


def test_outside_jupyterhub_names_what_is_missing_and_exits_1():
    r = doctor({"PATH": "/usr/bin:/bin", "HTTP_PROXY": "http://proxy.example:3128"}, "--port", "0")
    assert r.returncode == 1
    assert "missing: JUPYTERHUB_API_TOKEN" in r.stdout
    assert "NO_PROXY does not cover 127.0.0.1, localhost" in r.stdout
    r = doctor({"PATH": "/usr/bin:/bin", "HTTP_PROXY": "http://proxy.example:3128",
                "NO_PROXY": "localhost,127.0.0.0/8"},
               "--authtype", "none", "--port", "0")
    assert r.returncode == 0, r.stdout
    assert "NO_PROXY covers loopback" in r.stdout


@pytest.fixture(scope="module")
def ssl_hub6(hubs):
    with shared_hub(hubs, "6", internal_ssl=True) as h:
        yield h


@pytest.mark.slow
async def test_in_a_spawned_servers_environment(ssl_hub6):
    hub = ssl_hub6
    with trio.fail_after(90):
        # The app shows the doctor the server's whole environment, its token too (--pass-api-token).
        hub.set_server_cmd("alice", "", hub.trioproxy_cmd("--authtype", "none", "--pass-api-token"))
        await hub.start_server("alice")
        async with hub.client() as c:
            env = (await c.get(f"{hub.url}/user/alice/pid")).json()["env"]
        env = {k: v for k, v in env.items() if k.startswith(("JUPYTERHUB_", "PATH", "HOME"))}
        ok = await trio.to_thread.run_sync(doctor, env, "--port", "0")
        bad = await trio.to_thread.run_sync(doctor, {**env, "JUPYTERHUB_API_TOKEN": "not-a-token"}, "--port", "0")
        await hub.stop_server("alice")
    assert ok.returncode == 0, ok.stdout + ok.stderr
    for line in ("the JupyterHub variables are all set", "matches the prefix", "access scopes name this server",
                 "certificate and key load and match", "the CA bundle holds", "issued by CN=notebooks-ca",
                 "JupyterHub 6.", "chaining to JUPYTERHUB_SSL_CLIENT_CA",
                 "the API token is valid", "may report activity"):
        assert line in ok.stdout, (line, ok.stdout)
    assert bad.returncode == 1 and "does not accept JUPYTERHUB_API_TOKEN" in bad.stdout
    assert "not-a-token" not in bad.stdout + bad.stderr


# ---- websockets: the echo on the server's own address and through the route in front ---------------------------


async def _read_head(stream: trio.SocketStream) -> bytes:
    """A request head, bounded (these fronts serve one test's doctor)."""
    head = b""
    while b"\r\n\r\n" not in head and len(head) < 65536:
        data = await stream.receive_some(4096)
        if not data:
            break
        head += data
    return head


async def _answers_200(stream: trio.SocketStream) -> None:
    """A front that serves a page to anything, websocket handshakes too (a proxy that does not pass them)."""
    async with stream:
        await _read_head(stream)
        body = b"<html><head><title>Welcome to nginx!</title></head></html>"
        await stream.send_all(b"HTTP/1.1 200 OK\r\nContent-Type: text/html\r\nContent-Length: %d\r\n"
                              b"Connection: close\r\n\r\n%s" % (len(body), body))


def _strips_upgrade(port: int):
    """A front to 127.0.0.1:port that drops Upgrade and Connection (nginx without proxy_set_header Upgrade)."""

    async def handler(stream: trio.SocketStream) -> None:
        async with stream:
            head, _, rest = (await _read_head(stream)).partition(b"\r\n\r\n")
            lines = [line for line in head.split(b"\r\n")
                     if line.split(b":")[0].strip().lower() not in (b"upgrade", b"connection")]
            upstream = await trio.open_tcp_stream("127.0.0.1", port)
            async with upstream:
                await upstream.send_all(b"\r\n".join([*lines, b"Connection: close"]) + b"\r\n\r\n" + rest)
                while data := await upstream.receive_some(65536):
                    await stream.send_all(data)

    return handler


@contextlib.asynccontextmanager
async def front(handler):
    """``http://127.0.0.1:PORT`` served by ``handler`` (one connection at a time is plenty)."""
    async with trio.open_nursery() as nursery:
        listeners = await nursery.start(functools.partial(trio.serve_tcp, handler, 0, host="127.0.0.1"))
        yield f"http://127.0.0.1:{listeners[0].socket.getsockname()[1]}"
        nursery.cancel_scope.cancel()


def test_via_is_the_doctors_own_option():
    options, rest = split_options(["--port", "0", "--via", "https://hub.example.org", "--", "app", "--via", "x"])
    assert options.via == "https://hub.example.org" and rest == ["--port", "0", "--", "app", "--via", "x"]
    assert split_options(["--via=http://h:8000/"])[0].via == "http://h:8000/"
    for bad in (["--via"], ["--via", "--"], ["--via", "hub.example.org"], ["--via=ftp://h"]):
        with pytest.raises(UsageProblem, match="--via"):
            split_options(bad)
    r = doctor({"PATH": "/usr/bin:/bin"}, "--via", "hub.example.org")
    assert r.returncode == 2 and "--via must be an http:// or https:// URL" in r.stderr


def test_the_echo_is_found_under_the_prefix_wherever_it_is_reached():
    t = target("x", "http://0.0.0.0:8888/user/dan/", "/user/dan")
    assert (t.host, t.port, t.resource, t.url) == ("127.0.0.1", 8888, "/user/dan/_trioproxy/echo",
                                                  "ws://127.0.0.1:8888/user/dan/_trioproxy/echo")
    assert target("x", "https://hub.example.org/hub/", "/user/dan").url == "wss://hub.example.org/user/dan/_trioproxy/echo"


def test_each_refusal_says_what_it_means():
    page = b"<html><title>403: Controls off</title><p class=\"muted\">trioproxy</p></html>"
    said = describe_rejection("the route", 403, [], page)
    assert "trioproxy refused the server's own token" in said.what and "--public-controls" in said.fix
    said = describe_rejection("the route", 403, [], b"<title>Forbidden</title>")
    assert "not trioproxy" in said.what
    said = describe_rejection("the route", 302, [(b"Location", b"/hub/user/dan/_trioproxy/echo")], b"")
    assert "the Hub answered, not this server" in said.what
    said = describe_rejection("the route", 502, [], None)
    assert "could not reach the server" in said.what


async def test_the_websocket_checks_against_an_in_process_server():
    async with fake_hub() as hub:
        token = hub.add_user("dan")
        port = free_port()
        env = hub.env(proxy_port=port, JUPYTERHUB_SERVICE_URL=f"http://127.0.0.1:{port}/user/dan/")
        async with serve_proxy(app_cmd("echo_app.py"), env=env, prefix="/user/dan/", port=port,
                               authtype="oauth") as proxy, front(_answers_200) as blind:
            await proxy.wait_ready()
            settings = proxy_settings(["--", "true"], env={**env, "JUPYTERHUB_API_TOKEN": token}, prefix="/user/dan/",
                                      authtype="oauth")
            with trio.fail_after(30):
                out = io.StringIO()
                await check_websockets(settings, env, DoctorOptions(via=blind), Report(out))
                wrong = io.StringIO()
                await check_websockets(replace(settings, "hub", api_token="not-a-token"), env,
                                       DoctorOptions(via=proxy.url), Report(wrong))
    text = out.getvalue()
    assert "ok  websockets work on the server's own address" in text, text
    assert ("FAIL  through the Hub's route (ws://127.0.0.1:" in text and "answered 200 to a websocket handshake "
            '("Welcome to nginx!"): the proxy in front does not pass websockets' in text
            and "the server itself echoes" in text and "proxy_set_header Upgrade" in text), text
    assert token not in text
    text = wrong.getvalue()
    assert "trioproxy refused the server's own token with 403" in text and "not-a-token" not in text, text


@pytest.fixture(scope="module")
def hub6(hubs):
    with shared_hub(hubs, "6") as h:
        yield h


@pytest.mark.slow
async def test_websockets_through_a_real_hub_and_through_fronts_that_break_them(hub6):
    hub = hub6
    with trio.fail_after(120):
        hub.set_server_cmd("alice", "", hub.trioproxy_cmd("--pass-api-token"))
        await hub.start_server("alice")
        alice = {"Authorization": f"token {await hub.user_token('alice')}"}
        async with hub.client() as c:
            env = (await c.get(f"{hub.url}/user/alice/pid", headers=alice)).json()["env"]
        env = {k: v for k, v in env.items() if k.startswith(("JUPYTERHUB_", "PATH", "HOME"))}
        chp = int(hub.url.rsplit(":", 1)[1])
        # As the Spawner sets it when the Hub has a public_url.
        ok = await trio.to_thread.run_sync(doctor, {**env, "JUPYTERHUB_PUBLIC_URL": f"{hub.url}/user/alice/"},
                                           "--port", "0")
        async with front(_answers_200) as blind, front(_strips_upgrade(chp)) as stripping:
            blinded = await trio.to_thread.run_sync(doctor, env, "--port", "0", "--via", blind)
            stripped = await trio.to_thread.run_sync(doctor, env, "--port", "0", "--via", stripping)
        await hub.stop_server("alice")
    token = env["JUPYTERHUB_API_TOKEN"]
    assert ok.returncode == 0, ok.stdout + ok.stderr
    assert "ok  websockets work on the server's own address (ws://127.0.0.1:" in ok.stdout, ok.stdout
    assert f"ok  websockets work through the Hub's route ({hub.url.replace('http', 'ws')}/user/alice/" \
           "_trioproxy/echo echoes)" in ok.stdout, ok.stdout
    assert blinded.returncode == 1, blinded.stdout
    assert "answered 200 to a websocket handshake" in blinded.stdout, blinded.stdout
    assert "the server itself echoes: the route in front of it is what breaks" in blinded.stdout
    assert stripped.returncode == 1, stripped.stdout
    assert "the handshake reached trioproxy without its Upgrade header" in stripped.stdout, stripped.stdout
    for r in (ok, blinded, stripped):
        assert token not in r.stdout + r.stderr
