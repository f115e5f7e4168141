"""``{unix_socket}``: the app on a Unix socket in a private directory, HTTP and websockets over it.

The property that matters: on a shared host (LocalProcessSpawner, SystemdSpawner) another
local user cannot reach the app around trioproxy's login, as they can reach a loopback port.
Shown as uid 65534 (tests run as root, which passes every permission check; skipped where
there is no root or no setpriv).
"""

from __future__ import annotations

import dataclasses
import importlib.util
import json
import os
import shutil
import signal
import stat
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import click
import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from trioproxy import cli as _cli
from trioproxy.child import guardian as _guardian
from trioproxy.child import socketdir as _socketdir
from trioproxy.child.connection import TcpTarget, UnixTarget
from trioproxy.settings import Reach, Settings

from .conftest import APPS, PY, InProcessProxy, app_cmd, proxy_settings, run_proxy, serve_proxy

ECHO_UDS = ["--", PY, str(APPS / "echo_app.py"), "--uds", "{unix_socket}"]
UNIX_APP = ["--", PY, str(APPS / "unix_app.py"), "--uds", "{unix_socket}"]
#: Run as an unprivileged user (as tests/test_app_view.py does).
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
#: Where the private directory goes in these tests: a parent every user may traverse, as /tmp
#: (pytest's tmp_path is under a 0700 directory of root's, which would hide a 0755 one).
PUBLIC_PARENT = "/tmp"


def _in(parent: str) -> Callable[[Settings], Settings]:
    def adjust(s: Settings) -> Settings:
        return dataclasses.replace(s, child=dataclasses.replace(s.child, socket_dir_parent=parent))

    return adjust


def _unix_path(p: InProcessProxy) -> str:
    target = p.running.state.address
    assert isinstance(target, UnixTarget)
    return target.path


# --- the command line ----------------------------------------------------------------


def test_unix_socket_needs_no_port_and_refuses_destport():
    s = proxy_settings(["--", "app", "--uds", "{unix_socket}"])
    assert s.child.reach is Reach.UNIX_SOCKET
    with pytest.raises(click.UsageError, match="--destport"):
        proxy_settings(["--destport", "5000", "--", "app", "--uds", "{unix_socket}"])
    with pytest.raises(click.UsageError, match=r"\{port\} or \{unix_socket\}"):
        proxy_settings(["--", "app", "--uds", "{unix_socket}", "--port", "{port}"])


def test_destport_with_unix_socket_exits_2_naming_it():
    r = subprocess.run([PY, "-m", "trioproxy", "--destport", "5000", "--", "app", "{unix_socket}"],
                       capture_output=True, text=True, timeout=60, check=False)
    assert r.returncode == 2 and "--destport" in r.stderr and "{unix_socket}" in r.stderr


def test_socket_directory_parent_from_the_environment(tmp_path):
    def parent(**env: str) -> str:
        s = _cli.parse(["--", "a", "{unix_socket}"], {"JUPYTERHUB_SERVICE_PREFIX": "/", **env})
        return s.child.socket_dir_parent

    assert parent(XDG_RUNTIME_DIR=str(tmp_path), TMPDIR="/var/tmp") == str(tmp_path)
    assert parent(XDG_RUNTIME_DIR=str(tmp_path / "missing"), TMPDIR=str(tmp_path)) == str(tmp_path)
    assert parent(XDG_RUNTIME_DIR="relative") == "/tmp"


def test_private_directory_is_0700_and_falls_back_when_too_deep(tmp_path):
    path = _socketdir.make(str(tmp_path))
    try:
        assert os.path.dirname(os.path.dirname(path)) == str(tmp_path)
        assert stat.S_IMODE(os.stat(os.path.dirname(path)).st_mode) == 0o700
    finally:
        _socketdir.remove(path)
    assert not os.path.exists(os.path.dirname(path))
    deep = tmp_path / ("d" * 100)
    deep.mkdir()
    path = _socketdir.make(str(deep))  # no room for the socket's name: made in /tmp
    try:
        assert path.startswith(_socketdir.FALLBACK_PARENT + "/") and len(path) <= _socketdir.SUN_PATH_MAX
    finally:
        _socketdir.remove(path)


# --- HTTP and websockets over the socket ------------------------------------------------


