"""A command without ``{port}``, ``{unix_socket}`` or ``--destport``: the app's port is found.

trioproxy warns at start, finds the TCP ports the app's process group listens on
(``/proc``), takes the lowest that answers HTTP, logs it and proxies there. The
predecessor's first README example, ``trioproxy streamlit hello``, then works as written.
"""

from __future__ import annotations

import dataclasses
import importlib.util
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

import httpx
import pytest
import trio

from trioproxy.child.connection import TcpTarget
from trioproxy.child.procfs import Listener
from trioproxy.child.supervisor import _found_targets
from trioproxy.settings import Reach, Settings

from .conftest import APPS, PY, free_port, proxy_settings, run_proxy, serve_proxy

pytestmark = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="Linux /proc")

WARNING = "the command has no {port} (nor {unix_socket}) and there is no --destport"


def _child(**changes: Any) -> Callable[[Settings], Settings]:
    def adjust(s: Settings) -> Settings:
        return dataclasses.replace(s, child=dataclasses.replace(s.child, **changes))

    return adjust


def _distinct_free_ports(n: int) -> list[int]:
    ports: set[int] = set()
    while len(ports) < n:
        ports.add(free_port())
    return sorted(ports)


def test_reach_from_the_command_and_destport():
    assert proxy_settings(["--", "app", "--port", "{port}"]).child.reach is Reach.PORT
    assert proxy_settings(["--destport", "8505", "--", "app"]).child.reach is Reach.PORT
    assert proxy_settings(["--", "streamlit", "hello"]).child.reach is Reach.FOUND_PORT


def test_wildcard_listeners_are_reached_through_loopback_ipv4_first():
    listeners = [Listener("::", 8501, 2), Listener("0.0.0.0", 8501, 1)]
    assert _found_targets(listeners, ipv4_only=False) == [TcpTarget("127.0.0.1", 8501), TcpTarget("::1", 8501)]
    assert _found_targets(listeners, ipv4_only=True) == [TcpTarget("127.0.0.1", 8501)]
    assert _found_targets([Listener("10.1.2.3", 80, 3)], ipv4_only=False) == [TcpTarget("10.1.2.3", 80)]


async def test_a_command_without_port_is_warned_found_and_proxied():
    port = free_port()
    with trio.fail_after(30):
        async with serve_proxy(["--", PY, str(APPS / "echo_app.py"), "--port", str(port)]) as p:
            await p.wait_ready()
            assert WARNING in p.log
            assert f"the app listens on {port}" in p.log
            assert p.running.state.address == TcpTarget("127.0.0.1", port)
            async with httpx.AsyncClient() as client:
                r = await client.get(p.url + "/a/b?c=1")
            assert r.status_code == 200
            assert r.json()["raw_path"] == "/a/b" and r.json()["query_string"] == "c=1"


async def test_of_several_ports_the_lowest_that_answers_http():
    silent, low, high = _distinct_free_ports(3)
    cmd = ["--", PY, str(APPS / "ports_app.py"), "--silent", str(silent), "--http", str(low), "--http", str(high)]
    with trio.fail_after(30):
        async with serve_proxy(cmd, adjust=_child(found_port_probe_s=1.0)) as p:
            await p.wait_ready()
            assert (f"the app listens on ports {silent}, {low}, {high}: proxying to {low}, "
                    "the lowest that answers HTTP on /") in p.log
            async with httpx.AsyncClient() as client:
                assert (await client.get(p.url + "/")).json() == {"port": low}


async def test_an_app_that_never_listens_says_so():
    cmd = ["--", PY, str(APPS / "crash_app.py"), "--port", "0", "--mode", "never-ready"]
    with trio.fail_after(30):
        async with serve_proxy(cmd, adjust=_child(ready_timeout_s=0.5)) as p:
            await p.wait_log("the app did not listen on any TCP port and showed no sign of progress for 0.5 s; "
                             "stopping it")


async def test_destport_alone_is_unchanged():
    # The predecessor's docker examples: the app is told its port by other means.
    port = free_port()
    cmd = ["--destport", str(port), "--", PY, str(APPS / "echo_app.py"), "--port", str(port)]
    with trio.fail_after(30):
        async with serve_proxy(cmd) as p:
            await p.wait_ready()
            assert WARNING not in p.log and f"starting the app on port {port}" in p.log
            async with httpx.AsyncClient() as client:
                assert (await client.get(p.url + "/")).status_code == 200


@pytest.mark.slow
@pytest.mark.apps
@pytest.mark.skipif(importlib.util.find_spec("streamlit") is None, reason="streamlit is not installed")
async def test_trioproxy_streamlit_hello_as_written(tmp_path: Path):
    # The command is the predecessor's README's, word for word. The environment keeps Streamlit
    # on loopback (the tests' rule; else it binds every interface and asks the network for its
    # external address) and its own venv first on PATH, as a Hub's would be.
    env = {
        "PATH": os.pathsep.join([str(Path(sys.executable).parent), os.environ.get("PATH", os.defpath)]),
        "HOME": str(tmp_path),
        "STREAMLIT_SERVER_ADDRESS": "127.0.0.1",
        "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
    }
    assert shutil.which("streamlit", path=env["PATH"])
    with trio.fail_after(90):
        async with run_proxy(["streamlit", "hello"], env=env, prefix="/user/alice/", cwd=str(tmp_path)) as p:
            await p.wait_ready(timeout=60)
            assert WARNING in p.log
            assert "the app listens on 85" in p.log  # 8501, or the next one Streamlit found free
            async with httpx.AsyncClient(timeout=20) as client:
                page = await client.get(p.url + "/")
                health = await client.get(p.url + "/_stcore/health")
            assert page.status_code == 200 and "<title>Streamlit</title>" in page.text
            assert health.status_code == 200 and health.text == "ok"
