"""Preview, then refine: test-time Adam on the full target after the editor's one-shot edit (the objectives of
docs/DESIGN.md §5 on the tiles of §10, "Editing tiles"; figures in BENCHMARKS.md, "refine").

    res = edit_inr(params, arch, editor, grid=grid)                       # the preview: one editor forward
    obj = filter_target(render_tiles(params, arch, grid), "blur")          # the whole objective it was given
    ref = refine(res.params, res.arch, obj, grid=grid, steps=100)          # Adam on every pixel of the tiles
    ref.params  # the refined INR: untouched tiles are the input's tensors' values, bit for bit
    ref, arch = refine_edit(params, arch, res.params, res.arch, grid, "blur", settings=refine_settings(card))

Every photo edit knows its whole target (the filter of the render, or the painted colour and the render
around it), so after the editor's preview Adam can fit it on every pixel rather than on the B sampled points.
Only the tiles the edit changes are refined (`changed_tiles`: a stroke's, or those whose target differs from
the render before the edit); each is fitted on its own window of
the whole-image objective, as tiles are fitted (docs/DESIGN.md §10), so the blended render approaches the
target and the other tiles stay bit-identical.

Solid paint: `solid_paint_target` is the objective of a stroke as the user sees it, the stroke's colour inside
its mask fading over a feathered edge of `feather` pixels into the render from before the edit outside, the
pixels beyond the edge weighed λ = SOLID_LAMBDA times more (the refine keeps the outside where it was).
"""

from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from inr.siren import Params, SirenArch, check_params, coordinate_grid, select
from inr.tiles import FIT_GROUP, TileGrid, render_tiles

from .editors import EditorError
from .evaluate import adam_loop
from .objectives import FILTERS, EditTarget, filter_target, pixel_weight

REFINE_STEPS = 100  # the default refine (the editors' cards say which start is the default: `refine_settings`)
REFINE_LR = 1e-3  # Adam's lr from a fitted INR or an editor's result (bench/refine.py tunes it per editor)
FEATHER = 2.0  # px at the working resolution: the soft edge a painted stroke fades over
GROUP = FIT_GROUP  # tiles per Adam run: small SIRENs are memory-bound (docs/DESIGN.md §10, fitting in groups)
SOLID_LAMBDA = 4.0  # weight of the pixels beyond the feathered edge: on a 256² photo stroke (editor + 150 steps)
# λ = 1 left 0.25% of them changed by more than 8/255, λ = 4 0.02%, the inside MSE about the same (8.4e-5, 8.7e-5)
CHANGED_TOL = 0.5 / 255  # a tile whose window is within half an 8-bit level of the target is left alone


@dataclass
class RefineResult:
    params: Params  # the whole INR (every tile); the tiles not in `tiles` are the input's values
    tiles: Tensor  # (K,) indices of the refined tiles
    mse_before: float  # weighted MSE of the whole render to the objective before the refine
    mse: float  # the same after
    steps: int  # Adam steps taken
    seconds: float  # wall time of the Adam steps


def feather_mask(mask: Tensor, feather: float = FEATHER) -> Tensor:
    """A stroke's soft mask (H, W, 1) in [0, 1] from a painted mask (H, W, 1) in [0, 1]: 1 on the stroke
    (mask > 0.5), falling linearly to 0 over `feather` pixels outside it (1 − d / (feather + 1), d the
    distance in pixels to the nearest stroke pixel), never below the painted alpha itself. 0 marks the
    pixels beyond the feathered edge, which a solid paint must leave alone."""
    from scipy.ndimage import distance_transform_edt

    if mask.dim() != 3 or mask.shape[-1] != 1:
        raise EditorError(f"a paint mask is (H, W, 1), got {tuple(mask.shape)}")
    if feather < 0:
        raise EditorError(f"feather must be at least 0 px, got {feather}")
    m = mask.detach().cpu().double()
    core = (m[..., 0] > 0.5).numpy()
    if not core.any():
        return m.clamp(0, 1).to(mask)
    d = torch.from_numpy(distance_transform_edt(~core))[..., None]  # (H, W, 1) px to the stroke, 0 on it
    ramp = (1 - d / (feather + 1)).clamp(0, 1)
    return torch.maximum(ramp, m.clamp(0, 1)).to(mask)


