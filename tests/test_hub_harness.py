"""The real-JupyterHub harness (tests/hub.py) and the browser driver (tests/browser.py) work.

On each installed Hub (4.1, 5.x, 6.x): the Hub spawns trioproxy (``--authtype none``) in front
of the echo app for a default and a named server, CHP routes to them, stopping from the Hub
leaves no process behind; the same over internal SSL (mutual TLS checked); the login form,
user tokens, groups and sharing work; JupyterHub's own singleuser server goes through the real
OAuth redirects with an httpx client (the reference the trioproxy login must match); headless
Chromium logs in and renders pages through the Hub.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import httpx
import pytest
import trio

from .browser import browse, needs_chromium
from .hub import (
    ADMIN_USER,
    HubProcess,
    alive,
    installed_versions,
    marked_pids,
    run_hub,
    shared_hub,
    version_params,
    wait_gone,
)

pytestmark = pytest.mark.slow

SINGLEUSER = Path(sys.executable).parent / "jupyterhub-singleuser"


@pytest.fixture(scope="module", params=version_params())
def hub(request, hubs):
    """The session's Hub of each version (a sync fixture: pytest-trio has no module-scoped
    async ones). Each test stops the servers it starts."""
    with shared_hub(hubs, request.param) as h:
        yield h


@pytest.fixture(scope="module", params=version_params())
def ssl_hub(request, hubs):
    with shared_hub(hubs, request.param, internal_ssl=True) as h:
        yield h


@pytest.fixture(scope="module")
def hub6(hubs):
    with shared_hub(hubs, "6") as h:
        yield h


async def _check_server(hub: HubProcess, user: str, name: str, model: dict) -> tuple[int, int]:
    """GET echo and pid through CHP; the spawned trioproxy's pid and the app's pid."""
    prefix = f"/user/{user}/" + (f"{name}/" if name else "")
    assert model["url"] == prefix
    assert model["full_url"] == hub.url + prefix
    async with hub.client() as client:
        r = await client.get(f"{hub.url}{prefix}echo?x=1")
        assert r.status_code == 200, r.text
        echo = r.json()
        assert (echo["method"], echo["raw_path"], echo["query_string"]) == ("GET", "/echo", "x=1")
        headers = {k.lower(): v for k, v in echo["headers"]}
        assert headers["x-forwarded-prefix"] == prefix.rstrip("/")
        info = (await client.get(f"{hub.url}{prefix}pid")).json()
    env = info["env"]
    assert ("JUPYTERHUB_API_TOKEN" in env) == bool(name)  # the default server's app never holds it
    assert env["JUPYTERHUB_SERVICE_PREFIX"] == prefix
    assert env["JUPYTERHUB_SERVER_NAME"] == name
    assert env["JUPYTERHUB_USER"] == user
    assert env["TRIOPROXY_TEST_SERVER"] == (name or "default")
    proxy_pid = await hub.server_pid(user, name)
    assert proxy_pid and alive(proxy_pid) and alive(info["pid"])
    assert proxy_pid != info["pid"]
    return proxy_pid, info["pid"]


async def test_hub_spawns_trioproxy_default_and_named(hub):
    with trio.fail_after(60):
        pids = {}
        for name in ("", "named"):
            # The named server also gets scopes of its own (its token's and its OAuth client's).
            scopes = {"server_token_scopes": ["users:activity!user", "read:users:groups!user"]} if name else {}
            if name:
                scopes["oauth_client_allowed_scopes"] = ["read:users:groups!user"]
            env = {"TRIOPROXY_TEST_SERVER": name or "default"}
            # The named server's app reads its server's token (below): only with --pass-api-token.
            options = ("--authtype", "none", *(("--pass-api-token",) if name else ()))
            hub.set_server_cmd("alice", name, hub.trioproxy_cmd(*options), env=env, **scopes)
            model = await hub.start_server("alice", name)
            pids[name] = await _check_server(hub, "alice", name, model)
        async with hub.client() as client:
            env = (await client.get(f"{hub.url}/user/alice/named/pid")).json()["env"]
        assert json.loads(env["JUPYTERHUB_OAUTH_CLIENT_ALLOWED_SCOPES"]) == ["read:users:groups!user"]
        me = (await hub.api("GET", "/user", token=env["JUPYTERHUB_API_TOKEN"], expect=200)).json()
        assert "read:users:groups!user=alice" in me["scopes"]
        assert not any(s.startswith("access:servers") for s in me["scopes"])
        # Both run at once; stopping one leaves the other.
        await hub.stop_server("alice", "named")
        await wait_gone(pids["named"])
        assert all(alive(p) for p in pids[""])
        async with hub.client() as client:
            assert (await client.get(f"{hub.url}/user/alice/echo")).status_code == 200
        await hub.stop_server("alice")
        await wait_gone(pids[""])
        assert await hub.server_model("alice") is None
        # A restart reads the (new) spawn spec again.
        hub.set_server_cmd("alice", "", hub.trioproxy_cmd("--authtype", "none"), env={"TRIOPROXY_TEST_SERVER": "again"})
        await hub.start_server("alice")
        async with hub.client() as client:
            info = (await client.get(f"{hub.url}/user/alice/pid")).json()
        assert info["env"]["TRIOPROXY_TEST_SERVER"] == "again"
        await hub.stop_server("alice")
        await wait_gone([info["pid"]])


async def test_hub_login_form_tokens_groups(hub):
    with trio.fail_after(60):
        async with hub.client() as client:
            r = await hub.login(client, "carol", next_url="/hub/home")
            assert r.status_code == 200 and r.url.path == "/hub/home", (r.status_code, r.url)
            jar = {(c.name, c.path) for c in client.cookies.jar}
            assert {("jupyterhub-hub-login", "/hub/"), ("jupyterhub-session-id", "/")} <= jar
            # The login cookie is enough for the Hub's own API (a GET needs no _xsrf).
            assert (await client.get(f"{hub.url}/hub/api/user")).json()["name"] == "carol"
        async with hub.client() as client:
            with pytest.raises(Exception, match="login of carol failed"):
                await hub.login(client, "carol", password="wrong")
        token = await hub.user_token("alice", scopes=["read:users:groups!user", "access:servers!user"])
        me = (await hub.api("GET", "/user", token=token, expect=200)).json()
        assert (me["name"], me["groups"]) == ("alice", ["team"])
        assert "access:servers!user=alice" in me["scopes"]
        assert (await hub.api("GET", f"/users/{ADMIN_USER}", expect=200)).json()["admin"] is True
        assert sorted((await hub.api("GET", "/groups/team", expect=200)).json()["users"]) == ["alice", "bob"]


@pytest.mark.skipif(not SINGLEUSER.exists(), reason="jupyterhub-singleuser (jupyter_server) not installed")
async def test_reference_oauth_with_jupyterhub_singleuser(hub):
    """JupyterHub's own single-user server behind the harness: the OAuth redirects, cookies
    and confirmation page that trioproxy's login must reproduce, all through httpx."""
    with trio.fail_after(90):
        # JUPYTER_NO_CONFIG: no server extensions (voila, panel) to load: 2.5 s instead of 6.
        hub.set_server_cmd("alice", "", [str(SINGLEUSER), "--allow-root"], env={"JUPYTER_NO_CONFIG": "1"})
        await hub.start_server("alice", timeout=60)
        try:
            if hub.major >= 5:
                await hub.api("POST", "/shares/alice/", json={"user": "carol"}, expect=200)
            navigate = {"Sec-Fetch-Mode": "navigate", "Accept": "text/html"}
            for who, outcome in (
                ("alice", "own"),
                ("admin", "confirm"),
                ("bob", 403),
                ("carol", "confirm" if hub.major >= 5 else 403),
            ):
                async with hub.client(headers=navigate) as client:
                    r = await client.get(f"{hub.url}/user/alice/files/none.txt")
                    # server -> /hub/api/oauth2/authorize -> /hub/login?next=<authorize URL>
                    assert [h.url.path for h in r.history] == [
                        "/user/alice/files/none.txt",
                        "/hub/api/oauth2/authorize",
                    ]
                    assert r.url.path == "/hub/login"
                    state_cookie = [c for c in client.cookies.jar if c.name == "jupyterhub-user-alice-oauth-state"]
                    assert state_cookie and state_cookie[0].path == "/user/alice/"
                    r = await hub.login(client, who, next_url=r.url.params["next"])
                    if outcome == "confirm":
                        assert hub.is_oauth_confirm_page(r), r.text[:300]
                        r = await hub.confirm_oauth(client, r)
                    if outcome == 403:
                        assert r.status_code == 403 and r.url.path == "/hub/api/oauth2/authorize"
                        assert (await client.get(f"{hub.url}/user/alice/api/status")).status_code == 403
                        continue
                    # authorize -> /user/alice/oauth_callback?code&state -> the page first asked for
                    assert [h.url.path for h in r.history][-2:] == [
                        "/hub/api/oauth2/authorize",
                        "/user/alice/oauth_callback",
                    ]
                    assert r.url.path == "/user/alice/files/none.txt" and r.status_code == 404
                    jar = {(c.name, c.path) for c in client.cookies.jar}
                    assert ("jupyterhub-user-alice", "/user/alice/") in jar
                    assert ("jupyterhub-user-alice-oauth-state", "/user/alice/") not in jar
                    assert (await client.get(f"{hub.url}/user/alice/api/status")).status_code == 200
        finally:
            await hub.stop_server("alice")


