"""The load generators: wrk and curl where they are installed, small asyncio clients for the rest.

Everything here runs on the harness's core (the load core) and talks to 127.0.0.1 only. Every
call is bounded: by the tool's own limit, and by ``asyncio.wait_for`` around it.
"""

from __future__ import annotations

import asyncio
import base64
import os
import re
import shutil
import socket
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field

from benchmarks import wsframe

HOST = "127.0.0.1"
#: Slack added to a tool's own time limit before the harness kills it.
TOOL_SLACK_S = 15.0


class HTTPFailure(Exception):
    """A response that is not what the scenario asked for (status, size, framing)."""


# --- raw HTTP/1.1 ---------------------------------------------------------------------------


async def read_head(reader: asyncio.StreamReader) -> tuple[int, dict[str, str]]:
    head = (await reader.readuntil(b"\r\n\r\n")).decode("latin-1").split("\r\n")
    status = int(head[0].split(" ", 2)[1])
    headers = {}
    for line in head[1:]:
        if line:
            name, _, value = line.partition(":")
            headers[name.strip().lower()] = value.strip()
    return status, headers


async def iter_body(reader: asyncio.StreamReader, headers: dict[str, str]) -> AsyncIterator[bytes]:
    """The response body as it arrives: chunked, Content-Length, or up to EOF."""
    if "chunked" in headers.get("transfer-encoding", "").lower():
        while True:
            size = int((await reader.readuntil(b"\r\n")).split(b";")[0], 16)
            if size == 0:
                while (await reader.readuntil(b"\r\n")) != b"\r\n":
                    pass
                return
            yield await reader.readexactly(size)
            await reader.readexactly(2)
    elif "content-length" in headers:
        left = int(headers["content-length"])
        while left:
            piece = await reader.read(min(left, 1 << 20))
            if not piece:
                raise HTTPFailure("body cut short")
            left -= len(piece)
            yield piece
    else:
        while piece := await reader.read(1 << 20):
            yield piece


def request_bytes(method: str, port: int, path: str, *, close: bool = False, extra: str = "") -> bytes:
    conn = "Connection: close\r\n" if close else ""
    return f"{method} {path} HTTP/1.1\r\nHost: {HOST}:{port}\r\n{conn}{extra}\r\n".encode("latin-1")


async def get(port: int, path: str, *, timeout: float = 10.0) -> tuple[int, bytes]:
    """One GET on a new connection: (status, body)."""

    async def once() -> tuple[int, bytes]:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            writer.write(request_bytes("GET", port, path, close=True))
            status, headers = await read_head(reader)
            return status, b"".join([piece async for piece in iter_body(reader, headers)])
        finally:
            writer.close()

    return await asyncio.wait_for(once(), timeout)


# --- websockets -----------------------------------------------------------------------------


@dataclass
class WebSocket:
    reader: asyncio.StreamReader
    writer: asyncio.StreamWriter

    async def echo(self, payload: bytes) -> bytes:
        self.writer.write(wsframe.frame(wsframe.OP_BINARY, payload, masked=True))
        while True:
            opcode, data = await wsframe.read_message(self.reader)
            if opcode in (wsframe.OP_TEXT, wsframe.OP_BINARY):
                return data
            if opcode == wsframe.OP_CLOSE:
                raise HTTPFailure(f"closed by the server ({wsframe.close_code(data)})")

    async def text(self) -> bytes:
        """The next text message (binary ones in between are not expected)."""
        while True:
            opcode, data = await wsframe.read_message(self.reader)
            if opcode == wsframe.OP_TEXT:
                return data
            if opcode == wsframe.OP_CLOSE:
                raise HTTPFailure(f"closed by the server ({wsframe.close_code(data)})")
            if opcode == wsframe.OP_BINARY:
                raise HTTPFailure("a binary message where a text one was expected")

    def abort(self) -> None:
        self.writer.transport.abort()


