"""The JupyterHub login against a fake Hub API: the details and the faults.

The real flows run against a real JupyterHub in ``test_hub_*.py``; here the
Hub is ``fake_hub.FakeHub`` so that it can check PKCE exactly, revoke a token,
go down, answer 500 or hang, on cue. trioproxy is a real process.
"""

from __future__ import annotations

import json
import re
from urllib.parse import parse_qs, urlsplit

import httpx
import pytest
import trio
import trio_websocket

from .conftest import app_cmd, free_port, run_proxy, serve_proxy
from .fake_hub import API_TOKEN, CLIENT_ID, fake_hub

PREFIX = "/user/dan/"


def client(**kw) -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=15, **kw)


async def start(hub, *args, env=None, port=None, real=False, **extra_env):
    """trioproxy in-process in front of the echo app, with ``hub``'s environment (``real``: as a process)."""
    port = port or free_port()
    full = hub.env(proxy_port=port, **extra_env)
    full.update(env or {})
    return (run_proxy if real else serve_proxy)(
        [*args, *app_cmd("echo_app.py")], env=full, prefix=PREFIX, port=port, authtype="oauth")


async def login(c: httpx.AsyncClient, url: str) -> httpx.Response:
    r = await c.get(url, follow_redirects=True)
    assert r.status_code == 200, r.text
    return r


def seen_cookies(r: httpx.Response) -> str:
    return dict(r.json()["headers"]).get("cookie", "")


async def test_login_flow_pkce_cookie_and_landing():
    async with fake_hub() as hub:
        async with await start(hub) as proxy:
            await proxy.wait_ready()
            async with client() as c:
                with trio.fail_after(20):
                    first = await c.get(proxy.url + "/echo?a=1&b=%2F", headers={"sec-fetch-mode": "navigate"})
                    assert first.status_code == 302
                    assert first.headers["x-jupyterhub-version"] == "6.1.1"
                    loc = urlsplit(first.headers["location"])
                    assert f"{loc.scheme}://{loc.netloc}{loc.path}" == f"http://127.0.0.1:{hub.port}/hub/api/oauth2/authorize"
                    q = {k: v[0] for k, v in parse_qs(loc.query).items()}
                    assert q["client_id"] == CLIENT_ID and q["response_type"] == "code"
                    assert q["redirect_uri"].endswith("/user/dan/oauth_callback")
                    assert q["code_challenge_method"] == "S256" and len(q["state"]) >= 20
                    state_cookie = first.headers["set-cookie"]
                    assert state_cookie.startswith(CLIENT_ID + "-oauth-state-")
                    assert "HttpOnly" in state_cookie and "Path=/user/dan/" in state_cookie
                    assert "Max-Age=600" in state_cookie and "Secure" not in state_cookie
                    assert q["state"] not in state_cookie  # sealed
                    r = await c.get(first.headers["location"], follow_redirects=True)
            assert r.status_code == 200 and str(r.url).endswith("/user/dan/echo?a=1&b=%2F")
            assert r.json()["raw_path"] == "/echo" and r.json()["query_string"] == "a=1&b=%2F"
            callback = r.history[-1]
            login_cookie = [
                v for k, v in callback.headers.multi_items() if k == "set-cookie" and v.startswith(CLIENT_ID + "=")
            ]
            assert len(login_cookie) == 1
            assert all(a in login_cookie[0] for a in ("HttpOnly", "Path=/user/dan/", "SameSite=Lax", "Max-Age=3600"))
            token = next(iter(hub.tokens))
            assert token not in login_cookie[0]
            form = hub.token_calls[-1]
            assert form["client_secret"] == API_TOKEN and form["grant_type"] == "authorization_code"
            assert "login: user dan" in proxy.log and token not in proxy.log and API_TOKEN not in proxy.log


