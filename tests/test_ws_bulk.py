"""The relay's bulk path (trioproxy.proxy.ws_bulk): big payloads, from the app and from the client, read in
big pieces into a pooled buffer, through a real in-process trioproxy: every byte arrives, in order, both ways; the
message size limit still holds; a shutdown in the middle of a big payload still ends the websocket
within its budget; an idle websocket holds no buffer. Every I/O test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import os

import pytest
import trio
import trio.testing
from trio_websocket import ConnectionClosed, open_websocket_url

from trioproxy.proxy import ws_bulk
from trioproxy.rules import frames as F

from . import rawnet
from .conftest import app_cmd, serve_proxy

ECHO = app_cmd("echo_app.py")
MIB = 2**20


class Count:
    """Wraps ws_bulk.relay: how many bulk reads, and their bytes (all, and those from the client)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.reads = self.bytes = self.from_client = 0
        real = ws_bulk.relay

        async def relay(*args: object) -> int:
            n = await real(*args)  # type: ignore[arg-type]
            self.reads += 1
            self.bytes += n
            tracker = args[2]
            assert isinstance(tracker, F.FrameTracker)
            if tracker.from_client:
                self.from_client += n
            return n

        monkeypatch.setattr(ws_bulk, "relay", relay)


async def test_big_messages_pass_whole_both_ways(monkeypatch):
    count = Count(monkeypatch)
    sizes = [MIB, MIB + 3, 3 * MIB + 1, 5, MIB - 1, 2 * MIB]
    with trio.fail_after(60):
        async with serve_proxy(ECHO) as p:
            await p.wait_ready()
            async with open_websocket_url(p.ws_url + "/ws", max_message_size=8 * MIB) as ws:
                for size in sizes:
                    message = os.urandom(size)
                    await ws.send_message(message)
                    assert await ws.get_message() == message
                text = "é" * (MIB // 2 + 1)  # 1 MiB + 2 bytes of UTF-8
                await ws.send_message(text)
                assert await ws.get_message() == text
                # Idle between messages: no buffer is held.
                await trio.testing.wait_all_tasks_blocked(0.05)
                assert ws_bulk.POOL.lent == 0
                assert ws_bulk.POOL.idle <= ws_bulk.POOL.kept
                await ws.send_message("still here")
                assert await ws.get_message() == "still here"
    # The big messages went by the bulk path both ways (each a 64 KiB read first, then big reads).
    big = sum(s for s in sizes if s >= 2 * ws_bulk.WS_BULK_MIN_BYTES) + len(text.encode())
    assert count.reads > 0
    assert count.from_client >= big - 8 * 64 * 2**10  # the client's, read by the server's loop
    assert count.bytes - count.from_client >= big - 8 * 64 * 2**10  # the app's, by the relay


async def test_the_size_limit_holds_for_big_messages(monkeypatch):
    count = Count(monkeypatch)
    with trio.fail_after(60):
        async with serve_proxy(["--websocket-max-message-size", str(2 * MIB), *ECHO]) as p:
            await p.wait_ready()
            async with open_websocket_url(p.ws_url + "/ws", max_message_size=8 * MIB) as ws:
                message = os.urandom(2 * MIB)  # at the limit: passes
                await ws.send_message(message)
                assert await ws.get_message() == message
                assert count.bytes > 0
                await ws.send_message(f"bigbin:{2 * MIB + 1}")  # the app's, one byte over
                with pytest.raises(ConnectionClosed) as info:
                    await ws.get_message()
                assert info.value.reason.code == 1009
            async with open_websocket_url(p.ws_url + "/ws", max_message_size=8 * MIB) as ws:
                with pytest.raises(ConnectionClosed) as info:  # refused from its header, while it is being sent
                    await ws.send_message(bytes(2 * MIB + 3))  # the client's, over
                    await ws.get_message()
                assert info.value.reason.code == 1009


async def test_a_shutdown_in_the_middle_of_a_big_payload_ends_the_websocket_within_its_budget(monkeypatch):
    count = Count(monkeypatch)
    size = 30 * MIB  # more than the kernel's buffers between the app and the client hold
    budget = 0.5
    with trio.fail_after(60):
        async with serve_proxy(["--shutdown-timeout", str(budget), *ECHO]) as p:
            await p.wait_ready()
            ws = await rawnet.ws_connect(p.port, "/user/test/ws")
            await ws.send_text(f"bigbin:{size}")
            header = F.parse_header(await ws.conn.read_exactly(10))
            assert header is not None and header.length == size
            got = len(ws.conn.buf) - 10
            while got < 2 * MIB:  # the relay is well into the payload, by its bulk path
                got += len(await ws.conn.stream.receive_some(MIB))
            assert count.bytes > 0
            client_port = ws.conn.stream.socket.getsockname()[1]
            # From here the client reads nothing: the relay's write waits, in the middle of the payload.
            p.running.request_shutdown("a test")
            with trio.fail_after(budget + 3):  # the budget, then the drain's own bounded steps
                while rawnet.server_side_open(p.port, client_port):
                    await trio.sleep(0.05)
            try:
                while piece := await ws.conn.stream.receive_some(MIB):
                    got += len(piece)
            except trio.BrokenResourceError:
                pass  # reset: the proxy cut the connection with bytes unsent
            assert got < size  # cut in the middle of the payload (no close frame can follow half a frame)
    assert "Traceback" not in p.log


def test_the_pool_lends_at_most_most_and_keeps_at_most_kept():
    pool = ws_bulk.BufferPool(16, kept=1, most=2)
    a, b = pool.take(), pool.take()
    assert pool.lent == 2 and not pool.available and len(a) == 16
    with pytest.raises(RuntimeError):
        pool.take()
    tracker = F.FrameTracker(from_client=False, limit=10 * MIB)
    tracker.feed(F.encode_header(F.Opcode.BINARY, MIB))
    assert ws_bulk.wanted(tracker, pool) == 0  # none free: the usual read
    pool.give(a)
    pool.give(b)
    assert pool.lent == 0 and pool.idle == 1 and pool.take() is a  # b was not kept


def test_wanted_only_inside_a_big_enough_payload():
    pool = ws_bulk.BufferPool(MIB, kept=1, most=1)
    tracker = F.FrameTracker(from_client=False, limit=10 * MIB)
    assert ws_bulk.wanted(tracker, pool) == 0  # between frames
    tracker.feed(F.encode_header(F.Opcode.BINARY, 3 * MIB))
    assert ws_bulk.wanted(tracker, pool) == MIB  # at most a buffer
    tracker.skip(3 * MIB - ws_bulk.WS_BULK_MIN_BYTES)
    assert ws_bulk.wanted(tracker, pool) == ws_bulk.WS_BULK_MIN_BYTES  # up to the frame's end, never past it
    tracker.skip(1)
    assert ws_bulk.wanted(tracker, pool) == 0  # too little left: the usual read
