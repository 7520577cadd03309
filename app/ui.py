"""The Gradio UI: an edit tab (fit or load an INR, edit it with GradMetaNet editors, paint) and an admin tab
(train, evaluate, publish, delete editors). The work is done by app.handlers; this file's module-level handlers
call them, a few short functions lay out the components and one table of actions per tab wires the events.

Every action is wired twice: the visible control's event (private) catches a failure, shows it inline in
the alert line and leaves every view as it was (`gr.skip()`); a hidden twin with the documented `api_name`
raises it, so API clients get the error. The API twins take their numbers as raw JSON values, so that a
non-numeric or NaN value reaches the handlers' checks and is answered with one clear line.
"""

from __future__ import annotations

import contextvars
import functools
import inspect
import json
import os
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from types import SimpleNamespace

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
    where = s["data"] if s.get("phase") == "data" and s.get("data") else f"step {s['step']}"  # app/jobs.py
    return f"**{s['run']}**{resumed}: {s['state']} · {where} · {p:.0%}{val} {bar}{doing}{err}{notice}"


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


@dataclass(frozen=True)
class App:
    """What the module-level handlers share, built once per app in `build` and given to each by `bind`."""

    settings: H.Settings
    jobs: Jobs
    thumbs: list  # the bundled examples: (thumbnail path, example name)
    n_outs: int  # the edit tab's views (EDIT_OUTS), which a refused call skips


def bind(fn: Callable, app: App) -> Callable:
    """`fn` with its first argument `app` given. Not a functools.partial: Gradio reads the remaining signature
    and its type hints to pass gr.Request, gr.SelectData and gr.Progress, and whether it is a generator function
    (a stream of outputs); a partial hides all three."""

    if inspect.isgeneratorfunction(fn):  # Gradio streams a generator function's outputs: keep it one

        @functools.wraps(fn)
        def bound(*args, **kwargs):
            yield from fn(app, *args, **kwargs)
    else:

        @functools.wraps(fn)
        def bound(*args, **kwargs):
            return fn(app, *args, **kwargs)

    sig = inspect.signature(fn)
    bound.__signature__ = sig.replace(parameters=list(sig.parameters.values())[1:])
    return bound


# edit tab: the core functions return (outputs, notice)


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


def do_refine_api(app: App, st, display, request: gr.Request = None):
    """/refine: the shown step refined (the API's /edit returns the editor's own result)."""
    with exclusive(_key(request)):
        display = check_display(display)
        st = H.need(st)
        if st.edit is None:
            raise gr.Error("the step shown is the loaded INR: apply an edit first, then refine it")
        H.wait_refine(st)
        H.details(st)
        if not H.refine_step(app.settings, st):
            raise gr.Error(f"the step shown is refined already ({st.current.refine})")
        return show(st, display)


def loaded(st: Session, new: Session, disp):
    """The session `st` (a new one if there is none) becomes the loaded `new` one; its views."""
    st = st if isinstance(st, Session) else Session()
    st.become(new)
    return show(st, disp, notice="; ".join(new.notices))


def do_fit(app: App, st, image, hidden, layers, resolution, steps, channels, display, optimizer="Adam",
           request: gr.Request = None, progress=gr.Progress()):  # noqa: B008
    """Fit a SIREN (or tiles) to the uploaded image, with a progress bar of the fit's PSNR."""
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


def do_example(app: App, st, disp, evt: gr.SelectData, request: gr.Request = None):
    """Load the bundled example picked in the gallery."""
    with exclusive(_key(request)):
        disp = check_display(disp)  # checked before anything changes
        return loaded(st, H.load_example(app.thumbs[evt.index][1]), disp)


def do_load(app: App, st, path, display, request: gr.Request = None):
    """Load an uploaded INR file."""
    with exclusive(_key(request)):
        display = check_display(display)  # checked before anything changes
        return loaded(st, H.load_inr_file(path), display)


def background(app: App, st: Session) -> Session:
    """The UI's edits: the Adam row and the refine run in the background after the preview (API twins
    compute the Adam row at once; `/refine` refines)."""
    if not FOR_API.get():
        H.start_background(app.settings, st)
    return st


def do_edit(app: App, st, editor, points, strength, display, request: gr.Request = None):
    """Apply a filter editor to the shown step."""
    with exclusive(_key(request)):
        display = check_display(display)  # checked before anything changes
        return show(background(app, H.edit(app.settings, st, editor, points, strength)), display, preview=True)


def do_paint(app: App, st, painted, editor, points, strength, display, request: gr.Request = None):
    """Turn the painted stroke into an edit of the shown step."""
    with exclusive(_key(request)):
        display = check_display(display)  # checked before anything changes
        return show(background(app, H.paint(app.settings, st, painted, editor, points, strength)), display,
                    preview=True)


