"""A websocket-only echo server on trio-websocket (not hypercorn), for close codes.

``--port N``. Echoes every message; ``close:CODE:REASON`` closes with that code.
When the client closes, prints ``ws_app closed code=CODE reason=REASON`` to
stdout, so a test can read from trioproxy's log which close code reached the app.
"""

import argparse
import sys

import trio
from trio_websocket import ConnectionClosed, serve_websocket


async def handler(request):
    offered = request.proposed_subprotocols
    ws = await request.accept(subprotocol=offered[0] if offered else None)
    try:
        while True:
            message = await ws.get_message()
            if isinstance(message, str) and message.startswith("close:"):
                _, code, reason = (message.split(":", 2) + [""])[:3]
                await ws.aclose(int(code), reason)
                return
            await ws.send_message(message)
    except ConnectionClosed as exc:
        reason = exc.reason
        print(f"ws_app closed code={reason.code if reason else None} reason={reason.reason if reason else None}",
              flush=True)


async def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    print(f"ws_app listening on {args.port}", flush=True)
    await serve_websocket(handler, "127.0.0.1", args.port, ssl_context=None, max_message_size=64 * 2**20)


if __name__ == "__main__":
    try:
        trio.run(main)
    except KeyboardInterrupt:
        sys.exit(0)
