"""The app's redirects and cookies kept under the prefix, through the proxy (``Gateway.app_response_headers``):
HTTP answers, a websocket's 101 and a websocket refusal; the options; ``--keep-prefix``.

The app (``tests/apps/say_app.py``) sends the headers each test names; the pure rules and their
table are ``tests/test_rewrite.py``; a Flask app in Chromium through a real Hub is
``tests/test_browser_rewrite.py``.
"""

from __future__ import annotations

from collections.abc import Sequence

import httpx
import pytest
import trio
from trio_websocket import ConnectionRejected, open_websocket_url

from trioproxy.child.connection import TcpTarget

from .conftest import app_cmd, proxy_settings, serve_proxy

SAY = app_cmd("say_app.py")
HOST = "hub.example.org"


def _said(*headers: str, status: int = 302) -> dict[str, object]:
    return {"params": [("status", str(status)), *(("h", h) for h in headers)]}


async def _answer(url: str, *headers: str, host: str = HOST, status: int = 302) -> httpx.Response:
    async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
        return await c.get(url + "/say", headers={"Host": host}, **_said(*headers, status=status))  # type: ignore[arg-type]


async def _app_port(p) -> int:
    """The app's port (once it is ready: requests would wait for it anyway)."""
    await p.wait_ready()
    address = p.running.state.address
    assert isinstance(address, TcpTarget)
    return address.port


async def test_http_redirects_and_cookies_stay_under_the_prefix():
    with trio.fail_after(30):
        async with serve_proxy(SAY) as p:
            port = await _app_port(p)
            app = f"127.0.0.1:{port}"
            cases = [
                # (the app sends, the browser gets)
                ("/login", "/user/test/login"),  # Flask's redirect(url_for("login"))
                ("/", "/user/test/"),
                ("/dataframe_demo", "/user/test/dataframe_demo"),  # Streamlit's own 301
                ("/user/test/lab?reset", "/user/test/lab?reset"),  # already inside: no double prefix
                (f"http://{app}/items/", "/user/test/items/"),  # FastAPI's trailing slash, on the app's address
                (f"http://localhost:{port}/x", "/user/test/x"),
                (f"http://[::1]:{port}/x", "/user/test/x"),
                (f"http://{HOST}/items/", f"http://{HOST}/user/test/items/"),  # the request's host, no prefix
                (f"https://{HOST}/user/test/user/login/", f"https://{HOST}/user/test/user/login/"),  # jsp#574
                ("login", "login"),  # relative
                ("../x", "../x"),
                ("https://github.com/login/oauth/authorize?x=1", "https://github.com/login/oauth/authorize?x=1"),
                ("http://127.0.0.1:9/x", "http://127.0.0.1:9/x"),  # not the app's port
            ]
            for sent, got in cases:
                r = await _answer(p.url, f"location: {sent}")
                assert r.status_code == 302 and r.headers["location"] == got, sent
            r = await _answer(
                p.url, "content-location: /doc/1", "refresh: 0; url=/next", "set-cookie: session=abc; Path=/; HttpOnly",
                "set-cookie: api=1; Path=/api; Domain=example.org; Secure", "set-cookie: plain=1",
                "set-cookie: jupyterhub-session-id=fixed; Path=/", "x-location: /untouched", status=200)
            assert r.status_code == 200 and r.text == "said"
            assert r.headers["content-location"] == "/user/test/doc/1"
            assert r.headers["refresh"] == "0; url=/user/test/next"
            assert r.headers["x-location"] == "/untouched"
            assert r.headers.get_list("set-cookie") == [  # the Hub's cookie is never the app's to set
                "session=abc; Path=/user/test/; HttpOnly", "api=1; Path=/user/test/api; Secure", "plain=1"]


async def test_a_websocket_101_and_a_refusal_are_rewritten_too():
    with trio.fail_after(30):
        async with serve_proxy(SAY) as p:
            port = await _app_port(p)
            url = str(httpx.URL(p.ws_url + "/ws", params=_said(
                "set-cookie: ws=1; Path=/; Domain=example.org", f"content-location: http://127.0.0.1:{port}/ws",
                "set-cookie: jupyterhub-hub-login=x")["params"]))  # type: ignore[arg-type]
            async with open_websocket_url(url) as ws:
                assert (b"set-cookie", b"ws=1; Path=/user/test/") in ws.handshake_headers
                assert (b"content-location", b"/user/test/ws") in ws.handshake_headers
                assert not any(v.startswith(b"jupyterhub-hub-login") for _, v in ws.handshake_headers)
                await ws.send_message("still a websocket")
                assert await ws.get_message() == "still a websocket"
            # The refusal: a login redirect, absolute on the Host the client used (the proxy's).
            proxy_host = f"127.0.0.1:{p.port}"
            url = str(httpx.URL(p.ws_url + "/ws-refuse", params=_said(
                f"location: http://{proxy_host}/login?next=/ws", "set-cookie: s=1; Path=/")["params"]))  # type: ignore[arg-type]
            with pytest.raises(ConnectionRejected) as rejected:
                async with open_websocket_url(url):
                    pass
            assert rejected.value.status_code == 302 and rejected.value.body == b"refused"
            headers = dict(rejected.value.headers)
            assert headers[b"location"] == f"http://{proxy_host}/user/test/login?next=/ws".encode()
            assert headers[b"set-cookie"] == b"s=1; Path=/user/test/"


