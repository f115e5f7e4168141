"""Raw ASGI test app served by hypercorn's trio worker.

Launched by trioproxy's integration tests as the proxied child process.

Usage:
    python echo_app.py --port N [--prefix P] [--ipv6]
    python echo_app.py --uds PATH [--prefix P]

Listens on 127.0.0.1:N (and [::1]:N with --ipv6; with ``--port 0`` an
ephemeral port is chosen) and prints ``echo_app listening on PORT`` once
bound.  SIGTERM and SIGINT trigger a graceful shutdown that takes at most
about one second, after which the process exits with status 0.

HTTP routes (matched on the decoded ``scope["path"]``):

    /status/NNN       status NNN (200-599), body "status NNN" (none for 204/304)
    /cookies          three separate set-cookie headers
    /setcookie?n=v    one set-cookie per query pair
    /gzip             gzip-encoded text body with content-encoding: gzip
    /hopbyhop         hop-by-hop response headers (connection, keep-alive)
    /sse              text/event-stream, ?n=N&interval=S
    /large            streamed deterministic body, ?size=&chunk=&delay=
    /upload           incremental body reader, ?slow=S
    /slow             ?delay=S before the response starts
    /redirect         302 to /somewhere/else?x=1
    /close-midbody    promises 100000 bytes, sends 1000, drops the connection
    /pid              pid, process group and selected environment variables
    /exit             ?code=N: answers "bye" then os._exit(N)
    /fork             spawns an unwaited grandchild, ?setsid=1&devnull=1
    anything else     JSON echo of the request (method, raw path, headers,
                      body digest, ...)

Websockets are accepted on any path except /ws-reject (denied with an
HTTP 403 through the websocket.http.response extension); messages are
echoed, with a few text commands (see ``websocket_app``).
"""

import argparse
import gzip
import hashlib
import json
import os
import signal
import subprocess
import sys
import threading
import urllib.parse
from functools import partial
from urllib.parse import parse_qs

import trio
import trio.lowlevel
from hypercorn.config import Config
from hypercorn.trio import serve

MIB = 1024 * 1024
PATTERN = bytes(range(256))
GZIP_BODY = gzip.compress(b"hello gzip world\n" * 100)

# Popen objects of spawned grandchildren.  Holding them keeps Popen.__del__
# from warning about still-running children; they are never waited on.
GRANDCHILDREN = []


class ClientDisconnected(Exception):
    """The client went away before the app finished reading the request."""


def query_params(scope):
    """Return the query string as a dict of first values."""
    parsed = parse_qs(scope["query_string"].decode("latin-1"))
    return {name: values[0] for name, values in parsed.items()}


def headers_as_text(headers):
    return [[name.decode("latin-1"), value.decode("latin-1")] for name, value in headers]


async def read_body(receive):
    """Read the whole request body."""
    chunks = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise ClientDisconnected()
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def respond(send, status, headers, body=b"", *, head=False):
    """Send a complete response with a content-length header."""
    headers = list(headers) + [(b"content-length", str(len(body)).encode())]
    await send({"type": "http.response.start", "status": status, "headers": headers})
    await send({"type": "http.response.body", "body": b"" if head else body})


async def respond_json(send, data, *, head=False):
    body = json.dumps(data).encode()
    await respond(send, 200, [(b"content-type", b"application/json")], body, head=head)


async def respond_text(send, text, status=200, *, head=False):
    headers = [(b"content-type", b"text/plain")]
    await respond(send, status, headers, text.encode(), head=head)


async def stream_until_disconnect(receive, produce):
    """Run ``produce()`` but stop it as soon as the client disconnects.

    The request body must already have been read, so the only message
    left to receive is ``http.disconnect``.
    """
    async with trio.open_nursery() as nursery:

        async def watch_disconnect():
            while (await receive())["type"] != "http.disconnect":
                pass
            nursery.cancel_scope.cancel()

        nursery.start_soon(watch_disconnect)
        await produce()
        nursery.cancel_scope.cancel()


