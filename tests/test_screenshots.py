"""What users see, in Chromium through a real JupyterHub 6 and configurable-http-proxy: trioproxy's
pages in the Hub's look, each checked to render (the Hub's logo loaded from its ``/hub/logo``,
the hashed stylesheet applied under the pages' policy, the top bar's links), and photographed.

``make screenshots`` sets ``TRIOPROXY_SCREENSHOTS=tests/screenshots``: the PNGs the README shows
are written there. Otherwise they go to the test's temporary directory (nothing in the repo).

Two named servers of alice's, started side by side from the Hub, and three browsers at once:

* ``crash``: a Python app that dies on a missing ``config.yaml`` (a traceback), ``--max-restarts 4``
  (about 8 s of restarts: the browser's login through the Hub must land while the app is still being
  restarted, even on a busy machine; with 2, about 2 s, it once arrived after the give-up): its error
  page with the last lines (``crash.png``), then the give-up page (``gave-up.png``);
* ``slow``: an app that loads for 12 s, printing its progress, the first time only (the Hub's probe
  held 1 s only, ``--hub-ready-timeout 1``, so alice lands on trioproxy's page at once): its start-up
  page (``starting.png``); once up, the owner's control page after a Restart (``controls.png``);
* bob, with a token of his own, at alice's ``slow``: the 403 page (``not-your-server.png``).
"""

from __future__ import annotations

import os
import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from .browser import browse, needs_chromium
from .hub import TRIOPROXY, HubProcess, shared_hub

pytestmark = [pytest.mark.slow, needs_chromium]

APPS = Path(__file__).parent / "apps"
#: The pictures' size: the viewport's width, the page's height (at least the viewport's).
VIEWPORT = (1000, 700)
#: Where ``make screenshots`` has the pictures written.
SCREENSHOTS_ENV = "TRIOPROXY_SCREENSHOTS"

CRASH_APP = ("import sys\n"
             "print('myapp 1.4.2: reading its settings', flush=True)\n"
             "print('myapp: settings from ./config.yaml', file=sys.stderr, flush=True)\n"
             "open('config.yaml')\n")
#: Slow the first time (12 s, a line every 2 s), then the echo app; the restart from the control
#: page is quick (its marker file is there).
SLOW_APP = """import os, sys, time
marker = os.path.join(os.path.dirname(__file__), "started")
if not os.path.exists(marker):
    open(marker, "w").close()
    for pct in range(0, 100, 17):
        print("loading the model:", pct, "%", flush=True)
        time.sleep(2)
os.execv(sys.executable, [sys.executable, ECHO_APP, *sys.argv[1:]])
"""


@pytest.fixture(scope="module")
def hub(hubs):
    with shared_hub(hubs, "6") as h:
        yield h


def _login(hub: HubProcess, user: str, next_path: str) -> list[dict[str, Any]]:
    return [
        {"goto": f"{hub.url}/hub/login?next={next_path.replace('/', '%2F')}"},
        {"fill": "#username_input", "value": user},
        {"fill": "#password_input", "value": "pw"},
        {"click": "#login_submit"},
    ]


#: Does the page render in the Hub's look? The logo came from the Hub (loaded: its natural width),
#: the stylesheet was applied (the policy allows it by its hash: else the bar is not a flexbox),
#: and the top bar's links; one result each.
LOOK_CHECKS: list[dict[str, Any]] = [
    {"wait_selector": ".tp-bar .tp-logo img"},
    {"attr": ".tp-bar .tp-logo img", "name": "src"},
    {"eval": "document.querySelector('.tp-bar .tp-logo img').naturalWidth"},
    {"eval": "getComputedStyle(document.querySelector('.tp-bar')).display"},
    {"text": ".tp-bar"},
]


def _shot(name: str, where: Path) -> list[dict[str, Any]]:
    return [*LOOK_CHECKS, {"screenshot": str(where / f"{name}.png")}]


def _check_look(results: list[Any], name: str, *, owner: bool) -> None:
    src, width, display, bar = results
    assert src == "/hub/logo", (name, src)
    assert isinstance(width, int) and width > 0, (name, "the Hub's logo did not load", width)
    assert display == "flex", (name, "the stylesheet was not applied", display)
    assert "Home" in bar.split() and "This app" in bar, (name, bar)
    # The owner's controls and "Stop my server" (the Hub's home, where its Stop button is): the owner's.
    assert ("Controls" in bar.split()) is owner and ("Stop my server" in bar) is owner, (name, bar)


