"""One user's editing session: the loaded INR and its history of edits, as a typed object held in `gr.State`.

The model (what the edit tab shows and the README states):

- The history is a list of steps. Step 0 is the INR as loaded (fitted, an example or an INR file); every
  edit adds a step made from the step shown (the *current* INR). Undo / redo / the history list move
  between steps; an edit made from an earlier step drops the steps after it (as in any editor).
- A step made by an edit keeps what the edit started from (`EditRecord.base`), its Δθ and its target: the
  target and the "no edit" row always refer to the INR that edit started from, and the strength slider
  rescales the shown step's own edit (θ_base + s·Δθ), whichever step is shown.
- At most `MAX_HISTORY` edit steps are kept for undo (the oldest are dropped; step 0 always stays); the
  edit counter of a step counts every edit in its lineage, kept or dropped.

A `Session` is changed in place under `exclusive(session key)` (one request per browser session at a time),
so a request that overlaps another of the same session is refused instead of silently losing an edit.
"""

from __future__ import annotations

import threading
from contextlib import contextmanager
from dataclasses import dataclass, field, fields, replace

import gradio as gr
from torch import Tensor

from inr.siren import Params, SirenArch
from inr.tiles import TileGrid

from .limits import HISTORY_BYTES, RenderCache, tensors_bytes

MAX_HISTORY = 20  # edit steps kept for undo (step 0, the loaded INR, is always kept)


@dataclass
class EditRecord:
    """How a step was made: the editor's Δθ from `base` and what the edit was measured against."""

    editor: str
    task: str
    strength: float
    points: int  # B, sampled points per SIREN
    base: Params  # the INR the edit started from
    dtheta: Params
    target: Tensor  # (H, W, C) the objective's target image at the working resolution
    sampled: Tensor  # (K·B, 2) sampled coordinates (row, col) in [-1, 1] of the whole image
    tile: int  # the tile the editor changed most (shown in "what GradMetaNet sees")
    tile_x: Tensor  # its tile-local points (B, 2)
    tile_target: Tensor  # and their targets (B, C)
    seconds: float  # decompose + editor forward
    total: float  # with objective and render
    before_mse: float  # MSE of `base` to the target ("no edit")
    tiles: Tensor | None = None  # (K,) the edited tiles
    x: Tensor | None = None  # (K, B, 2) their tile-local points
    target_pts: Tensor | None = None  # (K, B, C) the targets there
    weight: Tensor | None = None  # (K, B, 1) the objective's per-point weight (paint: mask + λ(1 − mask))
    # computed after the preview (docs/DESIGN.md §14): None until then
    adam_mse: float | None = None  # test-time Adam on the same points for the same time
    adam_steps: int | None = None
    # "what GradMetaNet sees" (app.views.gmn_inputs): the shown tile as each round of the editor read it, and the
    # editor's own objective at its points (masked and λ-weighted for paint)
    tile_states: list | None = None  # per round, Params of the tile (N = 1): θ, θ + Δθ of round 1, ...
    tile_objective: object | None = None  # gmn.decompose.Objective at the tile's points (1, B, ·)
    # paint: the stroke (the refine's solid objective is built from it, gmn.refine.solid_paint_target)
    mask: Tensor | None = None  # (H, W, 1) in {0, 1} at the working resolution
    paint: Tensor | None = None  # (H, W, C) its colours
    preview: Params | None = None  # the editor's own result once a refine has replaced the step's INR


@dataclass
class Step:
    params: Params
    label: str
    edits: int  # edits in this INR's lineage (0: the loaded INR)
    edit: EditRecord | None = None
    refine: str = ""  # the background refine's status line ("" for none; see app.editing.refine_step)


