"""Headless Chromium for tests: Debian's ``/usr/bin/chromium`` driven by playwright (sync API).

Playwright's Python API runs on asyncio, so from a trio test the browser runs in a
subprocess (this file, run as a script) that reads a list of actions as JSON on stdin
and prints one JSON result on stdout::

    from .browser import browse, needs_chromium

    @needs_chromium
    async def test_page(...):
        out = await browse([
            {"goto": f"{hub.url}/hub/login"},
            {"fill": "#username_input", "value": "alice"},
            {"fill": "#password_input", "value": "pw"},
            {"click": "#login_submit"},
            {"wait_url": "**/hub/home"},
            {"text": "#start"},
        ], timeout=60)
        assert out["results"][-1] == "Start My Server"

Actions (one key names the action; the results list gets one entry per action, None for
those that return nothing):

``{"goto": url}``                  navigate; result: the HTTP status of the main response
``{"fill": sel, "value": v}``      type into an input
``{"click": sel}``                 click (and let navigation happen)
``{"press": sel, "key": "Enter"}`` key press on an element
``{"wait_url": glob_or_url}``      wait until the page's URL matches (playwright glob)
``{"wait_selector": sel}``         wait until the element is attached and visible
``{"wait_function": js}``          wait until the JS expression is truthy
``{"text": sel}``                  result: the element's inner text
``{"attr": sel, "name": n}``       result: the element's attribute
``{"eval": js}``                   result: the JSON value of the JS expression
``{"url": true}``                  result: the page's URL
``{"html": true}``                 result: the page's HTML
``{"cookies": true}``              result: the context's cookies (list of dicts)
``{"screenshot": path}``           PNG of the whole page (``"full_page": false``: the viewport only)
``{"headers": {name: value}}``     send these headers with every later request of the page
``{"sleep": seconds}``

Every action may carry ``"timeout"`` (seconds, default 15). On failure the returned dict has
``"error"``, plus the page's ``url`` and the start of its ``html``; :func:`browse` raises
:class:`BrowserError` with them unless ``check=False``.

The browser is started with ``--no-sandbox`` (root in a container), ``--disable-gpu``,
``--no-proxy-server``, no background networking, no component updates and no sync: loopback only.
Never ``playwright install``: the browser is Debian's package (``make install-test``).
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import signal
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import Any

CHROMIUM = os.environ.get("TRIOPROXY_TEST_CHROMIUM", "/usr/bin/chromium")
LAUNCH_ARGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-quic",
    "--no-first-run",
    "--no-default-browser-check",
    "--no-proxy-server",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--disable-domain-reliability",
    "--disable-client-side-phishing-detection",
    "--disable-default-apps",
    "--disable-dev-shm-usage",
]


class BrowserError(AssertionError):
    def __init__(self, result: dict[str, Any]) -> None:
        self.result = result
        page = (result.get("html") or "")[:2000]
        stderr = result.get("stderr", "")[-2000:]
        done = len(result.get("results", []))
        super().__init__(
            f"browser: {result.get('error')}\n at {result.get('url')} after {done} actions\n"
            f"--- page ---\n{page}\n--- stderr ---\n{stderr}"
        )


def chromium_available() -> bool:
    if not (os.access(CHROMIUM, os.X_OK) or shutil.which(CHROMIUM)):
        return False
    try:
        import playwright  # noqa: F401
    except ImportError:
        return False
    return True


def _needs_chromium() -> Any:
    import pytest

    return pytest.mark.skipif(not chromium_available(), reason=f"no {CHROMIUM} or no playwright (make install-test)")


needs_chromium = _needs_chromium()


async def browse(
    actions: Sequence[dict[str, Any]],
    *,
    timeout: float = 60,
    viewport: tuple[int, int] = (1280, 800),
    check: bool = True,
) -> dict[str, Any]:
    """Run ``actions`` in a fresh headless browser (one process, one page); the result dict.

    ``{"results": [...], "url": final url}`` (plus ``error``/``html`` on failure). Bounded by
    ``timeout`` seconds overall; the subprocess is killed if it overruns.
    """
    import trio

    request = json.dumps({"actions": list(actions), "viewport": list(viewport), "timeout": timeout})
    env = {k: v for k, v in os.environ.items() if k.lower() not in ("http_proxy", "https_proxy", "all_proxy")}

    async def kill_group(proc: trio.Process) -> None:
        # Before trio reaps it: the driver (node) and chromium go with the process group.
        with contextlib.suppress(ProcessLookupError):
            os.killpg(proc.pid, signal.SIGKILL)

    with trio.fail_after(timeout + 10):
        proc = await trio.run_process(
            [sys.executable, str(Path(__file__).resolve())],
            stdin=request.encode(),
            capture_stdout=True,
            capture_stderr=True,
            check=False,
            env=env,
            start_new_session=True,
            deliver_cancel=kill_group,
        )
    out = proc.stdout.decode(errors="replace").strip().splitlines()
    try:
        result: dict[str, Any] = json.loads(out[-1]) if out else {}
    except ValueError:
        result = {}
    if not result:
        result = {"error": f"browser process exited {proc.returncode} without a result", "results": []}
    result["stderr"] = proc.stderr.decode(errors="replace")
    if check and "error" in result:
        raise BrowserError(result)
    return result


# --------------------------------------------------------------------------- subprocess side


def _run(request: dict[str, Any]) -> dict[str, Any]:
    from playwright.sync_api import sync_playwright

    results: list[Any] = []
    out: dict[str, Any] = {"results": results}
    with sync_playwright() as pw:
        browser = pw.chromium.launch(
            executable_path=CHROMIUM,
            headless=True,
            args=[a for a in LAUNCH_ARGS if a != "--headless"],
            timeout=30_000,
        )
        try:
            width, height = request.get("viewport") or (1280, 800)
            context = browser.new_context(viewport={"width": width, "height": height})
            page = context.new_page()
            try:
                for action in request["actions"]:
                    results.append(_act(page, context, action))
            except Exception as exc:  # reported to the test, which raises it
                out["error"] = f"{type(exc).__name__}: {exc} (action {len(results)}: {json.dumps(action)[:300]})"
                try:
                    out["html"] = page.content()[:20000]
                except Exception:
                    pass
            out["url"] = page.url
        finally:
            browser.close()
    return out


def _act(page: Any, context: Any, action: dict[str, Any]) -> Any:
    ms = float(action.get("timeout", 15)) * 1000
    if "goto" in action:
        response = page.goto(action["goto"], timeout=ms)
        return response.status if response else None
    if "fill" in action:
        page.fill(action["fill"], str(action["value"]), timeout=ms)
        return None
    if "click" in action:
        page.click(action["click"], timeout=ms)
        return None
    if "press" in action:
        page.press(action["press"], action["key"], timeout=ms)
        return None
    if "wait_url" in action:
        page.wait_for_url(action["wait_url"], timeout=ms)
        return page.url
    if "wait_selector" in action:
        page.wait_for_selector(action["wait_selector"], timeout=ms)
        return None
    if "wait_function" in action:
        page.wait_for_function(action["wait_function"], timeout=ms)
        return None
    if "text" in action:
        return page.inner_text(action["text"], timeout=ms)
    if "attr" in action:
        return page.get_attribute(action["attr"], action["name"], timeout=ms)
    if "eval" in action:
        return page.evaluate(action["eval"])
    if "url" in action:
        return page.url
    if "html" in action:
        return page.content()
    if "cookies" in action:
        return context.cookies()
    if "screenshot" in action:
        page.screenshot(path=action["screenshot"], full_page=bool(action.get("full_page", True)), timeout=ms)
        return action["screenshot"]
    if "headers" in action:
        page.set_extra_http_headers({str(k): str(v) for k, v in action["headers"].items()})
        return None
    if "sleep" in action:
        page.wait_for_timeout(float(action["sleep"]) * 1000)
        return None
    raise ValueError(f"unknown browser action {action!r}")


def main() -> int:
    request = json.loads(sys.stdin.read())
    try:
        result = _run(request)
    except Exception as exc:  # launch failures and the like
        result = {"error": f"{type(exc).__name__}: {exc}", "results": []}
    sys.stdout.write(json.dumps(result, default=str) + "\n")
    return 1 if "error" in result else 0


if __name__ == "__main__":
    sys.exit(main())
