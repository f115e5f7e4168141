"""A strictly conformant websocket echo server (the ``websockets`` library), for protocol cases.

``--port N [--max-size BYTES]``. Echoes every message on any path; ``websockets`` checks all of
RFC 6455 itself (UTF-8 of text and close reasons: 1007; close codes and close
payloads: 1002), so a test can compare what a client sees from it directly
with what it sees through trioproxy, which leaves those checks to the app.
Prints ``strict_ws_app listening on PORT``; ends on SIGTERM.
"""

import argparse
import asyncio
import signal

from websockets.asyncio.server import serve
from websockets.exceptions import ConnectionClosed


async def echo(ws):
    try:
        async for message in ws:
            await ws.send(message)
    except ConnectionClosed:
        pass  # websockets has answered the breach (its close frame says how)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-size", type=int, default=64 * 2**20)
    args = parser.parse_args()
    stop = asyncio.get_running_loop().create_future()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set_result, None)
    async with serve(echo, "127.0.0.1", args.port, compression=None, max_size=args.max_size, ping_interval=None):
        print(f"strict_ws_app listening on {args.port}", flush=True)
        await stop


if __name__ == "__main__":
    asyncio.run(main())