async def test_callback_errors_and_two_tabs():
    async with fake_hub() as hub:
        async with await start(hub) as proxy:
            await proxy.wait_ready()
            cb = proxy.url + "/oauth_callback"
            async with client() as c:
                with trio.fail_after(20):
                    r = await c.get(cb + "?code=x")
                    assert r.status_code == 400 and "without a state" in r.text
                    r = await c.get(cb + "?state=x")
                    assert r.status_code == 400 and "without a code" in r.text
                    r = await c.get(cb + "?error=access_denied&error_description=%3Cb%3Enope")
                    assert r.status_code == 400 and "&lt;b&gt;nope" in r.text and "<b>nope" not in r.text
                    r = await c.get(cb + "?code=x&state=nosuchstate")
                    assert r.status_code == 403 and "does not match" in r.text
                    # Two tabs start logins; the second finishes first; both land.
                    one = await c.get(proxy.url + "/echo?tab=1")
                    two = await c.get(proxy.url + "/echo?tab=2")
                    assert one.status_code == two.status_code == 302
                    assert len([k for k in c.cookies if "-oauth-state-" in k]) == 2
                    hub_two = await c.get(two.headers["location"])  # the Hub answers with the callback redirect
                    hub_one = await c.get(one.headers["location"])
                    r2 = await c.get(hub_two.headers["location"], follow_redirects=True)
                    r1 = await c.get(hub_one.headers["location"], follow_redirects=True)
            assert r2.json()["query_string"] == "tab=2" and r1.json()["query_string"] == "tab=1"
            # A state from another browser is refused even with a valid code.
            async with client() as other:
                with trio.fail_after(10):
                    start_ = await other.get(proxy.url + "/echo")
                    at_hub = await other.get(start_.headers["location"])
                    code_url = at_hub.headers["location"]
                async with client() as thief:
                    with trio.fail_after(10):
                        r = await thief.get(code_url)
                assert r.status_code == 403


async def test_what_the_app_sees_and_user_info():
    async with fake_hub() as hub:
        async with await start(hub, "--forward-user-info", "--query-user-info") as proxy:
            await proxy.wait_ready()
            async with client() as c:
                with trio.fail_after(20):
                    await login(c, proxy.url + "/echo")
                    c.cookies.set("jupyterhub-session-id", "sess", path="/")
                    c.cookies.set("_xsrf", "hubxsrf", path="/user/dan/")
                    c.cookies.set("app", "mine", path="/user/dan/")
                    r = await c.get(proxy.url + "/echo?CDSDASHBOARDS_JH_USER=forged",
                                    headers={"X-CDSDASHBOARDS-JH-USER": "forged"})
            headers = r.json()["headers"]
            assert seen_cookies(r) == "app=mine"
            info = [v for k, v in headers if k == "x-cdsdashboards-jh-user"]
            assert len(info) == 1
            assert json.loads(info[0]) == {"kind": "user", "name": "dan", "admin": False, "groups": []}
            q = parse_qs(r.json()["query_string"])
            assert q["CDSDASHBOARDS_JH_USER"] == [info[0]]


async def test_app_with_its_own_xsrf_cookie_keeps_it():
    async with fake_hub() as hub:
        async with await start(hub) as proxy:
            await proxy.wait_ready()
            async with client() as c:
                with trio.fail_after(20):
                    await login(c, proxy.url + "/echo")
                    # The app sets _xsrf itself (as jupyter-server and Voila do)...
                    r = await c.get(proxy.url + "/setcookie?_xsrf=appxsrf")
                    assert r.status_code == 200
                    r = await c.get(proxy.url + "/echo")
            assert "_xsrf=appxsrf" in seen_cookies(r)


