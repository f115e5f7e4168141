"""Header rules (pure)."""

from trioproxy.rules import headers as _headers


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
    for gone in (b"connection", b"x-foo", b"keep-alive", b"te", b"upgrade", b"proxy-connection",
                 b"x-cdsdashboards-jh-user", b"expect"):
        assert gone not in names
    assert (b"x-forwarded-for", b"10.0.0.1") in out
    assert (b"x-forwarded-proto", b"http") in out
    assert (b"x-forwarded-host", b"hub.example") in out
    assert (b"x-forwarded-port", b"8888") in out
    assert (b"x-forwarded-prefix", b"/user/dan") in out


def test_forwarded_appends_for_and_keeps_earlier_proto():
    h = [(b"host", b"h"), (b"x-forwarded-for", b"1.1.1.1"), (b"x-forwarded-proto", b"https"),
         (b"x-forwarded-prefix", b"/evil")]
    out = _headers.upstream_request(h, client_host="::ffff:127.0.0.1", scheme="http", server_port=1, prefix="/p")
    assert (b"x-forwarded-for", b"1.1.1.1, 127.0.0.1") in out
    assert (b"x-forwarded-proto", b"https") in out
    assert [v for n, v in out if n == b"x-forwarded-prefix"] == [b"/p"]


def _fwd(out):
    return {n: [v for m, v in out if m == n] for n in (b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host",
                                                        b"x-forwarded-port", b"x-forwarded-prefix")}


def test_forwarded_rules_behind_configurable_http_proxy():
    # What CHP 5 (http-proxy's xfwd) sends behind a TLS ingress: For/Port/Proto with its hop
    # appended by ",", the browser's Host, and a client's X-Forwarded-Host passed on untouched.
    h = [(b"host", b"hub.example.org"), (b"x-forwarded-host", b"evil.example"), (b"x-forwarded-host", b"evil2"),
         (b"x-forwarded-for", b"203.0.113.7,10.0.0.2"), (b"x-forwarded-port", b"443,80"),
         (b"x-forwarded-proto", b"https,http"), (b"x-forwarded-prefix", b"/evil")]
    for prefix in ("/user/dan", ""):
        out = _headers.upstream_request(h, client_host="10.0.0.3", scheme="http", server_port=8888, prefix=prefix)
        assert _fwd(out) == {
            b"x-forwarded-for": [b"203.0.113.7,10.0.0.2, 10.0.0.3"],
            b"x-forwarded-proto": [b"https"],
            b"x-forwarded-host": [b"hub.example.org"],
            b"x-forwarded-port": [b"443"],
            b"x-forwarded-prefix": [prefix.encode()] if prefix else [],
        }
    # Repeated fields count as one list (RFC 9110 §5.3); the first element wins.
    out = _headers.upstream_request(
        [(b"host", b"h"), (b"x-forwarded-proto", b" wss "), (b"x-forwarded-proto", b"http")],
        client_host=None, scheme="http", server_port=None, prefix="",
    )
    assert _fwd(out)[b"x-forwarded-proto"] == [b"wss"] and _fwd(out)[b"x-forwarded-for"] == []
    # Nothing came: this hop's values. No Host (HTTP/1.0): no X-Forwarded-Host, whatever the client says.
    out = _headers.upstream_request([(b"x-forwarded-host", b"evil")], client_host="127.0.0.1", scheme="https",
                                    server_port=443, prefix="")
    assert _fwd(out) == {b"x-forwarded-for": [b"127.0.0.1"], b"x-forwarded-proto": [b"https"],
                         b"x-forwarded-host": [], b"x-forwarded-port": [b"443"], b"x-forwarded-prefix": []}


def test_websocket_x_forwarded_host_is_the_request_host():
    h = [(b"host", b"hub.example.org"), (b"x-forwarded-host", b"evil"), (b"upgrade", b"websocket")]
    out = _headers.upstream_websocket(h, client_host="127.0.0.1", scheme="http", server_port=8000, prefix="/p")
    assert _fwd(out)[b"x-forwarded-host"] == [b"hub.example.org"] and not any(n == b"host" for n, _ in out)


def test_names_with_underscores_never_reach_the_app():
    h = [(b"host", b"h"), (b"x_cdsdashboards_jh_user", b'{"name": "admin"}'), (b"x-cdsdashboards-jh-user", b"spoof"),
         (b"_", b"1"), (b"x-ok", b"1"), (b"x_forwarded_host", b"evil")]
    for out in (_headers.upstream_request(h, client_host=None, scheme="http", server_port=None, prefix=""),
                _headers.upstream_websocket(h, client_host=None, scheme="http", server_port=None, prefix="")):
        assert [n for n, _ in out if b"_" in n or n == _headers.USER_INFO_HEADER] == []
        assert (b"x-ok", b"1") in out
    assert _headers.without_underscores([(b"a_b", b"1"), (b"a-b", b"2")]) == [(b"a-b", b"2")]


def test_chunked_request_reframed():
    h = [(b"host", b"h"), (b"transfer-encoding", b"chunked"), (b"content-length", b"5")]
    out = _headers.upstream_request(h, client_host=None, scheme="http", server_port=None, prefix="")
    assert (b"transfer-encoding", b"chunked") in out and not any(n == b"content-length" for n, _ in out)


def test_response_keeps_every_set_cookie_and_encoding():
    h = [(b"set-cookie", b"a=1"), (b"set-cookie", b"b=2"), (b"content-encoding", b"gzip"),
         (b"connection", b"close, x-hop"), (b"x-hop", b"1"), (b"transfer-encoding", b"chunked"),
         (b"content-length", b"10")]
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
    stripped = _headers.strip_query_arg(b"a=%2F&CDSDASHBOARDS_JH_USER=x&flag&b=+", "CDSDASHBOARDS_JH_USER")
    assert stripped == b"a=%2F&flag&b=+"
    assert _headers.strip_query_arg(b"a=1&flag", "CDSDASHBOARDS_JH_USER") == b"a=1&flag"
