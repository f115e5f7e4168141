"""A sloppy upstream: it sends more than its responses say, or hangs up on requests, exactly as told.

Usage:
    python sloppy_app.py --port N

Listens on 127.0.0.1:N, prints ``sloppy_app listening on PORT`` once bound.
Standard library only (and trioproxy's pure websocket framing, ``trioproxy.rules.frames``):
raw sockets, one thread per connection, keep-alive (every answer here says nothing of closing).
SIGTERM and SIGINT end it at once.

Each connection gets a number (1, 2, ...) and counts its requests; every
request line is recorded with both. The "extra" bytes below are a complete
HTTP response of their own whose body holds ``LEAKED``: on a connection that
is reused they would be the answer to the next request, another client's.

    /seen            JSON {"requests": [[conn, nth, request line], ...], "connections": n}
                     (not recorded itself)
    /head-body       (HEAD) the head with Content-Length 300, then a body anyway, then extra
    /short-cl        Content-Length 5, body "hello", then extra (one write)
    /204-body        204 with extra after it
    /304-body        304 with extra after it
    /chunked-extra   chunked body "ok", last chunk, then extra
    /late-extra      a correct 200 "on time", then extra 0.3 s later (the connection idle meanwhile)
    /late-close      a correct 200 "on time", then closes the connection 0.3 s later (a normal idle close)
    /hangup-reused   on a connection's first request: 200 "fresh"; on a later one: reads the request
                     and closes the connection without a byte
    /partial-reused  like /hangup-reused, but sends "HTTP/1.1 200 OK\\r\\nContent-" before closing
    /head-then-close a head with Content-Length 539, then closes the connection (as if killed in between)
    /head-then-reset the same head, then a TCP reset
    /slow-body       a head with Content-Length 4, then "slow" 0.3 s later
    /cookies         200 "cookies" with Set-Cookie for jupyterhub-session-id, __Host-jupyterhub-user-x,
                     trioproxy-login (deletes it), a bare jupyterhub-hub-login (no "="), app=1 and app2=2
    anything else    200 JSON {"method", "target", "conn", "nth"}

Websocket handshakes (a GET with Upgrade: websocket), then the connection ends, except where said:

    /ws-refuse-bare     "HTTP/1.1 400 Bad Request" with no header at all, then close
    /ws-refuse-body     403 with Content-Type, X-Why, the Set-Cookies of /cookies and a body that
                        ends with the connection (no Content-Length): "not for you"
    /ws-silent          reads the handshake, never answers (until the other side closes)
    /ws-garbage         "hello, this is not HTTP" and waits (until the other side closes)
    /ws-hangup          closes without a byte
    /ws-accept-cookies  a correct 101 with the Set-Cookies of /cookies, then echoes text frames
"""

import argparse
import json
import signal
import socket
import struct
import threading
import time

from trioproxy.rules import frames

LOCK = threading.Lock()
SEEN = []
CONNECTIONS = [0]

LEAK_BODY = b'{"leak": "LEAKED: the answer to another request"}'
EXTRA = b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s" % (
    len(LEAK_BODY),
    LEAK_BODY,
)


COOKIES = [
    b"Set-Cookie: jupyterhub-session-id=fixated; Path=/",
    b"Set-Cookie: __Host-jupyterhub-user-x=fixated; Path=/; Secure",
    b"Set-Cookie: trioproxy-login=; Max-Age=0; Path=/",
    b"Set-Cookie: jupyterhub-hub-login",
    b"Set-Cookie: app=1; Path=/",
    b"Set-Cookie: app2=2",
]


def wait_closed(sock):
    try:
        while sock.recv(65536):
            pass
    except OSError:
        pass


def websocket(sock, path, headers, buf):
    if path == "/ws-refuse-bare":
        sock.sendall(b"HTTP/1.1 400 Bad Request\r\n\r\n")
    elif path == "/ws-refuse-body":
        head = [b"HTTP/1.1 403 Forbidden", b"Content-Type: text/plain", b"X-Why: app says no", *COOKIES]
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\nnot for you")
    elif path == "/ws-silent":
        wait_closed(sock)
    elif path == "/ws-garbage":
        sock.sendall(b"hello, this is not HTTP\r\n\r\n")
        wait_closed(sock)
    elif path == "/ws-accept-cookies":
        accept = frames.accept_key(headers.get(b"sec-websocket-key", b""))
        head = [b"HTTP/1.1 101 Switching Protocols", b"Upgrade: websocket", b"Connection: Upgrade",
                b"Sec-WebSocket-Accept: " + accept, *COOKIES]
        sock.sendall(b"\r\n".join(head) + b"\r\n\r\n")
        echo_frames(sock, buf)