async def test_tokens_header_and_url_and_who_may_enter():
    # JupyterHub 2+ rules: only the token's scopes open the server (never a name, the
    # owner's included); the group and "anyone" admit general-purpose tokens only.
    async with fake_hub() as hub:
        owner = hub.add_user("dan")
        owner_elsewhere = hub.add_user("dan", scopes=["access:servers!server=dan/other", "read:users:name!user=dan"])
        owner_visiting = hub.add_user("dan", scopes=["access:servers!server=bob/", "read:users:name!user=dan"])
        owner_read_only = hub.add_user("dan", scopes=["read:users:name!user=dan"])
        owner_no_access = hub.add_user("dan", scopes=["users:activity!user=dan", "read:servers!user=dan"])
        member = hub.add_user("bob", groups=["team"])  # general purpose: access:servers!user=bob
        member_read_only = hub.add_user("bob", groups=["team"], scopes=["read:users:name!user=bob"])
        member_elsewhere = hub.add_user("bob", groups=["team"], scopes=["access:servers!server=eve/"])
        stranger = hub.add_user("eve")
        stranger_elsewhere = hub.add_user("eve", scopes=["access:servers!server=bob/", "read:users:name!user=eve"])
        stranger_read_only = hub.add_user("eve", scopes=["read:users:name!user=eve"])
        shared = hub.add_user("sam", scopes=["access:servers!server=dan/"])
        other_server = hub.add_user("kim", scopes=["access:servers!server=dan/other"])
        service = hub.add_user("svc", kind="service", scopes=["access:servers!user=dan"])
        service_general = hub.add_user("svc2", kind="service", scopes=["access:servers!user=svc2"])
        async with await start(hub, env={"JUPYTERHUB_GROUP": "team"}) as proxy:
            await proxy.wait_ready()
            async with client() as c:
                with trio.fail_after(30):
                    for tok, want in ((owner, 200), (owner_elsewhere, 403), (owner_visiting, 403),
                                      (owner_read_only, 403), (owner_no_access, 403),
                                      (member, 200), (member_read_only, 403), (member_elsewhere, 403),
                                      (stranger, 403), (shared, 200), (other_server, 403), (service, 200),
                                      (service_general, 403), ("nonsense", 403)):
                        for scheme in ("token", "Bearer"):
                            r = await c.get(proxy.url + "/echo", headers={"Authorization": f"{scheme} {tok}"})
                            assert r.status_code == want, (tok, scheme, r.text)
                            if want == 200:
                                assert "authorization" not in dict(r.json()["headers"])
                            assert tok not in r.text
                    r = await c.get(proxy.url + "/echo", headers={"Authorization": f"token {stranger}"})
                    assert "eve" in r.text and "belongs to dan" in r.text and "location" not in r.headers
                    # The owner with a token for another server: told why, and no token shown.
                    r = await c.get(proxy.url + "/echo", headers={"Authorization": f"token {owner_elsewhere}"})
                    assert "the owner of this server" in r.text and "does not grant access to this server" in r.text
                    assert "dan/other" not in r.text
                    # Another scheme belongs to the app: not ours, so it is a login question.
                    r = await c.get(proxy.url + "/echo", headers={"Authorization": "Basic Zm9vOmJhcg=="})
                    assert r.status_code == 302
                    # ?token= is for websocket handshakes only.
                    r = await c.get(proxy.url + f"/echo?token={owner}", headers={"sec-fetch-mode": "cors"})
                    assert r.status_code == 403
            assert "refused user dan: no access to this server" in proxy.log
            assert not any(t in proxy.log for t in (owner, owner_elsewhere, member_read_only, stranger))
        async with await start(hub, env={"JUPYTERHUB_ANYONE": "1"}) as proxy:
            await proxy.wait_ready()
            async with client() as c:
                with trio.fail_after(10):
                    for tok, want in ((stranger, 200), (stranger_elsewhere, 403), (stranger_read_only, 403),
                                      (owner_elsewhere, 403), (owner, 200), (service_general, 403)):
                        r = await c.get(proxy.url + "/echo", headers={"Authorization": f"token {tok}"})
                        assert r.status_code == want, (tok, r.text)


async def test_without_access_scopes_the_legacy_rules_hold():
    # A Hub older than 2.0 sets no access scopes: the owner, the group and "anyone" by name.
    async with fake_hub() as hub:
        owner = hub.add_user("dan", scopes=[])
        member = hub.add_user("bob", groups=["team"], scopes=[])
        stranger = hub.add_user("eve", scopes=[])
        service = hub.add_user("dan", kind="service", scopes=[])
        env = {"JUPYTERHUB_GROUP": "team", "JUPYTERHUB_OAUTH_ACCESS_SCOPES": ""}
        async with await start(hub, env=env) as proxy:
            await proxy.wait_ready()
            async with client() as c:
                with trio.fail_after(20):
                    for tok, want in ((owner, 200), (member, 200), (stranger, 403), (service, 403)):
                        r = await c.get(proxy.url + "/echo", headers={"Authorization": f"token {tok}"})
                        assert r.status_code == want, (tok, r.text)