def do_strength(app: App, st, strength, display, request: gr.Request = None):
    """Rescale the shown step's own edit; a refused value puts the box back to the shown strength."""
    with exclusive(_key(request)):
        try:
            display = check_display(display)  # checked before anything changes
            notice = H.rescale_notice(st, strength)
            return show(H.restrength(st, strength), display, notice=notice)
        except gr.Error as e:  # the box goes back to the shown step's strength, every view stays
            shown_s = st.edit.strength if isinstance(st, Session) and st.loaded and st.edit else 1.0
            e.outputs = [gr.skip()] * (app.n_outs - 1) + [shown_s]
            raise


def do_undo(app: App, st, display, request: gr.Request = None):
    """Show the step before the shown one."""
    with exclusive(_key(request)):
        display = check_display(display)  # checked before anything changes
        return show(H.undo(st), display)


def do_redo(app: App, st, display, request: gr.Request = None):
    """Show the step after the shown one."""
    with exclusive(_key(request)):
        display = check_display(display)  # checked before anything changes
        return show(H.redo(st), display)


def do_goto(app: App, st, index, display, request: gr.Request = None):
    """Show the step picked in the history (a repeated pick of the shown step changes nothing)."""
    with exclusive(_key(request)):
        display = check_display(display)  # checked before anything changes
        if not FOR_API.get() and isinstance(st, Session) and st.loaded and index == st.cursor:
            return [gr.skip()] * app.n_outs, ""  # the step is already shown (a repeated pick)
        return show(H.goto(st, index), display)


def do_reset(app: App, st, display, request: gr.Request = None):
    """Back to step 0, the edits dropped."""
    with exclusive(_key(request)):
        display = check_display(display)  # checked before anything changes
        return show(H.reset(st), display)


def do_views(app: App, st, display):
    """The views again at another display size."""
    if not isinstance(st, Session) or not st.loaded:
        return [gr.skip()] * app.n_outs, ""
    return show(st, display)


def do_render(app: App, st, display, which="edited"):
    """/render: one view of the shown step as a PNG."""
    return [H.png_file(H.render_current(st, display, which), which)], ""


def do_downloads(app: App, st, display, request: gr.Request = None):
    """The shown step's INR (.safetensors) and render (PNG), kept in the session's folder."""
    st = H.need(st)
    key = _key(request)
    st.cache["dir"] = key
    st.cache.setdefault("sent", {})["extras"] = "downloads"  # the next view clears them
    return [st, *H.downloads(st, H.session_dir(key), display)], ""


def do_canvas(app: App, st, display):
    """The shown step's render into the paint canvas."""
    return [H.png_file(H.render_current(st, display, "edited"), "canvas")], ""


def do_sensitivity(app: App, st, pts, top, disp):
    """The Fisher-diagonal sensitivity of the shown step's weights, per layer and where the image moves."""
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


def card_for(app: App, st, name):
    """The card of the chosen editor, or why there is none for the loaded INR (one place for both the
    load chain and the dropdown's change event, which race)."""
    if not isinstance(st, Session) or not st.loaded:
        return "load an image, an example or an INR file: the editors that fit it are listed here"
    if not name and not H.filter_editors_for(app.settings, st)[0]:
        return "no installed filter editor edits this INR (its depth or channels); see the admin tab"
    return H.card_markdown(app.settings, name)


def do_editors_for(app: App, st, current):
    """Offer only the filter editors that fit the loaded INR; keep the user's choice if it still fits."""
    if not isinstance(st, Session) or not st.loaded:  # every filter editor listed, none chosen yet
        return gr.update(choices=H.filter_editors_for(app.settings, None)[0], value=None), card_for(app, st, None)
    names, default = H.filter_editors_for(app.settings, st)
    value = current if current in names else default
    if not names:
        return gr.update(choices=[], value=None), card_for(app, st, None)
    return gr.update(choices=names, value=value), card_for(app, st, value)


def do_after_load(app: App, st, current):
    """A new INR: the editors that fit it, the strength back to 1 (a strength typed for the previous
    INR's edit would otherwise silently scale the first edit of this one) and the controls that need an
    INR enabled."""
    ok = isinstance(st, Session) and st.loaded
    return (*do_editors_for(app, st, current), 1.0, *[gr.update(interactive=ok)] * len(NEEDS_INR))


def ready(path):
    """An upload (or its removal) enables its button and clears a stale 'upload … first' line."""
    return gr.update(interactive=bool(path)), ""


def do_list(app: App):
    """/list_editors: every editor offered."""
    return H.list_editors(app.settings)


def dataset_note(app: App, dataset):
    """The admin's line on the chosen dataset (there, or how it is built)."""
    return H.dataset_status(app.settings, dataset)[1]


# admin tab


def do_login(app: App, password, request: gr.Request = None):
    """Show the admin panel for the right password."""
    H.check_admin(password, _client(request))
    return [gr.update(visible=True)], "logged in"


