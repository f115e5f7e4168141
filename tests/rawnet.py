"""Raw HTTP/1.1 and websocket clients on trio sockets, for tests that send what no library would.

Small on purpose: it writes exactly the bytes a test gives it and parses what
trioproxy (a well-behaved server) answers: status lines, headers, bodies framed
by Content-Length or chunked, and websocket frames. Loopback only.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import trio

from trioproxy.rules import frames as _frames

OP_CONT, OP_TEXT, OP_BINARY, OP_CLOSE, OP_PING, OP_PONG = (int(op) for op in _frames.Opcode)


class Closed(Exception):
    """The server closed the connection (EOF or reset) before what was asked for arrived."""


@dataclass
class Response:
    status: int
    reason: bytes
    headers: list[tuple[bytes, bytes]]
    body: bytes = b""

    def header(self, name: bytes) -> bytes | None:
        for n, v in self.headers:
            if n == name:
                return v
        return None

    def header_list(self, name: bytes) -> list[bytes]:
        return [v for n, v in self.headers if n == name]


@dataclass
class Conn:
    """One client connection with a read buffer."""

    stream: trio.SocketStream
    buf: bytearray = field(default_factory=bytearray)
    eof: bool = False

    async def send(self, data: bytes) -> None:
        await self.stream.send_all(data)

    async def _fill(self) -> bool:
        if self.eof:
            return False
        try:
            data = await self.stream.receive_some(65536)
        except (trio.BrokenResourceError, trio.ClosedResourceError):
            data = b""
        if not data:
            self.eof = True
            return False
        self.buf += data
        return True

    async def read_until(self, marker: bytes, limit: int = 1 << 20) -> bytes:
        while True:
            i = self.buf.find(marker)
            if i >= 0:
                out = bytes(self.buf[: i + len(marker)])
                del self.buf[: i + len(marker)]
                return out
            if len(self.buf) > limit:
                raise AssertionError(f"no {marker!r} within {limit} bytes")
            if not await self._fill():
                raise Closed(f"closed before {marker!r}; got {bytes(self.buf[:200])!r}")

    async def read_exactly(self, n: int) -> bytes:
        while len(self.buf) < n:
            if not await self._fill():
                raise Closed(f"closed after {len(self.buf)} of {n} bytes")
        out = bytes(self.buf[:n])
        del self.buf[:n]
        return out

    async def read_to_eof(self) -> bytes:
        while await self._fill():
            pass
        out = bytes(self.buf)
        self.buf.clear()
        return out

    async def wait_closed(self) -> bytes:
        """Read (and return) everything until the server closes."""
        return await self.read_to_eof()

    async def response(self, *, head: bool = False) -> Response:
        """The next response on this connection (1xx responses other than 101 are skipped)."""
        while True:
            raw = await self.read_until(b"\r\n\r\n")
            lines = raw[:-4].split(b"\r\n")
            version, _, rest = lines[0].partition(b" ")
            assert version.startswith(b"HTTP/1."), lines[0]
            code, _, reason = rest.partition(b" ")
            status = int(code)
            headers = []
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers.append((name.strip().lower(), value.strip()))
            resp = Response(status, reason, headers)
            if 100 <= status < 200 and status != 101:
                continue
            if head or status in (204, 304):
                return resp
            te = resp.header(b"transfer-encoding")
            cl = resp.header(b"content-length")
            if te is not None:
                assert te.lower() == b"chunked", te
                resp.body = await self._chunked()
            elif cl is not None:
                resp.body = await self.read_exactly(int(cl))
            else:
                resp.body = await self.read_to_eof()
            return resp

    async def _chunked(self) -> bytes:
        out = bytearray()
        while True:
            line = await self.read_until(b"\r\n")
            size = int(line.split(b";")[0].strip(), 16)
            if size == 0:
                while (await self.read_until(b"\r\n")) != b"\r\n":
                    pass  # trailers
                return bytes(out)
            out += await self.read_exactly(size)
            assert await self.read_exactly(2) == b"\r\n"

    async def aclose(self) -> None:
        await self.stream.aclose()


async def connect(port: int) -> Conn:
    return Conn(await trio.open_tcp_stream("127.0.0.1", port))


async def exchange(port: int, data: bytes, *, quiet: float = 2.0) -> tuple[list[Response], bytes, bool]:
    """Send ``data`` on a new connection and read responses until the server closes it
    or says nothing for ``quiet`` seconds (the connection is kept open, not half-closed,
    meanwhile: a half-close is how a client says it is gone).

    Returns the parsed responses, any bytes left that were not a whole response, and
    whether the server closed the connection.
    """
    conn = await connect(port)
    try:
        await conn.send(data)
        responses = []
        while True:
            with trio.move_on_after(quiet) as idle:
                try:
                    responses.append(await conn.response())
                except Closed:
                    break
            if idle.cancelled_caught:
                break
            if conn.eof and not conn.buf:
                break
        if not conn.eof and not conn.buf:
            with trio.move_on_after(0.2):
                await conn._fill()  # an EOF right behind the last response
        return responses, bytes(conn.buf), conn.eof
    finally:
        await conn.aclose()


def request(method: str, target: str, *, host: str = "127.0.0.1", headers: Sequence[tuple[str, str]] = (),
            body: bytes = b"", close: bool = False) -> bytes:
    lines = [f"{method} {target} HTTP/1.1", f"Host: {host}"]
    lines += [f"{k}: {v}" for k, v in headers]
    if body and not any(k.lower() in ("content-length", "transfer-encoding") for k, _ in headers):
        lines.append(f"Content-Length: {len(body)}")
    if close:
        lines.append("Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1") + body


# --- websockets -------------------------------------------------------------------------------


def frame(opcode: int, payload: bytes, *, fin: bool = True, mask: bool = True, rsv: int = 0,
          length: int | None = None) -> bytes:
    """One frame, masked with a random key unless ``mask=False``. ``length`` overrides the
    announced payload length (to lie, or to stall)."""
    return _frames.encode(opcode, payload, fin=fin, rsv=rsv, mask_key=os.urandom(4) if mask else None, length=length)


close_payload = _frames.close_payload


class WS:
    """A websocket client connection over :class:`Conn`."""

    def __init__(self, conn: Conn, handshake: Response) -> None:
        self.conn = conn
        self.handshake = handshake

    async def send(self, opcode: int, payload: bytes, **kw: object) -> None:
        await self.conn.send(frame(opcode, payload, **kw))  # type: ignore[arg-type]

    async def send_text(self, text: str) -> None:
        await self.send(OP_TEXT, text.encode())

    async def frame(self) -> tuple[bool, int, bytes]:
        """(fin, opcode, payload) of the next frame from the server; :class:`Closed` at EOF."""
        head = await self.conn.read_exactly(_frames.MIN_HEADER)
        head += await self.conn.read_exactly(_frames.header_size(head) - len(head))
        header = _frames.parse_header(head)
        assert header is not None  # header_size bytes are all it needs
        assert not header.masked, "a server's frames are never masked"
        payload = await self.conn.read_exactly(header.length) if header.length else b""
        return header.fin, header.opcode, payload

    async def message(self) -> tuple[int, bytes]:
        """(opcode, payload) of the next data message, or (OP_CLOSE, payload) of a close frame."""
        parts: list[bytes] = []
        first = None
        while True:
            fin, op, payload = await self.frame()
            if op == OP_CLOSE:
                return op, payload
            if op >= OP_CLOSE:
                continue  # ping/pong
            if first is None:
                first = op
            parts.append(payload)
            if fin:
                return first, b"".join(parts)

    async def close_code(self) -> int | None:
        """Read until the server's close frame; its code (None: closed without a close frame)."""
        try:
            while True:
                op, payload = await self.message()
                if op == OP_CLOSE:
                    code = _frames.parse_close(payload)[0]
                    return 1005 if code is None else code
        except Closed:
            return None

    async def aclose(self) -> None:
        await self.conn.aclose()


