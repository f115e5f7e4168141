"""A real JupyterHub (4.1, 5.x or 6.x) with configurable-http-proxy on loopback, for tests.

``make install-test`` installs JupyterHub 6 into the project venv, 4.1 and 5.x into
``.hubs/4`` and ``.hubs/5``, configurable-http-proxy 5 into ``.node``. A version that is
not installed is skipped (:func:`version_params`).

Two ways to get a Hub:

* ``async with run_hub("6", tmp_path) as hub:`` inside a trio test (one Hub per test:
  1-3 s to start on this machine, 4.1 fastest; 0.3-1.5 s to stop, servers included);
* ``hubs.get("6")`` (the session fixture ``hubs`` of tests/conftest.py, a :class:`SharedHubs`):
  one Hub per version (and one per version with internal SSL) for the whole session, shared by
  the test files; a module takes one with ``with shared_hub(hubs, version) as hub`` in a
  module-scoped fixture, which resets it (servers stopped, shares revoked) at the module's end;
* a sync, module-scoped pytest fixture, shared by the tests of a file
  (pytest-trio cannot run a module-scoped *async* fixture, but a sync one is fine)::

      @pytest.fixture(scope="module", params=version_params())
      def hub(request, tmp_path_factory):
          with hub_process(request.param, tmp_path_factory.mktemp("hub")) as h:
              yield h

Options (keywords of ``run_hub``, ``hub_process`` and ``HubProcess``): ``internal_ssl=True``;
``load_roles=[...]`` (appended to the Hub's ``load_roles``, e.g. ``[{"name": "user", "scopes":
["self", "shares!user", "read:users:name"]}]`` to let users share their servers);
``extra_config="..."`` (Python appended to the generated ``jupyterhub_config.py``);
``log_level``, ``http_timeout`` (20), ``start_timeout`` (30), ``poll_interval`` (2),
``slow_spawn_timeout`` (3: the API's POST answers 202 after that, and a server that died at
start is reported as a 500 then, not after the default 10 s).

  Tests sharing a Hub should stop the servers they start (``stop_server``), or use
  distinct server names; :meth:`HubProcess.stop_all_servers` resets between tests.

The Hub: ``http://127.0.0.1:<port>`` (CHP) in front of the Hub on ``127.0.0.1:<hub_port>``;
CHP's API on a third free port; pid files, sqlite db, cookie secret and the internal-SSL
certificates in the tmp dir. DummyAuthenticator, every user's password is :data:`PASSWORD`
(``"pw"``); admin user ``admin``, users ``alice bob carol dave`` (created at start, any
other name can log in too), group ``team`` = alice, bob; named servers allowed; a service
``test-admin`` whose token (``hub.admin_token``) holds admin scopes (see ``ADMIN_SCOPES``).

Servers are spawned by ``HarnessSpawner`` (a ``SimpleLocalProcessSpawner``) that reads at
every start ``<tmp>/spawn/<user>/<server name or _default>.json``, written by
:meth:`HubProcess.set_server_cmd`: ``{"cmd": [...], "env": {...}}`` (an env value of null
removes the variable), optionally ``"server_token_scopes"`` and
``"oauth_client_allowed_scopes"`` (lists) for that server. Each spawned process runs in
``<tmp>/home/<user>`` with the Hub's environment variables plus ``TRIOPROXY_HUB_HARNESS=<id>``,
by which teardown finds and kills whatever is left (CHP, trioproxy, the app).

API (all network calls are bounded by timeouts; async ones must run in trio):

``hub.url``             public base URL ``http://127.0.0.1:PORT`` (no trailing slash)
``hub.version``         full version string (``"6.1.1"``); ``hub.major`` = 4, 5 or 6
``hub.admin_token``     token of the ``test-admin`` service
``hub.tmp``             the Hub's directory; ``hub.log`` its whole output (``log_tail(n)``)
``hub.ssl_context(client_cert=True)``  with ``internal_ssl=True``: trusts the internal CAs and
                        presents the Hub's internal client certificate (to call a server directly)
``hub.trioproxy_cmd(*options, app="echo_app.py", app_args=())``
                        argv: ``.venv/bin/trioproxy OPTIONS -- python tests/apps/APP --port {port}``
``hub.set_server_cmd(user, server_name, args, env=None, **spec)``
``await hub.api(method, path, json=..., params=..., token=..., expect=200)``
                        httpx.Response of ``{url}/hub/api{path}`` with the admin token
``await hub.start_server(user, server_name="", timeout=30)``
                        POST, wait until ready; the server model plus ``full_url``
``await hub.stop_server(user, server_name="", timeout=30)``  waits until gone
``await hub.server_model(user, server_name="")``  None if not running
``await hub.server_pid(user, server_name="")``   pid of the spawned process (spawner state)
``await hub.user_token(user, scopes=None, expires_in=None)``  new API token of that user
``await hub.login(client, user, password=PASSWORD, next_url=None)``
                        the Hub's login form (``_xsrf`` included) on an ``httpx.AsyncClient``;
                        returns the final response and leaves the Hub cookies in the client
``hub.is_oauth_confirm_page(response)``, ``await hub.confirm_oauth(client, response)``
                        the Hub's "Authorize access" page (another user's server) and its form
``hub.client(**kw)``    an ``httpx.AsyncClient`` for browsing: follow_redirects, trust_env=False,
                        15 s timeouts
``await hub.stop_all_servers()``  (and the sync ``stop_all_servers_sync()``)
``hub.log_offset()``, ``hub.log_since(offset)``  the Hub's output since a point (failure messages)

Helpers: ``alive(pid)`` (running, a zombie counts as gone), ``await wait_gone(pids, timeout)``,
``marked_pids(hub.token)`` (processes of this Hub still running), ``TRIOPROXY`` (the venv's
``trioproxy`` script), ``version_params()``, ``installed_versions()``.

The spawner stops a server as LocalProcessSpawner does (SIGINT, then SIGTERM, then SIGKILL,
here 5 s, 5 s and 2 s apart) but checks every 50 ms whether it has exited, where JupyterHub
backs off up to about 3 s.

Cookies: httpx keeps each cookie with its path and sends it where it applies, including
on redirect hops (``jupyterhub-hub-login`` at ``/hub/``, ``jupyterhub-session-id`` at
``/``, the Hub's ``_xsrf`` at ``/hub/``; a server's OAuth cookie at ``/user/<name>/``).

Version quirks handled here: ``allow_all`` exists from 5.0 on (4.1 lets anyone in by default
when ``allowed_users`` is empty, so no user list is configured there; users are created
through ``load_groups`` and the API instead); the ``shares`` scope exists from 5.0 (a user
shares their own server with ``shares!user`` and ``read:users:name``, neither in the default
``user`` role; the ``test-admin`` token can always share); the ``load_groups`` dict form
``{"team": {"users": [...]}}`` works from 4.0 on; a callable ``oauth_client_allowed_scopes``
crashes 4.1 (``inspect`` shadowed in its spawner.py), so per-server scopes are set as lists
when the Hub assigns the spawner its server; ``DummyAuthenticator.password`` logs a
deprecation warning from 5.3 on (harmless).
"""