SENT = ("location: /login", "refresh: 5; url=/next", "set-cookie: s=1; Path=/; Domain=example.org")


@pytest.mark.parametrize(
    ("options", "got"),
    [
        (["--no-redirect-rewrite"], ["/login", "5; url=/next", ["s=1; Path=/user/test/"]]),
        (["--no-cookie-rewrite"], ["/user/test/login", "5; url=/user/test/next", ["s=1; Path=/; Domain=example.org"]]),
        (["--keep-cookie-domain"],
         ["/user/test/login", "5; url=/user/test/next", ["s=1; Path=/user/test/; Domain=example.org"]]),
        (["--no-redirect-rewrite", "--no-cookie-rewrite"],
         ["/login", "5; url=/next", ["s=1; Path=/; Domain=example.org"]]),
    ],
)
async def test_the_options_turn_each_rewrite_off(options: Sequence[str], got: list[object]):
    with trio.fail_after(30):
        async with serve_proxy([*options, *SAY]) as p:
            r = await _answer(p.url, *SENT, "set-cookie: jupyterhub-session-id=x")
            assert [r.headers["location"], r.headers["refresh"], r.headers.get_list("set-cookie")] == got
            # The credential cookies are never the app's, whatever the options.


async def test_with_keep_prefix_only_the_apps_own_origin_goes():
    with trio.fail_after(30):
        async with serve_proxy(["--keep-prefix", *SAY]) as p:
            port = await _app_port(p)
            app = f"127.0.0.1:{port}"
            cases = [
                ("/login", "/login"),  # the app knows its prefix: what it says is meant
                ("/user/test/lab", "/user/test/lab"),
                (f"http://{HOST}/x", f"http://{HOST}/x"),
                (f"http://{app}/user/test/x", "/user/test/x"),  # no browser reaches the app's loopback address
            ]
            for sent, got in cases:
                r = await _answer(p.url, f"location: {sent}")
                assert r.headers["location"] == got, sent
            r = await _answer(p.url, "set-cookie: a=1; Path=/", "set-cookie: b=1; Path=/user/test/x", status=200)
            assert r.headers.get_list("set-cookie") == ["a=1; Path=/user/test/", "b=1; Path=/user/test/x"]


async def test_at_the_root_paths_pass_and_the_apps_origin_goes():
    with trio.fail_after(30):
        async with serve_proxy(SAY, prefix="/") as p:
            port = await _app_port(p)
            app = f"127.0.0.1:{port}"
            cases = [("/login", "/login"), (f"http://{app}/x", "/x"),
                     (f"http://{app}//evil.example/", "/.//evil.example/")]  # a path, not a host
            for sent, got in cases:
                r = await _answer(p.url, f"location: {sent}")
                assert r.headers["location"] == got, sent


def test_the_options_parse_and_default_on():
    s = proxy_settings(["--", "app"]).proxy
    assert (s.rewrite_redirects, s.rewrite_cookies, s.keep_cookie_domain) == (True, True, False)
    s = proxy_settings(["--no-redirect-rewrite", "--no-cookie-rewrite", "--keep-cookie-domain", "--", "app"]).proxy
    assert (s.rewrite_redirects, s.rewrite_cookies, s.keep_cookie_domain) == (False, False, True)
    s = proxy_settings(["--redirect-rewrite", "--cookie-rewrite", "--no-keep-cookie-domain", "--", "app"]).proxy
    assert (s.rewrite_redirects, s.rewrite_cookies, s.keep_cookie_domain) == (True, True, False)


async def test_a_host_prefixed_cookie_is_moved_and_said_once():
    """A ``__Host-`` cookie must have ``Path=/`` (the whole Hub origin): moved under the prefix, browsers
    refuse it; the log says so, once per cookie, and names the option that lets it pass."""
    with trio.fail_after(30):
        async with serve_proxy(SAY) as p:
            for _ in range(2):
                r = await _answer(p.url, "set-cookie: __Host-app=1; Path=/; Secure", status=200)
                assert r.headers["set-cookie"] == "__Host-app=1; Path=/user/test/; Secure"
            warned = [line for line in p.lines if "__Host-app" in line]
            assert len(warned) == 1 and "--no-cookie-rewrite" in warned[0] and "=1" not in warned[0]