async def ws_connect(port: int, path: str, *, headers: Sequence[tuple[str, str]] = (),
                     version: str = "13", key: str | None = None) -> WS:
    """Open a websocket; raises AssertionError with the response if it is not a 101."""
    conn = await connect(port)
    key = key if key is not None else base64.b64encode(os.urandom(16)).decode()
    hs = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", version)]
    if key:
        hs.append(("Sec-WebSocket-Key", key))
    await conn.send(request("GET", path, headers=[*hs, *headers]))
    resp = await conn.response(head=True)
    if resp.status != 101:
        await conn.aclose()
        raise AssertionError(f"websocket handshake answered {resp.status}: {resp.headers}")
    return WS(conn, resp)


# --- the server process --------------------------------------------------------------------------


def fd_count(pid: int) -> int:
    return len(os.listdir(f"/proc/{pid}/fd"))


def rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    raise AssertionError("no VmRSS")


def cpu_seconds(pid: int) -> float:
    """User plus system CPU time the process has used."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


_TCP_OPEN_STATES = {"01"}  # ESTABLISHED; anything else (FIN_WAIT*, CLOSING, ...) or no entry: closing or closed


def server_side_open(server_port: int, client_port: int) -> bool:
    """Whether the server still holds its end of our connection (from /proc/net/tcp{,6}).

    Lets a test that does not read (its receive window full) see that the server has
    closed or shut down its side, which the client could only learn by reading.
    """
    for table in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(table) as f:
                next(f)
                for line in f:
                    fields = line.split()
                    local, remote, state = fields[1], fields[2], fields[3]
                    ports = int(local.rsplit(":", 1)[1], 16), int(remote.rsplit(":", 1)[1], 16)
                    if ports == (server_port, client_port):
                        return state in _TCP_OPEN_STATES
        except FileNotFoundError:
            continue
    return False
