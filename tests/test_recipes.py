"""The README's recipes, run as written: Streamlit, Voila, Panel, Bokeh, Dash and Gradio.

Each command line below is the one in README.md's *Recipes* section, character for
character (``test_readme_shows_every_recipe`` checks that, and the ``jupyterhub_config.py``
and zero-to-jupyterhub snippets made from them). Each test runs its line through trioproxy
(``--authtype none`` added, under the prefix ``/user/alice/``), in a home folder holding the
app files of ``tests/apps/real/`` with the venv's commands first on ``PATH``, as a JupyterHub
server would run it, and checks what a browser needs:

* the page is served through the prefix and is the framework's (a known marker);
* every script, stylesheet and preload the page references resolves under the prefix and
  loads (200);
* the framework's live channel works end to end through trioproxy: Streamlit's websocket
  (a rerun, then a button click), the Bokeh/Panel websocket (the document, then a click
  that a Python callback answers), Voila's kernel websocket (a widget click answered by the
  kernel), Dash's callback POST and Gradio's queue (a POST, then server-sent events).

``tests/test_browser.py`` runs the same lines in a real JupyterHub with a real browser.
"""

from __future__ import annotations

import contextlib
import datetime
import html.parser
import importlib.util
import json
import os
import re
import shlex
import shutil
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urljoin, urlsplit

import httpx
import pytest
import trio
from trio_websocket import WebSocketConnection, open_websocket_url

from .conftest import Proxy, run_proxy

pytestmark = [pytest.mark.slow, pytest.mark.apps]

ROOT = Path(__file__).resolve().parent.parent
REAL = Path(__file__).parent / "apps" / "real"
BIN = Path(sys.executable).parent
PREFIX = "/user/alice/"

#: The README's command lines (its *Recipes* section shows each one verbatim).
RECIPES = {
    "streamlit": (
        "trioproxy --ready-check-path /_stcore/health --ready-timeout 60 -- streamlit run streamlit_app.py"
        " --server.port {port} --server.address 127.0.0.1 --server.headless true --browser.gatherUsageStats false"
    ),
    "voila": (
        "trioproxy --ready-check-path /voila/static/voila.js --ready-timeout 60 -- voila notebook.ipynb"
        " --port={port} --no-browser --Voila.ip=127.0.0.1 --Voila.server_url=/ --Voila.base_url={base_url}/"
    ),
    "panel": (
        "trioproxy --keep-prefix --ready-timeout 60 -- panel serve panel_app.py"
        " --port {port} --address 127.0.0.1 --prefix {base_url} --allow-websocket-origin '*'"
    ),
    "bokeh": (
        "trioproxy --keep-prefix --ready-timeout 60 -- bokeh serve bokeh_app.py"
        " --port {port} --address 127.0.0.1 --prefix {base_url} --allow-websocket-origin '*'"
    ),
    "dash": "trioproxy --ready-timeout 60 -- python dash_app.py --port {port} --base-url {base_url}/",
    "gradio": "trioproxy --ready-timeout 60 -- python gradio_app.py --port {port} --root-path {base_url}",
}

#: The files each recipe needs in its working folder (all from tests/apps/real/).
APP_FILES = {
    "streamlit": ["streamlit_app.py"],
    "voila": ["notebook.ipynb"],
    "panel": ["panel_app.py"],
    "bokeh": ["bokeh_app.py"],
    "dash": ["dash_app.py"],
    "gradio": ["gradio_app.py"],
}


def recipe_words(name: str) -> list[str]:
    """The recipe's words, ``trioproxy`` first."""
    words = shlex.split(RECIPES[name])
    assert words[0] == "trioproxy"
    return words


def spawner_snippet(name: str) -> str:
    """The recipe as ``jupyterhub_config.py`` lines (``c.Spawner.cmd`` and ``c.Spawner.args``)."""
    words = recipe_words(name)
    end = words.index("--") + 1  # trioproxy's options on the first line(s), then the app's command
    options, command = [json.dumps(w) for w in words[1:end]], [json.dumps(w) for w in words[end:]]
    return 'c.Spawner.cmd = ["trioproxy"]\nc.Spawner.args = [\n' + _wrap(options) + "\n" + _wrap(command) + "\n]"


