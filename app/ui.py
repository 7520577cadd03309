"""The Gradio UI: an edit tab (fit or load an INR, edit it with GradMetaNet editors, paint) and an admin tab
(train, evaluate, publish, delete editors). The work is done by app.handlers; this file lays out components
and wires events.

Every action is wired twice: the visible control's event (private) catches a failure, shows it inline in
the alert line and leaves every view as it was (`gr.skip()`); a hidden twin with the documented `api_name`
raises it, so API clients get the error. The API twins take their numbers as raw JSON values, so that a
non-numeric or NaN value reaches the handlers' checks and is answered with one clear line.
"""

from __future__ import annotations

import contextvars
import functools
import json
import os
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import gradio as gr  # noqa: E402
import pandas as pd  # noqa: E402

from gmn.editors import KINDS  # noqa: E402
from gmn.objectives import TASKS  # noqa: E402

from . import handlers as H  # noqa: E402
from . import limits as L  # noqa: E402
from . import sensitivity as S  # noqa: E402
from . import validate as V  # noqa: E402
from .jobs import Jobs  # noqa: E402
from .session import Session, exclusive, forget  # noqa: E402
from .validate import display as check_display  # noqa: E402
from .views import gmn_view, metrics, out_size  # noqa: E402

BRUSH_COLOURS = ["#ffffff", "#000000", "#cc3232", "#32cc70", "#3270cc", "#f0c020"]
DATASETS = ["mnist5k", "mnist5k-aug", "patches", "tiles", "lfw"]
MAX_FILE_SIZE = "20mb"
SESSION_TTL = L.SESSION_TTL  # seconds an idle session's state is kept (app.limits)
MODEL = ("Each **Apply** edits the INR shown (the step selected in the history) and adds a step after it. "
         "**Undo** / **Redo** or the history list move between steps; the strength rescales the shown step's "
         "own edit. The target and the *no edit* row refer to the INR that edit started from.")


# a phone-width page shows the result first: the edit tab is one column, its controls after the views
NARROW_CSS = ("@media (max-width: 700px) { #edit-page > #edit-controls { order: 1; } "
              "#edit-page > #paint-section, #edit-page > #sensitivity-section, #edit-page > #downloads { order: 2; } }")
VIEWS_NOTE = ("**Step shown**: the INR of the step selected in the history. **Target of this edit**: the editor's "
              "objective of the INR before this edit. **Change**: |edited − before this edit| per pixel on the scale "
              "of its colour bar. **Sampled points**: where the gradients were taken, on the INR before this edit. "
              "**What GradMetaNet sees**: per layer the activations a and gradients g (rows: points, columns: "
              "neurons).")
SENSITIVITY_NOTE = ("How much the image changes when each weight changes: for every weight, the average over "
                    "random points of the squared change of the output per unit change of that weight (the diagonal "
                    "of the Fisher information), predicted from the gradients at the chosen points by the shipped "
                    "GradMetaNet predictor (the plain mean for colour INRs). Bright: a weight the image depends on "
                    "strongly.")


def unchecked(slider: gr.Slider) -> gr.Slider:
    """The slider's value reaches the handler unchecked: Gradio's own range check fails the whole event before the
    handler runs (every view turns into an error badge), whereas the handler refuses an out-of-range value in the
    alert line, keeps the views and puts the box back to the shown step's strength. (An instance attribute, not a
    subclass: Gradio writes a .pyi stub beside the module of every component subclass.)"""
    slider.preprocess = lambda payload: payload
    return slider


FIT_NOTE = ("**Fitting: Adam**, the recipe the editors were trained on. Meta-learned inits and learned optimizers "
            "were measured (BENCHMARKS.md, \"Fitting speed at practical targets\"): none reached 35 dB faster in "
            "wall time, and the shipped learned optimizer's INRs made the editors 2.7–4.5× worse, so it is not "
            "offered here (`python -m gmn fit --optimizer learned` still runs it, with that warning).")


def learned_offered() -> bool:
    """Whether the Fit panel offers "fast (learned)": $GMN_LEARNED_OPTIMIZER is set, or a shipped learned
    optimizer keeps its INRs editable."""
    from gmn.optim import editable_optimizer_installed

    return bool(os.environ.get("GMN_LEARNED_OPTIMIZER")) or editable_optimizer_installed()


def _delete_state(state) -> None:
    if isinstance(state, Session) and state.cache.get("dir"):
        H.cleanup_session(state.cache["dir"])


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
    notice = f"\n\n**note:** {s['notice']}" if s.get("notice") else ""
    resumed = " (resumed)" if s.get("resumed") else ""
    p = float(s.get("progress") or 0.0)
    bar = f'<progress value="{p:.3f}" max="1" style="width: 16em"></progress>'
    # before the first step (a zoo being built, the data being loaded) the worker's last log line says what runs
    doing = ""
    if s["state"] in ("running", "stopping") and not s["history"] and s.get("log"):
        doing = f"\n\npreparing: `{str(s['log'][-1]).splitlines()[0][:160]}`"
    return f"**{s['run']}**{resumed}: {s['state']} · step {s['step']} · {p:.0%}{val} {bar}{doing}{err}{notice}"


def _alert(message: str, error: bool, where: str = "edit") -> str:
    if not message:
        return ""
    if error:
        keep = " — the views still show the last good state." if where == "edit" else ""
        return f"⚠️ **{message}**{keep}"
    return f"ℹ️ {message}"


def _message(e: gr.Error) -> str:
    return str(getattr(e, "message", None) or e)


def _key(request: gr.Request | None) -> str | None:
    return getattr(request, "session_hash", None)