async def test_hub_internal_ssl(ssl_hub):
    hub = ssl_hub
    with trio.fail_after(120):
        hub.set_server_cmd(
            "bob", "", hub.trioproxy_cmd("--authtype", "none"), env={"TRIOPROXY_TEST_SERVER": "default"}
        )
        model = await hub.start_server("bob")
        proxy_pid, app_pid = await _check_server(hub, "bob", "", model)
        async with hub.client() as client:
            env = (await client.get(f"{hub.url}/user/bob/pid")).json()["env"]
        assert env["JUPYTERHUB_SERVICE_URL"].startswith("https://127.0.0.1:")
        assert env["JUPYTERHUB_API_URL"].startswith("https://127.0.0.1:")
        for name in ("JUPYTERHUB_SSL_KEYFILE", "JUPYTERHUB_SSL_CERTFILE", "JUPYTERHUB_SSL_CLIENT_CA"):
            assert env[name].startswith(str(hub.tmp)), (name, env[name])
        # trioproxy serves TLS with the Hub's certificate and requires a client certificate.
        service_url = env["JUPYTERHUB_SERVICE_URL"]
        async with httpx.AsyncClient(verify=hub.ssl_context(), trust_env=False, timeout=10) as direct:
            r = await direct.get(service_url + "echo")
            assert r.status_code == 200 and r.json()["raw_path"] == "/echo"
        async with httpx.AsyncClient(
            verify=hub.ssl_context(client_cert=False), trust_env=False, timeout=10
        ) as direct:
            with pytest.raises(httpx.HTTPError):
                await direct.get(service_url + "echo")
        async with httpx.AsyncClient(trust_env=False, timeout=10) as direct:
            with pytest.raises(httpx.HTTPError):
                await direct.get(service_url.replace("https:", "http:") + "echo")
        await hub.stop_server("bob")
        await wait_gone([proxy_pid, app_pid])


