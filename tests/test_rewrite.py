"""The app's redirects and cookie paths kept inside the prefix (trioproxy/rules/rewrite.py): the pure rules.

Wired into the proxy: tests/test_redirects.py; in Chromium through a real Hub: tests/test_browser_rewrite.py.
"""

from __future__ import annotations

import os
from urllib.parse import urljoin, urlsplit

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioproxy.rules import rewrite as _rewrite

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PLACE = _rewrite.Place(
    prefix=b"/user/alice",
    app_hosts=_rewrite.app_hosts(41873),
    request_host=_rewrite.request_host(b"Hub.Example.org"),
)
KEEP = _rewrite.Place(prefix=b"/user/alice", app_hosts=_rewrite.app_hosts(41873),
                      request_host=b"hub.example.org", keep_prefix=True)


@pytest.mark.parametrize(
    ("sent", "got"),
    [
        (b"/login", b"/user/alice/login"),
        (b"/", b"/user/alice/"),
        (b"/dataframe_demo", b"/user/alice/dataframe_demo"),  # Streamlit's own 301
        (b"/lab?reset", b"/user/alice/lab?reset"),
        (b"/user/alice/lab", b"/user/alice/lab"),  # the app knew its prefix: no double prefix
        (b"/user/alice", b"/user/alice"),
        (b"/user/alice?x=1", b"/user/alice?x=1"),
        (b"/user/alicex/y", b"/user/alice/user/alicex/y"),  # another server's name is no prefix of ours
        (b"http://127.0.0.1:41873/items/", b"/user/alice/items/"),  # FastAPI's trailing-slash redirect
        (b"http://localhost:41873", b"/user/alice/"),
        (b"http://LOCALHOST:41873?q", b"/user/alice/?q"),
        (b"http://[::1]:41873/x#top", b"/user/alice/x#top"),
        (b"http://127.0.0.1:41873/user/alice/x", b"/user/alice/x"),
        (b"http://[::1]:41873/x", b"/user/alice/x"),
        (b"http://0.0.0.0:41873/x", b"/user/alice/x"),
        (b"http://user:pw@127.0.0.1:41873/x", b"/user/alice/x"),
        (b"http://127.0.0.1:41873@evil.example/x", b"http://127.0.0.1:41873@evil.example/x"),  # the host is evil's
        (b"http://hub.example.org/x", b"http://hub.example.org/user/alice/x"),
        (b"HTTPS://HUB.example.org:443/x", b"HTTPS://HUB.example.org:443/user/alice/x"),  # case, default port
        (b"http://hub.example.org", b"http://hub.example.org/user/alice/"),
        (b"http://hub.example.org?q=1", b"http://hub.example.org/user/alice/?q=1"),
        (b"http://hub.example.org:8080/x", b"http://hub.example.org:8080/x"),  # another port: another origin
        (b"https://hub.example.org/user/alice/x", b"https://hub.example.org/user/alice/x"),
        (b"/a/../b", b"/user/alice/b"),  # dot-segments resolved before the prefix goes in front
        (b"/user/alice/../bob/", b"/user/alice/user/bob/"),  # what the browser would make of it: outside
        (b"/x/%2E%2e/y/.", b"/user/alice/y/"),
        (b"/user/alice/./x", b"/user/alice/x"),
        (b"/..", b"/user/alice/"),
        (b"/\\evil.example/x", b"/\\evil.example/x"),  # browsers read /\ as //: foreign
        (b"\\\\127.0.0.1:41873\\x", b"/user/alice/x"),
        (b"http:\\\\hub.example.org\\x", b"http:\\\\hub.example.org/user/alice/x"),
        (b"//hub.example.org/x", b"//hub.example.org/user/alice/x"),
        (b"login", b"login"),
        (b"../x", b"../x"),
        (b"?page=2", b"?page=2"),
        (b"#frag", b"#frag"),
        (b"https://github.com/login/oauth", b"https://github.com/login/oauth"),
        (b"//evil.example/x", b"//evil.example/x"),
        (b"http://127.0.0.1:9999/x", b"http://127.0.0.1:9999/x"),  # not the app's port: foreign
        (b"mailto:a@b.c", b"mailto:a@b.c"),
        (b"javascript:alert(1)", b"javascript:alert(1)"),
        (b"", b""),
    ],
)
def test_location_forms(sent: bytes, got: bytes) -> None:
    assert _rewrite.location(sent, PLACE) == got


