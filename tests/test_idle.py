"""The keep-alive timer that replaces hypercorn's behaves like it: restart starts over, stop stops."""

from __future__ import annotations

from types import SimpleNamespace

import trio

from trioproxy.server.idle import IdleTimer


async def test_restart_starts_over_and_stop_leaves_nothing_running(autojump_clock):
    fired: list[float] = []

    async def action() -> None:
        await trio.sleep(10)
        fired.append(trio.current_time())

    timer = IdleTimer()
    with trio.fail_after(1000):
        async with trio.open_nursery() as nursery:
            group = SimpleNamespace(spawn=nursery.start_soon)  # hypercorn's TaskGroup.spawn
            t0 = trio.current_time()
            await timer.restart(group, action)
            await trio.sleep(6)
            await timer.restart(group, action)  # a request came and went: the wait starts over
            await trio.sleep(6)
            assert fired == [] and len(nursery.child_tasks) == 1
            await timer.stop()  # a request is in flight (or a websocket): no timeout, no task
            await trio.sleep(30)
            assert fired == [] and len(nursery.child_tasks) == 0
            await timer.restart(group, action)
            await trio.sleep(11)
            assert fired == [t0 + 12 + 30 + 10]
            assert len(nursery.child_tasks) == 0