async def test_malformed_tokens_get_403_and_the_hub_is_not_asked(tmp_path):
    from trioproxy.rules.cookies import Sealer
    from trioproxy.settings import MAX_TOKEN_BYTES

    secret = tmp_path / "secret"
    secret.write_text("cd" * 32)
    async with fake_hub() as hub:
        async with await start(hub, "--cookie-secret-file", str(secret)) as proxy:
            await proxy.wait_ready()
            sealer = Sealer(bytes.fromhex("cd" * 32))
            async with client() as c:
                with trio.fail_after(30):
                    calls = hub.user_calls
                    for value in ("token t\xf6k\xe9n".encode("latin-1"), b"token " + b"a" * (MAX_TOKEN_BYTES + 1),
                                  b"token ab\tcd", b"Bearer ab cd", "token ✓".encode()):
                        r = await c.get(proxy.url + "/echo", headers={"Authorization": value})
                        assert r.status_code == 403 and "malformed" in r.text, (value[:40], r.text)
                    for query in ("token=%00abc", "token=%C3%A9", "token=a%20b",
                                  "token=" + "a" * (MAX_TOKEN_BYTES + 1)):
                        with pytest.raises(trio_websocket.ConnectionRejected) as info:
                            async with trio_websocket.open_websocket_url(proxy.ws_url + "/ws?" + query):
                                pass
                        assert info.value.status_code == 403 and b"malformed" in info.value.body, query
                    # A login cookie sealed with our secret but holding a malformed token, or not sealed at all.
                    for sealed in (sealer.seal(CLIENT_ID, "bad token"), sealer.seal(CLIENT_ID, "x" * 5000),
                                   "n\xf6t-s\xe9aled"):
                        r = await c.get(proxy.url + "/echo",
                                        headers={"Cookie": f"{CLIENT_ID}={sealed}".encode("latin-1"),
                                                 "Sec-Fetch-Mode": "cors"})
                        assert r.status_code == 403 and "Login required" in r.text
                        assert any(v.startswith(CLIENT_ID + "=;")
                                   for k, v in r.headers.multi_items() if k == "set-cookie")
                    assert hub.user_calls == calls  # the Hub was never asked
            assert "Traceback" not in proxy.log and "malformed token" in proxy.log


async def test_credential_cookies_and_url_tokens_never_reach_the_app():
    async with fake_hub() as hub:
        tok = hub.add_user("dan")
        async with await start(hub, env={"JUPYTERHUB_ALLOW_TOKEN_IN_URL": "1"}) as proxy:
            await proxy.wait_ready()
            jar = ("jupyterhub-user-dan-other=a; __Host-jupyterhub-user-eve=b; jupyterhub-services=c; "
                   "jupyterhub-user-dan-oauth-state-12345678=d; x-oauth-state=e; jupyterhub-hub-login=f; "
                   "jupyterhub-session-id=g; JupyterHub-User-Dan=h; _xsrf=i; app=mine; jupyterhub=kept")
            async with client() as c:
                with trio.fail_after(20):
                    h = {"Authorization": f"token {tok}", "Cookie": jar}
                    r = await c.get(proxy.url + "/echo?a=1&token=other&%74oken=x&b=2", headers=h)
                    assert r.status_code == 200
                    assert seen_cookies(r) == "app=mine; jupyterhub=kept"
                    assert r.json()["query_string"] == "a=1&b=2"
                    # The URL token authenticates (JUPYTERHUB_ALLOW_TOKEN_IN_URL=1) and is removed too.
                    r = await c.get(proxy.url + f"/echo?token={tok}&c=3", headers={"Cookie": jar})
                    assert r.status_code == 200 and r.json()["query_string"] == "c=3" and tok not in r.text
                    assert seen_cookies(r) == "app=mine; jupyterhub=kept"
                    async with trio_websocket.open_websocket_url(
                        proxy.ws_url + "/ws?token=zzz&d=4",
                        extra_headers=[("Authorization", f"token {tok}"), ("Cookie", jar)],
                    ) as conn:
                        await conn.send_message("headers?")
                        seen = json.loads(await conn.get_message())
                    assert seen["query_string"] == "d=4"
                    assert dict(seen["headers"]).get("cookie") == "app=mine; jupyterhub=kept"
                    assert "authorization" not in dict(seen["headers"])


