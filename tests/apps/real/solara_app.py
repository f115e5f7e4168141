"""Solara app for trioproxy's recipe tests: `solara run solara_app.py`.

A title, and a button whose click (a widget message over Solara's kernel websocket,
``jupyter/api/kernels/<id>/channels``) runs a Python callback on the server, whose new
state comes back over the same websocket.
"""

import solara

result = solara.reactive("not clicked")


def compute() -> None:
    result.value = f"solara computed {6 * 7}"


@solara.component
def Page() -> None:
    solara.Title("trioproxy solara test")
    solara.Markdown("# trioproxy solara test")
    solara.Button("Compute", on_click=compute)
    solara.Text(result.value)
