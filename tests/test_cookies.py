from trioproxy.rules import cookies as _cookies


def hdrs(*cookies: str) -> list[tuple[bytes, bytes]]:
    return [(b"host", b"x")] + [(b"cookie", c.encode()) for c in cookies]


def test_parse_all_cookie_headers_in_order():
    h = hdrs("a=1; b=2", "c=3;;  d = 4 ", "flag")
    assert _cookies.parse(h) == [("a", "1"), ("b", "2"), ("c", "3"), ("d", "4"), ("", "flag")]
    assert _cookies.get(h, "c") == "3" and _cookies.get(h, "zz") is None


def test_without_drops_only_named_cookies_and_keeps_other_headers():
    h = hdrs("app=1; jupyterhub-user-dan=SEALED", "jupyterhub-session-id=s; theme=\"dark\"")
    out = _cookies.without(h, lambda n: n.startswith("jupyterhub-"))
    assert out == [(b"host", b"x"), (b"cookie", b'app=1; theme="dark"')]


def test_without_removes_the_header_when_nothing_is_left_and_is_identity_otherwise():
    assert _cookies.without(hdrs("x=1"), lambda n: n == "x") == [(b"host", b"x")]
    h = hdrs("a=1")
    assert _cookies.without(h, lambda n: n == "x") == h


def test_set_cookie_attributes():
    p = _cookies.CookiePolicy(path="/user/dan/", secure=True)
    v = _cookies.set_cookie("n", "v", p, max_age=60).decode()
    assert v == "n=v; Path=/user/dan/; HttpOnly; Max-Age=60; Secure; SameSite=Lax"
    cleared = _cookies.clear_cookie("n", p).decode()
    assert "Max-Age=0" in cleared and "Expires=Thu, 01 Jan 1970" in cleared and cleared.startswith("n=;")
    assert "Max-Age" not in _cookies.set_cookie("n", "v", p, max_age=None).decode()


def test_cookie_options_may_tighten_but_not_move_the_cookie():
    p = _cookies.policy_from_options(
        "/user/dan/", False, {"SameSite": "None", "path": "/", "httponly": False, "domain": "example.org"}
    )
    assert p.path == "/user/dan/" and p.secure and p.samesite == "None" and p.domain == "example.org"
    assert _cookies.policy_from_options("/p/", False, {"secure": True}).secure
    assert _cookies.policy_from_options("/p/", False, {"samesite": "bogus"}).samesite == "Lax"
    assert _cookies.policy_from_options("/p/", False, {"samesite": None}).samesite == ""


def test_sealer_round_trip_binding_age_and_key():
    now = [1000.0]
    s = _cookies.Sealer(b"k" * 32, clock=lambda: now[0])
    sealed = s.seal("login", "tok-123")
    assert "tok-123" not in sealed and ";" not in sealed and " " not in sealed
    assert s.unseal("login", sealed, 60) == "tok-123"
    assert s.unseal("other-name", sealed, 60) is None  # bound to its cookie name
    now[0] += 61
    assert s.unseal("login", sealed, 60) is None  # too old
    assert _cookies.Sealer(b"x" * 32, clock=lambda: 1000.0).unseal("login", sealed, 1e9) is None  # other key
    assert s.unseal("login", sealed[:-2] + "AA", 1e9) is None  # tampered
    assert s.unseal("login", "not a token", 1e9) is None
    assert s.unseal("login", "é", 1e9) is None
