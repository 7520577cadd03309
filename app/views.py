"""What the edit tab shows for a session: renders, the target, the change, the sampled points, what
GradMetaNet sees, and the metrics line and table (`views`), plus the PNG files handed to Gradio."""

from __future__ import annotations

import shutil
import tempfile
import time
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from gmn.decompose import NeuronSet, decompose_gradients
from inr.images import to_size, to_uint8
from inr.siren import Params, SirenArch
from inr.tiles import render_tiles

from .colours import colour_bar, diverging_unit, figure, heat, nice_ceiling, robust_scale, text_row
from .session import EditRecord, Session
from .validate import display as check_display

MAX_PSNR_SHOWN = 60.0


def db(value: float) -> str:
    """A PSNR for people: above 60 dB the difference is below 8-bit rounding, so say so instead of '120.0 dB'."""
    return f"> {MAX_PSNR_SHOWN:.0f} dB (identical at 8 bits)" if value > MAX_PSNR_SHOWN else f"{value:.1f} dB"


def out_size(session: Session, display) -> tuple[int, int]:
    """Render size (H, W) for a display resolution: the longer side `display`, the INR's aspect kept."""
    h, w = session.grid.image_size
    s = check_display(display) / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def render(session: Session, params: Params, size: tuple[int, int] | None = None) -> Tensor:
    """Render the session's INR `params` (one SIREN or tiles) at `size` (default: working resolution): (H, W, C).
    Renders of kept steps are cached per size (a session's steps never change in place)."""
    key = (id(params), None if size is None else tuple(size))
    cache = session.cache.setdefault("renders", {})
    hit = cache.get(key)
    if hit is not None and hit[0] is params:
        return hit[1]
    out = render_tiles(params, session.arch_of(params), session.grid, size)[0]
    if len(cache) >= 12:
        cache.pop(next(iter(cache)))
    cache[key] = (params, out)
    return out


def render_image(session: Session, params: Params, display) -> np.ndarray:
    """uint8 render (H, W) or (H, W, 3) of the session's INR, longer side `display`."""
    return to_uint8(render(session, params, out_size(session, display)))


def resize(img: Tensor, size: tuple[int, int]) -> Tensor:
    """(h, w, C) image (uint8 or float in [0, 1]) → float (H, W, C) in [0, 1], Lanczos as for fitting."""
    arr = img.numpy().astype(np.float32) / (255.0 if img.dtype == torch.uint8 else 1.0)
    return to_size(arr, tuple(size), aspect="stretch")


def upscale(img: Tensor, size: tuple[int, int]) -> np.ndarray:
    """(h, w, C) tensor in [0, 1] → uint8 at size (H, W), nearest (shows the pixel grid honestly)."""
    t = torch.nn.functional.interpolate(img.permute(2, 0, 1)[None], size=tuple(size), mode="nearest")[0]
    return to_uint8(t.permute(1, 2, 0))


def rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img


def draw_points(img: np.ndarray, points: Tensor) -> np.ndarray:
    """Red dots at (row, col) ∈ [-1, 1] points on a uint8 image."""
    out = rgb(img).copy()
    h, w = out.shape[:2]
    r = max(1, max(h, w) // 256)
    for row, col in points.tolist():
        i, j = int((row + 1) / 2 * h), int((col + 1) / 2 * w)
        out[max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1] = (230, 30, 30)
    return out


def change_map(change: np.ndarray) -> np.ndarray:
    """|edited − before| (H, W) in intensity units → a heat map on a round fixed scale with its colour bar."""
    top = nice_ceiling(max(float(change.max()), 1e-3))
    img = heat(change / top)
    bar = colour_bar(heat, img.shape[0], "0", f"{top:g}")
    return figure(img, "|edited - before this edit|", bar, note=f"mean {float(change.mean()):.3g}, "
                  f"max {float(change.max()):.3g} (pixel values in [0, 1])")


def gmn_inputs(edit: EditRecord, arch: SirenArch) -> list[NeuronSet]:
    """What the editor read at the shown tile, round by round: the decomposed gradients (a, g) of its own objective
    (masked and λ-weighted for paint) at the tile as that round saw it (θ, then θ + the earlier rounds' Δθ)."""
    x = edit.tile_x[None]  # (1, B, 2)
    return [decompose_gradients(p, arch, x, objective=edit.tile_objective) for p in edit.tile_states]


def _round_panel(ns: NeuronSet, arch: SirenArch, cell: int) -> np.ndarray:
    """One round: per layer (inputs, hidden layers, outputs), the a (top) and g (bottom) maps, points × neurons."""
    rows_px = max(1, 192 // max(1, ns.num_points))
    names = ["input x"] + [f"sine layer {i}" for i in range(1, arch.layers + 1)] + ["output"]
    tiles = []
    for name, feats in zip(names, ns.per_layer(), strict=False):  # (1, B, d_l, 2)
        f = feats[0].double().cpu().numpy()
        blocks = []
        for k, label in ((0, "a"), (1, "g")):
            s = robust_scale(f[..., k])
            m = diverging_unit(f[..., k] / s)
            m = np.kron(m, np.ones((rows_px, cell, 1), np.uint8))
            blocks.append((f"{label} ±{s:.2g}", m))
        width = max(max(b.shape[1] for _, b in blocks), 84)
        parts = [text_row(width, name)]
        for label, b in blocks:
            parts += [text_row(width, label), np.pad(b, ((0, 0), (0, width - b.shape[1]), (0, 0)),
                                                     constant_values=255)]
        tiles.append(np.concatenate(parts, 0))
    h = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, h - t.shape[0]), (0, 10), (0, 0)), constant_values=255) for t in tiles]
    return np.concatenate(tiles, 1)