def do_train(app: App, password, run, task, dataset, editor, size, minutes, steps, limit, val_size,
             request: gr.Request = None):
    """Start (or resume) a training job."""
    s = H.admin_train(app.settings, app.jobs, password, run, task, dataset, editor, size, minutes, steps, limit,
                      val_size, client=_client(request))
    return [s, s["run"]], s.get("notice", "")  # "Run to publish" filled with the run just started


def watch_training(app: App, pw, request: gr.Request = None):
    """The training job's status line and loss curve, once a second while it runs."""
    try:
        H.check_admin(pw, _client(request))
    except gr.Error:
        return
    s = app.jobs.status()
    while True:
        yield _status_md(s), _plot_frame(s["history"])
        if not app.jobs.running():
            break
        time.sleep(1.0)
        s = app.jobs.status()
    s = app.jobs.status()
    yield _status_md(s), _plot_frame(s["history"])


def do_status(app: App, password, request: gr.Request = None):
    """The training job's status."""
    H.check_admin(password, _client(request))
    s = app.jobs.status()
    return [s, _status_md(s), _plot_frame(s["history"])], ""


def do_stop(app: App, password, request: gr.Request = None):
    """Stop the training job."""
    H.check_admin(password, _client(request))
    s = app.jobs.stop()
    return [s, _status_md(s)], ""


def do_publish(app: App, password, run, name, request: gr.Request = None):
    """Publish a run's best editor under a name."""
    rows, name = H.admin_publish(app.settings, password, run, name, client=_client(request))
    # the edit tab's list is filtered for the loaded INR when the tab is shown again (edit_tab.select)
    return [rows, gr.update(choices=H.evaluable(app.settings), value=name), gr.skip(),
            H.card_markdown(app.settings, name)], f"published {name!r}"


def do_delete(app: App, password, name, request: gr.Request = None):
    """Delete a published editor."""
    rows = H.admin_delete(app.settings, password, name, client=_client(request))
    return [rows, gr.update(choices=H.evaluable(app.settings))], "deleted"


def do_admin_list(app: App, password, request: gr.Request = None):
    """/admin_list: the editors and the runs."""
    H.check_admin(password, _client(request))
    return [{"editors": H.list_editors(app.settings), "runs": app.jobs.runs()}], ""


def do_admin_tables(app: App, password, request: gr.Request = None):
    """The admin's tables of editors and runs."""
    H.check_admin(password, _client(request))
    return [H.editors_table(app.settings), H.runs_table(app.jobs), gr.update(choices=H.evaluable(app.settings))], ""


def do_eval(app: App, password, editor, limit, request: gr.Request = None):
    """Evaluate an editor or a finished run against the baselines."""
    return [H.admin_evaluate(app.settings, password, editor, limit, client=_client(request))], ""


def on_unload(request: gr.Request):
    """A closed page: its session's files and lock go."""
    H.cleanup_session(_key(request))
    forget(_key(request))


# layout: each function adds its components to the namespace `c`

# the edit tab's views, in the order the core functions return them (SHOWN: what an API twin returns)
SHOWN = ["state", "original", "target", "edited", "diff", "points_img", "gmn_img", "info", "canvas", "photo_img"]
EDIT_OUTS = SHOWN + ["history", "dl_inr", "dl_png", "sens_layers", "sens_region", "sens_info", "strength"]
NEEDS_INR = ["edit_btn", "undo_btn", "redo_btn", "reset_btn", "paint_btn", "canvas_btn", "dl_btn", "sens_btn"]
API_NAMES = ("fit", "load_inr", "edit", "paint", "strength", "undo", "redo", "goto", "refine", "reset", "render",
             "download", "sensitivity", "list_editors", "admin_login", "admin_train", "admin_status", "admin_stop",
             "admin_evaluate", "admin_publish", "admin_delete", "admin_list")


