"""The accept loop (trioproxy.server.accept): refusals near the open-file limit, in-process on loopback.

Every test is bounded by ``trio.fail_after``; the one that lowers RLIMIT_NOFILE restores it.
"""

from __future__ import annotations

import logging
import os
import resource
import socket

import trio

from trioproxy.server.accept import REFUSAL, Acceptor
from trioproxy.settings import ServerSettings


def settings(**kw) -> ServerSettings:
    base = dict(ip="127.0.0.1", port=0, ssl_keyfile="", ssl_certfile="", ssl_client_ca="", shutdown_timeout_s=1.0,
                ws_max_message_bytes=2**20, accept_retry_s=0.05)
    return ServerSettings(**(base | kw))  # type: ignore[arg-type]


def listening() -> socket.socket:
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))
    sock.listen(64)
    sock.setblocking(False)
    return sock


async def read_all(stream: trio.SocketStream) -> bytes:
    data = b""
    while chunk := await stream.receive_some():
        data += chunk
    return data


async def test_near_the_limit_new_connections_get_a_503_and_one_warning(caplog):
    handled: list[object] = []

    async def handle(stream) -> None:
        handled.append(stream)
        await stream.aclose()

    sock = listening()
    caplog.set_level(logging.WARNING, "trioproxy.server")
    with trio.fail_after(10), Acceptor(settings(fd_headroom=10**9), None) as acceptor:  # every fd is "near"
        async with trio.open_nursery() as n:
            n.start_soon(acceptor.serve, sock, handle, n)
            for _ in range(3):
                client = await trio.open_tcp_stream(*sock.getsockname())
                await client.send_all(b"GET / HTTP/1.1\r\nHost: a\r\n\r\n")
                assert await read_all(client) == REFUSAL
                await client.aclose()
            n.cancel_scope.cancel()
    sock.close()
    assert handled == []
    warnings = [r for r in caplog.records if r.name == "trioproxy.server"]
    assert len(warnings) == 1 and "open-file limit" in warnings[0].getMessage()


async def test_below_the_limit_connections_are_handed_over():
    got = trio.Event()

    async def handle(stream) -> None:
        await stream.send_all(b"hello")
        await stream.aclose()
        got.set()

    sock = listening()
    with trio.fail_after(10), Acceptor(settings(), None) as acceptor:
        async with trio.open_nursery() as n:
            n.start_soon(acceptor.serve, sock, handle, n)
            client = await trio.open_tcp_stream(*sock.getsockname())
            assert await read_all(client) == b"hello"
            await got.wait()
            await client.aclose()
            n.cancel_scope.cancel()
    sock.close()


async def test_at_emfile_the_reserve_descriptor_refuses_then_accepting_resumes():
    """Every descriptor taken (accept() fails with EMFILE): the waiting client still gets its 503
    at once, through the reserve descriptor, and once descriptors are free it is served again."""
    handled: list[object] = []

    async def handle(stream) -> None:
        handled.append(stream)
        await stream.send_all(b"served")
        await stream.aclose()

    sock = listening()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    fillers: list[int] = []
    with trio.fail_after(10), Acceptor(settings(fd_headroom=0), None) as acceptor:
        assert acceptor._reserve is not None
        async with trio.open_nursery() as n:
            n.start_soon(acceptor.serve, sock, handle, n)
            first, second = trio.socket.socket(), trio.socket.socket()  # made before the descriptors run out
            try:
                resource.setrlimit(resource.RLIMIT_NOFILE, (max(first.fileno(), second.fileno()) + 8, hard))
                try:
                    while True:
                        fillers.append(os.open(os.devnull, os.O_RDONLY))
                except OSError as exc:
                    assert exc.errno == 24  # EMFILE: not one descriptor left
                await first.connect(sock.getsockname())
                stream = trio.SocketStream(first)
                assert await read_all(stream) == REFUSAL
                await stream.aclose()
                assert handled == [] and acceptor._reserve is not None
                for fd in fillers[:4]:
                    os.close(fd)
                del fillers[:4]
                await second.connect(sock.getsockname())
                stream = trio.SocketStream(second)
                assert await read_all(stream) == b"served"
                await stream.aclose()
            finally:
                for fd in fillers:
                    os.close(fd)
                resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
            n.cancel_scope.cancel()
    sock.close()
    assert len(handled) == 1
    assert acceptor._reserve is None  # closed at exit
