"""Edits of a session (see app.session for the model): each runs a GradMetaNet editor on the INR shown,
measures it against no edit and test-time Adam on the same points for the same time, and adds a step.
The session changes only when the whole request succeeds; every numeric input is checked first."""

from __future__ import annotations

import re
import threading
import time
from pathlib import Path

import gradio as gr
import torch

from gmn.edit import edit_inr
from gmn.editors import EditorError, apply_edit
from gmn.evaluate import adam_loop, points_lr
from gmn.objectives import FILTERS
from inr.files import save_tiled
from inr.siren import select

from . import validate as V
from .registry import Settings, get_editor, paint_editor_for
from .session import EditRecord, Session, Step, need
from .views import render, render_image

REFUSED = "the edit produced NaN or Inf values; refused, the INR shown is unchanged"


def _adam_same_budget(params, arch, x, target, weight, seconds: float):
    """Test-time Adam on the editor's sampled points until `seconds` have passed (at least one step), at the lr
    tuned for as many steps as that time allows (one timed step estimates it; `gmn.evaluate.points_lr`)."""
    t0 = time.perf_counter()
    adam_loop(params, arch, x, target, weight, steps=1, lr=points_lr(1))
    k = max(1, int(seconds / max(time.perf_counter() - t0, 1e-9)))
    return adam_loop(params, arch, x, target, weight, seconds=seconds, lr=points_lr(k))


def _finite(params) -> bool:
    return all(torch.isfinite(t).all() for t in params)


def run_edit(settings: Settings, session: Session, editor_name: str, points, strength, *, mask=None, paint=None,
             seed: int = 0) -> Step:
    """Edit the INR shown (every tile of a tiled one in one batch) → the new step (not yet added)."""
    points, strength = V.points(points), V.strength(strength)
    editor = get_editor(settings, editor_name)
    if session.widened:
        raise gr.Error(f"the INR shown is {session.params[0].shape[1] // session.arch.hidden}× as wide as the loaded "
                       "one (an OCE edit: averaged copies), outside what the editors were trained on; undo, and use "
                       "an in-place editor (such as dilate-inplace) to edit repeatedly")
    arch, grid, base = session.arch, session.grid, session.params
    t0 = time.perf_counter()
    try:
        res = edit_inr(base, arch, editor, grid=grid, points=points, strength=strength, mask=mask, paint=paint,
                       seed=seed)
    except EditorError as e:
        raise V.error(str(e).replace("the original INR is kept", "the INR shown is unchanged")) from None
    total = time.perf_counter() - t0
    if not _finite(res.params) or not torch.isfinite(render(session, res.params)).all():
        raise gr.Error(REFUSED)
    b = res.batch
    weight = b.objective.weight_at(b.mask_pts, b.target_pts)  # the editor's own objective (its λ)
    before = (render(session, base) - res.target).pow(2).mean().item()
    moved = torch.stack([d[res.tiles].flatten(1).abs().sum(1) for d in res.dtheta]).sum(0)
    view_tile = int(res.tiles[moved.argmax()])  # the tile the editor changed most: "what GradMetaNet sees"
    k = int((res.tiles == view_tile).nonzero()[0, 0])
    tile = select(base, view_tile)  # the rounds' INRs of that tile and the editor's objective there
    states = [tile] + [[p + d[k : k + 1] for p, d in zip(tile, r)] for r in res.rounds[:-1]]
    objective = editor.objective(b.target_pts[k : k + 1], None if b.mask_pts is None else b.mask_pts[k : k + 1])
    # the equal-time Adam row is not computed here: the preview comes first (`details`, docs/DESIGN.md §14)
    rec = EditRecord(editor=editor_name, task=editor.config.task, strength=strength, points=points, base=base,
                     dtheta=[t.detach().clone() for t in res.dtheta], target=res.target, sampled=res.points,
                     tile=view_tile, tile_x=b.x[k], tile_target=b.target_pts[k], seconds=res.seconds, total=total,
                     before_mse=before, tiles=res.tiles, x=b.x, target_pts=b.target_pts, weight=weight,
                     tile_states=states, tile_objective=objective, mask=mask, paint=paint)
    label = f"{editor_name} ×{strength:g}" + (" (paint)" if editor.config.task == "paint" else "")
    return Step(res.params, label, session.current.edits + 1, rec)


def details(session: Session, step: Step | None = None) -> bool:
    """What the preview leaves out of an edit step (docs/DESIGN.md §14): test-time Adam on the editor's points for
    the editor's time, measured on the whole render. Computed at most once per step, without the session's lock
    (it reads only the step's own record); returns whether anything was computed."""
    step = session.current if step is None else step
    e = step.edit
    if e is None or e.adam_mse is not None:
        return False
    arch = session.arch_of(e.base)
    sub, adam_steps = _adam_same_budget(select(e.base, e.tiles), arch, e.x, e.target_pts, e.weight, e.seconds)
    adam = [t.clone() for t in e.base]
    for a, t in zip(adam, sub, strict=True):
        a[e.tiles] = t
    e.adam_mse = (render_tiles_of(session, adam) - e.target).pow(2).mean().item()
    e.adam_steps = adam_steps
    return True


