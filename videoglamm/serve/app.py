"""The Gradio page of `videoglamm serve`. Gradio is imported here only (the `[demo]` extra).

The page is a thin shell over `session.run_request`: it turns each `Update` into progress, a live
overlay frame and a partial presence strip, the `DemoResult` into the answer, the overlay video and
three downloads, and a library error (`VideoGLaMMError`: bad upload, bad prompt, unloadable model)
into a red message box. Everything is served from this machine; nothing is fetched from the internet.
"""

from __future__ import annotations

import html
import os
from pathlib import Path
from typing import Any, Iterator

from videoglamm.errors import VideoGLaMMError
from videoglamm.serve.render import answer_html, presence_strip
from videoglamm.serve.session import KINDS, SAMWISE, VIDEOGLAMM, DemoRequest, DemoResult, ModelCache, run_request

EXAMPLES = {
    VIDEOGLAMM: "What is the yellow circle in this video? Please respond with segmentation masks.",
    SAMWISE: "the yellow circle\nthe red triangle",
}
CSS = ".vg-error { background: #fde8e8; color: #9b1c1c; border: 1px solid #f8b4b4; padding: 0.6em 0.9em; " \
      "border-radius: 0.4em; } .vg-note { background: #fdf6e3; color: #7a5a00; padding: 0.4em 0.8em; " \
      "border-radius: 0.4em; margin-bottom: 0.4em; }"


def import_gradio() -> Any:
    """The `gradio` module, or a VideoGLaMMError naming the extra to install."""
    os.environ["GRADIO_ANALYTICS_ENABLED"] = "False"  # before the import: gradio reads it at import time
    try:
        import gradio
    except ImportError as err:
        raise VideoGLaMMError("the web demo needs Gradio: pip install 'videoglamm[demo]'") from err
    return gradio


def error_html(err: BaseException, upload: str | None = None) -> str:
    """A library error as the page shows it; the upload's temporary path is shortened to its file name."""
    message = str(err)
    if upload:
        message = message.replace(str(upload), Path(upload).name)
    return f'<div class="vg-error" role="alert"><b>Error:</b> {html.escape(message)}</div>'


def _status(text: str, notes: list[str] = ()) -> str:
    body = "".join(f'<div class="vg-note">{html.escape(n)}</div>' for n in notes)
    return body + f'<div class="vg-status">{html.escape(text)}</div>'


def build_app(models: ModelCache, root: str | Path) -> Any:
    """The `gr.Blocks` page; each request writes into its own folder under `root`."""
    gr = import_gradio()

    def respond(video: str | None, use_sample: bool, kind: str, prompt: str,
                progress: Any = gr.Progress()) -> Iterator[tuple[Any, ...]]:
        # Outputs: status, answer, live frame, presence strip, overlay video, 3 downloads.
        keep = gr.update()
        request = DemoRequest(video=video, use_sample=bool(use_sample), model=kind, prompt=prompt)
        try:
            for item in run_request(request, models, root):
                if isinstance(item, DemoResult):
                    k = len(item.presence)
                    yield (_status(f"done: {item.num_frames} frames, {k} object{'s' * (k != 1)}", item.notes),
                           answer_html(item.text, item.phrases), keep,
                           presence_strip(item.presence, item.phrases), str(item.overlay),
                           gr.update(value=str(item.result_json), interactive=True),
                           gr.update(value=str(item.masks_zip), interactive=True),
                           gr.update(value=str(item.overlay), interactive=True))
                    return
                if item.total:
                    progress((item.done, item.total), desc="masks", unit="frames")
                    yield (_status(f"masks: frame {item.done} of {item.total}"), answer_html(item.text, item.phrases),
                           item.frame, presence_strip(item.presence, item.phrases, item.done), keep, keep, keep, keep)
                else:
                    progress(0, desc=item.stage)
                    yield (_status(item.stage + " ..."), "", None, None, None, *(gr.update(value=None, interactive=False),) * 3)
        except VideoGLaMMError as err:
            yield (error_html(err, video), "", None, None, None, *(gr.update(value=None, interactive=False),) * 3)

    with gr.Blocks(title="videoglamm", analytics_enabled=False, delete_cache=(1800, 3600)) as app:
        gr.Markdown("## videoglamm: ask about a video, get an answer with masks")
        with gr.Row():
            with gr.Column(scale=1):
                video = gr.File(label="video (mp4, avi, webm, ...)", type="filepath", height=120, elem_id="vg-video")
                use_sample = gr.Checkbox(label="use the synthetic sample instead (moving shapes, 24 frames)",
                                         value=False, elem_id="vg-sample")
                kind = gr.Radio(list(KINDS), value=VIDEOGLAMM, label="model", elem_id="vg-model")
                prompt = gr.Textbox(label="question (VideoGLaMM) or referring expressions, one per line (SAMWISE)",
                                    value=EXAMPLES[VIDEOGLAMM], lines=3, elem_id="vg-prompt")
                run = gr.Button("Run", variant="primary", elem_id="vg-run")
                status = gr.HTML(elem_id="vg-status")
                live = gr.Image(label="frame being segmented", format="png", interactive=False, height=180,
                                buttons=[], elem_id="vg-live")
            with gr.Column(scale=1):
                answer = gr.HTML(elem_id="vg-answer")
                overlay = gr.Video(label="overlay", autoplay=True, loop=True, interactive=False, height=330,
                                   elem_id="vg-overlay")
                gr.Markdown("**objects over time** (coloured where the object's mask is non-empty)")
                strip = gr.Image(show_label=False, format="png", interactive=False, buttons=[], container=False,
                                 elem_id="vg-strip")
                with gr.Row():
                    result_json = gr.DownloadButton("result.json", interactive=False, elem_id="vg-result-json")
                    masks_zip = gr.DownloadButton("masks (PNG, zip)", interactive=False, elem_id="vg-masks-zip")
                    overlay_mp4 = gr.DownloadButton("overlay.mp4", interactive=False, elem_id="vg-overlay-mp4")
        # Swap in the other model's example, but never over something the user typed.
        kind.change(lambda k, p: EXAMPLES[k] if not p.strip() or p in EXAMPLES.values() else p,
                    inputs=[kind, prompt], outputs=prompt)
        run.click(respond, inputs=[video, use_sample, kind, prompt],
                  outputs=[status, answer, live, strip, overlay, result_json, masks_zip, overlay_mp4])
    return app


def launch(models: ModelCache, root: str | Path, host: str = "127.0.0.1", port: int = 7860) -> None:
    """Serve the page on `host:port` until interrupted (no share link, no telemetry)."""
    app = build_app(models, root)
    gr = import_gradio()
    app.queue(default_concurrency_limit=1)  # one model run at a time; other users wait in the queue
    app.launch(server_name=host, server_port=port, share=False, inbrowser=False, ssr_mode=False,
               mcp_server=False, pwa=False, allowed_paths=[str(root)], css=CSS, theme=gr.themes.Default(),
               footer_links=["gradio"])
