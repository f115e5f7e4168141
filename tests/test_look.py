"""trioproxy's pages in the Hub's look (issue 13): the top bar with the Hub's own logo (its
``/hub/logo``) and links (the Hub's home, this app, the owner's controls, stopping the server),
nothing loaded from outside the Hub, every page under a strict policy of its own (its stylesheet
and script by their hashes), every text escaped; and without a Hub, a page that still works."""

from __future__ import annotations

import base64
import hashlib
import re

import httpx
import trio

from trioproxy.ops import controls as _controls
from trioproxy.rules import pages as _pages

from .conftest import app_cmd, free_port, serve_proxy
from .fake_hub import fake_hub

PREFIX = "/user/dan/"
HUB = _pages.hub_look(with_hub=True, host="", hub_prefix="/hub/", prefix=PREFIX)
VIEW = _pages.AppView(status="down", reason="exited with code 1", next_what="restarting it", next_in_s=2)


def _nav(page: str) -> dict[str, str]:
    """The top bar's links: text -> href."""
    bar = re.search(r'<nav class="tp-bar">(.*?)</nav>', page, re.S)
    assert bar, page
    return {text: href for href, text in re.findall(r'<a class="tp-nav" href="([^"]*)"[^>]*>([^<]*)</a>', bar.group(1))}


def _policy(page: str) -> str:
    found = re.findall(r'<meta http-equiv="Content-Security-Policy" content="([^"]*)">', page)
    assert len(found) == 1, page[:600]
    return found[0].replace("&#x27;", "'")


def _sha(text: str) -> str:
    return "sha256-" + base64.b64encode(hashlib.sha256(text.encode()).digest()).decode()


def assert_strict(page: str, policy: str, *, hub_origin: str = "") -> None:
    """Nothing runs or loads but the page's own stylesheet and script (by hash), images of this
    origin and the Hub's; no inline style attribute (no hash covers one), no other origin."""
    sources = {d.split()[0]: d.split()[1:] for d in policy.split("; ")}
    assert "frame-ancestors" not in policy or policy.endswith(("frame-ancestors 'self'", "frame-ancestors 'none'"))
    assert sources["default-src"] == ["'none'"], policy
    assert sources["img-src"] == ["'self'", *([hub_origin] if hub_origin else [])], policy
    assert sources["base-uri"] == ["'none'"] and sources["form-action"] == ["'none'"], policy
    styles = re.findall(r"<style>(.*?)</style>", page, re.S)
    scripts = re.findall(r"<script>(.*?)</script>", page, re.S)
    assert styles and sources["style-src"] == [f"'{_sha(s)}'" for s in styles], policy
    assert sources.get("script-src", []) == [f"'{_sha(s)}'" for s in scripts], policy
    assert ("connect-src" in sources) is bool(scripts), policy
    for word in ("unsafe", "*", "data:", "blob:"):
        assert word not in policy, policy
    assert not re.search(r"\sstyle=", page) and not re.search(r"\son[a-z]+=", page), "inline style or handler"
    assert "<link" not in page and "@import" not in page and "url(" not in page
    assert all(src.startswith(hub_origin or "/") and src.endswith("/hub/logo")
               for src in re.findall(r'\ssrc="([^"]*)"', page)), "only the Hub's logo is loaded"


# --- pure: the pages and their policy --------------------------------------------------------


def test_the_top_bar_has_the_hubs_logo_and_links_the_controls_and_stop_for_the_owner_only():
    owner = _pages.render("The app", ["hello"], look=HUB.for_owner()).decode()
    assert '<a class="tp-logo" href="/hub/home" title="Home"><img src="/hub/logo" alt="JupyterHub"></a>' in owner
    assert _nav(owner) == {"Home": "/hub/home", "This app": PREFIX, "Controls": PREFIX + "_trioproxy/",
                           "Stop my server": "/hub/home"}  # the Hub stops servers on its home: a link, no POST
    other = _pages.render("403: Owner only", ["no"], look=HUB).decode()
    assert _nav(other) == {"Home": "/hub/home", "This app": PREFIX}
    assert 'class="tp-panel tp-error"' in other and 'class="tp-panel tp-error"' not in owner
    assert '<p class="muted">trioproxy</p>' in owner  # what doctor recognises trioproxy's pages by
    for page in (owner, other):
        assert_strict(page, _policy(page))


def test_the_state_and_control_pages_carry_the_look_and_their_one_script_by_hash():
    live = _pages.render_state(VIEW, events=PREFIX + "_trioproxy/logs", look=HUB.for_owner()).decode()
    assert '<img src="/hub/logo"' in live and _nav(live)["Controls"] == PREFIX + "_trioproxy/"
    assert 'id="tp" data-events="/user/dan/_trioproxy/logs"' in live and 'data-status="down"' in live
    assert_strict(live, _policy(live))
    assert_strict(live, _pages.state_csp(HUB).decode())  # the header says the same
    plain = _pages.render_state(VIEW, look=HUB).decode()
    assert "<script" not in plain and "Controls" not in _nav(plain)
    assert_strict(plain, _policy(plain))
    control = _controls.control_page(PREFIX + "_trioproxy", "ab" * 32, HUB).decode()
    assert '<img src="/hub/logo"' in control and _nav(control)["Controls"] == PREFIX + "_trioproxy/"
    assert f'data-base="{PREFIX}_trioproxy" data-xsrf="{"ab" * 32}"' in control
    assert_strict(control, _policy(control))
    header = _controls.control_csp(HUB)
    assert_strict(control, header.replace("frame-ancestors 'none'", "frame-ancestors 'self'"))
    assert header.endswith("frame-ancestors 'none'")  # the page with the token is never framed


