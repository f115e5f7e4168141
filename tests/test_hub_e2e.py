"""trioproxy as the single-user server of a real JupyterHub (4.1, 5.x, 6.x) behind
configurable-http-proxy, spawned by SimpleLocalProcessSpawner, driven as users
would: the Hub's login form, then every OAuth redirect followed.

One Hub per version for the whole file (``tests/hub.py``); each test starts
the servers it needs and stops them.
"""

from __future__ import annotations

import html
import json
import re

import pytest
import trio
import trio_websocket

from .conftest import APPS, PY
from .hub import TRIOPROXY, HubProcess, alive, shared_hub, version_params, wait_gone

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=version_params())
def hub(request, hubs):
    with shared_hub(hubs, request.param) as h:
        yield h


@pytest.fixture(scope="module", params=version_params())
def ssl_hub(request, hubs):
    with shared_hub(hubs, request.param, internal_ssl=True) as h:
        yield h


async def serve(hub: HubProcess, user: str, *options: str, name: str = "", env=None, app="echo_app.py", app_args=()):
    hub.set_server_cmd(user, name, hub.trioproxy_cmd(*options, app=app, app_args=app_args), env=env)
    return await hub.start_server(user, name)


async def authorize_if_asked(c, r):
    """Click "Authorize" on the Hub's OAuth confirmation page, as a user would, if it is shown."""
    if "/hub/api/oauth2/authorize" not in str(r.url) or r.status_code != 200:
        return r
    fields = re.findall(r'<input type="hidden" name="([^"]+)" value="([^"]*)"', r.text)
    assert fields, r.text[:2000]
    form: dict[str, list[str]] = {}
    for k, v in fields:
        form.setdefault(k, []).append(html.unescape(v))
    return await c.post(str(r.url), data=form)


def cookies_seen(r) -> str:
    return dict(r.json()["headers"]).get("cookie", "")


def header_names(r) -> set[str]:
    return {k for k, _ in r.json()["headers"]}


async def test_owner_gets_in_and_the_app_never_sees_credentials(hub):
    server = await serve(hub, "alice", "--forward-user-info")
    try:
        async with hub.client() as c:
            with trio.fail_after(30):
                # Log in at the Hub, asking for a page of alice's server: the Hub sends the
                # browser there, trioproxy to authorize, the Hub to our callback, we to the page.
                first = await hub.login(c, "alice", next_url="/user/alice/echo?x=1")
                # (JupyterHub 4 adds redirects=1 when it sends the browser on to the server.)
                assert first.status_code == 200 and first.json()["query_string"] in ("x=1", "x=1&redirects=1")
                hops = [str(h.url) for h in first.history]
                assert any("/hub/api/oauth2/authorize" in u for u in hops), hops
                assert any("/user/alice/oauth_callback" in u for u in hops), hops
                c.cookies.set("mine", "1", domain="127.0.0.1", path="/user/alice/")
                r = await c.get(server["full_url"] + "echo?x=1")
        assert r.status_code == 200, r.text
        assert r.json()["raw_path"] == "/echo" and r.json()["query_string"] == "x=1"
        assert cookies_seen(r) == "mine=1"  # no login, state, session or _xsrf cookie
        assert "authorization" not in header_names(r)
        info = json.loads(dict(r.json()["headers"])["x-cdsdashboards-jh-user"])
        assert info == {"kind": "user", "name": "alice", "admin": False, "groups": ["team"]}
        login_cookie = next(ck for ck in c.cookies.jar if ck.name == "jupyterhub-user-alice")
        assert login_cookie.path == "/user/alice/" and login_cookie.has_nonstandard_attr("HttpOnly")
    finally:
        await hub.stop_server("alice")


async def test_other_users_and_the_anonymous_are_refused(hub):
    server = await serve(hub, "alice")
    url = server["full_url"] + "echo"
    try:
        with trio.fail_after(40):
            async with hub.client() as anon:
                r = await anon.get(url)  # to the Hub's login page, via authorize
                assert r.status_code == 200 and "/hub/login" in str(r.url)
                assert (await anon.post(url, content=b"x")).status_code == 403
                assert (await anon.get(url, headers={"Sec-Fetch-Mode": "cors"})).status_code == 403
            async with hub.client() as bob:
                await hub.login(bob, "bob")
                r = await bob.get(url)
                # The Hub itself refuses bob at authorize: no redirect loop, a 403.
                assert r.status_code == 403
            bob_token = await hub.user_token("bob")
            async with hub.client() as api:
                r = await api.get(url, headers={"Authorization": f"token {bob_token}"})
                assert r.status_code == 403 and "bob" in r.text and "belongs to alice" in r.text
                alice_token = await hub.user_token("alice")
                r = await api.get(url, headers={"Authorization": f"token {alice_token}"})
                assert r.status_code == 200 and "authorization" not in header_names(r)
    finally:
        await hub.stop_server("alice")


