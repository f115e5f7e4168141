"""Activity: when traffic last passed, and the periodic report to the Hub.

:class:`ActivityTracker` is touched on every proxied request and websocket
message (a float assignment, no I/O). :func:`report_activity` posts to
``$JUPYTERHUB_ACTIVITY_URL`` every ``--last-activity-interval`` seconds (with
jitter), for the default server too (its name is the empty string).
"""

from __future__ import annotations

import datetime
import logging
import random
import time
from typing import TYPE_CHECKING

import trio

if TYPE_CHECKING:
    import httpx

    from ._settings import ActivitySettings, HubSettings

logger = logging.getLogger(__name__)

#: Jitter on the interval, as a fraction (the Hub's own singleuser uses 10 %).
JITTER = 0.1


class ActivityTracker:
    """The wall-clock time of the last real traffic. Pure."""

    def __init__(self) -> None:
        self.last: float | None = None

    def touch(self) -> None:
        self.last = time.time()


def isoformat(ts: float) -> str:
    """JupyterHub's timestamp format: UTC ISO 8601 with microseconds and a Z."""
    return datetime.datetime.fromtimestamp(ts, datetime.timezone.utc).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def activity_body(server_name: str, ts: float) -> dict[str, object]:
    stamp = isoformat(ts)
    return {"servers": {server_name: {"last_activity": stamp}}, "last_activity": stamp}


async def report_activity(
    tracker: ActivityTracker,
    activity: ActivitySettings,
    hub: HubSettings,
    client: httpx.AsyncClient,
) -> None:
    """Report activity to the Hub for ever (cancel to stop). Never raises for Hub trouble."""
    if activity.interval_s <= 0:
        logger.info("activity reports are off (--last-activity-interval 0)")
        return
    if not hub.activity_url or not hub.api_token:
        logger.info("activity reports are off: JUPYTERHUB_ACTIVITY_URL or JUPYTERHUB_API_TOKEN is not set")
        return
    await trio.sleep(min(activity.first_report_s, activity.interval_s))
    sent: float | None = None
    while True:
        ts = time.time() if activity.force_alive else tracker.last
        if ts is not None and ts != sent:
            if await _post_with_backoff(client, activity, hub, ts):
                sent = ts
        await trio.sleep(activity.interval_s * random.uniform(1 - JITTER, 1 + JITTER))


async def _post_with_backoff(
    client: httpx.AsyncClient, activity: ActivitySettings, hub: HubSettings, ts: float
) -> bool:
    import httpx

    wait = activity.backoff_first_s
    while True:
        try:
            with trio.fail_after(activity.report_timeout_s):
                resp = await client.post(
                    hub.activity_url,
                    json=activity_body(hub.server_name, ts),
                    headers={"Authorization": f"token {hub.api_token}"},
                )
        except (httpx.HTTPError, trio.TooSlowError, OSError) as exc:
            problem = f"{type(exc).__name__}: {exc}"
        else:
            if resp.status_code < 400:
                logger.debug("reported activity %s", isoformat(ts))
                return True
            if resp.status_code < 500:
                logger.error(
                    "the Hub refused the activity report (%d %s); check the server's token scopes",
                    resp.status_code,
                    resp.text[:200],
                )
                return False
            problem = f"HTTP {resp.status_code}"
        logger.warning("activity report failed (%s); retrying in %.0f s", problem, wait)
        await trio.sleep(wait)
        wait = min(wait * 2, activity.backoff_max_s)