async def test_anonymous_requests_that_are_not_navigations_get_403():
    async with fake_hub() as hub:
        async with await start(hub) as proxy:
            await proxy.wait_ready()
            async with client() as c:
                with trio.fail_after(10):
                    for method, headers in (
                        ("POST", {}),
                        ("PUT", {}),
                        ("GET", {"sec-fetch-mode": "cors"}),
                        ("GET", {"x-requested-with": "XMLHttpRequest"}),
                        ("GET", {"authorization": "token bad"}),
                    ):
                        r = await c.request(method, proxy.url + "/echo", headers=headers)
                        assert r.status_code == 403 and "location" not in r.headers, (method, headers)
                    r = await c.head(proxy.url + "/echo")
                    assert r.status_code == 302


async def test_websockets_are_authenticated_like_http():
    async with fake_hub() as hub:
        owner = hub.add_user("dan")
        stranger = hub.add_user("eve", scopes=[])
        async with await start(hub) as proxy:
            await proxy.wait_ready()
            ws = proxy.ws_url + "/ws"

            async def refused(url, headers=()):
                with pytest.raises(trio_websocket.ConnectionRejected) as info:
                    async with trio_websocket.open_websocket_url(url, extra_headers=list(headers)):
                        pass
                return info.value.status_code

            with trio.fail_after(20):
                assert await refused(ws) == 403
                assert await refused(ws + "?token=nonsense") == 403
                assert await refused(ws + f"?token={stranger}") == 403
                assert await refused(ws, [("Authorization", f"token {stranger}")]) == 403
                async with trio_websocket.open_websocket_url(ws + f"?token={owner}&x=1") as conn:
                    await conn.send_message("headers?")
                    seen = json.loads(await conn.get_message())
                    assert seen["query_string"] == "x=1" and owner not in json.dumps(seen)
                async with client() as c:
                    await login(c, proxy.url + "/echo")
                    cookie = "; ".join(f"{k}={v}" for k, v in c.cookies.items())
                origin = f"http://127.0.0.1:{proxy.port}"
                async with trio_websocket.open_websocket_url(
                    ws, extra_headers=[("Cookie", cookie), ("Origin", origin)]
                ) as conn:
                    await conn.send_message("hi")
                    assert await conn.get_message() == "hi"
                assert await refused(ws, [("Cookie", cookie), ("Origin", "http://evil.example")]) == 403
                cross_site = [("Cookie", cookie), ("Origin", origin), ("Sec-Fetch-Site", "cross-site")]
                assert await refused(ws, cross_site) == 403
                # Cross-site unsafe HTTP with the cookie is refused; same-origin works without any _xsrf.
                async with client(cookies=c.cookies) as c2:
                    r = await c2.post(proxy.url + "/echo", content=b"x", headers={"Origin": "http://evil.example"})
                    assert r.status_code == 403 and "Cross-site" in r.text
                    r = await c2.post(proxy.url + "/echo", content=b"x",
                                      headers={"Origin": origin, "Sec-Fetch-Site": "same-origin"})
                    assert r.status_code == 200
            assert "refused a cross-site websocket" in proxy.log


async def test_bad_and_old_cookies_and_the_cookie_secret(tmp_path):
    secret = tmp_path / "secret"
    secret.write_text("ab" * 32)
    async with fake_hub() as hub:
        port = free_port()
        async with client() as c:
            async with await start(hub, "--cookie-secret-file", str(secret), port=port) as proxy:
                await proxy.wait_ready()
                with trio.fail_after(20):
                    await login(c, proxy.url + "/echo")
            # Same secret after a restart: still logged in.
            async with await start(hub, "--cookie-secret-file", str(secret), port=port) as proxy:
                await proxy.wait_ready()
                with trio.fail_after(20):
                    r = await c.get(proxy.url + "/echo")
                    assert r.status_code == 200
            # A random secret: the old cookie is worthless, cleared, and the browser sent to log in.
            async with await start(hub, port=port) as proxy:
                await proxy.wait_ready()
                with trio.fail_after(20):
                    r = await c.get(proxy.url + "/echo")
                    assert r.status_code == 302
                    assert any(v.startswith(CLIENT_ID + "=;") and "Max-Age=0" in v
                               for k, v in r.headers.multi_items() if k == "set-cookie")
                    c.cookies.clear()
                    r = await c.get(proxy.url + "/echo", headers={"Cookie": f"{CLIENT_ID}=forged-value"})
                    assert r.status_code == 302


