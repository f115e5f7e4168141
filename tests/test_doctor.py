"""`trioproxy doctor` in the environment a real JupyterHub Spawner gives, and with it broken."""

from __future__ import annotations

import subprocess

import pytest
import trio

from .conftest import PY
from .hub import installed_versions, shared_hub


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
    if "6" not in installed_versions():
        pytest.skip("JupyterHub 6 or configurable-http-proxy not installed (make install-test)")
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