def fit_panel(c: SimpleNamespace, thumbs: list) -> None:
    """The three sources of an INR: an uploaded image (fitted), a bundled example, an uploaded INR file."""
    with gr.Tab("Upload an image"):
        c.image_file = gr.File(label="Image (PNG, JPEG, WebP)", type="filepath", file_types=["image"],
                               elem_id="image-upload")
        with gr.Accordion("INR size", open=False):
            c.hidden = gr.Slider(8, 128, value=H.DEFAULT_HIDDEN, step=8, label="Hidden width")
            c.layers = gr.Slider(1, 5, value=H.DEFAULT_LAYERS, step=1, label="Sine layers")
            c.resolution = gr.Dropdown(["auto", "28", "32", "128", "256", "512", "1024"], value="auto",
                                       label="Working resolution (longer side)",
                                       info="auto: a photo's own size up to 1024 px (larger ones are downscaled, "
                                            "with a notice), as tiles of 32 px; an image of at most 32 px keeps "
                                            "its size (one SIREN)")
            c.steps = gr.Slider(10, 2000, value=H.DEFAULT_STEPS, step=10, label="Fit steps", elem_id="fit-steps")
            c.colour = gr.Radio(["auto", "gray", "colour"], value="auto", label="Channels",
                                info="auto: photos as colour tiles (gray ones with R = G = B), small gray images "
                                     "(digits) gray")
            # "fast (learned)" is offered only when an installed learned optimizer keeps its INRs editable
            # (docs/DESIGN.md §12); the shipped one does not, so the choice is hidden and the line below says why
            offer = learned_offered()
            c.fit_opt = gr.Radio(list(H.FIT_OPTIMIZERS), value="Adam", label="Optimizer",
                                 info="Adam: the recipe the editors were trained on. fast (learned): a meta-learned "
                                      "optimizer for single gray SIRENs whose INRs the editors were measured to edit",
                                 visible=offer, elem_id="fit-optimizer")
            gr.Markdown(FIT_NOTE, visible=not offer, elem_id="fit-note")
        c.fit_btn = gr.Button("Fit", variant="primary", elem_id="fit-btn", interactive=False)
    with gr.Tab("Bundled example"):
        c.gallery = gr.Gallery(value=thumbs, label="Examples (MNIST digits, scikit-image photos)", columns=4,
                               height=240, allow_preview=False, elem_id="examples")
    with gr.Tab("Upload an INR"):
        c.inr_file = gr.File(label="INR (.safetensors)", type="filepath", file_types=[".safetensors"],
                             elem_id="inr-upload")
        c.load_btn = gr.Button("Load INR", elem_id="load-btn", interactive=False)


def edit_controls(c: SimpleNamespace, first_names: list[str]) -> None:
    """The editor, its points and strength, the display size, the step buttons and the history."""
    with gr.Row():
        # none chosen until an INR is loaded (then the list is filtered for it): no gray editor pre-selected for
        # a photo nobody has loaded yet
        c.editor = gr.Dropdown(first_names, value=None, label="Edit (filter editors that fit the loaded INR)",
                               elem_id="editor-dd", scale=4, allow_custom_value=True)
        c.refresh = gr.Button("↻", scale=0, min_width=40)
    c.card = gr.Markdown("load an image, an example or an INR file: the editors that fit it are listed here",
                         elem_id="card")
    c.points = gr.Slider(1, 512, value=64, step=1, label="Sampled points")
    c.strength = unchecked(gr.Slider(0, 3, value=1.0, step=0.05, label="Strength s of the shown step's edit "
                                     "(θ_before + s·Δθ); a new edit starts at 1", elem_id="strength"))
    c.display = gr.Slider(32, H.MAX_DISPLAY, value=256, step=32, label="Display resolution (longer side, px)",
                          elem_id="display")
    with gr.Row():
        c.edit_btn = gr.Button("Apply edit to the INR shown", variant="primary", elem_id="edit-btn",
                               interactive=False)
        c.undo_btn = gr.Button("Undo", elem_id="undo-btn", interactive=False)
        c.redo_btn = gr.Button("Redo", elem_id="redo-btn", interactive=False)
        c.reset_btn = gr.Button("Reset", elem_id="reset-btn", interactive=False)
    c.history = gr.Dropdown([], label="History: pick a step to show it (an edit or a rescale of an earlier step "
                            "drops the steps after it)", elem_id="history", interactive=True)
    gr.Markdown(MODEL)


def edit_views(c: SimpleNamespace) -> None:
    """The alert and info lines and the images of the shown step."""
    c.alert = gr.Markdown("", elem_id="alert")
    c.info = gr.Markdown("load an image, an example or an INR file", elem_id="info")

    def image(label, elem_id, **kw):
        return gr.Image(label=label, format="png", type="numpy", interactive=False, elem_id=elem_id, **kw)

    with gr.Row():
        # short labels (long ones are cut on a narrow panel); VIEWS_NOTE says what each shows
        c.edited = image("Step shown", "edited")
        c.photo_img = image("Uploaded photo", "photo")
        c.original = image("Loaded INR (step 0)", "original")
        c.target = image("Target of this edit", "target")
        c.diff = image("Change", "diff", show_label=False)  # titled
    with gr.Row():
        c.points_img = image("Sampled points, on the INR before this edit", "points")
        c.gmn_img = image("What GradMetaNet sees", "gmn")
    gr.Markdown(VIEWS_NOTE, elem_id="views-note")