def solid_paint_target(image: Tensor, mask: Tensor, colour: Tensor, *, feather: float = FEATHER,
                       lam: float = SOLID_LAMBDA) -> EditTarget:
    """The objective of a solid stroke: t = m̃·c + (1 − m̃)·image with weight w = m̃ + λ(1 − m̃), m̃ = `feather_mask`
    (the paint objective's weight, docs/DESIGN.md §5, with the soft mask and the refine's own λ).

    image: (H, W, C) or (1, H, W, C), the render the edit started from; mask (H, W, 1) in [0, 1]; colour
    (H, W, C) per pixel or (C,). Returns an objective on (1, H, W, C) whose `mask` is the soft mask."""
    img = image[0] if image.dim() == 4 else image
    h, w, c = img.shape
    if tuple(mask.shape[:2]) != (h, w):
        raise EditorError(f"mask is {tuple(mask.shape[:2])}, the image {(h, w)}")
    soft = feather_mask(mask, feather).to(img)
    col = colour.to(img)
    col = col.reshape(1, 1, c).expand(h, w, c) if col.dim() == 1 else col
    target = soft * col + (1 - soft) * img
    weight = pixel_weight(soft, lam, target)  # m̃ + λ(1 − m̃)
    return EditTarget(target[None], weight[None], soft[None], "paint", float(lam))


def refine_target(params: Params, arch: SirenArch, grid: TileGrid, task: str, mask: Tensor | None = None,
                  paint: Tensor | None = None, *, feather: float = FEATHER, lam: float = SOLID_LAMBDA) -> EditTarget:
    """The full objective a refine fits, from the INR before the edit (params on `grid`): the filter of its
    render for a filter task; for "paint" the solid stroke (`solid_paint_target`) of mask (H, W, 1) and
    paint (H, W, C) or (C,) over its render."""
    image = render_tiles(params, arch, grid)  # (1, H, W, C), the render the edit started from
    if task in FILTERS:
        return filter_target(image, task)
    if task != "paint":
        raise EditorError(f"unknown task {task!r}; choose one of {', '.join(FILTERS)}, paint")
    if mask is None or paint is None:
        raise EditorError("a paint refine needs the painted mask and colour")
    return solid_paint_target(image, mask, paint, feather=feather, lam=lam)


def changed_tiles(objective: EditTarget, image: Tensor, grid: TileGrid, *, tol: float = CHANGED_TOL) -> Tensor:
    """Indices (K,) of the tiles an edit of `objective` changes: for paint, those whose window holds a pixel of
    the (soft) mask; for a filter, those whose window of `image` (1, H, W, C), the render the edit started from,
    differs from the target by more than `tol` at some pixel of positive weight."""
    if objective.mask is not None:
        changed = objective.mask > 0  # (1, H, W, 1)
    else:
        changed = ((image - objective.target).abs() * (objective.weight > 0)).amax(-1, keepdim=True) > tol
    win = grid.cut(changed[0].float()).flatten(1)  # (N, T·T)
    return torch.nonzero((win > 0).any(1)).flatten()