async def sse(scope, receive, send, *, head=False):
    params = query_params(scope)
    count = 0 if head else int(params.get("n", 1_000_000))
    interval = float(params.get("interval", 0.5))
    headers = [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]

    async def produce():
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        for i in range(count):
            if i:
                await trio.sleep(interval)
            event = f"data: event {i}\n\n".encode()
            await send({"type": "http.response.body", "body": event, "more_body": True})
        await send({"type": "http.response.body", "body": b""})

    await stream_until_disconnect(receive, produce)


async def large(scope, receive, send, *, head=False):
    params = query_params(scope)
    size = int(params.get("size", MIB))
    chunk_size = int(params.get("chunk", 65536))
    delay = float(params.get("delay", 0))
    # Long enough to slice any chunk out of it at any offset into PATTERN.
    source = PATTERN * (chunk_size // len(PATTERN) + 2)
    headers = [
        (b"content-type", b"application/octet-stream"),
        (b"content-length", str(size).encode()),
    ]

    async def produce():
        await send({"type": "http.response.start", "status": 200, "headers": headers})
        sent = 0
        while sent < size and not head:
            if sent and delay:
                await trio.sleep(delay)
            start = sent % len(PATTERN)
            length = min(chunk_size, size - sent)
            body = source[start : start + length]
            await send({"type": "http.response.body", "body": body, "more_body": True})
            sent += length
        await send({"type": "http.response.body", "body": b""})

    await stream_until_disconnect(receive, produce)


async def upload(scope, receive, send):
    slow = float(query_params(scope).get("slow", 0))
    digest = hashlib.sha256()
    length = chunks = 0
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body = message.get("body", b"")
        if body:
            chunks += 1
            length += len(body)
            digest.update(body)
        if not message.get("more_body", False):
            break
        if slow:
            await trio.sleep(slow)
    await respond_json(
        send, {"body_len": length, "body_sha256": digest.hexdigest(), "chunks": chunks}
    )


async def close_midbody(send):
    headers = [(b"content-type", b"application/octet-stream"), (b"content-length", b"100000")]
    await send({"type": "http.response.start", "status": 200, "headers": headers})
    await send({"type": "http.response.body", "body": b"x" * 1000, "more_body": True})
    # Returning with the body unfinished makes hypercorn drop the connection.


def exit_soon(code):
    """Terminate the whole process with ``code`` about 50 ms from now."""

    def terminate():
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)

    timer = threading.Timer(0.05, terminate)
    timer.daemon = True
    timer.start()


def fork_grandchild(params):
    stdio = subprocess.DEVNULL if params.get("devnull") == "1" else None
    child = subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        start_new_session=params.get("setsid") == "1",
        stdin=stdio,
        stdout=stdio,
        stderr=stdio,
    )
    GRANDCHILDREN.append(child)
    return child.pid


def process_info():
    env = {
        name: value
        for name, value in os.environ.items()
        if name.startswith(("JUPYTERHUB_", "TRIOPROXY_TEST_"))
    }
    return {"pid": os.getpid(), "pgid": os.getpgid(0), "env": env}


def echo_info(scope, body, prefix):
    return {
        "method": scope["method"],
        "path": scope["path"],
        "raw_path": scope["raw_path"].decode("latin-1"),
        "query_string": scope["query_string"].decode("latin-1"),
        "http_version": scope["http_version"],
        "headers": headers_as_text(scope["headers"]),
        "body_len": len(body),
        "body_sha256": hashlib.sha256(body).hexdigest(),
        "body": body[:1000].decode("latin-1"),
        "app_prefix": prefix,
    }