async def test_stopping_the_hub_with_a_server_running_leaves_nothing_behind(tmp_path):
    """The harness's own teardown (a Hub of this test's own: the shared ones stop at the end of
    the session). It is the same for every version: SIGTERM, then the marker finds what is left."""
    if "6" not in installed_versions():
        pytest.skip("JupyterHub 6 or configurable-http-proxy not installed (make install-test)")
    with trio.fail_after(120):
        async with run_hub("6", tmp_path) as hub:
            hub.set_server_cmd(
                "bob", "", hub.trioproxy_cmd("--authtype", "none"), env={"TRIOPROXY_TEST_SERVER": "default"}
            )
            await hub.start_server("bob")
            left = [await hub.server_pid("bob")]
            assert left != [None] and all(alive(p) for p in left)
            token = hub.token
        assert not any(alive(p) for p in left)
        assert marked_pids(token) == []


@needs_chromium
async def test_browser_logs_in_and_renders_app(hub6, tmp_path):
    hub = hub6
    with trio.fail_after(120):
        hub.set_server_cmd(
            "dave", "", hub.trioproxy_cmd("--authtype", "none"), env={"TRIOPROXY_TEST_SERVER": "default"}
        )
        await hub.start_server("dave")
        shot = tmp_path / "home.png"
        out = await browse(
            [
                {"goto": f"{hub.url}/hub/login?next=%2Fhub%2Fhome"},
                {"fill": "#username_input", "value": "dave"},
                {"fill": "#password_input", "value": "pw"},
                {"click": "#login_submit"},
                {"wait_url": "**/hub/home"},
                {"text": "#start"},
                {"cookies": True},
                {"screenshot": str(shot)},
                # The app through CHP and trioproxy (auth none): JSON rendered as text.
                {"goto": f"{hub.url}/user/dave/echo?from=browser"},
                {"eval": "JSON.parse(document.body.innerText).query_string"},
            ],
            timeout=90,
        )
    results = out["results"]
    assert "My Server" in results[5]
    assert {c["name"] for c in results[6]} >= {"jupyterhub-hub-login", "jupyterhub-session-id"}
    assert shot.stat().st_size > 1000
    assert results[8] == 200
    assert results[9] == "from=browser"