@dataclass
class Session:
    """The loaded INR (architecture, tile grid, where it came from) and its history of steps. `arch` is the
    loaded INR's; a step after an OCE edit is wider (`arch_of`)."""

    arch: SirenArch | None = None
    grid: TileGrid | None = None
    source: str = ""
    psnr: float | None = None  # fit PSNR (dB) at the working resolution, if known
    photo: Tensor | None = None  # the uploaded photo (uint8 (H, W, C), at most the largest display), if any
    fit: dict = field(default_factory=dict)  # seconds, optimizer, steps of the fit, if fitted here
    notices: list[str] = field(default_factory=list)  # what was done to the input (resize, alpha, ...)
    steps: list[Step] = field(default_factory=list)
    cursor: int = 0
    # renders by step and size (bounded: app.limits.RenderCache), written files, what the UI was last sent
    cache: dict = field(default_factory=lambda: {"renders": RenderCache(), "files": RenderCache(entries=64)},
                        repr=False)

    @classmethod
    def new(cls, params: Params, arch: SirenArch, grid: TileGrid | int, source: str, *, psnr: float | None = None,
            photo: Tensor | None = None, notices: list[str] | None = None) -> Session:
        grid = TileGrid.single(grid) if isinstance(grid, int) else grid
        params = [t.detach().cpu().float().clone() for t in params]
        return cls(arch=arch, grid=grid, source=source, psnr=psnr,
                   photo=None if photo is None else photo.detach().cpu(), notices=list(notices or []),
                   steps=[Step(params, f"loaded: {source}", 0)])

    # what is shown

    @property
    def loaded(self) -> bool:
        return self.arch is not None and bool(self.steps)

    @property
    def current(self) -> Step:
        return self.steps[self.cursor]

    @property
    def params(self) -> Params:
        return self.current.params

    @property
    def orig(self) -> Params:
        return self.steps[0].params

    @property
    def edit(self) -> EditRecord | None:
        return self.current.edit

    def arch_of(self, params: Params) -> SirenArch:
        """The architecture of a step's `params`: the loaded INR's, or k× as wide after an OCE edit of k copies."""
        hidden = params[0].shape[1]
        return self.arch if hidden == self.arch.hidden else replace(self.arch, hidden=hidden)

    @property
    def widened(self) -> bool:
        """Whether the INR shown was made wider than the loaded one (by an OCE edit in its lineage)."""
        return self.params[0].shape[1] != self.arch.hidden

    @property
    def size(self) -> int:
        return max(self.grid.image_size)

    def labels(self) -> list[str]:
        """One line per kept step, for the history list (the list's own value marks the step shown)."""
        return [f"{s.edits} · {s.label}" for s in self.steps]

    # changes (each in place; callers hold `exclusive`)

    def become(self, other: Session) -> Session:
        """Replace everything with `other` (a new load into the same browser session)."""
        for f in fields(self):
            setattr(self, f.name, getattr(other, f.name))
        return self

    def push(self, step: Step) -> None:
        """Add a step made from the current one; the redo steps after the current one are dropped."""
        self.steps = self.steps[: self.cursor + 1] + [step]
        if len(self.steps) > MAX_HISTORY + 1:
            self.steps = [self.steps[0], *self.steps[-MAX_HISTORY:]]
        while len(self.steps) > 2 and tensors_bytes(self.steps) > HISTORY_BYTES:  # and a byte cap (app.limits)
            del self.steps[1]
        self.cursor = len(self.steps) - 1

    def replace_current(self, step: Step) -> None:
        self.steps[self.cursor] = step

    def goto(self, index: int) -> None:
        if not 0 <= index < len(self.steps):
            raise gr.Error(f"no step {index} in the history (0–{len(self.steps) - 1})")
        self.cursor = index

    def undo(self) -> None:
        if self.cursor == 0:
            raise gr.Error("nothing to undo")
        self.cursor -= 1

    def redo(self) -> None:
        if self.cursor >= len(self.steps) - 1:
            raise gr.Error("nothing to redo")
        self.cursor += 1

    def reset(self) -> None:
        """Back to the loaded INR; the edit steps are dropped."""
        self.steps, self.cursor = self.steps[:1], 0


def need(session: Session | None) -> Session:
    if session is None or not isinstance(session, Session) or not session.loaded:
        raise gr.Error("load an image, an example or an INR file first")
    return session


# one request per browser session at a time

_LOCKS: dict[str, threading.Lock] = {}
_LOCKS_GUARD = threading.Lock()
BUSY = "another request of this session is still running (an edit, fit or load); wait for it to finish"


@contextmanager
def exclusive(key: str | None):
    """Hold the session's lock for the request, or refuse it at once (gr.Error) when another request of the
    same session holds it. key None (direct calls, tests): no lock."""
    if key is None:
        yield
        return
    with _LOCKS_GUARD:
        lock = _LOCKS.setdefault(key, threading.Lock())
    if not lock.acquire(blocking=False):
        raise gr.Error(BUSY)
    try:
        yield
    finally:
        lock.release()


def forget(key: str | None) -> None:
    with _LOCKS_GUARD:
        _LOCKS.pop(key or "", None)