def edit_extras(c: SimpleNamespace) -> None:
    """The Paint and Sensitivity sections and the downloads."""
    with gr.Accordion("Paint", open=True, elem_id="paint-section"):
        gr.Markdown("Paint on the image with the brush (pick a colour and size); the painted layer's alpha is the "
                    "mask, its colours the target; a paint editor made for the loaded INR turns it into a weight "
                    "edit of the INR shown.")
        c.canvas = gr.ImageEditor(label="Paint", type="numpy", format="png", image_mode="RGBA", sources=(),
                                  transforms=(), layers=False, elem_id="paint",
                                  brush=gr.Brush(colors=BRUSH_COLOURS, default_color="#ffffff", default_size=12,
                                                 color_mode="defaults"),
                                  canvas_size=(256, 256))
        with gr.Row():
            c.canvas_btn = gr.Button("Reload the current image into the canvas", elem_id="canvas-btn",
                                     interactive=False)
            c.paint_btn = gr.Button("Apply paint", variant="primary", elem_id="paint-btn", interactive=False)
    with gr.Accordion("Sensitivity: which weights matter", open=False, elem_id="sensitivity-section"):
        gr.Markdown(SENSITIVITY_NOTE)
        with gr.Row():
            c.sens_points = gr.Slider(16, 1024, value=128, step=16, label="Points")
            c.sens_top = gr.Slider(0.5, 50, value=5, step=0.5, label="Most sensitive weights (%)")
            c.sens_btn = gr.Button("Compute sensitivity of the INR shown", elem_id="sensitivity-btn",
                                   interactive=False)
        with gr.Row():
            # the plots carry their own titles: a component label would cover them
            c.sens_layers = gr.Image(label="Sensitivity per weight", show_label=False, format="png", type="numpy",
                                     interactive=False, elem_id="sens-layers")
            c.sens_region = gr.Image(label="Where the image moves", show_label=False, format="png", type="numpy",
                                     interactive=False, elem_id="sens-region")
        c.sens_info = gr.Markdown(elem_id="sens-info")
    with gr.Row(elem_id="downloads"):
        c.dl_btn = gr.Button("Prepare downloads of the INR shown", elem_id="dl-btn", interactive=False)
        c.dl_inr = gr.File(label="Edited INR (.safetensors)", interactive=False, elem_id="dl-inr")
        c.dl_png = gr.File(label="Edited render (PNG)", interactive=False, elem_id="dl-png")


def edit_tab(c: SimpleNamespace, thumbs: list, first_names: list[str]) -> None:
    """The edit tab: one column, so that a narrow screen can show the results first (NARROW_CSS)."""
    with gr.Tab("Edit", id="edit") as c.edit_tab, gr.Column(elem_id="edit-page"):
        with gr.Row(elem_id="edit-controls"):
            with gr.Column(scale=1):
                fit_panel(c, thumbs)
            with gr.Column(scale=1):
                edit_controls(c, first_names)
        edit_views(c)
        edit_extras(c)


