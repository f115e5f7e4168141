"""The README's recipes, run as written: Streamlit, Voila, Panel, Bokeh, Dash, Gradio, Shiny,
marimo, Solara, NiceGUI, JupyterLab, TensorBoard, MLflow, Datasette, FastAPI (uvicorn) and
Flask (gunicorn).

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
  kernel), Dash's callback POST and Gradio's queue (a POST, then server-sent events);
  Shiny's websocket (an input changed, the output recomputed), marimo's (a UI element's
  value POSTed, the dependent cell's new output over the websocket), Solara's kernel
  websocket (a click answered by a callback), NiceGUI's socket.io (a click event, the label's
  update), JupyterLab's kernel websocket (code run) and terminal websocket (a shell command),
  TensorBoard's scalars POST, MLflow's REST API (POSTs writing a run and its metric, read
  back), Datasette's writable canned query (a form POST with its CSRF token), FastAPI's JSON
  POST and websocket, and Flask's login form (a POST, a session cookie under the prefix and a
  ``url_for`` redirect that stays there).

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
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode, urljoin, urlsplit

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
    "shiny": "trioproxy --ready-timeout 60 -- shiny run shiny_app.py --port {port} --host 127.0.0.1 --no-dev-mode",
    "marimo": (
        "trioproxy --keep-prefix --ready-timeout 60 -- marimo run marimo_app.py"
        " --port {port} --host 127.0.0.1 --headless --base-url {base_url}"
    ),
    "solara": (
        "trioproxy --ready-check-path /readyz --ready-timeout 60 -- solara run solara_app.py"
        " --port {port} --host 127.0.0.1 --production --no-open --root-path {base_url}"
    ),
    "nicegui": "trioproxy --ready-timeout 60 -- python nicegui_app.py --port {port}",
    "jupyterlab": (
        "trioproxy --keep-prefix --ready-timeout 60 -- jupyter lab --no-browser --allow-root"
        " --sock={unix_socket} --ServerApp.base_url={base_url}/"
        " --IdentityProvider.token= --ServerApp.password="
    ),
    "tensorboard": (
        "trioproxy --keep-prefix --ready-timeout 60 -- tensorboard --logdir logs"
        " --host 127.0.0.1 --port {port} --path_prefix {base_url}"
    ),
    "mlflow": (
        "trioproxy --keep-prefix --ready-timeout 90 -- mlflow server"
        " --host 127.0.0.1 --port {port} --workers 1 --static-prefix {base_url}"
    ),
    "datasette": (
        "trioproxy --keep-prefix --ready-timeout 60 -- datasette serve data.db --metadata datasette.json"
        " --host 127.0.0.1 --port {port} --setting base_url {base_url}/"
    ),
    "fastapi": (
        "trioproxy --ready-timeout 60 -- uvicorn fastapi_app:app --host 127.0.0.1 --port {port} --root-path {base_url}"
    ),
    "flask": (
        "trioproxy --keep-prefix --ready-timeout 60 -- gunicorn --bind 127.0.0.1:{port}"
        " --env SCRIPT_NAME={base_url} --no-control-socket flask_app:app"
    ),
}

#: The files each recipe needs in its working folder (all from tests/apps/real/).
APP_FILES = {
    "streamlit": ["streamlit_app.py"],
    "voila": ["notebook.ipynb"],
    "panel": ["panel_app.py"],
    "bokeh": ["bokeh_app.py"],
    "dash": ["dash_app.py"],
    "gradio": ["gradio_app.py"],
    "shiny": ["shiny_app.py"],
    "marimo": ["marimo_app.py"],
    "solara": ["solara_app.py"],
    "nicegui": ["nicegui_app.py"],
    "jupyterlab": ["notebook.ipynb"],
    "tensorboard": [],
    "mlflow": [],
    "datasette": ["datasette.json"],
    "fastapi": ["fastapi_app.py"],
    "flask": ["flask_app.py"],
}

#: Data a recipe's app reads, made in its working folder by a script of tests/apps/real/
#: (``python SCRIPT ARG``): TensorBoard's logs, Datasette's SQLite file.
APP_DATA = {
    "tensorboard": ("tensorboard_logs.py", "logs"),
    "datasette": ("datasette_data.py", "data.db"),
}

#: What each recipe needs installed: Python modules of this venv, or a command (MLflow has a venv
#: of its own, ``.apps/mlflow``: it would downgrade pyarrow, python-dateutil and
#: importlib-metadata under the other apps).
REQUIRES = {
    "voila": ["voila", "ipywidgets"],
    "jupyterlab": ["jupyterlab", "jupyter_server_terminals"],
    "fastapi": ["fastapi", "uvicorn"],
    "flask": ["flask", "gunicorn"],
}
APPS_DIR = ROOT / ".apps"
MLFLOW_BIN = APPS_DIR / "mlflow" / "bin"
#: Solara's front end, unpacked from npm by ``make install-test`` (tests/apps/real/solara_cdn.py):
#: Solara would fetch it from cdn.jsdelivr.net, which this machine cannot reach.
SOLARA_CDN = APPS_DIR / "solara-cdn"


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


def missing(name: str) -> str | None:
    """What the recipe needs and is not installed, or None."""
    if name == "mlflow":
        return None if (MLFLOW_BIN / "mlflow").exists() else f"{MLFLOW_BIN / 'mlflow'} (make install-test)"
    if name == "solara" and not SOLARA_CDN.is_dir():
        return f"{SOLARA_CDN} (make install-test)"
    absent = [m for m in REQUIRES.get(name, [name]) if importlib.util.find_spec(m) is None]
    return ", ".join(absent) or None


def needs(name: str):
    """Skip unless the recipe's framework is installed."""
    what = missing(name)
    return pytest.mark.skipif(what is not None, reason=f"{name}: {what} is not installed")


