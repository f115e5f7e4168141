"""Bokeh server app for trioproxy's recipe tests: `bokeh serve bokeh_app.py`.

A title, and a button whose click runs a Python callback on the server (over Bokeh's
websocket) that writes the result into the page.
"""

from bokeh.io import curdoc
from bokeh.layouts import column
from bokeh.models import Button, Div

title = Div(text="<h1>trioproxy bokeh test</h1>", name="title")
result = Div(text="not clicked", name="result")
button = Button(label="Compute", name="compute")


def on_click() -> None:
    result.text = f"bokeh computed {6 * 7}"


button.on_click(on_click)
curdoc().add_root(column(title, button, result))
curdoc().title = "trioproxy bokeh test"