def admin_tab(c: SimpleNamespace, settings: H.Settings) -> None:
    """The admin tab: log in; train, evaluate, publish and delete editors."""
    with gr.Tab("Admin", id="admin"):
        gr.Markdown("Admin is enabled: log in with the password." if H.admin_enabled() else
                    "**Admin is disabled**: start the app with `GMN_ADMIN_PASSWORD` set to enable it.",
                    elem_id="admin-notice")
        with gr.Row():
            c.password = gr.Textbox(label="Admin password", type="password", elem_id="admin-password")
            c.login_btn = gr.Button("Log in", elem_id="admin-login")
        c.admin_alert = gr.Markdown("", elem_id="admin-alert")
        with gr.Column(visible=False) as c.admin_panel:
            gr.Markdown("### Train an editor")
            with gr.Row():
                c.run_name = gr.Textbox("dilate-1", label="Run name", elem_id="run-name")
                c.task = gr.Dropdown(list(TASKS), value="dilate", label="Task")
                c.dataset = gr.Dropdown(DATASETS, value=H.default_dataset(settings, DATASETS), label="Dataset",
                                        elem_id="dataset")
                c.kind = gr.Dropdown(list(KINDS), value="ws+gmn", label="Editor type")
                c.size = gr.Radio(list(H.EDITOR_SIZES), value="small", label="Size", elem_id="size")
            c.data_note = gr.Markdown(H.dataset_status(settings, c.dataset.value)[1], elem_id="dataset-note")
            with gr.Row():
                c.minutes = gr.Number(10, label="Time budget (CPU minutes of the training thread)")
                c.train_steps = gr.Number(0, label="…or steps (0: use the time budget)", precision=0,
                                          elem_id="train-steps")
                c.limit = gr.Number(0, label="Training INRs (0: all)", precision=0, elem_id="train-limit")
                c.val_size = gr.Number(100, label="Validation INRs", precision=0, elem_id="val-size")
            with gr.Row():
                c.train_btn = gr.Button("Train (or resume)", variant="primary", elem_id="train-btn")
                c.stop_btn = gr.Button("Stop", variant="stop")
                c.status_btn = gr.Button("Refresh status")
            c.status = gr.Markdown("no training job yet", elem_id="train-status")
            # Gradio 6 draws the colour legend under the x axis and clips it at any height (seen in Chromium), so
            # the colours are fixed and named in the label instead
            c.curve = gr.LinePlot(None, x="step", y="loss", color="split",
                                  color_map={"train": "#1f5fbf", "val": "#e8730c"},
                                  label="Loss: train (blue), validation (orange)", x_title="step",
                                  y_title="loss (MSE)", elem_id="loss-plot", height=300,
                                  color_title=" ",  # the colours are named in the label: no stray "split"
                                  x_axis_format="d")  # whole steps: no tick like "121.000000"
            gr.Markdown("### Evaluate, publish, delete")
            with gr.Row():
                c.eval_name = gr.Dropdown(H.evaluable(settings), label="Editor or finished run",
                                          allow_custom_value=True, elem_id="eval-name")
                c.eval_limit = gr.Number(100, label="Validation INRs", precision=0)
                c.eval_btn = gr.Button("Evaluate against baselines", elem_id="eval-btn")
            c.eval_table = gr.Dataframe(headers=["method", "MSE", "ms / INR"], interactive=False,
                                        elem_id="eval-table")
            with gr.Row():
                c.pub_run = gr.Textbox("dilate-1", label="Run to publish", elem_id="pub-run")
                c.pub_name = gr.Textbox("my-dilate", label="Publish as", elem_id="pub-name")
                c.pub_btn = gr.Button("Publish", elem_id="publish-btn")
                c.del_name = gr.Textbox(label="Published editor to delete")
                c.del_btn = gr.Button("Delete", variant="stop")
            c.list_btn = gr.Button("List editors and runs")
            c.editors_df = gr.Dataframe(headers=["editor", "task", "type", "edits SIRENs with", "test MSE",
                                                 "val MSE", "from"], interactive=False, label="Editors",
                                        elem_id="listing")
            c.runs_df = gr.Dataframe(headers=["run", "best editor", "checkpoint", "step", "last val"],
                                     interactive=False, label="Runs", elem_id="runs")


def api_ports(c: SimpleNamespace) -> None:
    """The API twins' hidden buttons and the hidden components that only they use."""
    with gr.Column(visible=False):
        c.api_btn = {n: gr.Button(visible=False) for n in API_NAMES}
        c.api_image, c.api_inr = gr.File(type="filepath", visible=False), gr.File(type="filepath", visible=False)
        c.api_text = gr.Textbox(visible=False)
        c.api_json = gr.JSON(visible=False)
        c.api_render = gr.Image(format="png", type="numpy", visible=False)
        c.api_status = gr.JSON(visible=False)


def port(value=None) -> gr.JSON:
    """An API twin's hidden input: a raw JSON value; its default given as JSON text (what gr.JSON expects)."""
    return gr.JSON(None if value is None else json.dumps(value), visible=False)


# wiring

PRIV = dict(api_visibility="private")


@dataclass(frozen=True)
class Action:
    """One row of the table of actions: a handler, its visible event and its hidden API twin."""

    fn: Callable  # a module-level handler taking the App first
    name: str | None = None  # the API twin's api_name (None: the visible event only)
    trigger: Callable | None = None  # the visible event (None: the API twin only)
    inputs: tuple = ()  # the visible event's inputs (a callable: one that makes a hidden component)
    outputs: tuple = ()  # the visible event's outputs (the alert line is added)
    ports: tuple = ()  # the twin's inputs: a component, or a raw JSON port with that default
    api_outputs: tuple = ()
    then: tuple = ()  # follow-up events of the visible event
    api_then: tuple = ()  # follow-up events of the twin
    kw: dict = field(default_factory=dict)  # keywords of both events (concurrency group)


def wire(app: App, c: SimpleNamespace, actions: list[Action], alert: gr.Markdown, where: str) -> None:
    """Wire each action: its visible event (errors inline in `alert`, every view kept, then its follow-ups) and
    its hidden API twin (errors raised), docs/DESIGN.md §14."""
    for a in actions:
        fn = bind(a.fn, app)
        if a.trigger is not None:
            inputs = [x if isinstance(x, gr.components.Component) else x() for x in a.inputs]
            ev = a.trigger(inline(len(a.outputs), where)(fn), inputs, [*a.outputs, alert], **PRIV, **a.kw)
            for then in a.then:
                ev = ev.then(**then)
        if a.name is not None:
            ports = [x if isinstance(x, gr.components.Component) else port(x) for x in a.ports]
            # no description from the handler's docstring: the endpoints are documented in README
            ev = c.api_btn[a.name].click(api(len(a.api_outputs))(fn), ports, list(a.api_outputs), api_name=a.name,
                                         api_description=False, **a.kw)
            for then in a.api_then:
                ev = ev.then(**then)