REFINE_WAIT = 300.0  # seconds an edit waits for the refine of the step it starts from


def refine_step(settings: Settings, session: Session, step: Step | None = None) -> bool:
    """Preview, then refine (docs/DESIGN.md §14, `gmn.refine`): test-time Adam on the edit's whole objective (the
    filter of the INR before the edit; for paint the solid stroke over that INR), on the tiles whose window still
    differs from it, from the editor's result (or from the INR before the edit where the editor's card says
    plain Adam was better at equal time); then the step shows the refined INR and `step.refine` says what was
    done. Runs without the session's lock (a new Params list is swapped in at the end); an edit, paint or
    rescale of the session waits for it (`wait_refine`), so the next edit queues. Returns whether it ran."""
    from gmn.objectives import EditTarget, pixel_weight
    from gmn.refine import refine, refine_settings, solid_paint_target

    from .registry import read_card, registry

    step = session.current if step is None else step
    e = step.edit
    if e is None or step.refine.startswith("refin"):  # refining, refined, or a refine that failed
        return False
    step.refine = "refining: test-time Adam on the whole target of the tiles the edit touched…"
    try:
        path = registry(settings).get(e.editor)
        how = refine_settings(read_card(path) if path is not None else {})
        if e.mask is not None:
            objective = solid_paint_target(render(session, e.base), e.mask, e.paint)
        else:
            t = e.target[None]  # (1, H, W, C)
            objective = EditTarget(t, pixel_weight(None, 0.0, t), None, "filter")
        start = step.params if how["start"] == "editor" else e.base
        res = refine(start, session.arch_of(start), objective, grid=session.grid, steps=how["steps"], lr=how["lr"])
        if not _finite(res.params):
            step.refine = "refine refused (NaN or Inf): the editor's result is kept"
            return True
        frm = "the editor's result" if how["start"] == "editor" else "the INR before the edit (its card's choice)"
        e.preview = step.params
        if _in_place(e, res.params) and e.strength > 0:
            # the rescale acts on the refined edit: θ_before + s'·Δθ with Δθ = (θ_refined − θ_before) / s
            e.dtheta = [(r - b) / e.strength for r, b in zip(res.params, e.base, strict=True)]
        step.params = res.params  # one assignment: readers see the preview or the refined INR, never a mix
        step.refine = (f"refined: Adam {res.steps} steps (lr {how['lr']:g}) on the whole target of "
                       f"{len(res.tiles)} tile(s) from {frm} in {res.seconds:.1f} s; MSE to the refine's objective "
                       f"{res.mse_before:.4g} → {res.mse:.4g}")
        step.label += " · refined"
    except Exception as err:  # noqa: BLE001 - a failed refine leaves the preview, and says why
        step.refine = f"refine failed ({type(err).__name__}: {str(err).splitlines()[0][:120]}); the preview is kept"
    return True


def start_background(settings: Settings, session: Session, step: Step | None = None) -> threading.Thread:
    """After an edit's preview (the UI's): in a background thread, the equal-time Adam row (`details`), then the
    refine (`refine_step`). The session's edits wait for it (`wait_refine`): the next edit queues and builds on the
    refined step."""
    step = session.current if step is None else step
    done = threading.Event()
    session.cache["refining"] = done
    step.refine = "queued: starts after the equal-time Adam row"

    def work() -> None:
        try:
            details(session, step)
            step.refine = ""
            refine_step(settings, session, step)
        except Exception as err:  # noqa: BLE001 - reported in the step's status line
            step.refine = f"refine failed ({type(err).__name__}); the preview is kept"
        finally:
            done.set()

    thread = threading.Thread(target=work, name="refine", daemon=True)
    thread.start()
    return thread


def _in_place(e: EditRecord, params) -> bool:
    """Whether `params` have the shape of the INR the edit started from and Δθ is an in-place one (not OCE)."""
    return params[0].shape == e.base[0].shape and e.dtheta[0].dim() == e.base[0].dim()


def wait_refine(session: Session, timeout: float = REFINE_WAIT) -> None:
    """Wait for the session's running refine (the next edit builds on the refined step), or refuse after `timeout`."""
    done = session.cache.get("refining")
    if done is not None and not done.wait(timeout):
        raise gr.Error("the refine of the step shown is still running; apply again in a moment")


