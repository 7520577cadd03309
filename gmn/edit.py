"""Editing one INR: the call behind `python -m gmn edit` and the app.

    inr = load_inr("photo.safetensors")                                 # one SIREN or a grid of tiles
    res = edit(inr, editor, points=64)                                  # a filter editor
    res = edit(inr, editor, mask=m, paint=colour_image)                 # a paint editor
    res.params  # θ + s·Δθ;  res.dtheta, res.target, res.mse, res.seconds, res.points

The objective is computed from the INR's own render at its working resolution (the image
size it was fitted at), so any INR of the editor's depth can be edited. An edit that produces NaN or Inf
is refused (EditorError) and the original is kept.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from inr.files import Inr
from inr.siren import Params, SirenArch, check_params, coordinate_grid, select
from inr.tiles import TileGrid, render_tiles

from .data import Batch, make_batch
from .editors import Editor, EditorError, apply_edit, edited_arch
from .objectives import FILTERS, filter_target, paint_target

REGISTRY_DIRS = [Path(__file__).resolve().parent.parent / "assets" / "editors"]


@dataclass
class EditResult:
    params: Params  # edited INR (N = 1, or every tile of a tiled INR)
    dtheta: Params  # the editor's Δθ (before strength; zero for tiles a paint mask does not touch)
    target: Tensor  # (H, W, C) target image on the whole image grid
    mse: float  # MSE of the edited render to the target
    seconds: float  # decomposition + editor forward
    points: Tensor  # (K·B, 2) sampled coordinates (row, col) in [-1, 1] of the whole image
    size: tuple[int, int]  # (H, W) of the objective (the INR's working resolution)
    tiles: Tensor  # (K,) indices of the edited tiles (all, or those a paint mask touches)
    batch: Batch  # what the editor saw: the K tiles' params, tile-local points (K, B, 2), targets, mask there
    arch: SirenArch  # of `params`: the INR's own, or k× as wide after an OCE editor of k copies
    rounds: list[Params]  # per round r of the editor, the K tiles' Δθ of rounds 1..r (the last one is Δθ itself)


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


def describe_editor(card: dict) -> str:
    """What an editor is for, in plain words, from its card: "contrast of colour photo tiles and images
    (SIRENs 2→H→H→3, 2 sine layers, any width)"."""
    cfg = card.get("config", {})
    arch = cfg.get("arch", {}) if isinstance(cfg, dict) else {}
    task = card.get("task", cfg.get("task", "?"))
    c, layers = arch.get("dim_out"), arch.get("layers")
    kinds = {1: "gray images (digits, faces)", 3: "colour photos (tiles) and colour images"}
    what = kinds.get(c, f"{c}-channel images")
    dims = "→".join(["2"] + ["H"] * int(layers or 0) + [str(c)]) if layers else "?"
    widths = [arch.get("hidden")] if cfg.get("kind") == "mlp" else cfg.get("widths")
    width = f"width {', '.join(map(str, widths))} only" if widths else "any width"
    k = cfg.get("copies", 1) if isinstance(cfg, dict) else 1
    oce = f"; {k} averaged copies: the edited INR is {k}× as wide" if k > 1 else ""
    r = cfg.get("rounds", 1) if isinstance(cfg, dict) else 1
    rounds = f"; {r} rounds: it reads the gradients again after each" if r > 1 else ""
    return f"{task} of {what} (SIRENs {dims}, {layers} sine layers, {width}{oce}{rounds})"


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
    grid: TileGrid | None = None,
    points: int | None = None,
    strength: float = 1.0,
    size: int | None = None,
    mask: Tensor | None = None,
    paint: Tensor | None = None,
    seed: int = 0,
) -> EditResult:
    """Edit one INR, or every tile of a tiled INR at once, with `editor` (docs/DESIGN.md, "Editing tiles").

    grid: where the SIRENs lie (a tiled INR's `inr.grid`); without it the INR is one SIREN over a
        `size`×`size` image (its working resolution; `size` is then required, or taken from `mask`).
    The objective is computed once on the whole render at the working resolution; each tile then
    takes its B = `points` points and their targets from its own window, and the editor runs on all
    tiles as one batch. Paint editors need `mask` (H, W, 1) in {0, 1} and `paint` (H, W, C) colours
    (or (C,)); only the tiles the mask touches are edited."""
    if grid is None:
        size = size if size is not None else (mask.shape[0] if mask is not None else None)
        if size is None:
            raise EditorError("edit_inr needs the INR's image size: pass grid=inr.grid or size=")
        grid = TileGrid.single(int(size))
    editor.check(arch)
    n = check_params(params, arch)
    if n != grid.count:
        raise EditorError(f"the INR holds {n} SIRENs, its grid {grid.shape[0]}×{grid.shape[1]} = {grid.count}")
    task = editor.config.task
    points = editor.config.points if points is None else points
    if points < 1:
        raise EditorError("the number of points must be at least 1")
    h, w = grid.image_size
    dtype, device = params[0].dtype, params[0].device  # every tensor below follows the parameters
    img = render_tiles(params, arch, grid)  # (1, H, W, C), the whole image
    if task in FILTERS:
        obj = filter_target(img, task)
        tiles = torch.arange(n, device=device)
    else:
        if mask is None or paint is None:
            raise EditorError(f"the '{task}' editor needs a painted mask and colour")
        if tuple(mask.shape[:2]) != (h, w):
            raise EditorError(f"mask is {tuple(mask.shape[:2])}, expected ({h}, {w})")
        colour = paint[None] if paint.dim() == 3 else paint.reshape(1, -1)
        obj = paint_target(img, mask[None].to(img), colour.to(img), editor.config.lam)
        tiles = grid.touched(mask).to(device)
        if len(tiles) == 0:
            raise EditorError("the mask is empty: paint a stroke first")
    per_tile = obj.map(lambda t: grid.cut(t)[0]).select(tiles)  # each tile's window of the whole objective
    local = coordinate_grid(grid.tile, grid.tile, dtype=dtype, device=device)
    batch = make_batch(select(params, tiles), per_tile, local, points, torch.Generator().manual_seed(seed))
    editor.eval()
    t0 = time.perf_counter()
    rounds = _editor_in_chunks(editor, batch, arch)  # per round, Δθ of the rounds so far: Params with K INRs
    sub = rounds[-1]
    seconds = time.perf_counter() - t0
    if not all(torch.isfinite(t).all() for t in sub):
        raise EditorError("the edit produced NaN or Inf values; refused, the original INR is kept")
    k = editor.config.copies  # OCE: Δθ has a trailing axis of k copies (untouched tiles: k copies of θ)
    dtheta = [p.new_zeros(*p.shape, k) if k > 1 else torch.zeros_like(p) for p in params]
    for d, t in zip(dtheta, sub):
        d[tiles] = t
    new, new_arch = apply_edit(params, dtheta, strength), edited_arch(arch, dtheta)
    out = render_tiles(new, new_arch, grid)
    mse = (out - obj.target).pow(2).mean().item()
    return EditResult(new, dtheta, obj.target[0], mse, seconds, global_points(batch.x, tiles, grid), (h, w), tiles,
                      batch, new_arch, rounds)