def test_jupyter_server_proxy_574_no_double_prefix() -> None:
    """jupyter-server-proxy 4.5.0 (its issue #574): an app told its public URL (LABEL_STUDIO_HOST) redirects
    to ``https://<hub>/<prefix>/user/login/``, and got the prefix a second time. Here it passes as sent, in
    every spelling of the prefix; a path that only starts like the prefix is no prefix."""
    place = _rewrite.Place(prefix=b"/user/dan@x.com", app_hosts=_rewrite.app_hosts(8080),
                           request_host=b"hub.example.org")
    for url in (b"https://hub.example.org/user/dan@x.com/user/login/?next=/",
                b"https://hub.example.org/user/dan%40x.com/user/login/",
                b"http://127.0.0.1:8080/user/dan@x.com/user/login/".replace(b"http://127.0.0.1:8080", b""),
                b"//hub.example.org/user/dan@x.com",
                b"/user/dan@x.com?next=/"):
        assert _rewrite.location(url, place) == url
    assert _rewrite.location(b"http://127.0.0.1:8080/user/dan@x.com/user/login/", place) == (
        b"/user/dan@x.com/user/login/")
    assert _rewrite.location(b"https://hub.example.org/user/dan@x.comet/", place) == (
        b"https://hub.example.org/user/dan@x.com/user/dan@x.comet/")


def test_the_apps_own_address_and_the_request_host() -> None:
    hosts = _rewrite.app_hosts(5000, (*_rewrite.LOOPBACK_NAMES, "::1", "10.0.0.7"))
    assert {b"127.0.0.1:5000", b"localhost:5000", b"[::1]:5000", b"0.0.0.0:5000", b"10.0.0.7:5000"} <= hosts
    assert _rewrite.request_host(b"Hub.Example.ORG:443") == b"hub.example.org"
    assert _rewrite.request_host(b"hub:80") == b"hub" and _rewrite.request_host(b"hub:8000") == b"hub:8000"
    assert _rewrite.request_host(b"[::1]:8000") == b"[::1]:8000" and _rewrite.request_host(None) == b""
    no_host = _rewrite.Place(prefix=b"/user/alice", app_hosts=_rewrite.app_hosts(5000))
    assert _rewrite.location(b"http://hub.example.org/x", no_host) == b"http://hub.example.org/x"


@pytest.mark.parametrize(
    ("sent", "got"),
    [
        (b"/login", b"/login"),
        (b"/a/../b", b"/a/../b"),
        (b"http://127.0.0.1:41873/login", b"/login"),  # the loopback origin alone goes: no browser reaches it
        (b"http://hub.example.org", b"http://hub.example.org"),
        (b"/user/alice/lab", b"/user/alice/lab"),
        (b"http://127.0.0.1:41873/user/alice/x", b"/user/alice/x"),
        (b"http://hub.example.org/x", b"http://hub.example.org/x"),
    ],
)
def test_with_keep_prefix_nothing_is_prefixed(sent: bytes, got: bytes) -> None:
    assert _rewrite.location(sent, KEEP) == got


def test_the_at_sign_of_a_prefix_in_either_spelling() -> None:
    place = _rewrite.Place(prefix=b"/user/dan@x.com")
    assert _rewrite.location(b"/user/dan%40x.com/a", place) == b"/user/dan%40x.com/a"
    assert _rewrite.location(b"/a", place) == b"/user/dan@x.com/a"


def test_at_the_root_only_the_apps_address_is_rewritten() -> None:
    place = _rewrite.Place(prefix=b"", app_hosts=_rewrite.app_hosts(5000))
    assert _rewrite.location(b"/x", place) == b"/x"
    assert _rewrite.location(b"http://127.0.0.1:5000/x", place) == b"/x"
    assert _rewrite.location(b"/a/../b", place) == b"/b"


