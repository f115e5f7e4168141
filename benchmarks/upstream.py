"""The benchmark's Python upstream: what nginx cannot do, and everything where nginx is missing.

    python -m benchmarks.upstream --port N --data DIR [--ipv6]

Standard library only (asyncio), HTTP/1.1 with keep-alive, no logging. Routes:

| Route | Answer |
|---|---|
| ``GET /`` | 200 ``ok`` (the proxies' readiness probe) |
| ``GET /static/NAME`` | the file ``DIR/NAME`` with ``sendfile`` (nginx serves this path when it is installed) |
| ``GET /sse?n=N&interval=S`` | ``text/event-stream``: N events S seconds apart, the first at once, each ``data: I T`` |
|  | with T the upstream's ``time.monotonic_ns()`` when it was sent; one chunk per event |
| ``POST|PUT /upload`` | reads the body (Content-Length or chunked), answers JSON ``bytes`` and ``sha256`` |
| any path with ``Upgrade: websocket`` | echo: every message back with its type; close answered with the same code |
|  | text ``send N SIZE``: N binary messages of SIZE zero bytes, then text ``sent`` |
|  | text ``sink``: answered ``ready``; then messages are counted, not echoed, until text ``sunk?``, |
|  | answered ``MESSAGES BYTES SMALLEST LARGEST`` (the data messages and their payload sizes) |

The two bulk paths (``send``, ``sink``) bypass asyncio's transport, on a duplicate of the
connection's socket: frames go out with ``sock_sendall`` (no copy into the transport's buffer;
``sendfile`` from a memory file cost more here) and come in following the frame headers only, binary
payloads discarded in the kernel
(:func:`benchmarks.wsframe.bulk_read`), so that this process, on the load core, costs far less
per MiB than a proxy.

Everything else is a 404. The process runs until SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import asyncio
import hashlib
import json
import os
import signal
import socket
import time
from pathlib import Path
from urllib.parse import parse_qs

from benchmarks import wsframe

#: Largest request head, and the stream buffer (bigger reads on uploads).
READ_LIMIT = 4 << 20
#: Upload read size.
CHUNK = 1 << 20
#: The websocket sink's read buffer (allocated per sink, for its duration; payloads are not read into it).
BULK_READ_BYTES = 1 << 20


class Request:
    __slots__ = ("headers", "method", "path", "query", "version")

    def __init__(self, head: bytes) -> None:
        lines = head.decode("latin-1").split("\r\n")
        self.method, target, self.version = lines[0].split(" ", 2)
        self.path, _, self.query = target.partition("?")
        self.headers: dict[str, str] = {}
        for line in lines[1:]:
            if line:
                name, _, value = line.partition(":")
                self.headers[name.strip().lower()] = value.strip()

    @property
    def keep_alive(self) -> bool:
        conn = self.headers.get("connection", "").lower()
        return "close" not in conn and (self.version == "HTTP/1.1" or "keep-alive" in conn)

    def arg(self, name: str, default: str) -> str:
        return parse_qs(self.query).get(name, [default])[0]


def _head(status: str, headers: list[tuple[str, str]]) -> bytes:
    lines = [f"HTTP/1.1 {status}"] + [f"{k}: {v}" for k, v in headers]
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


async def _body_chunks(req: Request, reader: asyncio.StreamReader):
    """The request body, piece by piece (Content-Length or chunked)."""
    if "chunked" in req.headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return
            while size:
                piece = await reader.read(min(size, CHUNK))
                if not piece:
                    raise asyncio.IncompleteReadError(b"", size)
                size -= len(piece)
                yield piece
            await reader.readexactly(2)
    else:
        left = int(req.headers.get("content-length", "0") or 0)
        while left:
            piece = await reader.read(min(left, CHUNK))
            if not piece:
                raise asyncio.IncompleteReadError(b"", left)
            left -= len(piece)
            yield piece


class Upstream:
    def __init__(self, data: Path) -> None:
        self.data = data

    async def serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while True:
                req = Request(await reader.readuntil(b"\r\n\r\n"))
                if req.headers.get("upgrade", "").lower() == "websocket":
                    await self.websocket(req, reader, writer)
                    return
                if req.headers.get("expect", "").lower() == "100-continue":
                    writer.write(b"HTTP/1.1 100 Continue\r\n\r\n")
                await self.dispatch(req, reader, writer)
                if not req.keep_alive:
                    return
        except (asyncio.IncompleteReadError, asyncio.LimitOverrunError, ConnectionError, ValueError):
            pass
        except asyncio.CancelledError:  # the process is stopping: end quietly
            pass
        finally:
            writer.close()

    async def dispatch(self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        if req.path == "/upload" and req.method in ("POST", "PUT"):
            return await self.upload(req, reader, writer)
        async for _ in _body_chunks(req, reader):
            pass
        if req.path == "/" and req.method in ("GET", "HEAD"):
            return await self.simple(writer, "200 OK", b"ok\n")
        if req.path.startswith("/static/") and req.method == "GET":
            return await self.static(req, writer)
        if req.path == "/sse" and req.method == "GET":
            return await self.sse(req, writer)
        await self.simple(writer, "404 Not Found", b"not found\n")

    async def simple(self, writer: asyncio.StreamWriter, status: str, body: bytes, ctype: str = "text/plain") -> None:
        writer.write(_head(status, [("Content-Type", ctype), ("Content-Length", str(len(body)))]) + body)
        await writer.drain()

    async def static(self, req: Request, writer: asyncio.StreamWriter) -> None:
        path = self.data / os.path.basename(req.path)
        if not path.is_file():
            return await self.simple(writer, "404 Not Found", b"not found\n")
        with path.open("rb") as f:
            size = os.fstat(f.fileno()).st_size
            writer.write(_head("200 OK", [("Content-Type", "application/octet-stream"), ("Content-Length", str(size))]))
            await writer.drain()
            await asyncio.get_running_loop().sendfile(writer.transport, f)

    async def sse(self, req: Request, writer: asyncio.StreamWriter) -> None:
        n, interval = int(req.arg("n", "10")), float(req.arg("interval", "0.01"))
        writer.write(_head("200 OK", [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache"),
                                      ("Transfer-Encoding", "chunked")]))
        start = time.monotonic()
        for i in range(n):
            delay = start + i * interval - time.monotonic()
            if delay > 0:
                await asyncio.sleep(delay)
            event = f"data: {i} {time.monotonic_ns()}\n\n".encode()
            writer.write(b"%x\r\n%s\r\n" % (len(event), event))
            await writer.drain()
        writer.write(b"0\r\n\r\n")
        await writer.drain()

    async def upload(self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        digest, total = hashlib.sha256(), 0
        async for piece in _body_chunks(req, reader):
            digest.update(piece)
            total += len(piece)
        body = json.dumps({"bytes": total, "sha256": digest.hexdigest()}).encode()
        await self.simple(writer, "200 OK", body, "application/json")

    async def websocket(self, req: Request, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        key = req.headers.get("sec-websocket-key", "").encode()
        writer.write(_head("101 Switching Protocols", [("Upgrade", "websocket"), ("Connection", "Upgrade"),
                                                       ("Sec-WebSocket-Accept", wsframe.accept_key(key).decode())]))
        # Every drain waits for an empty buffer: the bulk paths write past the transport.
        writer.transport.set_write_buffer_limits(0)
        raw: socket.socket | None = None  # a duplicate of the socket, for the bulk paths
        try:
            while True:
                opcode, payload = await wsframe.read_message(reader)
                if opcode == wsframe.OP_TEXT and payload.startswith(b"send "):
                    # "send N SIZE": N binary messages of SIZE bytes, then a text "sent".
                    _, count, size = payload.split()
                    block = wsframe.frame(wsframe.OP_BINARY, bytes(int(size)))
                    raw = raw or writer.get_extra_info("socket").dup()
                    loop = asyncio.get_running_loop()
                    for _ in range(int(count)):
                        await loop.sock_sendall(raw, block)  # no copy into the transport's buffer
                    writer.write(wsframe.frame(wsframe.OP_TEXT, b"sent"))
                elif opcode == wsframe.OP_TEXT and payload == b"sink":
                    writer.write(wsframe.frame(wsframe.OP_TEXT, b"ready"))
                    await writer.drain()
                    raw = raw or writer.get_extra_info("socket").dup()
                    writer.write(wsframe.frame(wsframe.OP_TEXT, await _sink(writer.transport, raw)))
                elif opcode in (wsframe.OP_TEXT, wsframe.OP_BINARY):
                    writer.write(wsframe.frame(opcode, payload))
                elif opcode == wsframe.OP_PING:
                    writer.write(wsframe.frame(wsframe.OP_PONG, payload))
                elif opcode == wsframe.OP_CLOSE:
                    writer.write(wsframe.frame(wsframe.OP_CLOSE, payload[:2]))
                    await writer.drain()
                    return
                await writer.drain()
        finally:
            if raw is not None:
                raw.close()  # a duplicate: the connection stays open


async def _sink(transport: asyncio.Transport, raw: socket.socket) -> bytes:
    """Count the client's messages, read from ``raw`` (the transport paused meanwhile), up to its
    text ``sunk?``: the answer. Nothing may follow ``sunk?`` before the answer (the client waits)."""
    loop = asyncio.get_running_loop()
    skim = wsframe.Skimmer()
    buf = bytearray(BULK_READ_BYTES)
    messages = total = low = high = 0  # data messages, their bytes, the smallest and the largest
    transport.pause_reading()
    try:
        while True:
            got = await wsframe.bulk_read(raw, buf, skim)
            if got is None:
                raise asyncio.IncompleteReadError(b"", None)
            for i, (opcode, length, payload) in enumerate(got):
                if opcode == wsframe.OP_TEXT and payload == b"sunk?":
                    if i != len(got) - 1 or not skim.idle:
                        raise ValueError("bytes after sunk?")
                    return b"%d %d %d %d" % (messages, total, low, high)
                if opcode in (wsframe.OP_TEXT, wsframe.OP_BINARY):
                    low, high = (min(low, length), max(high, length)) if messages else (length, length)
                    messages += 1
                    total += length
                elif opcode == wsframe.OP_PING:
                    await loop.sock_sendall(raw, wsframe.frame(wsframe.OP_PONG, payload))
                elif opcode == wsframe.OP_CLOSE:
                    raise ConnectionError("closed while sinking")
    finally:
        transport.resume_reading()


async def main(port: int, data: Path, ipv6: bool) -> None:
    upstream = Upstream(data)
    hosts = ["127.0.0.1", "::1"] if ipv6 else ["127.0.0.1"]
    servers = [await asyncio.start_server(upstream.serve, host, port, limit=READ_LIMIT, backlog=2048)
               for host in hosts]
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(sig, stop.set)
    print(f"upstream listening on {port}", flush=True)
    await stop.wait()
    for server in servers:
        server.close()


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path, default=Path("."))
    parser.add_argument("--ipv6", action="store_true", help="also listen on [::1]")
    args = parser.parse_args()
    asyncio.run(main(args.port, args.data, args.ipv6))