def edit_actions(app: App, c: SimpleNamespace, first: str | None) -> list[Action]:
    """The edit tab's table of actions."""
    state, display = c.state, c.display
    shown, outs = tuple(getattr(c, n) for n in SHOWN), tuple(getattr(c, n) for n in EDIT_OUTS)
    # workers per group: heavy calls take one lane beside them (app.limits.share_fairly)
    edit_kw = dict(concurrency_limit=L.EDIT_WORKERS, concurrency_id="edit")
    fit_kw = dict(concurrency_limit=L.FIT_WORKERS, concurrency_id="fit")
    then_follow = dict(fn=quiet(3)(follow), inputs=[state, display], outputs=[c.info, c.gmn_img, c.canvas],
                       api_visibility="private", concurrency_limit=4, concurrency_id="follow", show_progress="hidden")
    then_watch = dict(fn=watch, inputs=[state, display],
                      outputs=[c.info, c.gmn_img, c.edited, c.diff, c.canvas, c.history], api_visibility="private",
                      concurrency_limit=None, show_progress="hidden")
    after_load = dict(fn=bind(do_after_load, app), inputs=[state, c.editor],
                      outputs=[c.editor, c.card, c.strength, *[getattr(c, n) for n in NEEDS_INR]], **PRIV)
    fit_in = (c.image_file, c.hidden, c.layers, c.resolution, c.steps, c.colour, display, c.fit_opt)
    sens, downloads = (c.sens_layers, c.sens_region, c.sens_info), (state, c.dl_inr, c.dl_png)
    # hidden inputs, made when first wired (where the API's parameter labels, numbered by component, expect them)
    # a new edit starts at strength 1 (the box shows the shown step's own strength, which it rescales)
    one = functools.cache(lambda: gr.Number(1.0, visible=False))
    no_painter = functools.cache(lambda: gr.State(None))  # Paint: the paint editor made for the INR (app.registry)

    def step(name, fn, trigger, inputs, ports, then=then_follow):  # an action on the shown step: every view
        return Action(fn, name, trigger, (state, *inputs), outs, (state, *ports), shown, (then,), kw=edit_kw)

    return [
        Action(do_fit, trigger=c.fit_btn.click, inputs=(state, *fit_in), outputs=outs, then=(after_load, then_follow),
               kw=fit_kw),
        Action(do_fit, "fit", ports=(state, c.api_image, H.DEFAULT_HIDDEN, H.DEFAULT_LAYERS, "auto",
                                     H.DEFAULT_STEPS, "auto", 256, "Adam"),
               api_outputs=shown, api_then=(after_load,), kw=fit_kw),
        Action(do_example, trigger=c.gallery.select, inputs=(state, display), outputs=outs,
               then=(after_load, then_follow), kw=edit_kw),
        Action(do_load, trigger=c.load_btn.click, inputs=(state, c.inr_file, display), outputs=outs,
               then=(after_load, then_follow), kw=edit_kw),
        Action(do_load, "load_inr", ports=(state, c.api_inr, 256), api_outputs=shown, api_then=(after_load,),
               kw=edit_kw),
        step("edit", do_edit, c.edit_btn.click, (c.editor, c.points, one, display), (first, 64, 1.0, 256),
             then_watch),
        step("paint", do_paint, c.paint_btn.click, (c.canvas, no_painter, c.points, one, display),
             (None, None, 64, 1.0, 256), then_watch),
        step("strength", do_strength, functools.partial(c.strength.input, trigger_mode="always_last"),
             (c.strength, display), (1.0, 256)),
        step("undo", do_undo, c.undo_btn.click, (display,), (256,)),
        step("redo", do_redo, c.redo_btn.click, (display,), (256,)),
        # `select` fires once per pick (`input` also fired on closing the list, and raced a following Undo)
        step("goto", do_goto, c.history.select, (c.history, display), (0, 256)),
        Action(do_refine_api, "refine", ports=(state, 256), api_outputs=shown, kw=edit_kw),
        step("reset", do_reset, c.reset_btn.click, (display,), (256,)),
        # `input` fires on a typed value too (`release` only after a drag, so a typed size showed one change late)
        Action(do_views, trigger=functools.partial(display.input, trigger_mode="always_last"),
               inputs=(state, display), outputs=outs, then=(then_follow,), kw=edit_kw),
        Action(do_render, "render", ports=(state, 256, "edited"), api_outputs=(c.api_render,), kw=edit_kw),
        Action(do_canvas, trigger=c.canvas_btn.click, inputs=(state, display), outputs=(c.canvas,), kw=edit_kw),
        Action(do_downloads, "download", c.dl_btn.click, (state, display), downloads, (state, 256), downloads,
               kw=edit_kw),
        Action(do_sensitivity, "sensitivity", c.sens_btn.click, (state, c.sens_points, c.sens_top, display), sens,
               (state, 128, 5, 256), sens, kw=edit_kw),
    ]


