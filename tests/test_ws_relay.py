"""The websocket relay (trioproxy.proxy.ws_relay): frames pass byte for byte, undecoded; the relay's
own control frames go only between frames; every way of ending gets its close frames.

The first tests drive a :class:`Relay` directly, with the app's side a trio memory stream and the
client's side a fake port (exact bytes, no timing); the last ones go through a real trioproxy (TLS,
a keepalive ping while a big message is under way). Every I/O test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import dataclasses
import os
import ssl

import trio
import trio.testing
from trio_websocket import ConnectionClosed, open_websocket_url

from trioproxy.metrics import Metrics
from trioproxy.proxy.ws_relay import PING_PAYLOAD, Relay
from trioproxy.rules import frames as F
from trioproxy.settings import Settings

from . import rawnet
from .conftest import app_cmd, serve_proxy
from .rawnet import OP_BINARY, OP_PING, OP_PONG, OP_TEXT

LIMIT = 100_000
K1, K2 = b"\x11\x22\x33\x44", b"\xa0\xb1\xc2\xd3"


class FakePort:
    """The client's side: what the relay wrote, in order."""

    def __init__(self) -> None:
        self.closed = False
        self.wrote = bytearray()
        self.ended = False
        self.now_ok = True

    async def write(self, data: bytes) -> None:
        await trio.lowlevel.checkpoint()
        self.wrote += data

    def write_now(self, data: bytes) -> int:
        if not self.now_ok:
            return 0
        self.wrote += data
        return len(data)

    async def end(self) -> None:
        self.ended = True

    def attach(self, sink: object) -> None:
        pass


def _client_frames(data: bytes) -> list[tuple[bool, int, bytes]]:
    """(fin, opcode, payload) of unmasked frames (what a client reads)."""
    reader = F.FrameReader()
    got = reader.feed(data)
    assert reader.pending == 0 and all(not h.masked for h, _ in got)
    return [(h.fin, h.opcode, p) for h, p in got]


def _app_frames(data: bytes) -> list[tuple[bool, int, bytes]]:
    reader = F.FrameReader()
    got = reader.feed(data)
    assert reader.pending == 0 and all(h.masked for h, _ in got)
    return [(h.fin, h.opcode, p) for h, p in got]


async def _read_all(stream: trio.abc.ReceiveStream) -> bytes:
    out = b""
    while chunk := await stream.receive_some(1 << 20):
        out += chunk
    return out


class Rig:
    """A relay between a memory-stream 'app' and a fake port, running in ``nursery``."""

    def __init__(self) -> None:
        self.app, self.proxy_side = trio.testing.memory_stream_pair()
        self.port = FakePort()
        self.metrics = Metrics()
        self.relay = Relay(self.proxy_side, self.port, limit=LIMIT, close_timeout_s=1.0, touch=lambda: None,
                           metrics=self.metrics, what="test")
        self.done = trio.Event()
        self.scope = trio.CancelScope()

    async def run(self, first: bytes = b"") -> None:
        with self.scope:
            self.relay.scope = self.scope
            await self.relay.app_to_client(first)
        with trio.CancelScope(shield=True), trio.move_on_after(2):
            await self.relay.finish()
        await self.port.end()
        await self.proxy_side.aclose()  # as the bridge closes the app's stream
        self.done.set()


async def test_frames_pass_byte_for_byte_both_ways_in_any_pieces():
    # The client's masked frames reach the app with the client's own masks; the app's frames reach
    # the client as sent: fragments, a ping between them, a 70,000-byte frame, split anywhere.
    up = (F.encode(F.Opcode.TEXT, b"hel", fin=False, mask_key=K1) + F.encode(F.Opcode.PING, b"?", mask_key=K2)
          + F.encode(F.Opcode.CONTINUATION, b"lo", mask_key=K2)
          + F.encode(F.Opcode.BINARY, b"\x00" * 70000, mask_key=K1))
    down = (F.encode(F.Opcode.TEXT, "ünï".encode(), fin=False) + F.encode(F.Opcode.PONG, b"?")
            + F.encode(F.Opcode.CONTINUATION, b"c", fin=True) + F.encode(F.Opcode.BINARY, os.urandom(70000)))
    with trio.fail_after(10):
        rig = Rig()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rig.run, down[:5])  # the bytes that came with the app's 101
            for i in range(0, len(up), 997):
                await rig.relay.from_client(up[i : i + 997])
            for i in range(5, len(down), 1499):
                await rig.app.send_all(down[i : i + 1499])
            await trio.testing.wait_all_tasks_blocked()
            assert bytes(rig.port.wrote) == down
            await rig.app.send_all(F.encode(F.Opcode.CLOSE, F.close_payload(1000)))
            await rig.relay.from_client(F.encode(F.Opcode.CLOSE, F.close_payload(1000), mask_key=K1))
            await rig.done.wait()
            await rig.app.send_eof()
        received = await _read_all(rig.app)
    assert received == up + F.encode(F.Opcode.CLOSE, F.close_payload(1000), mask_key=K1)
    assert rig.relay.ended == ("closed", 1000, "") and rig.port.ended
    # Data payload bytes, from the headers (control frames and headers not counted).
    assert rig.metrics.bytes_received == 3 + 2 + 70000 and rig.metrics.bytes_sent == len("ünï".encode()) + 1 + 70000