def test_a_hub_on_another_origin_is_the_one_other_origin_and_a_malformed_one_is_none():
    other = _pages.hub_look(with_hub=True, host="https://hub.example.org/", hub_prefix="/jh/hub/", prefix=PREFIX)
    page = _pages.render("The app", ["x"], look=other.for_owner()).decode()
    assert '<img src="https://hub.example.org/jh/hub/logo"' in page
    assert _nav(page)["Home"] == "https://hub.example.org/jh/hub/home"
    assert_strict(page, _policy(page), hub_origin="https://hub.example.org")
    for bad in ('https://hub.example.org" onerror="alert(1)', "javascript:alert(1)//", "//evil.example",
                "https://evil.example; script-src *", "https://a b", "ftp://hub.example.org"):
        look = _pages.hub_look(with_hub=True, host=bad, hub_prefix="/hub/", prefix=PREFIX).for_owner()
        page = _pages.render("The app", ["x"], look=look).decode()
        assert "<img" not in page and "Home" not in _nav(page) and "Stop my server" not in _nav(page), bad
        assert_strict(page, _policy(page))
        assert "evil" not in _policy(page) and "alert" not in page, bad


def test_without_a_hub_the_pages_work_without_logo_or_hub_links():
    for look in (_pages.PLAIN, _pages.hub_look(with_hub=False, host="", hub_prefix="/hub/", prefix=PREFIX)):
        page = _pages.render("404: Not Found", ["nothing here"], look=look.for_owner()).decode()
        assert "<img" not in page and "/hub/" not in page and '<a class="tp-brand"' in page
        assert set(_nav(page)) == {"This app", "Controls"}
        assert_strict(page, _policy(page))


def test_every_text_of_the_look_is_escaped():
    evil = '"><script>alert(1)</script><style>'
    look = _pages.hub_look(with_hub=True, host="", hub_prefix="/hub/", prefix="/user/" + evil).for_owner()
    for page in (_pages.render(evil, [evil], links=[(evil, evil)], log_lines=[evil], look=look).decode(),
                 _pages.render_state(_pages.AppView(status="down", reason=evil, hint=evil), log_lines=[evil],
                                     links=[(evil, evil)], look=look).decode(),
                 _controls.control_page(evil, evil, look).decode()):
        assert "<script>alert" not in page and '"><script>' not in page and '"><style>' not in page
        assert page.count("<style>") == 1 and page.count("</style>") == 1
        assert "&lt;script&gt;alert(1)&lt;/script&gt;" in page
        assert_strict(page, _policy(page))


# --- in process: the pages as trioproxy sends them --------------------------------------------


async def test_the_pages_trioproxy_sends_carry_the_look_and_the_policy():
    async with fake_hub() as hub:
        dan = {"Authorization": f"token {hub.add_user('dan')}"}
        sam = {"Authorization": f"token {hub.add_user('sam', scopes=['access:servers!server=dan/'])}"}
        eve = {"Authorization": f"token {hub.add_user('eve')}"}
        origin = f"http://127.0.0.1:{hub.port}"  # the fake Hub's JUPYTERHUB_HOST: another origin
        port = free_port()
        async with serve_proxy(app_cmd("echo_app.py"), env=hub.env(proxy_port=port), prefix=PREFIX, port=port,
                               authtype="oauth") as proxy:
            await proxy.wait_ready()
            root = proxy.url.removesuffix(PREFIX.rstrip("/"))
            nav_doc = {"Sec-Fetch-Mode": "navigate", "Sec-Fetch-Dest": "document"}
            async with httpx.AsyncClient(trust_env=False, timeout=10) as c:
                with trio.fail_after(30):
                    pages = {
                        "404 outside": await c.get(root + "/nothing"),
                        "404 inside": await c.get(proxy.url + "/_trioproxy/nothing", headers=dan),
                        "403 another user": await c.get(proxy.url + "/", headers=eve),
                        "403 controls": await c.get(proxy.url + "/_trioproxy/", headers={**sam, **nav_doc}),
                        "controls": await c.get(proxy.url + "/_trioproxy/", headers={**dan, **nav_doc}),
                    }
        expect = {"404 outside": (404, False), "404 inside": (404, True), "403 another user": (403, False),
                  "403 controls": (403, False), "controls": (200, True)}
        for name, r in pages.items():
            status, owner = expect[name]
            assert r.status_code == status, (name, r.status_code, r.text[:300])
            page = r.text
            assert f'<img src="{origin}/hub/logo"' in page, name
            nav = _nav(page)
            assert nav["Home"] == f"{origin}/hub/home" and nav["This app"] == PREFIX, (name, nav)
            assert ("Controls" in nav) is owner and ("Stop my server" in nav) is owner, (name, nav)
            assert_strict(page, _policy(page), hub_origin=origin)
        # The 404 outside the prefix names and links it.
        outside = pages["404 outside"].text
        assert f'<a href="{PREFIX}">This server&#x27;s app: {PREFIX}</a>' in outside
        assert "403: Not your server" in pages["403 another user"].text
        control = pages["controls"]
        assert control.headers["content-security-policy"] == _controls.control_csp(
            _pages.hub_look(with_hub=True, host=origin, hub_prefix="/hub/", prefix=PREFIX))
