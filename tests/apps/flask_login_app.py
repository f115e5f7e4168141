"""A Flask app that knows nothing of its prefix: a login form, a session cookie, a dashboard.

Usage:
    python flask_login_app.py --port N

Listens on 127.0.0.1:N (Werkzeug's server), prints ``flask_login_app listening on N``.
Written the way a Flask app is written for ``/``, with Flask's defaults:

* ``/`` redirects to ``url_for("login")`` (``Location: /login``);
* ``/login`` shows a form that posts to itself; the POST puts the name in the session
  (Flask's signed ``session`` cookie, ``Path=/``) and redirects to ``url_for("dashboard")``;
* ``/dashboard`` needs the session (without it: back to ``/login``) and shows
  ``Dashboard of NAME``.

Behind trioproxy the browser must end on ``{prefix}/dashboard`` with the cookie's path
under the prefix (``tests/test_browser_rewrite.py``).
"""

import argparse
import html
import os

from flask import Flask, redirect, request, session, url_for
from werkzeug.serving import make_server

app = Flask(__name__)
app.secret_key = os.urandom(16)

PAGE = """<!doctype html><title>{title}</title><h1 id="title">{title}</h1>{body}"""


@app.route("/")
def index():
    return redirect(url_for("login"))


@app.route("/login", methods=["GET", "POST"])
def login():
    if request.method == "POST":
        session["name"] = request.form.get("name", "")
        return redirect(url_for("dashboard"))
    form = ('<form method="post"><input id="name" name="name" autofocus>'
            '<button id="login" type="submit">Log in</button></form>')
    return PAGE.format(title="Log in", body=form)


@app.route("/dashboard")
def dashboard():
    name = session.get("name")
    if not name:
        return redirect(url_for("login"))
    return PAGE.format(title=f"Dashboard of {html.escape(name)}", body='<p id="welcome">Logged in.</p>')


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--port", type=int, required=True)
    server = make_server("127.0.0.1", parser.parse_args().port, app, threaded=True)
    print(f"flask_login_app listening on {server.server_port}", flush=True)
    server.serve_forever()
