"""Header rules (pure)."""

from trioproxy import _headers


def test_request_drops_hop_by_hop_and_named_ones_keeps_host():
    h = [
        (b"host", b"hub.example"),
        (b"connection", b"keep-alive, x-foo"),
        (b"x-foo", b"1"),
        (b"keep-alive", b"300"),
        (b"te", b"trailers"),
        (b"upgrade", b"h2c"),
        (b"proxy-connection", b"keep-alive"),
        (b"x-cdsdashboards-jh-user", b"spoof"),
        (b"expect", b"100-continue"),
        (b"cookie", b"a=1"),
    ]
    out = _headers.upstream_request(h, client_host="10.0.0.1", scheme="http", server_port=8888, prefix="/user/dan")
    names = [n for n, _ in out]
    assert (b"host", b"hub.example") in out and (b"cookie", b"a=1") in out
    for gone in (b"connection", b"x-foo", b"keep-alive", b"te", b"upgrade", b"proxy-connection", b"x-cdsdashboards-jh-user", b"expect"):
        assert gone not in names
    assert (b"x-forwarded-for", b"10.0.0.1") in out
    assert (b"x-forwarded-proto", b"http") in out
    assert (b"x-forwarded-host", b"hub.example") in out
    assert (b"x-forwarded-port", b"8888") in out
    assert (b"x-forwarded-prefix", b"/user/dan") in out


def test_forwarded_appends_for_and_keeps_earlier_proto():
    h = [(b"host", b"h"), (b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-proto", b"https"), (b"x-forwarded-prefix", b"/evil")]
    out = _headers.upstream_request(h, client_host="::ffff:127.0.0.1", scheme="http", server_port=1, prefix="/p")
    assert (b"x-forwarded-for", b"1.1.1.1, 127.0.0.1") in out
    assert (b"x-forwarded-proto", b"https") in out
    assert [v for n, v in out if n == b"x-forwarded-prefix"] == [b"/p"]


def test_chunked_request_reframed():
    h = [(b"host", b"h"), (b"transfer-encoding", b"chunked"), (b"content-length", b"5")]
    out = _headers.upstream_request(h, client_host=None, scheme="http", server_port=None, prefix="")
    assert (b"transfer-encoding", b"chunked") in out and not any(n == b"content-length" for n, _ in out)


def test_response_keeps_every_set_cookie_and_encoding():
    h = [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"content-encoding", b"gzip"), (b"connection", b"close, x-hop"),
         (b"x-hop", b"1"), (b"transfer-encoding", b"chunked"), (b"content-length", b"10")]
    out = _headers.downstream_response(h)
    # A Content-Length beside Transfer-Encoding is dropped (RFC 9112 §6.3): we re-frame the body.
    assert out == [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"content-encoding", b"gzip")]
    assert _headers.downstream_response([(b"content-length", b"10")]) == [(b"content-length", b"10")]


def test_websocket_headers():
    h = [(b"host", b"h"), (b"upgrade", b"websocket"), (b"connection", b"Upgrade"), (b"sec-websocket-key", b"k"),
         (b"sec-websocket-version", b"13"), (b"sec-websocket-protocol", b"a, b"), (b"cookie", b"c=1"), (b"origin", b"http://h")]
    out = _headers.upstream_websocket(h, client_host=None, scheme="http", server_port=None, prefix="")
    names = [n for n, _ in out]
    assert b"cookie" in names and b"origin" in names
    for gone in (b"host", b"upgrade", b"connection", b"sec-websocket-key", b"sec-websocket-protocol"):
        assert gone not in names


def test_strip_query_arg_byte_for_byte():
    assert _headers.strip_query_arg(b"a=%2F&CDSDASHBOARDS_JH_USER=x&flag&b=+", "CDSDASHBOARDS_JH_USER") == b"a=%2F&flag&b=+"
    assert _headers.strip_query_arg(b"a=1&flag", "CDSDASHBOARDS_JH_USER") == b"a=1&flag"