async def test_a_keepalive_ping_goes_between_frames_and_its_pong_is_taken_out():
    big = F.encode(F.Opcode.BINARY, b"\x07" * 50000)
    with trio.fail_after(10):
        rig = Rig()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rig.run)
            await rig.app.send_all(big[:20000])  # the app is in the middle of a frame...
            await trio.testing.wait_all_tasks_blocked()
            await rig.relay.ping()  # ...so the ping waits for its end
            assert bytes(rig.port.wrote) == big[:20000]
            await rig.app.send_all(big[20000:] + F.encode(F.Opcode.TEXT, b"next"))
            await trio.testing.wait_all_tasks_blocked()
            frames = _client_frames(bytes(rig.port.wrote))
            assert frames == [(True, OP_BINARY, b"\x07" * 50000), (True, OP_PING, PING_PAYLOAD),
                              (True, OP_TEXT, b"next")]
            assert rig.metrics.bytes_sent == 50000 + 4
            # At a boundary, with nothing under way, a ping goes at once.
            await rig.relay.ping()
            assert _client_frames(bytes(rig.port.wrote))[-1] == (True, OP_PING, PING_PAYLOAD)
            # The client's pong to it is not relayed; the client's pong to the app's own ping is.
            await rig.relay.from_client(F.encode(F.Opcode.PONG, PING_PAYLOAD, mask_key=K1)
                                        + F.encode(F.Opcode.TEXT, b"hi", mask_key=K2))
            await rig.relay.from_client(F.encode(F.Opcode.PONG, b"app's", mask_key=K2))
            rig.scope.cancel()
            await rig.done.wait()
            await rig.app.send_eof()
        received = await _read_all(rig.app)
    assert _app_frames(received)[:2] == [(True, OP_TEXT, b"hi"), (True, OP_PONG, b"app's")]
    assert rig.relay.up.answered == 1


async def test_shutdown_says_1001_to_both_sides_masked_toward_the_app():
    with trio.fail_after(10):
        rig = Rig()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rig.run)
            await trio.testing.wait_all_tasks_blocked()
            assert rig.relay.goodbye() is True  # at once, synchronously: the client has its 1001
            assert _client_frames(bytes(rig.port.wrote)) == [(True, F.Opcode.CLOSE, F.close_payload(
                1001, b"server shutting down"))]
            rig.scope.cancel()
            await trio.testing.wait_all_tasks_blocked()
            # The app got its 1001, masked; it answers; the client answers.
            got = await rig.app.receive_some(1000)
            assert _app_frames(got) == [(True, F.Opcode.CLOSE, F.close_payload(1001, b"server shutting down"))]
            await rig.app.send_all(F.encode(F.Opcode.CLOSE, F.close_payload(1001)))
            await rig.relay.from_client(F.encode(F.Opcode.CLOSE, F.close_payload(1001), mask_key=K1))
            await rig.done.wait()
    # Nothing of either answer was relayed: the client got one close frame, the app one.
    assert len(_client_frames(bytes(rig.port.wrote))) == 1 and rig.port.ended


async def test_a_client_breaking_the_protocol_gets_1002_and_the_app_1001():
    with trio.fail_after(10):
        rig = Rig()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rig.run)
            await rig.relay.from_client(F.encode(F.Opcode.TEXT, b"ok", mask_key=K1) + F.encode(F.Opcode.TEXT, b"x"))
            await trio.testing.wait_all_tasks_blocked()
            await rig.app.send_all(F.encode(F.Opcode.CLOSE, F.close_payload(1001)))
            await rig.done.wait()
            await rig.app.send_eof()
        received = await _read_all(rig.app)
    assert _client_frames(bytes(rig.port.wrote)) == [
        (True, F.Opcode.CLOSE, F.close_payload(1002, b"an unmasked frame"))]
    assert _app_frames(received) == [(True, OP_TEXT, b"ok"),
                                     (True, F.Opcode.CLOSE, F.close_payload(1001, b"the client went away"))]
    assert rig.relay.ended == ("client", 1002, "an unmasked frame")