async def test_http_websockets_and_probe_over_a_unix_socket():
    with trio.fail_after(30):
        async with serve_proxy(ECHO_UDS, adjust=_in(PUBLIC_PARENT)) as p:
            await p.wait_ready()
            path = _unix_path(p)
            directory = os.path.dirname(path)
            assert os.path.dirname(directory) == PUBLIC_PARENT
            assert stat.S_IMODE(os.stat(directory).st_mode) == 0o700
            assert stat.S_ISSOCK(os.stat(path).st_mode)
            assert f"the app is ready at unix:{path}" in p.log
            async with httpx.AsyncClient() as client:
                r = await client.get(p.url + "/some/where?x=1")
                assert r.status_code == 200
                seen = r.json()
                assert seen["raw_path"] == "/some/where" and seen["query_string"] == "x=1"
                # Keep-alive over the socket: a second request on the pooled connection.
                assert (await client.get(p.url + "/status/201")).status_code == 201
            async with open_websocket_url(p.ws_url + "/ws") as ws:
                await ws.send_message("hello?")
                assert await ws.get_message() == "hello!"
                await ws.send_message(b"\x00\x01")
                assert await ws.get_message() == b"\x00\x01"
        assert not os.path.exists(directory)  # removed at the end of the run


async def test_a_restarted_app_gets_a_fresh_socket():
    # unix_app binds without removing an old socket, as plain servers do: its second start
    # succeeds only because trioproxy removed the socket the first one left.
    with trio.fail_after(30):
        async with serve_proxy(UNIX_APP, adjust=_in(PUBLIC_PARENT)) as p:
            await p.wait_ready()
            async with httpx.AsyncClient() as client:
                first = (await client.get(p.url + "/")).json()["pid"]
                assert (await client.get(p.url + "/exit")).text == "bye"
                while p.log.count("the app is ready") < 2:
                    await trio.sleep(0.05)
                second = (await client.get(p.url + "/")).json()["pid"]
            assert second != first
            assert "Address already in use" not in p.log


async def test_directory_removed_on_sigterm_and_when_the_app_fails_for_good(tmp_path):
    env = {"XDG_RUNTIME_DIR": "", "TMPDIR": str(tmp_path)}
    with trio.fail_after(40):
        async with run_proxy(UNIX_APP, env=env) as p:
            await p.wait_ready()
            assert len(os.listdir(tmp_path)) == 1
            p.signal(signal.SIGTERM)
            assert await p.proc.wait() == 0
        assert os.listdir(tmp_path) == []
        crash = ["--max-restarts", "1", "--", PY, "-c", "import sys; sys.exit(1)", "{unix_socket}"]
        async with run_proxy(crash, env=env) as p:
            await p.wait_log("the app's Unix socket is")
            assert await p.proc.wait() == 1  # gave up
        assert os.listdir(tmp_path) == []


async def test_directory_removed_by_the_guard_when_trioproxy_is_killed(tmp_path):
    env = {"XDG_RUNTIME_DIR": "", "TMPDIR": str(tmp_path)}
    with trio.fail_after(40):
        async with run_proxy(UNIX_APP, env=env) as p:
            await p.wait_ready()
            assert len(os.listdir(tmp_path)) == 1
            p.signal(signal.SIGKILL)  # no cleanup of its own: the process guard's
            await p.proc.wait()
        while os.listdir(tmp_path):
            await trio.sleep(0.05)


def test_guardian_protocol_for_directories():
    groups: set[int] = set()
    dirs: list[str] = []
    for line in (b"+100", b"d/run/user/1/trioproxy-x", b"drelative", b"d"):
        _guardian.apply(groups, line, dirs)
    assert groups == {100} and dirs == ["/run/user/1/trioproxy-x"]


# --- another local user cannot reach the app -------------------------------------------

#: Connects as the unprivileged user: prints "answered" (an HTTP answer came), or the error's class.
_KNOCK = """
import socket, sys
where = sys.argv[1]
try:
    if where.startswith("/"):
        s = socket.socket(socket.AF_UNIX)
        s.connect(where)
    else:
        s = socket.create_connection(("127.0.0.1", int(where)), timeout=5)
    s.settimeout(5)
    s.sendall(b"GET / HTTP/1.1\\r\\nHost: x\\r\\nConnection: close\\r\\n\\r\\n")
    print("answered" if s.recv(100).startswith(b"HTTP/") else "no answer")
except OSError as exc:
    print(type(exc).__name__)
"""


