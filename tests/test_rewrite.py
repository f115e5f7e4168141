"""The app's redirects and cookie paths kept inside the prefix (trioproxy/_rewrite.py)."""

from __future__ import annotations

import os

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioproxy.rules import rewrite as _rewrite

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

PLACE = _rewrite.Place(
    prefix=b"/user/alice",
    app_hosts=_rewrite.app_hosts(41873),
    request_host=b"hub.example.org",
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
        (b"http://hub.example.org/x", b"http://hub.example.org/user/alice/x"),
        (b"https://hub.example.org/user/alice/x", b"https://hub.example.org/user/alice/x"),
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


@pytest.mark.parametrize(
    ("sent", "got"),
    [
        (b"/login", b"/login"),
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


@pytest.mark.parametrize(
    ("sent", "got"),
    [
        (b"0; url=/next", b"0; url=/user/alice/next"),
        (b"5;URL='/next'", b"5;URL='/user/alice/next'"),
        (b"3", b"3"),
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
        (b"s=\"a;b\"", b"s=\"a;b\""),
    ],
)
def test_cookie_paths_move_under_the_prefix(sent: bytes, got: bytes) -> None:
    assert _rewrite.set_cookie(sent, PLACE) == got


def test_cookie_domain_kept_on_request_and_keep_prefix_narrows() -> None:
    assert _rewrite.set_cookie(b"s=1; Domain=example.org", PLACE, keep_domain=True) == b"s=1; Domain=example.org"
    assert _rewrite.set_cookie(b"s=1; Path=/", KEEP) == b"s=1; Path=/user/alice/"
    assert _rewrite.set_cookie(b"s=1; Path=/user/alice/x", KEEP) == b"s=1; Path=/user/alice/x"


url_part = st.text(alphabet="abc/?#:.@%-_=&;", max_size=30).map(str.encode)
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


@fuzz
@given(url_part)
def test_a_path_absolute_redirect_never_leaves_the_prefix(tail: bytes) -> None:
    value = b"/" + tail
    if value.startswith(b"//"):
        return  # scheme-relative: another host
    out = _rewrite.location(value, PLACE)
    assert PLACE.inside(out)
    assert out.count(b"/user/alice/user/alice") <= value.count(b"/user/alice/user/alice")


@fuzz
@given(st.text(alphabet="abc/=; ", max_size=40).map(str.encode), st.booleans())
def test_cookie_rewrite_is_idempotent_and_keeps_the_pair(value: bytes, keep: bool) -> None:
    place = KEEP if keep else PLACE
    once = _rewrite.set_cookie(value, place)
    assert _rewrite.set_cookie(once, place) == once
    assert once.split(b";")[0] == value.split(b";")[0]