EDIT_CHUNK = 8  # tiles per editor forward: the editor is memory-bound; 8 tiles at a time ran an 81-tile edit
# 3× faster than all 81 at once (787 → 258 ms, same outputs to 6e-8; BENCHMARKS.md, "Photo-scale editing")


def _editor_in_chunks(editor: Editor, batch: Batch, arch: SirenArch, chunk: int = EDIT_CHUNK) -> list[Params]:
    """The editor on K tiles, `chunk` at a time (each tile's Δθ depends on that tile alone): per round, the
    Δθ of the rounds so far (`Editor.edit_rounds`), each Params with K INRs."""
    k = batch.params[0].shape[0]
    like = next(editor.parameters())  # the editor runs in its own dtype and device; Δθ follows the parameters
    mine = batch.params[0]

    def to(t: Tensor | None) -> Tensor | None:
        return None if t is None else t.to(like)

    parts = []  # per chunk, per round, Params
    for i in range(0, k, chunk):
        sl = slice(i, i + chunk)
        m = None if batch.mask_pts is None else batch.mask_pts[sl]
        ps = [to(p) for p in select(batch.params, sl)]
        rounds = editor.edit_rounds(ps, arch, to(batch.x[sl]), to(batch.target_pts[sl]), to(m))
        parts.append([[d.to(mine) for d in r] for r in rounds])
    return [[torch.cat(ts, 0) for ts in zip(*(p[r] for p in parts))] for r in range(len(parts[0]))]


def global_points(x: Tensor, tiles: Tensor, grid: TileGrid) -> Tensor:
    """Tile-local coordinates (K, B, 2) → coordinates (K·B, 2) on the whole image's [-1, 1]²."""
    starts = torch.tensor(grid.windows(), dtype=x.dtype, device=x.device)[tiles]  # (K, 2) top-left (row, col)
    size = torch.tensor(grid.image_size, dtype=x.dtype, device=x.device)
    native = starts[:, None, :] + (x + 1) / 2 * grid.tile  # (K, B, 2) in pixels
    return (native / size * 2 - 1).reshape(-1, 2)


def edit(inr: Inr, editor: Editor, **kwargs) -> EditResult:
    """Edit a loaded INR file (one SIREN or tiled) at its own working resolution; kwargs as `edit_inr`."""
    if inr.grid is None:
        raise EditorError("the INR file does not say its image size; pass edit_inr(..., size=) instead")
    return edit_inr(inr.params, inr.arch, editor, grid=inr.grid, **kwargs)