def admin_actions(app: App, c: SimpleNamespace) -> list[Action]:
    """The admin tab's table of actions; an API twin takes the password as text and the rest as raw JSON."""
    admin_kw, unlimited = dict(concurrency_limit=2, concurrency_id="admin"), dict(concurrency_limit=None)
    tables = dict(fn=inline(3, "admin")(bind(do_admin_tables, app)), inputs=[c.password],
                  outputs=[c.editors_df, c.runs_df, c.eval_name, c.admin_alert], **PRIV)
    training = dict(fn=bind(watch_training, app), inputs=[c.password], outputs=[c.status, c.curve], **PRIV,
                    concurrency_limit=None, show_progress="hidden")
    train_in = (c.password, c.run_name, c.task, c.dataset, c.kind, c.size, c.minutes, c.train_steps, c.limit,
                c.val_size)
    status, stopped = (c.api_status, c.status, c.curve), (c.api_status, c.status)
    published, deleted = (c.api_json, c.eval_name, c.editor, c.card), (c.api_json, c.eval_name)

    def admin(name, fn, trigger, inputs, outputs, api_outputs, then=(), kw=admin_kw):
        ports = (c.api_text, *[None] * (len(inputs) - 1))
        return Action(fn, name, trigger, inputs, outputs, ports, api_outputs, then, kw=kw)

    return [
        admin("admin_login", do_login, c.login_btn.click, (c.password,), (c.admin_panel,), (c.admin_panel,)),
        admin("admin_train", do_train, c.train_btn.click, train_in, (c.api_status, c.pub_run), (c.api_status,),
              (training,)),
        admin("admin_status", do_status, c.status_btn.click, (c.password,), status, status, kw=unlimited),
        admin("admin_stop", do_stop, c.stop_btn.click, (c.password,), stopped, stopped, kw=unlimited),
        admin("admin_evaluate", do_eval, c.eval_btn.click, (c.password, c.eval_name, c.eval_limit),
              (c.eval_table,), (c.eval_table,)),
        admin("admin_publish", do_publish, c.pub_btn.click, (c.password, c.pub_run, c.pub_name), published,
              published, (tables,)),
        admin("admin_delete", do_delete, c.del_btn.click, (c.password, c.del_name), deleted, deleted),
        Action(do_admin_tables, trigger=c.list_btn.click, inputs=(c.password,),
               outputs=(c.editors_df, c.runs_df, c.eval_name), kw=admin_kw),
        admin("admin_list", do_admin_list, None, (c.password,), (), (c.api_json,)),
    ]


def wire_all(demo: gr.Blocks, app: App, c: SimpleNamespace, first: str | None) -> None:
    """Every event of both tabs: the tables of actions, and the events that only update a list or a line."""
    state = c.state
    c.image_file.change(ready, [c.image_file], [c.fit_btn, c.alert], **PRIV)
    c.inr_file.change(ready, [c.inr_file], [c.load_btn, c.alert], **PRIV)
    wire(app, c, edit_actions(app, c, first), c.alert, "edit")
    c.api_btn["list_editors"].click(bind(do_list, app), None, [c.api_json], api_name="list_editors",
                                    api_description=False)
    c.refresh.click(bind(do_editors_for, app), [state, c.editor], [c.editor, c.card], **PRIV)
    c.editor.change(bind(card_for, app), [state, c.editor], [c.card], **PRIV)
    c.edit_tab.select(bind(do_editors_for, app), [state, c.editor], [c.editor, c.card], **PRIV)
    c.dataset.change(bind(dataset_note, app), [c.dataset], [c.data_note], **PRIV)
    wire(app, c, admin_actions(app, c), c.admin_alert, "admin")
    demo.unload(on_unload)


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
    app = App(settings, jobs, thumbs, len(EDIT_OUTS))

    with gr.Blocks(title="GradMetaNet INR editor", delete_cache=(L.CACHE_SWEEP, L.CACHE_AGE)) as demo:
        demo.settings, demo.jobs, demo.guard = settings, jobs, H.GUARD  # for tests and the benchmark
        c = SimpleNamespace(state=gr.State(Session(), time_to_live=SESSION_TTL, delete_callback=_delete_state))
        gr.HTML(f"<style>{NARROW_CSS}</style>", padding=False)
        gr.Markdown("# GradMetaNet INR editor\nFit a SIREN to an image, then edit its weights in one forward pass "
                    "of a trained GradMetaNet editor.")
        with gr.Tabs():
            edit_tab(c, thumbs, first_names)
            admin_tab(c, settings)
        api_ports(c)
        wire_all(demo, app, c, first)
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
