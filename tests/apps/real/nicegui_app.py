"""NiceGUI app for trioproxy's recipe tests: `python nicegui_app.py --port {port}`.

A title, and a button whose click (an event over NiceGUI's socket.io websocket,
``_nicegui_ws/socket.io``) runs a Python handler on the server, which updates a label over
the same websocket. Behind trioproxy NiceGUI needs nothing about the prefix: it reads
trioproxy's ``X-Forwarded-Prefix`` and puts it in front of its URLs.
"""

import argparse

from nicegui import ui

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=8080)
parser.add_argument("--host", default="127.0.0.1")
args = parser.parse_args()


@ui.page("/")
def index() -> None:
    ui.label("trioproxy nicegui test").classes("text-h4")
    result = ui.label("not clicked").props("id=result")

    def compute() -> None:
        result.text = f"nicegui computed {6 * 7}"

    ui.button("Compute", on_click=compute).props("id=compute")


ui.run(
    host=args.host,
    port=args.port,
    title="trioproxy nicegui test",
    reload=False,
    show=False,
    show_welcome_message=False,
)