def z2jh_snippet(name: str) -> str:
    """The recipe as zero-to-jupyterhub Helm values (``singleuser.cmd``, a list: no shell)."""
    return "singleuser:\n  cmd:\n" + "\n".join(f"    - {_yaml_scalar(w)}" for w in recipe_words(name))


def _wrap(items: list[str], indent: str = "    ", width: int = 100) -> str:
    lines: list[str] = []
    line = ""
    for item in items:
        piece = item + ","
        if line and len(indent) + len(line) + 1 + len(piece) > width:
            lines.append(indent + line)
            line = piece
        else:
            line = f"{line} {piece}" if line else piece
    if line:
        lines.append(indent + line)
    return "\n".join(lines)


def _yaml_scalar(word: str) -> str:
    # Quoted unless it is a plain word: '{port}' (a mapping), '*' (an alias), 'true', '60' would
    # not reach the Spawner as strings.
    if re.fullmatch(r"[A-Za-z_./-][\w./=-]*", word) and word.lower() not in ("true", "false", "yes", "no", "on", "off"):
        return word
    return json.dumps(word)


def needs(name: str):
    """Skip unless the recipe's framework (a module of the same name) is installed."""
    return pytest.mark.skipif(importlib.util.find_spec(name) is None, reason=f"{name} is not installed")


def home_with_apps(home: Path, name: str) -> Path:
    """A folder like a user's home on a Hub, holding the recipe's app files."""
    home.mkdir(parents=True, exist_ok=True)
    for filename in APP_FILES[name]:
        shutil.copy(REAL / filename, home / filename)
    return home


def app_env(home: Path) -> dict[str, str]:
    return {"PATH": os.pathsep.join([str(BIN), os.environ.get("PATH", "/usr/bin:/bin")]), "HOME": str(home)}


@contextlib.asynccontextmanager
async def run_recipe(name: str, home: Path) -> AsyncIterator[Proxy]:
    """trioproxy (``--authtype none``) running the recipe under ``/user/alice/``, app ready."""
    home_with_apps(home, name)
    async with run_proxy(recipe_words(name)[1:], prefix=PREFIX, env=app_env(home), cwd=str(home)) as proxy:
        try:
            await proxy.wait_ready(60)
        except trio.TooSlowError:
            raise AssertionError(f"{name} never got ready:\n{proxy.log[-4000:]}") from None
        yield proxy


def client() -> httpx.AsyncClient:
    return httpx.AsyncClient(trust_env=False, timeout=30)


class _Refs(html.parser.HTMLParser):
    """What a browser loads to render the page: scripts, stylesheets, (module)preloads."""

    def __init__(self) -> None:
        super().__init__()
        self.refs: list[str] = []

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        if tag == "script" and a.get("src"):
            self.refs.append(a["src"] or "")
        rel = (a.get("rel") or "").lower().split()
        if tag == "link" and a.get("href") and {"stylesheet", "modulepreload", "preload"} & set(rel):
            self.refs.append(a["href"] or "")


async def check_assets(c: httpx.AsyncClient, page: httpx.Response, minimum: int = 1) -> list[str]:
    """Every local script/stylesheet/preload of the page: under the prefix, and 200."""
    parser = _Refs()
    parser.feed(page.text)
    base = str(page.url)
    local = [urljoin(base, ref) for ref in parser.refs if not re.match(r"(?i)(https?:)?//|data:", ref)]
    assert len(local) >= minimum, f"expected at least {minimum} assets in {page.url}: {parser.refs}"
    for url in local:
        assert urlsplit(url).path.startswith(PREFIX), f"{url} is outside {PREFIX}: the browser would miss it"
        r = await c.get(url)
        assert r.status_code == 200, f"{url}: {r.status_code}"
    return local


