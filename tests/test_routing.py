"""Prefix routing (pure)."""

from trioproxy.rules.routing import Forward, Internal, NotFound, Redirect, Router


def test_forward_keeps_raw_bytes():
    r = Router.for_prefix("/user/dan")
    assert (r.route("GET", b"/user/dan/a%2Fb/%25x/%40y", b"x=1&flag&p=a+b")
            == Forward(b"/a%2Fb/%25x/%40y?x=1&flag&p=a+b"))
    assert r.route("GET", b"/user/dan/", b"") == Forward(b"/")


def test_bare_prefix_redirects_to_slash_keeping_query():
    r = Router.for_prefix("/user/dan")
    assert r.route("GET", b"/user/dan", b"a=1") == Redirect(302, b"/user/dan/?a=1")
    assert r.route("POST", b"/user/dan", b"") == Redirect(307, b"/user/dan/")


def test_outside_prefix_is_not_found():
    r = Router.for_prefix("/user/dan")
    assert r.route("GET", b"/user/danny/x", b"") == NotFound()
    assert r.route("GET", b"/user/bob/", b"") == NotFound()
    assert r.route("GET", b"/", b"") == NotFound()


def test_encoded_at_redirects_to_at_form():
    r = Router.for_prefix("/user/dan@x.com")
    assert r.route("GET", b"/user/dan%40x.com/foo%20bar", b"a=1") == Redirect(301, b"/user/dan@x.com/foo%20bar?a=1")
    assert r.route("GET", b"/user/dan%40x.com", b"") == Redirect(301, b"/user/dan@x.com/")
    assert r.route("GET", b"/user/dan@x.com/ok", b"") == Forward(b"/ok")


def test_root_prefix_forwards_everything():
    r = Router.for_prefix("")
    assert r.route("GET", b"/", b"") == Forward(b"/")
    assert r.route("GET", b"/oauth_callback", b"code=1") == Internal(b"/oauth_callback")


def test_oauth_callback_is_internal():
    assert (Router.for_prefix("/user/dan").route("GET", b"/user/dan/oauth_callback", b"x")
            == Internal(b"/oauth_callback"))


def test_ops_endpoints_are_outside_every_prefix():
    for prefix in ("/user/dan", ""):
        r = Router.for_prefix(prefix)
        assert r.route("GET", b"/_trioproxy/live", b"") == Internal(b"/_trioproxy/live")
    assert (Router.for_prefix("/user/dan").route("GET", b"/user/dan/_trioproxy/x", b"")
            == Internal(b"/_trioproxy/x", True))


def test_keep_prefix_forwards_the_whole_path():
    r = Router.for_prefix("/user/dan", keep_prefix=True)
    assert r.route("GET", b"/user/dan/app/x", b"q=1") == Forward(b"/user/dan/app/x?q=1")
    assert r.route("GET", b"/user/dan/oauth_callback", b"") == Internal(b"/oauth_callback")
    assert r.route("GET", b"/user/dan", b"") == Redirect(302, b"/user/dan/")


def test_owner_controls_under_the_prefix_need_login():
    r = Router.for_prefix("/user/dan")
    assert r.route("GET", b"/user/dan/_trioproxy/status", b"") == Internal(b"/_trioproxy/status", login=True)


def test_dot_segments_may_not_leave_the_prefix():
    r = Router.for_prefix("/user/dan")
    for path in (b"/user/dan/../eve/", b"/user/dan/%2e%2e/eve/x", b"/user/dan/.%2E/eve", b"/user/dan/x/../../eve"):
        assert r.route("GET", path, b"") == NotFound(), path
    assert r.route("GET", b"/user/dan/a/../b", b"") == Forward(b"/a/../b")
    assert r.route("GET", b"/user/dan/v1.2/file.txt", b"") == Forward(b"/v1.2/file.txt")
