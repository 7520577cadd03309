"""The Gradio UI: an edit tab (fit or load an INR, edit it with GradMetaNet editors, paint) and an
admin tab (train, evaluate, publish, delete editors). The work is done by app.handlers; this
file only lays out components and wires events (each with an `api_name`, see the README).
"""

from __future__ import annotations

import os
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from gmn.editors import KINDS  # noqa: E402
from gmn.objectives import TASKS  # noqa: E402

from . import handlers as H  # noqa: E402
from . import sensitivity as S  # noqa: E402
from .jobs import Jobs  # noqa: E402

BRUSH_COLOURS = ["#ffffff", "#000000", "#cc3232", "#32cc70", "#3270cc", "#f0c020"]
DATASETS = ["mnist5k", "patches", "lfw"]
MAX_FILE_SIZE = "20mb"
SESSION_TTL = 4 * 3600  # seconds an idle session's state is kept


def _delete_state(state) -> None:
    if isinstance(state, dict) and state.get("dir"):
        H.cleanup_session(state["dir"])


def _plot_frame(history: list[dict]) -> pd.DataFrame | None:
    """Loss history as a long frame (step, loss, split), or None while there is none: a LinePlot with a
    colour field that is ever given an empty frame keeps drawing axes without lines (Gradio 6, seen in
    Chromium), so the plot starts empty (value None) and only ever receives non-empty frames."""
    rows = [{"step": e["step"], "loss": e[k], "split": k} for e in history for k in ("train", "val") if k in e]
    if not rows:
        return None
    return pd.DataFrame(rows, columns=["step", "loss", "split"]).astype({"step": "int64", "loss": "float64",
                                                                         "split": "object"})


def _status_md(s: dict) -> str:
    if s.get("run") is None:
        return "no training job yet"
    last = s["history"][-1] if s["history"] else {}
    val = f" · last val {last['val']:.4g}" if last else ""
    err = f"\n\n**error:** {s['error']}" if s.get("error") else ""
    resumed = " (resumed)" if s.get("resumed") else ""
    return f"**{s['run']}**{resumed}: {s['state']} · step {s['step']} · {s['progress']:.0%}{val}{err}"