def _client(request: gr.Request | None) -> str:
    return getattr(getattr(request, "client", None), "host", None) or "unknown"


# whether the running call is an API twin's: it gets every view at once, the UI gets the preview first and the
# rest from a follow-up event (docs/DESIGN.md §14)
FOR_API: contextvars.ContextVar[bool] = contextvars.ContextVar("for_api", default=False)


def inline(n: int, where: str = "edit"):
    """For a visible control: a core function returning (outputs, notice) → its outputs + the alert line; a
    gr.Error becomes gr.skip() for all n outputs (or the error's own `outputs`) and the message inline."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                out, notice = fn(*args, **kwargs)
            except gr.Error as e:
                return [*(getattr(e, "outputs", None) or [gr.skip()] * n), _alert(_message(e), True, where)]
            return [*out, _alert(notice, False, where)]

        return wrapper

    return deco


def quiet(n: int):
    """For a follow-up event (after the preview): its outputs; the alert line is not among them (it keeps what the
    preview said, and shows no timer of its own), so a gr.Error keeps every view as it is."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            try:
                return fn(*args, **kwargs)
            except gr.Error:
                return [gr.skip()] * n

        return wrapper

    return deco


def api(k: int | None = None):
    """For an API twin: the core function's outputs (the first k of them), errors raised."""

    def deco(fn):
        @functools.wraps(fn)
        def wrapper(*args, **kwargs):
            token = FOR_API.set(True)
            try:
                out, _ = fn(*args, **kwargs)
            finally:
                FOR_API.reset(token)
            out = out[:k] if k is not None else out
            return out[0] if len(out) == 1 else out  # one output: its value, not a list

        return wrapper

    return deco