def home_with_apps(home: Path, name: str) -> Path:
    """A folder like a user's home on a Hub, holding the recipe's app files (and data)."""
    home.mkdir(parents=True, exist_ok=True)
    for filename in APP_FILES[name]:
        shutil.copy(REAL / filename, home / filename)
    if name == "jupyterlab":
        # Dash leaves a prebuilt-style extension (share/jupyter/lab/extensions/dash-jupyterlab.tgz)
        # in the venv, for which JupyterLab offers a rebuild in a dialog that covers the page;
        # the user's labconfig turns that check off.
        labconfig = home / ".jupyter" / "labconfig"
        labconfig.mkdir(parents=True, exist_ok=True)
        (labconfig / "page_config.json").write_text(json.dumps({"buildCheck": False, "buildAvailable": False}))
    if name in APP_DATA and not (home / APP_DATA[name][1]).exists():
        script, target = APP_DATA[name]
        subprocess.run([sys.executable, str(REAL / script), target], cwd=home, check=True, timeout=60)
    return home


def app_path() -> str:
    """``PATH`` for the apps: this venv's commands first, then MLflow's."""
    return os.pathsep.join([str(BIN), str(MLFLOW_BIN), os.environ.get("PATH", "/usr/bin:/bin")])


def app_env(home: Path) -> dict[str, str]:
    """The environment of a recipe's server (on a Hub too: ``tests/test_browser.py``)."""
    return {"PATH": app_path(), "HOME": str(home), "SOLARA_ASSETS_PROXY_CACHE_DIR": str(SOLARA_CDN)}


@contextlib.asynccontextmanager
async def run_recipe(name: str, home: Path) -> AsyncIterator[Proxy]:
    """trioproxy (``--authtype none``) running the recipe under ``/user/alice/``, app ready."""
    home_with_apps(home, name)
    # Not in the app's environment: NiceGUI takes PYTEST_CURRENT_TEST for its own test mode
    # (and waits for a test client that never comes). A Hub does not pass it either.
    outside = os.environ.pop("PYTEST_CURRENT_TEST", None)
    try:
        async with run_proxy(recipe_words(name)[1:], prefix=PREFIX, env=app_env(home), cwd=str(home)) as proxy:
            try:
                await proxy.wait_ready(60)
            except trio.TooSlowError:
                raise AssertionError(f"{name} never got ready:\n{proxy.log[-4000:]}") from None
            yield proxy
    finally:
        if outside is not None:
            os.environ["PYTEST_CURRENT_TEST"] = outside


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


