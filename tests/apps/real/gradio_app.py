"""Gradio app for trioproxy's recipe tests: `python gradio_app.py --port {port} --root-path {base_url}`.

Behind trioproxy the app gets paths with the prefix stripped, while the browser must ask for
``/user/alice/...``: Gradio's ``root_path`` says so (from ``--root-path``, trioproxy's
``{base_url}``, else ``$JUPYTERHUB_SERVICE_PREFIX``). Gradio builds its public URL from the
request's ``Host``/``X-Forwarded-Host`` plus that path.

A title, and a button whose click goes through Gradio's queue (``POST .../queue/join``, then
the result as server-sent events from ``.../queue/data``) to a Python function.
"""

import argparse
import os

import gradio as gr

parser = argparse.ArgumentParser()
parser.add_argument("--port", type=int, default=7860)
parser.add_argument("--host", default="127.0.0.1")
parser.add_argument("--root-path", default=os.environ.get("JUPYTERHUB_SERVICE_PREFIX", ""))
args = parser.parse_args()


def compute(word: str) -> str:
    return f"{word} computed {6 * 7}"


with gr.Blocks(title="trioproxy gradio test", analytics_enabled=False) as demo:
    gr.Markdown("# trioproxy gradio test")
    word = gr.Textbox(value="gradio", label="Word", elem_id="word")
    button = gr.Button("Compute", elem_id="compute")
    result = gr.Textbox(label="Result", elem_id="result")
    button.click(compute, inputs=word, outputs=result, api_name="compute")

if __name__ == "__main__":
    demo.launch(
        server_name=args.host,
        server_port=args.port,
        root_path=args.root_path.rstrip("/"),
        share=False,
        ssr_mode=False,
        inbrowser=False,
        show_error=True,
    )