def render_tiles_of(session: Session, params):
    """Render params that are not a kept step (no cache)."""
    from inr.tiles import render_tiles

    return render_tiles(params, session.arch_of(params), session.grid)[0]


def edit(settings: Settings, session: Session | None, editor_name: str, points=64, strength=1.0,
         seed: int | None = None) -> Session:
    """Apply a filter editor to the INR shown; adds a step after it (the steps after it are dropped)."""
    session = need(session)
    editor = get_editor(settings, editor_name)
    if editor.config.task not in FILTERS:
        raise gr.Error(f"{editor_name!r} is a '{editor.config.task}' editor: paint a stroke in the Paint "
                       "section below and press 'Apply paint'")
    seed = session.current.edits if seed is None else seed  # fresh points for every edit of a lineage
    wait_refine(session)
    session.push(run_edit(settings, session, editor_name, points, strength, seed=seed))
    return session


def paint(settings: Settings, session: Session | None, value, editor_name: str | None = None, points=64,
          strength=1.0) -> Session:
    """Turn a painted stroke into a weight edit with a paint editor (the chosen one, else one made for the INR)."""
    from .paint import paint_inputs

    session = need(session)
    name = paint_editor_for(settings, session.arch, editor_name)
    mask, colours = paint_inputs(value, session.grid.image_size, session.arch.dim_out)
    wait_refine(session)
    session.push(run_edit(settings, session, name, points, strength, mask=mask, paint=colours,
                          seed=session.current.edits))
    return session


def restrength(session: Session | None, strength) -> Session:
    """θ_base + s·Δθ of the shown step's edit at a new strength, without running GradMetaNet again."""
    session = need(session)
    s = V.strength(strength)
    step = session.current
    if step.edit is None:
        raise gr.Error("the step shown is the loaded INR: apply an edit first, then set its strength")
    if s == step.edit.strength:
        return session  # nothing to redo (the box echoes the shown step's strength)
    wait_refine(session)
    params = apply_edit(step.edit.base, step.edit.dtheta, s)
    if not _finite(params):
        raise gr.Error(REFUSED)
    label = re.sub(r"×[0-9.e+-]+", f"×{s:g}", step.label, count=1)
    rec = EditRecord(**{**step.edit.__dict__, "strength": s})
    # a refined in-place edit rescales with its refine (its Δθ was replaced); an OCE one falls back to the editor's
    refined = step.refine.startswith("refined") and _in_place(rec, step.params)
    if not refined:
        label = label.replace(" · refined", "")
    session.replace_current(Step(params, label, step.edits, rec, step.refine if refined else ""))
    # the later steps were built on this step's old version: they are dropped, as after an edit made from an
    # earlier step (a branch), and `rescale_notice` says so
    session.steps = session.steps[: session.cursor + 1]
    return session


def rescale_notice(session: Session | None, strength) -> str:
    """What rescaling the shown step will do to the steps after it (said before it is done)."""
    if not isinstance(session, Session) or not session.loaded or session.edit is None:
        return ""
    later = len(session.steps) - 1 - session.cursor
    try:
        same = V.strength(strength) == session.edit.strength
    except gr.Error:
        return ""
    if not later or same:
        return ""
    return (f"step {session.cursor} rescaled: the {later} later step(s), built on its old version, were dropped "
            "(a branch, as when an edit is made from an earlier step)")


def undo(session: Session | None) -> Session:
    need(session).undo()
    return session


def redo(session: Session | None) -> Session:
    need(session).redo()
    return session


def goto(session: Session | None, index) -> Session:
    session = need(session)
    session.goto(V.number(index, "history step", 0, len(session.steps) - 1, integer=True))
    return session


def reset(session: Session | None) -> Session:
    need(session).reset()
    return session


def render_current(session: Session | None, size=256, which: str = "edited"):
    session = need(session)
    if which not in ("edited", "original"):
        raise gr.Error(f"which must be 'edited' or 'original', got {which!r}")
    return render_image(session, session.orig if which == "original" else session.params, size)


def downloads(session: Session | None, folder: Path, display=256) -> tuple[str, str]:
    """Write the INR shown (.safetensors, loadable by `python -m inr`) and a PNG into `folder`."""
    session = need(session)
    if not _finite(session.params):
        raise gr.Error("the INR shown holds NaN or Inf values; nothing written")
    folder.mkdir(parents=True, exist_ok=True)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(session.source).stem.replace("example ", ""))[:40] or "inr"
    inr_path, png_path = folder / f"{stem}-edited.safetensors", folder / f"{stem}-edited.png"
    save_tiled(inr_path, session.params, session.arch_of(session.params), session.grid,
               source=f"gmn app: {session.source} + {session.current.edits} edit(s)")
    from PIL import Image

    Image.fromarray(render_image(session, session.params, display)).save(png_path)
    return str(inr_path), str(png_path)
