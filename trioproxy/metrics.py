"""Counters for Prometheus, and their text exposition format (version 0.0.4).

Updating a counter is an integer addition on the request's own task (no
lock, no I/O: one trio thread). ``render`` writes the text a scraper reads.
Names follow Prometheus conventions (``_total`` for counters, base units).
"""

from __future__ import annotations

import bisect
from collections import Counter
from collections.abc import Callable, Iterable

#: Upper bounds of the upstream latency histogram (time to the app's response head), in seconds.
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


class Metrics:
    def __init__(self) -> None:
        self.requests: Counter[str] = Counter()  # by status class: "2xx", "5xx", ...
        self.bytes_received = 0  # request bodies and websocket messages from clients
        self.bytes_sent = 0  # response bodies and websocket messages to clients
        self.websockets_open = 0
        self.websockets_total = 0
        self.latency_counts = [0] * (len(LATENCY_BUCKETS) + 1)
        self.latency_sum = 0.0
        self.app_restarts = 0
        self.activity_reports: Counter[str] = Counter()  # "ok", "refused", "failed"
        self.logins: Counter[str] = Counter()  # "ok", "denied", "failed"

    def request_done(self, status: int) -> None:
        self.requests[f"{status // 100}xx"] += 1

    def upstream_latency(self, seconds: float) -> None:
        self.latency_counts[bisect.bisect_left(LATENCY_BUCKETS, seconds)] += 1
        self.latency_sum += seconds


def _line(name: str, value: float, labels: dict[str, str] | None = None) -> str:
    if labels:
        inner = ",".join(f'{k}="{v}"' for k, v in labels.items())
        return f"{name}{{{inner}}} {value:g}"
    return f"{name} {value:g}"


def _family(name: str, kind: str, help_text: str, lines: Iterable[str]) -> list[str]:
    return [f"# HELP {name} {help_text}", f"# TYPE {name} {kind}", *lines]


def render(m: Metrics, *, app_ready: Callable[[], bool], app_up: Callable[[], bool]) -> str:
    out: list[str] = []
    out += _family("trioproxy_http_requests_total", "counter", "Proxied HTTP requests answered, by status class.",
                   [_line("trioproxy_http_requests_total", m.requests[c], {"code": c})
                    for c in ("1xx", "2xx", "3xx", "4xx", "5xx")])
    out += _family("trioproxy_received_bytes_total", "counter",
                   "Bytes of request bodies and websocket messages from clients.",
                   [_line("trioproxy_received_bytes_total", m.bytes_received)])
    out += _family("trioproxy_sent_bytes_total", "counter",
                   "Bytes of response bodies and websocket messages to clients.",
                   [_line("trioproxy_sent_bytes_total", m.bytes_sent)])
    out += _family("trioproxy_websockets_open", "gauge", "Websockets open now.",
                   [_line("trioproxy_websockets_open", m.websockets_open)])
    out += _family("trioproxy_websockets_total", "counter", "Websockets opened.",
                   [_line("trioproxy_websockets_total", m.websockets_total)])
    cumulative, lines = 0, []
    for bound, count in zip((*LATENCY_BUCKETS, float("inf")), m.latency_counts, strict=True):
        cumulative += count
        lines.append(_line("trioproxy_upstream_latency_seconds_bucket", cumulative,
                           {"le": "+Inf" if bound == float("inf") else f"{bound:g}"}))
    lines.append(_line("trioproxy_upstream_latency_seconds_sum", m.latency_sum))
    lines.append(_line("trioproxy_upstream_latency_seconds_count", cumulative))
    out += _family("trioproxy_upstream_latency_seconds", "histogram",
                   "Time from sending a request to the app to its response head.", lines)
    out += _family("trioproxy_app_restarts_total", "counter", "Times the app was restarted.",
                   [_line("trioproxy_app_restarts_total", m.app_restarts)])
    out += _family("trioproxy_app_ready", "gauge", "1 when the app answers, else 0.",
                   [_line("trioproxy_app_ready", 1 if app_ready() else 0)])
    out += _family("trioproxy_app_up", "gauge", "1 while the app's process runs, else 0.",
                   [_line("trioproxy_app_up", 1 if app_up() else 0)])
    out += _family("trioproxy_activity_reports_total", "counter", "Activity reports to the Hub, by outcome.",
                   [_line("trioproxy_activity_reports_total", m.activity_reports[o], {"outcome": o})
                    for o in ("ok", "refused", "failed")])
    out += _family("trioproxy_logins_total", "counter", "Logins through the Hub, by outcome.",
                   [_line("trioproxy_logins_total", m.logins[o], {"outcome": o}) for o in ("ok", "denied", "failed")])
    return "\n".join(out) + "\n"
