"""Tells where it runs: cwd, the files there, and a few variables, as JSON on every GET.

Usage:
    python info_app.py --port N

Standard library only. Listens on 127.0.0.1:N, prints ``info_app listening
on N`` once bound. GET (any path) answers 200 JSON: ``cwd``, ``files`` (the
sorted names in the cwd) and ``env`` (the variables named CONDA_*, GIT_*,
TRIOPROXY_TEST_*, and PATH). SIGTERM kills it at once (default action).
Used by tests/test_bootstrap.py (git checkout as cwd, conda environment).
"""

import argparse
import http.server
import json
import os


class Handler(http.server.BaseHTTPRequestHandler):
    def do_GET(self):
        env = {
            k: v for k, v in os.environ.items() if k.startswith(("CONDA_", "GIT_", "TRIOPROXY_TEST_")) or k == "PATH"
        }
        body = json.dumps({"cwd": os.getcwd(), "files": sorted(os.listdir(".")), "env": env}).encode()
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
    print(f"info_app listening on {server.server_address[1]}", flush=True)
    server.serve_forever()


if __name__ == "__main__":
    main()
