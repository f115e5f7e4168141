"""Test app that looks at its parent (trioproxy) the way a hostile app of the same user would.

Usage:
    python peek_app.py --port N

Standard library only. Listens on 127.0.0.1:N, prints ``peek_app listening
on N`` once bound. Every GET answers 200 JSON:

* ``pid``, ``ppid``, ``uid``;
* ``env_names``: the sorted names of its own environment variables;
* ``parent_environ``: reading ``/proc/<ppid>/environ``: ``"read"`` or the
  exception's class name (``PermissionError`` when trioproxy is not dumpable);
  ``parent_environ_names``: the variable names found there when it was read
  (names only: the values are never sent);
* ``own_environ``: the same for ``/proc/self/environ`` (the app's own);
* ``parent_stat``: reading ``/proc/<ppid>/stat`` (world-readable either way).

``GET /orphan`` first double-forks a process that exits at once, so that an
orphan is re-parented to trioproxy (a subreaper) and must be reaped by it;
the answer adds ``orphan_pid``. SIGTERM kills it at once (default action).
"""

import argparse
import http.server
import json
import os
import subprocess
import sys


def _try_read(path):
    try:
        with open(path, "rb") as f:
            return "read", f.read()
    except OSError as exc:
        return type(exc).__name__, b""


def _orphan():
    """Start a child that starts a grandchild and exits: the grandchild is re-parented to trioproxy."""
    code = ("import subprocess, sys; "
            "p = subprocess.Popen([sys.executable, '-c', 'import time; time.sleep(0.3)']); print(p.pid)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=10, check=True)
    return int(out.stdout.strip())


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        info = {"pid": os.getpid(), "ppid": os.getppid(), "uid": os.getuid(), "env_names": sorted(os.environ)}
        if self.path == "/orphan":
            info["orphan_pid"] = _orphan()
        outcome, data = _try_read(f"/proc/{os.getppid()}/environ")
        info["parent_environ"] = outcome
        info["parent_environ_names"] = sorted(
            e.split(b"=", 1)[0].decode("latin-1") for e in data.split(b"\0") if b"=" in e
        )
        info["own_environ"] = _try_read("/proc/self/environ")[0]
        info["parent_stat"] = _try_read(f"/proc/{os.getppid()}/stat")[0]
        body = json.dumps(info).encode()
        self.send_response(200)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format, *args):
        pass


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    args = parser.parse_args()
    server = http.server.ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"peek_app listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