# --------------------------------------------------------------------------- Shiny


async def _shiny_value(ws: WebSocketConnection, output: str) -> str:
    """The next value of ``output`` that Shiny's server sends (``{"values": {...}}``)."""
    while True:
        message = json.loads(await ws.get_message())
        if output in (message.get("values") or {}):
            return str(message["values"][output])


@needs("shiny")
async def test_shiny(tmp_path):
    with trio.fail_after(60):
        async with run_recipe("shiny", tmp_path / "home") as p, client() as c:
            page = await get_page(c, p.url + "/", "trioproxy shiny test")
            await check_assets(c, page, minimum=3)
            assert "__SHINY_DEV_MODE__ = true" not in page.text
            # shiny.js opens its websocket at the page's own path + websocket/.
            async with open_websocket_url(p.ws_url + "/websocket/") as ws:
                # The inputs, and the outputs the page shows (Shiny computes only those).
                data = {"word": "trio", ".clientdata_url_search": "", ".clientdata_output_result_hidden": False}
                init = {"method": "init", "data": data}
                await ws.send_message(json.dumps(init))
                assert await _shiny_value(ws, "result") == "trio computed 42"
                # The input changes in the browser; the server recomputes the output.
                await ws.send_message(json.dumps({"method": "update", "data": {"word": "again"}}))
                assert await _shiny_value(ws, "result") == "again computed 42"


# --------------------------------------------------------------------------- marimo


async def _marimo_output(ws: WebSocketConnection, text: str) -> dict:
    """The next cell output (``cell-op``) that contains ``text``."""
    while True:
        message = json.loads(await ws.get_message())
        if message["op"] == "cell-op" and text in json.dumps(message["data"].get("output")):
            return message["data"]


@needs("marimo")
async def test_marimo(tmp_path):
    with trio.fail_after(60):
        async with run_recipe("marimo", tmp_path / "home") as p, client() as c:
            page = await get_page(c, p.url + "/", "trioproxy marimo test")
            await check_assets(c, page, minimum=1)
            token = re.search(r'<marimo-server-token data-token="([^"]+)"', page.text)
            assert token, "the page carries its server token"
            session = "s_" + uuid.uuid4().hex[:6]
            async with open_websocket_url(f"{p.ws_url}/ws?session_id={session}", max_message_size=64 << 20) as ws:
                first = json.loads(await ws.get_message())
                assert first["op"] == "kernel-ready", first["op"]
                # The cells run in order: the text input's cell, then the one that uses its value.
                element = re.search(r"object-id='([\w-]+)'", json.dumps(await _marimo_output(ws, "marimo-text")))
                assert element, "the text input is a UI element"
                await _marimo_output(ws, "marimo computed 42")
                # A new value typed into the text input: a POST, then the dependent cell reruns in
                # the kernel and its output comes over the websocket.
                r = await c.post(
                    p.url + "/api/kernel/set_ui_element_value",
                    json={"objectIds": [element.group(1)], "values": ["trio"]},
                    headers={"Marimo-Session-Id": session, "Marimo-Server-Token": token.group(1)},
                )
                assert r.status_code == 200, r.text
                await _marimo_output(ws, "trio computed 42")


# --------------------------------------------------------------------------- Solara


