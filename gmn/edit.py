"""Editing one INR: the call behind `python -m gmn edit` and the app.

    res = edit_inr(params, arch, editor, points=64)                      # a filter editor
    res = edit_inr(params, arch, editor, mask=m, paint=colour_image)     # a paint editor
    res.params  # θ + s·Δθ;  res.dtheta, res.target, res.mse, res.seconds, res.points

The objective is computed from the INR's own render at `size` (its training resolution by
default), so any INR of the editor's depth can be edited. An edit that produces NaN or Inf
is refused (EditorError) and the original is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from inr.siren import Params, SirenArch, coordinate_grid, render

from .data import make_batch
from .editors import Editor, EditorError, apply_edit
from .objectives import FILTERS, filter_target, paint_target

REGISTRY_DIRS = [Path(__file__).resolve().parent.parent / "assets" / "editors"]


@dataclass
class EditResult:
    params: Params  # edited INR (N = 1)
    dtheta: Params  # the editor's Δθ (before strength)
    target: Tensor  # (H, W, C) target image on the grid
    mse: float  # MSE of the edited render to the target
    seconds: float  # decomposition + editor forward
    points: Tensor  # (B, 2) sampled coordinates (row, col) in [-1, 1]
    size: int


def editor_dirs() -> list[Path]:
    """Registry folders: the shipped editors, then GMN_EDITORS_DIR (published ones) if set."""
    import os

    dirs = list(REGISTRY_DIRS)
    if os.environ.get("GMN_EDITORS_DIR"):
        dirs.append(Path(os.environ["GMN_EDITORS_DIR"]))
    return dirs


def list_editors() -> dict[str, Path]:
    """Name → file of every editor in the registry (later folders override earlier ones)."""
    out: dict[str, Path] = {}
    for d in editor_dirs():
        for p in sorted(d.glob("*.safetensors")):
            out[p.stem] = p
    return out


def resolve_editor(name_or_path: str) -> Path:
    p = Path(name_or_path)
    if p.suffix == ".safetensors" and p.exists():
        return p
    known = list_editors()
    if name_or_path in known:
        return known[name_or_path]
    names = ", ".join(sorted(known)) or "none installed"
    raise EditorError(f"unknown editor {name_or_path!r} (known: {names}); or pass a .safetensors path")


@torch.no_grad()
def edit_inr(
    params: Params,
    arch: SirenArch,
    editor: Editor,
    *,
    points: int | None = None,
    strength: float = 1.0,
    size: int | None = None,
    mask: Tensor | None = None,
    paint: Tensor | None = None,
    seed: int = 0,
) -> EditResult:
    """Edit one INR (params with N = 1) with `editor`.

    Filter editors need nothing else. Paint editors need `mask` (H, W, 1) in {0, 1} and
    `paint` (H, W, C) colours (or (C,)), at resolution `size`."""
    editor.check(arch)
    task = editor.config.task
    points = points or editor.config.points
    if mask is not None and size is None:
        size = mask.shape[0]
    size = size or 28
    if points < 1:
        raise EditorError("the number of points must be at least 1")
    img = render(params, arch, size)  # (1, H, W, C)
    if task in FILTERS:
        obj = filter_target(img, task)
    else:
        if mask is None or paint is None:
            raise EditorError(f"the '{task}' editor needs a painted mask and colour")
        if mask.shape[:2] != (size, size):
            raise EditorError(f"mask is {tuple(mask.shape[:2])}, expected ({size}, {size})")
        colour = paint[None] if paint.dim() == 3 else paint.reshape(1, -1)
        obj = paint_target(img, mask[None].float(), colour.float(), editor.config.lam)
    grid = coordinate_grid(size, size)
    batch = make_batch(params, obj, grid, points, torch.Generator().manual_seed(seed))
    editor.eval()
    t0 = time.perf_counter()
    dtheta = editor(batch.params, arch, batch.x, batch.target_pts, batch.mask_pts)
    seconds = time.perf_counter() - t0
    if not all(torch.isfinite(t).all() for t in dtheta):
        raise EditorError("the edit produced NaN or Inf values; refused, the original INR is kept")
    new = apply_edit(params, dtheta, strength)
    out = render(new, arch, size)
    mse = (out - obj.target).pow(2).mean().item()
    return EditResult(new, dtheta, obj.target[0], mse, seconds, batch.x[0], size)