from __future__ import annotations

import contextlib
import html
import json
import os
import re
import secrets
import signal
import ssl
import subprocess
import sys
import time
from collections.abc import AsyncIterator, Iterator, Sequence
from pathlib import Path
from typing import Any
from urllib.parse import quote, urljoin

import httpx
import pytest
import trio

from .conftest import APPS, PY, free_port

ROOT = Path(__file__).resolve().parent.parent
TRIOPROXY = str(Path(sys.executable).parent / "trioproxy")
CHP = ROOT / ".node" / "node_modules" / ".bin" / "configurable-http-proxy"
HUB_COMMANDS = {
    "4": ROOT / ".hubs" / "4" / "bin" / "jupyterhub",
    "5": ROOT / ".hubs" / "5" / "bin" / "jupyterhub",
    "6": Path(sys.executable).parent / "jupyterhub",
}
VERSIONS = ("4", "5", "6")
PASSWORD = "pw"
ADMIN_USER = "admin"
USERS = ("alice", "bob", "carol", "dave")
GROUPS = {"team": ["alice", "bob"]}
MARKER = "TRIOPROXY_HUB_HARNESS"
#: Scopes of the ``test-admin`` service (``shares`` is added from 5.0 on).
ADMIN_SCOPES = [
    "admin:users",
    "admin:servers",
    "admin:server_state",
    "admin:groups",
    "tokens",
    "users",
    "servers",
    "groups",
    "read:users",
    "read:groups",
    "read:roles",
    "read:hub",
    "access:servers",
    "list:services",
    "read:services",
    "proxy",
]


class HubError(RuntimeError):
    """The Hub did not do what was asked; the message ends with the tail of its log."""


def installed_versions() -> list[str]:
    return [v for v in VERSIONS if HUB_COMMANDS[v].exists()] if CHP.exists() else []


