"""A misbehaving app behind a real trioproxy process (issue 6, second bullet).

``tests/apps/bad_app.py`` answers with malformed status lines and headers,
conflicting framing, bodies cut short or endless, no answer at all, hop-by-hop
headers, and broken or flooding websockets. The client must get a sensible
answer (502, 504, a body cut short that looks cut short, a close code), and
everyone else must keep being served.

Loopback only; every test is bounded by ``trio.fail_after``.
"""

from __future__ import annotations

import time

import httpx
import pytest
import trio

from . import rawnet
from .conftest import app_cmd, run_proxy, serve_proxy
from .rawnet import OP_CLOSE, OP_TEXT, close_payload

BAD = app_cmd("bad_app.py")


def client(**kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=20, **kw)


async def seen(c: httpx.AsyncClient, p) -> dict:
    r = await c.get(p.url + "/seen")
    assert r.status_code == 200, r.text
    return r.json()


def no_traceback(p) -> None:
    assert "Traceback" not in p.log, p.log[p.log.find("Traceback") - 300 :][:4000]


def traceback_in(p) -> list[str]:
    """trioproxy's log must never hold a traceback: a problem, with the log around the first one."""
    i = p.log.find("Traceback")
    return [] if i < 0 else ["a traceback in trioproxy's log:\n" + p.log[max(0, i - 300) :][:3000]]


async def wait_event(c: httpx.AsyncClient, p, needle: str, timeout: float) -> None:
    with trio.fail_after(timeout):
        while not any(needle in e for e in (await seen(c, p))["events"]):
            await trio.sleep(0.1)


MALFORMED = [
    "/malformed-status",
    "/not-http",
    "/empty",
    "/reset",
    "/bad-header",
    "/header-nul",
    "/dup-cl",
    "/bad-cl",
    "/neg-cl",
    "/huge-head",
    "/101-no-upgrade",
]


async def test_malformed_responses_get_502_and_the_next_request_is_fine():
    problems: list[str] = []
    with trio.fail_after(90):
        async with serve_proxy(BAD) as p, client() as c:
            await p.wait_ready()
            for path in MALFORMED:
                try:
                    r = await c.get(p.url + path)
                except httpx.HTTPError as exc:
                    problems.append(f"{path}: the client failed: {exc!r}")
                    continue
                if r.status_code != 502 or "text/html" not in r.headers.get("content-type", ""):
                    problems.append(f"{path}: {r.status_code} {r.headers.get('content-type')} (expected a 502 page)")
                elif "Traceback" in r.text:
                    problems.append(f"{path}: a traceback in the page")
                after = await c.get(p.url + "/after")
                if after.status_code != 200 or after.json()["target"] != "/after":
                    problems.append(f"after {path}: {after.status_code} {after.text[:100]}")
            # A bare CR in a header value: refused, or the CR made harmless; never a header of its own.
            r = await c.get(p.url + "/header-cr")
            if "injected" in r.headers:
                problems.append("/header-cr: a header was injected into the response")
            if r.status_code != 502 and any("\r" in v for v in r.headers.values()):
                problems.append("/header-cr: a CR was passed to the client")
            # Broken chunking: a 502 if nothing was sent yet, else a body cut short (an error, not an end).
            try:
                r = await c.get(p.url + "/bad-chunk")
                if r.status_code != 502:
                    problems.append(f"/bad-chunk: {r.status_code} with a complete-looking body {r.content[:60]!r}")
            except httpx.RemoteProtocolError:
                pass
            assert (await c.get(p.url + "/after")).status_code == 200
            problems += traceback_in(p)
    assert not problems, "\n".join(problems)


async def test_content_length_and_chunked_together_cannot_split_the_response(jump_clock):
    """bad_app's /cl-te is chunked, but read by its Content-Length it leaves a second response
    (body SMUGGLED) on the connection. trioproxy must answer 502, or pass on the chunked body
    without the Content-Length; the next request must get its own answer, never SMUGGLED."""
    with trio.fail_after(60):
        async with serve_proxy(BAD) as p, client() as c:
            await p.wait_ready()
            for i in range(3):
                with trio.fail_after(15):
                    responses, rest, _ = await rawnet.exchange(
                        p.port,
                        rawnet.request("GET", "/user/test/cl-te") + rawnet.request("GET", f"/user/test/next{i}"),
                    )
                assert responses, f"no response at all to /cl-te (bytes: {rest[:100]!r})"
                first = responses[0]
                assert first.status in (200, 502), first.status
                if first.status == 200:
                    assert first.header(b"content-length") is None or first.header(b"transfer-encoding") is None
                    assert first.body.startswith(b"HTTP/1.1 200 OK") and first.body.endswith(b"SMUGGLED")
                for r in responses[1:]:
                    assert r.body != b"SMUGGLED"
                r = await c.get(p.url + f"/after{i}")
                assert r.status_code == 200 and r.json()["target"] == f"/after{i}", r.text
            no_traceback(p)


