"""Who may enter, and what the app never sees, against a real JupyterHub (5.x and 6.x)
with configurable-http-proxy: the attacks of issue 10, played end to end.

* The owner of a shared server (bob) gets a visitor's (alice's) OAuth token the way his
  server process can, and replays it against alice's own server: 403 (the token opens
  bob's server only). Alice's own API token opens it.
* A named server's app never receives the default server's login cookie, which the
  browser sends it (``Path=/user/alice/`` covers ``/user/alice/foo/``).
* The owner's read-only token and a token with no access scope open neither the app nor
  the controls; an admin's token gets the status only.

One Hub per version for the module (``tests/hub.py``); each test stops its servers.
"""

from __future__ import annotations

import base64
import hashlib
import json
import secrets
from urllib.parse import parse_qs, urlencode, urlsplit

import httpx
import pytest
import trio
import trio_websocket

from .hub import HubProcess, shared_hub, version_params

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module", params=version_params(("5", "6")))
def hub(request, hubs):
    with shared_hub(hubs, request.param) as h:
        yield h


async def serve(hub: HubProcess, user: str, *options: str, name: str = "") -> dict:
    hub.set_server_cmd(user, name, hub.trioproxy_cmd(*options))
    return await hub.start_server(user, name)


def environ_of(pid: int) -> dict[str, str]:
    """A process's environment, as a same-user process (or root) can read it."""
    with open(f"/proc/{pid}/environ", "rb") as f:
        pairs = [item.partition(b"=") for item in f.read().split(b"\0") if item]
    return {k.decode(): v.decode() for k, _, v in pairs}


async def ws_status(url: str, headers=()) -> int:
    """101 if the handshake succeeds, else the status it was refused with."""
    try:
        async with trio_websocket.open_websocket_url(url, extra_headers=list(headers)) as conn:
            await conn.send_message("hi")
            assert await conn.get_message() == "hi"
            return 101
    except trio_websocket.ConnectionRejected as exc:
        return exc.status_code


async def direct_url(hub: HubProcess, user: str, name: str = "") -> str:
    """The server's own address (``$JUPYTERHUB_SERVICE_URL``), not through CHP."""
    return environ_of(await hub.server_pid(user, name))["JUPYTERHUB_SERVICE_URL"].rstrip("/") + "/"


async def reach(hub: HubProcess, server: dict, token: str, direct: str) -> dict[str, int]:
    """The statuses the bearer of ``token`` gets on the app, its websocket and the controls
    (the restart last: a 202 restarts the app).

    The websocket handshake goes to the server's own port (``direct``): a handshake
    refused through CHP, which reuses that connection at once for the next request,
    makes trioproxy exit (hypercorn: "can't handle event type Response when
    role=SERVER and state=SEND_BODY"), a defect of the websocket refusal outside
    these tests' subject (see ``test_oauth``'s xfail test of it).
    """
    h = {"Authorization": f"token {token}"}
    base = server["full_url"]
    async with hub.client(follow_redirects=False) as c:
        app = await c.get(base + "echo", headers=h)
        ws = await ws_status(direct.replace("http://", "ws://") + "ws", [("Authorization", f"token {token}")])
        status = await c.get(base + "_trioproxy/status", headers=h)
        logs = await c.get(base + "_trioproxy/logs", headers=h)
        restart = await c.post(base + "_trioproxy/restart", headers={**h, "X-Trioproxy-Action": "restart"})
    for r in (app, status, logs, restart):
        assert token not in r.text
    return {"app": app.status_code, "ws": ws, "status": status.status_code, "logs": logs.status_code,
            "restart": restart.status_code}


def pkce() -> tuple[str, str]:
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


async def steal_visitors_token(hub: HubProcess, owner: str, visitor: str) -> str:
    """What the owner of a shared server can do: send the visitor's browser through the OAuth
    flow of his own server (his client id and redirect URI), catch the code at his callback and
    trade it with his server's client secret (its API token, which his server holds)."""
    env = environ_of(await hub.server_pid(owner))
    client_id, secret = env["JUPYTERHUB_CLIENT_ID"], env["JUPYTERHUB_API_TOKEN"]
    redirect = env["JUPYTERHUB_OAUTH_CALLBACK_URL"]
    assert client_id == f"jupyterhub-user-{owner}"
    verifier, challenge = pkce()
    state = secrets.token_urlsafe(16)
    authorize = f"{hub.url}/hub/api/oauth2/authorize?" + urlencode({
        "client_id": client_id, "redirect_uri": redirect, "response_type": "code", "state": state,
        "code_challenge": challenge, "code_challenge_method": "S256",
    })
    async with hub.client(follow_redirects=False) as browser:
        await hub.login(browser, visitor)
        page = await browser.get(authorize)
        # Another user's server: the Hub asks the visitor to confirm, and she does (she meant
        # to open the shared server).
        assert hub.is_oauth_confirm_page(page), (page.status_code, page.headers, page.text[:300])
        answer = await hub.confirm_oauth(browser, page)
    assert answer.status_code == 302, answer.text[:300]
    location = urlsplit(answer.headers["location"])
    assert location.path == urlsplit(redirect).path
    args = {k: v[0] for k, v in parse_qs(location.query).items()}
    assert args["state"] == state
    async with httpx.AsyncClient(trust_env=False, timeout=15) as c:
        with trio.fail_after(16):
            r = await c.post(f"{hub.url}/hub/api/oauth2/token", data={
                "client_id": client_id, "client_secret": secret, "grant_type": "authorization_code",
                "code": args["code"], "redirect_uri": redirect, "code_verifier": verifier,
            })
    assert r.status_code == 200, r.text
    return str(r.json()["access_token"])