def version_params(versions: Sequence[str] = VERSIONS) -> list[Any]:
    """``pytest.param`` per major version, skipped when that Hub (or CHP) is not installed."""
    have = installed_versions()
    return [
        pytest.param(
            v,
            id=f"hub{v}",
            marks=pytest.mark.skipif(v not in have, reason=f"JupyterHub {v} not installed (make install-test)"),
        )
        for v in versions
    ]


# --------------------------------------------------------------------------- config

_CONFIG = r'''
# Generated by tests/hub.py. Do not edit: rewritten at every Hub start.
import asyncio
import json
import time
from pathlib import Path

import jupyterhub
from jupyterhub.spawner import SimpleLocalProcessSpawner

H = json.loads(HARNESS_JSON)
MAJOR = int(jupyterhub.version_info[0])
SPAWN_DIR = Path(H["tmp"]) / "spawn"


def _spec(spawner):
    path = SPAWN_DIR / spawner.user.name / ((spawner.name or "_default") + ".json")
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        raise RuntimeError(f"tests/hub.py: no spawn spec {path}: call hub.set_server_cmd() first") from None


class HarnessSpawner(SimpleLocalProcessSpawner):
    """Reads its command and extra environment from the test's JSON file at every start."""

    _harness_env = None

    async def start(self):
        spec = _spec(self)
        self.cmd = list(spec["cmd"])
        self.args = []
        self._harness_env = dict(spec.get("env") or {})
        return await super().start()

    def get_env(self):
        env = super().get_env()
        for name, value in (self._harness_env or {}).items():
            if value is None:
                env.pop(name, None)
            else:
                env[name] = str(value)
        env[H["marker"]] = H["token"]
        return env

    def move_certs(self, paths):
        # No system users: the certificates stay where the Hub wrote them.
        return paths

    async def wait_for_death(self, timeout=10):
        # The default polls with exponential backoff (a server gone in 0.8 s is seen after
        # about 3 s); poll every 50 ms instead.
        loop_deadline = time.monotonic() + timeout
        while time.monotonic() < loop_deadline:
            if await self.poll() is not None:
                return
            await asyncio.sleep(0.05)
        if await self.poll() is None:
            self.log.warning("Process %i never died", self.pid)

    # User.spawn() assigns spawner.server, then reads the token and OAuth client scopes:
    # take them from the spec there (a callable oauth_client_allowed_scopes breaks 4.1).
    @property
    def server(self):
        return SimpleLocalProcessSpawner.server.fget(self)

    @server.setter
    def server(self, server):
        SimpleLocalProcessSpawner.server.fset(self, server)
        if server is not None:
            try:
                spec = _spec(self)
            except RuntimeError:
                spec = {}
            self.server_token_scopes = list(spec.get("server_token_scopes") or [])
            self.oauth_client_allowed_scopes = list(spec.get("oauth_client_allowed_scopes") or [])


c = get_config()  # noqa: F821
c.JupyterHub.ip = "127.0.0.1"
c.JupyterHub.port = H["port"]
c.JupyterHub.hub_ip = "127.0.0.1"
c.JupyterHub.hub_port = H["hub_port"]
c.JupyterHub.pid_file = H["tmp"] + "/jupyterhub.pid"
c.JupyterHub.db_url = "sqlite:///" + H["tmp"] + "/jupyterhub.sqlite"
c.JupyterHub.cookie_secret_file = H["tmp"] + "/jupyterhub_cookie_secret"
c.JupyterHub.internal_certs_location = H["tmp"] + "/internal-ssl"
c.JupyterHub.internal_ssl = H["internal_ssl"]
c.JupyterHub.log_level = H["log_level"]
c.JupyterHub.last_activity_interval = 24 * 3600
c.JupyterHub.allow_named_servers = True
c.JupyterHub.cleanup_servers = True
c.JupyterHub.cleanup_proxy = True
# The API's POST .../server answers 202 after this long if the server is not up yet, and only
# then does the Hub notice a server that died at start (default 10 s).
c.JupyterHub.tornado_settings = {"slow_spawn_timeout": H["slow_spawn_timeout"]}

c.ConfigurableHTTPProxy.command = [H["chp"]]
c.ConfigurableHTTPProxy.api_url = ("https" if H["internal_ssl"] else "http") + "://127.0.0.1:%d" % H["proxy_api_port"]
c.ConfigurableHTTPProxy.pid_file = H["tmp"] + "/jupyterhub-proxy.pid"
c.ConfigurableHTTPProxy.auth_token = H["proxy_token"]

c.JupyterHub.authenticator_class = "dummy"
c.DummyAuthenticator.password = H["password"]
c.Authenticator.admin_users = {H["admin"]}
if MAJOR >= 5:
    c.Authenticator.allow_all = True
    c.Authenticator.allowed_users = set(H["users"])
c.JupyterHub.load_groups = {name: {"users": users} for name, users in H["groups"].items()}

scopes = list(H["admin_scopes"]) + (["shares"] if MAJOR >= 5 else [])
c.JupyterHub.services = [{"name": "test-admin", "api_token": H["admin_token"]}]
c.JupyterHub.load_roles = [{"name": "test-admin", "scopes": scopes, "services": ["test-admin"]}, *H["load_roles"]]

c.JupyterHub.spawner_class = HarnessSpawner
c.HarnessSpawner.home_dir_template = H["tmp"] + "/home/{username}"
c.HarnessSpawner.http_timeout = H["http_timeout"]
c.HarnessSpawner.start_timeout = H["start_timeout"]
c.HarnessSpawner.poll_interval = H["poll_interval"]
c.HarnessSpawner.interrupt_timeout = 5
c.HarnessSpawner.term_timeout = 5
c.HarnessSpawner.kill_timeout = 2

EXTRA_CONFIG
'''