def build(registry_dirs=None, published_dir=None, zoo_root=None, runs_dir=None) -> gr.Blocks:
    """The app. registry_dirs: shipped editor folders (read-only); published_dir: where the admin
    publishes editors; zoo_root: training data; runs_dir: training runs (checkpoints)."""
    settings = H.Settings()
    if registry_dirs is not None:
        settings.registry_dirs = [Path(d) for d in registry_dirs]
    if published_dir is not None:
        settings.published_dir = Path(published_dir)
    if runs_dir is not None:
        settings.runs_dir = Path(runs_dir)
    settings.zoo_root = Path(zoo_root) if zoo_root else None
    jobs = Jobs(settings.runs_dir, settings.zoo_root)
    thumbs = H.example_thumbnails()

    def editor_choices():
        return [r["name"] for r in H.list_editors(settings)]

    def filter_choices():  # the shipped `dilate` first: the default edit of the default (gray digit) INR
        names = [r["name"] for r in H.list_editors(settings) if r["task"] != "paint"] or editor_choices()
        return sorted(names, key=lambda n: n != "dilate")

    with gr.Blocks(title="GradMetaNet INR editor") as demo:
        demo.settings, demo.jobs = settings, jobs  # for tests and the benchmark
        state = gr.State(None, time_to_live=SESSION_TTL, delete_callback=_delete_state)
        gr.Markdown("# GradMetaNet INR editor\nFit a SIREN to an image, then edit its weights in one forward pass "
                    "of a trained GradMetaNet editor.")
        with gr.Tabs():
            with gr.Tab("Edit", id="edit") as edit_tab:
                with gr.Row():
                    with gr.Column(scale=1):
                        with gr.Tab("Upload an image"):
                            image_file = gr.File(label="Image (PNG, JPEG, WebP)", type="filepath",
                                                 file_types=["image"], elem_id="image-upload")
                            with gr.Accordion("INR size", open=False):
                                hidden = gr.Slider(8, 128, value=H.DEFAULT_HIDDEN, step=8, label="Hidden width")
                                layers = gr.Slider(1, 5, value=H.DEFAULT_LAYERS, step=1, label="Sine layers")
                                resolution = gr.Dropdown(["auto", "28", "32", "128", "256", "512", "1024"],
                                                         value="auto", label="Working resolution (longer side)",
                                                         info="auto: 256 for photos (9×9 tiles of 32 px), an image "
                                                              "of at most 32 px keeps its size (one SIREN)")
                                steps = gr.Slider(10, 2000, value=H.DEFAULT_STEPS, step=10, label="Fit steps",
                                                  elem_id="fit-steps")
                                colour = gr.Radio(["auto", "gray", "colour"], value="auto", label="Channels",
                                                  info="auto: photos as colour tiles (gray ones with R = G = B), "
                                                       "small gray images (digits) gray")
                                fit_opt = gr.Radio(list(H.FIT_OPTIMIZERS), value="Adam", label="Optimizer",
                                                   info="Adam: the recipe the editors were trained on. fast "
                                                        "(learned): a meta-learned optimizer for single gray "
                                                        "SIRENs; its INRs can be outside the editors' "
                                                        "distribution (BENCHMARKS.md)",
                                                   elem_id="fit-optimizer")
                            fit_btn = gr.Button("Fit", variant="primary", elem_id="fit-btn")
                        with gr.Tab("Bundled example"):
                            gallery = gr.Gallery(value=thumbs, label="Examples (MNIST digits, scikit-image photos)",
                                                 columns=4, height=240, allow_preview=False, elem_id="examples")
                        with gr.Tab("Upload an INR"):
                            inr_file = gr.File(label="INR (.safetensors)", type="filepath",
                                               file_types=[".safetensors"], elem_id="inr-upload")
                            load_btn = gr.Button("Load INR")
                    with gr.Column(scale=1):
                        with gr.Row():
                            editor = gr.Dropdown(filter_choices(), value=(filter_choices() or [None])[0],
                                                 label="Edit", elem_id="editor-dd", scale=4, allow_custom_value=True)
                            refresh = gr.Button("↻", scale=0, min_width=40)
                        card = gr.Markdown(H.card_markdown(settings, (filter_choices() or [None])[0]))
                        points = gr.Slider(1, 512, value=64, step=1, label="Sampled points")
                        strength = gr.Slider(0, 3, value=1.0, step=0.05, label="Strength s (θ + s·Δθ)",
                                             elem_id="strength")
                        display = gr.Slider(32, H.MAX_DISPLAY, value=256, step=32, label="Display resolution")
                        with gr.Row():
                            edit_btn = gr.Button("Apply edit", variant="primary", elem_id="edit-btn")
                            again_btn = gr.Button("Apply again")
                            undo_btn = gr.Button("Undo")
                            reset_btn = gr.Button("Reset")
                info = gr.Markdown("load an image, an example or an INR file", elem_id="info")
                with gr.Row():
                    photo_img = gr.Image(label="Uploaded photo (at the display size)", format="png", type="numpy",
                                         interactive=False, elem_id="photo")
                    original = gr.Image(label="Fitted INR", format="png", type="numpy", interactive=False,
                                        elem_id="original")
                    target = gr.Image(label="Target (filter of the original)", format="png", type="numpy",
                                      interactive=False)
                    edited = gr.Image(label="Edited", format="png", type="numpy", interactive=False, elem_id="edited")
                    diff = gr.Image(label="|edited − original|", format="png", type="numpy", interactive=False)
                with gr.Row():
                    points_img = gr.Image(label="Sampled points", format="png", type="numpy", interactive=False)
                    gmn_img = gr.Image(label="What GradMetaNet sees: a (top) and g (bottom) per layer; rows = points, "
                                       "columns = neurons", format="png", type="numpy", interactive=False)
                with gr.Accordion("Paint", open=True):
                    gr.Markdown("Paint on the image with the brush (pick a colour and size); the painted layer's "
                                "alpha is the mask, its colours the target; a paint editor turns it into a "
                                "weight edit.")
                    canvas = gr.ImageEditor(label="Paint", type="numpy", format="png", image_mode="RGBA",
                                            sources=(), transforms=(), layers=False, elem_id="paint",
                                            brush=gr.Brush(colors=BRUSH_COLOURS, default_color="#ffffff",
                                                           default_size=12, color_mode="defaults"),
                                            canvas_size=(256, 256))
                    with gr.Row():
                        canvas_btn = gr.Button("Reload the current image into the canvas", elem_id="canvas-btn")
                        paint_btn = gr.Button("Apply paint", variant="primary", elem_id="paint-btn")
                with gr.Accordion("Sensitivity: which weights matter (Fisher diagonal)", open=False):
                    with gr.Row():
                        sens_points = gr.Slider(16, 1024, value=128, step=16, label="Points")
                        sens_top = gr.Slider(0.5, 50, value=5, step=0.5, label="Most sensitive weights (%)")
                        sens_btn = gr.Button("Compute sensitivity", elem_id="sensitivity-btn")
                    with gr.Row():
                        sens_layers = gr.Image(label="Fisher diagonal per layer (log scale)", format="png",
                                               type="numpy", interactive=False, elem_id="sens-layers")
                        sens_region = gr.Image(label="Where the image moves when the top weights change",
                                               format="png", type="numpy", interactive=False, elem_id="sens-region")
                    sens_info = gr.Markdown(elem_id="sens-info")
                with gr.Row():
                    dl_btn = gr.Button("Prepare downloads")
                    dl_inr = gr.File(label="Edited INR (.safetensors)", interactive=False)
                    dl_png = gr.File(label="Edited render (PNG)", interactive=False)

            with gr.Tab("Admin", id="admin"):
                gr.Markdown("Admin is enabled: log in with the password." if H.admin_enabled() else
                            "**Admin is disabled**: start the app with `GMN_ADMIN_PASSWORD` set to enable it.",
                            elem_id="admin-notice")
                with gr.Row():
                    password = gr.Textbox(label="Admin password", type="password", elem_id="admin-password")
                    login_btn = gr.Button("Log in", elem_id="admin-login")
                with gr.Column(visible=False) as admin_panel:
                    gr.Markdown("### Train an editor")
                    with gr.Row():
                        run_name = gr.Textbox("dilate-1", label="Run name", elem_id="run-name")
                        task = gr.Dropdown(list(TASKS), value="dilate", label="Task")
                        dataset = gr.Dropdown(DATASETS, value="mnist5k", label="Dataset")
                        kind = gr.Dropdown(list(KINDS), value="ws+gmn", label="Editor type")
                        size = gr.Radio(list(H.EDITOR_SIZES), value="small", label="Size", elem_id="size")
                    with gr.Row():
                        minutes = gr.Number(10, label="Time budget (CPU minutes)")
                        train_steps = gr.Number(0, label="…or steps (0: use the time budget)", precision=0,
                                                elem_id="train-steps")
                        limit = gr.Number(0, label="Training INRs (0: all)", precision=0, elem_id="train-limit")
                        val_size = gr.Number(100, label="Validation INRs", precision=0, elem_id="val-size")
                    with gr.Row():
                        train_btn = gr.Button("Train (or resume)", variant="primary", elem_id="train-btn")
                        stop_btn = gr.Button("Stop", variant="stop")
                        status_btn = gr.Button("Refresh status")
                    status = gr.Markdown("no training job yet", elem_id="train-status")
                    curve = gr.LinePlot(None, x="step", y="loss", color="split", label="Train / val loss",
                                        elem_id="loss-plot", height=260)
                    status_json = gr.JSON(label="Job status", visible=False)
                    gr.Markdown("### Evaluate, publish, delete")
                    with gr.Row():
                        eval_name = gr.Dropdown(editor_choices(), label="Editor", allow_custom_value=True)
                        eval_limit = gr.Number(100, label="Validation INRs", precision=0)
                        eval_btn = gr.Button("Evaluate against baselines")
                    eval_table = gr.Dataframe(headers=["method", "MSE", "ms / INR"], interactive=False)
                    with gr.Row():
                        pub_run = gr.Textbox("dilate-1", label="Run to publish", elem_id="pub-run")
                        pub_name = gr.Textbox("my-dilate", label="Publish as", elem_id="pub-name")
                        pub_btn = gr.Button("Publish", elem_id="publish-btn")
                        del_name = gr.Textbox(label="Published editor to delete")
                        del_btn = gr.Button("Delete", variant="stop")
                    listing = gr.JSON(label="Editors and runs", elem_id="listing")
                    list_btn = gr.Button("List editors and runs")

        # edit tab

        views = [original, target, edited, diff, points_img, gmn_img, info]

        def show(st, disp, with_canvas=True):
            v = {k: H.png_file(a, k) if k != "metrics" else a for k, a in H.views(st, disp).items()}
            out = [st, v["original"], v["target"], v["edited"], v["diff"], v["points"], v["gmn"], v["metrics"]]
            return out + [v["edited"] if with_canvas else gr.skip(), v["photo"]]

        outs = [state, *views, canvas, photo_img]

        def do_fit(image, hidden, layers, resolution, steps, channels, display, optimizer="Adam",
                   progress=gr.Progress()):  # noqa: B008
            def cb(step, psnr):
                progress((step + 1, int(steps)), desc=f"fitting · PSNR {float(psnr[0]):.1f} dB")

            st, notice = H.fit_image(image, hidden=hidden, layers=layers, resolution=resolution, steps=steps,
                                     colour=channels, callback=cb, optimizer=optimizer or "Adam")
            if notice:
                gr.Warning(notice)
            return show(st, display)

        def do_example(disp, evt: gr.SelectData):
            return show(H.load_example(thumbs[evt.index][1]), disp)

        def do_load(inr_file, display):
            return show(H.load_inr_file(inr_file), display)

        def do_edit(st, editor, points, strength, display):
            return show(H.edit(settings, st, editor, points, strength), display)

        def do_again(st, editor, points, strength, display):
            return show(H.apply_again(settings, st, editor, points, strength), display)

        def do_paint(st, painted, editor, points, strength, display):
            return show(H.paint(settings, st, painted, editor, points, strength), display)

        def do_strength(st, strength, display):
            if not st or st.get("dtheta") is None:
                return [gr.skip()] * 10
            return show(H.restrength(st, strength), display, with_canvas=False)

        def do_undo(st, display):
            return show(H.undo(st), display)

        def do_reset(st, display):
            return show(H.reset(st), display)

        def do_render(st, display, which="edited"):
            return H.png_file(H.render_current(st, display, which), which)

        def do_downloads(st, display, request: gr.Request):
            st = H._need(st)
            folder = H.session_dir(getattr(request, "session_hash", None))
            st = {**st, "dir": getattr(request, "session_hash", None)}
            return [st, *H.downloads(st, folder, display)]

        def do_canvas(st, display):
            return H.png_file(H.render_current(st, display, "edited"), "canvas")

        def do_list():
            return H.list_editors(settings)

        def do_editors_for(st, current):
            """Offer only the filter editors that fit the loaded INR; keep the user's choice if it still fits."""
            names, default = H.filter_editors_for(settings, st)
            value = current if current in names else default
            if not names:
                return gr.update(choices=[], value=None), ("no installed filter editor edits this INR "
                                                          "(its depth or channels); see the admin tab")
            return gr.update(choices=names, value=value), H.card_markdown(settings, value)

        edit_kw = dict(concurrency_limit=4, concurrency_id="edit")
        fit_btn.click(do_fit, [image_file, hidden, layers, resolution, steps, colour, display, fit_opt], outs,
                      api_name="fit", concurrency_limit=2, concurrency_id="fit").success(
            do_editors_for, [state, editor], [editor, card], api_visibility="private")
        gallery.select(do_example, [display], outs, api_visibility="private", **edit_kw).success(
            do_editors_for, [state, editor], [editor, card], api_visibility="private")
        load_btn.click(do_load, [inr_file, display], outs, api_name="load_inr", **edit_kw).success(
            do_editors_for, [state, editor], [editor, card], api_visibility="private")
        edit_btn.click(do_edit, [state, editor, points, strength, display], outs, api_name="edit", **edit_kw)
        again_btn.click(do_again, [state, editor, points, strength, display], outs, api_name="apply_again",
                        **edit_kw)
        paint_btn.click(do_paint, [state, canvas, editor, points, strength, display], outs, api_name="paint",
                        **edit_kw)
        strength.release(do_strength, [state, strength, display], outs, api_name="strength", **edit_kw)
        undo_btn.click(do_undo, [state, display], outs, api_name="undo", **edit_kw)
        reset_btn.click(do_reset, [state, display], outs, api_name="reset", **edit_kw)
        which = gr.Radio(["edited", "original"], value="edited", visible=False)
        render_img = gr.Image(format="png", type="numpy", visible=False)
        display.release(do_render, [state, display, which], [render_img], api_name="render", **edit_kw)
        canvas_btn.click(do_canvas, [state, display], [canvas], api_visibility="private", **edit_kw)
        dl_btn.click(do_downloads, [state, display], [state, dl_inr, dl_png], api_name="download", **edit_kw)

        def do_sensitivity(st, pts, top, disp):
            st = H._need(st)
            try:
                layers_img, region, md = S.sensitivity_tiles(st["params"], H._arch(st), H._grid(st), points=pts,
                                                             top=top, display=H._display(disp))
            except ValueError as e:
                raise H._err(e) from None
            return H.png_file(layers_img, "sens-layers"), H.png_file(region, "sens-region"), md

        sens_btn.click(do_sensitivity, [state, sens_points, sens_top, display], [sens_layers, sens_region, sens_info],
                       api_name="sensitivity", **edit_kw)
        editors_json = gr.JSON(visible=False)
        refresh.click(do_list, None, [editors_json], api_name="list_editors").then(
            do_editors_for, [state, editor], [editor, card], api_visibility="private")
        editor.change(lambda n: H.card_markdown(settings, n), [editor], [card], api_visibility="private")
        edit_tab.select(do_editors_for, [state, editor], [editor, card], api_visibility="private")

        # admin tab

        admin_kw = dict(concurrency_limit=2, concurrency_id="admin")

        def do_login(password):
            H.check_admin(password)
            return gr.update(visible=True)

        def do_train(password, run, task, dataset, editor, size, minutes, steps, limit, val_size):
            return H.admin_train(settings, jobs, password, run, task, dataset, editor, size, minutes, steps, limit,
                                 val_size)

        def watch(pw, progress=gr.Progress()):  # noqa: B008
            H.check_admin(pw)
            import time

            s = jobs.status()
            while True:
                progress(s["progress"], desc=f"training {s['run']} · step {s['step']}")
                yield _status_md(s), _plot_frame(s["history"])
                if not jobs.running():
                    break
                time.sleep(1.0)
                s = jobs.status()
            s = jobs.status()
            yield _status_md(s), _plot_frame(s["history"])

        def do_status(password):
            s = H.admin_status(jobs, password)
            return s, _status_md(s), _plot_frame(s["history"])

        def do_stop(password):
            return _status_md(H.admin_stop(jobs, password))

        def do_publish(password, run, name):
            rows = H.admin_publish(settings, password, run, name)
            names = [r["name"] for r in rows]
            return (rows, gr.update(choices=names, value=name),
                    gr.update(choices=names, value=name) if H.read_card(H.registry(settings)[name]).get("task")
                    != "paint" else gr.update(choices=names), H.card_markdown(settings, name))

        def do_delete(password, name):
            rows = H.admin_delete(settings, password, name)
            return rows, gr.update(choices=[r["name"] for r in rows])

        def do_admin_list(password):
            H.check_admin(password)
            return {"editors": H.list_editors(settings), "runs": H.admin_runs(jobs, password)}

        def do_eval(password, editor, limit):
            return H.admin_evaluate(settings, password, editor, limit)

        login_btn.click(do_login, [password], [admin_panel], api_name="admin_login", **admin_kw)
        train_btn.click(do_train, [password, run_name, task, dataset, kind, size, minutes, train_steps, limit,
                                   val_size], [status_json], api_name="admin_train", **admin_kw).then(
            watch, [password], [status, curve], api_visibility="private", concurrency_limit=None)
        status_btn.click(do_status, [password], [status_json, status, curve], api_name="admin_status",
                         concurrency_limit=None)
        stop_btn.click(do_stop, [password], [status], api_name="admin_stop", concurrency_limit=None)
        eval_btn.click(do_eval, [password, eval_name, eval_limit], [eval_table], api_name="admin_evaluate",
                       **admin_kw)
        pub_btn.click(do_publish, [password, pub_run, pub_name], [listing, eval_name, editor, card],
                      api_name="admin_publish", **admin_kw)
        del_btn.click(do_delete, [password, del_name], [listing, eval_name], api_name="admin_delete", **admin_kw)
        list_btn.click(do_admin_list, [password], [listing], api_name="admin_list", **admin_kw)

        def on_unload(request: gr.Request):
            H.cleanup_session(getattr(request, "session_hash", None))

        demo.unload(on_unload)
    return demo


def launch(host: str = "127.0.0.1", port: int = 7860, **kwargs) -> None:
    import torch

    torch.set_flush_denormal(True)  # tiny activations of untrained editors otherwise slow CPU math ~30×
    # One intra-op thread per request: edits are small, requests run in parallel threads, and on a busy
    # 2-core machine two OpenMP threads made one edit ~100× slower (1.4 s vs 15 ms, BENCHMARKS.md).
    torch.set_num_threads(int(os.environ.get("GMN_APP_THREADS", "1")))
    build().queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, max_file_size=MAX_FILE_SIZE, show_error=False, **kwargs)
