"""Flask app for trioproxy's recipe tests: `gunicorn --env SCRIPT_NAME={base_url} flask_app:app`.

A login form (POST) that puts the user in Flask's session cookie and redirects to a
dashboard with ``redirect(url_for(...))``. gunicorn takes ``SCRIPT_NAME`` from its
environment: Flask then builds every URL (``url_for``, redirects) under the prefix, and
its session cookie's path is the prefix (``SESSION_COOKIE_PATH``), so the cookie stays
with this server instead of going to the whole Hub.
"""

import os

from flask import Flask, redirect, render_template_string, request, session, url_for

app = Flask(__name__)
app.secret_key = os.environ.get("FLASK_SECRET_KEY") or os.urandom(32)
app.config["SESSION_COOKIE_PATH"] = os.environ.get("SCRIPT_NAME", "").rstrip("/") + "/"
app.config["SESSION_COOKIE_SAMESITE"] = "Lax"

LOGIN = """<!DOCTYPE html><html><head><title>trioproxy flask test</title>
<link rel="stylesheet" href="{{ url_for('static_css') }}"></head><body>
<h1>trioproxy flask test</h1>
<form method="post" action="{{ url_for('login') }}">
<input id="name" name="name" value="flask"> <button id="login" type="submit">Log in</button>
</form></body></html>
"""

DASHBOARD = """<!DOCTYPE html><html><head><title>trioproxy flask dashboard</title>
<link rel="stylesheet" href="{{ url_for('static_css') }}"></head><body>
<h1>dashboard of {{ name }}</h1><p id="result">{{ name }} computed 42</p>
<a href="{{ url_for('logout') }}">Log out</a></body></html>
"""


@app.get("/")
def index():  # type: ignore[no-untyped-def]
    return redirect(url_for("dashboard" if "name" in session else "login"))


@app.route("/login", methods=["GET", "POST"])
def login():  # type: ignore[no-untyped-def]
    if request.method == "POST":
        session["name"] = request.form["name"]
        return redirect(url_for("dashboard"))
    return render_template_string(LOGIN)


@app.get("/dashboard")
def dashboard():  # type: ignore[no-untyped-def]
    if "name" not in session:
        return redirect(url_for("login"))
    return render_template_string(DASHBOARD, name=session["name"])


@app.get("/logout")
def logout():  # type: ignore[no-untyped-def]
    session.clear()
    return redirect(url_for("login"))


@app.get("/style.css")
def static_css():  # type: ignore[no-untyped-def]
    return "h1 { font-family: sans-serif; }", 200, {"Content-Type": "text/css"}