def echo_frames(sock, buf):
    """Echo text frames (client frames are masked; ours are not); answer a close frame and return."""

    reader = frames.FrameReader()
    pending = reader.feed(buf)
    while True:
        for header, payload in pending:
            if header.opcode == frames.Opcode.CLOSE:
                sock.sendall(frames.encode(frames.Opcode.CLOSE, payload[:2]))
                return
            if header.opcode == frames.Opcode.TEXT and header.length < 126:
                sock.sendall(frames.encode(frames.Opcode.TEXT, payload))
        data = sock.recv(65536)
        if not data:
            raise OSError("closed")
        pending = reader.feed(data)


def read_head(sock, buf):
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        if not data:
            return None, b""
        buf += data
    head, _, rest = buf.partition(b"\r\n\r\n")
    return head, rest


def response(status, body=b"", *, headers=(), length=None):
    lines = [b"HTTP/1.1 %d X" % status, *headers]
    if length is not None:
        lines.append(b"Content-Length: %d" % length)
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


def handle(sock):
    with LOCK:
        CONNECTIONS[0] += 1
        conn_id = CONNECTIONS[0]
    nth = 0
    buf = b""
    try:
        while True:
            head, buf = read_head(sock, buf)
            if head is None:
                return
            lines = head.split(b"\r\n")
            request_line = lines[0].decode("latin-1")
            headers = {}
            for line in lines[1:]:
                name, _, value = line.partition(b":")
                headers[name.strip().lower()] = value.strip()
            length = int(headers.get(b"content-length", b"0") or 0)
            while len(buf) < length:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
            buf = buf[length:]
            method, target = (request_line.split(" ") + ["", ""])[:2]
            path = target.split("?", 1)[0]
            nth += 1
            if path == "/seen":
                with LOCK:
                    body = json.dumps({"requests": list(SEEN), "connections": CONNECTIONS[0]}).encode()
                sock.sendall(response(200, body, length=len(body)))
                continue
            with LOCK:
                SEEN.append([conn_id, nth, request_line])
            if headers.get(b"upgrade", b"").lower() == b"websocket":
                websocket(sock, path, headers, buf)
                return
            if path == "/cookies":
                sock.sendall(response(200, b"cookies", headers=COOKIES, length=7))
            elif path in ("/head-then-close", "/head-then-reset"):
                sock.sendall(response(200, headers=[b"Content-Type: application/json"], length=539))
                if path == "/head-then-reset":
                    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
                return
            elif path == "/slow-body":
                sock.sendall(response(200, length=4))
                time.sleep(0.3)
                sock.sendall(b"slow")
            elif path == "/head-body":
                sock.sendall(response(200, b"b" * 300 + EXTRA, length=300))
            elif path == "/short-cl":
                sock.sendall(response(200, b"hello" + EXTRA, length=5))
            elif path == "/204-body":
                sock.sendall(response(204, EXTRA))
            elif path == "/304-body":
                sock.sendall(response(304, EXTRA))
            elif path == "/chunked-extra":
                sock.sendall(response(200, b"2\r\nok\r\n0\r\n\r\n" + EXTRA, headers=[b"Transfer-Encoding: chunked"]))
            elif path == "/late-extra":
                sock.sendall(response(200, b"on time", length=7))
                time.sleep(0.3)
                sock.sendall(EXTRA)
            elif path == "/late-close":
                sock.sendall(response(200, b"on time", length=7))
                time.sleep(0.3)
                return
            elif path in ("/hangup-reused", "/partial-reused"):
                if nth == 1:
                    sock.sendall(response(200, b"fresh", length=5))
                    continue
                if path == "/partial-reused":
                    sock.sendall(b"HTTP/1.1 200 OK\r\nContent-")
                return
            else:
                body = json.dumps({"method": method, "target": target, "conn": conn_id, "nth": nth}).encode()
                sock.sendall(response(200, body, headers=[b"Content-Type: application/json"], length=len(body)))
    except OSError:
        pass
    finally:
        try:
            sock.close()
        except OSError:
            pass


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    signal.signal(signal.SIGTERM, signal.SIG_DFL)
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    server = socket.socket()
    server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    server.bind(("127.0.0.1", args.port))
    server.listen(128)
    print(f"sloppy_app listening on {server.getsockname()[1]}", flush=True)
    while True:
        sock, _ = server.accept()
        threading.Thread(target=handle, args=(sock,), daemon=True).start()


if __name__ == "__main__":
    main()
