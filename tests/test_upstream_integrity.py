"""The app connection cannot be poisoned, and nothing is sent twice (issue 10).

``tests/apps/sloppy_app.py`` sends bytes past the end of its responses (a body
to HEAD, more than its Content-Length, a body on 204/304, bytes after the last
chunk), each time a complete response of its own holding ``LEAKED``. trioproxy
pools its connections to the app, so on a reused connection those bytes would
be the answer to the next request, another client's. Client 1 asks the sloppy
route, client 2 asks something else: client 2 gets its own answer, on a new
connection to the app.

It also hangs up on requests that arrive on a reused connection, without a
byte or after half a status line: a safe request is retried once on a fresh
connection, a POST or DELETE never (the app sees it once; the client gets a
502).

Websocket handshakes the app refuses with a body that ends with the
connection, answers with garbage or nothing, or never answers: the client gets
the refusal or a 502 at once, or a 504 after --request-timeout. And the app's
Set-Cookie for JupyterHub's or trioproxy's cookies never reaches the browser.

Loopback only; every test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import base64
import os

import httpx
import pytest
import trio

from trioproxy.rules.cookies import without_set_cookies
from trioproxy.rules.hub_cookies import is_credential

from . import rawnet
from .conftest import app_cmd, serve_proxy

SLOPPY = app_cmd("sloppy_app.py")

#: (method, path, what client 1 must get: status and body, framed as the app announced it).
SLOPPY_ROUTES = [
    ("HEAD", "/head-body", 200, b""),
    ("GET", "/short-cl", 200, b"hello"),
    ("GET", "/204-body", 204, b""),
    ("GET", "/304-body", 304, b""),
    ("GET", "/chunked-extra", 200, b"ok"),
]


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=20)


async def seen(c: httpx.AsyncClient, p) -> list[list]:
    r = await c.get(p.url + "/seen")
    assert r.status_code == 200, r.text
    return r.json()["requests"]


@pytest.mark.parametrize(("method", "path", "status", "body"), SLOPPY_ROUTES, ids=[r[1] for r in SLOPPY_ROUTES])
async def test_bytes_past_the_end_of_a_response_never_reach_the_next_client(method, path, status, body):
    with trio.fail_after(60):
        async with serve_proxy(SLOPPY) as p, client() as c1, client() as c2:
            await p.wait_ready()
            for i in range(3):
                warm = await c2.get(p.url + f"/warm{i}")  # an idle pooled connection for client 1's request
                assert warm.status_code == 200, warm.text
                r1 = await c1.request(method, p.url + path)
                assert (r1.status_code, r1.content) == (status, body)
                r2 = await c2.get(p.url + f"/next{i}")
                assert b"LEAKED" not in r2.content, f"client 2 got client 1's bytes: {r2.content!r}"
                assert r2.status_code == 200 and r2.json()["target"] == f"/next{i}", r2.text
                # The connection client 1's answer came on was closed: client 2's went over another
                # (which one depends on when the warm-up's connection went back to the pool).
                sloppy = [conn for conn, _, line in await seen(c2, p) if line.split()[1] == path]
                assert r2.json()["conn"] != sloppy[-1]
            warnings = [line for line in p.lines if "past the end of its response" in line]
            assert len(warnings) == 3, warnings  # one per poisoned connection
            assert f"{method} /user/test{path}" in warnings[0] and "LEAKED" not in warnings[0]
            assert "Traceback" not in p.log


async def test_bytes_that_come_while_the_connection_is_idle_never_reach_the_next_client():
    with trio.fail_after(60):
        async with serve_proxy(SLOPPY) as p, client() as c1, client() as c2:
            await p.wait_ready()
            r1 = await c1.get(p.url + "/late-extra")
            assert (r1.status_code, r1.content) == (200, b"on time")
            await trio.sleep(0.6)  # the extra bytes (0.3 s later) are waiting on the idle connection
            r2 = await c2.get(p.url + "/next")
            assert b"LEAKED" not in r2.content, r2.content
            assert r2.status_code == 200 and r2.json()["target"] == "/next" and r2.json()["nth"] == 1
            assert "the app sent bytes on an idle keep-alive connection" in p.log


async def test_an_app_closing_an_idle_connection_is_no_junk():
    """The idle check tells a normal close (EOF) from junk: only junk is warned about."""
    with trio.fail_after(60):
        async with serve_proxy(SLOPPY) as p, client() as c1, client() as c2:
            await p.wait_ready()
            r1 = await c1.get(p.url + "/late-close")
            assert (r1.status_code, r1.content) == (200, b"on time")
            await trio.sleep(0.6)  # the app closed the idle connection meanwhile
            r2 = await c2.get(p.url + "/next")
            assert r2.status_code == 200 and r2.json()["nth"] == 1
            assert "the app sent bytes on an idle keep-alive connection" not in p.log


@pytest.mark.parametrize("path", ["/hangup-reused", "/partial-reused"])
@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_a_bodyless_post_or_delete_is_never_sent_twice(method, path):
    with trio.fail_after(60):
        async with serve_proxy(SLOPPY) as p, client() as c:
            await p.wait_ready()
            assert (await c.get(p.url + "/warm")).status_code == 200  # the connection is pooled, idle
            r = await c.request(method, p.url + path)
            assert r.status_code == 502 and "text/html" in r.headers["content-type"], (r.status_code, r.text)
            assert "Traceback" not in r.text
            requests = await seen(c, p)
            assert [line for _, _, line in requests if path in line] == [f"{method} {path} HTTP/1.1"], requests


@pytest.mark.parametrize("method", ["GET", "HEAD", "OPTIONS"])
async def test_a_safe_request_is_retried_once_on_a_fresh_connection(method):
    with trio.fail_after(60):
        async with serve_proxy(SLOPPY) as p, client() as c:
            await p.wait_ready()
            assert (await c.get(p.url + "/warm")).status_code == 200
            r = await c.request(method, p.url + "/hangup-reused")
            assert r.status_code == 200 and r.content == (b"" if method == "HEAD" else b"fresh"), r.text
            requests = await seen(c, p)
            mine = [(nth, line) for _, nth, line in requests if "/hangup-reused" in line]
            assert mine == [(2, f"{method} /hangup-reused HTTP/1.1"), (1, f"{method} /hangup-reused HTTP/1.1")]


async def test_a_safe_request_is_not_retried_once_a_byte_of_the_answer_came():
    with trio.fail_after(60):
        async with serve_proxy(SLOPPY) as p, client() as c:
            await p.wait_ready()
            assert (await c.get(p.url + "/warm")).status_code == 200
            r = await c.get(p.url + "/partial-reused")
            assert r.status_code == 502, r.text
            requests = await seen(c, p)
            assert [line for _, _, line in requests if "/partial-reused" in line] == ["GET /partial-reused HTTP/1.1"]


# --- websocket handshakes: every wait on the app is bounded ---------------------------------------

#: Long, so that an answer within AT_ONCE_S cannot come from the timeout.
LONG_TIMEOUT = ["--request-timeout", "30"]
AT_ONCE_S = 5
#: trioproxy's login cookie in these tests (its name is the OAuth client id).
OWN_COOKIE_ENV = {"JUPYTERHUB_CLIENT_ID": "trioproxy-login"}


async def ws_handshake(port: int, path: str) -> rawnet.Response:
    """A websocket handshake to ``path`` under the prefix; the whole answer (head, and body if not a 101)."""
    conn = await rawnet.connect(port)
    try:
        hs = [("Upgrade", "websocket"), ("Connection", "Upgrade"), ("Sec-WebSocket-Version", "13"),
              ("Sec-WebSocket-Key", base64.b64encode(os.urandom(16)).decode())]
        await conn.send(rawnet.request("GET", "/user/test" + path, headers=hs))
        head = await conn.response(head=True)
        if head.status == 101:
            return head
        length = int(head.header(b"content-length") or b"0")
        head.body = await conn.read_exactly(length) if length else b""
        return head
    finally:
        await conn.aclose()


def app_cookies(headers: list[tuple[bytes, bytes]]) -> list[bytes]:
    return [v.split(b";")[0] for n, v in headers if n == b"set-cookie"]


async def test_a_websocket_refusal_is_relayed_at_once_even_when_its_body_ends_with_the_connection():
    with trio.fail_after(60):
        async with serve_proxy([*LONG_TIMEOUT, *SLOPPY], env=OWN_COOKIE_ENV) as p:
            await p.wait_ready()
            with trio.fail_after(AT_ONCE_S):
                bare = await ws_handshake(p.port, "/ws-refuse-bare")
            assert (bare.status, bare.body) == (400, b""), bare
            with trio.fail_after(AT_ONCE_S):
                r = await ws_handshake(p.port, "/ws-refuse-body")
            assert (r.status, r.body) == (403, b"not for you"), r
            assert r.header(b"x-why") == b"app says no" and r.header(b"content-type") == b"text/plain"
            assert app_cookies(r.headers) == [b"app=1", b"app2=2"]  # no Hub or trioproxy cookie
            assert "Traceback" not in p.log


@pytest.mark.parametrize("path", ["/ws-garbage", "/ws-hangup"])
async def test_a_websocket_handshake_answered_with_garbage_or_nothing_is_a_502_at_once(path):
    with trio.fail_after(60):
        async with serve_proxy([*LONG_TIMEOUT, *SLOPPY]) as p:
            await p.wait_ready()
            with trio.fail_after(AT_ONCE_S):
                r = await ws_handshake(p.port, path)
            assert r.status == 502 and b"text/html" in (r.header(b"content-type") or b""), r
            assert b"Traceback" not in r.body and "Traceback" not in p.log


async def test_a_websocket_handshake_the_app_never_answers_is_a_504_after_the_request_timeout():
    with trio.fail_after(60):
        async with serve_proxy(["--request-timeout", "1", *SLOPPY]) as p:
            await p.wait_ready()
            with trio.fail_after(15):
                r = await ws_handshake(p.port, "/ws-silent")
            assert r.status == 504, r
            assert b"--request-timeout" in r.body


# --- the app cannot set or delete credential cookies ----------------------------------------------


async def test_the_app_cannot_set_or_delete_hub_or_trioproxy_cookies():
    with trio.fail_after(60):
        async with serve_proxy(SLOPPY, env=OWN_COOKIE_ENV) as p:
            await p.wait_ready()
            conn = await rawnet.connect(p.port)
            await conn.send(rawnet.request("GET", "/user/test/cookies"))
            r = await conn.response()
            await conn.aclose()
            assert (r.status, r.body) == (200, b"cookies")
            assert app_cookies(r.headers) == [b"app=1", b"app2=2"]
            ws = await rawnet.ws_connect(p.port, "/user/test/ws-accept-cookies")
            assert app_cookies(ws.handshake.headers) == [b"app=1", b"app2=2"]
            await ws.send_text("still works")
            assert await ws.message() == (rawnet.OP_TEXT, b"still works")
            await ws.aclose()
            dropped = [line for line in p.lines if "Set-Cookie for" in line]
            names = ("jupyterhub-session-id", "__Host-jupyterhub-user-x", "trioproxy-login", "jupyterhub-hub-login")
            assert len(dropped) == 2 * len(names), dropped
            for name in names:
                assert sum(repr(name) in line for line in dropped) == 2, (name, dropped)
            assert "fixated" not in p.log  # names, never values


def test_set_cookie_filter_is_by_cookie_name_as_a_browser_reads_it():
    def drop(name: str) -> bool:
        return is_credential(name, own="trioproxy-login")

    headers = [
        (b"set-cookie", b"app=1"),
        (b"content-type", b"text/plain"),
        (b"set-cookie", b" __HOST-JupyterHub-User-bob =x; Path=/"),
        (b"set-cookie", b"jupyterhub-session-id"),  # no "=": the browser sends it back as a bare name
        (b"set-cookie", b"TRIOPROXY-LOGIN=; Max-Age=0"),
        (b"set-cookie", b"jupyterhub-user-bob-oauth-state=s"),
        (b"set-cookie", b"app2=jupyterhub-session-id"),  # a value naming a credential is the app's business
    ]
    kept, dropped = without_set_cookies(headers, drop)
    assert kept == [(b"set-cookie", b"app=1"), (b"content-type", b"text/plain"),
                    (b"set-cookie", b"app2=jupyterhub-session-id")]
    assert dropped == ["__HOST-JupyterHub-User-bob", "jupyterhub-session-id", "TRIOPROXY-LOGIN",
                       "jupyterhub-user-bob-oauth-state"]
    assert without_set_cookies([(b"set-cookie", b"a=1")], drop) == ([(b"set-cookie", b"a=1")], [])