@pytest.mark.parametrize("prefix", [b"", b"/user/alice"])
def test_a_path_never_becomes_another_host(prefix: bytes) -> None:
    """A path that starts with two slashes (after its origin went, or its dot-segments) would name a host:
    it is written so that it stays a path (at the root nothing goes in front of it)."""
    place = _rewrite.Place(prefix=prefix, app_hosts=_rewrite.app_hosts(5000))
    for sent in (b"http://127.0.0.1:5000//evil.example/x", b"http://127.0.0.1:5000\\\\evil.example/x",
                 b"/..//evil.example/x", b"/a/..//evil.example/x"):
        out = _rewrite.location(sent, place)
        assert out.startswith(prefix + b"/") and out[:2] not in (b"//", b"/\\"), out
        assert _rewrite.location(out, place) == out
    assert _rewrite.location(b"/..//a", PLACE) == b"/user/alice//a"


@pytest.mark.parametrize(
    ("sent", "got"),
    [
        (b"0; url=/next", b"0; url=/user/alice/next"),
        (b"5;URL='/next'", b"5;URL='/user/alice/next'"),
        (b"5; URL = \"/next\" ", b"5; URL = \"/user/alice/next\" "),
        (b"1.5, /next", b"1.5, /user/alice/next"),  # no "url=": the rest is the URL (HTML's refresh steps)
        (b"0;url='/next", b"0;url='/user/alice/next"),  # an unclosed quote
        (b"0; url=http://127.0.0.1:41873/n", b"0; url=/user/alice/n"),
        (b"0; url=next", b"0; url=next"),
        (b"3", b"3"),
        (b"; url=/next", b"; url=/next"),  # no delay: no refresh a browser follows
        (b"0; url=https://github.com/", b"0; url=https://github.com/"),
    ],
)
def test_refresh(sent: bytes, got: bytes) -> None:
    assert _rewrite.refresh(sent, PLACE) == got


@pytest.mark.parametrize(
    ("sent", "got"),
    [
        (b"session=abc; Path=/; HttpOnly", b"session=abc; Path=/user/alice/; HttpOnly"),
        (b"s=1; path=/api; Secure", b"s=1; path=/user/alice/api; Secure"),
        (b"s=1; Path=/user/alice/; Secure", b"s=1; Path=/user/alice/; Secure"),
        (b"s=1; HttpOnly", b"s=1; HttpOnly"),  # the browser's default path is inside the prefix
        (b"s=1; Domain=example.org; Path=/", b"s=1; Path=/user/alice/"),
        (b"s=1; Path=relative", b"s=1; Path=relative"),
        (b"s=1; Path", b"s=1; Path"),
        (b"s=1; path=/a; Path=/b", b"s=1; path=/user/alice/a; Path=/user/alice/b"),  # the last one counts: both
        (b"s=1; Path=/user/alicex", b"s=1; Path=/user/alice/user/alicex"),
        (b"s=1; Path=/user/alice", b"s=1; Path=/user/alice"),
        (b"s=1; DOMAIN=.example.org; Secure", b"s=1; Secure"),
        (b"s=\"a;b\"", b"s=\"a;b\""),
    ],
)
def test_cookie_paths_move_under_the_prefix(sent: bytes, got: bytes) -> None:
    assert _rewrite.set_cookie(sent, PLACE) == got


def test_cookie_domain_kept_on_request_and_keep_prefix_narrows() -> None:
    assert _rewrite.set_cookie(b"s=1; Domain=example.org", PLACE, keep_domain=True) == b"s=1; Domain=example.org"
    assert _rewrite.set_cookie(b"s=1; Path=/", KEEP) == b"s=1; Path=/user/alice/"
    assert _rewrite.set_cookie(b"s=1; Path=/user/alice/x", KEEP) == b"s=1; Path=/user/alice/x"


