"""A misbehaving upstream for trioproxy's integration tests: raw sockets, one thread per connection.

Usage:
    python bad_app.py --port N

Listens on 127.0.0.1:N, prints ``bad_app listening on PORT`` once bound.
Standard library only, and trioproxy's pure websocket framing (``trioproxy.rules.frames``).
SIGTERM and SIGINT end it at once (default action).

Every request it reads is recorded (its request line, in order); ``GET /seen``
answers them as JSON with a few counters, so a test can tell exactly what
reached the app (a smuggled request, an oversized head) and what did not.

HTTP routes (matched on the path, without the query):

    /seen                  JSON {"requests": [request lines], "events": [...], "counters": {...}}
                           (not recorded itself)
    /malformed-status      "HTTP/1.1 abc Broken" status line, then closes
    /not-http              bytes that are not HTTP at all, then closes
    /empty                 closes without a byte
    /reset                 closes with a TCP reset (SO_LINGER 0), no byte
    /bad-header            a header line without a colon
    /header-cr             a header value with a bare CR in it ("a\\rInjected: 1")
    /header-nul            a header value with a NUL byte
    /dup-cl                two different Content-Length headers
    /bad-cl                Content-Length: abc
    /neg-cl                Content-Length: -5
    /huge-head             a 300 KiB header
    /bad-chunk             chunked body whose second chunk size is "zz"
    /101-no-upgrade        101 Switching Protocols to a plain GET
    /cl-te                 Content-Length and Transfer-Encoding: chunked together; read as
                           Content-Length the rest of the body is a second response (SMUGGLED)
    /close-midbody-cl      Content-Length 100000, 1000 bytes, then closes
    /close-midbody-chunked chunked, two chunks, then closes without the last chunk
    /endless               a chunked body that never ends (16 KiB chunks as fast as the socket
                           takes them); counters["endless_sent"] counts the bytes written; when
                           a write fails, event "endless ended"
    /never                 reads the request, never answers; event "never: closed by peer"
                           when the other side closes the connection
    /partial-head          sends "HTTP/1.1 200 OK\\r\\nContent-" and then nothing;
                           event "partial-head: closed by peer" as /never
    /hop                   hop-by-hop headers (Connection: close, x-hop; X-Hop; Keep-Alive;
                           Proxy-Connection; Upgrade; TE; Trailer), X-End: 1, chunked body "ok"
    /http10                an HTTP/1.0 answer framed by closing the connection
    anything else          200 JSON {"method", "target", "headers", "body_len"}, keep-alive

Websockets (a GET with Upgrade: websocket):

    /ws-echo               a correct echo: data frames echoed, a close frame answered
    /ws-flood              accepts, then sends text frames m0, m1, ... as fast as the socket
                           takes them; counters["flood_sent"]; a close frame is answered after
                           the frame being sent; event "ws-flood ended" then, or when a write fails
    /ws-bad-accept         a 101 with a wrong Sec-WebSocket-Accept
    /ws-garbage            accepts, then a frame with reserved bits set
    /ws-masked             accepts, then a masked frame (servers never mask)
    /ws-vanish             accepts, sends "bye", then closes the TCP connection without a close frame
    /ws-close-midframe     accepts, sends the head of a 1000-byte frame and 10 bytes, then closes
    /ws-huge               accepts, then the head of a 2 GiB text frame
"""

import argparse
import json
import signal
import socket
import struct
import threading

from trioproxy.rules import frames

HEAD_MAX = 4 * 1024 * 1024

LOCK = threading.Lock()
SEEN = []
EVENTS = []
COUNTERS = {"endless_sent": 0, "flood_sent": 0, "connections": 0}


def event(text):
    with LOCK:
        EVENTS.append(text)


def count(name, n):
    with LOCK:
        COUNTERS[name] += n


class Gone(Exception):
    """The peer closed the connection."""


class Conn:
    def __init__(self, sock):
        self.sock = sock
        self.buf = b""

    def fill(self):
        data = self.sock.recv(65536)
        if not data:
            raise Gone()
        self.buf += data

    def read_until(self, marker, limit=HEAD_MAX):
        while marker not in self.buf:
            if len(self.buf) > limit:
                raise Gone()
            self.fill()
        i = self.buf.index(marker) + len(marker)
        out, self.buf = self.buf[:i], self.buf[i:]
        return out

    def read_exactly(self, n):
        while len(self.buf) < n:
            self.fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def wait_closed(self):
        """Read and drop everything until the peer closes."""
        try:
            while True:
                self.buf = b""
                self.fill()
        except (Gone, OSError):
            pass

    def send(self, data):
        self.sock.sendall(data)


