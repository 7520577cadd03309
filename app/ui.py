"""The Gradio UI. For now a viewer: pick a bundled example INR (or upload one) and render it
at any resolution. The edit and admin tabs replace this page (see the app issue)."""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import numpy as np

from inr.errors import InrError
from inr.files import load_inr
from inr.images import to_uint8
from inr.siren import render

EXAMPLES = Path(__file__).resolve().parent.parent / "assets" / "examples"


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.safetensors"))


def render_inr(example: str | None, upload: str | None, size: int) -> tuple[np.ndarray, str]:
    """Render the uploaded INR file if any, else the chosen bundled example."""
    if upload:
        path = Path(upload)
    elif example in example_names():
        path = EXAMPLES / f"{example}.safetensors"
    else:
        raise gr.Error("pick a bundled example or upload an INR .safetensors file")
    try:
        inr = load_inr(path, allow_stack=False)
    except InrError as e:
        raise gr.Error(str(e)) from None
    size = int(min(max(size, 8), 512))
    img = render(inr.params, inr.arch, size)[0]
    a = inr.arch
    info = f"SIREN {'→'.join(map(str, a.dims))}, {a.num_params} parameters · {inr.meta.get('source', '')}"
    return to_uint8(img), info


def build() -> gr.Blocks:
    names = example_names()
    with gr.Blocks(title="GradMetaNet INR editor") as demo:
        gr.Markdown("# GradMetaNet INR editor\nRender an implicit neural representation (SIREN) at any resolution.")
        with gr.Row():
            with gr.Column():
                example = gr.Dropdown(names, value=names[0] if names else None, label="Bundled example")
                upload = gr.File(label="…or an INR file (.safetensors)", file_types=[".safetensors"], type="filepath")
                size = gr.Slider(16, 512, value=256, step=16, label="Render resolution")
                button = gr.Button("Render", variant="primary")
            with gr.Column():
                image = gr.Image(label="Render", format="png", type="numpy")
                info = gr.Markdown()
        button.click(render_inr, [example, upload, size], [image, info], api_name="render")
        demo.load(render_inr, [example, upload, size], [image, info])
    return demo


def launch(host: str = "127.0.0.1", port: int = 7860) -> None:
    build().queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, max_file_size="20mb", show_error=False
    )