async def get_page(c: httpx.AsyncClient, url: str, marker: str) -> httpx.Response:
    r = await c.get(url, follow_redirects=True)
    assert r.status_code == 200, (r.status_code, r.text[:500])
    assert marker in r.text, r.text[:2000]
    assert urlsplit(str(r.url)).path.startswith(PREFIX), r.url
    return r


# --------------------------------------------------------------------------- the README


def test_readme_shows_every_recipe():
    readme = (ROOT / "README.md").read_text()
    assert "## Recipes" in readme
    recipes = readme[readme.index("## Recipes") :]
    for name, line in RECIPES.items():
        assert line in recipes, f"README.md's Recipes section lacks the {name} command line:\n{line}"
        snippet = spawner_snippet(name)
        assert snippet in recipes, f"README.md's Recipes section lacks the {name} jupyterhub_config.py:\n{snippet}"
    assert z2jh_snippet("streamlit") in recipes, z2jh_snippet("streamlit")


@pytest.mark.parametrize("name", RECIPES)
def test_snippets_say_the_same_as_the_command_line(name):
    yaml = pytest.importorskip("yaml")
    words = recipe_words(name)
    assert yaml.safe_load(z2jh_snippet(name)) == {"singleuser": {"cmd": words}}
    config: dict = {}
    exec(spawner_snippet(name), {"c": _Config(config)})
    assert [*config["cmd"], *config["args"]] == words


class _Config:
    """Stands in for JupyterHub's ``c``: ``c.Spawner.cmd = ...`` lands in a dict."""

    def __init__(self, values: dict) -> None:
        self.Spawner = _Attrs(values)


class _Attrs:
    def __init__(self, values: dict) -> None:
        object.__setattr__(self, "_values", values)

    def __setattr__(self, name: str, value: object) -> None:
        self._values[name] = value


# --------------------------------------------------------------------------- Streamlit


async def _streamlit_run(ws: WebSocketConnection) -> tuple[list[str], str | None]:
    """ForwardMsgs until the script run finishes: (markdown texts, the button's widget id)."""
    from streamlit.proto.ForwardMsg_pb2 import ForwardMsg

    texts: list[str] = []
    button = None
    while True:
        msg = ForwardMsg()
        msg.ParseFromString(await ws.get_message())
        kind = msg.WhichOneof("type")
        if kind == "delta" and msg.delta.WhichOneof("type") == "new_element":
            element = msg.delta.new_element
            if element.WhichOneof("type") == "button":
                button = element.button.id
            elif element.WhichOneof("type") == "markdown":
                texts.append(element.markdown.body)
        if kind == "script_finished":
            return texts, button


@needs("streamlit")
async def test_streamlit(tmp_path):
    from streamlit.proto.BackMsg_pb2 import BackMsg

    with trio.fail_after(120):
        async with run_recipe("streamlit", tmp_path / "home") as p, client() as c:
            page = await get_page(c, p.url + "/", "<title>Streamlit</title>")
            await check_assets(c, page, minimum=2)
            assert (await c.get(p.url + "/_stcore/health")).text == "ok"
            async with open_websocket_url(p.ws_url + "/_stcore/stream", subprotocols=["streamlit"]) as ws:
                assert ws.subprotocol == "streamlit"
                rerun = BackMsg()
                rerun.rerun_script.query_string = ""
                await ws.send_message(rerun.SerializeToString())
                texts, button = await _streamlit_run(ws)
                assert "hello from streamlit" in texts and button, texts
                # A click: the script reruns on the server with the button triggered.
                click = BackMsg()
                state = click.rerun_script.widget_states.widgets.add()
                state.id = button
                state.trigger_value = True
                await ws.send_message(click.SerializeToString())
                texts, _ = await _streamlit_run(ws)
                assert "streamlit computed 42" in texts, texts


# --------------------------------------------------------------------------- Voila


