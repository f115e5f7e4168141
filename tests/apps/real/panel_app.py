"""Panel app for trioproxy's recipe tests: `panel serve panel_app.py`.

A title, and a button whose click runs a Python callback on the server (over Bokeh's
websocket) that writes the result into the page.
"""

import panel as pn

result = pn.pane.Markdown("not clicked", name="result")
button = pn.widgets.Button(name="Compute", button_type="primary")


def on_click(event: object) -> None:
    result.object = f"panel computed {6 * 7}"


button.on_click(on_click)
pn.Column("# trioproxy panel test", button, result).servable(title="trioproxy panel test")
