"""Websockets through a real trioproxy to real apps (hypercorn echo app, trio-websocket app)."""

from __future__ import annotations

import json

import pytest
import trio
from trio_websocket import ConnectionClosed, ConnectionRejected, open_websocket_url

from .conftest import app_cmd, run_proxy

ECHO = app_cmd("echo_app.py")
WSAPP = app_cmd("ws_app.py")
BIG = 16 * 2**20


async def test_echo_text_binary_empty_and_16_mib_in_order():
    with trio.fail_after(60):
        async with run_proxy(ECHO) as p:
            await p.wait_ready()
            async with open_websocket_url(p.ws_url + "/ws", max_message_size=64 * 2**20) as ws:
                for message in ["hello", b"\x00\x01\x02", "", b"", "ünïcödé"]:
                    await ws.send_message(message)
                    assert await ws.get_message() == message
                for i in range(200):
                    await ws.send_message(f"m{i}")
                assert [await ws.get_message() for _ in range(200)] == [f"m{i}" for i in range(200)]
                await ws.send_message(b"\x02" * BIG)
                assert await ws.get_message() == b"\x02" * BIG
                await ws.send_message(f"bigtext:{BIG}")
                assert await ws.get_message() == "x" * BIG


async def test_subprotocol_headers_cookie_and_query():
    with trio.fail_after(30):
        async with run_proxy(ECHO) as p:
            await p.wait_ready()
            async with open_websocket_url(
                p.ws_url + "/ws/path%2Fx?a=1&flag", subprotocols=["chat.v1", "chat.v2"],
                extra_headers=[(b"cookie", b"sess=abc"), (b"origin", b"http://127.0.0.1")],
            ) as ws:
                assert ws.subprotocol == "chat.v2"  # the app's choice, not the client's first
                assert (b"set-cookie", b"wscookie=v1; Path=/user/test/") in ws.handshake_headers
                await ws.send_message("headers?")
                seen = json.loads(await ws.get_message())
                headers = dict(seen["headers"])
                assert headers["cookie"] == "sess=abc" and headers["origin"] == "http://127.0.0.1"
                assert seen["raw_path"] == "/ws/path%2Fx" and seen["query_string"] == "a=1&flag"


async def test_app_message_sent_on_open_is_delivered():
    with trio.fail_after(30):
        async with run_proxy(ECHO) as p:
            await p.wait_ready()
            async with open_websocket_url(p.ws_url + "/ws-hello-first") as ws:
                assert await ws.get_message() == "welcome"


async def test_app_rejection_reaches_the_client():
    with trio.fail_after(30):
        async with run_proxy(ECHO) as p:
            await p.wait_ready()
            with pytest.raises(ConnectionRejected) as info:
                async with open_websocket_url(p.ws_url + "/ws-reject"):
                    pass
            assert info.value.status_code == 403
            assert info.value.body == b"rejected by app"


async def test_close_codes_pass_both_ways():
    with trio.fail_after(30):
        async with run_proxy(WSAPP) as p:
            await p.wait_ready()
            async with open_websocket_url(p.ws_url + "/") as ws:
                await ws.send_message("close:4002:later")
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
            assert info.value.reason.code == 4002 and info.value.reason.reason == "later"
            async with open_websocket_url(p.ws_url + "/") as ws:
                await ws.send_message("x")
                assert await ws.get_message() == "x"
                await ws.aclose(4001, "bye")
            await p.wait_log("ws_app closed code=4001 reason=bye")


async def test_app_dying_closes_the_client_and_no_hang():
    with trio.fail_after(40):
        async with run_proxy(ECHO) as p:
            await p.wait_ready()
            async with open_websocket_url(p.ws_url + "/ws") as ws:
                import httpx

                async with httpx.AsyncClient(trust_env=False) as c:
                    await c.get(p.url + "/exit?code=0")
                with pytest.raises(ConnectionClosed) as info:
                    while True:
                        await ws.get_message()
                # The app vanished (1006, which may not be sent on the wire): the client gets 1011.
                assert info.value.reason.code == 1011


async def test_websocket_while_app_down_gets_an_http_answer():
    with trio.fail_after(30):
        async with run_proxy(["--max-restarts", "5", *app_cmd("crash_app.py", "--mode", "exit1")]) as p:
            await p.wait_log("the app exited with code 1")
            with pytest.raises(ConnectionRejected) as info:
                async with open_websocket_url(p.ws_url + "/ws"):
                    pass
            assert info.value.status_code in (502, 503)


async def test_max_message_size_applies_both_ways():
    with trio.fail_after(30):
        async with run_proxy(["--websocket-max-message-size", "1000", *ECHO]) as p:
            await p.wait_ready()
            async with open_websocket_url(p.ws_url + "/ws") as ws:
                await ws.send_message("y" * 900)
                assert await ws.get_message() == "y" * 900
                await ws.send_message("bigtext:2000")  # the app answers with 2000 bytes
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason.code == 1009
            async with open_websocket_url(p.ws_url + "/ws") as ws:
                await ws.send_message("z" * 2000)
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason.code == 1009
