"""Misbehaving child processes for trioproxy's integration tests.

Usage:
    python crash_app.py --port N --mode MODE

Modes:
    exit0          print "starting" (stdout) and "fatal: boom <b>&amp;"
                   (stderr), exit 0 after 0.2 s without ever listening
    exit1          the same, but exit with status 1
    never-ready    never listen, sleep forever
    chatty         write 1 MiB of lines to stdout and 1 MiB to stderr
                   (including one 200 KB line on each), then serve
                   "chatty ok" on 127.0.0.1:N
    ignore-term    ignore SIGTERM and serve "stubborn" on 127.0.0.1:N
    crash-after=S  serve "alive" on 127.0.0.1:N, then after S seconds write
                   "crashing now" to stderr and exit with status 3

Only the standard library is used.  SIGTERM (except in ignore-term mode)
and SIGINT kill the process immediately through the default signal action.
"""

import argparse
import os
import signal
import sys
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

CHATTY_BYTES = 1024 * 1024
LONG_LINE_BYTES = 200 * 1024
LINE_BYTES = 64


def serve_text(port, text):
    """Answer every GET and HEAD on 127.0.0.1:port with 200 ``text``; never return."""
    body = text.encode()

    class Handler(BaseHTTPRequestHandler):
        def do_HEAD(self):
            self.send_response(200)
            self.send_header("Content-Type", "text/plain")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()

        def do_GET(self):
            self.do_HEAD()
            self.wfile.write(body)

    server = ThreadingHTTPServer(("127.0.0.1", port), Handler)
    print(f"crash_app listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


def fail_early(code):
    print("starting", flush=True)
    print("fatal: boom <b>&amp;", file=sys.stderr, flush=True)
    time.sleep(0.2)
    sys.exit(code)


def chatter_lines():
    """Yield lines adding up to exactly CHATTY_BYTES.

    They are LINE_BYTES long, except one LONG_LINE_BYTES line in the middle
    that has no newline until its very end.
    """
    count = (CHATTY_BYTES - LONG_LINE_BYTES) // LINE_BYTES
    for number in range(count):
        if number == count // 2:
            yield "L" * (LONG_LINE_BYTES - 1) + "\n"
        yield f"chatty line {number:07d} ".ljust(LINE_BYTES - 1, ".") + "\n"


def write_chatter():
    """Write the chatter to stdout and to stderr, interleaved line by line."""
    for line in chatter_lines():
        sys.stdout.write(line)
        sys.stderr.write(line)
    sys.stdout.flush()
    sys.stderr.flush()


def crash_later(delay):
    def crash():
        sys.stderr.write("crashing now\n")
        sys.stderr.flush()
        sys.stdout.flush()
        os._exit(3)

    timer = threading.Timer(delay, crash)
    timer.daemon = True
    timer.start()


def parse_args():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--mode", required=True)
    return parser.parse_args()


def main():
    args = parse_args()
    # Die on SIGINT like on SIGTERM, without a KeyboardInterrupt traceback.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    mode = args.mode
    if mode == "exit0":
        fail_early(0)
    elif mode == "exit1":
        fail_early(1)
    elif mode == "never-ready":
        while True:
            time.sleep(3600)
    elif mode == "chatty":
        write_chatter()
        serve_text(args.port, "chatty ok")
    elif mode == "ignore-term":
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        serve_text(args.port, "stubborn")
    elif mode.startswith("crash-after="):
        crash_later(float(mode.removeprefix("crash-after=")))
        serve_text(args.port, "alive")
    else:
        sys.exit(f"crash_app: unknown mode {mode!r}")


if __name__ == "__main__":
    main()