async def ws_connect(port: int, path: str, *, timeout: float = 10.0) -> WebSocket:
    async def once() -> WebSocket:
        reader, writer = await asyncio.open_connection(HOST, port, limit=1 << 20)
        try:
            key = base64.b64encode(os.urandom(16)).decode()
            writer.write(request_bytes("GET", port, path, extra=(
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")))
            status, _ = await read_head(reader)
            if status != 101:
                raise HTTPFailure(f"websocket handshake answered {status}")
        except BaseException:
            writer.transport.abort()
            raise
        return WebSocket(reader, writer)

    return await asyncio.wait_for(once(), timeout)


@dataclass
class EchoRun:
    messages: int = 0
    seconds: float = 0.0
    rtts: list[float] = field(default_factory=list)


async def ws_open(port: int, path: str, count: int, *, parallel: int = 100, timeout: float = 60.0) -> list[WebSocket]:
    """``count`` websockets, at most ``parallel`` handshakes at a time; all or none (on failure all are aborted)."""
    gate = asyncio.Semaphore(parallel)
    opened: list[WebSocket] = []

    async def one() -> None:
        async with gate:
            opened.append(await ws_connect(port, path))

    try:
        await asyncio.wait_for(asyncio.gather(*(one() for _ in range(count))), timeout)
    except BaseException:
        for ws in opened:
            ws.abort()
        raise
    return opened


async def ws_echo(sockets: list[WebSocket], *, msgs: int, size: int, timeout: float) -> EchoRun:
    """Each websocket sends ``msgs`` messages one after the other, each awaiting its echo."""
    payload = os.urandom(size)
    run = EchoRun()

    async def one(ws: WebSocket) -> None:
        clock = time.perf_counter
        for _ in range(msgs):
            t = clock()
            if await ws.echo(payload) != payload:
                raise HTTPFailure("echo differs")
            run.rtts.append(clock() - t)

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one(ws) for ws in sockets)), timeout)
    run.seconds = time.perf_counter() - start
    run.messages = len(sockets) * msgs
    return run


#: The bulk client's read buffer (one per websocket, allocated once; payloads are not read into it).
BULK_READ_BYTES = 1 << 20


class BulkWebSocket:
    """One websocket on a non-blocking socket of its own, with no asyncio transport or stream: the
    client of the 1 MiB-message scenario. It sends one precomputed frame again and again with
    ``sock_sendall`` (no copy but the kernel's) and reads following frame headers only
    (:func:`wsframe.bulk_read`: a binary payload is counted and discarded in the kernel, never
    copied out). So that the load side (this client, the upstream and nginx share the load core)
    costs far less per MiB than a proxy."""

    def __init__(self, sock: socket.socket, rest: bytes) -> None:
        self.sock = sock
        self.loop = asyncio.get_running_loop()
        self.skim = wsframe.Skimmer()
        self.buf = bytearray(BULK_READ_BYTES)
        self.messages: list[tuple[int, int, bytes]] = self.skim.feed(memoryview(rest))
        self.taken = 0

    async def send(self, data: bytes) -> None:
        await self.loop.sock_sendall(self.sock, data)

    async def message(self) -> tuple[int, int, bytes]:
        """(opcode, payload length, payload: empty for binary) of the next message or control frame."""
        while self.taken == len(self.messages):
            got = await wsframe.bulk_read(self.sock, self.buf, self.skim)
            if got is None:
                raise HTTPFailure("the websocket's connection ended")
            self.messages, self.taken = got, 0
        self.taken += 1
        return self.messages[self.taken - 1]

    async def text(self) -> bytes:
        opcode, _, data = await self.message()
        if opcode == wsframe.OP_CLOSE:
            raise HTTPFailure(f"closed by the server ({wsframe.close_code(data)})")
        if opcode != wsframe.OP_TEXT:
            raise HTTPFailure(f"opcode {opcode} where a text message was expected")
        return data

    def abort(self) -> None:
        self.sock.close()


async def bulk_ws_connect(port: int, path: str, *, timeout: float = 10.0) -> BulkWebSocket:
    async def once() -> BulkWebSocket:
        loop = asyncio.get_running_loop()
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        try:
            sock.setblocking(False)
            await loop.sock_connect(sock, (HOST, port))
            key = base64.b64encode(os.urandom(16)).decode()
            await loop.sock_sendall(sock, request_bytes("GET", port, path, extra=(
                "Upgrade: websocket\r\nConnection: Upgrade\r\n"
                f"Sec-WebSocket-Key: {key}\r\nSec-WebSocket-Version: 13\r\n")))
            got = b""
            while b"\r\n\r\n" not in got:
                piece = await loop.sock_recv(sock, 65536)
                if not piece:
                    raise HTTPFailure("no answer to the websocket handshake")
                got += piece
            head, _, rest = got.partition(b"\r\n\r\n")
            status = int(head.split(b" ", 2)[1])
            if status != 101:
                raise HTTPFailure(f"websocket handshake answered {status}")
        except BaseException:
            sock.close()
            raise
        return BulkWebSocket(sock, rest)

    return await asyncio.wait_for(once(), timeout)


