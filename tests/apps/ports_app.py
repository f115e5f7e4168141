"""A stdlib app that listens on several TCP ports (of its own choosing, not told {port}).

Usage:
    python ports_app.py --http N [--http M ...] [--silent K ...]

Every ``--http`` port answers each GET with JSON ``port`` (the port asked);
every ``--silent`` port accepts connections and never answers (like a
ZeroMQ socket of a kernel). Prints ``ports_app listening`` once all are bound.
SIGTERM ends it at once.
"""

import argparse
import http.server
import json
import socket
import threading


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        body = json.dumps({"port": self.server.server_address[1]}).encode()
        self.send_response(200)
        self.send_header("content-length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


def silent(listener):
    held = []
    while True:
        conn, _ = listener.accept()
        held.append(conn)  # never answered, never closed


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--http", type=int, action="append", default=[])
    parser.add_argument("--silent", type=int, action="append", default=[])
    args = parser.parse_args()
    servers = [http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler) for port in args.http]
    for port in args.silent:
        threading.Thread(target=silent, args=(socket.create_server(("127.0.0.1", port)),), daemon=True).start()
    for server in servers:
        threading.Thread(target=server.serve_forever, daemon=True).start()
    print("ports_app listening", flush=True)
    threading.Event().wait()


if __name__ == "__main__":
    main()
