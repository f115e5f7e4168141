"""Issue 13's proof in Chromium through a real JupyterHub 6 and configurable-http-proxy: what the
user who spawned a server sees when its app fails, is slow, or recovers.

Three named servers of alice, started side by side from the Hub (``/hub/spawn/alice/NAME``, as the
Hub's home page does), each followed in its own browser:

* ``crash``: the app exits at once (``crash_app.py --mode exit1``), ``--max-restarts 2``. The Hub
  counts the server up once trioproxy knows the app fails (its probe passes), so alice lands on
  trioproxy's page instead of the Hub's "Spawn failed ... didn't respond": she reads the app's last
  lines, then the give-up; trioproxy exits 1 and the Hub learns the server stopped.
* ``slow``: the app answers only after 25 s (silent; it reads a file every second meanwhile), with
  the default --ready-timeout: not restarted; alice waits on the live start-up page, which opens
  the app. (``--hub-ready-timeout 10``: the harness Hub's http_timeout is 20 s, not the default 30.)
* ``recover``: the app fails twice ("boom: missing config.yaml"), then works: the error page
  follows it and opens the app.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import pytest
import trio

from .browser import browse, needs_chromium
from .hub import TRIOPROXY, HubProcess, shared_hub

pytestmark = [pytest.mark.slow, needs_chromium]

APPS = Path(__file__).parent / "apps"
ECHO = f"{sys.executable} {APPS / 'echo_app.py'} --port"


@pytest.fixture(scope="module")
def hub(hubs):
    with shared_hub(hubs, "6") as h:
        yield h


def _login_and_spawn(hub: HubProcess, name: str) -> list[dict[str, Any]]:
    return [
        {"goto": f"{hub.url}/hub/login?next=%2Fhub%2Fspawn%2Falice%2F{name}"},
        {"fill": "#username_input", "value": "alice"},
        {"fill": "#password_input", "value": "pw"},
        {"click": "#login_submit"},
    ]


# Waits are selectors (playwright's selector engine), not wait_function: the pages' policy allows
# their one script only, and a polled JS predicate is an eval the page's CSP refuses.
APP_SHOWN = "body:has-text('\"raw_path\"')"


async def test_failing_slow_and_recovering_apps_as_the_user_sees_them(hub: HubProcess, tmp_path: Path):
    counter = tmp_path / "recover-starts"
    hub.set_server_cmd("alice", "crash", [TRIOPROXY, "--max-restarts", "2", "--", sys.executable,
                                          str(APPS / "crash_app.py"), "--port", "{port}", "--mode", "exit1"])
    slow_app = ("import sys, time\n"
                "for _ in range(25):\n"
                "    open(sys.executable, 'rb').read(4096); time.sleep(1)\n")
    hub.set_server_cmd("alice", "slow", [TRIOPROXY, "--hub-ready-timeout", "10", "--", "sh", "-c",
                                         f"{sys.executable} -c \"$0\" && exec {ECHO} {{port}}", slow_app])
    hub.set_server_cmd("alice", "recover", [TRIOPROXY, "--max-restarts", "5", "--", "sh", "-c",
                                            f"n=$(cat {counter} 2>/dev/null || echo 0); echo $((n+1)) > {counter}; "
                                            "if [ $n -lt 2 ]; then echo 'boom: missing config.yaml' >&2; sleep 2; "
                                            f"exit 1; fi; exec {ECHO} {{port}}"])
    crash = [
        *_login_and_spawn(hub, "crash"),
        {"wait_selector": "#tp-log:has-text('fatal: boom <b>&amp;')", "timeout": 40},
        {"wait_selector": "#tp[data-status='failed']", "timeout": 40},
        {"text": "#tp-now"},
        {"text": "#tp-next"},
        {"text": "#tp-log"},
        {"text": "h1"},
        {"screenshot": str(tmp_path / "crash.png")},
    ]
    slow = [
        *_login_and_spawn(hub, "slow"),
        {"wait_selector": "#tp[data-status='starting']", "timeout": 40},
        {"text": "#tp-now"},
        {"screenshot": str(tmp_path / "slow.png")},
        {"wait_selector": APP_SHOWN, "timeout": 60},
        {"url": True},
    ]
    recover = [
        *_login_and_spawn(hub, "recover"),
        {"wait_selector": "#tp-log:has-text('boom: missing config.yaml')", "timeout": 40},
        {"text": "#tp-now"},
        {"wait_selector": APP_SHOWN, "timeout": 60},
        {"url": True},
    ]
    out: dict[str, dict[str, Any]] = {}
    offset = hub.log_offset()

    async def run(name: str, actions: list[dict[str, Any]]) -> None:
        out[name] = await browse(actions, timeout=110, check=False)

    try:
        with trio.fail_after(150):
            async with trio.open_nursery() as nursery:
                for name, actions in (("crash", crash), ("slow", slow), ("recover", recover)):
                    nursery.start_soon(run, name, actions)
            # trioproxy gave up on "crash" and exited 1: the Hub learns the server stopped.
            while await hub.server_model("alice", "crash") is not None:
                await trio.sleep(0.5)
    finally:
        for name in ("crash", "slow", "recover"):
            if await hub.server_model("alice", name) is not None:
                await hub.stop_server("alice", name)
    log = hub.log_since(offset, n=400)
    for name in ("crash", "slow", "recover"):
        assert out[name].get("error") is None, (name, out[name], log)
    now, nxt, lines = out["crash"]["results"][6:9]
    assert now.startswith("The app failed 3 times in a row; last: it exited with code 1"), now
    assert "start it again from the Hub's home page" in nxt, nxt
    assert "fatal: boom <b>&amp;" in lines and "start 3: attempt 3 of 3" in lines, lines
    assert out["crash"]["results"][9] == "trioproxy gave up on the app"  # the heading follows too
    assert "Spawn failed" not in log
    slow_now = out["slow"]["results"][5]
    assert slow_now.startswith("Waiting for the app on port ") and "(attempt 1 of 6)" in slow_now, slow_now
    assert out["slow"]["results"][-1] == f"{hub.url}/user/alice/slow/"
    assert out["recover"]["results"][-1] == f"{hub.url}/user/alice/recover/"
    assert "no sign of progress" not in log and "still waiting for the app on port" in log
    recover_now = out["recover"]["results"][5]
    assert "attempt" in recover_now and "of 6" in recover_now, recover_now
