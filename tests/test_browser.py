"""A real browser (Debian's headless Chromium) logs in to a real JupyterHub and sees apps
render through configurable-http-proxy and trioproxy (JupyterHub login, the app's websocket
or callbacks authenticated by the login cookie).

The README's recipes (``tests/test_recipes.py``), each run as a named server of alice's on
one shared JupyterHub 6 (so each gets its own ``{base_url}``, ``/user/alice/<name>``): the
browser logs in with the Hub's form, lands on the app through OAuth, waits until the
framework has rendered the app's title, clicks its button (or types) once and sees the
result that the server computed, which only arrives over the framework's websocket,
callback or queue through trioproxy.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest
import trio

from .browser import browse, needs_chromium
from .hub import TRIOPROXY, HubProcess, installed_versions, shared_hub
from .test_recipes import home_with_apps, needs, recipe_words

pytestmark = [pytest.mark.slow, pytest.mark.apps]

REAL = Path(__file__).parent / "apps" / "real"
STREAMLIT = str(Path(sys.executable).parent / "streamlit")


@needs_chromium
async def test_chromium_logs_in_and_sees_streamlit_render(hub, tmp_path):
    with trio.fail_after(150):
        hub.set_server_cmd("alice", "", [
            TRIOPROXY, "--ready-check-path", "/_stcore/health", "--ready-timeout", "60", "--",
            STREAMLIT, "run", str(REAL / "streamlit_app.py"), "--server.port", "{port}",
            "--server.headless", "true", "--browser.gatherUsageStats", "false",
        ], env={"HOME": str(REAL)})
        offset = hub.log_offset()
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
        log = hub.log_since(offset, n=100_000)
        await hub.stop_server("alice")
    assert out.get("error") is None, (out, log[-3000:])
    results = out["results"]
    assert "trioproxy streamlit test" in results[6]
    assert any(c["name"] == "jupyterhub-user-alice" and c["httpOnly"] for c in results[7])
    assert shot.stat().st_size > 1000
    assert "login: user alice" in log


# --------------------------------------------------------------------------- the README's recipes


@pytest.fixture(scope="module")
def hub(hubs):
    if "6" not in installed_versions():
        pytest.skip("JupyterHub 6 or configurable-http-proxy not installed (make install-test)")
    with shared_hub(hubs, "6") as h:
        yield h


#: Per recipe: what shows that the framework rendered the app, then one interaction and what
#: the server answers (the actions of tests/browser.py; ``text=`` selectors pierce the shadow
#: DOM that Bokeh and Panel render into).
INTERACTIONS = {
    "streamlit": [
        {"wait_selector": "text=hello from streamlit", "timeout": 60},
        {"click": "button:has-text('Compute')"},
        {"wait_selector": "text=streamlit computed 42", "timeout": 30},
    ],
    "voila": [
        {"wait_selector": "text=hello from voila 42", "timeout": 60},
        {"wait_selector": "button.jupyter-button:has-text('Compute')", "timeout": 60},
        {"click": "button.jupyter-button:has-text('Compute')"},
        {"wait_selector": "text=voila computed 42", "timeout": 30},
    ],
    "panel": [
        {"wait_selector": "text=trioproxy panel test", "timeout": 60},
        {"click": "button:has-text('Compute')"},
        {"wait_selector": "text=panel computed 42", "timeout": 30},
    ],
    "bokeh": [
        {"wait_selector": "text=trioproxy bokeh test", "timeout": 60},
        {"click": "button:has-text('Compute')"},
        {"wait_selector": "text=bokeh computed 42", "timeout": 30},
    ],
    "dash": [
        {"wait_selector": "text=dash computed 42", "timeout": 60},
        {"fill": "#word", "value": "trio"},
        {"wait_selector": "text=trio computed 42", "timeout": 30},
    ],
    "gradio": [
        {"wait_selector": "text=trioproxy gradio test", "timeout": 60},
        {"fill": "#word textarea", "value": "trio"},
        {"click": "#compute"},
        {"wait_function": "document.querySelector('#result textarea')?.value === 'trio computed 42'", "timeout": 30},
    ],
}


async def _browse_recipe(hub: HubProcess, name: str, tmp_path: Path) -> dict:
    home_with_apps(hub.tmp / "home" / "alice", name)
    hub.set_server_cmd("alice", name, [TRIOPROXY, *recipe_words(name)[1:]])
    await hub.start_server("alice", name, timeout=90)
    try:
        return await browse(
            [
                {"goto": f"{hub.url}/hub/login?next=%2Fuser%2Falice%2F{name}%2F"},
                {"fill": "#username_input", "value": "alice"},
                {"fill": "#password_input", "value": "pw"},
                {"click": "#login_submit"},
                # Hub -> /user/alice/NAME/ -> Hub authorize -> oauth_callback -> the app.
                {"wait_url": f"**/user/alice/{name}/**", "timeout": 30},
                *INTERACTIONS[name],
                {"url": True},
                {"screenshot": str(tmp_path / f"{name}.png")},
            ],
            timeout=150,
            check=False,
        )
    finally:
        await hub.stop_server("alice", name)


@needs_chromium
@pytest.mark.parametrize("name", [pytest.param(n, marks=needs(n)) for n in INTERACTIONS])
async def test_chromium_renders_recipe_through_jupyterhub(hub, name, tmp_path):
    offset = hub.log_offset()
    with trio.fail_after(300):
        out = await _browse_recipe(hub, name, tmp_path)
    assert out.get("error") is None, (out.get("error"), out.get("html", "")[:3000], hub.log_since(offset))
    assert f"/user/alice/{name}/" in out["results"][-2]
    assert (tmp_path / f"{name}.png").stat().st_size > 1000


@needs_chromium
async def test_chromium_follows_the_start_up_page_to_the_app():
    from .conftest import APPS, PY, run_proxy

    slow = ["--public-controls", "--ready-timeout", "60", "--", "sh", "-c",
            "for i in 1 2 3 4 5 6 7 8; do echo starting-step-$i; sleep 0.8; done; "
            f"exec {PY} {APPS / 'echo_app.py'} --port {{port}}"]
    with trio.fail_after(90):
        async with run_proxy(slow, prefix="/user/test/") as proxy:
            out = await browse(
                [
                    {"goto": proxy.url + "/echo?from=startup"},
                    # The owner's page streams the app's output while it starts...
                    # (selectors, not wait_function: the page's CSP allows its one script, no eval)
                    {"wait_selector": "#tp-log:has-text('starting-step-2')", "timeout": 30},
                    # ...and moves on to the app by itself once it is ready.
                    {"wait_selector": "body:has-text('\"query_string\": \"from=startup\"')", "timeout": 40},
                ],
                timeout=80,
            )
    assert out.get("error") is None, out