def gmn_view(edit: EditRecord, arch: SirenArch, cell: int = 6) -> np.ndarray:
    """What GradMetaNet sees (`gmn_inputs`): for every round the editor ran, per layer, the a and g features at the
    sampled points (rows) × neurons (columns), each map on its own symmetric scale ±s (written above it)."""
    seen = gmn_inputs(edit, arch)
    panels = [_round_panel(ns, arch, cell) for ns in seen]
    width = max(p.shape[1] for p in panels)
    rows = []
    for r, p in enumerate(panels):
        if len(panels) > 1:
            rows.append(text_row(width, f"round {r + 1} of {len(panels)}" + (" (after the earlier rounds' edits)"
                                                                            if r else "")))
        rows.append(np.pad(p, ((0, 8), (0, width - p.shape[1]), (0, 0)), constant_values=255))
    body = np.concatenate(rows, 0)
    bar = colour_bar(diverging_unit, min(body.shape[0], 160), "-s", "+s", signed=True)
    return figure(body, "rows: sampled points, columns: neurons; a: activations, g: gradients of the edit's "
                  "objective", bar)


def metrics(session: Session, size: tuple[int, int]) -> str:
    """The info line (what is loaded, its fit, the step shown) and, for an edit step, its table."""
    a, grid = session.arch_of(session.params), session.grid
    line = (f"**{session.source}** · SIREN {'→'.join(map(str, a.dims))} · {grid.describe()} "
            f"({grid.count * a.num_params:,} parameters)")
    # one fit figure, said in words: the loaded INR (step 0) against the image it was fitted to, at the working size
    wh = f"{grid.image_size[1]}×{grid.image_size[0]}"
    if session.psnr is not None and session.photo is not None:
        line += (f" · fit PSNR {db(session.psnr)}: the loaded INR (step 0) against the uploaded image, both at the "
                 f"working size {wh}")
    elif session.psnr is not None:
        line += f" · fit PSNR {db(session.psnr)} at {wh}, as the file records it"
    if session.fit.get("optimizer"):
        line += f" (fitted with {session.fit['optimizer']})"
    if session.notices:
        line += " · note: " + "; ".join(session.notices)
    step = session.current
    line += (f" · step {session.cursor} of {len(session.steps) - 1} in the history · {step.edits} edit(s) applied")
    e = step.edit
    if e is None:
        return line
    now = (render(session, step.params) - e.target).pow(2).mean().item()
    worse = " ⚠ worse than no edit" if now > e.before_mse else ""
    where = f" (tile {e.tile}, the one edited most)" if not grid.is_single else ""
    return line + (
        f"\n\nThis step: **{e.editor}** applied to the INR before it ({step.edits - 1} earlier edit(s)), strength "
        f"{e.strength:g}, {e.points} points per SIREN. The target is the `{e.task}` objective of that INR.\n\n"
        f"| | MSE to target (of the INR before this edit) | time |\n|---|---|---|\n"
        f"| no edit | {e.before_mse:.4g} | — |\n"
        f"| **{e.editor}** (strength {e.strength:g}) | **{now:.4g}**{worse} | {e.seconds * 1e3:.0f} ms "
        f"(decompose + editor; {e.total * 1e3:.0f} ms with objective and render) |\n"
        + (f"| test-time Adam, same points, same time | {e.adam_mse:.4g} | {e.adam_steps} step(s) |"
           if e.adam_mse is not None else "| test-time Adam, same points, same time | computing… | |")
        + f"\n\nWhat GradMetaNet sees{where}.")


def views(session: Session, display, *, gmn: bool = True) -> dict:
    """Everything the edit tab shows: images (uint8) and the metrics markdown; gmn False leaves out "what
    GradMetaNet sees" (computed after the preview, docs/DESIGN.md §14)."""
    size = out_size(session, display)
    orig = render(session, session.orig, size)
    step = session.current
    cur = render(session, step.params, size)
    e = step.edit
    before = render(session, e.base, size) if e is not None else orig
    out = {"original": to_uint8(orig), "edited": to_uint8(cur),
           "diff": change_map((cur - before).abs().mean(-1).numpy()),
           "target": None, "points": None, "gmn": None, "metrics": metrics(session, size), "photo": None}
    if session.photo is not None:
        out["photo"] = to_uint8(resize(session.photo, size))
    if e is not None:
        out["target"] = upscale(e.target, size)
        out["points"] = draw_points(to_uint8(before), e.sampled)
        out["gmn"] = None if not gmn else gmn_view(e, session.arch_of(e.base))
    return out


IMAGE_DIR = Path(tempfile.gettempdir()) / "gmn-app" / "images"
IMAGE_TTL = 600.0  # seconds a written PNG is kept (Gradio copies it into its cache when the event returns)


def png_file(arr: np.ndarray | None, name: str) -> str | None:
    """Write a uint8 image to a fresh PNG file and return its path.

    Returning paths instead of arrays sidesteps a Gradio race: arrays are cached under a hash of
    their bytes and rewritten in place, so two sessions showing the same image at once could serve
    a half-written file. Files are copied into Gradio's cache atomically."""
    if arr is None:
        return None
    import uuid

    from PIL import Image

    now = time.time()
    if IMAGE_DIR.exists():
        for d in IMAGE_DIR.iterdir():
            try:
                if now - d.stat().st_mtime > IMAGE_TTL:
                    shutil.rmtree(d, ignore_errors=True)
            except OSError:
                pass
    d = IMAGE_DIR / uuid.uuid4().hex
    d.mkdir(parents=True, exist_ok=True)
    path = d / f"{name}.png"
    Image.fromarray(arr).save(path, format="PNG", compress_level=1)
    return str(path)