@pytest.mark.parametrize("path", ["/close-midbody-cl", "/close-midbody-chunked"])
async def test_a_body_cut_short_is_an_error_for_the_client_and_no_one_else(path):
    with trio.fail_after(60):
        async with serve_proxy(BAD) as p, client() as c:
            await p.wait_ready()
            statuses: list[int] = []
            stop = trio.Event()

            async def bystander() -> None:
                async with client() as other:
                    while not stop.is_set():
                        statuses.append((await other.get(p.url + "/bystander")).status_code)
                        await trio.sleep(0.02)

            async with trio.open_nursery() as n:
                n.start_soon(bystander)
                for _ in range(10):
                    with pytest.raises(httpx.RemoteProtocolError):
                        await c.get(p.url + path)
                # On the wire: fewer bytes than promised, or no last chunk, then the end.
                with trio.fail_after(15):
                    conn = await rawnet.connect(p.port)
                    await conn.send(rawnet.request("GET", "/user/test" + path))
                    head = await conn.response(head=True)
                    assert head.status == 200
                    rest = await conn.read_to_eof()
                    await conn.aclose()
                if path.endswith("-cl"):
                    assert head.header(b"content-length") == b"100000" and len(rest) == 1000
                else:
                    assert head.header(b"transfer-encoding") == b"chunked"
                    assert b"part one" in rest and not rest.endswith(b"0\r\n\r\n")
                stop.set()
            assert statuses and set(statuses) == {200}
            no_traceback(p)


async def test_an_endless_body_streams_with_backpressure_until_the_client_leaves():
    with trio.fail_after(60):
        async with run_proxy(["--request-timeout", "1", *BAD]) as p, client() as c:
            await p.wait_ready()
            pid = p.proc.pid
            rss_before = rawnet.rss_kib(pid)
            got = 0
            t0 = time.monotonic()
            async with c.stream("GET", p.url + "/endless") as r:
                assert r.status_code == 200
                async for chunk in r.aiter_raw():
                    got += len(chunk)
                    if time.monotonic() - t0 > 2.5:  # past --request-timeout: a live stream is not cut
                        break
            assert got > 10 * 2**20
            await wait_event(c, p, "endless ended", 5)  # the app's side was closed too

            # A client that stops reading: the app is held back, nothing piles up in trioproxy.
            conn = await rawnet.connect(p.port)
            await conn.send(rawnet.request("GET", "/user/test/endless"))
            await trio.sleep(1)
            sent = (await seen(c, p))["counters"]["endless_sent"]
            await trio.sleep(2)
            sent_later = (await seen(c, p))["counters"]["endless_sent"]
            assert sent_later - sent < 2**20, "the app kept writing to a client that does not read"
            assert rawnet.rss_kib(pid) - rss_before < 30 * 1024
            await conn.aclose()
            with trio.fail_after(5):
                while sum("endless ended" in e for e in (await seen(c, p))["events"]) < 2:
                    await trio.sleep(0.1)
            assert (await c.get(p.url + "/after")).status_code == 200
            no_traceback(p)


async def test_an_app_that_never_answers_gets_504_and_its_connection_is_closed():
    with trio.fail_after(60):
        async with serve_proxy(["--request-timeout", "1", *BAD]) as p, client() as c:
            await p.wait_ready()
            results: dict[str, tuple[int, float]] = {}

            async def ask(path: str, key: str) -> None:
                async with client() as own:
                    t0 = time.monotonic()
                    r = await own.get(p.url + path)
                    results[key] = (r.status_code, time.monotonic() - t0)
                    assert "request-timeout" in r.text

            async with trio.open_nursery() as n:
                for i in range(5):
                    n.start_soon(ask, "/never", f"never{i}")
                n.start_soon(ask, "/partial-head", "partial-head")
                await trio.sleep(0.3)
                t0 = time.monotonic()
                assert (await c.get(p.url + "/meanwhile")).status_code == 200
                assert time.monotonic() - t0 < 0.5  # the stuck ones hold no one else up
            for key, (status, took) in results.items():
                assert status == 504, (key, status)
                assert 0.9 < took < 3, (key, took)
            # trioproxy closed its connections to the app (nothing left dangling).
            with trio.fail_after(5):
                while True:
                    events = (await seen(c, p))["events"]
                    if (sum("never: closed by peer" in e for e in events) == 5
                            and "partial-head: closed by peer" in events):
                        break
                    await trio.sleep(0.1)
            no_traceback(p)