async def test_cookie_flags_from_the_hub_environment():
    async with fake_hub() as hub:
        env = {"JUPYTERHUB_PUBLIC_URL": "https://hub.example.org/", "JUPYTERHUB_COOKIE_HOST_PREFIX_ENABLED": "1",
               "JUPYTERHUB_COOKIE_OPTIONS": json.dumps({"SameSite": "Strict"})}
        async with await start(hub, env=env) as proxy:
            await proxy.wait_ready()
            async with client() as c:
                with trio.fail_after(10):
                    r = await c.get(proxy.url + "/echo")
        cookie = r.headers["set-cookie"]
        assert cookie.startswith(f"__Host-{CLIENT_ID}-oauth-state-")
        assert "Path=/;" in cookie and "Secure" in cookie and "SameSite=Strict" in cookie


async def test_revoked_token_stops_within_the_cache_ttl():
    async with fake_hub() as hub:
        tok = hub.add_user("dan")
        async with await start(hub, "--auth-cache-ttl", "1") as proxy:
            await proxy.wait_ready()
            async with client() as c:
                with trio.fail_after(20):
                    h = {"Authorization": f"token {tok}"}
                    for _ in range(5):
                        assert (await c.get(proxy.url + "/echo", headers=h)).status_code == 200
                    assert hub.user_calls == 1  # cached
                    del hub.tokens[tok]
                    await trio.sleep(1.2)
                    assert (await c.get(proxy.url + "/echo", headers=h)).status_code == 403


async def test_hub_down_500_and_slow(jump_clock):
    async with fake_hub() as hub:
        tok = hub.add_user("dan")
        fresh = hub.add_user("dan")
        async with await start(hub, "--auth-cache-ttl", "600") as proxy:
            await proxy.wait_ready()
            async with client() as c:
                with trio.fail_after(40):
                    h = {"Authorization": f"token {tok}"}
                    assert (await c.get(proxy.url + "/echo", headers=h)).status_code == 200
                    await hub.stop()
                    # Logged-in users keep working within the cache...
                    assert (await c.get(proxy.url + "/echo", headers=h)).status_code == 200
                    # ...an unknown token gets a clear 502, no traceback.
                    r = await c.get(proxy.url + "/echo", headers={"Authorization": f"token {fresh}"})
                    assert r.status_code == 502 and "JupyterHub unavailable" in r.text
                    assert "Traceback" not in r.text and fresh not in r.text
                    # A login callback while the Hub is down: 502 too.
                    start_ = await c.get(proxy.url + "/echo")
                    state = parse_qs(urlsplit(start_.headers["location"]).query)["state"][0]
                    r = await c.get(proxy.url + f"/oauth_callback?code=abc&state={state}")
                    assert r.status_code == 502
                    await hub.start()
                    hub.mode = "500"
                    r = await c.get(proxy.url + "/echo", headers={"Authorization": f"token {fresh}"})
                    assert r.status_code == 502 and "500" in r.text
                    hub.mode = "slow"
                    # A hanging Hub holds only the requests that need it.
                    async with trio.open_nursery() as n:
                        stuck = []

                        async def ask():
                            stuck.append(await c.get(proxy.url + "/echo", headers={"Authorization": f"token {fresh}"}))

                        n.start_soon(ask)
                        await trio.sleep(0.3)
                        t0 = trio.current_time()
                        assert (await c.get(proxy.url + "/echo", headers=h)).status_code == 200
                        assert trio.current_time() - t0 < 2
                    assert stuck[0].status_code == 502 and "did not answer in time" in stuck[0].text