def refine(
    params: Params,
    arch: SirenArch,
    objective: EditTarget,
    *,
    grid: TileGrid | None = None,
    tiles: Tensor | None = None,
    steps: int = REFINE_STEPS,
    lr: float = REFINE_LR,
    before: Tensor | None = None,
) -> RefineResult:
    """Adam on the full objective (every pixel of each refined tile's window), from `params` (the editor's
    result, or the INR before the edit), on the tiles `tiles` only.

    objective: on the whole image at the working resolution, target (1, H, W, C) and weight (1, H, W, 1)
        (`filter_target` of the render before the edit, or `solid_paint_target`).
    grid: where the tiles lie (None: one SIREN over the objective's square image).
    tiles: the tiles to refine (default: `changed_tiles`: a paint stroke's tiles; for a filter those whose
        window of `before` (1, H, W, C), the render the edit started from, differs from the target: without
        `before`, of the render of `params`).
    The result follows the params' dtype and device; the objective is moved there."""
    n_obj, h, w, c = objective.target.shape
    if n_obj != 1:
        raise EditorError(f"refine takes the objective of one image, got {n_obj}")
    grid = TileGrid.single((h, w)) if grid is None else grid
    n = check_params(params, arch)
    if n != grid.count:
        raise EditorError(f"the INR holds {n} SIRENs, its grid {grid.shape[0]}×{grid.shape[1]} = {grid.count}")
    if grid.image_size != (h, w):
        raise EditorError(f"the objective is {w}×{h} px, the INR's grid {grid.image_size[1]}×{grid.image_size[0]}")
    if c != arch.dim_out:
        raise EditorError(f"the objective has {c} channels, the INR {arch.dim_out}")
    if steps < 0:
        raise EditorError(f"refine steps must be at least 0, got {steps}")
    dtype, device = params[0].dtype, params[0].device
    obj = objective.map(lambda t: t.to(device, dtype))
    start = render_tiles(params, arch, grid)  # (1, H, W, C)
    mse_before = obj.error(start).item()
    if tiles is None:
        tiles = changed_tiles(obj, start if before is None else before.to(device, dtype), grid)
    tiles = torch.as_tensor(tiles, dtype=torch.long).cpu()
    out = list(params)
    t0 = time.perf_counter()
    if len(tiles) and steps:
        per_tile = obj.map(lambda t: grid.cut(t[0])).select(tiles.to(device))  # (K, T, T, ·) each tile's window
        target, weight = per_tile.flat()  # (K, T·T, C), (K, T·T, 1)
        local = coordinate_grid(grid.tile, grid.tile, dtype=dtype, device=device)  # (T·T, 2), every tile's own grid
        idx = tiles.to(device)
        out = [p.detach().clone() for p in params]
        for i in range(0, len(idx), GROUP):  # tiles are independent and Adam elementwise: groups change nothing
            g = slice(i, i + GROUP)
            sub, _ = adam_loop(select(params, idx[g]), arch, local, target[g], weight[g], steps=steps, lr=lr)
            for q, s in zip(out, sub):
                q[idx[g]] = s
    seconds = time.perf_counter() - t0
    mse = obj.error(render_tiles(out, arch, grid)).item()
    return RefineResult(out, tiles, mse_before, mse, steps if len(tiles) else 0, seconds)


def refine_edit(params: Params, arch: SirenArch, edited: Params, edited_arch: SirenArch, grid: TileGrid, task: str,
                *, mask: Tensor | None = None, paint: Tensor | None = None, settings: dict | None = None,
                steps: int | None = None, lr: float | None = None) -> tuple[RefineResult, SirenArch]:
    """The refine after an edit, as the CLI and the app run it: from the editor's result (`edited`, on
    `edited_arch`) or from the INR before the edit (`params`, on `arch`) as `settings` (`refine_settings` of the
    editor's card) say, on the objective `refine_target` builds from the INR before the edit, on the tiles the
    edit changes. `steps`/`lr` override the settings'. Returns (the refine, the architecture of its params)."""
    settings = refine_settings({}) if settings is None else settings
    start, start_arch = (edited, edited_arch) if settings["start"] == "editor" else (params, arch)
    obj = refine_target(params, arch, grid, task, mask, paint)
    before = render_tiles(params, arch, grid)
    res = refine(start, start_arch, obj, grid=grid, before=before, lr=settings["lr"] if lr is None else lr,
                 steps=settings["steps"] if steps is None else steps)
    return res, start_arch


# the default refine of an editor: its card's "refine" field, written by bench/refine.py


def refine_settings(card: dict) -> dict:
    """{"start": "editor" | "original", "steps": K, "lr": lr} from an editor's card: whether the refine starts from
    the editor's result (its warm start paid at equal time) or from the INR before the edit (plain Adam was
    better), as measured by bench/refine.py; the module defaults (start from the editor) where the card says
    nothing."""
    r = card.get("refine") if isinstance(card, dict) else None
    r = r if isinstance(r, dict) else {}
    start = r.get("start") if r.get("start") in ("editor", "original") else "editor"
    steps = int(r["steps"]) if isinstance(r.get("steps"), int) and r["steps"] >= 0 else REFINE_STEPS
    lr = float(r["lr"]) if isinstance(r.get("lr"), (int, float)) and np.isfinite(r["lr"]) and r["lr"] > 0 else REFINE_LR
    return {"start": start, "steps": steps, "lr": lr}


def read_card(path: str | Path) -> dict:
    """The JSON card beside an editor file ({} where there is none or it is unreadable)."""
    j = Path(path).with_suffix(".json")
    try:
        card = json.loads(j.read_text())
    except (OSError, ValueError):
        return {}
    return card if isinstance(card, dict) else {}