async def test_an_app_over_the_limit_is_refused_from_the_header_both_get_1009():
    with trio.fail_after(10):
        rig = Rig()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rig.run)
            await rig.app.send_all(F.encode(F.Opcode.TEXT, b"fine") + F.encode_header(F.Opcode.BINARY, LIMIT + 1))
            await trio.testing.wait_all_tasks_blocked()
            await rig.relay.from_client(F.encode(F.Opcode.CLOSE, F.close_payload(1009), mask_key=K1))
            await rig.done.wait()
            await rig.app.send_eof()
        received = await _read_all(rig.app)
    assert _client_frames(bytes(rig.port.wrote)) == [(True, OP_TEXT, b"fine"),
                                                    (True, F.Opcode.CLOSE, F.close_payload(1009, b"message too big"))]
    assert _app_frames(received) == [(True, F.Opcode.CLOSE, F.close_payload(1009, b"message too big"))]


async def test_the_app_vanishing_mid_frame_ends_the_client_without_a_close_frame():
    with trio.fail_after(10):
        rig = Rig()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rig.run)
            await rig.app.send_all(F.encode(F.Opcode.TEXT, b"x" * 1000)[:100])
            await rig.app.aclose()
            await rig.done.wait()
    assert bytes(rig.port.wrote) == F.encode(F.Opcode.TEXT, b"x" * 1000)[:100]  # a close frame cannot follow
    assert rig.relay.ended == ("app", None, "") and rig.port.ended


async def test_a_close_the_app_never_answers_is_answered_for_it():
    with trio.fail_after(10):
        rig = Rig()
        async with trio.open_nursery() as nursery:
            nursery.start_soon(rig.run)
            await rig.relay.from_client(F.encode(F.Opcode.CLOSE, F.close_payload(4000, b"bye"), mask_key=K1))
            await rig.done.wait()  # after close_timeout_s (1 s): the app said nothing
    assert _client_frames(bytes(rig.port.wrote)) == [(True, F.Opcode.CLOSE, F.close_payload(1000))]


# --- through a real trioproxy ---------------------------------------------------------------------------------

ECHO = app_cmd("echo_app.py")


def _keepalive(interval: float, timeout: float):
    def adjust(s: Settings) -> Settings:
        return dataclasses.replace(s, proxy=dataclasses.replace(s.proxy, ws_ping_interval_s=interval,
                                                                ws_ping_timeout_s=timeout))
    return adjust


async def test_a_ping_due_during_a_big_message_follows_it_whole():
    size = 8 * 2**20
    with trio.fail_after(60):
        async with serve_proxy(ECHO, adjust=_keepalive(0.3, 20)) as p:
            await p.wait_ready()
            ws = await rawnet.ws_connect(p.port, "/user/test/ws")
            await ws.send_text(f"bigtext:{size}")
            await trio.sleep(1.5)  # read nothing, send nothing: a ping falls due while the message is under way
            frames = [await ws.frame() for _ in range(2)]
            assert frames[0] == (True, OP_TEXT, b"x" * size)
            assert frames[1] == (True, OP_PING, PING_PAYLOAD)
            await ws.send(OP_PONG, PING_PAYLOAD)
            await ws.send_text("after")
            assert await ws.message() == (OP_TEXT, b"after")
            await ws.aclose()


async def test_websockets_over_tls(tmp_path):
    from .test_protocol_surface import _self_signed

    certfile, keyfile = _self_signed(tmp_path)
    env = {"JUPYTERHUB_SSL_CERTFILE": certfile, "JUPYTERHUB_SSL_KEYFILE": keyfile}
    context = ssl.create_default_context(cafile=certfile)
    with trio.fail_after(60):
        async with serve_proxy(ECHO, env=env) as p:
            await p.wait_ready()
            url = f"wss://127.0.0.1:{p.port}/user/test/ws"
            async with open_websocket_url(url, ssl_context=context, max_message_size=8 * 2**20) as ws:
                for message in ["hello", b"\x00\x01", b"\x05" * 2**20]:
                    await ws.send_message(message)
                    assert await ws.get_message() == message
            async with open_websocket_url(url, ssl_context=context) as ws:
                await ws.send_message("hi")
                assert await ws.get_message() == "hi"
                async with trio.open_nursery() as nursery:
                    closed: list[int] = []

                    async def wait_close() -> None:
                        try:
                            while True:
                                await ws.get_message()
                        except ConnectionClosed as exc:
                            closed.append(exc.reason.code)

                    nursery.start_soon(wait_close)
                    await trio.testing.wait_all_tasks_blocked(0.05)
                    p.running.request_shutdown("a test")
            assert closed == [1001]  # on TLS the 1001 goes from the bridge's task, not at once
            assert "Traceback" not in p.log