def test_response_headers_change_only_the_four_values() -> None:
    headers = [(b"location", b"/a"), (b"content-location", b"/b"), (b"refresh", b"0; url=/c"),
               (b"set-cookie", b"s=1; Path=/; Domain=example.org"), (b"x-location", b"/d"), (b"link", b"</e>")]
    out = _rewrite.response_headers(headers, PLACE, _rewrite.Rewrites())
    assert out == [(b"location", b"/user/alice/a"), (b"content-location", b"/user/alice/b"),
                   (b"refresh", b"0; url=/user/alice/c"), (b"set-cookie", b"s=1; Path=/user/alice/"),
                   (b"x-location", b"/d"), (b"link", b"</e>")]
    keep = _rewrite.response_headers(headers, PLACE, _rewrite.Rewrites(keep_domain=True))
    assert keep[3] == (b"set-cookie", b"s=1; Path=/user/alice/; Domain=example.org")
    assert _rewrite.response_headers(headers, PLACE, _rewrite.Rewrites(redirects=False, cookies=False)) == headers
    no_cookies = _rewrite.response_headers(headers, PLACE, _rewrite.Rewrites(cookies=False))
    assert no_cookies[3] == headers[3] and no_cookies[0] == (b"location", b"/user/alice/a")
    no_redirects = _rewrite.response_headers(headers, PLACE, _rewrite.Rewrites(redirects=False))
    assert no_redirects[:3] == headers[:3] and no_redirects[3] == out[3]


url_part = st.text(alphabet="abce2/\\?#:.@%-_=&;", max_size=30).map(str.encode)
url = st.one_of(
    url_part,
    url_part.map(lambda p: b"/" + p),
    url_part.map(lambda p: b"http://127.0.0.1:41873/" + p),
    url_part.map(lambda p: b"http://hub.example.org" + p),
    url_part.map(lambda p: b"https://other.example/" + p),
    url_part.map(lambda p: b"//hub.example.org/" + p),
)


@fuzz
@given(url, st.booleans())
def test_rewriting_twice_changes_nothing_more(value: bytes, keep: bool) -> None:
    place = KEEP if keep else PLACE
    once = _rewrite.location(value, place)
    assert _rewrite.location(once, place) == once


#: Paths an app writes: segments of letters, dots and a piece of the prefix, slashes, query and fragment.
app_path = st.lists(st.sampled_from(["a", "b", ".", "..", "user", "alice", "alicex", "?q=/..", "#f"]),
                    max_size=8).map(lambda parts: ("/" + "/".join(parts)).encode())


def _browser_path(location: bytes) -> str:
    """Where a browser on ``http://hub.example.org/user/alice/here`` goes for ``location``: its path."""
    url = urlsplit(urljoin("http://hub.example.org/user/alice/here", location.decode()))
    assert url.netloc == "hub.example.org"
    return urlsplit(urljoin("http://hub.example.org/", url.path)).path  # urljoin keeps the dots of //host/./x


@fuzz
@given(app_path, st.sampled_from([b"", b"http://127.0.0.1:41873", b"http://localhost:41873", b"//hub.example.org",
                                  b"http://hub.example.org"]))
def test_a_redirect_of_the_app_never_leaves_the_prefix(path: bytes, origin: bytes) -> None:
    """Where the browser lands (resolved by urllib, not by the rule) is inside the prefix, and the app's
    own path is kept after it; a path already inside the prefix is not prefixed twice."""
    if path.startswith(b"//"):
        path = b"/a" + path  # "//" would name a host
    out = _rewrite.location(origin + path, PLACE)
    landed = _browser_path(out)
    assert landed == "/user/alice" or landed.startswith("/user/alice/"), (path, out, landed)
    app_side = _browser_path(path)  # what the path means to the app, as if at the root
    if app_side == "/user/alice" or app_side.startswith("/user/alice/"):
        assert landed == app_side  # already inside: no double prefix
    else:
        assert landed == "/user/alice" + app_side


@fuzz
@given(st.text(alphabet="abc/=; ", max_size=40).map(str.encode), st.booleans())
def test_cookie_rewrite_is_idempotent_and_keeps_the_pair(value: bytes, keep: bool) -> None:
    place = KEEP if keep else PLACE
    once = _rewrite.set_cookie(value, place)
    assert _rewrite.set_cookie(once, place) == once
    assert once.split(b";")[0] == value.split(b";")[0]