def read_request(conn):
    head = conn.read_until(b"\r\n\r\n")
    lines = head[:-4].split(b"\r\n")
    request_line = lines[0].decode("latin-1")
    headers = []
    for line in lines[1:]:
        name, _, value = line.partition(b":")
        headers.append((name.strip().lower().decode("latin-1"), value.strip().decode("latin-1")))
    names = dict(headers)
    body_len = 0
    if "chunked" in names.get("transfer-encoding", "").lower():
        while True:
            size = int(conn.read_until(b"\r\n").split(b";")[0].strip() or b"0", 16)
            if size == 0:
                while conn.read_until(b"\r\n") != b"\r\n":
                    pass
                break
            conn.read_exactly(size + 2)
            body_len += size
    elif names.get("content-length", "").isdigit():
        body_len = int(names["content-length"])
        conn.read_exactly(body_len)
    return request_line, headers, body_len


def response(status, headers, body=b"", reason=b"OK"):
    lines = [b"HTTP/1.1 %d %s" % (status, reason)]
    lines += [b"%s: %s" % (k, v) for k, v in headers]
    lines.append(b"content-length: %d" % len(body))
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def chunk(data):
    return b"%x\r\n%s\r\n" % (len(data), data)


def seen_json():
    with LOCK:
        return json.dumps({"requests": list(SEEN), "events": list(EVENTS), "counters": dict(COUNTERS)}).encode()


# --- HTTP routes: each returns True if the connection may carry another request ---------------


def route_http(conn, method, target, headers, body_len):
    path = target.split("?", 1)[0]
    send = conn.send
    if path == "/seen":
        send(response(200, [(b"content-type", b"application/json")], seen_json()))
        return True
    if path == "/malformed-status":
        send(b"HTTP/1.1 abc Broken\r\nContent-Length: 2\r\n\r\nno")
        return False
    if path == "/not-http":
        send(b"hello, this is not HTTP at all\r\n\r\n")
        return False
    if path == "/empty":
        return False
    if path == "/reset":
        conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        return False
    if path == "/bad-header":
        send(b"HTTP/1.1 200 OK\r\nNoColonHere\r\nContent-Length: 2\r\n\r\nno")
        return False
    if path == "/header-cr":
        send(b"HTTP/1.1 200 OK\r\nX-A: a\rInjected: 1\r\nContent-Length: 2\r\n\r\nno")
        return False
    if path == "/header-nul":
        send(b"HTTP/1.1 200 OK\r\nX-A: a\x00b\r\nContent-Length: 2\r\n\r\nno")
        return False
    if path == "/dup-cl":
        send(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\nContent-Length: 3\r\n\r\nabc")
        return False
    if path == "/bad-cl":
        send(b"HTTP/1.1 200 OK\r\nContent-Length: abc\r\n\r\nabc")
        return False
    if path == "/neg-cl":
        send(b"HTTP/1.1 200 OK\r\nContent-Length: -5\r\n\r\nabc")
        return False
    if path == "/huge-head":
        send(b"HTTP/1.1 200 OK\r\nX-Huge: " + b"h" * (300 * 1024) + b"\r\nContent-Length: 2\r\n\r\nok")
        return False
    if path == "/bad-chunk":
        send(b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(b"first") + b"zz\r\nsecond\r\n0\r\n\r\n")
        return False
    if path == "/101-no-upgrade":
        send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: foo\r\nConnection: Upgrade\r\n\r\n")
        conn.wait_closed()
        return False
    if path == "/cl-te":
        smuggled = b"HTTP/1.1 200 OK\r\nContent-Length: 8\r\n\r\nSMUGGLED"
        framing = b"%x\r\n" % len(smuggled)
        head = b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nContent-Length: %d\r\n" % len(framing)
        send(head + b"Transfer-Encoding: chunked\r\n\r\n" + framing + smuggled + b"\r\n0\r\n\r\n")
        return True  # as if the app believed the connection could go on
    if path == "/close-midbody-cl":
        send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nContent-Length: 100000\r\n\r\n"
             + b"x" * 1000)
        return False
    if path == "/close-midbody-chunked":
        send(b"HTTP/1.1 200 OK\r\nContent-Type: text/plain\r\nTransfer-Encoding: chunked\r\n\r\n"
             + chunk(b"part one\n") + chunk(b"part two\n"))
        return False
    if path == "/endless":
        send(b"HTTP/1.1 200 OK\r\nContent-Type: application/octet-stream\r\nTransfer-Encoding: chunked\r\n\r\n")
        piece = chunk(b"e" * 16384)
        try:
            while True:
                send(piece)
                count("endless_sent", 16384)
        except OSError:
            event("endless ended")
        return False
    if path in ("/never", "/partial-head"):
        if path == "/partial-head":
            send(b"HTTP/1.1 200 OK\r\nContent-")
        conn.wait_closed()
        event(f"{path[1:]}: closed by peer")
        return False
    if path == "/hop":
        headers = [
            (b"Content-Type", b"text/plain"),
            (b"Connection", b"close, X-Hop"),
            (b"X-Hop", b"1"),
            (b"Keep-Alive", b"timeout=5, max=100"),
            (b"Proxy-Connection", b"keep-alive"),
            (b"Upgrade", b"h2c"),
            (b"TE", b"trailers"),
            (b"Trailer", b"X-Trailer"),
            (b"Transfer-Encoding", b"chunked"),
            (b"X-End", b"1"),
        ]
        head = b"HTTP/1.1 200 OK\r\n" + b"".join(b"%s: %s\r\n" % h for h in headers) + b"\r\n"
        send(head + chunk(b"ok") + b"0\r\nX-Trailer: t\r\n\r\n")
        return False
    if path == "/http10":
        send(b"HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\n\r\n" + b"until close " * 1000)
        return False
    info = {"method": method, "target": target, "headers": headers, "body_len": body_len}
    send(response(200, [(b"content-type", b"application/json")], json.dumps(info).encode()))
    return True


