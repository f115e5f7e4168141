"""Hypercorn's connection server with a stall bound (trioproxy.server.tcp), in-process on loopback.

Every test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import socket

import trio
import trio.lowlevel
from hypercorn.config import Config

from trioproxy.compat.hypercorn import Worker
from trioproxy.server.tcp import StallBoundTCPServer
from trioproxy.settings import CLIENT_SEND_PIECE_BYTES as SEND_PIECE_BYTES

CHUNK = 4 * SEND_PIECE_BYTES  # one h11 event of several pieces


async def stream_app(scope, receive, send) -> None:
    """Answers ``/forever`` with CHUNK-sized chunks until the client is gone, ``/n`` with n chunks."""
    if scope["type"] != "http":
        return
    await receive()
    await send({"type": "http.response.start", "status": 200, "headers": []})
    if scope["path"] != "/forever":
        for _ in range(int(scope["path"][1:])):
            await send({"type": "http.response.body", "body": b"x" * CHUNK, "more_body": True})
        await send({"type": "http.response.body", "body": b"", "more_body": False})
        return
    gone = trio.Event()

    async def watch() -> None:
        while (await receive())["type"] != "http.disconnect":
            pass
        gone.set()

    async with trio.open_nursery() as n:
        n.start_soon(watch)
        while not gone.is_set():
            await send({"type": "http.response.body", "body": b"x" * CHUNK, "more_body": True})
            await trio.lowlevel.checkpoint()


async def serve_one(listener: trio.SocketListener, stall_s: float, done: trio.Event) -> None:
    config = Config()
    config.keep_alive_timeout = 30
    stream = await listener.accept()
    stream.setsockopt(socket.SOL_SOCKET, socket.SO_SNDBUF, 64 * 2**10)
    await StallBoundTCPServer(Worker(stream_app, config), stream, stall_s=stall_s)
    done.set()


async def connect(listener: trio.SocketListener) -> trio.SocketStream:
    sock = trio.socket.socket()
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 2**10)
    await sock.connect(listener.socket.getsockname())
    return trio.SocketStream(sock)


async def test_a_client_that_stops_reading_is_cut_after_the_bound():
    done = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
            n.start_soon(serve_one, listener, 0.5, done)
            client = await connect(listener)
            await client.send_all(b"GET /forever HTTP/1.1\r\nHost: a\r\n\r\n")
            t0 = trio.current_time()
            await done.wait()  # the connection's task ended: the app was told, the socket closed
            assert trio.current_time() - t0 < 3
            await client.aclose()
            await listener.aclose()


async def test_a_slow_client_that_keeps_reading_gets_everything():
    """A write of several pieces takes longer than the bound in all; each piece does not."""
    done = trio.Event()
    with trio.fail_after(20):
        async with trio.open_nursery() as n:
            (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
            n.start_soon(serve_one, listener, 0.5, done)
            client = await connect(listener)
            await client.send_all(b"GET /3 HTTP/1.1\r\nHost: a\r\nConnection: close\r\n\r\n")
            data = b""
            t0 = trio.current_time()
            while chunk := await client.receive_some(16 * 2**10):
                data += chunk
                # About 1.6 MiB/s: one piece (SEND_PIECE_BYTES) leaves well within the 0.5 s
                # bound, one write (CHUNK, four pieces) takes longer than it.
                await trio.sleep(0.01)
            assert trio.current_time() - t0 > 1.0
            assert data.count(b"x") == 3 * CHUNK and data.endswith(b"0\r\n\r\n")
            await done.wait()
            await client.aclose()
            await listener.aclose()


async def test_a_client_that_closes_an_idle_connection_frees_it_at_once():
    """Hypercorn kept such a connection (and its descriptor) until its keep-alive timer ran out."""
    done = trio.Event()
    with trio.fail_after(10):
        async with trio.open_nursery() as n:
            (listener,) = await trio.open_tcp_listeners(0, host="127.0.0.1")
            n.start_soon(serve_one, listener, 5.0, done)
            client = await connect(listener)
            await client.send_all(b"GET /1 HTTP/1.1\r\nHost: a\r\n\r\n")
            data = b""
            while not data.endswith(b"0\r\n\r\n"):
                data += await client.receive_some()
            await client.aclose()  # idle now, between requests
            with trio.fail_after(2):
                await done.wait()
            await listener.aclose()
