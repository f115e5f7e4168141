"""After a websocket's accept the bridge hands the relaying to the client's connection
(trioproxy.server.ws_stream ProxyWSStream.hand_off): hypercorn's ASGI app task ends, and the
relay runs in a task of the connection's own nursery, under the server's."""

from __future__ import annotations

from collections.abc import Iterator

import trio
from hypercorn.trio.task_group import _handle as hypercorn_app_task
from trio_websocket import open_websocket_url

from trioproxy.server.ws_stream import _run_in_order

from .conftest import app_cmd, serve_proxy


def _tasks(task: trio.lowlevel.Task) -> Iterator[trio.lowlevel.Task]:
    yield task
    for nursery in task.child_nurseries:
        for child in nursery.child_tasks:
            yield from _tasks(child)


async def test_an_open_websocket_keeps_no_asgi_app_task_and_its_relay_is_the_connections():
    with trio.fail_after(30):
        async with serve_proxy(app_cmd("ws_app.py")) as p:
            await p.wait_ready()
            async with open_websocket_url(p.ws_url + "/") as ws:
                await ws.send_message("ping")
                assert await ws.get_message() == "ping"
                await trio.testing.wait_all_tasks_blocked()
                tasks = list(_tasks(trio.lowlevel.current_root_task()))
                assert not [t for t in tasks if t.coro.cr_code is hypercorn_app_task.__code__]
                (relaying,) = [t for t in tasks if t.coro.cr_code is _run_in_order.__code__]
                # Owned by the connection's nursery: its task is the server's per-connection handler.
                owner = relaying.parent_nursery.parent_task if relaying.parent_nursery is not None else None
                assert owner is not None and owner.name == "trioproxy.server.serve.serve.<locals>.handle"
                # Still relayed both ways, from that task.
                await ws.send_message(b"\x00" * 70_000)
                assert await ws.get_message() == b"\x00" * 70_000
            await p.wait_log("ws_app closed code=1000")
