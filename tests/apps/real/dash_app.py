"""Dash app for trioproxy's recipe tests: `python dash_app.py --port {port} --base-url {base_url}/`.

Behind trioproxy the browser sees the app under the prefix (``/user/alice/``) while the app
gets paths with the prefix stripped, so Dash is told both: it *serves* at ``/``
(``routes_pathname_prefix``) and its page *asks* for ``/user/alice/...``
(``requests_pathname_prefix``). The prefix comes from ``--base-url`` (trioproxy's
``{base_url}/``), else from ``$JUPYTERHUB_SERVICE_PREFIX``.

A title, and a text input whose value a server callback (``POST _dash-update-component``)
turns into a result.
"""

import argparse
import os

from dash import Dash, Input, Output, dcc, html

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=8050)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--base-url", default=os.environ.get("JUPYTERHUB_SERVICE_PREFIX", "/"))
args = parser.parse_args()
base_url = "/" + args.base_url.strip("/") + "/" if args.base_url.strip("/") else "/"

app = Dash(__name__, requests_pathname_prefix=base_url, routes_pathname_prefix="/", title="trioproxy dash test")
app.layout = html.Div(
    [
        html.H1("trioproxy dash test"),
        dcc.Input(id="word", value="dash", type="text"),
        html.Div(id="result"),
    ]
)


@app.callback(Output("result", "children"), Input("word", "value"))
def compute(word: str) -> str:
    return f"{word} computed {6 * 7}"


if __name__ == "__main__":
    app.run(host=args.host, port=args.port, debug=False)
