"""Websocket keepalive: a silent client is pinged; one that answers stays, one that does not is cut.

trioproxy runs in-process with its ping interval and timeout shortened in its settings
(defaults: 30 s + 20 s, see trioproxy/settings.py; no option sets them). Loopback only; bounded.
"""

from __future__ import annotations

import dataclasses
import time

import trio
from trio_websocket import open_websocket_url

from trioproxy.settings import Settings

from . import rawnet
from .conftest import app_cmd, serve_proxy
from .rawnet import OP_BINARY, OP_PING, OP_PONG, OP_TEXT, frame

ECHO = app_cmd("echo_app.py")
INTERVAL_S = 0.5
TIMEOUT_S = 0.5


def FAST(s: Settings) -> Settings:
    return dataclasses.replace(s, proxy=dataclasses.replace(s.proxy, ws_ping_interval_s=INTERVAL_S,
                                                            ws_ping_timeout_s=TIMEOUT_S))


async def test_an_idle_client_that_answers_pings_stays_connected():
    """Like a browser tab left open: it sends nothing for many ping intervals, its library answers pings."""
    with trio.fail_after(30):
        async with serve_proxy(ECHO, adjust=FAST) as p:
            await p.wait_ready()
            async with open_websocket_url(p.ws_url + "/ws") as ws:
                await ws.send_message("before")
                assert await ws.get_message() == "before"
                await trio.sleep(10 * (INTERVAL_S + TIMEOUT_S))  # trio-websocket answers the pings by itself
                await ws.send_message("after")
                assert await ws.get_message() == "after"
            assert "Traceback" not in p.log


async def test_pings_reach_a_silent_client_and_pongs_keep_it():
    with trio.fail_after(30):
        async with serve_proxy(ECHO, adjust=FAST) as p:
            await p.wait_ready()
            ws = await rawnet.ws_connect(p.port, "/user/test/ws")
            pings = 0
            t0 = time.monotonic()
            while time.monotonic() - t0 < 6 * (INTERVAL_S + TIMEOUT_S):
                with trio.fail_after(INTERVAL_S + TIMEOUT_S + 2):
                    _, op, payload = await ws.frame()
                assert op == OP_PING, op
                pings += 1
                await ws.conn.send(frame(OP_PONG, payload))
            assert pings >= 4
            await ws.send_text("still here")
            assert await ws.message() == (OP_TEXT, b"still here")
            await ws.aclose()


async def test_a_client_that_stops_mid_frame_is_closed_with_1011():
    with trio.fail_after(30):
        async with serve_proxy(ECHO, adjust=FAST) as p:
            await p.wait_ready()
            ws = await rawnet.ws_connect(p.port, "/user/test/ws")
            await ws.conn.send(frame(OP_BINARY, b"x" * 1000)[:100])
            t0 = time.monotonic()
            with trio.fail_after(INTERVAL_S + TIMEOUT_S + 3):
                code = await ws.close_code()  # the ping goes unanswered (we read it but do not pong)
                await ws.conn.read_to_eof()
            assert code == 1011
            assert INTERVAL_S + TIMEOUT_S - 0.2 < time.monotonic() - t0 < INTERVAL_S + TIMEOUT_S + 2
            await ws.aclose()
            # The app's side was closed too, and the server still serves websockets.
            ws = await rawnet.ws_connect(p.port, "/user/test/ws")
            await ws.send_text("next")
            assert await ws.message() == (OP_TEXT, b"next")
            await ws.aclose()
            assert "Traceback" not in p.log


class FakePort:
    def __init__(self, heard: float) -> None:
        self.closed = False
        self.last_heard = heard
        self.pings = 0
        self.failed: tuple[int, str] | None = None

    async def ping(self) -> None:
        self.pings += 1

    async def fail(self, code: int, reason: str) -> None:
        self.failed = (code, reason)


async def test_one_watcher_pings_the_silent_and_cuts_who_never_answers(autojump_clock):
    from trioproxy.proxy.ws_keepalive import KeepAlive

    keep = KeepAlive(30, 20)
    t0 = trio.current_time()
    talker, answerer, mute = FakePort(t0), FakePort(t0), FakePort(t0)
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            nursery.start_soon(keep.run)
            with keep.watching(talker), keep.watching(answerer), keep.watching(mute):
                assert len(keep) == 3
                answered = 0
                for _ in range(30):  # 150 s: the talker speaks every 5 s, the answerer only answers pings
                    await trio.sleep(5)
                    talker.last_heard = trio.current_time()
                    if answerer.pings > answered:
                        answered = answerer.pings
                        answerer.last_heard = trio.current_time()
                assert talker.pings == 0 and talker.failed is None
                assert answerer.pings >= 2 and answerer.failed is None
                assert mute.pings == 1 and mute.failed == (1011, "keepalive ping timeout")
            assert len(keep) == 0
            nursery.cancel_scope.cancel()
