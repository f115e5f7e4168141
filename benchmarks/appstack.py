"""The app every column proxies to: nginx in front of the Python upstream, started as one command.

    python -m benchmarks.appstack --port {port} --data DIR --work DIR [--core N] [--no-nginx]

Each proxy under test starts this as its app (``{port}`` is the proxy's to choose, as in real use:
jhsingle-native-proxy refuses a ``--destport`` that is already bound), and the harness starts one
more for the direct column, so every column talks to an identical, separate app.

It moves itself and its children to ``--core`` (the load generators' core) first, so the proxy's
core does nothing but proxy. It starts the Python upstream, waits until it accepts connections, then
nginx on ``--port`` (so the port opens only when everything behind it answers). Without nginx (or
with ``--no-nginx``) the Python upstream itself listens on ``--port``. SIGTERM or SIGINT stops both
children and exits; so does either child dying.
"""

from __future__ import annotations

import argparse
import os
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

from benchmarks import nginx

#: How long the Python upstream may take to accept connections.
UPSTREAM_START_S = 20.0
#: Grace before SIGKILL when stopping the children.
STOP_GRACE_S = 3.0


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _ipv6() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as s:
            s.bind(("::1", 0))
        return True
    except OSError:
        return False


def _wait_accepting(port: int, proc: subprocess.Popen[bytes]) -> None:
    deadline = time.monotonic() + UPSTREAM_START_S
    while time.monotonic() < deadline and proc.poll() is None:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=1).close()
            return
        except OSError:
            time.sleep(0.005)
    raise SystemExit(f"appstack: the Python upstream did not listen on {port}")


def _stop(children: list[subprocess.Popen[bytes]]) -> None:
    for child in children:
        if child.poll() is None:
            child.terminate()
    deadline = time.monotonic() + STOP_GRACE_S
    for child in children:
        try:
            child.wait(max(0.0, deadline - time.monotonic()))
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--work", type=Path, required=True, help="a folder for nginx's files")
    parser.add_argument("--core", type=int, default=None, help="CPU core for this stack")
    parser.add_argument("--no-nginx", action="store_true")
    args = parser.parse_args()
    if args.core is not None:
        os.sched_setaffinity(0, {args.core})
    nginx_bin = None if args.no_nginx else nginx.binary()
    ipv6 = _ipv6()
    python_port = _free_port() if nginx_bin else args.port
    upstream_cmd = [sys.executable, "-m", "benchmarks.upstream", "--port", str(python_port), "--data", str(args.data)]
    if ipv6 and not nginx_bin:
        upstream_cmd.append("--ipv6")

    stop = False

    def on_signal(signum: int, frame: object) -> None:
        nonlocal stop
        stop = True

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    children = [subprocess.Popen(upstream_cmd, stdout=subprocess.DEVNULL)]
    try:
        if nginx_bin:
            _wait_accepting(python_port, children[0])
            root = args.work / f"nginx-{args.port}"
            conf = nginx.write_conf(root, port=args.port, python_port=python_port, data=args.data, ipv6=ipv6)
            children.append(subprocess.Popen(nginx.command(nginx_bin, root, conf)))
        while not stop and all(c.poll() is None for c in children):
            time.sleep(0.05)
    finally:
        _stop(children)


if __name__ == "__main__":
    main()
