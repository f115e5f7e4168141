"""``$JUPYTERHUB_DEFAULT_URL`` (the Spawner's ``default_url``): the bare prefix redirects there.

As in jupyterhub-singleuser, the value is a path in the server (``/lab``, ``/panel_app``,
``/tree/home/{username}`` rendered by the Hub), joined under the prefix.
"""

from __future__ import annotations

import click
import httpx
import pytest
import trio
from trio_websocket import open_websocket_url

from trioproxy.rules.routing import Forward, Redirect, Router, default_location

from .conftest import app_cmd, proxy_settings, serve_proxy


@pytest.mark.parametrize(
    ("value", "prefix", "location"),
    [
        ("/panel_app", "/user/alice", b"/user/alice/panel_app"),
        ("lab", "/user/alice", b"/user/alice/lab"),
        ("/lab?reset#top", "/user/alice", b"/user/alice/lab?reset#top"),
        ("/user/alice/lab", "/user/alice", b"/user/alice/lab"),  # already under the prefix: no double prefix
        ("/user/alice2/lab", "/user/alice", b"/user/alice/user/alice2/lab"),
        ("/tree/home/José dir", "/user/alice", b"/user/alice/tree/home/Jos%C3%A9%20dir"),
        ("/a%20b/", "/user/alice", b"/user/alice/a%20b/"),
        ("/lab\r\nSet-Cookie: x=1", "/user/alice", b"/user/alice/lab%0D%0ASet-Cookie:%20x=1"),
        ("/lab", "", b"/lab"),
        ("  /lab ", "/user/alice", b"/user/alice/lab"),
        ("", "/user/alice", b""),
        ("/", "/user/alice", b""),
        ("/?x=1", "/user/alice", b""),  # the prefix itself: would redirect to itself
        ("/user/alice/", "/user/alice", b""),
        ("/user/alice", "/user/alice", b""),
    ],
)
def test_default_location_forms(value: str, prefix: str, location: bytes):
    assert default_location(value, prefix) == location


@pytest.mark.parametrize("value", ["http://evil.example/", "https://hub/user/alice/lab", "//evil.example/x",
                                   "javascript:alert(1)", "\\\\evil.example\\x"])
def test_a_url_is_refused(value: str):
    with pytest.raises(ValueError, match="must be a path"):
        default_location(value, "/user/alice")


def test_router_redirects_the_bare_prefix_for_get_and_head_only():
    r = Router.for_prefix("/user/alice", default_url=b"/user/alice/panel_app")
    assert r.route("GET", b"/user/alice", b"") == Redirect(302, b"/user/alice/panel_app")
    assert r.route("GET", b"/user/alice/", b"") == Redirect(302, b"/user/alice/panel_app")
    assert r.route("HEAD", b"/user/alice/", b"a=1") == Redirect(302, b"/user/alice/panel_app?a=1")
    assert r.route("GET", b"/user/alice/panel_app", b"") == Forward(b"/panel_app")
    assert r.route("GET", b"/user/alice/x", b"") == Forward(b"/x")
    # Not a page load: a POST and a websocket reach the app's root as before.
    assert r.route("POST", b"/user/alice/", b"") == Forward(b"/")
    assert r.route("POST", b"/user/alice", b"") == Redirect(307, b"/user/alice/")
    assert r.route("GET", b"/user/alice/", b"", websocket=True) == Forward(b"/")
    # A query joins the default's own, before its fragment.
    q = Router.for_prefix("/user/alice", default_url=b"/user/alice/lab?reset#top")
    assert q.route("GET", b"/user/alice/", b"token=x") == Redirect(302, b"/user/alice/lab?reset&token=x#top")
    # Without one, the old rules.
    plain = Router.for_prefix("/user/alice")
    assert plain.route("GET", b"/user/alice/", b"") == Forward(b"/")
    assert plain.route("GET", b"/user/alice", b"") == Redirect(302, b"/user/alice/")


def test_read_from_the_environment_and_a_url_exits_naming_it():
    s = proxy_settings(["--", "app", "{port}"], env={"JUPYTERHUB_DEFAULT_URL": "/lab"}, prefix="/user/alice/")
    assert s.proxy.default_url == b"/user/alice/lab"
    assert proxy_settings(["--", "app", "{port}"]).proxy.default_url == b""
    with pytest.raises(click.UsageError, match="JUPYTERHUB_DEFAULT_URL"):
        proxy_settings(["--", "app", "{port}"], env={"JUPYTERHUB_DEFAULT_URL": "https://elsewhere/"})


@pytest.mark.parametrize("keep_prefix", [False, True])
async def test_the_prefix_redirects_to_the_default_url(keep_prefix: bool):
    args = [*(["--keep-prefix"] if keep_prefix else []), *app_cmd("echo_app.py")]
    with trio.fail_after(30):
        async with serve_proxy(args, env={"JUPYTERHUB_DEFAULT_URL": "/panel_app"}, prefix="/user/alice/") as p:
            await p.wait_ready()
            async with httpx.AsyncClient() as client:
                for url in (p.url, p.url + "/"):
                    r = await client.get(url)
                    assert r.status_code == 302 and r.headers["location"] == "/user/alice/panel_app"
                r = await client.get(p.url + "/", follow_redirects=True)
                assert r.status_code == 200
                assert r.json()["raw_path"] == ("/user/alice/panel_app" if keep_prefix else "/panel_app")
            async with open_websocket_url(p.ws_url + "/") as ws:  # a websocket on the root still reaches the app
                await ws.send_message("hello?")
                assert await ws.get_message() == "hello!"