async def test_websockets_are_authenticated(hub):
    server = await serve(hub, "alice")
    ws = server["full_url"].replace("http://", "ws://") + "ws"
    origin = hub.url

    async def refused(url, headers=()):
        with pytest.raises(trio_websocket.ConnectionRejected) as info:
            async with trio_websocket.open_websocket_url(url, extra_headers=list(headers)):
                pass
        return info.value.status_code

    try:
        with trio.fail_after(40):
            assert await refused(ws) == 403
            assert await refused(ws + "?token=" + await hub.user_token("bob")) == 403
            alice_token = await hub.user_token("alice")
            async with trio_websocket.open_websocket_url(ws + f"?token={alice_token}") as conn:
                await conn.send_message("headers?")
                seen = json.loads(await conn.get_message())
                assert alice_token not in json.dumps(seen) and seen["query_string"] == ""
            async with hub.client() as c:
                await hub.login(c, "alice")
                assert (await c.get(server["full_url"] + "echo")).status_code == 200
                cookie = "; ".join(f"{ck.name}={ck.value}" for ck in c.cookies.jar
                                   if "/user/alice/".startswith(ck.path))
            good = [("Cookie", cookie), ("Origin", origin)]
            async with trio_websocket.open_websocket_url(ws, extra_headers=good) as conn:
                await conn.send_message("headers?")
                seen = json.loads(await conn.get_message())
                assert "jupyterhub" not in dict(seen["headers"]).get("cookie", "")
            assert await refused(ws, [("Cookie", cookie), ("Origin", "http://evil.example")]) == 403
            assert await refused(ws, [("Cookie", cookie), ("Origin", origin), ("Sec-Fetch-Site", "cross-site")]) == 403
    finally:
        await hub.stop_server("alice")


async def test_group_and_anyone_widen_access_for_hub_users(hub):
    carol = await hub.user_token("carol")
    bob = await hub.user_token("bob")
    try:
        server = await serve(hub, "alice", env={"JUPYTERHUB_GROUP": "team"})
        url = server["full_url"] + "echo"
        async with hub.client() as c:
            with trio.fail_after(30):
                assert (await c.get(url, headers={"Authorization": f"token {bob}"})).status_code == 200
                assert (await c.get(url, headers={"Authorization": f"token {carol}"})).status_code == 403
        await hub.stop_server("alice")
        server = await serve(hub, "alice", env={"JUPYTERHUB_ANYONE": "1"})
        async with hub.client() as c:
            with trio.fail_after(30):
                assert (await c.get(url, headers={"Authorization": f"token {carol}"})).status_code == 200
    finally:
        await hub.stop_server("alice")


async def test_hub_sharing_admits_whom_it_should(hub):
    if hub.major < 5:
        pytest.skip("sharing is new in JupyterHub 5")
    server = await serve(hub, "alice", name="shared")
    url = server["full_url"] + "echo"
    try:
        with trio.fail_after(40):
            async with hub.client() as dave:
                await hub.login(dave, "dave")
                assert (await dave.get(url)).status_code == 403
                await hub.api("POST", "/shares/alice/shared", json={"user": "dave"}, expect=(200, 201))
                r = await authorize_if_asked(dave, await dave.get(url))
                assert r.status_code == 200 and r.json()["raw_path"] == "/echo"
                # The share opens that server only, not alice's default one.
                token = await hub.user_token("dave")
                h = {"Authorization": f"token {token}"}
                assert (await dave.get(url, headers=h)).status_code == 200
                default = await serve(hub, "alice")
                assert (await dave.get(default["full_url"] + "echo", headers=h)).status_code == 403
    finally:
        await hub.stop_server("alice", "shared")
        await hub.stop_server("alice")


async def test_revoked_token_stops_working_within_the_cache_ttl(hub):
    server = await serve(hub, "alice", "--auth-cache-ttl", "1")
    url = server["full_url"] + "echo"
    try:
        token = await hub.user_token("alice")
        async with hub.client() as c:
            with trio.fail_after(30):
                h = {"Authorization": f"token {token}"}
                assert (await c.get(url, headers=h)).status_code == 200
                tokens = (await hub.api("GET", "/users/alice/tokens", expect=200)).json()
                tokens = tokens.get("api_tokens", tokens) if isinstance(tokens, dict) else tokens
                for t in tokens:
                    await hub.api("DELETE", f"/users/alice/tokens/{t['id']}", expect=(200, 204))
                await trio.sleep(1.5)
                assert (await c.get(url, headers=h)).status_code == 403
    finally:
        await hub.stop_server("alice")


