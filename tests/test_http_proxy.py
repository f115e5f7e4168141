"""HTTP through trioproxy (in-process) to the real echo app, over loopback sockets.

Every test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import gzip
import hashlib
import time

import httpx
import trio

from .conftest import app_cmd, serve_proxy

ECHO = app_cmd("echo_app.py")


def client(**kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=20, **kw)


async def test_path_query_and_methods_byte_for_byte():
    with trio.fail_after(40):
        async with serve_proxy(ECHO) as p, client() as c:
            raw = "/a%2Fb/%40x/%25y/c%3Fd%23e"
            query = "x=1&x=2&flag&p=a+b&q=%20z"
            r = await c.get(p.url + raw + "?" + query)
            assert r.status_code == 200
            seen = r.json()
            assert seen["raw_path"] == raw and seen["query_string"] == query
            for method in ("OPTIONS", "DELETE", "PATCH", "PUT", "POST"):
                r = await c.request(method, p.url + "/m", content=b"" if method != "DELETE" else b"body")
                assert r.status_code == 200, method
                assert r.json()["method"] == method
            r = await c.head(p.url + "/echo")
            assert r.status_code == 200 and r.content == b"" and int(r.headers["content-length"]) > 0


async def test_prefix_redirects_and_404():
    with trio.fail_after(40):
        async with serve_proxy(ECHO, prefix="/user/dan@x.com/") as p, client() as c:
            base = f"http://127.0.0.1:{p.port}"
            r = await c.get(base + "/user/dan@x.com?a=1")
            assert r.status_code == 302 and r.headers["location"] == "/user/dan@x.com/?a=1"
            r = await c.get(base + "/user/dan%40x.com/foo%20bar?a=%2F")
            assert r.status_code == 301 and r.headers["location"] == "/user/dan@x.com/foo%20bar?a=%2F"
            r = await c.get(base + "/user/bob/")
            assert r.status_code == 404 and "text/html" in r.headers["content-type"]
            r = await c.get(base + "/user/dan@x.com/deep/path")
            assert r.json()["raw_path"] == "/deep/path"


async def test_headers_host_forwarded_hop_by_hop_cookies_gzip():
    with trio.fail_after(40):
        async with serve_proxy(ECHO) as p, client() as c:
            r = await c.get(
                p.url + "/h",
                headers={"Host": "hub.example:8443", "Connection": "keep-alive, X-Foo", "X-Foo": "1", "TE": "trailers",
                         "X-CDSDASHBOARDS-JH-USER": "spoof", "Cookie": "a=1; b=2"},
            )
            headers = dict(r.json()["headers"])
            assert headers["host"] == "hub.example:8443"
            assert "x-foo" not in headers and "te" not in headers and "x-cdsdashboards-jh-user" not in headers
            assert headers["cookie"] == "a=1; b=2"
            assert headers["x-forwarded-for"] == "127.0.0.1" and headers["x-forwarded-proto"] == "http"
            assert headers["x-forwarded-host"] == "hub.example:8443" and headers["x-forwarded-prefix"] == "/user/test"
            r = await c.get(p.url + "/cookies")
            assert r.headers.get_list("set-cookie") == [  # the app's paths, under the prefix (tests/test_redirects.py)
                "a=1; Path=/user/test/", "b=2; Path=/user/test/", "c=3; Path=/user/test/; HttpOnly"]
            r = await c.get(p.url + "/gzip", headers={"Accept-Encoding": "gzip"})
            assert r.headers["content-encoding"] == "gzip"
            assert r.content == b"hello gzip world\n" * 100  # httpx decoded what we passed through
            async with c.stream("GET", p.url + "/gzip") as s:
                raw = b"".join([chunk async for chunk in s.aiter_raw()])
            assert gzip.decompress(raw) == b"hello gzip world\n" * 100
            r = await c.get(p.url + "/hopbyhop")
            assert "x-hop" not in r.headers and r.headers["x-end"] == "1" and "keep-alive" not in r.headers
            r = await c.get(p.url + "/redirect")
            assert r.status_code == 302 and r.headers["location"] == "/user/test/somewhere/else?x=1"
            r = await c.get(p.url + "/status/404")
            assert r.status_code == 404


async def test_sse_streams_unbuffered_and_outlives_request_timeout():
    with trio.fail_after(40):
        async with serve_proxy(["--request-timeout", "1", *ECHO]) as p, client() as c:
            await p.wait_ready()
            t0 = time.monotonic()
            events = []
            async with c.stream("GET", p.url + "/sse?interval=0.25") as r:
                assert r.headers["content-type"].startswith("text/event-stream")
                async for line in r.aiter_lines():
                    if line.startswith("data:"):
                        events.append((time.monotonic() - t0, line))
                        if len(events) == 10:
                            break
            assert events[0][0] < 0.5, "first event must not wait for the stream to end"
            assert events[-1][0] > 2.0  # longer than --request-timeout 1


async def test_large_download_and_upload_stream():
    size = 100 * 2**20
    with trio.fail_after(90):
        async with serve_proxy(ECHO) as p, client() as c:
            h = hashlib.sha256()
            n = 0
            async with c.stream("GET", p.url + f"/large?size={size}") as r:
                async for chunk in r.aiter_raw():
                    h.update(chunk)
                    n += len(chunk)
            expected = hashlib.sha256(bytes(range(256)) * (size // 256)).hexdigest()
            assert n == size and h.hexdigest() == expected

            body = b"u" * (50 * 2**20)

            async def gen():
                for i in range(0, len(body), 2**20):
                    yield body[i : i + 2**20]

            for _ in range(3):  # the head and first chunk must be written before the rest (it raced: 500)
                r = await c.post(p.url + "/upload", content=gen())  # chunked upload
                assert r.status_code == 200, (r.status_code, r.text[:500])
                assert r.json()["body_len"] == len(body)
                assert r.json()["body_sha256"] == hashlib.sha256(body).hexdigest()
            r = await c.post(p.url + "/upload", content=body)  # content-length upload
            assert r.json()["body_len"] == len(body) and r.json()["chunks"] > 1


async def test_timeout_is_504_and_cut_body_is_an_error():
    with trio.fail_after(40):
        async with serve_proxy(["--request-timeout", "1", *ECHO]) as p, client() as c:
            r = await c.get(p.url + "/slow?delay=3")
            assert r.status_code == 504 and "request-timeout" in r.text
            try:
                r = await c.get(p.url + "/close-midbody")
            except httpx.RemoteProtocolError:
                pass
            else:
                raise AssertionError(f"a cut body must not look complete: {len(r.content)} bytes")
            r = await c.get(p.url + "/echo")  # still serving
            assert r.status_code == 200


async def test_client_disconnect_frees_the_stream():
    with trio.fail_after(40):
        async with serve_proxy(ECHO) as p:
            await p.wait_ready()
            for _ in range(30):
                async with client() as c:
                    async with c.stream("GET", p.url + "/sse?interval=0.05") as r:
                        async for _line in r.aiter_lines():
                            break
            async with client() as c:
                r = await c.get(p.url + "/echo")
                assert r.status_code == 200


async def test_concurrent_requests_are_not_capped():
    with trio.fail_after(40):
        async with serve_proxy(ECHO) as p, client() as c:
            await p.wait_ready()
            t0 = time.monotonic()
            results = []

            async def one():
                r = await c.get(p.url + "/slow?delay=1")
                results.append(r.status_code)

            async with trio.open_nursery() as n:
                for _ in range(30):
                    n.start_soon(one)
            assert results == [200] * 30
            assert time.monotonic() - t0 < 5  # the reference queued beyond 10


async def test_env_reaches_the_app_and_group_is_separate():
    with trio.fail_after(40):
        async with serve_proxy(ECHO, env={"JUPYTERHUB_USER": "dan", "TRIOPROXY_TEST_X": "1"}) as p, client() as c:
            info = (await c.get(p.url + "/pid")).json()
            assert info["env"]["JUPYTERHUB_USER"] == "dan" and info["env"]["TRIOPROXY_TEST_X"] == "1"
            assert info["pgid"] == info["pid"]  # its own process group