async def test_readiness_probe_held_while_the_app_starts():
    async with fake_hub() as hub:
        port = free_port()
        env = hub.env(proxy_port=port)
        # The app takes about 2 s to listen.
        args = ["--hub-ready-timeout", "20", "--ready-timeout", "30",
                "--", "sh", "-c",
                f"sleep 2; exec {app_cmd('echo_app.py')[1]} {app_cmd('echo_app.py')[2]} --port {{port}}"]
        async with serve_proxy(args, env=env, prefix=PREFIX, port=port, authtype="oauth") as proxy:
            async with client() as c:
                with trio.fail_after(20):
                    r = await c.get(proxy.url + "/api")
                    assert r.status_code == 503 and r.headers["x-jupyterhub-version"] == "6.1.1"
                    while r.status_code == 503:
                        await trio.sleep(0.1)
                        r = await c.get(proxy.url + "/api")
                    assert r.status_code == 302  # the Hub counts any non-5xx as up
                    assert "the app is ready" in proxy.log
        async with serve_proxy(["--hub-ready-timeout", "0.5", "--", "sleep", "60"], env=hub.env(proxy_port=port),
                             prefix=PREFIX, port=port, authtype="oauth") as proxy:
            async with client() as c:
                with trio.fail_after(10):
                    await trio.sleep(0.6)
                    r = await c.get(proxy.url + "/api")
                    # Past the bound, the app not ready: trioproxy answers the probe itself (non-5xx, no details).
                    assert r.status_code == 200 and "the app is not ready" in r.text


async def test_activity_reports_default_server_backoff_and_refusal(jump_clock):
    async with fake_hub() as hub:
        tok = hub.add_user("dan")
        args = ["--last-activity-interval", "1", "--no-force-alive"]
        async with await start(hub, *args) as proxy:
            await proxy.wait_ready()
            with trio.fail_after(20):
                await trio.sleep(2.5)
                assert hub.activity == []  # idle: nothing to report
                async with client() as c:
                    await c.get(proxy.url + "/echo", headers={"Authorization": f"token {tok}"})
                while not hub.activity:
                    await trio.sleep(0.1)
                body = hub.activity[0][1]
                assert set(body) == {"servers", "last_activity"} and set(body["servers"]) == {""}
                assert body["servers"][""]["last_activity"] == body["last_activity"]
                assert re.fullmatch(r"\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{6}Z", body["last_activity"])
                n = len(hub.activity)
                await trio.sleep(2.5)
                assert len(hub.activity) == n  # idle again: stands still
        hub.activity.clear()
        hub.mode = "500"
        async with await start(hub, "--last-activity-interval", "1") as proxy:
            with trio.fail_after(20):
                while len(hub.activity) < 1 and "activity report failed" not in proxy.log:
                    await trio.sleep(0.1)
                await proxy.wait_log("activity report failed")
                hub.mode = "ok"
                hub.activity_status = 400
                while not hub.activity:
                    await trio.sleep(0.1)
                n = len(hub.activity)
                while len(hub.activity) < n + 2:
                    await trio.sleep(0.1)
            assert proxy.log.count("the Hub refused the activity report") == 1


async def test_a_refused_websocket_followed_by_a_request_on_its_connection_leaves_the_server_up():
    from . import rawnet

    async with fake_hub() as hub:
        async with await start(hub, real=True) as proxy:  # the server stays up: a real process's
            await proxy.wait_ready()
            ws = rawnet.request("GET", "/user/dan/ws", headers=[
                ("Upgrade", "websocket"), ("Connection", "Upgrade"),
                ("Sec-WebSocket-Key", "dGhlIHNhbXBsZSBub25jZQ=="), ("Sec-WebSocket-Version", "13")])
            with trio.fail_after(20):
                # The refusal, then the connection ends: the pipelined request is never answered
                # (nor forwarded), and the server does not wait out a `quiet` second to close.
                start_at = trio.current_time()
                responses, rest, closed = await rawnet.exchange(
                    proxy.port, ws + rawnet.request("GET", "/user/dan/echo"), quiet=5)
                assert [r.status for r in responses] == [403] and rest == b"" and closed
                assert trio.current_time() - start_at < 4
                await trio.sleep(0.5)
                assert proxy.proc.returncode is None, proxy.log[-3000:]
                async with client() as c:
                    r = await c.get(proxy.url + "/echo", headers={"Sec-Fetch-Mode": "cors"})
                assert r.status_code == 403
