"""Property-based fuzzing of the pure parts: templates, routing and prefixes, header and
cookie rules, scopes, login targets, sealed cookies, settings.

Budget: ``FUZZ_EXAMPLES`` examples per property (200 by default, a few seconds in all);
``make fuzz`` runs the long form (``FUZZ_EXAMPLES=20000``).
"""

from __future__ import annotations

import os
import string

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from trioproxy import settings as _settings
from trioproxy.auth import oauth as _oauth
from trioproxy.auth import passage as _auth
from trioproxy.rules import cookies as _cookies
from trioproxy.rules import headers as _headers
from trioproxy.rules import routing as _routing
from trioproxy.rules import scopes as _scopes
from trioproxy.rules import template as _template

EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "200"))
fuzz = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

ascii_bytes = st.binary(max_size=200)
header_name = st.sampled_from(
    [b"host", b"cookie", b"connection", b"keep-alive", b"transfer-encoding", b"content-length", b"upgrade", b"te",
     b"x-forwarded-for", b"x-forwarded-proto", b"x-cdsdashboards-jh-user", b"authorization", b"origin",
     b"sec-fetch-site", b"x-custom", b"proxy-authorization", b"trailer", b"expect"]
)
headers = st.lists(st.tuples(header_name, st.binary(max_size=60)), max_size=12)


@fuzz
@given(st.lists(st.text(max_size=30), min_size=1, max_size=5))
def test_templates_either_render_or_name_the_bad_word(words):
    values = {"port": 8123, "base_url": "/user/x", "presentation_path": "", "presentation_dirname": "",
              "presentation_basename": "", "origin_host": "h:1"}
    try:
        keys = _template.check(words)
    except _template.TemplateError as exc:
        assert any(repr(w) in str(exc) for w in words)
        return
    assert keys <= set(values) | {"-", "--"}
    out = _template.render(words, values)
    assert len(out) == len(words)


@fuzz
@given(st.sampled_from(["/user/dan", "/user/a@b.com", "", "/user/x/srv"]), ascii_bytes, ascii_bytes,
       st.sampled_from(["GET", "POST", "HEAD", "PUT"]), st.booleans())
def test_routing_never_climbs_out_of_the_prefix(prefix, raw_path, query, method, keep):
    router = _routing.Router.for_prefix(prefix, keep_prefix=keep)
    route = router.route(method, raw_path, query)
    p = router.prefix
    if isinstance(route, _routing.Forward):
        assert raw_path.startswith(p + b"/")
        target = route.target
        path = target.split(b"?", 1)[0]
        assert path == (raw_path if keep else raw_path[len(p):])
        assert path.startswith(b"/")
    elif isinstance(route, _routing.Redirect):
        assert route.location.startswith(p + b"/") or route.location.startswith(p.replace(b"%40", b"@") + b"/")
        assert ((b"\r" not in route.location and b"\n" not in route.location)
                or b"\r" in raw_path + query or b"\n" in raw_path + query)
    elif isinstance(route, _routing.Internal):
        assert raw_path.startswith(_routing.OPS) or raw_path == p + route.path


@fuzz
@given(headers, st.sampled_from(["", "/user/dan"]))
def test_upstream_headers_drop_every_hop_by_hop_field(hs, prefix):
    out = _headers.upstream_request(hs, client_host="127.0.0.1", scheme="http", server_port=8000, prefix=prefix)
    named = _headers._connection_tokens(hs)
    chunked = any(n == b"transfer-encoding" for n, _ in hs)
    ours = {b"x-forwarded-for", b"x-forwarded-proto", b"x-forwarded-host", b"x-forwarded-port", b"x-forwarded-prefix"}
    for name, _ in out:
        if name == b"transfer-encoding":
            assert chunked
            continue
        assert name not in _headers.HOP_BY_HOP and (name not in named or name in ours)
        assert name not in (b"expect", _headers.USER_INFO_HEADER)
    if chunked:
        assert not any(n == b"content-length" for n, _ in out)
    ws = _headers.upstream_websocket(hs, client_host=None, scheme="ws", server_port=None, prefix=prefix)
    assert not any(n in _headers.WEBSOCKET_HANDSHAKE or n in _headers.HOP_BY_HOP for n, _ in ws)


@fuzz
@given(st.lists(st.tuples(st.sampled_from(["a", "b", "token", "CDSDASHBOARDS_JH_USER", "t%6Fken", "x y"]),
                          st.text(alphabet=string.printable, max_size=8)), max_size=8))