@needs("solara")
async def test_solara(tmp_path):
    with trio.fail_after(60):
        async with run_recipe("solara", tmp_path / "home") as p, client() as c:
            page = await get_page(c, p.url + "/", "solara")
            # Its front end comes through the prefix (from Solara's CDN cache, SOLARA_CDN here).
            assets = await check_assets(c, page, minimum=3)
            assert any("/_solara/cdn/" in a for a in assets), assets
            kernel, session = str(uuid.uuid4()), str(uuid.uuid4())
            url = f"{p.ws_url}/jupyter/api/kernels/{kernel}/channels?session_id={session}"
            cookie = [("Cookie", "solara-session-id=" + page.cookies.get("solara-session-id", ""))]
            async with open_websocket_url(url, extra_headers=cookie, max_message_size=64 << 20) as ws:
                # What solara's page does once connected: open its control comm and run the app.
                control = {"comm_id": uuid.uuid4().hex, "target_name": "solara.control", "data": {}}
                await ws.send_message(_kernel_msg("comm_open", control, session))
                run = {"method": "run", "args": {"path": "", "appName": "__default__"}}
                await ws.send_message(_kernel_msg("comm_msg", {"comm_id": control["comm_id"], "data": run}, session))
                button = None
                while True:  # the widgets come as comm_open messages, then "finished"
                    m = json.loads(await ws.get_message())
                    content = m.get("content", {})
                    state = (content.get("data") or {}).get("state") or {}
                    if m["msg_type"] == "comm_open" and state.get("children") == ["Compute"]:
                        button = content["comm_id"]
                    if m["msg_type"] == "comm_msg" and content["data"].get("method") == "finished":
                        break
                assert button, "the app's button is a widget"
                # A click (ipyvue's event message): the callback sets the text, which comes back.
                click = {"method": "custom", "content": {"event": "click", "data": {}}}
                await ws.send_message(_kernel_msg("comm_msg", {"comm_id": button, "data": click}, session))
                while True:
                    m = json.loads(await ws.get_message())
                    if m["msg_type"] == "comm_msg" and "solara computed 42" in json.dumps(m["content"]):
                        break


# --------------------------------------------------------------------------- NiceGUI


@needs("nicegui")
async def test_nicegui(tmp_path):
    with trio.fail_after(60):
        async with run_recipe("nicegui", tmp_path / "home") as p, client() as c:
            page = await get_page(c, p.url + "/", "trioproxy nicegui test")
            # NiceGUI put trioproxy's X-Forwarded-Prefix in front of its URLs.
            await check_assets(c, page, minimum=3)
            assert 'prefix: "/user/alice"' in page.text
            client_id = re.search(r"'client_id': '([0-9a-f-]+)'", page.text)
            elements = re.search(r"parseElements\(String\.raw`(.*?)`\)", page.text, re.S)
            assert client_id and elements, page.text[:2000]
            button_id, button = next((k, e) for k, e in json.loads(elements.group(1)).items() if e["tag"] == "q-btn")
            listener = next(e["listener_id"] for e in button["events"] if e["type"] == "click")
            query = {
                "client_id": client_id.group(1),
                "next_message_id": 0,
                "implicit_handshake": "true",
                "tab_id": uuid.uuid4().hex,
                "old_tab_id": "",
                "document_id": uuid.uuid4().hex,
                "EIO": 4,
                "transport": "websocket",
            }
            url = f"{p.ws_url}/_nicegui_ws/socket.io/?{urlencode(query)}"
            async with open_websocket_url(url) as ws:
                assert (await ws.get_message()).startswith("0{")  # engine.io: open
                await ws.send_message("40")  # socket.io: connect
                assert (await ws.get_message()).startswith("40{")
                event = {"id": int(button_id), "client_id": client_id.group(1), "listener_id": listener, "args": []}
                await ws.send_message("42" + json.dumps(["event", event]))
                while True:
                    m = await ws.get_message()
                    if m == "2":  # engine.io ping
                        await ws.send_message("3")
                    elif m.startswith("42") and "nicegui computed 42" in m:
                        assert json.loads(m[2:])[0] == "update"
                        break


# --------------------------------------------------------------------------- JupyterLab