def _config_text(settings: dict[str, Any], extra_config: str) -> str:
    return _CONFIG.replace("HARNESS_JSON", repr(json.dumps(settings))).replace("EXTRA_CONFIG", extra_config)


# --------------------------------------------------------------------------- processes


def _alive(pid: int) -> bool:
    """Running and not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as f:
            stat = f.read()
    except (FileNotFoundError, ProcessLookupError):
        return False
    return stat[stat.rindex(b")") + 2 : stat.rindex(b")") + 3] != b"Z"


def marked_pids(token: str, only: int | None = None) -> list[int]:
    """Running processes whose environment carries ``TRIOPROXY_HUB_HARNESS=token`` (ours only)."""
    needle = f"{MARKER}={token}".encode()
    found = []
    names = [str(only)] if only is not None else [e.name for e in os.scandir("/proc") if e.name.isdigit()]
    for name in names:
        if int(name) == os.getpid():
            continue
        try:
            with open(f"/proc/{name}/environ", "rb") as f:
                env = f.read().split(b"\0")
        except OSError:
            continue
        if needle in env and _alive(int(name)):
            found.append(int(name))
    return found


def _tail(path: Path, n: int) -> str:
    try:
        lines = path.read_text(errors="replace").splitlines()
    except FileNotFoundError:
        return ""
    return "\n".join(lines[-n:])


# --------------------------------------------------------------------------- the Hub


class HubProcess:
    """One JupyterHub + CHP. ``with HubProcess("6", tmp) as hub`` (sync) or :func:`run_hub`."""

    def __init__(
        self,
        version: str = "6",
        tmp: Path | str | None = None,
        *,
        internal_ssl: bool = False,
        log_level: str = "INFO",
        http_timeout: int = 20,
        start_timeout: int = 30,
        poll_interval: int = 2,
        slow_spawn_timeout: float = 3,
        load_roles: Sequence[dict[str, Any]] = (),
        extra_config: str = "",
        start_timeout_s: float = 60,
    ) -> None:
        if version not in HUB_COMMANDS:
            raise ValueError(f"unknown JupyterHub major version {version!r}")
        if tmp is None:
            import tempfile

            tmp = tempfile.mkdtemp(prefix=f"hub{version}-")
        self.tmp = Path(tmp).resolve()
        self.requested_version = version
        self.internal_ssl = internal_ssl
        self.port = free_port()
        self.hub_port = free_port()
        self.proxy_api_port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.admin_token = secrets.token_hex(16)
        self.token = secrets.token_hex(8)
        self.version = ""
        self.log_path = self.tmp / "hub.log"
        self.start_seconds = 0.0
        self._proc: subprocess.Popen[bytes] | None = None
        self._settings = {
            "tmp": str(self.tmp),
            "port": self.port,
            "hub_port": self.hub_port,
            "proxy_api_port": self.proxy_api_port,
            "proxy_token": secrets.token_hex(16),
            "chp": str(CHP),
            "internal_ssl": internal_ssl,
            "log_level": log_level,
            "password": PASSWORD,
            "admin": ADMIN_USER,
            "users": list(USERS),
            "groups": GROUPS,
            "admin_token": self.admin_token,
            "admin_scopes": ADMIN_SCOPES,
            "http_timeout": http_timeout,
            "start_timeout": start_timeout,
            "poll_interval": poll_interval,
            "slow_spawn_timeout": slow_spawn_timeout,
            "marker": MARKER,
            "token": self.token,
            "load_roles": list(load_roles),
        }
        self._extra_config = extra_config
        self._start_timeout_s = start_timeout_s

    # ---- life cycle (sync: usable from a module-scoped fixture or a thread)

    @property
    def major(self) -> int:
        return int(self.version.split(".")[0]) if self.version else int(self.requested_version)

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    def start(self) -> None:
        """Start the Hub and wait until its API answers through CHP (once more on new ports
        if a port picked free was taken meanwhile)."""
        for attempt in range(3):
            try:
                return self._start()
            except HubError:
                if attempt == 2 or "address already in use" not in self.log.lower():
                    raise
                self.log_path.rename(self.log_path.with_suffix(f".failed{attempt}.log"))
                self.port, self.hub_port, self.proxy_api_port = free_port(), free_port(), free_port()
                self.url = f"http://127.0.0.1:{self.port}"
                self._settings.update(port=self.port, hub_port=self.hub_port, proxy_api_port=self.proxy_api_port)

    def _start(self) -> None:
        cmd = HUB_COMMANDS[self.requested_version]
        if not cmd.exists() or not CHP.exists():
            raise HubError(
                f"JupyterHub {self.requested_version} or CHP not installed ({cmd}, {CHP}): make install-test"
            )
        for sub in ("spawn", "home"):
            (self.tmp / sub).mkdir(parents=True, exist_ok=True)
        config = self.tmp / "jupyterhub_config.py"
        config.write_text(_config_text(self._settings, self._extra_config))
        env = {
            k: v
            for k, v in os.environ.items()
            if not k.startswith(("JUPYTERHUB_", "JPY_", "CONFIGPROXY_"))
            and k.lower() not in ("http_proxy", "https_proxy", "all_proxy")
        }
        env.update(
            {
                MARKER: self.token,
                "PYTHONUNBUFFERED": "1",
                "NO_PROXY": "127.0.0.1,localhost",
                "no_proxy": "127.0.0.1,localhost",
            }
        )
        # CHP is `#!/usr/bin/env node`; spawned servers get PATH through env_keep.
        env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "/usr/bin:/bin")])
        began = time.monotonic()
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(
                [str(cmd), "-f", str(config)],
                cwd=self.tmp,
                env=env,
                stdin=subprocess.DEVNULL,
                stdout=log,
                stderr=subprocess.STDOUT,
                start_new_session=True,
            )
        try:
            self._wait_up(began + self._start_timeout_s)
        except BaseException:
            self.stop()
            raise
        self.start_seconds = time.monotonic() - began

    def _wait_up(self, deadline: float) -> None:
        assert self._proc is not None
        with httpx.Client(trust_env=False, timeout=2) as client:
            while True:
                if self._proc.poll() is not None:
                    raise HubError(f"JupyterHub exited with {self._proc.returncode} at start\n{self.log_tail()}")
                try:
                    r = client.get(f"{self.url}/hub/api/")
                    if r.status_code == 200 and "version" in r.json():
                        self.version = r.json()["version"]
                        break
                except (httpx.HTTPError, ValueError):
                    pass
                if time.monotonic() > deadline:
                    raise HubError(f"JupyterHub did not answer on {self.url}/hub/api/\n{self.log_tail()}")
                time.sleep(0.05)
            if self.version.split(".")[0] != self.requested_version:
                raise HubError(f"asked for JupyterHub {self.requested_version}, got {self.version}")
            # Users exist from the start in every version (4.1 has no allow_all, so they are
            # not in allowed_users there; the admin API creates them).
            headers = {"Authorization": f"token {self.admin_token}"}
            r = client.get(f"{self.url}/hub/api/users", headers=headers)
            r.raise_for_status()
            missing = sorted(set(USERS) - {u["name"] for u in r.json()})
            if missing:
                r = client.post(f"{self.url}/hub/api/users", headers=headers, json={"usernames": missing})
                if r.status_code != 201:
                    raise HubError(f"could not create users {missing}: {r.status_code} {r.text}\n{self.log_tail()}")

    def stop(self, timeout: float = 15) -> None:
        """SIGTERM the Hub (it stops the servers and CHP); SIGKILL its group if it hangs; then
        SIGKILL whatever still carries this Hub's marker (CHP and the servers run in sessions
        of their own, so only the marker finds them). Idempotent."""
        proc = self._proc
        if proc is not None and proc.poll() is None:
            with contextlib.suppress(ProcessLookupError):
                proc.send_signal(signal.SIGTERM)
            try:
                proc.wait(timeout)
            except subprocess.TimeoutExpired:
                # Not reaped yet, so its pid (= its process group) cannot have been reused.
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGKILL)
                with contextlib.suppress(subprocess.TimeoutExpired):
                    proc.wait(5)
        deadline = time.monotonic() + 5
        while (pids := marked_pids(self.token)) and time.monotonic() < deadline:
            for pid in pids:
                if pid in marked_pids(self.token, only=pid):
                    with contextlib.suppress(ProcessLookupError):
                        os.kill(pid, signal.SIGKILL)
            time.sleep(0.05)

    def __enter__(self) -> HubProcess:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # ---- logs

    @property
    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def log_tail(self, n: int = 60) -> str:
        return f"--- last {n} lines of {self.log_path} ---\n" + _tail(self.log_path, n)

    def log_offset(self) -> int:
        try:
            return self.log_path.stat().st_size
        except FileNotFoundError:
            return 0

    def log_since(self, offset: int, n: int = 80) -> str:
        """The Hub's output written since ``offset`` (:meth:`log_offset`), at most ``n`` lines."""
        with open(self.log_path, "rb") as f:
            f.seek(offset)
            lines = f.read().decode(errors="replace").splitlines()
        return f"--- Hub log meanwhile ({self.log_path}) ---\n" + "\n".join(lines[-n:])

    def ssl_context(self, client_cert: bool = True) -> ssl.SSLContext:
        """With ``internal_ssl``: an SSL context trusting every internal CA (server names are
        checked) and, with ``client_cert``, presenting the Hub's own internal certificate, as
        the Hub and CHP do when they call a single-user server."""
        certs = self.tmp / "internal-ssl"
        ctx = ssl.create_default_context(cafile=str(certs / "hub-ca_trust.crt"))
        if client_cert:
            ctx.load_cert_chain(
                str(certs / "hub-internal" / "hub-internal.crt"), str(certs / "hub-internal" / "hub-internal.key")
            )
        return ctx

    # ---- spawning

    def trioproxy_cmd(self, *options: str, app: str = "echo_app.py", app_args: Sequence[str] = ()) -> list[str]:
        return [TRIOPROXY, *options, "--", PY, str(APPS / app), "--port", "{port}", *app_args]

    def set_server_cmd(
        self, user: str, server_name: str, args: Sequence[str], env: dict[str, str | None] | None = None, **spec: Any
    ) -> Path:
        """Write the command (and extra env, scopes) the next start of that server uses."""
        path = self.tmp / "spawn" / user / f"{server_name or '_default'}.json"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps({"cmd": list(args), "env": dict(env or {}), **spec}))
        return path

    # ---- REST API (async)

    def client(self, **kw: Any) -> httpx.AsyncClient:
        """An ``httpx.AsyncClient`` for browsing the Hub and its servers like a browser would."""
        kw.setdefault("follow_redirects", True)
        kw.setdefault("trust_env", False)
        kw.setdefault("timeout", httpx.Timeout(15))
        return httpx.AsyncClient(**kw)

    async def api(
        self,
        method: str,
        path: str,
        *,
        token: str | None = None,
        expect: int | Sequence[int] | None = None,
        timeout: float = 15,
        **kw: Any,
    ) -> httpx.Response:
        """``{url}/hub/api{path}`` with the admin token (or ``token``); ``expect``: status(es) required."""
        headers = {"Authorization": f"token {token or self.admin_token}", **kw.pop("headers", {})}
        async with httpx.AsyncClient(trust_env=False, timeout=timeout) as client:
            with trio.fail_after(timeout + 1):
                r = await client.request(method, f"{self.url}/hub/api{path}", headers=headers, **kw)
        if expect is not None:
            wanted = (expect,) if isinstance(expect, int) else tuple(expect)
            if r.status_code not in wanted:
                raise HubError(
                    f"{method} {path}: {r.status_code} {r.text[:500]} (wanted {wanted})\n{self.log_tail(30)}"
                )
        return r

    @staticmethod
    def _server_path(user: str, server_name: str) -> str:
        user = quote(user, safe="")
        return f"/users/{user}/servers/{quote(server_name, safe='')}" if server_name else f"/users/{user}/server"

    async def user_model(self, user: str) -> dict[str, Any]:
        return (await self.api("GET", f"/users/{quote(user, safe='')}", expect=200)).json()

    async def server_model(self, user: str, server_name: str = "") -> dict[str, Any] | None:
        return (await self.user_model(user)).get("servers", {}).get(server_name)

    async def start_server(self, user: str, server_name: str = "", timeout: float = 30) -> dict[str, Any]:
        """Start (POST), wait until ready; the server model with ``full_url`` added."""
        offset = self.log_offset()
        try:
            with trio.fail_after(timeout):
                r = await self.api("POST", self._server_path(user, server_name), json={})
                if r.status_code not in (201, 202) and not (r.status_code == 400 and "already running" in r.text):
                    raise HubError(f"start {user}/{server_name!r}: {r.status_code} {r.text}\n{self.log_since(offset)}")
                while True:
                    model = await self.server_model(user, server_name)
                    if model is None:
                        raise HubError(f"server {user}/{server_name!r} failed to start\n{self.log_since(offset)}")
                    if model.get("ready"):
                        model["full_url"] = urljoin(self.url, model["url"])
                        return model
                    await trio.sleep(0.05)
        except trio.TooSlowError:
            raise HubError(
                f"server {user}/{server_name!r} not ready within {timeout} s\n{self.log_since(offset)}"
            ) from None

    async def stop_server(self, user: str, server_name: str = "", timeout: float = 30) -> None:
        """Stop (DELETE) and wait until the Hub no longer lists the server."""
        offset = self.log_offset()
        try:
            with trio.fail_after(timeout):
                r = await self.api("DELETE", self._server_path(user, server_name), json={})
                if r.status_code not in (202, 204, 400):
                    raise HubError(f"stop {user}/{server_name!r}: {r.status_code} {r.text}\n{self.log_since(offset)}")
                while await self.server_model(user, server_name) is not None:
                    await trio.sleep(0.05)
        except trio.TooSlowError:
            raise HubError(
                f"server {user}/{server_name!r} not stopped within {timeout} s\n{self.log_since(offset)}"
            ) from None

    async def stop_all_servers(self, timeout: float = 30) -> None:
        with trio.fail_after(timeout):
            users = (await self.api("GET", "/users", expect=200)).json()
            for u in users:
                for name in list(u.get("servers") or {}):
                    await self.stop_server(u["name"], name, timeout=timeout)

    def stop_all_servers_sync(self, timeout: float = 30) -> None:
        trio.run(self.stop_all_servers, timeout)

    async def reset(self, timeout: float = 30) -> None:
        """Back to the state a fresh Hub has for the tests: no server running and (JupyterHub 5+)
        no share left, so a test file sharing this Hub with others sees nothing of theirs."""
        with trio.fail_after(timeout):
            await self.stop_all_servers(timeout)
            if self.major < 5:
                return
            users = (await self.api("GET", "/users", params={"include_stopped_servers": "1"}, expect=200)).json()
            for u in users:
                for name in {"", *(u.get("servers") or {})}:
                    owner = quote(u["name"], safe="")
                    await self.api("DELETE", f"/shares/{owner}/{quote(name, safe='')}", expect=(200, 204, 404))

    def reset_sync(self, timeout: float = 30) -> None:
        trio.run(self.reset, timeout)

    async def server_pid(self, user: str, server_name: str = "") -> int | None:
        """The spawned process's pid from the spawner state (needs ``admin:server_state``)."""
        model = await self.server_model(user, server_name)
        return ((model or {}).get("state") or {}).get("pid")

    async def user_token(
        self, user: str, scopes: Sequence[str] | None = None, *, expires_in: int | None = None, note: str = "test"
    ) -> str:
        """A new API token owned by ``user`` (scopes must be within the user's own)."""
        body: dict[str, Any] = {"note": note}
        if scopes is not None:
            body["scopes"] = list(scopes)
        if expires_in is not None:
            body["expires_in"] = expires_in
        r = await self.api("POST", f"/users/{quote(user, safe='')}/tokens", json=body, expect=(200, 201))
        return str(r.json()["token"])

    # ---- login

    async def login(
        self,
        client: httpx.AsyncClient,
        user: str,
        password: str = PASSWORD,
        *,
        next_url: str | None = None,
        timeout: float = 20,
    ) -> httpx.Response:
        """Log in through the Hub's form: GET /hub/login (``?next=``), POST it with ``_xsrf``.

        Redirects after the POST are followed as the client's ``follow_redirects`` says.
        Returns the last response; raises :class:`HubError` if the Hub set no login cookie.
        """
        with trio.fail_after(timeout):
            params = {"next": next_url} if next_url else None
            page = await client.get(f"{self.url}/hub/login", params=params, follow_redirects=True)
            if page.status_code != 200:
                raise HubError(f"GET /hub/login: {page.status_code} {page.text[:300]}")
            form = re.search(r'<form[^>]*action="([^"]*)"[^>]*method="post"', page.text, re.I) or re.search(
                r'<form[^>]*method="post"[^>]*action="([^"]*)"', page.text, re.I
            )
            xsrf = re.search(r'name="_xsrf"\s+value="([^"]*)"', page.text)
            action = urljoin(str(page.url), html.unescape(form.group(1))) if form else str(page.url)
            data = {"username": user, "password": password}
            if xsrf:
                data["_xsrf"] = html.unescape(xsrf.group(1))
            r = await client.post(action, data=data)
            if not any(c.name == "jupyterhub-hub-login" for c in client.cookies.jar):
                raise HubError(f"login of {user} failed: {r.status_code} {r.url}\n{r.text[:500]}")
            return r

    @staticmethod
    def is_oauth_confirm_page(response: httpx.Response) -> bool:
        """The Hub's "Authorize access" page (another user's server, not one's own)."""
        return (
            response.url.path.endswith("/hub/api/oauth2/authorize")
            and response.status_code == 200
            and ('name="scopes"' in response.text)
        )

    async def confirm_oauth(
        self, client: httpx.AsyncClient, page: httpx.Response, timeout: float = 20
    ) -> httpx.Response:
        """Submit the Hub's OAuth confirmation form (``page``) as the "Authorize" button does."""
        if not self.is_oauth_confirm_page(page):
            raise HubError(f"not the OAuth confirmation page: {page.status_code} {page.url}\n{page.text[:500]}")
        form = page.text[page.text.lower().index("<form") :]
        fields: dict[str, list[str]] = {}
        for m in re.finditer(r'<input[^>]*type="hidden"[^>]*name="([^"]*)"[^>]*value="([^"]*)"', form):
            fields.setdefault(html.unescape(m.group(1)), []).append(html.unescape(m.group(2)))
        with trio.fail_after(timeout):
            return await client.post(str(page.url), data=fields)


