"""The pure rules of admission: what reaches the app, cross-site requests, login targets."""

from trioproxy.auth import oauth as _oauth
from trioproxy.auth import passage as _auth

H = [(b"host", b"hub.example.org")]


def test_passage_strips_spoofed_user_info_and_adds_ours():
    headers = H + [(b"x-cdsdashboards-jh-user", b'{"name": "admin"}')]
    p = _auth.passage(headers, b"/a?CDSDASHBOARDS_JH_USER=x&b=1")
    assert p.headers == H and p.target == b"/a?b=1" and p.add == []
    user = {"kind": "user", "name": "dan", "admin": False, "groups": ["g"], "scopes": ["secret-ish"]}
    p = _auth.passage(H, b"/a?token=t&b=1", user=user, forward_user_info=True, query_user_info=True,
                      drop_query_args=("token",))
    info = '{"kind": "user", "name": "dan", "admin": false, "groups": ["g"]}'
    assert p.add == [(b"x-cdsdashboards-jh-user", info.encode())]
    assert p.target.startswith(b"/a?b=1&CDSDASHBOARDS_JH_USER=%7B%22kind%22")
    assert b"token=" not in p.target
    assert _auth.user_info({"name": "x"}) == '{"kind": null, "name": "x", "admin": null, "groups": null}'


def test_browser_scheme():
    assert _auth.browser_scheme(H, "http", "https://hub.example.org/") == "https"
    assert _auth.browser_scheme(H + [(b"x-forwarded-proto", b"https, http")], "http") == "https"
    assert _auth.browser_scheme(H + [(b"x-forwarded-proto", b"ws")], "https") == "http"
    assert _auth.browser_scheme(H + [(b"x-forwarded-proto", b"wss")], "http") == "https"
    assert _auth.browser_scheme(H, "https") == "https"
    assert _auth.browser_scheme(H, "http") == "http"


def test_cross_site_by_fetch_metadata_then_origin():
    cs = _auth.is_cross_site
    assert not cs(H + [(b"sec-fetch-site", b"same-origin")], "http")
    assert not cs(H + [(b"sec-fetch-site", b"none")], "http")
    assert cs(H + [(b"sec-fetch-site", b"same-site")], "http")
    assert cs(H + [(b"sec-fetch-site", b"cross-site"), (b"origin", b"http://hub.example.org")], "http")
    assert not cs(H + [(b"origin", b"http://hub.example.org")], "http")
    assert not cs(H + [(b"origin", b"https://hub.example.org"), (b"x-forwarded-proto", b"https")], "http")
    assert cs(H + [(b"origin", b"http://evil.example")], "http")
    assert cs(H + [(b"origin", b"null")], "http")
    assert not cs(H + [(b"origin", b"https://other.example")], "http", frozenset({"https://other.example"}))
    assert not cs(H, "http")  # no browser headers: not a browser


def test_cross_site_never_trusts_a_client_x_forwarded_host():
    cs = _auth.is_cross_site
    evil = [(b"origin", b"http://evil"), (b"x-forwarded-host", b"evil")]
    assert cs(H + evil, "http")
    assert cs([(b"host", b"evil.example")] + evil, "http") is True  # the Host must match too
    # configurable-http-proxy keeps the browser's Host: the Origin matches it, whatever X-Forwarded-Host says.
    assert not cs(H + [(b"origin", b"http://hub.example.org"), (b"x-forwarded-host", b"other")], "http")
    # An ingress that rewrites Host: the Hub's public URL is the trusted origin.
    internal = [(b"host", b"proxy-public.svc:8000"), (b"origin", b"https://hub.example.org")]
    assert cs(internal, "http")
    assert not cs(internal, "http", frozenset({"https://hub.example.org"}))
    # No Host at all: only a trusted origin passes.
    assert cs([(b"origin", b"http://")], "http") and cs([(b"origin", b"http://x")], "http")
    assert not cs([(b"origin", b"http://x")], "http", frozenset({"http://x"}))
    # The browser's scheme still counts: an http page is not the https origin.
    assert cs(H + [(b"origin", b"http://hub.example.org"), (b"x-forwarded-proto", b"https")], "http")
    assert not cs(H + [(b"origin", b"HTTP://Hub.Example.org/")], "http")


def test_safe_next_only_pages_of_this_server():
    assert _oauth.safe_next("/user/dan/app?x=1", "/user/dan") == "/user/dan/app?x=1"
    for bad in ("https://evil.example/", "//evil.example/user/dan/", "/user/danny/", "/user/dan", "/user/dan/\\x",
                "/hub/home", "/user/dan/\r\nx"):
        assert _oauth.safe_next(bad, "/user/dan") == "/user/dan/"
    assert _oauth.safe_next("//evil", "") == "/"
    assert _oauth.safe_next("/ok", "") == "/ok"


def test_tokens_from_header_and_query():
    assert _oauth.token_from_header([(b"authorization", b"token abc")]) == "abc"
    assert _oauth.token_from_header([(b"authorization", b"Bearer  abc ")]) == "abc"
    assert _oauth.token_from_header([(b"authorization", b"Basic Zm9vOmJhcg==")]) is None
    assert _oauth.token_from_header([(b"authorization", b"token ")]) is None
    assert _oauth.token_from_query(b"a=1&token=xyz") == "xyz"
    assert _oauth.token_from_query(b"a=1") is None
