"""What the app sees of the request and of trioproxy's process, end to end.

* its environment: no Hub API token unless ``--pass-api-token``, never the cookie secret;
* trioproxy is not dumpable: a same-user app cannot read its ``/proc/<pid>/environ``;
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import httpx
import pytest
import trio

from .conftest import APPS, PY, app_cmd, run_proxy

PEEK = app_cmd("peek_app.py")
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
#: trioproxy's console entry point (``trioproxy._cli:main``), run as ``PY -c``; run_proxy's
#: argv is then ``PREFIX... PY -c CODE PY -m trioproxy ARGS``, so ``sys.argv[4:]`` are the ARGS.
ENTRY = "import sys; from trioproxy import _cli; _cli.main(sys.argv[4:])"
#: The same with the prctl taken out: the control that shows what it prevents.
ENTRY_DUMPABLE = "import sys; from trioproxy import _cli; _cli.not_dumpable = lambda: False; _cli.main(sys.argv[4:])"
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