async def ws_stream(ws: BulkWebSocket, way: str, *, count: int, size: int, timeout: float) -> float:
    """Seconds to move ``count`` messages of ``size`` bytes one way: "up" (to the upstream, which
    counts them and their sizes) or "down" (from it), each side writing as fast as the other reads."""

    async def up() -> None:
        await ws.send(wsframe.frame(wsframe.OP_TEXT, b"sink", masked=True))
        if await ws.text() != b"ready":
            raise HTTPFailure("the upstream is not ready to sink")
        block = wsframe.frame(wsframe.OP_BINARY, bytes(size), masked=True)
        for _ in range(count):
            await ws.send(block)
        await ws.send(wsframe.frame(wsframe.OP_TEXT, b"sunk?", masked=True))
        counted = await ws.text()
        if counted != b"%d %d %d %d" % (count, count * size, size, size):
            raise HTTPFailure(f"the upstream counted other messages (messages, bytes, smallest, largest): {counted!r}")

    async def down() -> None:
        await ws.send(wsframe.frame(wsframe.OP_TEXT, b"send %d %d" % (count, size), masked=True))
        for _ in range(count):
            opcode, length, _ = await ws.message()
            if opcode != wsframe.OP_BINARY or length != size:
                raise HTTPFailure(f"expected a {size}-byte binary message, got opcode {opcode}, {length} bytes")
        if await ws.text() != b"sent":
            raise HTTPFailure("no end of the stream")

    start = time.perf_counter()
    await asyncio.wait_for(up() if way == "up" else down(), timeout)
    return time.perf_counter() - start


# --- server-sent events ---------------------------------------------------------------------

EVENT = re.compile(rb"data: (\d+) (\d+)\n\n")


async def sse(port: int, path: str, *, timeout: float) -> tuple[float, list[float]]:
    """(ms from sending the request to the first event, ms from the upstream sending each event to its arrival)."""

    async def once() -> tuple[float, list[float]]:
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            start = time.monotonic_ns()
            writer.write(request_bytes("GET", port, path, close=True))
            status, headers = await read_head(reader)
            if status != 200:
                raise HTTPFailure(f"event stream answered {status}")
            first, delays, buf = None, [], b""
            async for piece in iter_body(reader, headers):
                now = time.monotonic_ns()
                buf += piece
                for match in EVENT.finditer(buf):
                    first = first if first is not None else now
                    delays.append((now - int(match.group(2))) / 1e6)
                buf = buf[buf.rfind(b"\n\n") + 2:] if b"\n\n" in buf else buf
            if first is None:
                raise HTTPFailure("no event")
            return (first - start) / 1e6, delays
        finally:
            writer.close()

    return await asyncio.wait_for(once(), timeout)


# --- small GETs: wrk, or an asyncio keep-alive generator -------------------------------------


@dataclass
class GetRun:
    requests: int
    seconds: float
    p50_ms: float
    p99_ms: float
    errors: int
    tool: str


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text).groups()
    return float(value) * {"us": 1e-3, "ms": 1.0, "s": 1e3, "m": 6e4}[unit]


async def run_tool(argv: list[str], timeout: float, *, check: bool = True) -> tuple[int, str]:
    """(exit code, output) of a tool; a non-zero exit raises :class:`HTTPFailure` when ``check``."""
    proc = await asyncio.create_subprocess_exec(*argv, stdout=asyncio.subprocess.PIPE,
                                                stderr=asyncio.subprocess.STDOUT)
    try:
        out, _ = await asyncio.wait_for(proc.communicate(), timeout)
    except BaseException:
        proc.kill()
        await proc.wait()
        raise
    if check and proc.returncode != 0:
        raise HTTPFailure(f"{os.path.basename(argv[0])} exited {proc.returncode}: {out.decode()[-300:]}")
    return proc.returncode, out.decode()