@needs("jupyterlab")
async def test_jupyterlab(tmp_path):
    with trio.fail_after(90):
        async with run_recipe("jupyterlab", tmp_path / "home") as p, client() as c:
            # Jupyter Server's own redirects, under the prefix it was told (--keep-prefix).
            root = await c.get(p.url + "/")
            assert root.status_code == 302 and urlsplit(root.headers["location"]).path == f"{PREFIX}lab"
            page = await get_page(c, p.url + "/lab", "<title>JupyterLab</title>")
            await check_assets(c, page, minimum=1)
            assert '"baseUrl": "/user/alice/"' in page.text
            # Its XSRF protection stays on: the page set the _xsrf cookie, the front end sends it back.
            assert (await c.post(p.url + "/api/kernels", json={"name": "python3"})).status_code == 403
            xsrf = {"X-XSRFToken": c.cookies["_xsrf"]}
            r = await c.post(p.url + "/api/kernels", json={"name": "python3"}, headers=xsrf)
            assert r.status_code == 201, r.text
            kernel = r.json()["id"]
            session = uuid.uuid4().hex
            url = f"{p.ws_url}/api/kernels/{kernel}/channels?session_id={session}"
            async with open_websocket_url(url, max_message_size=16 << 20) as ws:
                code = {"code": "print(6 * 7, 'from the kernel')", "silent": False, "store_history": False,
                        "user_expressions": {}, "allow_stdin": False, "stop_on_error": True}
                await ws.send_message(_kernel_msg("execute_request", code, session))
                while True:
                    m = json.loads(await ws.get_message())
                    if m["msg_type"] == "stream":
                        assert m["content"]["text"] == "42 from the kernel\n"
                        break
            # A terminal: a shell on the server, over its own websocket.
            r = await c.post(p.url + "/api/terminals", headers=xsrf)
            assert r.status_code == 200, r.text
            async with open_websocket_url(f"{p.ws_url}/terminals/websocket/{r.json()['name']}") as ws:
                await ws.send_message(json.dumps(["stdin", "echo $((6 * 7)) from the terminal\r"]))
                out = ""
                while "42 from the terminal" not in out:
                    m = json.loads(await ws.get_message())
                    if m[0] == "stdout":
                        out += m[1]


# --------------------------------------------------------------------------- TensorBoard


@needs("tensorboard")
async def test_tensorboard(tmp_path):
    with trio.fail_after(60):
        async with run_recipe("tensorboard", tmp_path / "home") as p, client() as c:
            page = await get_page(c, p.url + "/", "<title>TensorBoard</title>")
            await check_assets(c, page, minimum=1)
            tags = (await c.get(p.url + "/data/plugin/scalars/tags")).json()
            assert "trioproxy/computed" in tags["trioproxy"], tags
            # What the scalars dashboard POSTs for a chart: the run's values, from the logs.
            form = {"tag": "trioproxy/computed", "runs": "trioproxy"}
            r = await c.post(p.url + "/data/plugin/scalars/scalars_multirun", data=form)
            assert r.status_code == 200, r.text
            assert [value for _, _, value in r.json()["trioproxy"]] == [6.0, 7.0, 42.0]


# --------------------------------------------------------------------------- MLflow


@needs("mlflow")
async def test_mlflow(tmp_path):
    with trio.fail_after(120):
        async with run_recipe("mlflow", tmp_path / "home") as p, client() as c:
            page = await get_page(c, p.url + "/", "<title>MLflow</title>")
            await check_assets(c, page, minimum=2)
            # The UI's REST calls (ajax-api, relative to the page): a run and its metric, read back.
            api = p.url + "/ajax-api/2.0/mlflow"
            r = await c.post(api + "/experiments/create", json={"name": "trioproxy"})
            assert r.status_code == 200, r.text
            experiment = r.json()["experiment_id"]
            r = await c.post(api + "/runs/create", json={"experiment_id": experiment, "run_name": "trio"})
            run = r.json()["run"]["info"]["run_id"]
            metric = {"run_id": run, "key": "computed", "value": 42, "timestamp": 0, "step": 0}
            assert (await c.post(api + "/runs/log-metric", json=metric)).status_code == 200
            r = await c.post(api + "/runs/search", json={"experiment_ids": [experiment]})
            (found,) = r.json()["runs"]
            assert found["info"]["run_id"] == run
            assert [(m["key"], m["value"]) for m in found["data"]["metrics"]] == [("computed", 42.0)]