def test_strip_query_arg_removes_every_copy_and_keeps_the_rest(pairs):
    from urllib.parse import quote, unquote_plus

    query = "&".join(f"{k}={quote(v)}" for k, v in pairs).encode()
    for name in ("token", "CDSDASHBOARDS_JH_USER"):
        out = _headers.strip_query_arg(query, name)
        parts = [p for p in out.split(b"&") if p]
        assert all(unquote_plus(p.split(b"=", 1)[0].decode()) != name for p in parts)
        kept = [p for p in query.split(b"&") if p and unquote_plus(p.split(b"=", 1)[0].decode()) != name]
        assert parts == kept


cookie_name = st.sampled_from(["jupyterhub-user-dan", "jupyterhub-user-dan-oauth-state-1a2b3c4d", "app", "_xsrf",
                               "jupyterhub-session-id", "theme", ""])


@fuzz
@given(st.lists(st.tuples(cookie_name,
                          st.text(alphabet=string.ascii_letters + string.digits + "=/+-_.\"", max_size=20)),
                max_size=8), st.lists(st.binary(max_size=40), max_size=2))
def test_cookie_rewriting_keeps_exactly_the_others(pairs, junk):
    value = "; ".join(f"{k}={v}" if k else v for k, v in pairs)
    hs = [(b"cookie", value.encode()), *[(b"cookie", j) for j in junk], (b"host", b"h")]
    parsed = _cookies.parse(hs)
    drop = lambda n: n.startswith("jupyterhub-")  # noqa: E731
    out = _cookies.without(hs, drop)
    assert not any(drop(k) for k, _ in _cookies.parse(out))
    assert [(k, v) for k, v in _cookies.parse(out)] == [(k, v) for k, v in parsed if not drop(k)]
    assert (b"host", b"h") in out


@fuzz
@given(st.text(max_size=200), st.binary(max_size=64))
def test_sealed_values_never_open_with_anything_but_themselves(sealed, secret):
    sealer = _cookies.Sealer(secret or b"x", clock=lambda: 1_000_000.0)
    assert sealer.unseal("n", sealed, 3600) is None or sealed.startswith("gAAAA")
    token = sealer.seal("n", sealed)
    assert sealer.unseal("n", token, 3600) == sealed
    assert sealer.unseal("m", token, 3600) is None


scope = st.builds(
    lambda base, kind, value: f"{base}!{kind}={value}" if kind else base,
    st.sampled_from(["access:servers", "access:services", "read:users"]),
    st.sampled_from(["", "user", "server", "group", "service", "bogus"]),
    st.sampled_from(["dan", "eve", "dan/", "dan/x", "team", ""]),
)


@fuzz
@given(st.lists(scope, max_size=6), st.lists(scope, max_size=6), st.lists(scope, max_size=3))
def test_more_scopes_never_grant_less(have, need, extra):
    who = _scopes.Who(user="eve", groups=frozenset({"team"}), owner="dan")
    if _scopes.grants(have, need, who):
        assert _scopes.grants(have + extra, need, who)
    assert not _scopes.grants([], need, who)


@fuzz
@given(st.text(max_size=80), st.sampled_from(["/user/dan", ""]))
def test_login_lands_only_on_this_server(next_url, prefix):
    out = _oauth.safe_next(next_url, prefix)
    assert out.startswith(prefix + "/") and not out.startswith("//") and "\\" not in out
    assert not any(c in out for c in "\r\n\t")


@fuzz
@given(headers, st.sampled_from(["http", "https", "ws", "wss"]))
def test_cross_site_check_never_raises(hs, scheme):
    assert isinstance(_auth.is_cross_site(hs, scheme), bool)
    assert _auth.browser_scheme(hs, scheme) in ("http", "https")


env_value = st.one_of(st.text(max_size=30), st.sampled_from(["", "0", "1", "-1", "[]", "{}", "null", "http://[::1]:99/x/"]))


@fuzz
@given(st.dictionaries(st.sampled_from([
    "JUPYTERHUB_SERVICE_URL", "JUPYTERHUB_SERVICE_PREFIX", "JUPYTERHUB_OAUTH_ACCESS_SCOPES",
    "JUPYTERHUB_COOKIE_OPTIONS",
    "JUPYTERHUB_SSL_KEYFILE", "JUPYTERHUB_SSL_CERTFILE", "NBGITPULLER_DEPTH", "JUPYTERHUB_ANYONE",
    "TRIOPROXY_COOKIE_SECRET", "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED", "JUPYTERHUB_ALLOW_TOKEN_IN_URL"]), env_value))
def test_settings_from_any_environment_build_or_name_the_culprit(environ):
    from trioproxy.cli import parse

    try:
        s = parse(["--", "app", "{port}"], environ)
    except Exception as exc:  # click.UsageError carries the SettingsError text
        assert type(exc).__name__ == "UsageError", repr(exc)
        assert any(name in str(exc) for name in environ) or "COMMAND" in str(exc), str(exc)
        return
    assert isinstance(s, _settings.Settings)
    assert s.proxy.prefix == "" or s.proxy.prefix.startswith("/")