# --- websockets -----------------------------------------------------------------------------


def ws_frame(opcode, payload, *, rsv=0, masked=False, length=None):
    return frames.encode(opcode, payload, rsv=rsv, mask_key=b"\x01\x02\x03\x04" if masked else None, length=length)


def ws_read_frame(conn):
    head = conn.read_exactly(frames.MIN_HEADER)
    head += conn.read_exactly(frames.header_size(head) - len(head))
    header = frames.parse_header(head)
    payload = conn.read_exactly(header.length)
    if header.mask_key is not None:
        payload = frames.mask(header.mask_key, payload)
    return header.opcode, payload


def ws_accept(conn, headers, *, wrong=False):
    key = dict(headers).get("sec-websocket-key", "").encode()
    accept = frames.accept_key(b"not the key" if wrong else key)
    conn.send(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n"
              b"Sec-WebSocket-Accept: " + accept + b"\r\n\r\n")


def route_websocket(conn, path, headers):
    if path == "/ws-bad-accept":
        ws_accept(conn, headers, wrong=True)
        conn.wait_closed()
        return
    ws_accept(conn, headers)
    if path == "/ws-echo":
        while True:
            opcode, payload = ws_read_frame(conn)
            if opcode == 0x8:
                conn.send(ws_frame(0x8, payload[:2]))
                return
            if opcode in (0x1, 0x2):
                conn.send(ws_frame(opcode, payload))
    elif path == "/ws-flood":
        closed: list[bytes] = []
        watcher = threading.Thread(target=_flood_watch, args=(conn, closed), daemon=True)
        watcher.start()
        i = 0
        try:
            while not closed:
                conn.send(ws_frame(0x1, b"m%d" % i))
                i += 1
                if i % 100 == 0:
                    count("flood_sent", 100)
            conn.send(ws_frame(0x8, closed[0][:2]))  # the close answered, after a whole frame
        except OSError:
            pass
        event("ws-flood ended")
    elif path == "/ws-garbage":
        conn.send(ws_frame(0x1, b"reserved bits", rsv=0b111))
        conn.wait_closed()
    elif path == "/ws-masked":
        conn.send(ws_frame(0x1, b"masked by a server", masked=True))
        conn.wait_closed()
    elif path == "/ws-vanish":
        conn.send(ws_frame(0x1, b"bye"))
    elif path == "/ws-close-midframe":
        conn.send(ws_frame(0x2, b"0123456789", length=1000))
    elif path == "/ws-huge":
        conn.send(ws_frame(0x1, b"", length=2**31))
        conn.wait_closed()
    else:
        conn.send(ws_frame(0x8, frames.close_payload(1008, b"unknown path")))
        conn.wait_closed()


def _flood_watch(conn, closed):
    """Read what the other side sends during a flood; a close frame ends the flood (the flood
    answers it between two frames), the connection ending ends it at once (shutdown)."""
    try:
        while True:
            opcode, payload = ws_read_frame(conn)
            if opcode == 0x8:
                closed.append(payload)
                return
    except (Gone, OSError):
        pass
    try:
        conn.sock.shutdown(socket.SHUT_RDWR)
    except OSError:
        pass


def handle(sock):
    conn = Conn(sock)
    count("connections", 1)
    try:
        while True:
            request_line, headers, body_len = read_request(conn)
            parts = request_line.split(" ")
            method, target = (parts + ["", ""])[:2]
            path = target.split("?", 1)[0]
            if path != "/seen":
                with LOCK:
                    SEEN.append(request_line)
            if dict(headers).get("upgrade", "").lower() == "websocket":
                route_websocket(conn, path, headers)
                return
            if not route_http(conn, method, target, headers, body_len):
                return
    except (Gone, OSError, ValueError):
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.port))
    server.listen(512)
    print(f"bad_app listening on {server.getsockname()[1]}", flush=True)
    while True:
        sock, _ = server.accept()
        threading.Thread(target=handle, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()