# --------------------------------------------------------------------------- Datasette


@needs("datasette")
async def test_datasette(tmp_path):
    with trio.fail_after(60):
        async with run_recipe("datasette", tmp_path / "home") as p, client() as c:
            page = await get_page(c, p.url + "/", "trioproxy datasette test")
            await check_assets(c, page, minimum=1)
            form = await get_page(c, p.url + "/data/add_word", "data: add_word")
            await check_assets(c, form, minimum=3)
            assert f'action="{PREFIX}data/add_word"' in form.text
            token = re.search(r'name="csrftoken" value="([^"]+)"', form.text)
            assert token, "the form carries Datasette's CSRF token"
            # Without the token (its cookie alone), Datasette refuses the write.
            refused = await c.post(p.url + "/data/add_word", data={"word": "nope"})
            assert refused.status_code == 403, refused.status_code
            r = await c.post(p.url + "/data/add_word", data={"csrftoken": token.group(1), "word": "trio"})
            # Datasette's redirect back to the form stays under the prefix (it is told base_url
            # and gets the path whole).
            assert r.status_code == 302 and r.headers["location"] == f"{PREFIX}data/add_word", r.headers
            done = await get_page(c, urljoin(str(r.url), r.headers["location"]), "datasette stored the word")
            assert done.status_code == 200
            rows = (await c.get(p.url + "/data/words.json", params={"_shape": "array"})).json()
            assert {"word": "trio", "computed": "trio computed 42"} in [
                {"word": row["word"], "computed": row["computed"]} for row in rows
            ]


# --------------------------------------------------------------------------- FastAPI on uvicorn


@needs("fastapi")
async def test_fastapi(tmp_path):
    with trio.fail_after(60):
        async with run_recipe("fastapi", tmp_path / "home") as p, client() as c:
            page = await get_page(c, p.url + "/", "trioproxy fastapi test")
            await check_assets(c, page, minimum=1)
            # FastAPI's docs page loads the schema from root_path, the public prefix.
            docs = await get_page(c, p.url + "/docs", "swagger")
            assert "url: '/user/alice/openapi.json'" in docs.text
            assert (await c.get(p.url + "/openapi.json")).json()["info"]["title"] == "trioproxy fastapi test"
            # Its trailing-slash redirect: the request's host and the prefix (uvicorn's root_path).
            r = await c.get(p.url + "/items")
            assert r.status_code == 307 and r.headers["location"] == f"{p.url}/items/", r.headers
            r = await c.post(p.url + "/compute", json={"word": "trio"})
            assert r.json() == {"result": "trio computed 42"}
            async with open_websocket_url(p.ws_url + "/ws") as ws:
                for word in ("trio", "again"):
                    await ws.send_message(word)
                    assert await ws.get_message() == f"{word} computed 42"


# --------------------------------------------------------------------------- Flask on gunicorn


@needs("flask")
async def test_flask(tmp_path):
    with trio.fail_after(60):
        async with run_recipe("flask", tmp_path / "home") as p, client() as c:
            root = await c.get(p.url + "/")
            assert root.status_code == 302 and root.headers["location"] == f"{PREFIX}login", root.headers
            page = await get_page(c, p.url + "/login", "trioproxy flask test")
            await check_assets(c, page, minimum=1)
            assert f'action="{PREFIX}login"' in page.text
            # The login: a form POST; Flask's session cookie, at the prefix only; url_for's redirect.
            r = await c.post(p.url + "/login", data={"name": "trio"})
            assert r.status_code == 302 and r.headers["location"] == f"{PREFIX}dashboard", r.headers
            (cookie,) = [h for h in r.headers.get_list("set-cookie") if h.startswith("session=")]
            assert "Path=/user/alice/;" in cookie, cookie
            dashboard = await get_page(c, urljoin(str(r.url), r.headers["location"]), "trio computed 42")
            assert "dashboard of trio" in dashboard.text