async def test_the_pages_users_see_render_in_the_hubs_look(hub: HubProcess, tmp_path: Path):
    where = Path(os.environ.get(SCREENSHOTS_ENV) or tmp_path)
    where.mkdir(parents=True, exist_ok=True)
    slow_app = tmp_path / "slow_app.py"
    slow_app.write_text(SLOW_APP.replace("ECHO_APP", repr(str(APPS / "echo_app.py"))))
    hub.set_server_cmd("alice", "crash", [TRIOPROXY, "--max-restarts", "4", "--", sys.executable, "-c", CRASH_APP,
                                          "{port}"])
    hub.set_server_cmd("alice", "slow", [TRIOPROXY, "--hub-ready-timeout", "1", "--", sys.executable, str(slow_app),
                                         "--port", "{port}"])
    crash = [
        *_login(hub, "alice", "/hub/spawn/alice/crash"),
        {"wait_selector": "#tp[data-status='down'] #tp-log:has-text('FileNotFoundError')", "timeout": 40},
        *_shot("crash", where),
        {"wait_selector": "#tp[data-status='failed']", "timeout": 40},
        *_shot("gave-up", where),
    ]
    slow = [
        *_login(hub, "alice", "/hub/spawn/alice/slow"),
        {"wait_selector": "#tp[data-status='starting'] #tp-log:has-text('loading the model: 34 %')", "timeout": 40},
        *_shot("starting", where),
        {"wait_selector": "body:has-text('\"raw_path\"')", "timeout": 40},  # the app, opened by the page
        {"goto": f"{hub.url}/user/alice/slow/_trioproxy/"},
        {"wait_selector": "#state:has-text('ready')"},
        {"click": "#restart"},
        {"wait_selector": "#feedback:has-text('restarted: pid')", "timeout": 30},
        {"wait_selector": "#exits tr:nth-child(2)"},
        {"wait_selector": "#up:has-text(' s')"},
        *_shot("controls", where),
    ]
    out: dict[str, dict[str, Any]] = {}

    async def run(name: str, actions: list[dict[str, Any]]) -> None:
        out[name] = await browse(actions, timeout=100, viewport=VIEWPORT, check=False)

    async def as_bob() -> None:
        # Once the Hub routes alice's server (it counts it up), bob comes with a token of his.
        with trio.move_on_after(60):
            while not (await hub.server_model("alice", "slow") or {}).get("ready"):
                await trio.sleep(0.5)
        token = await hub.user_token("bob")
        await run("bob", [
            {"headers": {"Authorization": f"token {token}"}},
            {"goto": f"{hub.url}/user/alice/slow/"},
            {"text": "h1"},
            *_shot("not-your-server", where),
        ])

    offset = hub.log_offset()
    try:
        with trio.fail_after(130):
            async with trio.open_nursery() as nursery:
                nursery.start_soon(run, "crash", crash)
                nursery.start_soon(run, "slow", slow)
                nursery.start_soon(as_bob)
    finally:
        for name in ("crash", "slow"):
            if await hub.server_model("alice", name) is not None:
                await hub.stop_server("alice", name)
    log = hub.log_since(offset, n=300)
    for name in ("crash", "slow", "bob"):
        assert out[name].get("error") is None, (name, out[name], log)
    def look(who: str, name: str) -> list[Any]:
        """The results of the checks before the screenshot ``name`` (the wait has none)."""
        results = out[who]["results"]
        at = results.index(str(where / f"{name}.png"))
        return results[at - len(LOOK_CHECKS) + 1:at]

    for who, name in (("crash", "crash"), ("crash", "gave-up"), ("slow", "starting"), ("slow", "controls")):
        _check_look(look(who, name), name, owner=True)
    bob = out["bob"]["results"]
    assert bob[1] == 403 and bob[2] == "403: Not your server", bob
    _check_look(look("bob", "not-your-server"), "not-your-server", owner=False)
    for name in ("crash", "gave-up", "starting", "controls", "not-your-server"):
        assert (where / f"{name}.png").stat().st_size > 10_000, name