@contextlib.asynccontextmanager
async def run_hub(version: str = "6", tmp: Path | str | None = None, **kw: Any) -> AsyncIterator[HubProcess]:
    """A :class:`HubProcess`, started and stopped from trio (the blocking parts in a thread)."""
    hub = HubProcess(version, tmp, **kw)
    try:
        await trio.to_thread.run_sync(hub.start)
        yield hub
    finally:
        with trio.CancelScope(shield=True):
            await trio.to_thread.run_sync(hub.stop)


@contextlib.contextmanager
def hub_process(version: str = "6", tmp: Path | str | None = None, **kw: Any) -> Iterator[HubProcess]:
    """Sync form, for a module-scoped fixture."""
    with HubProcess(version, tmp, **kw) as hub:
        yield hub


class SharedHubs:
    """The session's Hubs, one per (version, internal_ssl), started on first use and kept until
    the session ends (the ``hubs`` fixture of tests/conftest.py). A Hub takes 2-5 s to start and
    about 1 s to stop; the test files that need nothing special of a Hub share these, and each
    file leaves its Hub :meth:`HubProcess.reset` (``shared_hub`` below does it)."""

    def __init__(self, root: Path) -> None:
        self._root = root
        self._hubs: dict[tuple[str, bool], HubProcess] = {}

    def get(self, version: str, *, internal_ssl: bool = False) -> HubProcess:
        key = (version, internal_ssl)
        if key not in self._hubs:
            where = self._root / f"hub{version}{'-ssl' if internal_ssl else ''}"
            hub = HubProcess(version, where, internal_ssl=internal_ssl)
            hub.start()
            self._hubs[key] = hub
        return self._hubs[key]

    def close(self) -> None:
        hubs, self._hubs = list(self._hubs.values()), {}
        for hub in hubs:
            hub.stop()


@contextlib.contextmanager
def shared_hub(hubs: SharedHubs, version: str, *, internal_ssl: bool = False) -> Iterator[HubProcess]:
    """A module's use of a session Hub: reset at the end, so the next file finds it as new.
    Skips the test when that Hub (or CHP) is not installed."""
    if version not in installed_versions():
        pytest.skip(f"JupyterHub {version} or configurable-http-proxy not installed (make install-test)")
    hub = hubs.get(version, internal_ssl=internal_ssl)
    try:
        yield hub
    finally:
        hub.reset_sync()


def alive(pid: int) -> bool:
    """Running (a zombie counts as gone)."""
    return _alive(pid)


async def wait_gone(pids: Sequence[int], timeout: float = 10) -> None:
    """Wait until no pid in ``pids`` runs; fail_after on timeout."""
    with trio.fail_after(timeout):
        while any(_alive(p) for p in pids):
            await trio.sleep(0.05)