def step_files(st: Session, disp: int, *, gmn: bool = True) -> dict:
    """The PNG files of the shown step's views at display `disp`, written once per step and size and kept in the
    session (undo, redo and the history show stored steps: nothing is rendered again, docs/DESIGN.md §14), and
    the metrics markdown (always fresh: it says which step of how many is shown). gmn False: "what GradMetaNet
    sees" is not computed if it is not there yet (None)."""
    step = st.current
    cache = st.cache.setdefault("files", {})
    key = (id(step.params), disp)
    hit = cache.get(key)
    if hit is not None and (hit["params"] is not step.params
                            or any(f is not None and not os.path.exists(f) for f in hit["files"].values())):
        hit = None  # another step at a reused id, or its files expired (app.views.IMAGE_TTL)
    if hit is None:
        v = H.views(st, disp, gmn=False)
        hit = {"params": step.params, "files": {k: H.png_file(a, k) for k, a in v.items() if k != "metrics"},
               "metrics": v["metrics"]}
        if len(cache) >= 64:
            cache.pop(next(iter(cache)))
        cache[key] = hit
    files = dict(hit["files"])
    if gmn and files["gmn"] is None and step.edit is not None:
        e = step.edit
        files["gmn"] = hit["files"]["gmn"] = H.png_file(
            gmn_view(e, st.arch_of(e.base)), "gmn")
    files["metrics"] = metrics(st, out_size(st, disp))
    if step.refine:  # the background refine's status, under the info line
        mark = "⏳" if step.refine.startswith("refining") else "✓" if step.refine.startswith("refined") else "⚠"
        files["metrics"] += f"\n\n{mark} **Refine**: {step.refine}"
    return files


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
    L.start_pruner()  # Gradio's cache and the app's files, by age and size (app.limits)
    thumbs = H.example_thumbnails()
    first_names, first = H.filter_editors_for(settings, None)

    with gr.Blocks(title="GradMetaNet INR editor", delete_cache=(L.CACHE_SWEEP, L.CACHE_AGE)) as demo:
        demo.settings, demo.jobs, demo.guard = settings, jobs, H.GUARD  # for tests and the benchmark
        state = gr.State(Session(), time_to_live=SESSION_TTL, delete_callback=_delete_state)
        gr.HTML(f"<style>{NARROW_CSS}</style>", padding=False)
        gr.Markdown("# GradMetaNet INR editor\nFit a SIREN to an image, then edit its weights in one forward pass "
                    "of a trained GradMetaNet editor.")
        with gr.Tabs():
            with gr.Tab("Edit", id="edit") as edit_tab:
                # one column, so that a narrow screen can show the results first (NARROW_CSS)
                with gr.Column(elem_id="edit-page"):
                    with gr.Row(elem_id="edit-controls"):
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
                                    # "fast (learned)" is offered only when an installed learned optimizer keeps
                                    # its INRs editable (docs/DESIGN.md §12); the shipped one does not, so the
                                    # choice is hidden and the line below says why
                                    offer = learned_offered()
                                    fit_opt = gr.Radio(list(H.FIT_OPTIMIZERS), value="Adam", label="Optimizer",
                                                       info="Adam: the recipe the editors were trained on. fast "
                                                            "(learned): a meta-learned optimizer for single gray "
                                                            "SIRENs whose INRs the editors were measured to edit",
                                                       visible=offer, elem_id="fit-optimizer")
                                    gr.Markdown(FIT_NOTE, visible=not offer, elem_id="fit-note")
                                fit_btn = gr.Button("Fit", variant="primary", elem_id="fit-btn", interactive=False)
                            with gr.Tab("Bundled example"):
                                gallery = gr.Gallery(value=thumbs, label="Examples (MNIST digits, scikit-image photos)",
                                                     columns=4, height=240, allow_preview=False, elem_id="examples")
                            with gr.Tab("Upload an INR"):
                                inr_file = gr.File(label="INR (.safetensors)", type="filepath",
                                                   file_types=[".safetensors"], elem_id="inr-upload")
                                load_btn = gr.Button("Load INR", elem_id="load-btn", interactive=False)
                        with gr.Column(scale=1):
                            with gr.Row():
                                # none chosen until an INR is loaded (then the list is filtered for it): no gray
                                # editor pre-selected for a photo nobody has loaded yet
                                editor = gr.Dropdown(first_names, value=None, label="Edit (filter editors that fit "
                                                     "the loaded INR)", elem_id="editor-dd", scale=4,
                                                     allow_custom_value=True)
                                refresh = gr.Button("↻", scale=0, min_width=40)
                            card = gr.Markdown("load an image, an example or an INR file: the editors that fit it "
                                               "are listed here", elem_id="card")
                            points = gr.Slider(1, 512, value=64, step=1, label="Sampled points")
                            strength = unchecked(gr.Slider(0, 3, value=1.0, step=0.05, label="Strength s of the shown "
                                                           "step's edit (θ_before + s·Δθ); a new edit starts at 1",
                                                           elem_id="strength"))
                            display = gr.Slider(32, H.MAX_DISPLAY, value=256, step=32, label="Display resolution "
                                                "(longer side, px)", elem_id="display")
                            with gr.Row():
                                edit_btn = gr.Button("Apply edit to the INR shown", variant="primary",
                                                     elem_id="edit-btn", interactive=False)
                                undo_btn = gr.Button("Undo", elem_id="undo-btn", interactive=False)
                                redo_btn = gr.Button("Redo", elem_id="redo-btn", interactive=False)
                                reset_btn = gr.Button("Reset", elem_id="reset-btn", interactive=False)
                            history = gr.Dropdown([], label="History: pick a step to show it (an edit or a rescale of "
                                                  "an earlier step drops the steps after it)", elem_id="history",
                                                  interactive=True)
                            gr.Markdown(MODEL)
                    alert = gr.Markdown("", elem_id="alert")
                    info = gr.Markdown("load an image, an example or an INR file", elem_id="info")
                    with gr.Row():
                        # short labels (long ones are cut on a narrow panel); VIEWS_NOTE says what each shows
                        edited = gr.Image(label="Step shown", format="png", type="numpy", interactive=False,
                                          elem_id="edited")
                        photo_img = gr.Image(label="Uploaded photo", format="png", type="numpy", interactive=False,
                                             elem_id="photo")
                        original = gr.Image(label="Loaded INR (step 0)", format="png", type="numpy", interactive=False,
                                            elem_id="original")
                        target = gr.Image(label="Target of this edit", format="png", type="numpy", interactive=False,
                                          elem_id="target")
                        diff = gr.Image(label="Change", show_label=False, format="png", type="numpy",  # titled
                                        interactive=False, elem_id="diff")
                    with gr.Row():
                        points_img = gr.Image(label="Sampled points, on the INR before this edit", format="png",
                                              type="numpy", interactive=False, elem_id="points")
                        gmn_img = gr.Image(label="What GradMetaNet sees", format="png", type="numpy",
                                           interactive=False, elem_id="gmn")
                    gr.Markdown(VIEWS_NOTE, elem_id="views-note")
                    with gr.Accordion("Paint", open=True, elem_id="paint-section"):
                        gr.Markdown("Paint on the image with the brush (pick a colour and size); the painted layer's "
                                    "alpha is the mask, its colours the target; a paint editor made for the loaded "
                                    "INR turns it into a weight edit of the INR shown.")
                        canvas = gr.ImageEditor(label="Paint", type="numpy", format="png", image_mode="RGBA",
                                                sources=(), transforms=(), layers=False, elem_id="paint",
                                                brush=gr.Brush(colors=BRUSH_COLOURS, default_color="#ffffff",
                                                               default_size=12, color_mode="defaults"),
                                                canvas_size=(256, 256))
                        with gr.Row():
                            canvas_btn = gr.Button("Reload the current image into the canvas", elem_id="canvas-btn",
                                                   interactive=False)
                            paint_btn = gr.Button("Apply paint", variant="primary", elem_id="paint-btn",
                                                  interactive=False)
                    with gr.Accordion("Sensitivity: which weights matter", open=False,
                                      elem_id="sensitivity-section"):
                        gr.Markdown(SENSITIVITY_NOTE)
                        with gr.Row():
                            sens_points = gr.Slider(16, 1024, value=128, step=16, label="Points")
                            sens_top = gr.Slider(0.5, 50, value=5, step=0.5, label="Most sensitive weights (%)")
                            sens_btn = gr.Button("Compute sensitivity of the INR shown", elem_id="sensitivity-btn",
                                                 interactive=False)
                        with gr.Row():
                            # the plots carry their own titles: a component label would cover them
                            sens_layers = gr.Image(label="Sensitivity per weight", show_label=False, format="png",
                                                   type="numpy", interactive=False, elem_id="sens-layers")
                            sens_region = gr.Image(label="Where the image moves", show_label=False, format="png",
                                                   type="numpy", interactive=False, elem_id="sens-region")
                        sens_info = gr.Markdown(elem_id="sens-info")
                    with gr.Row(elem_id="downloads"):
                        dl_btn = gr.Button("Prepare downloads of the INR shown", elem_id="dl-btn", interactive=False)
                        dl_inr = gr.File(label="Edited INR (.safetensors)", interactive=False, elem_id="dl-inr")
                        dl_png = gr.File(label="Edited render (PNG)", interactive=False, elem_id="dl-png")

            with gr.Tab("Admin", id="admin"):
                gr.Markdown("Admin is enabled: log in with the password." if H.admin_enabled() else
                            "**Admin is disabled**: start the app with `GMN_ADMIN_PASSWORD` set to enable it.",
                            elem_id="admin-notice")
                with gr.Row():
                    password = gr.Textbox(label="Admin password", type="password", elem_id="admin-password")
                    login_btn = gr.Button("Log in", elem_id="admin-login")
                admin_alert = gr.Markdown("", elem_id="admin-alert")
                with gr.Column(visible=False) as admin_panel:
                    gr.Markdown("### Train an editor")
                    with gr.Row():
                        run_name = gr.Textbox("dilate-1", label="Run name", elem_id="run-name")
                        task = gr.Dropdown(list(TASKS), value="dilate", label="Task")
                        dataset = gr.Dropdown(DATASETS, value=H.default_dataset(settings, DATASETS),
                                              label="Dataset", elem_id="dataset")
                        kind = gr.Dropdown(list(KINDS), value="ws+gmn", label="Editor type")
                        size = gr.Radio(list(H.EDITOR_SIZES), value="small", label="Size", elem_id="size")
                    data_note = gr.Markdown(H.dataset_status(settings, dataset.value)[1], elem_id="dataset-note")
                    with gr.Row():
                        minutes = gr.Number(10, label="Time budget (CPU minutes of the training thread)")
                        train_steps = gr.Number(0, label="…or steps (0: use the time budget)", precision=0,
                                                elem_id="train-steps")
                        limit = gr.Number(0, label="Training INRs (0: all)", precision=0, elem_id="train-limit")
                        val_size = gr.Number(100, label="Validation INRs", precision=0, elem_id="val-size")
                    with gr.Row():
                        train_btn = gr.Button("Train (or resume)", variant="primary", elem_id="train-btn")
                        stop_btn = gr.Button("Stop", variant="stop")
                        status_btn = gr.Button("Refresh status")
                    status = gr.Markdown("no training job yet", elem_id="train-status")
                    # Gradio 6 draws the colour legend under the x axis and clips it at any height (seen in
                    # Chromium), so the colours are fixed and named in the label instead
                    curve = gr.LinePlot(None, x="step", y="loss", color="split",
                                        color_map={"train": "#1f5fbf", "val": "#e8730c"},
                                        label="Loss: train (blue), validation (orange)", x_title="step",
                                        y_title="loss (MSE)", elem_id="loss-plot", height=300,
                                        color_title=" ",  # the colours are named in the label: no stray "split"
                                        x_axis_format="d")  # whole steps: no tick like "121.000000"
                    gr.Markdown("### Evaluate, publish, delete")
                    with gr.Row():
                        eval_name = gr.Dropdown(H.evaluable(settings), label="Editor or finished run",
                                                allow_custom_value=True, elem_id="eval-name")
                        eval_limit = gr.Number(100, label="Validation INRs", precision=0)
                        eval_btn = gr.Button("Evaluate against baselines", elem_id="eval-btn")
                    eval_table = gr.Dataframe(headers=["method", "MSE", "ms / INR"], interactive=False,
                                              elem_id="eval-table")
                    with gr.Row():
                        pub_run = gr.Textbox("dilate-1", label="Run to publish", elem_id="pub-run")
                        pub_name = gr.Textbox("my-dilate", label="Publish as", elem_id="pub-name")
                        pub_btn = gr.Button("Publish", elem_id="publish-btn")
                        del_name = gr.Textbox(label="Published editor to delete")
                        del_btn = gr.Button("Delete", variant="stop")
                    list_btn = gr.Button("List editors and runs")
                    editors_df = gr.Dataframe(headers=["editor", "task", "type", "edits SIRENs with", "test MSE",
                                                       "val MSE", "from"], interactive=False, label="Editors",
                                              elem_id="listing")
                    runs_df = gr.Dataframe(headers=["run", "best editor", "checkpoint", "step", "last val"],
                                           interactive=False, label="Runs", elem_id="runs")

        # the API twins' hidden ports
        with gr.Column(visible=False):
            def port(value=None):  # a raw JSON value; its default given as JSON text (what gr.JSON expects)
                return gr.JSON(None if value is None else json.dumps(value), visible=False)

            api_btn = {n: gr.Button(visible=False) for n in (
                "fit", "load_inr", "edit", "paint", "strength", "undo", "redo", "goto", "refine",
                "reset",
                "render", "download", "sensitivity", "list_editors", "admin_login", "admin_train", "admin_status",
                "admin_stop", "admin_evaluate", "admin_publish", "admin_delete", "admin_list")}
            api_image, api_inr = gr.File(type="filepath", visible=False), gr.File(type="filepath", visible=False)
            api_text = gr.Textbox(visible=False)
            api_json = gr.JSON(visible=False)
            api_render = gr.Image(format="png", type="numpy", visible=False)
            api_status = gr.JSON(visible=False)

        # edit tab: the core functions return (outputs, notice)

        shown = [state, original, target, edited, diff, points_img, gmn_img, info, canvas, photo_img]  # API's
        cleared = [history, dl_inr, dl_png, sens_layers, sens_region, sens_info, strength]
        outs = shown + cleared
        n_outs = len(outs)
        needs_inr = [edit_btn, undo_btn, redo_btn, reset_btn, paint_btn, canvas_btn, dl_btn, sens_btn]

        def show(st: Session, disp, *, preview=False, notice=""):
            """Every view of the shown step. For the UI the paint canvas (slow to redraw) and, for a new edit (a
            preview), "what GradMetaNet sees" and the equal-time Adam row come from the follow-up event
            (`follow`); an API twin gets them at once (docs/DESIGN.md §14)."""
            full = FOR_API.get()
            if full and preview:
                H.details(st)
            f = step_files(st, disp, gmn=full or not preview)
            # the UI is sent only what changed since the session's last view (undo changes neither the loaded
            # INR nor the photo, and the history's choices only when a step is added or dropped)
            sent = st.cache.setdefault("sent", {})

            def changed(name, value):
                if not full and name in sent and sent[name] == value:
                    return False
                sent[name] = value
                return True

            keep = gr.skip()
            out = [st, f["original"] if changed("original", f["original"]) else keep, f["target"], f["edited"],
                   f["diff"], f["points"], f["gmn"], f["metrics"], f["edited"] if full else keep,
                   f["photo"] if changed("photo", f["photo"]) else keep]
            choices = [(label, i) for i, label in enumerate(st.labels())]
            hist = (gr.update(choices=choices, value=st.cursor) if changed("history", choices)
                    else gr.update(value=st.cursor))
            s = st.edit.strength if st.edit is not None else 1.0  # the box shows the shown step's strength
            extras = [None, None, None, None, ""] if changed("extras", None) else [keep] * 5
            return out + [hist, *extras, s], notice

        def follow(st, disp):
            """After the views: the equal-time Adam row, "what GradMetaNet sees" and the paint canvas."""
            if not isinstance(st, Session) or not st.loaded:
                return [gr.skip()] * 3
            step = st.current
            computed = H.details(st, step)  # no lock: it reads and fills only this step's record
            disp = check_display(disp)
            f = step_files(st, disp)
            if st.current is not step:
                return [gr.skip()] * 3  # another step is shown by now: its own follow-up fills it
            # the info line only where it changed here (an older line must not overwrite a newer event's), the
            # canvas only when it would show another image (a redraw is slow and resets a stroke being drawn)
            sent = st.cache.setdefault("sent", {})
            canvas_changed = sent.get("canvas") != f["edited"]
            sent["canvas"] = f["edited"]
            return [f["metrics"] if computed else gr.skip(), f["gmn"], f["edited"] if canvas_changed else gr.skip()]

        then_follow = dict(fn=quiet(3)(follow), inputs=[state, display], outputs=[info, gmn_img, canvas],
                           api_visibility="private", concurrency_limit=4, concurrency_id="follow",
                           show_progress="hidden")

        def watch(st, disp):
            """After an edit's preview (UI): GradMetaNet's view and the canvas at once, the equal-time Adam row and
            the refine's status as the background work (`H.start_background`) gets them, then the refined step.
            Yields (info, GradMetaNet's view, step shown, change, canvas, history)."""
            keep = gr.skip()
            if not isinstance(st, Session) or not st.loaded or st.edit is None:
                yield [keep] * 6
                return
            step, disp = st.current, check_display(disp)
            sent = st.cache.setdefault("sent", {})
            f = step_files(st, disp)
            sent["canvas"] = f["edited"]
            yield [f["metrics"], f["gmn"], keep, keep, f["edited"], keep]
            done, last = st.cache.get("refining"), f["metrics"]
            while done is not None and not done.wait(0.5) and st.current is step:
                m = step_files(st, disp)["metrics"]
                if m != last:
                    yield [m, *[keep] * 5]
                    last = m
            if st.current is not step:
                return  # another step is shown by now: this one keeps its refined INR for undo / redo
            f = step_files(st, disp)
            choices = [(label, i) for i, label in enumerate(st.labels())]
            sent["canvas"], sent["history"] = f["edited"], choices
            yield [f["metrics"], f["gmn"], f["edited"], f["diff"], f["edited"],
                   gr.update(choices=choices, value=st.cursor)]

        def do_refine_api(st, display, request: gr.Request = None):
            with exclusive(_key(request)):
                display = check_display(display)
                st = H.need(st)
                if st.edit is None:
                    raise gr.Error("the step shown is the loaded INR: apply an edit first, then refine it")
                H.wait_refine(st)
                H.details(st)
                if not H.refine_step(settings, st):
                    raise gr.Error(f"the step shown is refined already ({st.current.refine})")
                return show(st, display)

        then_watch = dict(fn=watch, inputs=[state, display], outputs=[info, gmn_img, edited, diff, canvas, history],
                          api_visibility="private", concurrency_limit=None, show_progress="hidden")

        def loaded(st: Session, new: Session, disp):
            st = st if isinstance(st, Session) else Session()
            st.become(new)
            return show(st, disp, notice="; ".join(new.notices))

        def do_fit(st, image, hidden, layers, resolution, steps, channels, display, optimizer="Adam",
                   request: gr.Request = None, progress=gr.Progress()):  # noqa: B008
            import torch

            def cb(step, psnr):
                # the tiles are fitted in groups: the figure is the mean over the tiles being fitted now
                total = H.DEFAULT_STEPS if steps in (None, "", 0) else steps
                mean = float(-10 * torch.log10(torch.pow(10.0, -psnr.double() / 10).mean()))
                progress((step + 1, int(float(total))), desc=f"fitting · PSNR of the tiles being fitted {H.db(mean)}")

            with exclusive(_key(request)):
                display = check_display(display)  # checked before anything changes
                new, _ = H.fit_image(image, hidden=hidden, layers=layers, resolution=resolution, steps=steps,
                                     colour=channels, callback=cb, optimizer=optimizer or "Adam")
                return loaded(st, new, display)

        def do_example(st, disp, evt: gr.SelectData, request: gr.Request = None):
            with exclusive(_key(request)):
                disp = check_display(disp)  # checked before anything changes
                return loaded(st, H.load_example(thumbs[evt.index][1]), disp)

        def do_load(st, path, display, request: gr.Request = None):
            with exclusive(_key(request)):
                display = check_display(display)  # checked before anything changes
                return loaded(st, H.load_inr_file(path), display)

        def background(st: Session) -> Session:
            """The UI's edits: the Adam row and the refine run in the background after the preview (API twins
            compute the Adam row at once; `/refine` refines)."""
            if not FOR_API.get():
                H.start_background(settings, st)
            return st

        def do_edit(st, editor, points, strength, display, request: gr.Request = None):
            with exclusive(_key(request)):
                display = check_display(display)  # checked before anything changes
                return show(background(H.edit(settings, st, editor, points, strength)), display, preview=True)

        def do_paint(st, painted, editor, points, strength, display, request: gr.Request = None):
            with exclusive(_key(request)):
                display = check_display(display)  # checked before anything changes
                return show(background(H.paint(settings, st, painted, editor, points, strength)), display,
                            preview=True)

        def do_strength(st, strength, display, request: gr.Request = None):
            with exclusive(_key(request)):
                try:
                    display = check_display(display)  # checked before anything changes
                    notice = H.rescale_notice(st, strength)
                    return show(H.restrength(st, strength), display, notice=notice)
                except gr.Error as e:  # the box goes back to the shown step's strength, every view stays
                    shown_s = st.edit.strength if isinstance(st, Session) and st.loaded and st.edit else 1.0
                    e.outputs = [gr.skip()] * (n_outs - 1) + [shown_s]
                    raise

        def do_undo(st, display, request: gr.Request = None):
            with exclusive(_key(request)):
                display = check_display(display)  # checked before anything changes
                return show(H.undo(st), display)

        def do_redo(st, display, request: gr.Request = None):
            with exclusive(_key(request)):
                display = check_display(display)  # checked before anything changes
                return show(H.redo(st), display)

        def do_goto(st, index, display, request: gr.Request = None):
            with exclusive(_key(request)):
                display = check_display(display)  # checked before anything changes
                if not FOR_API.get() and isinstance(st, Session) and st.loaded and index == st.cursor:
                    return [gr.skip()] * n_outs, ""  # the step is already shown (a repeated pick)
                return show(H.goto(st, index), display)

        def do_reset(st, display, request: gr.Request = None):
            with exclusive(_key(request)):
                display = check_display(display)  # checked before anything changes
                return show(H.reset(st), display)

        def do_views(st, display):
            if not isinstance(st, Session) or not st.loaded:
                return [gr.skip()] * n_outs, ""
            return show(st, display)

        def do_render(st, display, which="edited"):
            return [H.png_file(H.render_current(st, display, which), which)], ""

        def do_downloads(st, display, request: gr.Request = None):
            st = H.need(st)
            key = _key(request)
            st.cache["dir"] = key
            st.cache.setdefault("sent", {})["extras"] = "downloads"  # the next view clears them
            return [st, *H.downloads(st, H.session_dir(key), display)], ""

        def do_canvas(st, display):
            return [H.png_file(H.render_current(st, display, "edited"), "canvas")], ""

        def do_sensitivity(st, pts, top, disp):
            st = H.need(st)
            # checked outside the try: a gr.Error is a ValueError, and re-wrapping it quoted its message
            pts, top, disp = V.sensitivity_points(pts), V.top_percent(top), check_display(disp)
            try:
                layers_img, region, md = S.sensitivity_tiles(st.params, st.arch_of(st.params), st.grid, points=pts,
                                                             top=top, display=disp)
            except ValueError as e:
                raise gr.Error(str(e).splitlines()[0]) from None
            st.cache.setdefault("sent", {})["extras"] = "sensitivity"  # the next view clears them
            return [H.png_file(layers_img, "sens-layers"), H.png_file(region, "sens-region"), md], ""

        def card_for(st, name):
            """The card of the chosen editor, or why there is none for the loaded INR (one place for both the
            load chain and the dropdown's change event, which race)."""
            if not isinstance(st, Session) or not st.loaded:
                return "load an image, an example or an INR file: the editors that fit it are listed here"
            if not name and not H.filter_editors_for(settings, st)[0]:
                return "no installed filter editor edits this INR (its depth or channels); see the admin tab"
            return H.card_markdown(settings, name)

        def do_editors_for(st, current):
            """Offer only the filter editors that fit the loaded INR; keep the user's choice if it still fits."""
            if not isinstance(st, Session) or not st.loaded:  # every filter editor listed, none chosen yet
                return gr.update(choices=H.filter_editors_for(settings, None)[0], value=None), card_for(st, None)
            names, default = H.filter_editors_for(settings, st)
            value = current if current in names else default
            if not names:
                return gr.update(choices=[], value=None), card_for(st, None)
            return gr.update(choices=names, value=value), card_for(st, value)

        # workers per group: heavy calls take one lane beside them (app.limits.share_fairly)
        edit_kw = dict(concurrency_limit=L.EDIT_WORKERS, concurrency_id="edit")
        priv = dict(api_visibility="private")

        def do_after_load(st, current):
            """A new INR: the editors that fit it, the strength back to 1 (a strength typed for the previous
            INR's edit would otherwise silently scale the first edit of this one) and the controls that need an
            INR enabled."""
            ok = isinstance(st, Session) and st.loaded
            return (*do_editors_for(st, current), 1.0, *[gr.update(interactive=ok)] * len(needs_inr))

        after_load = dict(fn=do_after_load, inputs=[state, editor], outputs=[editor, card, strength, *needs_inr],
                          **priv)

        def ready(path):
            """An upload (or its removal) enables its button and clears a stale 'upload … first' line."""
            return gr.update(interactive=bool(path)), ""

        image_file.change(ready, [image_file], [fit_btn, alert], **priv)
        inr_file.change(ready, [inr_file], [load_btn, alert], **priv)

        fit_in = [image_file, hidden, layers, resolution, steps, colour, display, fit_opt]
        fit_btn.click(inline(n_outs)(do_fit), [state, *fit_in], outs + [alert], concurrency_limit=L.FIT_WORKERS,
                      concurrency_id="fit", **priv).then(**after_load).then(**then_follow)
        fit_ports = [port(v) for v in (H.DEFAULT_HIDDEN, H.DEFAULT_LAYERS, "auto", H.DEFAULT_STEPS, "auto", 256,
                                       "Adam")]
        api_btn["fit"].click(api(len(shown))(do_fit), [state, api_image, *fit_ports], shown,
                             api_name="fit", concurrency_limit=L.FIT_WORKERS, concurrency_id="fit").then(**after_load)
        gallery.select(inline(n_outs)(do_example), [state, display], outs + [alert], **edit_kw, **priv).then(
            **after_load).then(**then_follow)
        load_btn.click(inline(n_outs)(do_load), [state, inr_file, display], outs + [alert], **edit_kw,
                       **priv).then(**after_load).then(**then_follow)
        api_btn["load_inr"].click(api(len(shown))(do_load), [state, api_inr, port(256)], shown, api_name="load_inr",
                                  **edit_kw).then(**after_load)

        def both(name, fn, ui_trigger, ui_inputs, n_api_ports, ui_outputs=None, api_outputs=None, defaults=(),
                 then=None, **kw):
            """Wire `fn` to a visible trigger (errors inline, then the follow-up `then`) and to its hidden API twin
            named `name`."""
            ui_outputs = outs if ui_outputs is None else ui_outputs
            api_outputs = shown if api_outputs is None else api_outputs
            if ui_trigger is not None:
                ev = ui_trigger(inline(len(ui_outputs))(fn), ui_inputs, ui_outputs + [alert], **priv, **kw)
                if then is not None:
                    ev.then(**then)
            defaults = list(defaults) + [None] * (n_api_ports - len(defaults))
            api_btn[name].click(api(len(api_outputs))(fn), [state] + [port(v) for v in defaults], api_outputs,
                                api_name=name, **kw)

        # a new edit starts at strength 1 (the box shows the shown step's own strength, which it rescales)
        one = gr.Number(1.0, visible=False)
        both("edit", do_edit, edit_btn.click, [state, editor, points, one, display], 4,
             defaults=(first, 64, 1.0, 256), then=then_watch, **edit_kw)
        no_painter = gr.State(None)  # the Paint button: the paint editor made for the INR (app.registry)
        both("paint", do_paint, paint_btn.click, [state, canvas, no_painter, points, one, display], 5,
             defaults=(None, None, 64, 1.0, 256), then=then_watch, **edit_kw)
        both("strength", do_strength, functools.partial(strength.input, trigger_mode="always_last"),
             [state, strength, display], 2, defaults=(1.0, 256), then=then_follow, **edit_kw)
        both("undo", do_undo, undo_btn.click, [state, display], 1, defaults=(256,), then=then_follow, **edit_kw)
        both("redo", do_redo, redo_btn.click, [state, display], 1, defaults=(256,), then=then_follow, **edit_kw)
        # `select` fires once per pick (`input` also fired on closing the list, and raced a following Undo)
        both("goto", do_goto, history.select, [state, history, display], 2, defaults=(0, 256), then=then_follow,
             **edit_kw)
        both("refine", do_refine_api, None, None, 1, defaults=(256,), **edit_kw)
        both("reset", do_reset, reset_btn.click, [state, display], 1, defaults=(256,), then=then_follow, **edit_kw)
        # `input` fires on a typed value too (`release` only after a drag, so a typed size showed one change late)
        display.input(inline(n_outs)(do_views), [state, display], outs + [alert], trigger_mode="always_last",
                      **priv, **edit_kw).then(**then_follow)
        both("render", do_render, None, None, 2, api_outputs=[api_render], defaults=(256, "edited"), **edit_kw)
        canvas_btn.click(inline(1)(do_canvas), [state, display], [canvas, alert], **priv, **edit_kw)
        both("download", do_downloads, dl_btn.click, [state, display], 1, ui_outputs=[state, dl_inr, dl_png],
             api_outputs=[state, dl_inr, dl_png], defaults=(256,), **edit_kw)
        both("sensitivity", do_sensitivity, sens_btn.click, [state, sens_points, sens_top, display], 3,
             ui_outputs=[sens_layers, sens_region, sens_info], api_outputs=[sens_layers, sens_region, sens_info],
             defaults=(128, 5, 256), **edit_kw)

        def do_list():
            return H.list_editors(settings)

        api_btn["list_editors"].click(do_list, None, [api_json], api_name="list_editors")
        refresh.click(do_editors_for, [state, editor], [editor, card], **priv)
        editor.change(lambda st, n: card_for(st, n), [state, editor], [card], **priv)
        edit_tab.select(do_editors_for, [state, editor], [editor, card], **priv)

        # admin tab

        admin_kw = dict(concurrency_limit=2, concurrency_id="admin")

        def do_login(password, request: gr.Request = None):
            H.check_admin(password, _client(request))
            return [gr.update(visible=True)], "logged in"

        def do_train(password, run, task, dataset, editor, size, minutes, steps, limit, val_size,
                     request: gr.Request = None):
            s = H.admin_train(settings, jobs, password, run, task, dataset, editor, size, minutes, steps, limit,
                              val_size, client=_client(request))
            return [s, s["run"]], s.get("notice", "")  # "Run to publish" filled with the run just started

        def watch(pw, request: gr.Request = None):
            try:
                H.check_admin(pw, _client(request))
            except gr.Error:
                return
            s = jobs.status()
            while True:
                yield _status_md(s), _plot_frame(s["history"])
                if not jobs.running():
                    break
                time.sleep(1.0)
                s = jobs.status()
            s = jobs.status()
            yield _status_md(s), _plot_frame(s["history"])

        def do_status(password, request: gr.Request = None):
            H.check_admin(password, _client(request))
            s = jobs.status()
            return [s, _status_md(s), _plot_frame(s["history"])], ""

        def do_stop(password, request: gr.Request = None):
            H.check_admin(password, _client(request))
            s = jobs.stop()
            return [s, _status_md(s)], ""

        def do_publish(password, run, name, request: gr.Request = None):
            rows, name = H.admin_publish(settings, password, run, name, client=_client(request))
            # the edit tab's list is filtered for the loaded INR when the tab is shown again (edit_tab.select)
            return [rows, gr.update(choices=H.evaluable(settings), value=name), gr.skip(),
                    H.card_markdown(settings, name)], f"published {name!r}"

        def do_delete(password, name, request: gr.Request = None):
            rows = H.admin_delete(settings, password, name, client=_client(request))
            return [rows, gr.update(choices=H.evaluable(settings))], "deleted"

        def do_admin_list(password, request: gr.Request = None):
            H.check_admin(password, _client(request))
            return [{"editors": H.list_editors(settings), "runs": jobs.runs()}], ""

        def do_admin_tables(password, request: gr.Request = None):
            H.check_admin(password, _client(request))
            return [H.editors_table(settings), H.runs_table(jobs), gr.update(choices=H.evaluable(settings))], ""

        def do_eval(password, editor, limit, request: gr.Request = None):
            return [H.admin_evaluate(settings, password, editor, limit, client=_client(request))], ""

        def wire(name, fn, trigger, inputs, ui_outputs, api_outputs, n_ports=0, **kw):
            if trigger is not None:
                ev = trigger(inline(len(ui_outputs), "admin")(fn), inputs, ui_outputs + [admin_alert], **priv,
                             **kw)
            else:
                ev = None
            first = inputs[: len(inputs) - n_ports]
            api_btn[name].click(api(len(api_outputs))(fn), [api_text if x is password else x for x in first]
                                + [port() for _ in range(n_ports)], api_outputs, api_name=name, **kw)
            return ev

        wire("admin_login", do_login, login_btn.click, [password], [admin_panel], [admin_panel], **admin_kw)
        train_in = [password, run_name, task, dataset, kind, size, minutes, train_steps, limit, val_size]
        dataset.change(lambda d: H.dataset_status(settings, d)[1], [dataset], [data_note], **priv)
        wire("admin_train", do_train, train_btn.click, train_in, [api_status, pub_run], [api_status], n_ports=9,
             **admin_kw).then(watch, [password], [status, curve], **priv, concurrency_limit=None,
                              show_progress="hidden")
        wire("admin_status", do_status, status_btn.click, [password], [api_status, status, curve],
             [api_status, status, curve], concurrency_limit=None)
        wire("admin_stop", do_stop, stop_btn.click, [password], [api_status, status], [api_status, status],
             concurrency_limit=None)
        wire("admin_evaluate", do_eval, eval_btn.click, [password, eval_name, eval_limit], [eval_table],
             [eval_table], n_ports=2, **admin_kw)
        wire("admin_publish", do_publish, pub_btn.click, [password, pub_run, pub_name],
             [api_json, eval_name, editor, card], [api_json, eval_name, editor, card], n_ports=2,
             **admin_kw).then(inline(3, "admin")(do_admin_tables), [password], [editors_df, runs_df, eval_name,
                                                                             admin_alert], **priv)
        wire("admin_delete", do_delete, del_btn.click, [password, del_name], [api_json, eval_name],
             [api_json, eval_name], n_ports=1, **admin_kw)
        list_btn.click(inline(3, "admin")(do_admin_tables), [password], [editors_df, runs_df, eval_name, admin_alert],
                       **priv, **admin_kw)
        api_btn["admin_list"].click(api(1)(do_admin_list), [api_text], [api_json], api_name="admin_list",
                                    **admin_kw)

        def on_unload(request: gr.Request):
            H.cleanup_session(_key(request))
            forget(_key(request))

        demo.unload(on_unload)
    # large INRs one at a time beside the small ones; Gradio's own checks of a call as one line each
    return V.guard_calls(L.share_fairly(demo))


def launch(host: str = "127.0.0.1", port: int = 7860, **kwargs) -> None:
    import torch

    torch.set_flush_denormal(True)  # tiny activations of untrained editors otherwise slow CPU math ~30×
    # One intra-op thread per request: edits are small, requests run in parallel threads, and on a busy
    # 2-core machine two OpenMP threads made one edit ~100× slower (1.4 s vs 15 ms, BENCHMARKS.md). It also
    # keeps a training job's torch math in its own thread, which its CPU-minute budget counts (app.jobs).
    torch.set_num_threads(int(os.environ.get("GMN_APP_THREADS", "1")))
    build().queue(default_concurrency_limit=4).launch(
        server_name=host, server_port=port, max_file_size=MAX_FILE_SIZE, show_error=False,
        state_session_capacity=L.MAX_SESSIONS, **kwargs)
