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

from ..errors import HubUnavailable
from ..metrics import Metrics
from ..settings import ACTIVITY_JITTER
from .api import HubAPI

if TYPE_CHECKING:
    from ..settings import ActivitySettings, HubSettings

logger = logging.getLogger("trioproxy.hub")



class ActivityTracker:
    """The wall-clock time of the last real traffic. Pure."""

    def __init__(self) -> None:
        self.last: float | None = None

    def touch(self) -> None:
        self.last = time.time()


def isoformat(ts: float) -> str:
    """JupyterHub's timestamp format: UTC ISO 8601 with microseconds and a Z."""
    return datetime.datetime.fromtimestamp(ts, datetime.UTC).strftime("%Y-%m-%dT%H:%M:%S.%fZ")


def activity_body(server_name: str, ts: float) -> dict[str, object]:
    stamp = isoformat(ts)
    return {"servers": {server_name: {"last_activity": stamp}}, "last_activity": stamp}


async def report_activity(
    tracker: ActivityTracker, activity: ActivitySettings, hub: HubSettings, api: HubAPI, metrics: Metrics | None = None
) -> None:
    """Report activity to the Hub for ever (cancel to stop). Never raises for Hub trouble."""
    metrics = metrics or Metrics()
    if activity.interval_s <= 0:
        logger.info("activity reports are off (--last-activity-interval 0)")
        return
    if not hub.activity_url or not hub.api_token:
        logger.info("activity reports are off: JUPYTERHUB_ACTIVITY_URL or JUPYTERHUB_API_TOKEN is not set")
        return
    await trio.sleep(min(activity.first_report_s, activity.interval_s))
    sent: float | None = None
    refused = False
    while True:
        ts = time.time() if activity.force_alive else tracker.last
        if ts is not None and ts != sent:
            outcome = await _post_with_backoff(api, activity, hub, ts, metrics)
            if outcome is None:
                sent = ts
                if refused:
                    logger.info("the Hub accepts activity reports again")
                refused = False
            else:
                if not refused:
                    logger.error("the Hub refused the activity report (%s); check the server's token and its "
                                 "users:activity scope. Trying again every interval, quietly.", outcome)
                refused = True
        await trio.sleep(activity.interval_s * random.uniform(1 - ACTIVITY_JITTER, 1 + ACTIVITY_JITTER))


async def _post_with_backoff(
    api: HubAPI, activity: ActivitySettings, hub: HubSettings, ts: float, metrics: Metrics
) -> str | None:
    """Post one report, retrying with backoff while the Hub is down or failing.

    Returns None once the Hub took it, or the Hub's reason when it refused (4xx).
    """
    wait = activity.backoff_first_s
    while True:
        try:
            resp = await api.post_activity(activity_body(hub.server_name, ts))
        except HubUnavailable as exc:
            metrics.activity_reports["failed"] += 1
            logger.warning("activity report failed (%s); retrying in %.0f s", exc, wait)
        else:
            if resp.status_code < 400:
                metrics.activity_reports["ok"] += 1
                logger.debug("reported activity %s", isoformat(ts))
                return None
            metrics.activity_reports["refused"] += 1
            return f"{resp.status_code} {resp.text[:200]}"
        await trio.sleep(wait)
        wait = min(wait * 2, activity.backoff_max_s)