async def http_app(scope, receive, send, prefix):
    path = scope["path"]
    head = scope["method"] == "HEAD"

    if path == "/upload":
        await upload(scope, receive, send)
        return

    try:
        body = await read_body(receive)
    except ClientDisconnected:
        return

    params = query_params(scope)
    status_code = path.removeprefix("/status/")
    if path.startswith("/status/") and status_code.isdigit() and 200 <= int(status_code) < 600:
        status = int(status_code)
        if status in (204, 304):
            # No content-length either: these responses never have a body.
            await send({"type": "http.response.start", "status": status, "headers": []})
            await send({"type": "http.response.body", "body": b""})
        else:
            await respond_text(send, f"status {status}", status, head=head)
    elif path == "/cookies":
        headers = [
            (b"content-type", b"text/plain"),
            (b"set-cookie", b"a=1; Path=/"),
            (b"set-cookie", b"b=2; Path=/"),
            (b"set-cookie", b"c=3; Path=/; HttpOnly"),
        ]
        await respond(send, 200, headers, b"cookies", head=head)
    elif path == "/setcookie":
        # /setcookie?NAME=VALUE&...: one Set-Cookie (Path=/) per pair.
        pairs = urllib.parse.parse_qsl(scope["query_string"].decode("latin-1"))
        headers = [(b"content-type", b"text/plain")]
        headers += [(b"set-cookie", f"{k}={v}; Path=/".encode("latin-1")) for k, v in pairs]
        await respond(send, 200, headers, b"set", head=head)
    elif path == "/gzip":
        headers = [(b"content-type", b"text/plain"), (b"content-encoding", b"gzip")]
        await respond(send, 200, headers, GZIP_BODY, head=head)
    elif path == "/hopbyhop":
        headers = [
            (b"content-type", b"text/plain"),
            (b"connection", b"close, x-hop"),
            (b"x-hop", b"1"),
            (b"keep-alive", b"timeout=5"),
            (b"x-end", b"1"),
        ]
        await respond(send, 200, headers, b"ok", head=head)
    elif path == "/sse":
        await sse(scope, receive, send, head=head)
    elif path == "/large":
        await large(scope, receive, send, head=head)
    elif path == "/slow":
        await trio.sleep(float(params.get("delay", 1)))
        await respond_text(send, "slow done", head=head)
    elif path == "/redirect":
        headers = [(b"location", b"/somewhere/else?x=1")]
        await respond(send, 302, headers, head=head)
    elif path == "/close-midbody":
        await close_midbody(send)
    elif path == "/pid":
        await respond_json(send, process_info(), head=head)
    elif path == "/exit":
        await respond_text(send, "bye", head=head)
        exit_soon(int(params.get("code", 0)))
    elif path == "/fork":
        await respond_json(send, {"grandchild_pid": fork_grandchild(params)}, head=head)
    else:
        await respond_json(send, echo_info(scope, body, prefix), head=head)


def choose_subprotocol(offered):
    if "chat.v2" in offered:
        return "chat.v2"
    return offered[-1] if offered else None


async def websocket_command(scope, send, text):
    """Handle a special text command; return False if ``text`` is not one."""
    command, _, argument = text.partition(":")
    if text == "hello?":
        await send({"type": "websocket.send", "text": "hello!"})
    elif text == "headers?":
        info = {
            "headers": headers_as_text(scope["headers"]),
            "raw_path": scope["raw_path"].decode("latin-1"),
            "query_string": scope["query_string"].decode("latin-1"),
        }
        await send({"type": "websocket.send", "text": json.dumps(info)})
    elif command == "close" and argument.partition(":")[0].isdigit():
        code, _, reason = argument.partition(":")
        await send({"type": "websocket.close", "code": int(code), "reason": reason})
    elif command == "bigtext" and argument.isdigit():
        await send({"type": "websocket.send", "text": "x" * int(argument)})
    elif command == "bigbin" and argument.isdigit():
        await send({"type": "websocket.send", "bytes": b"\x01" * int(argument)})
    elif command == "flood" and argument.isdigit():
        for i in range(int(argument)):
            await send({"type": "websocket.send", "text": f"m{i}"})
            if i % 256 == 255:
                # Once the websocket is closed hypercorn's send returns at once, without a
                # checkpoint: without this the rest of the flood would freeze the app.
                await trio.lowlevel.checkpoint()
    else:
        return False
    return True


