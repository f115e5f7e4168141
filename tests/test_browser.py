"""A real browser (Debian's headless Chromium) logs in to a real JupyterHub and sees apps
render through configurable-http-proxy and trioproxy (JupyterHub login, the app's websocket
or callbacks authenticated by the login cookie).

The README's recipes (``tests/test_recipes.py``), each run as a named server of alice's on
one shared JupyterHub 6 (so each gets its own ``{base_url}``, ``/user/alice/<name>``): the
browser logs in with the Hub's form, lands on the app through OAuth, waits until the
framework has rendered the app's title, clicks its button (or types) once and sees the
result that the server computed, which only arrives over the framework's websocket,
callback or queue through trioproxy. The first six run one after the other, each with a
browser of its own; the others (``LATER_INTERACTIONS``) are started together through the
Hub's API and visited one by one in one browser, after one login.
"""

from __future__ import annotations

import functools
import sys
from pathlib import Path

import pytest
import trio

from .browser import browse, needs_chromium
from .hub import TRIOPROXY, HubProcess, shared_hub
from .test_recipes import SOLARA_CDN, app_path, home_with_apps, missing, needs, recipe_words

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


#: The recipes added later, as INTERACTIONS: all started at once, then visited in one browser.
#: A step's ``"path"`` (after the server's prefix) is opened first where the app's own start
#: page is not the one to click on.
LATER_INTERACTIONS = {
    "shiny": [
        {"wait_selector": "h1:has-text('trioproxy shiny test')", "timeout": 60},
        {"wait_selector": "text=shiny computed 42", "timeout": 30},
        {"fill": "#word", "value": "trio"},
        {"wait_selector": "text=trio computed 42", "timeout": 30},
    ],
    "marimo": [
        {"wait_selector": "text=marimo computed 42", "timeout": 60},
        {"fill": "marimo-text input", "value": "trio"},
        {"press": "marimo-text input", "key": "Enter"},
        {"wait_selector": "text=trio computed 42", "timeout": 30},
    ],
    "solara": [
        {"wait_selector": "h1:has-text('trioproxy solara test')", "timeout": 60},
        {"click": "button:has-text('Compute')"},
        {"wait_selector": "text=solara computed 42", "timeout": 30},
    ],
    "nicegui": [
        {"wait_selector": "text=trioproxy nicegui test >> visible=true", "timeout": 60},
        {"click": "#compute"},
        {"wait_selector": "text=nicegui computed 42", "timeout": 30},
    ],
    "jupyterlab": [
        # A console on a Python kernel runs a line (over the kernel's websocket)...
        {"wait_selector": ".jp-LauncherCard[data-category='Console']", "timeout": 90},
        {"click": ".jp-LauncherCard[data-category='Console']"},
        # (the kernel's banner: its kernel_info_reply came over the websocket)
        {"wait_selector": "text=An enhanced Interactive Python", "timeout": 60},
        {"fill": ".jp-CodeConsole-promptCell .cm-content", "value": "print(6 * 7, 'from the kernel')"},
        {"press": ".jp-CodeConsole-promptCell .cm-content", "key": "Shift+Enter"},
        {"wait_selector": ".jp-OutputArea-output:has-text('42 from the kernel')", "timeout": 60},
        # ...and a terminal opens from a new launcher.
        {"click": "#jp-main-dock-panel .lm-TabBar-addButton:not(.lm-mod-hidden)"},
        {"wait_selector": ".jp-LauncherCard[data-category='Other'][title*='erminal']", "timeout": 30},
        {"click": ".jp-LauncherCard[data-category='Other'][title*='erminal']"},
        {"wait_selector": ".jp-Terminal .xterm", "timeout": 30},
        {"wait_function": "fetch('/user/alice/jupyterlab/api/terminals').then(r => r.json()).then(t => t.length > 0)",
         "timeout": 30},
    ],
    "tensorboard": [
        # The time series dashboard draws the scalar's card from the logs (data fetched by POST);
        # a click pins it, and the pinned copy appears above.
        {"wait_selector": "text=trioproxy/computed >> visible=true", "timeout": 60},
        {"click": "button[aria-label*='Pin']"},
        {"wait_selector": "text=trioproxy/computed >> nth=1", "timeout": 30},
    ],
    "mlflow": [
        {"wait_selector": "a[href*='experiments/0']", "timeout": 90},
        # The Default experiment's page: its charts come from the REST API (POSTed searches).
        {"click": "a[href*='experiments/0']"},
        {"wait_url": "**/user/alice/mlflow/#/experiments/0**", "timeout": 30},
        {"wait_selector": "text=No data available for the selected time range >> nth=0", "timeout": 60},
    ],
    "datasette": [
        {"wait_selector": "h1:has-text('trioproxy datasette test')", "timeout": 60},
        {"path": "data/add_word"},
        {"fill": "input[name=word]", "value": "trio"},
        {"click": "form.sql [type=submit]"},
        {"wait_selector": "text=datasette stored the word", "timeout": 30},
        {"path": "data/words?word=trio"},
        {"wait_selector": "text=trio computed 42", "timeout": 30},
    ],
    "fastapi": [
        {"wait_selector": "h1:has-text('trioproxy fastapi test')", "timeout": 60},
        {"fill": "#word", "value": "trio"},
        {"click": "#compute"},
        {"wait_selector": "text=trio computed 42", "timeout": 30},
    ],
    "flask": [
        {"wait_selector": "#login", "timeout": 60},
        {"fill": "#name", "value": "trio"},
        {"click": "#login"},
        {"wait_url": "**/user/alice/flask/dashboard", "timeout": 30},
        {"wait_selector": "text=trio computed 42", "timeout": 30},
    ],
}