async def wrk(port: int, path: str, *, conns: int, seconds: float) -> GetRun:
    # wrk takes whole seconds only.
    argv = [shutil.which("wrk") or "wrk", "-t1", f"-c{conns}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
            "--latency", f"http://{HOST}:{port}{path}"]
    _, out = await run_tool(argv, seconds + TOOL_SLACK_S)
    done = re.search(r"(\d+) requests in ([\d.]+)(\w+)", out)
    latency = dict(re.findall(r"^\s+(50|99)%\s+(\S+)$", out, re.M))
    errors = sum(int(n) for n in re.findall(r"(?:connect|read|write|timeout) (\d+)", out))
    non2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    errors += int(non2xx.group(1)) if non2xx else 0
    secs = float(done.group(2)) * {"s": 1.0, "ms": 1e-3, "m": 60.0}[done.group(3)]
    return GetRun(int(done.group(1)), secs, _ms(latency["50"]), _ms(latency["99"]), errors, "wrk")


async def python_get_load(port: int, path: str, *, conns: int, seconds: float) -> GetRun:
    """What wrk does, in asyncio: ``conns`` keep-alive connections, each GET after the last for ``seconds``."""
    latencies: list[float] = []
    errors = 0
    deadline = time.perf_counter() + seconds
    request = request_bytes("GET", port, path)

    async def one() -> None:
        nonlocal errors
        reader, writer = await asyncio.open_connection(HOST, port)
        try:
            while (t := time.perf_counter()) < deadline:
                writer.write(request)
                status, headers = await read_head(reader)
                async for _ in iter_body(reader, headers):
                    pass
                latencies.append(time.perf_counter() - t)
                errors += status != 200
                if headers.get("connection", "").lower() == "close":
                    writer.close()
                    reader, writer = await asyncio.open_connection(HOST, port)
        finally:
            writer.close()

    start = time.perf_counter()
    await asyncio.wait_for(asyncio.gather(*(one() for _ in range(conns))), seconds + TOOL_SLACK_S)
    elapsed = time.perf_counter() - start
    latencies.sort()

    def pick(q: float) -> float:
        return latencies[min(len(latencies) - 1, int(q * len(latencies)))] * 1e3

    return GetRun(len(latencies), elapsed, pick(0.5), pick(0.99), errors, "python")


# --- downloads and uploads: curl -------------------------------------------------------------


@dataclass
class Transfer:
    status: int
    #: Bytes received (download) or sent (upload).
    size: int
    seconds: float
    #: curl's exit code: 0, or why the transfer ended early (e.g. 55/56: the peer closed it).
    curl_exit: int = 0


CURL_FORMAT = "%{http_code} %{size_download} %{size_upload} %{time_total}\\n"
CURL_LINE = re.compile(r"^(\d{3}) (\d+) (\d+) ([\d.]+)$", re.M)


async def _curl(argv: list[str], timeout: float, upload: bool) -> list[Transfer]:
    """Run curl; one :class:`Transfer` per ``-w`` line, even when curl exits non-zero after answering."""
    code, out = await run_tool([shutil.which("curl") or "curl", "-s", "-w", CURL_FORMAT, *argv], timeout, check=False)
    transfers = [Transfer(int(status), int(up if upload else down), float(total))
                 for status, down, up, total in CURL_LINE.findall(out)]
    if not transfers:
        raise HTTPFailure(f"curl exited {code} with no transfer")
    transfers[-1].curl_exit = code
    return transfers


async def curl_download(port: int, path: str, *, count: int, timeout: float) -> list[Transfer]:
    """``count`` GETs one after the other on one keep-alive connection, bodies thrown away."""
    argv = ["--max-time", str(timeout)]
    for _ in range(count):
        argv += ["-o", "/dev/null", f"http://{HOST}:{port}{path}"]
    return await _curl(argv, timeout * count + TOOL_SLACK_S, upload=False)


async def curl_upload(port: int, path: str, source: str, *, timeout: float) -> Transfer:
    """POST the file ``source`` (Content-Length, no ``Expect: 100-continue``)."""
    argv = ["--max-time", str(timeout), "-X", "POST", "-H", "Expect:", "-H", "Content-Type: application/octet-stream",
            "-T", source, "-o", "/dev/null", f"http://{HOST}:{port}{path}"]
    return (await _curl(argv, timeout + TOOL_SLACK_S, upload=True))[0]
