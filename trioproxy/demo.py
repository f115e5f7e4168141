"""A small demo app for ``make demo``: a page, a live event stream and a websocket echo.

Run by trioproxy as the child: ``python -m trioproxy.demo --port {port}``. It
uses only what trioproxy already depends on (hypercorn, trio).
"""

from __future__ import annotations

import argparse
import datetime
import html
import json

import trio
from hypercorn.config import Config
from hypercorn.trio import serve

PAGE = """<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8"><title>trioproxy demo</title>
<style>body{font-family:system-ui,sans-serif;max-width:50rem;margin:2rem auto;padding:0 1rem}
pre{background:#f4f4f4;padding:1rem;white-space:pre-wrap}</style></head>
<body>
<h1>trioproxy demo</h1>
<p>This page comes from a child app behind trioproxy. The path the app saw: <code>%(path)s</code></p>
<h2>Live events (server-sent, streamed unbuffered)</h2>
<pre id="clock">waiting…</pre>
<h2>Websocket echo</h2>
<input id="msg" value="hello"> <button id="send">send</button>
<pre id="echo"></pre>
<h2>Headers the app received</h2>
<pre>%(headers)s</pre>
<script>
const base = location.pathname.replace(/[^/]*$/, "");
const es = new EventSource(base + "events");
es.onmessage = (e) => { document.getElementById("clock").textContent = e.data; };
const ws = new WebSocket((location.protocol === "https:" ? "wss://" : "ws://") + location.host + base + "ws");
ws.onmessage = (e) => { document.getElementById("echo").textContent += e.data + "\\n"; };
document.getElementById("send").onclick = () => ws.send(document.getElementById("msg").value);
</script>
</body></html>
"""


async def app(scope, receive, send):  # type: ignore[no-untyped-def]
    if scope["type"] == "lifespan":
        while True:
            message = await receive()
            await send({"type": message["type"] + ".complete"})
            if message["type"] == "lifespan.shutdown":
                return
    if scope["type"] == "websocket":
        await receive()
        await send({"type": "websocket.accept"})
        while True:
            message = await receive()
            if message["type"] == "websocket.disconnect":
                return
            await send(
                {"type": "websocket.send", "text": "echo: " + (message.get("text") or repr(message.get("bytes")))}
            )
    if scope["path"].endswith("/events"):
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/event-stream"), (b"cache-control", b"no-cache")]})
        for _ in range(3600):
            now = datetime.datetime.now().isoformat(timespec="seconds")
            await send(
                {"type": "http.response.body", "body": f"data: server time {now}\n\n".encode(), "more_body": True}
            )
            await trio.sleep(1)
        await send({"type": "http.response.body", "body": b""})
        return
    headers = "\n".join(f"{k.decode()}: {v.decode('latin-1')}" for k, v in scope["headers"])
    body = PAGE % {"path": html.escape(scope["raw_path"].decode("latin-1")), "headers": html.escape(headers)}
    data = body.encode()
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"text/html; charset=utf-8"),
                            (b"content-length", str(len(data)).encode())]})
    await send({"type": "http.response.body", "body": data})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    config = Config()
    config.bind = [f"127.0.0.1:{args.port}"]
    config.accesslog = None
    print(json.dumps({"demo": "listening", "port": args.port}), flush=True)
    try:
        trio.run(serve, app, config)
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