def _kernel_msg(msg_type: str, content: dict, session: str) -> str:
    """A Jupyter message in the websocket's JSON form (no subprotocol: the legacy format)."""
    header = {
        "msg_id": uuid.uuid4().hex,
        "msg_type": msg_type,
        "session": session,
        "username": "",
        "version": "5.3",
        "date": datetime.datetime.now(datetime.UTC).isoformat(),
    }
    return json.dumps(
        {"header": header, "parent_header": {}, "metadata": {}, "content": content, "channel": "shell", "buffers": []}
    )


@needs("voila")
async def test_voila(tmp_path):
    with trio.fail_after(120):
        async with run_recipe("voila", tmp_path / "home") as p, client() as c:
            page = await get_page(c, p.url + "/", "hello from voila 42")
            assert '"baseUrl": "/user/alice/"' in page.text
            await check_assets(c, page, minimum=2)
            kernel = re.search(r'"kernelId": "([0-9a-f-]+)"', page.text)
            assert kernel, "the page names its kernel"
            session = uuid.uuid4().hex
            url = f"{p.ws_url}/api/kernels/{kernel.group(1)}/channels?session_id={session}"
            async with open_websocket_url(url, max_message_size=16 << 20) as ws:
                await ws.send_message(_kernel_msg("comm_info_request", {"target_name": "jupyter.widget"}, session))
                while True:
                    m = json.loads(await ws.get_message())
                    if m["msg_type"] == "comm_info_reply":
                        comms = list(m["content"]["comms"])
                        break
                assert comms, "the notebook's widgets are open comms"
                # A click on the button (the front end's message; the other widgets ignore it):
                # the kernel's callback updates the label, and the update comes back.
                for comm_id in comms:
                    data = {"method": "custom", "content": {"event": "click"}}
                    await ws.send_message(_kernel_msg("comm_msg", {"comm_id": comm_id, "data": data}, session))
                while True:
                    m = json.loads(await ws.get_message())
                    if m["msg_type"] == "comm_msg" and "voila computed 42" in json.dumps(m["content"]):
                        break


# --------------------------------------------------------------------------- Panel and Bokeh


async def _bokeh_send(ws: WebSocketConnection, msgid: str, msgtype: str, content: dict) -> None:
    for part in (json.dumps({"msgid": msgid, "msgtype": msgtype}), "{}", json.dumps(content)):
        await ws.send_message(part)


async def _bokeh_recv(ws: WebSocketConnection) -> tuple[dict, dict]:
    header = json.loads(await ws.get_message())
    await ws.get_message()  # metadata
    content = json.loads(await ws.get_message())
    for _ in range(header.get("num_buffers", 0)):
        await ws.get_message()
    return header, content


async def check_bokeh_session(p: Proxy, c: httpx.AsyncClient, app: str, title: str, computed: str) -> None:
    """The Bokeh server protocol through trioproxy: page, assets, document, a click answered."""
    root = await c.get(p.url + "/")
    assert root.status_code == 302, root.status_code
    assert urlsplit(urljoin(str(root.url), root.headers["location"])).path == f"{PREFIX}{app}"
    page = await get_page(c, f"{p.url}/{app}", title)
    assets = await check_assets(c, page, minimum=1)
    assert any(urlsplit(a).path.startswith(f"{PREFIX}static/js/bokeh") for a in assets), assets
    token = re.search(r'"token":\s*"([^"]+)"', page.text)
    assert token, "the page carries its session token"
    # bokehjs opens the websocket at the page's own path + /ws.
    url = f"{p.ws_url}/{app}/ws"
    async with open_websocket_url(url, subprotocols=["bokeh", token.group(1)], max_message_size=64 << 20) as ws:
        assert ws.subprotocol == "bokeh"
        header, _ = await _bokeh_recv(ws)
        assert header["msgtype"] == "ACK"
        await _bokeh_send(ws, "1", "PULL-DOC-REQ", {})
        header, content = await _bokeh_recv(ws)
        assert header["msgtype"] == "PULL-DOC-REPLY"
        doc = json.dumps(content)
        assert title in doc and "not clicked" in doc
        button = re.search(r'"name": "[\w.]*Button", "id": "([^"]+)"', doc)
        assert button, doc[:2000]
        click = {
            "type": "event",
            "name": "button_click",
            "values": {"type": "map", "entries": [["model", {"id": button.group(1)}]]},
        }
        event = {"kind": "MessageSent", "msg_type": "bokeh_event", "msg_data": click}
        await _bokeh_send(ws, "2", "PATCH-DOC", {"events": [event]})
        while True:
            header, content = await _bokeh_recv(ws)
            if header["msgtype"] == "PATCH-DOC" and computed in json.dumps(content):
                break


