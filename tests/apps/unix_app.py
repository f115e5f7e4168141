"""A stdlib HTTP app on a Unix socket, bound as plain servers do it (no removal of an old socket).

Usage:
    python unix_app.py --uds PATH

Binds PATH (a socket left there by an earlier run makes the bind fail with
EADDRINUSE), makes it mode 0666 as uvicorn does (so only the directory it is
in keeps other users out), prints ``unix_app listening on PATH`` and answers
every GET with JSON ``pid`` and ``path``; ``GET /exit`` answers ``bye`` and
exits 3. SIGTERM ends it at once.
"""

import argparse
import http.server
import json
import os
import socketserver
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def address_string(self):
        return "unix"  # an AF_UNIX peer has no address

    def do_GET(self):
        body = b"bye" if self.path == "/exit" else json.dumps({"pid": os.getpid(), "path": self.path}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)
        self.wfile.flush()
        if self.path == "/exit":
            threading.Timer(0.05, os._exit, (3,)).start()


class Server(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    daemon_threads = True


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--uds", required=True)
    args = parser.parse_args()
    with Server(args.uds, Handler) as server:
        os.chmod(args.uds, 0o666)
        print(f"unix_app listening on {args.uds}", flush=True)
        server.serve_forever()


if __name__ == "__main__":
    main()
