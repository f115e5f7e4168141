"""Real apps behind trioproxy (installed by ``make test``): Streamlit, Voila, Panel.

Each is started by trioproxy with a README-style command line, under a
JupyterHub-like prefix, and must serve its page; Streamlit's and Panel's
websockets must connect and carry messages.
"""

from __future__ import annotations

import importlib.util
import re
import sys
from pathlib import Path

import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from .conftest import run_proxy

REAL = Path(__file__).parent / "apps" / "real"
BIN = Path(sys.executable).parent


def needs(module: str):
    return pytest.mark.skipif(importlib.util.find_spec(module) is None, reason=f"{module} is not installed")


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=60)


@needs("streamlit")
async def test_streamlit():
    argv = [
        "--ready-check-path", "/_stcore/health", "--ready-timeout", "60",
        str(BIN / "streamlit"), "run", str(REAL / "streamlit_app.py"),
        "{--}server.port", "{port}", "{--}server.headless", "true", "{--}server.enableCORS", "false",
        "{--}server.enableXsrfProtection", "false", "{--}browser.gatherUsageStats", "false",
    ]
    with trio.fail_after(90):
        async with run_proxy(argv, env={"HOME": str(REAL)}) as p, client() as c:
            await p.wait_ready(60)
            r = await c.get(p.url + "/")
            assert r.status_code == 200 and "<title>Streamlit</title>" in r.text
            assert (await c.get(p.url + "/_stcore/health")).text == "ok"
            async with open_websocket_url(p.ws_url + "/_stcore/stream", subprotocols=["streamlit", "x"]) as ws:
                assert ws.subprotocol == "streamlit"
                await ws.send_message(b"")  # not a valid BackMsg: streamlit may close; it must not hang


@needs("voila")
async def test_voila():
    argv = [
        "--ready-timeout", "60", "--progressive", "--",
        str(BIN / "voila"), str(REAL / "notebook.ipynb"), "--port={port}", "--no-browser",
        "--Voila.server_url=/", "--Voila.base_url={base_url}/", "--Voila.ip=127.0.0.1",
    ]
    with trio.fail_after(120):
        async with run_proxy(argv) as p, client() as c:
            await p.wait_ready(60)
            r = await c.get(p.url + "/")
            assert r.status_code == 200
            assert "hello from voila 42" in r.text


@needs("panel")
async def test_panel_page_and_websocket():
    argv = [
        "--ready-timeout", "60", "--",
        str(BIN / "panel"), "serve", str(REAL / "panel_app.py"), "--port", "{port}", "--address", "127.0.0.1",
        "--allow-websocket-origin", "*",
    ]
    with trio.fail_after(120):
        async with run_proxy(argv) as p, client() as c:
            await p.wait_ready(60)
            r = await c.get(p.url + "/panel_app")
            assert r.status_code == 200 and "bokeh" in r.text.lower()
            m = re.search(r'"token":\s*"([^"]+)"', r.text) or re.search(r"token=([\w.\-]+)", r.text)
            assert m, "panel page carries its session token"
            token = m.group(1)
            async with open_websocket_url(p.ws_url + "/panel_app/ws", subprotocols=["bokeh", token]) as ws:
                assert ws.subprotocol == "bokeh"
                message = await ws.get_message()  # bokeh's ACK
                assert message