def _unprivileged_python() -> str | None:
    """A Python the unprivileged user can run (this one may live under /root), or None."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return None
    for python in (PY, "/usr/bin/python3", shutil.which("python3", path=os.defpath) or ""):
        if python and subprocess.run([*NOBODY, python, "-I", "-c", "pass"], capture_output=True, timeout=20,
                                     check=False).returncode == 0:
            return python
    return None


UNPRIVILEGED = _unprivileged_python()


async def _knock(where: str) -> str:
    assert UNPRIVILEGED is not None
    r = await trio.run_process([*NOBODY, UNPRIVILEGED, "-I", "-c", _KNOCK, where], capture_stdout=True,
                               capture_stderr=True, check=False)
    return r.stdout.decode().strip()


@pytest.mark.skipif(UNPRIVILEGED is None, reason="needs root, setpriv (util-linux) and a Python nobody can run")
@pytest.mark.skipif(stat.S_IMODE(os.stat(PUBLIC_PARENT).st_mode) & 0o001 == 0, reason="/tmp not traversable")
async def test_another_user_cannot_reach_a_unix_socket_app_but_can_reach_a_tcp_port():
    with trio.fail_after(40):
        async with serve_proxy(UNIX_APP, adjust=_in(PUBLIC_PARENT)) as p:
            await p.wait_ready()
            path = _unix_path(p)
            assert stat.S_IMODE(os.stat(path).st_mode) == 0o666  # the app's socket is open to all...
            assert await _knock(path) == "PermissionError"  # ...but not its directory
            async with httpx.AsyncClient() as client:
                r = await client.get(p.url + "/through")
            assert r.status_code == 200 and json.loads(r.text)["path"] == "/through"
        # The control: the same user reaches an app's loopback port directly, past any login.
        async with serve_proxy(app_cmd("echo_app.py")) as p:
            await p.wait_ready()
            target = p.running.state.address
            assert isinstance(target, TcpTarget)
            assert await _knock(str(target.port)) == "answered"


def test_the_knock_script_runs_here():
    # The knock itself (as this user): a socket that is not there is not a PermissionError.
    r = subprocess.run([sys.executable, "-I", "-c", _KNOCK, "/nonexistent/app.sock"], capture_output=True,
                       text=True, timeout=20, check=True)
    assert r.stdout.strip() == "FileNotFoundError"


# --- real apps that listen on a Unix socket ---------------------------------------------

REAL = APPS / "real"
_ASGI = """
async def app(scope, receive, send):
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        message = await receive()
        await send({"type": "websocket.send", "text": "uvicorn says " + message.get("text", "")})
        await send({"type": "websocket.close"})
    elif scope["type"] == "http":
        await send({"type": "http.response.start", "status": 200, "headers": [(b"content-type", b"text/plain")]})
        await send({"type": "http.response.body", "body": b"uvicorn over a unix socket"})
"""
_WSGI = """
def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"gunicorn over a unix socket"]
"""
#: name: (module that must be installed, trioproxy's arguments, path under the prefix, text in the page)
REAL_APPS = {
    "uvicorn": ("uvicorn", ["--", "uvicorn", "--app-dir", "{app_dir}", "asgi_app:app", "--uds", "{unix_socket}",
                            "--ws", "wsproto"], "/", "uvicorn over a unix socket"),
    "gunicorn": ("gunicorn", ["--", "gunicorn", "--chdir", "{app_dir}", "--bind", "unix:{unix_socket}", "wsgi_app:app"],
                 "/", "gunicorn over a unix socket"),
    "jupyter-server": ("jupyter_server", ["--keep-prefix", "--", "jupyter", "server", "--sock={unix_socket}",
                                          "--ServerApp.base_url={base_url}/", "--IdentityProvider.token=",
                                          "--allow-root", "--no-browser"], "/api", '"version"'),
    "bokeh": ("bokeh", ["--keep-prefix", "--", "bokeh", "serve", str(REAL / "bokeh_app.py"), "--unix-socket",
                        "{unix_socket}", "--prefix", "{base_url}"], "/bokeh_app", "<html"),
    "panel": ("panel", ["--keep-prefix", "--", "panel", "serve", str(REAL / "panel_app.py"), "--unix-socket",
                        "{unix_socket}", "--prefix", "{base_url}"], "/panel_app", "<html"),
    "datasette": ("datasette", ["--", "datasette", "serve", "--uds", "{unix_socket}"], "/", "Datasette"),
}


@pytest.mark.slow
@pytest.mark.apps
@pytest.mark.parametrize("name", list(REAL_APPS))
async def test_real_apps_on_a_unix_socket(name: str, tmp_path):
    module, args, path, text = REAL_APPS[name]
    if importlib.util.find_spec(module) is None:
        pytest.skip(f"{module} is not installed")
    (tmp_path / "asgi_app.py").write_text(_ASGI)
    (tmp_path / "wsgi_app.py").write_text(_WSGI)
    words = [w.replace("{app_dir}", str(tmp_path)) for w in args]
    env = {"PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
           "HOME": str(tmp_path)}
    with trio.fail_after(90):
        async with serve_proxy(["--ready-timeout", "60", *words], env=env, prefix="/user/alice/") as p:
            await p.wait_ready(timeout=70)
            assert isinstance(p.running.state.address, UnixTarget)
            async with httpx.AsyncClient(timeout=20) as client:
                r = await client.get(p.url + path)
            assert r.status_code == 200 and text in r.text
            if name == "uvicorn":
                async with open_websocket_url(p.ws_url + "/ws") as ws:
                    await ws.send_message("hi")
                    assert await ws.get_message() == "uvicorn says hi"
