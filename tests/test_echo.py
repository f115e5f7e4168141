"""The websocket echo trioproxy answers itself (``{prefix}/_trioproxy/echo``, for `trioproxy doctor`):
for the owner only, never the app's, bounded, and no activity."""

from __future__ import annotations

import sys

import httpx
import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from trioproxy.rules.routing import ECHO, Internal, Router
from trioproxy.settings import ECHO_MAX_MESSAGE_BYTES, ECHO_MAX_MESSAGES

from .conftest import app_cmd, free_port, replace, serve_proxy
from .fake_hub import fake_hub

PREFIX = "/user/dan/"
#: An app that never listens: whatever the echo answers, the app did not.
NO_APP = ["--", sys.executable, "-c", "import time; time.sleep(120)"]


async def start(hub, *args):  # --access-log: the echo is logged like any websocket
    port = free_port()
    return serve_proxy([*args, *app_cmd("echo_app.py")], env=hub.env(proxy_port=port), prefix=PREFIX, port=port,
                       authtype="oauth")


async def refusal(url: str, headers: list[tuple[bytes, bytes]]) -> ConnectionRejected:
    with pytest.raises(ConnectionRejected) as caught:
        async with open_websocket_url(url, extra_headers=headers, connect_timeout=10):
            pass
    return caught.value


def auth(token: str) -> list[tuple[bytes, bytes]]:
    return [(b"authorization", f"token {token}".encode())]


async def test_the_owner_gets_an_echo_that_closes_1000_after_a_few_messages():
    async with fake_hub() as hub:
        dan = auth(hub.add_user("dan"))
        async with await start(hub, "--access-log") as proxy:
            await proxy.wait_ready()
            with trio.fail_after(20):
                async with open_websocket_url(proxy.ws_url + "/_trioproxy/echo", extra_headers=dan) as ws:
                    await ws.send_message("hello?")  # the app would answer "hello!"
                    assert await ws.get_message() == "hello?"
                    await ws.send_message(b"\x00\x01binary")
                    assert await ws.get_message() == b"\x00\x01binary"
                    for i in range(ECHO_MAX_MESSAGES - 2):
                        await ws.send_message(f"m{i}")
                        assert await ws.get_message() == f"m{i}"
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.get_message()
                    assert closed.value.reason.code == 1000
                # A GET of it (a handshake a proxy stripped of its Upgrade) is told so, for the doctor.
                async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
                    r = await c.get(proxy.url + "/_trioproxy/echo", headers=dict(dan))
                assert r.status_code == 426 and r.headers["upgrade"] == "websocket"
                assert "does not pass websockets" in r.text
            # No activity: the echo is trioproxy's, not the user's use of the app.
            assert proxy.running.parts.tracker.last is None
    assert any("/_trioproxy/echo HTTP/1.1\" 101 " in line and f"ws in={ECHO_MAX_MESSAGES} out={ECHO_MAX_MESSAGES}"
               in line for line in proxy.lines), proxy.lines


async def test_refused_before_the_upgrade_to_anyone_but_the_owner():
    async with fake_hub() as hub:
        hub.add_user("dan")
        sam = auth(hub.add_user("sam", scopes=["access:servers!server=dan/"]))  # may use the app, not the controls
        async with await start(hub) as proxy:
            await proxy.wait_ready()
            url = proxy.ws_url + "/_trioproxy/echo"
            with trio.fail_after(20):
                refused = await refusal(url, sam)
                assert refused.status_code == 403 and b"Owner only" in refused.body
                assert (await refusal(url, [])).status_code == 403  # no credential
                assert (await refusal(url, auth("not-a-token"))).status_code == 403
                # The same token opens the app's websockets: the refusal is the echo's own.
                async with open_websocket_url(proxy.ws_url + "/ws", extra_headers=sam) as ws:
                    await ws.send_message("hello?")
                    assert await ws.get_message() == "hello!"


async def test_never_reaches_the_app_and_is_bounded():
    async with fake_hub() as hub:
        dan = auth(hub.add_user("dan"))
        port = free_port()
        async with serve_proxy(NO_APP, env=hub.env(proxy_port=port), prefix=PREFIX, port=port,
                               authtype="oauth") as proxy:
            with trio.fail_after(20):
                async with open_websocket_url(proxy.ws_url + "/_trioproxy/echo", extra_headers=dan) as ws:
                    await ws.send_message("still here")  # the app never listened
                    assert await ws.get_message() == "still here"
                    await ws.send_message("x" * (ECHO_MAX_MESSAGE_BYTES + 1))
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.get_message()
                    assert closed.value.reason.code == 1009
            assert proxy.running.parts.tracker.last is None


async def test_it_ends_on_its_timeout_and_on_shutdown(monkeypatch):
    monkeypatch.setattr("trioproxy.ops.echo.ECHO_TIMEOUT_S", 0.5)
    async with fake_hub() as hub:
        dan = auth(hub.add_user("dan"))
        port = free_port()

        def short(s):
            return replace(s, "server", shutdown_timeout_s=2.0)

        async with serve_proxy(NO_APP, env=hub.env(proxy_port=port), prefix=PREFIX, port=port,
                               authtype="oauth", adjust=short) as proxy:
            with trio.fail_after(20):
                async with open_websocket_url(proxy.ws_url + "/_trioproxy/echo", extra_headers=dan) as ws:
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.get_message()  # a silent client: closed at the bound
                    assert closed.value.reason.code == 1000
                monkeypatch.setattr("trioproxy.ops.echo.ECHO_TIMEOUT_S", 60.0)
                async with open_websocket_url(proxy.ws_url + "/_trioproxy/echo", extra_headers=dan) as ws:
                    await ws.send_message("a")
                    assert await ws.get_message() == "a"
                    proxy.running.request_shutdown()
                    with pytest.raises(ConnectionClosed) as closed:
                        await ws.get_message()
                    assert closed.value.reason.code == 1001


async def test_public_controls_decide_with_authtype_none():
    for args, status in (((), 403), (("--public-controls",), None)):
        async with serve_proxy([*args, *NO_APP], prefix=PREFIX) as proxy:
            url = proxy.ws_url + "/_trioproxy/echo"
            with trio.fail_after(20):
                if status is not None:
                    refused = await refusal(url, [])
                    assert refused.status_code == status and b"Controls off" in refused.body
                else:
                    async with open_websocket_url(url) as ws:
                        await ws.send_message("open")
                        assert await ws.get_message() == "open"


def test_routed_as_one_of_the_controls():
    # Login first, then Quart (which checks the owner): never Forward, to the app.
    route = Router.for_prefix(PREFIX.rstrip("/")).route("GET", b"/user/dan/_trioproxy/echo", b"", websocket=True)
    assert route == Internal(ECHO, login=True)
