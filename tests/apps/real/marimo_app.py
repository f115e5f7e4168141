"""marimo notebook for trioproxy's recipe tests, served as an app: `marimo run marimo_app.py`.

A title, a text input and a cell that depends on it: changing the input (a POST of the UI
element's value) reruns that cell in the notebook's kernel, and its output comes back over
marimo's websocket (``ws``).
"""

import marimo

app = marimo.App(app_title="trioproxy marimo test")


@app.cell
def _():
    import marimo as mo

    return (mo,)


@app.cell
def _(mo):
    mo.md("# trioproxy marimo test")
    return


@app.cell
def _(mo):
    word = mo.ui.text(value="marimo", label="Word")
    word  # noqa: B018 (a cell shows its last expression)
    return (word,)


@app.cell
def _(mo, word):
    mo.md(f"{word.value} computed {6 * 7}")
    return


if __name__ == "__main__":
    app.run()
