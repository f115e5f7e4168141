"""What the report says about the machine and the software versions."""

from __future__ import annotations

import os
import platform
import re
import shutil
import subprocess
import sys
from pathlib import Path

from benchmarks.columns import JHSINGLE_BIN, ROOT


def _run(argv: list[str]) -> str:
    try:
        done = subprocess.run(argv, capture_output=True, text=True, timeout=20, cwd=ROOT)
    except (OSError, subprocess.TimeoutExpired):
        return ""
    return (done.stdout + done.stderr).strip()


def _cpu_model() -> str:
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "unknown"


def _memory() -> str:
    for line in Path("/proc/meminfo").read_text().splitlines():
        if line.startswith("MemTotal:"):
            return f"{int(line.split()[1]) / 1024 / 1024:.0f} GiB"
    return "unknown"


def load_average() -> str:
    return " ".join(f"{x:.2f}" for x in os.getloadavg())


def machine() -> list[tuple[str, str]]:
    return [
        ("CPU", f"{_cpu_model()}, {os.cpu_count()} cores"),
        ("memory", _memory()),
        ("kernel", platform.release()),
        ("OS", _os_release()),
    ]


def _os_release() -> str:
    text = Path("/etc/os-release").read_text() if Path("/etc/os-release").exists() else ""
    match = re.search(r'^PRETTY_NAME="?([^"\n]*)', text, re.M)
    return match.group(1) if match else platform.platform()


def _pip_versions(python: Path, names: list[str]) -> str:
    out = _run([str(python), "-c", "import importlib.metadata as m, sys\n"
                "for n in sys.argv[1:]:\n"
                "    try: print(n, m.version(n))\n"
                "    except m.PackageNotFoundError: pass", *names])
    return ", ".join(out.splitlines())


def versions() -> list[tuple[str, str]]:
    commit = _run(["git", "rev-parse", "--short", "HEAD"]) or "?"
    dirty = " (with uncommitted changes)" if _run(["git", "status", "--porcelain", "--", "trioproxy"]) else ""
    stack = _pip_versions(Path(sys.executable), ["trioproxy", "trio", "hypercorn", "h11", "wsproto"])
    rows = [
        ("Python (harness, trioproxy)", sys.version.split()[0]),
        ("trioproxy and its stack", f"{stack}; git {commit}{dirty}"),
    ]
    if JHSINGLE_BIN.exists():
        rows.append(("jhsingle-native-proxy and its stack", _pip_versions(JHSINGLE_BIN.parent / "python",
                                                            ["jhsingle-native-proxy", "tornado", "jupyterhub",
                                                             "simpervisor", "aiohttp"])))
    for tool, argv in (("nginx", ["nginx", "-v"]), ("wrk", ["wrk", "-v"]), ("curl", ["curl", "--version"])):
        path = shutil.which(tool) or (f"/usr/sbin/{tool}" if os.access(f"/usr/sbin/{tool}", os.X_OK) else None)
        rows.append((tool, _run([path, *argv[1:]]).splitlines()[0] if path else "not installed"))
    return rows
