"""FastAPI app for trioproxy's recipe tests: `uvicorn fastapi_app:app --root-path {base_url}`.

A page whose button POSTs a word to ``compute`` (a JSON API) and shows the answer, a
websocket (``ws``) that answers each word it gets, and FastAPI's own ``docs`` page, which
loads ``openapi.json`` from ``root_path``: uvicorn's ``--root-path`` is what tells it the
public prefix (and makes FastAPI's redirects, e.g. ``items`` to ``items/``, stay under it).
"""

from fastapi import FastAPI, WebSocket, WebSocketDisconnect
from fastapi.responses import HTMLResponse
from pydantic import BaseModel

app = FastAPI(title="trioproxy fastapi test")

PAGE = """<!DOCTYPE html>
<html><head><title>trioproxy fastapi test</title><script src="static/page.js"></script></head>
<body><h1>trioproxy fastapi test</h1>
<input id="word" value="fastapi"> <button id="compute" onclick="compute()">Compute</button>
<div id="result">not computed</div></body></html>
"""

SCRIPT = """
async function compute() {
  const word = document.getElementById("word").value;
  const r = await fetch("compute", {method: "POST", headers: {"Content-Type": "application/json"},
                                    body: JSON.stringify({word})});
  document.getElementById("result").textContent = (await r.json()).result;
}
"""


class Word(BaseModel):
    word: str


def computed(word: str) -> str:
    return f"{word} computed {6 * 7}"


@app.get("/", response_class=HTMLResponse)
def page() -> str:
    return PAGE


@app.get("/static/page.js")
def script() -> HTMLResponse:
    return HTMLResponse(SCRIPT, media_type="text/javascript")


@app.post("/compute")
def compute(body: Word) -> dict[str, str]:
    return {"result": computed(body.word)}


@app.get("/items/")
def items() -> list[str]:
    return ["trio"]


@app.websocket("/ws")
async def ws(websocket: WebSocket) -> None:
    await websocket.accept()
    try:
        while True:
            await websocket.send_text(computed(await websocket.receive_text()))
    except WebSocketDisconnect:
        pass
