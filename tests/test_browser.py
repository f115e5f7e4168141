"""A real browser (Debian's headless Chromium) logs in to a real JupyterHub and sees a
Streamlit app render through configurable-http-proxy and trioproxy (JupyterHub login,
the app's websocket authenticated by the login cookie)."""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from .browser import browse, needs_chromium
from .hub import TRIOPROXY, run_hub

pytestmark = [pytest.mark.slow, pytest.mark.apps]

REAL = Path(__file__).parent / "apps" / "real"
STREAMLIT = str(Path(sys.executable).parent / "streamlit")


@needs_chromium
async def test_chromium_logs_in_and_sees_streamlit_render(tmp_path):
    with trio.fail_after(150):
        async with run_hub("6", tmp_path) as hub:
            hub.set_server_cmd("alice", "", [
                TRIOPROXY, "--ready-check-path", "/_stcore/health", "--ready-timeout", "60", "--",
                STREAMLIT, "run", str(REAL / "streamlit_app.py"), "--server.port", "{port}",
                "--server.headless", "true", "--browser.gatherUsageStats", "false",
            ], env={"HOME": str(REAL)})
            await hub.start_server("alice")
            shot = tmp_path / "streamlit.png"
            out = await browse(
                [
                    {"goto": f"{hub.url}/hub/login?next=%2Fuser%2Falice%2F"},
                    {"fill": "#username_input", "value": "alice"},
                    {"fill": "#password_input", "value": "pw"},
                    {"click": "#login_submit"},
                    # Hub -> /user/alice/ -> Hub authorize -> /user/alice/oauth_callback -> the app.
                    {"wait_url": "**/user/alice/", "timeout": 30},
                    {"wait_function": "document.body.innerText.includes('hello from streamlit')", "timeout": 60},
                    {"text": "h1"},
                    {"cookies": True},
                    {"screenshot": str(shot)},
                ],
                timeout=120,
            )
            log = hub.log
    assert out.get("error") is None, (out, log[-3000:])
    results = out["results"]
    assert "trioproxy streamlit test" in results[6]
    assert any(c["name"] == "jupyterhub-user-alice" and c["httpOnly"] for c in results[7])
    assert shot.stat().st_size > 1000
    assert "login: user alice" in log
