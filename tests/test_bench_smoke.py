"""The benchmark harness itself (issue 4) runs end to end: one short repetition, direct, trioproxy and the
trio relay (the reference column, websocket scenarios only).

Loopback only, bounded by a subprocess timeout. Nothing here looks at a figure: the test checks that
every scenario ran without a harness error, every metric got a reading, and the report was written.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent


@pytest.mark.slow
def test_harness_smoke_run(tmp_path: Path) -> None:
    out, work = tmp_path / "RESULTS.md", tmp_path / "work"
    done = subprocess.run(
        [sys.executable, "-m", "benchmarks.harness", "--profile", "smoke", "--out", str(out), "--work", str(work)],
        cwd=ROOT, capture_output=True, text=True, timeout=150,
    )
    assert done.returncode == 0, done.stdout[-4000:] + done.stderr[-4000:]
    raw = json.loads(next(work.glob("runs/*/results.json")).read_text())
    assert raw["errors"] == [], raw["errors"]
    assert raw["columns"] == ["direct", "trioproxy", "trio-relay"]
    unread = [key for key in raw["metrics"] if raw["values"]["trioproxy"].get(key, [None]) == [None]]
    assert unread == []
    # The reference column has a reading for each websocket scenario it runs, and none for the others.
    relay = {key for key, values in raw["values"]["trio-relay"].items() if values != [None]}
    assert {"ws1_msgs", "ws1_cpu", "wsN_msgs", "wsbig_down_mibs", "wsbig_up_mibs"} <= relay
    assert not any(key.startswith(("get_", "up_", "sse")) for key in relay)
    report = out.read_text()
    for heading in ("SMOKE RUN", "## Targets", "## Results", "## What limits each measurement", "## Commands"):
        assert heading in report
