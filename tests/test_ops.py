"""Endpoints for Kubernetes and operators: liveness and readiness without login."""

from __future__ import annotations

import httpx
import trio

from .conftest import APPS, PY, free_port, serve_proxy
from .fake_hub import fake_hub


async def test_live_and_ready_need_no_login_and_say_nothing_else():
    async with fake_hub() as hub:
        port = free_port()
        slow_app = ["--ready-timeout", "30", "--", "sh", "-c",
                    f"sleep 1.5; exec {PY} {APPS / 'echo_app.py'} --port {{port}}"]
        with trio.fail_after(30):
            async with serve_proxy(slow_app, env=hub.env(proxy_port=port), port=port, prefix="/user/dan/",
                                 authtype="oauth") as proxy:
                base = f"http://127.0.0.1:{port}"
                async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
                    live = await c.get(base + "/_trioproxy/live")
                    ready = await c.get(base + "/_trioproxy/ready")
                    assert (live.status_code, live.text) == (200, "ok\n")
                    assert (ready.status_code, ready.text) == (503, "not ready\n")
                    await proxy.wait_ready()
                    ready = await c.get(base + "/_trioproxy/ready")
                    assert (ready.status_code, ready.text) == (200, "ready\n")
                    assert (await c.head(base + "/_trioproxy/live")).status_code == 200
                    assert (await c.get(base + "/_trioproxy/nothing")).status_code == 404
                    for r in (live, ready):
                        assert "dan" not in r.text and "set-cookie" not in r.headers
