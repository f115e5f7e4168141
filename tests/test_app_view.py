"""What the app sees of the request and of trioproxy's process, end to end.

* its environment: no Hub API token unless ``--pass-api-token``, never the cookie secret;
* trioproxy is not dumpable: a same-user app cannot read its ``/proc/<pid>/environ``;
* forwarded headers: ``X-Forwarded-Host``/``-Prefix`` are trioproxy's own, header names
  with ``_`` never arrive (HTTP and websocket);
* the cross-site check never trusts a client's ``X-Forwarded-Host``.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio
import trio_websocket

from .conftest import APPS, PY, app_cmd, free_port, run_proxy, serve_proxy
from .fake_hub import API_TOKEN, fake_hub

PEEK = app_cmd("peek_app.py")
ECHO = app_cmd("echo_app.py")
SECRETS = {
    "JUPYTERHUB_API_TOKEN": "api-token-5f1d2a",
    "JPY_API_TOKEN": "api-token-5f1d2a",
    "TRIOPROXY_COOKIE_SECRET": "cookie-secret-9e8d7c6b5a493827",
}


def client(**kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=15, **kw)


async def peek(proxy, path: str = "/") -> dict:
    async with client() as c:
        r = await c.get(proxy.url + path)
    assert r.status_code == 200, r.text
    return r.json()


# --- the environment ----------------------------------------------------------------


async def test_the_app_gets_no_api_token_unless_asked_and_never_the_cookie_secret():
    with trio.fail_after(60):
        async with run_proxy(PEEK, env=SECRETS) as p:
            await p.wait_ready()
            names = (await peek(p))["env_names"]
        assert not set(SECRETS) & set(names)
        assert "JUPYTERHUB_SERVICE_PREFIX" in names  # the rest of the environment is there
        async with run_proxy(["--pass-api-token", *PEEK], env=SECRETS) as p:
            await p.wait_ready()
            names = (await peek(p))["env_names"]
        assert {"JUPYTERHUB_API_TOKEN", "JPY_API_TOKEN"} <= set(names)
        assert "TRIOPROXY_COOKIE_SECRET" not in names
        assert SECRETS["JUPYTERHUB_API_TOKEN"] not in p.log


# --- trioproxy is not dumpable ------------------------------------------------------------

#: Run as an unprivileged user (tests run as root, and root reads every /proc).
NOBODY = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
#: trioproxy's console entry point (``trioproxy.cli:main``), run as ``PY -c``; run_proxy's
#: argv is then ``PREFIX... PY -c CODE PY -m trioproxy ARGS``, so ``sys.argv[4:]`` are the ARGS.
ENTRY = "import sys; from trioproxy import cli as _cli; _cli.main(sys.argv[4:])"
#: The same with the prctl taken out: the control that shows what it prevents.
ENTRY_DUMPABLE = ("import sys; from trioproxy import cli as _cli; "
                  "_cli.not_dumpable = lambda: False; _cli.main(sys.argv[4:])")
_CAN_SPAWN = "import subprocess, sys; subprocess.run([sys.executable, '-c', 'import trio, hypercorn'], check=True)"


def _unprivileged_python() -> tuple[str, dict[str, str]] | None:
    """A Python the unprivileged user can run, spawn itself with, and import trioproxy's stack
    with, and the environment for it; None without root or setpriv.

    This venv's interpreter may live under /root (not searchable by others): then the system's
    python3 of the same version, with this venv's site-packages on PYTHONPATH."""
    if os.geteuid() != 0 or not shutil.which("setpriv"):
        return None
    site_packages = next(p for p in sys.path if p.endswith("site-packages"))
    worktree = str(Path(__file__).parent.parent)
    env = {"PYTHONPATH": os.pathsep.join([worktree, site_packages])}
    for python in (PY, shutil.which("python3", path=os.defpath) or ""):
        if not python:
            continue
        probe = f"import sys; assert sys.version_info[:2] == {tuple(sys.version_info[:2])!r}; " + _CAN_SPAWN
        r = subprocess.run([*NOBODY, python, "-c", probe], capture_output=True, timeout=20, env={**os.environ, **env},
                           check=False)
        if r.returncode == 0:
            return python, env
    return None


UNPRIVILEGED = _unprivileged_python()


