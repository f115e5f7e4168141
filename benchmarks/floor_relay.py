"""A reference column: the least a relay written on trio can do, to set trioproxy's websocket figures against.

    python -m benchmarks.floor_relay --port PORT -- APP ARGV WITH {port}

It starts the app (as the proxies do, on a free port given as ``{port}``) and relays each accepted
TCP connection's bytes to a new connection to the app, both ways, as read: no HTTP, no websocket
framing, no prefix, no authentication, no limits, no stall bounds, no shutdown handshake. Two tasks
per connection, each waiting for readiness and then reading once and writing once, which is what
trioproxy's relay does per message after the handshakes. Whatever trioproxy costs beyond this
column is trioproxy's; what this column costs beyond the direct one is trio's, the kernel's (two
loopback hops and their wake-ups) and the interpreter's.

Not for anything but the benchmark: it trusts its peers completely.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys

import trio

HOST = "127.0.0.1"
#: Read size per readiness, as trioproxy's websocket relay reads (settings.WS_APP_RECEIVE_BYTES).
READ_BYTES = 64 * 1024
#: How long the app may take to open its port.
APP_START_TIMEOUT_S = 60.0


async def _pump(src: trio.socket.SocketType, dst: trio.socket.SocketType) -> None:
    """``src``'s bytes to ``dst`` until EOF or an error; then ``dst``'s write side is shut."""
    try:
        while True:
            await trio.lowlevel.wait_readable(src)
            try:
                data = os.read(src.fileno(), READ_BYTES)
            except BlockingIOError:
                continue
            if not data:
                break
            view = memoryview(data)
            while view:
                try:
                    view = view[os.write(dst.fileno(), view):]
                except BlockingIOError:
                    await trio.lowlevel.wait_writable(dst)
    except OSError:
        pass
    try:
        dst.shutdown(socket.SHUT_WR)
    except OSError:
        pass


async def _connection(client: trio.socket.SocketType, app_port: int) -> None:
    with client:
        app = trio.socket.socket()
        with app:
            try:
                await app.connect((HOST, app_port))
            except OSError:
                return
            for sock in (client, app):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            async with trio.open_nursery() as nursery:
                nursery.start_soon(_pump, client, app)
                nursery.start_soon(_pump, app, client)


async def _wait_for_port(port: int, app: subprocess.Popen[bytes]) -> None:
    with trio.fail_after(APP_START_TIMEOUT_S):
        while True:
            if app.poll() is not None:
                raise SystemExit(f"floor_relay: the app exited with {app.returncode}")
            try:
                stream = await trio.open_tcp_stream(HOST, port)
            except OSError:
                await trio.sleep(0.02)
                continue
            await stream.aclose()
            return


async def _serve(port: int, app_port: int, app: subprocess.Popen[bytes]) -> None:
    await _wait_for_port(app_port, app)
    listener = trio.socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    await listener.bind((HOST, port))
    listener.listen(1024)
    async with trio.open_nursery() as nursery:
        with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:
            nursery.start_soon(_accept, listener, app_port, nursery)
            async for _ in signals:
                nursery.cancel_scope.cancel()
                break


async def _accept(listener: trio.socket.SocketType, app_port: int, nursery: trio.Nursery) -> None:
    while True:
        client, _ = await listener.accept()
        nursery.start_soon(_connection, client, app_port)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind((HOST, 0))
        return int(s.getsockname()[1])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m benchmarks.floor_relay", description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("app", nargs=argparse.REMAINDER, help="-- then the app's command, with {port}")
    args = parser.parse_args(argv)
    command = args.app[1:] if args.app[:1] == ["--"] else args.app
    if not command:
        parser.error("the app's command is missing (after --)")
    app_port = _free_port()
    app = subprocess.Popen([part.replace("{port}", str(app_port)) for part in command])
    try:
        trio.run(_serve, args.port, app_port, app)
    finally:
        app.terminate()
        try:
            app.wait(timeout=5)
        except subprocess.TimeoutExpired:
            app.kill()
            app.wait(timeout=5)
    return 0


if __name__ == "__main__":
    sys.exit(main())