async def test_hop_by_hop_response_headers_are_dropped_and_the_client_connection_kept():
    with trio.fail_after(30):
        async with serve_proxy(BAD) as p:
            await p.wait_ready()
            conn = await rawnet.connect(p.port)
            await conn.send(rawnet.request("GET", "/user/test/hop"))
            r = await conn.response()
            assert r.status == 200 and r.body == b"ok" and r.header(b"x-end") == b"1"
            names = {n for n, _ in r.headers}
            for hop in (b"x-hop", b"keep-alive", b"proxy-connection", b"upgrade", b"te", b"trailer"):
                assert hop not in names, hop
            assert b"close" not in (r.header(b"connection") or b"").lower()  # the app's hop, not the client's
            assert r.header(b"transfer-encoding") in (None, b"chunked")
            # The same client connection carries the next request.
            await conn.send(rawnet.request("GET", "/user/test/next"))
            r = await conn.response()
            assert r.status == 200 and b'"/next"' in r.body
            # An HTTP/1.0 answer framed by the app closing: complete, and correctly framed for the client.
            await conn.send(rawnet.request("GET", "/user/test/http10"))
            r = await conn.response()
            assert r.status == 200 and r.body == b"until close " * 1000
            await conn.aclose()
            no_traceback(p)


async def test_an_app_flooding_a_websocket():
    with trio.fail_after(60):
        async with run_proxy(BAD) as p, client() as c:
            await p.wait_ready()
            pid = p.proc.pid
            rss_before = rawnet.rss_kib(pid)
            ws = await rawnet.ws_connect(p.port, "/user/test/ws-flood")
            latencies: list[float] = []

            async def bystander() -> None:
                async with client() as other:
                    for _ in range(20):
                        t0 = time.monotonic()
                        assert (await other.get(p.url + "/bystander")).status_code == 200
                        latencies.append(time.monotonic() - t0)
                        await trio.sleep(0.05)

            async with trio.open_nursery() as n:
                n.start_soon(bystander)
                for i in range(20000):
                    assert await ws.message() == (OP_TEXT, b"m%d" % i)
            assert max(latencies) < 1.0, latencies
            # The client stops reading: the flood is held back, trioproxy's memory stays flat.
            await trio.sleep(1)
            sent = (await seen(c, p))["counters"]["flood_sent"]
            await trio.sleep(2)
            assert (await seen(c, p))["counters"]["flood_sent"] - sent < 200_000
            assert rawnet.rss_kib(pid) - rss_before < 30 * 1024
            # The client closes: it gets a close frame back, and the app's end is closed too.
            await ws.conn.send(rawnet.frame(OP_CLOSE, close_payload(1000, b"enough")))
            with trio.fail_after(10):
                code = await ws.close_code()
            assert code == 1000
            await ws.aclose()
            await wait_event(c, p, "ws-flood ended", 5)
            assert (await c.get(p.url + "/after")).status_code == 200
            no_traceback(p)


async def test_websockets_an_app_breaks():
    problems: list[str] = []
    with trio.fail_after(60):
        async with serve_proxy(["--websocket-max-message-size", "1024", *BAD]) as p, client() as c:
            await p.wait_ready()
            # A 101 with a wrong Sec-WebSocket-Accept: the client is refused with a 502.
            try:
                ws = await rawnet.ws_connect(p.port, "/user/test/ws-bad-accept")
                await ws.aclose()
                problems.append("/ws-bad-accept: the client was accepted")
            except AssertionError as exc:
                if " 502" not in str(exc):
                    problems.append(f"/ws-bad-accept: {exc}")
            # An app cut off in the middle of a frame: the relay passed the start of that frame on as it
            # came, so the connection just ends (a close frame cannot follow half a frame).
            for path, want in (("/ws-garbage", {1002}), ("/ws-masked", {1002}), ("/ws-vanish", {1011}),
                               ("/ws-huge", {1009}), ("/ws-close-midframe", {None})):
                ws = await rawnet.ws_connect(p.port, "/user/test" + path)
                with trio.move_on_after(10) as waited:
                    code = await ws.close_code()
                await ws.aclose()
                if waited.cancelled_caught:
                    problems.append(f"{path}: neither a close frame nor the end of the connection within 10 s")
                elif code not in want:
                    problems.append(f"{path}: close code {code} (expected {' or '.join(map(str, want))})")
            # A healthy one still works.
            with trio.fail_after(10):
                ws = await rawnet.ws_connect(p.port, "/user/test/ws-echo")
                await ws.send_text("still there")
                assert await ws.message() == (OP_TEXT, b"still there")
                await ws.aclose()
            assert (await c.get(p.url + "/after")).status_code == 200
            problems += traceback_in(p)
    assert not problems, "\n".join(problems)
