"""Start and stop: start to the first 200, and SIGTERM with websockets open.

The start is measured by the harness when it starts a column (the process is spawned, then
``GET prefix/`` is polled every 5 ms until it answers 200; the app stack is the proxy's app, so
this includes starting it, as the direct column's figure shows). The SIGTERM scenario ends the
column: it is the last one of a repetition.
"""

from __future__ import annotations

import asyncio
import signal
import time
from collections import Counter
from typing import Any

from benchmarks import clients, wsframe
from benchmarks.columns import Target
from benchmarks.profiles import Profile
from benchmarks.scenarios import Context, Metric

#: How long the proxy may take to close the websockets and exit after SIGTERM.
SIGTERM_WAIT_S = 15.0


class Startup:
    name = "startup"

    def metrics(self, profile: Profile) -> list[Metric]:
        return [Metric("startup", "start to first 200 (app included)", "ms", False)]

    async def run(self, ctx: Context, target: Target) -> dict[str, Any]:
        return {"startup": target.startup_ms}


async def _await_close(ws: clients.WebSocket, since: float) -> tuple[str, float]:
    """(what ended the websocket: a close code, or how the connection ended; ms after ``since``)."""
    try:
        while True:
            opcode, payload = await wsframe.read_message(ws.reader)
            if opcode == wsframe.OP_CLOSE:
                return str(wsframe.close_code(payload)), (time.monotonic() - since) * 1e3
    except asyncio.IncompleteReadError:
        return "none (EOF)", (time.monotonic() - since) * 1e3
    except ConnectionError:
        return "none (reset)", (time.monotonic() - since) * 1e3


class Sigterm:
    name = "sigterm"

    def metrics(self, profile: Profile) -> list[Metric]:
        n = profile.sigterm_ws
        return [
            Metric("term_close", f"SIGTERM to the last of {n} open websockets closed", "ms", False),
            Metric("term_code", "close code the websockets got", "", None),
            Metric("term_exit", "SIGTERM to the proxy's exit", "ms", False),
        ]

    async def run(self, ctx: Context, target: Target) -> dict[str, Any]:
        if not target.proxy:
            return {}
        sockets = await clients.ws_open(target.port, target.path("/ws"), ctx.profile.sigterm_ws)
        try:
            await clients.ws_echo(sockets, msgs=1, size=ctx.profile.ws_size, timeout=10)
            since = time.monotonic()
            target.proxy.send(signal.SIGTERM)
            closes = await asyncio.wait_for(asyncio.gather(*(_await_close(ws, since) for ws in sockets)),
                                            SIGTERM_WAIT_S)
            code = await target.proxy.wait_exit(SIGTERM_WAIT_S)
            exit_ms = (time.monotonic() - since) * 1e3 if code is not None else None
        finally:
            for ws in sockets:
                ws.abort()
        codes = Counter(c for c, _ in closes)
        return {"term_close": max(t for _, t in closes), "term_code": ", ".join(sorted(codes)),
                "term_exit": exit_ms if exit_ms is not None else f"still running after {SIGTERM_WAIT_S:.0f} s"}
