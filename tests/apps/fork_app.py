"""Test app that leaves grandchild processes behind.

Usage:
    python fork_app.py --port N --pidfile PATH [--devnull]

At startup it spawns two grandchildren that just sleep for 600 s and are
never waited on:

* one in the app's own process group (cleaned up by a process-group kill),
* one started with start_new_session=True, i.e. in a new session and
  process group, escaping a process-group kill.

Their pids are written as JSON to PATH (atomically: temporary file, then
rename):

    {"pid": ..., "pgid": ..., "grandchild_pid": ..., "session_grandchild_pid": ...}

The grandchildren inherit the app's stdin/stdout/stderr unless --devnull is
given.  Then it serves GET / (and HEAD) with 200 "fork app" on 127.0.0.1:N.
Only the standard library is used; SIGTERM and SIGINT kill the app through
the default signal action (the grandchildren are not signalled).
"""

import argparse
import json
import os
import signal
import subprocess
import sys
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

BODY = b"fork app"


class Handler(BaseHTTPRequestHandler):
    def do_HEAD(self):
        if self.path != "/":
            self.send_error(404)
            return
        self.send_response(200)
        self.send_header("Content-Type", "text/plain")
        self.send_header("Content-Length", str(len(BODY)))
        self.end_headers()

    def do_GET(self):
        self.do_HEAD()
        if self.path == "/":
            self.wfile.write(BODY)


def spawn_sleeper(new_session, devnull):
    stdio = subprocess.DEVNULL if devnull else None
    return subprocess.Popen(
        [sys.executable, "-c", "import time; time.sleep(600)"],
        start_new_session=new_session,
        stdin=stdio,
        stdout=stdio,
        stderr=stdio,
    )


def write_atomically(path, data):
    temporary = f"{path}.tmp.{os.getpid()}"
    with open(temporary, "w") as file:
        json.dump(data, file)
    os.replace(temporary, path)


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--pidfile", required=True)
    parser.add_argument(
        "--devnull", action="store_true", help="give the grandchildren /dev/null as stdio"
    )
    return parser.parse_args()


def main():
    args = parse_args()
    # Die on SIGINT like on SIGTERM, without a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    # The Popen objects stay referenced until exit, so no "still running"
    # warning is emitted; they are never waited on.
    grandchild = spawn_sleeper(new_session=False, devnull=args.devnull)
    session_grandchild = spawn_sleeper(new_session=True, devnull=args.devnull)
    write_atomically(
        args.pidfile,
        {
            "pid": os.getpid(),
            "pgid": os.getpgid(0),
            "grandchild_pid": grandchild.pid,
            "session_grandchild_pid": session_grandchild.pid,
        },
    )
    server = ThreadingHTTPServer(("127.0.0.1", args.port), Handler)
    print(f"fork_app listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