async def _last_activity(hub, user, name):
    return (await hub.server_model(user, name))["last_activity"]


#: Activity reports every second (±10 %): a window of this long holds at least one report, if due.
IDLE_WINDOW_S = 2.2


async def _activity_follows_traffic(hub, name: str, token: str) -> None:
    server = await serve(hub, "alice", "--no-force-alive", "--last-activity-interval", "1", name=name)
    try:
        before = await _last_activity(hub, "alice", name)
        await trio.sleep(IDLE_WINDOW_S)  # idle: the reporter has nothing to say
        assert await _last_activity(hub, "alice", name) == before
        async with hub.client() as c:
            r = await c.get(server["full_url"] + "echo", headers={"Authorization": f"token {token}"})
            assert r.status_code == 200
        while await _last_activity(hub, "alice", name) == before:
            await trio.sleep(0.2)
        # The request touched the tracker more than once (its start, its answer, a few ms
        # apart): a report may fall between them. Let the last one arrive, then expect calm.
        await trio.sleep(IDLE_WINDOW_S)
        moved = await _last_activity(hub, "alice", name)
        assert moved > before
        await trio.sleep(IDLE_WINDOW_S)
        assert await _last_activity(hub, "alice", name) == moved
    finally:
        await hub.stop_server("alice", name)


async def test_activity_moves_with_traffic_and_stands_still_when_idle(hub):
    """The default server and a named one of the same user, side by side (the waits are the test's
    whole cost, and the two servers report under their own names)."""
    token = await hub.user_token("alice")
    with trio.fail_after(40):
        async with trio.open_nursery() as nursery:
            for name in ("", "named"):
                nursery.start_soon(_activity_follows_traffic, hub, name, token)


async def test_stopping_from_the_hub_leaves_no_process(hub, tmp_path):
    # fork_app leaves two grandchildren, one in a session of its own.
    pidfile = tmp_path / "pids.json"
    await serve(hub, "alice", app="fork_app.py", app_args=("--pidfile", str(pidfile), "--devnull"))
    with trio.fail_after(10):
        while not pidfile.exists():
            await trio.sleep(0.05)
    pids = json.loads(pidfile.read_text())
    proxy_pid = await hub.server_pid("alice")
    everyone = [proxy_pid, pids["pid"], pids["grandchild_pid"], pids["session_grandchild_pid"]]
    assert all(alive(p) for p in everyone), everyone
    await hub.stop_server("alice")
    await wait_gone(everyone, timeout=15)


async def test_server_counts_ready_only_when_the_app_is(hub):
    # The app needs ~2 s to listen; the Hub reports the server ready only then,
    # so the first page is the app's, not a "starting" page.
    app = f"{PY} {APPS / 'echo_app.py'}"
    hub.set_server_cmd("alice", "", [TRIOPROXY, "--ready-timeout", "30", "--", "sh", "-c",
                                     f"sleep 2; exec {app} --port {{port}}"])
    server = await hub.start_server("alice")
    try:
        token = await hub.user_token("alice")
        async with hub.client() as c:
            with trio.fail_after(20):
                r = await c.get(server["full_url"] + "echo", headers={"Authorization": f"token {token}"})
        assert r.status_code == 200 and r.json()["raw_path"] == "/echo"
    finally:
        await hub.stop_server("alice")


async def test_internal_ssl_login_websocket_and_activity(ssl_hub):
    hub = ssl_hub
    with trio.fail_after(150):
        server = await serve(hub, "alice", "--no-force-alive", "--last-activity-interval", "1")
        assert (await hub.api("GET", "/users/alice", expect=200)).status_code == 200
        before = await _last_activity(hub, "alice", "")
        async with hub.client() as c:
            # The Hub and CHP reach trioproxy over TLS with their client certificates;
            # trioproxy reaches the Hub API with its own.
            r = await hub.login(c, "alice", next_url="/user/alice/echo")
            assert r.status_code == 200 and r.json()["raw_path"] == "/echo"
            cookie = "; ".join(
                f"{ck.name}={ck.value}" for ck in c.cookies.jar if "/user/alice/".startswith(ck.path)
            )
        ws = server["full_url"].replace("http://", "ws://") + "ws"
        async with trio_websocket.open_websocket_url(
            ws, extra_headers=[("Cookie", cookie), ("Origin", hub.url)]
        ) as conn:
            await conn.send_message("hello?")
            assert await conn.get_message() == "hello!"
        while await _last_activity(hub, "alice", "") == before:
            await trio.sleep(0.2)
        await hub.stop_server("alice")
