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

Loopback only; every test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import httpx
import pytest
import trio

from .conftest import app_cmd, run_proxy

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
        async with run_proxy(SLOPPY) as p, client() as c1, client() as c2:
            await p.wait_ready()
            for i in range(3):
                warm = await c2.get(p.url + f"/warm{i}")  # an idle pooled connection for client 1's request
                assert warm.status_code == 200, warm.text
                r1 = await c1.request(method, p.url + path)
                assert (r1.status_code, r1.content) == (status, body)
                r2 = await c2.get(p.url + f"/next{i}")
                assert b"LEAKED" not in r2.content, f"client 2 got client 1's bytes: {r2.content!r}"
                assert r2.status_code == 200 and r2.json()["target"] == f"/next{i}", r2.text
                # The sloppy connection was closed: client 2's request went over a new one.
                assert r2.json()["conn"] != warm.json()["conn"]
                assert r2.json()["nth"] == 1
            warnings = [line for line in p.lines if "past the end of its response" in line]
            assert len(warnings) == 3, warnings  # one per poisoned connection
            assert f"{method} /user/test{path}" in warnings[0] and "LEAKED" not in warnings[0]
            assert "Traceback" not in p.log


async def test_bytes_that_come_while_the_connection_is_idle_never_reach_the_next_client():
    with trio.fail_after(60):
        async with run_proxy(SLOPPY) as p, client() as c1, client() as c2:
            await p.wait_ready()
            r1 = await c1.get(p.url + "/late-extra")
            assert (r1.status_code, r1.content) == (200, b"on time")
            await trio.sleep(0.6)  # the extra bytes (0.3 s later) are waiting on the idle connection
            r2 = await c2.get(p.url + "/next")
            assert b"LEAKED" not in r2.content, r2.content
            assert r2.status_code == 200 and r2.json()["target"] == "/next" and r2.json()["nth"] == 1
            assert "the app sent bytes on an idle keep-alive connection" in p.log


@pytest.mark.parametrize("path", ["/hangup-reused", "/partial-reused"])
@pytest.mark.parametrize("method", ["POST", "DELETE"])
async def test_a_bodyless_post_or_delete_is_never_sent_twice(method, path):
    with trio.fail_after(60):
        async with run_proxy(SLOPPY) as p, client() as c:
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
        async with run_proxy(SLOPPY) as p, client() as c:
            await p.wait_ready()
            assert (await c.get(p.url + "/warm")).status_code == 200
            r = await c.request(method, p.url + "/hangup-reused")
            assert r.status_code == 200 and r.content == (b"" if method == "HEAD" else b"fresh"), r.text
            requests = await seen(c, p)
            mine = [(nth, line) for _, nth, line in requests if "/hangup-reused" in line]
            assert mine == [(2, f"{method} /hangup-reused HTTP/1.1"), (1, f"{method} /hangup-reused HTTP/1.1")]


async def test_a_safe_request_is_not_retried_once_a_byte_of_the_answer_came():
    with trio.fail_after(60):
        async with run_proxy(SLOPPY) as p, client() as c:
            await p.wait_ready()
            assert (await c.get(p.url + "/warm")).status_code == 200
            r = await c.get(p.url + "/partial-reused")
            assert r.status_code == 502, r.text
            requests = await seen(c, p)
            assert [line for _, _, line in requests if "/partial-reused" in line] == ["GET /partial-reused HTTP/1.1"]
