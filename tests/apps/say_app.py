"""Answers with the response headers its query asks for (raw ASGI on hypercorn's trio worker).

Usage:
    python say_app.py --port N

Listens on 127.0.0.1:N, prints ``say_app listening on N``. For ``tests/test_redirects.py``:
what the app sends is in the test, next to what the browser must get.

The query: ``h=Name: value`` once per header (urlencoded; repeated names are sent
repeatedly, in order), ``status=NNN`` (default 302).

* HTTP, any path: that status, those headers, body ``said``.
* Websocket ``/ws-refuse``: refused with that status and those headers (the websocket
  HTTP response extension), body ``refused``.
* Websocket, any other path: accepted with those headers; every message is echoed.
"""

import argparse
import signal
import urllib.parse
from functools import partial

import trio
from hypercorn.config import Config
from hypercorn.trio import serve


def said(scope):
    query = urllib.parse.parse_qs(scope["query_string"].decode("latin-1"), keep_blank_values=True)
    headers = []
    for item in query.get("h", []):
        name, _, value = item.partition(":")
        headers.append((name.strip().lower().encode("latin-1"), value.strip().encode("latin-1")))
    return int(query.get("status", ["302"])[0]), headers


async def app(scope, receive, send):
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            if message["type"] == "lifespan.startup":
                await send({"type": "lifespan.startup.complete"})
            elif message["type"] == "lifespan.shutdown":
                await send({"type": "lifespan.shutdown.complete"})
                return
    status, headers = said(scope)
    if scope["type"] == "http":
        await send({"type": "http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", b"4")]})
        await send({"type": "http.response.body", "body": b"said"})
        return
    if (await receive())["type"] != "websocket.connect":
        return
    if scope["path"] == "/ws-refuse":
        await send({"type": "websocket.http.response.start", "status": status,
                    "headers": [*headers, (b"content-length", b"7")]})
        await send({"type": "websocket.http.response.body", "body": b"refused"})
        return
    await send({"type": "websocket.accept", "headers": headers})
    while True:
        message = await receive()
        if message["type"] != "websocket.receive":
            return
        await send({"type": "websocket.send", "text": message.get("text"), "bytes": message.get("bytes")})


async def main(port):
    config = Config()
    config.bind = [f"127.0.0.1:{port}"]
    config.graceful_timeout = 1
    with trio.open_signal_receiver(signal.SIGTERM, signal.SIGINT) as signals:

        async def stop():
            async for _ in signals:
                return

        async with trio.open_nursery() as nursery:
            binds = await nursery.start(partial(serve, app, config, shutdown_trigger=stop))
            print(f"say_app listening on {binds[0].rsplit(':', 1)[1]}", flush=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    trio.run(main, parser.parse_args().port)