@needs_chromium
async def test_chromium_renders_the_later_recipes_through_jupyterhub(hub, tmp_path):
    names = [name for name in LATER_INTERACTIONS if missing(name) is None]
    if not names:
        pytest.skip("none of the later recipes' apps is installed")
    home = hub.tmp / "home" / "alice"
    for name in names:
        home_with_apps(home, name)
        env = {"PATH": app_path(), "SOLARA_ASSETS_PROXY_CACHE_DIR": str(SOLARA_CDN)}
        hub.set_server_cmd("alice", name, [TRIOPROXY, *recipe_words(name)[1:]], env=env)
    # One login, then each app in turn; ``owner[i]`` is the recipe that action i belongs to.
    actions: list[dict] = [
        {"goto": f"{hub.url}/hub/login?next=%2Fhub%2Fhome"},
        {"fill": "#username_input", "value": "alice"},
        {"fill": "#password_input", "value": "pw"},
        {"click": "#login_submit"},
        {"wait_url": "**/hub/home", "timeout": 30},
    ]
    owner = ["login"] * len(actions)
    for name in names:
        server = f"{hub.url}/user/alice/{name}/"
        steps = [
            # The server's prefix -> Hub authorize (alice's own server: no question) -> the app.
            {"goto": server, "timeout": 60},
            {"wait_url": f"**/user/alice/{name}/**", "timeout": 30},
            *[{"goto": server + s["path"], "timeout": 30} if "path" in s else s for s in LATER_INTERACTIONS[name]],
            {"url": True},
            {"screenshot": str(tmp_path / f"{name}.png")},
        ]
        actions += steps
        owner += [name] * len(steps)
    offset = hub.log_offset()
    with trio.fail_after(600):
        try:
            # Started together through the Hub's API: each app starts while the others do.
            async with trio.open_nursery() as nursery:
                for name in names:
                    nursery.start_soon(functools.partial(hub.start_server, "alice", name, timeout=180))
            out = await browse(actions, timeout=480, check=False)
        finally:
            with trio.CancelScope(shield=True):
                async with trio.open_nursery() as nursery:
                    for name in names:
                        nursery.start_soon(functools.partial(hub.stop_server, "alice", name, timeout=60))
    done = len(out.get("results", []))
    failed = owner[min(done, len(owner) - 1)] if out.get("error") else None
    if failed is not None:
        page = out.get("html", "")[:3000]
        raise AssertionError(f"{failed}: {out['error']}\n--- at {out.get('url')} ---\n{page}\n{hub.log_since(offset)}")
    for name in names:
        assert (tmp_path / f"{name}.png").stat().st_size > 1000, name
