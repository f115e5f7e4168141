"""Shiny for Python app for trioproxy's recipe tests: `shiny run shiny_app.py`.

A title, and a text input whose value a reactive function on the server turns into a
result, over Shiny's websocket (``websocket/``, next to the page).
"""

from shiny import App, render, ui

app_ui = ui.page_fluid(
    ui.h1("trioproxy shiny test"),
    ui.input_text("word", "Word", "shiny"),
    ui.output_text("result"),
    title="trioproxy shiny test",
)


def server(input, output, session):  # type: ignore[no-untyped-def]
    @render.text
    def result() -> str:
        return f"{input.word()} computed {6 * 7}"


app = App(app_ui, server)