@pytest.mark.skipif(UNPRIVILEGED is None, reason="needs root, setpriv (util-linux) and a Python nobody can run")
async def test_a_same_user_app_cannot_read_trioproxys_environment():
    assert UNPRIVILEGED is not None
    python, env = UNPRIVILEGED
    app = ["--", python, str(APPS / "peek_app.py"), "--port", "{port}"]
    with trio.fail_after(60):
        async with run_proxy(app, env={**SECRETS, **env}, argv_prefix=[*NOBODY, python, "-c", ENTRY]) as p:
            await p.wait_ready()
            seen = await peek(p, "/orphan")
            assert seen["uid"] == 65534 and seen["ppid"] == p.proc.pid  # setpriv execs trioproxy
            assert seen["parent_environ"] == "PermissionError"
            assert seen["parent_environ_names"] == []
            # The app itself is unaffected (execve made it dumpable again); /proc/<pid>/stat stays public.
            assert seen["own_environ"] == "read" and seen["parent_stat"] == "read"
            # trioproxy still reads /proc for itself: the orphan re-parented to it gets reaped.
            orphan = seen["orphan_pid"]
            while os.path.exists(f"/proc/{orphan}"):
                await trio.sleep(0.05)
        # The same app under a dumpable trioproxy reads its whole environment, the token included.
        async with run_proxy(app, env={**SECRETS, **env}, argv_prefix=[*NOBODY, python, "-c", ENTRY_DUMPABLE]) as p:
            await p.wait_ready()
            seen = await peek(p)
        assert seen["parent_environ"] == "read"
        assert "JUPYTERHUB_API_TOKEN" in seen["parent_environ_names"]


# --- forwarded headers and names with "_" ------------------------------------------------

SPOOFS = {
    "Host": "hub.example:8443",
    "X-Forwarded-Host": "evil.example",
    "X-Forwarded-Prefix": "/evil",
    "X-Forwarded-For": "203.0.113.7",
    "X-Forwarded-Proto": "https,http",  # configurable-http-proxy behind a TLS ingress
    "X-Forwarded-Port": "443,8000",
    "X_CDSDASHBOARDS_JH_USER": '{"name": "admin", "admin": true}',
    "X_Other": "1",
}


def _expected(prefix: str, host: str) -> dict[str, str]:
    return {
        "x-forwarded-host": host,
        "x-forwarded-prefix": prefix,
        "x-forwarded-for": "203.0.113.7, 127.0.0.1",
        "x-forwarded-proto": "https",
        "x-forwarded-port": "443",
    }


def _check(headers: list[list[str]], prefix: str, host: str) -> None:
    names = [n.lower() for n, _ in headers]
    assert not [n for n in names if "_" in n]
    for name, value in _expected(prefix, host).items():
        assert [v for n, v in headers if n.lower() == name] == [value], name


@pytest.mark.parametrize("keep_prefix", [False, True])
async def test_forwarded_headers_are_trioproxys_own_and_underscores_never_arrive(keep_prefix):
    with trio.fail_after(60):
        args = ["--keep-prefix", *ECHO] if keep_prefix else ECHO
        async with serve_proxy(args) as p:
            await p.wait_ready()
            async with client() as c:
                r = await c.get(p.url + "/echo", headers=SPOOFS)
            assert r.status_code == 200
            _check(r.json()["headers"], p.prefix, "hub.example:8443")
            # The websocket client sends the Host of its URL.
            ws_headers = [(k, v) for k, v in SPOOFS.items() if k != "Host"]
            async with trio_websocket.open_websocket_url(p.ws_url + "/ws", extra_headers=ws_headers) as ws:
                await ws.send_message("headers?")
                seen = json.loads(await ws.get_message())
            _check(seen["headers"], p.prefix, f"127.0.0.1:{p.port}")


# --- the cross-site check ----------------------------------------------------------------


async def _login(c: httpx.AsyncClient, url: str) -> None:
    r = await c.get(url, follow_redirects=True)
    assert r.status_code == 200, r.text


async def _ws_status(url: str, headers: list[tuple[str, str]]) -> int:
    try:
        async with trio_websocket.open_websocket_url(url, extra_headers=headers):
            return 101
    except trio_websocket.ConnectionRejected as exc:
        return exc.status_code


async def test_a_client_x_forwarded_host_never_makes_a_cross_site_request_same_site():
    with trio.fail_after(60):
        async with fake_hub() as hub:
            port = free_port()
            env = hub.env(proxy_port=port, JUPYTERHUB_PUBLIC_URL="http://hub.example.org")
            async with serve_proxy(ECHO, env=env, prefix="/user/dan/", port=port, authtype="oauth") as p:
                await p.wait_ready()
                async with client() as c:
                    await _login(c, p.url + "/echo")
                    cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
                    evil = {"Origin": "http://evil", "X-Forwarded-Host": "evil"}
                    r = await c.post(p.url + "/echo", content=b"x", headers=evil)
                    ws = p.ws_url + "/ws"
                    assert (r.status_code, await _ws_status(ws, [("Cookie", cookie), *evil.items()])) == (403, 403)
                    assert "Cross-site" in r.text
                    # This request's own origin (its Host) passes, and so does the Hub's public URL
                    # behind an ingress that rewrites Host.
                    own = {"Origin": f"http://127.0.0.1:{p.port}"}
                    assert (await c.post(p.url + "/echo", content=b"x", headers=own)).status_code == 200
                    assert await _ws_status(ws, [("Cookie", cookie), *own.items()]) == 101
                    public = {"Origin": "http://hub.example.org", "Host": "svc.internal:8000"}
                    assert (await c.post(p.url + "/echo", content=b"x", headers=public)).status_code == 200
            assert "refused a cross-site POST" in p.log and "refused a cross-site websocket" in p.log
            assert API_TOKEN not in p.log