async def test_a_shared_servers_owner_cannot_replay_a_visitors_token_on_her_own_server(hub):
    bob = await serve(hub, "bob")
    alice = await serve(hub, "alice")
    try:
        with trio.fail_after(60):
            await hub.api("POST", "/shares/bob/", json={"user": "alice"}, expect=(200, 201))
            stolen = await steal_visitors_token(hub, "bob", "alice")
            # It is alice's token, issued for bob's server (and it works there).
            model = (await hub.api("GET", "/user", token=stolen, expect=200)).json()
            assert model["name"] == "alice" and "access:servers!server=bob/" in model["scopes"]
            assert not any(s.startswith("access:servers!user=") or s == "access:servers" for s in model["scopes"])
            async with hub.client(follow_redirects=False) as c:
                r = await c.get(bob["full_url"] + "echo", headers={"Authorization": f"token {stolen}"})
                assert r.status_code == 200 and r.json()["raw_path"] == "/echo"
            # Replayed on alice's own server: refused everywhere, and the page says why.
            direct = await direct_url(hub, "alice")
            assert await reach(hub, alice, stolen, direct) == {"app": 403, "ws": 403, "status": 403, "logs": 403,
                                                       "restart": 403}
            async with hub.client(follow_redirects=False) as c:
                r = await c.get(alice["full_url"] + "echo", headers={"Authorization": f"token {stolen}"})
            assert "does not grant access to this server" in r.text
            # Alice's own general-purpose API token: the line between the two.
            own = await hub.user_token("alice")
            assert await reach(hub, alice, own, direct) == {
                "app": 200, "ws": 101, "status": 200, "logs": 200, "restart": 202
            }
    finally:
        await hub.api("DELETE", "/shares/bob/", expect=None)
        await hub.stop_server("bob")
        await hub.stop_server("alice")


async def test_a_named_servers_app_never_gets_the_default_servers_cookie(hub):
    default = await serve(hub, "alice")
    named = await serve(hub, "alice", name="foo")
    try:
        with trio.fail_after(60):
            async with hub.client() as c:
                r = await hub.login(c, "alice", next_url="/user/alice/echo")
                assert r.status_code == 200 and r.json()["raw_path"] == "/echo"
                r = await c.get(named["full_url"] + "echo")  # the OAuth flow of alice/foo
                assert r.status_code == 200 and r.json()["raw_path"] == "/echo"
                names = {ck.name for ck in c.cookies.jar}
                assert {"jupyterhub-user-alice", "jupyterhub-user-alice-foo", "jupyterhub-session-id"} <= names
                c.cookies.set("mine", "1", domain="127.0.0.1", path="/user/alice/")
                r = await c.get(named["full_url"] + "echo?x=1")
                # The browser sent them all, the app got its own only.
                sent = r.request.headers["cookie"]
                assert all(f"{n}=" in sent for n in ("jupyterhub-user-alice", "jupyterhub-user-alice-foo",
                                                     "jupyterhub-session-id", "mine"))
                assert dict(r.json()["headers"]).get("cookie") == "mine=1"
                cookie = "; ".join(f"{ck.name}={ck.value}" for ck in c.cookies.jar
                                   if "/user/alice/foo/".startswith(ck.path))
                assert "jupyterhub-user-alice=" in cookie
            ws = named["full_url"].replace("http://", "ws://") + "ws"
            async with trio_websocket.open_websocket_url(ws, extra_headers=[("Cookie", cookie),
                                                                            ("Origin", hub.url)]) as conn:
                await conn.send_message("headers?")
                seen = json.loads(await conn.get_message())
            assert dict(seen["headers"]).get("cookie") == "mine=1"
    finally:
        await hub.stop_server("alice", "foo")
        await hub.stop_server("alice")
    assert default["full_url"].endswith("/user/alice/")


async def test_read_only_and_no_access_tokens_open_nothing_and_admins_get_the_status(hub):
    server = await serve(hub, "alice")
    try:
        with trio.fail_after(60):
            read_only = await hub.user_token("alice", scopes=["read:users:name!user=alice"])
            no_access = await hub.user_token("alice", scopes=["users:activity!user=alice", "read:servers!user=alice"])
            refused = {"app": 403, "ws": 403, "status": 403, "logs": 403, "restart": 403}
            direct = await direct_url(hub, "alice")
            assert await reach(hub, server, read_only, direct) == refused
            assert await reach(hub, server, no_access, direct) == refused
            admin = await hub.user_token("admin")
            assert await reach(hub, server, admin, direct) == {"app": 200, "ws": 101, "status": 200, "logs": 403,
                                                               "restart": 403}
            assert await reach(hub, server, await hub.user_token("bob"), direct) == refused
    finally:
        await hub.stop_server("alice")