async def websocket_app(scope, receive, send):
    """Echo websocket messages back, with a few special text commands.

    ``close:CODE:REASON`` (or ``close:CODE``) closes with that code and
    reason, ``hello?`` answers ``hello!``, ``bigtext:N`` / ``bigbin:N`` send
    N 'x' characters / N 0x01 bytes, ``headers?`` answers the handshake
    headers, raw path and query string as JSON, and ``flood:N`` sends
    ``m0`` ... ``m{N-1}`` as fast as possible.  Other messages are echoed.
    """
    if (await receive())["type"] != "websocket.connect":
        return
    if scope["path"] == "/ws-reject":
        headers = [(b"content-type", b"text/plain"), (b"x-reject", b"1")]
        await send({"type": "websocket.http.response.start", "status": 403, "headers": headers})
        await send({"type": "websocket.http.response.body", "body": b"rejected by app"})
        return

    await send(
        {
            "type": "websocket.accept",
            "subprotocol": choose_subprotocol(scope["subprotocols"]),
            "headers": [(b"set-cookie", b"wscookie=v1; Path=/")],
        }
    )
    if scope["path"] == "/ws-hello-first":
        await send({"type": "websocket.send", "text": "welcome"})

    while True:
        message = await receive()
        if message["type"] == "websocket.disconnect":
            return
        text = message.get("text")
        if text is not None:
            if not await websocket_command(scope, send, text):
                await send({"type": "websocket.send", "text": text})
        else:
            await send({"type": "websocket.send", "bytes": message.get("bytes") or b""})


async def lifespan_app(receive, send):
    while True:
        message = await receive()
        if message["type"] == "lifespan.startup":
            await send({"type": "lifespan.startup.complete"})
        elif message["type"] == "lifespan.shutdown":
            await send({"type": "lifespan.shutdown.complete"})
            return


def make_app(prefix):
    async def app(scope, receive, send):
        if scope["type"] == "http":
            await http_app(scope, receive, send, prefix)
        elif scope["type"] == "websocket":
            await websocket_app(scope, receive, send)
        elif scope["type"] == "lifespan":
            await lifespan_app(receive, send)

    return app


def make_config(port, ipv6, uds=None):
    config = Config()
    config.bind = [f"unix:{uds}"] if uds else [f"127.0.0.1:{port}"] + ([f"[::1]:{port}"] if ipv6 else [])
    if hasattr(config, "include_date_header"):
        config.include_date_header = False
    if hasattr(config, "include_server_header"):
        config.include_server_header = False
    config.websocket_max_message_size = 64 * MIB
    config.keep_alive_timeout = 30
    config.graceful_timeout = 1
    return config


async def wait_for_signal(signals):
    async for signum in signals:
        print(f"echo_app got {signal.Signals(signum).name}, shutting down", flush=True)
        return


async def main(args):
    config = make_config(args.port, args.ipv6, args.uds)
    app = make_app(args.prefix)
    # Catch the signals before binding so none can slip through during startup.
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
        async with trio.open_nursery() as nursery:
            binds = await nursery.start(
                partial(serve, app, config, shutdown_trigger=partial(wait_for_signal, signals))
            )
            port = binds[0] if args.uds else binds[0].rsplit(":", 1)[1]
            print(f"echo_app listening on {port}", flush=True)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--prefix", default="")
    parser.add_argument("--ipv6", action="store_true", help="also listen on ::1")
    parser.add_argument("--uds", default=None, help="listen on this Unix socket instead of a TCP port")
    return parser.parse_args()


if __name__ == "__main__":
    trio.run(main, parse_args())
