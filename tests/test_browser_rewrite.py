"""Issue 12's proof: a Flask app that knows nothing of its prefix completes a login and lands on
its dashboard under the prefix, in Chromium, through a real JupyterHub 6 and configurable-http-proxy.

``tests/apps/flask_login_app.py`` redirects to ``/login`` and ``/dashboard`` and sets its session
cookie with ``Path=/``, as Flask does for an app at the root. It runs as alice's named server
``flask`` (prefix ``/user/alice/flask/``): without the rewrite the browser follows
``Location: /login`` out of the server to the Hub's 404, and the session cookie would be sent
to every server on the Hub's origin.

One Hub for the module (JupyterHub 6 only), started only when Chromium is there.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from .browser import browse, needs_chromium
from .hub import TRIOPROXY, shared_hub

pytestmark = [pytest.mark.slow, needs_chromium]

APP = Path(__file__).parent / "apps" / "flask_login_app.py"
SERVER = "flask"
PREFIX = f"/user/alice/{SERVER}/"


@pytest.fixture(scope="module")
def hub(hubs):
    with shared_hub(hubs, "6") as h:
        yield h


async def test_a_flask_app_that_knows_no_prefix_logs_in_and_lands_on_its_dashboard(hub, tmp_path):
    with trio.fail_after(120):
        hub.set_server_cmd("alice", SERVER, [TRIOPROXY, "--", sys.executable, str(APP), "--port", "{port}"])
        await hub.start_server("alice", SERVER)
        try:
            out = await browse(
                [
                    {"goto": f"{hub.url}/hub/login?next={PREFIX.replace('/', '%2F')}"},
                    {"fill": "#username_input", "value": "alice"},
                    {"fill": "#password_input", "value": "pw"},
                    {"click": "#login_submit"},
                    # Hub -> PREFIX -> Hub authorize -> oauth_callback -> the app's / -> its /login.
                    {"wait_url": f"**{PREFIX}login", "timeout": 30},
                    {"fill": "#name", "value": "alice of flask"},
                    {"click": "#login"},
                    {"wait_url": f"**{PREFIX}dashboard", "timeout": 30},
                    {"text": "#title"},
                    {"url": True},
                    {"cookies": True},
                    {"screenshot": str(tmp_path / "flask.png")},
                ],
                timeout=90,
                check=False,
            )
        finally:
            await hub.stop_server("alice", SERVER)
    assert out.get("error") is None, (out, hub.log_tail(80))
    results = out["results"]
    assert results[8] == "Dashboard of alice of flask"
    assert results[9] == f"{hub.url}{PREFIX}dashboard"
    sessions = [c for c in results[10] if c["name"] == "session"]
    seen = [(c["name"], c["path"]) for c in results[10]]  # names and paths only: no values in the report
    assert [c["path"] for c in sessions] == [PREFIX], seen  # not "/": no other server gets it