@needs("panel")
async def test_panel(tmp_path):
    with trio.fail_after(120):
        async with run_recipe("panel", tmp_path / "home") as p, client() as c:
            await check_bokeh_session(p, c, "panel_app", "trioproxy panel test", "panel computed 42")


@needs("bokeh")
async def test_bokeh(tmp_path):
    with trio.fail_after(120):
        async with run_recipe("bokeh", tmp_path / "home") as p, client() as c:
            await check_bokeh_session(p, c, "bokeh_app", "trioproxy bokeh test", "bokeh computed 42")


# --------------------------------------------------------------------------- Dash


@needs("dash")
async def test_dash(tmp_path):
    with trio.fail_after(120):
        async with run_recipe("dash", tmp_path / "home") as p, client() as c:
            page = await get_page(c, p.url + "/", "<title>trioproxy dash test</title>")
            config = re.search(r'<script id="_dash-config" type="application/json">(.*?)</script>', page.text, re.S)
            assert config, page.text[:2000]
            assert json.loads(config.group(1))["requests_pathname_prefix"] == PREFIX
            await check_assets(c, page, minimum=3)
            layout = await c.get(p.url + "/_dash-layout")
            assert layout.status_code == 200 and "trioproxy dash test" in layout.text
            deps = (await c.get(p.url + "/_dash-dependencies")).json()
            assert deps[0]["output"] == "result.children"
            # The callback, as dash-renderer POSTs it when the input changes.
            body = {
                "output": "result.children",
                "outputs": {"id": "result", "property": "children"},
                "inputs": [{"id": "word", "property": "value", "value": "trio"}],
                "changedPropIds": ["word.value"],
            }
            r = await c.post(p.url + "/_dash-update-component", json=body)
            assert r.status_code == 200, r.text
            assert r.json()["response"]["result"]["children"] == "trio computed 42"


# --------------------------------------------------------------------------- Gradio


@needs("gradio")
async def test_gradio(tmp_path):
    with trio.fail_after(120):
        async with run_recipe("gradio", tmp_path / "home") as p, client() as c:
            page = await get_page(c, p.url + "/", "trioproxy gradio test")
            await check_assets(c, page, minimum=1)
            config = (await c.get(p.url + "/config")).json()
            # The URL the front end calls the API at: the public host and the prefix.
            assert config["root"] == f"http://127.0.0.1:{p.port}/user/alice", config["root"]
            api = config["root"] + config.get("api_prefix", "/gradio_api")
            dep = next(d for d in config["dependencies"] if d.get("api_name") == "compute")
            session = uuid.uuid4().hex[:10]
            join = {
                "data": ["trio"],
                "event_data": None,
                "fn_index": dep["id"],
                "trigger_id": dep["targets"][0][0],
                "session_hash": session,
            }
            r = await c.post(api + "/queue/join", json=join)
            assert r.status_code == 200 and "event_id" in r.json(), r.text
            # The result comes as server-sent events, streamed through trioproxy.
            async with c.stream("GET", api + "/queue/data", params={"session_hash": session}) as events:
                assert events.status_code == 200
                assert events.headers["content-type"].startswith("text/event-stream")
                async for line in events.aiter_lines():
                    if line.startswith("data:") and "process_completed" in line:
                        message = json.loads(line[len("data:") :])
                        assert message["success"], message
                        assert message["output"]["data"] == ["trio computed 42"]
                        break
