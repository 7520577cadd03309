"""What the app does, as plain functions the UI (and the tests) call.

Edit tab:  fit_image / load_example / load_inr_file → an editing session (a small dict of CPU
tensors held in `gr.State`); edit / restrength / apply_again / paint / undo / reset / render.
Admin tab: admin_* functions, each checking the password from GMN_ADMIN_PASSWORD first.
Every user-facing failure is a `gr.Error` with one readable line; the session is left as it was.
"""

from __future__ import annotations

import hmac
import io
import json
import os
import re
import shutil
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from torch import Tensor

from gmn.decompose import decompose_gradients, mse
from gmn.edit import REGISTRY_DIRS, edit_inr
from gmn.editors import Editor, EditorError, apply_edit, load_editor
from gmn.objectives import FILTERS, TASKS
from inr.errors import InrError
from inr.files import load_inr, save_tiled
from inr.fit import LR, fit_recipe, psnr
from inr.images import MAX_PIXELS, load_image, to_size, to_square, to_uint8
from inr.siren import SirenArch, forward, select
from inr.tiles import MAX_PHOTO_SIZE, TileGrid, TileGridError, fit_photo, plan_fit, render_tiles

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"
DEFAULT_PUBLISHED = ROOT / "editors"
DEFAULT_RUNS = ROOT / "runs" / "app"
DOWNSCALE_PIXELS = 4_000_000  # larger uploads are downscaled (with a notice) before fitting
DOWNSCALE_SIDE = 1024
MAX_DISPLAY = 1024
MAX_HISTORY = 20
DEFAULT_HIDDEN, DEFAULT_LAYERS, DEFAULT_STEPS = 32, 2, 150  # the fitting recipe's steps (inr.fit.TILE_RECIPE)
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")


@dataclass
class Settings:
    """Where the app finds editors, publishes them, trains them and reads training data."""

    registry_dirs: list[Path] = field(default_factory=lambda: list(REGISTRY_DIRS))  # shipped (read-only)
    published_dir: Path = field(default_factory=lambda: Path(os.environ.get("GMN_EDITORS_DIR") or DEFAULT_PUBLISHED))
    runs_dir: Path = DEFAULT_RUNS
    zoo_root: Path | None = None


def _err(e: Exception) -> gr.Error:
    return gr.Error(str(e).splitlines()[0] if str(e) else type(e).__name__)


# sessions


def new_session(params: list[Tensor], arch: SirenArch, grid: TileGrid | int, source: str, psnr: float | None = None,
                photo: Tensor | None = None) -> dict:
    """The per-session editing state: small CPU tensors only. `grid` says where the SIRENs lie (an int:
    one SIREN over that square size); `photo` is the image that was fitted (H, W, C), if any."""
    grid = TileGrid.single(grid) if isinstance(grid, int) else grid
    params = [t.detach().cpu().float().clone() for t in params]
    return {"params": params, "orig": [t.clone() for t in params], "base": None, "dtheta": None, "history": [],
            "arch": arch.to_dict(), "grid": grid.to_dict(), "size": max(grid.image_size), "source": source,
            "psnr": psnr, "edit": None, "photo": None if photo is None else photo.detach().cpu()}


def _need(state: dict | None) -> dict:
    if not state or "params" not in state:
        raise gr.Error("load an image, an example or an INR file first")
    return state


def _arch(state: dict) -> SirenArch:
    return SirenArch.from_dict(state["arch"])


def _grid(state: dict) -> TileGrid:
    return TileGrid.from_dict(state["grid"])


def _display(size: float | None) -> int:
    try:
        size = float(size) if size is not None else 256.0
    except (TypeError, ValueError):
        raise gr.Error(f"display resolution must be a number, got {size!r}") from None
    if not np.isfinite(size):
        raise gr.Error("display resolution must be a finite number")
    return int(min(max(int(size), 8), MAX_DISPLAY))


def out_size(state: dict, display: int) -> tuple[int, int]:
    """Render size (H, W) for a display resolution: the longer side `display`, the INR's aspect kept."""
    h, w = _grid(state).image_size
    s = _display(display) / max(h, w)
    return max(1, round(h * s)), max(1, round(w * s))


def render_state(params: list[Tensor], state: dict, size: tuple[int, int] | None = None) -> Tensor:
    """Render the session's INR (one SIREN or tiles) at `size` (default: its working resolution): (H, W, C)."""
    return render_tiles(params, _arch(state), _grid(state), size)[0]


def render_image(params: list[Tensor], state: dict, display: int) -> np.ndarray:
    """uint8 render (H, W) or (H, W, 3) of the session's INR, longer side `display`."""
    return to_uint8(render_state(params, state, out_size(state, display)))


def describe(state: dict) -> str:
    a = _arch(state)
    grid = _grid(state)
    psnr = f" · fit PSNR {_db(state['psnr'])} at {grid.image_size[1]}×{grid.image_size[0]}" \
        if state.get("psnr") is not None else ""
    if state.get("fit_optimizer"):
        psnr += f" (fitted with {state['fit_optimizer']})"
    n = grid.count
    return (f"**{state['source']}** · SIREN {'→'.join(map(str, a.dims))} · {grid.describe()} "
            f"({n * a.num_params:,} parameters) {psnr} · {len(state['history'])} edit(s) applied")


# sources


def read_image(path: str | os.PathLike, channels: int | None = None) -> tuple[np.ndarray, str]:
    """Read an uploaded image (PNG, JPEG, WebP, ...); downscale huge ones, refuse decompression bombs.
    Returns (H, W, C) float32 in [0, 1] and a notice ('' if none)."""
    from PIL import Image

    path = Path(path)
    notice = ""
    try:
        data = path.read_bytes()
    except OSError as e:
        raise gr.Error(f"cannot read the upload: {e.strerror or e}") from None
    try:
        im = Image.open(io.BytesIO(data))
        w, h = im.size
    except Exception:  # noqa: BLE001 - PIL raises many kinds for non-images; load_image words them
        w = h = 0
    if DOWNSCALE_PIXELS < w * h <= MAX_PIXELS:
        try:
            im.draft("RGB", (DOWNSCALE_SIDE, DOWNSCALE_SIDE))
            im.thumbnail((DOWNSCALE_SIDE, DOWNSCALE_SIDE))
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            data = buf.getvalue()
            notice = f"the image is {w}×{h}; downscaled to {im.size[0]}×{im.size[1]} before fitting"
        except (OSError, ValueError, SyntaxError) as e:
            raise gr.Error(f"{path.name} is truncated or corrupt: {e}") from None
    try:
        return load_image(data, channels=channels), notice
    except InrError as e:
        raise gr.Error(str(e).replace("image is", f"{path.name} is", 1)) from None


FIT_OPTIMIZERS = ("Adam", "fast (learned)")


def _learned_optimizer(channels: int, width: int):
    """The learned optimizer for images with `channels` channels fitted at hidden `width` (cached):
    $GMN_LEARNED_OPTIMIZER, or the shipped one meant for them; None when there is none."""
    from gmn.optim import load_optimizer, shipped_optimizer

    env = os.environ.get("GMN_LEARNED_OPTIMIZER")
    path = Path(env) if env else shipped_optimizer(channels, width)
    if path is None:
        return None
    if path not in _LEARNED:
        _LEARNED[path] = load_optimizer(path)[0] if path.exists() else None
    return _LEARNED[path]


_LEARNED: dict = {}


def fit_image(path: str | None, *, hidden: int = DEFAULT_HIDDEN, layers: int = DEFAULT_LAYERS, resolution=None,
              steps: int | None = None, colour: str = "auto", callback=None,
              optimizer: str = "Adam") -> tuple[dict, str]:
    """Fit an uploaded image by the one fitting recipe (`inr.tiles.plan_fit`): a photo becomes a grid of
    32-px tile SIRENs at its working resolution (the longer side `resolution`, default 256, aspect kept;
    gray photos as RGB tiles, so the colour editors apply); an image of at most 32 px stays one SIREN.
    optimizer: "Adam" or "fast (learned)" (single gray SIRENs only; Adam, with a notice, elsewhere).
    callback(step, psnr) is forwarded to the fit (the progress bar). Returns (session, notice)."""
    if not path:
        raise gr.Error("upload an image (PNG, JPEG or WebP) first")
    if str(path).endswith(".safetensors"):
        raise gr.Error("that is an INR file: load it with 'Load INR' instead of fitting")
    if (colour or "auto") not in ("auto", "gray", "colour"):
        raise gr.Error(f"channels must be auto, gray or colour, got {colour!r}")
    channels = {"auto": None, "gray": 1, "colour": 3}[colour or "auto"]
    img, notice = read_image(path, channels)
    h0, w0 = img.shape[:2]
    notices = [notice] if notice else []
    try:
        res = None if resolution in (None, "", "auto", 0) else int(resolution)
        hidden, layers = int(hidden), int(layers)
        steps = None if steps in (None, "", 0) else int(steps)
    except (TypeError, ValueError):
        raise gr.Error("resolution, hidden width, sine layers and steps must be whole numbers") from None
    if res is not None and not 8 <= res <= MAX_PHOTO_SIZE:
        raise gr.Error(f"training resolution must be between 8 and {MAX_PHOTO_SIZE}, got {res}")
    if not (4 <= hidden <= 256 and 1 <= layers <= 6 and (steps is None or 1 <= steps <= 5000)):
        raise gr.Error("INR size out of range (hidden 4–256, sine layers 1–6, steps 1–5000)")
    try:
        grid, recipe = plan_fit(h0, w0, img.shape[-1], size=res)
    except TileGridError as e:
        raise _err(e) from None
    if not grid.is_single and img.shape[-1] == 1 and channels is None:
        img = np.repeat(img, 3, -1)  # a gray photo is edited through the colour path (R = G = B)
        notices.append("gray photo: fitted as colour tiles with R = G = B, so the colour editors apply")
    c = img.shape[-1]
    if grid.is_single and (h0 != w0):
        notices.append(f"the image is {w0}×{h0}: centre-cropped to a square for a single SIREN")
    elif not grid.is_single and (h0, w0) != grid.image_size:
        notices.append(f"the image is {w0}×{h0}: fitted at {grid.image_size[1]}×{grid.image_size[0]} "
                       "(aspect kept)")
    recipe = recipe.replace(steps=steps)
    arch = SirenArch(hidden=hidden, layers=layers, dim_out=c)
    target = to_size(img, grid.image_size) if not grid.is_single else to_square(img, grid.image_size[0])
    if optimizer not in FIT_OPTIMIZERS:
        raise gr.Error(f"unknown optimizer {optimizer!r}: choose {' or '.join(FIT_OPTIMIZERS)}")
    used = "Adam"
    net = None
    if optimizer != "Adam":
        if not grid.is_single:
            notices.append("photos are fitted as tiles with Adam (the recipe the colour editors were trained on); "
                           "the learned optimizer fits single gray SIRENs only")
        else:
            net = _learned_optimizer(c, hidden)
            if net is None:
                notices.append(f"no learned optimizer is installed for {'gray' if c == 1 else 'colour'} images at "
                               f"width {hidden} (see BENCHMARKS.md); fitted with Adam")
            elif arch.depth != net.config.depth or arch.dim_in != net.config.dim_in:
                notices.append(f"the learned optimizer fits SIRENs with {net.config.depth - 1} sine layers; "
                               f"fitted with Adam")
                net = None
    if net is not None:
        from gmn.optim import fit_learned

        result, used = fit_learned(target, arch, net, steps=recipe.steps, fallback_lr=recipe.lr, callback=callback,
                                   notice=lambda m: notices.append(m.removeprefix("notice: ")))
        used = "learned" if used == "learned" else "Adam"
        params, fit_psnr, seconds = result.params, float(result.psnr[0]), result.seconds
    elif grid.is_single:
        result = fit_recipe(target[None], arch, recipe, callback=callback)
        params, fit_psnr, seconds = result.params, float(result.psnr[0]), result.seconds
    else:
        tiled = fit_photo(target, arch, grid, recipe, callback=callback)
        params, fit_psnr, seconds = tiled.params, tiled.psnr, tiled.seconds
    photo = torch.from_numpy(np.ascontiguousarray(img)) if not grid.is_single else target
    if max(photo.shape[:2]) > MAX_DISPLAY:  # kept for the side-by-side view: at most the largest display
        s = MAX_DISPLAY / max(photo.shape[:2])
        photo = _resize(photo, (max(1, round(photo.shape[0] * s)), max(1, round(photo.shape[1] * s))))
    photo = (photo.clamp(0, 1) * 255).round().to(torch.uint8)  # uint8: a 1024² photo is 3 MB per session
    state = new_session(params, arch, grid, Path(path).name, fit_psnr, photo=photo)
    state["fit_seconds"] = seconds
    state["fit_optimizer"] = used
    state["fit_steps"] = recipe.steps
    return state, "; ".join(notices)


def example_names() -> list[str]:
    return sorted(p.stem for p in EXAMPLES.glob("*.safetensors"))


def example_thumbnails() -> list[tuple[np.ndarray, str]]:
    """(image, name) per bundled example, for the gallery."""
    out = []
    for name in example_names():
        png = EXAMPLES / f"{name}.png"
        if png.exists():
            img = (load_image(png) * 255).round().astype(np.uint8)
            out.append((img[..., 0] if img.shape[-1] == 1 else img, name))
    return out


def load_inr_file(path: str | os.PathLike | None, source: str | None = None) -> dict:
    """A session from an INR .safetensors file (never unpickled)."""
    if not path:
        raise gr.Error("upload an INR .safetensors file first")
    try:
        inr = load_inr(path, allow_stack=False)
    except InrError as e:
        raise _err(e) from None
    grid = inr.grid
    if grid is None:  # a file without image_size: shown as one square SIREN at 64²
        grid = TileGrid.single(64)
    psnr = inr.meta.get("psnr")
    ok = isinstance(psnr, (int, float)) and np.isfinite(psnr)
    return new_session(inr.params, inr.arch, grid, source or Path(path).name, float(psnr) if ok else None)


def load_example(name: str) -> dict:
    if name not in example_names():
        raise gr.Error(f"unknown example {name!r}; choose one of {', '.join(example_names())}")
    return load_inr_file(EXAMPLES / f"{name}.safetensors", source=f"example {name}")


# the registry


def registry(settings: Settings) -> dict[str, Path]:
    """Name → editor file: shipped editors, then published ones (which override by name)."""
    out: dict[str, Path] = {}
    for d in [*settings.registry_dirs, settings.published_dir]:
        d = Path(d)
        if d.is_dir():
            for p in sorted(d.glob("*.safetensors")):
                out[p.stem] = p
    return out


def read_card(path: Path) -> dict:
    """An editor's card (from the JSON beside it, else the file's metadata)."""
    j = path.with_suffix(".json")
    try:
        if j.exists():
            return json.loads(j.read_text())
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        return {**json.loads(meta.get("card", "{}")), "config": json.loads(meta.get("config", "{}"))}
    except (OSError, ValueError):
        return {}


def list_editors(settings: Settings) -> list[dict]:
    """One row per editor: name, task, kind, training data, val/test MSE, size, where from."""
    rows = []
    published = Path(settings.published_dir).resolve()
    for name, path in registry(settings).items():
        card = read_card(path)
        cfg = card.get("config", {})
        arch = cfg.get("arch", {})
        metrics = card.get("metrics", {})
        data = card.get("data", {})
        rows.append({
            "name": name,
            "task": card.get("task", cfg.get("task", "?")),
            "editor": card.get("editor", cfg.get("kind", "?")),
            "data": data.get("train", "?") if isinstance(data, dict) else str(data),
            "test_mse": metrics.get("test_mse"),
            "val_mse": metrics.get("val_mse"),
            "parameters": card.get("parameters"),
            "siren": f"{arch.get('layers', '?')} sine layers, {arch.get('dim_out', '?')} channel(s)",
            "layers": arch.get("layers"),
            "channels": arch.get("dim_out"),
            "published": path.resolve().parent == published,
        })
    return rows


def card_markdown(settings: Settings, name: str | None) -> str:
    rows = {r["name"]: r for r in list_editors(settings)}
    if not name or name not in rows:
        return "no editor selected" if rows else "no editors installed yet: train and publish one in the admin tab"
    r = rows[name]

    def f(v):
        return f"{v:.3g}" if isinstance(v, float) else ("—" if v is None else str(v))

    return (f"**{name}** · task `{r['task']}` · editor `{r['editor']}` · data {r['data']} · "
            f"test MSE {f(r['test_mse'])} · val MSE {f(r['val_mse'])} · {f(r['parameters'])} parameters · "
            f"edits SIRENs with {r['siren']}{' · published' if r['published'] else ''}")


def filter_editors_for(settings: Settings, state: dict | None) -> tuple[list[str], str | None]:
    """(names, default) of the filter editors that can edit the session's INR (its depth and channels), the
    default being `contrast` for colour INRs and `dilate` for gray ones where installed. With no INR
    loaded yet: every filter editor, `dilate` first."""
    rows = [r for r in list_editors(settings) if r["task"] != "paint"]
    if state and "arch" in state:
        a = _arch(state)
        rows = [r for r in rows if (r["layers"], r["channels"]) == (a.layers, a.dim_out)]
        prefer = "contrast" if a.dim_out == 3 else "dilate"
    else:
        prefer = "dilate"
    names = sorted((r["name"] for r in rows), key=lambda n: (n != prefer, n))
    return names, (names[0] if names else None)


_EDITOR_CACHE: dict[tuple[str, float], tuple[Editor, dict]] = {}


def get_editor(settings: Settings, name: str | None) -> Editor:
    reg = registry(settings)
    if not name or name not in reg:
        known = ", ".join(reg) or "none installed"
        raise gr.Error(f"unknown editor {name!r} (known: {known})")
    path = reg[name]
    key = (str(path), path.stat().st_mtime)
    if key not in _EDITOR_CACHE:
        try:
            _EDITOR_CACHE[key] = load_editor(path)
        except EditorError as e:
            raise _err(e) from None
    return _EDITOR_CACHE[key][0]


# editing


def _heat(x: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] → uint8 RGB with a black-red-yellow-white ramp."""
    x = np.clip(x, 0, 1)
    rgb = np.stack([np.clip(3 * x, 0, 1), np.clip(3 * x - 1, 0, 1), np.clip(3 * x - 2, 0, 1)], -1)
    return (rgb * 255).round().astype(np.uint8)


def _diverging(x: np.ndarray) -> np.ndarray:
    """(H, W) signed → uint8 RGB, blue (negative) white (0) red (positive), scaled by the 98th percentile of |x|."""
    s = float(np.quantile(np.abs(x), 0.98)) or float(np.abs(x).max()) or 1.0  # robust: a few outliers dominate g
    v = np.clip(x / s, -1, 1)[..., None]
    white = np.ones(x.shape + (3,))
    red, blue = np.array([0.8, 0.1, 0.1]), np.array([0.1, 0.2, 0.8])
    rgb = np.where(v > 0, white * (1 - v) + red * v, white * (1 + v) - blue * v)
    return (rgb * 255).round().astype(np.uint8)


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img


def _upscale(img: Tensor, size: tuple[int, int]) -> np.ndarray:
    """(h, w, C) tensor in [0, 1] → uint8 at size (H, W), nearest (shows the pixel grid honestly)."""
    t = torch.nn.functional.interpolate(img.permute(2, 0, 1)[None], size=tuple(size), mode="nearest")[0]
    return to_uint8(t.permute(1, 2, 0))


def draw_points(img: np.ndarray, points: Tensor) -> np.ndarray:
    """Red dots at (row, col) ∈ [-1, 1] points on a uint8 image."""
    out = _rgb(img).copy()
    h, w = out.shape[:2]
    r = max(1, max(h, w) // 256)
    for row, col in points.tolist():
        i, j = int((row + 1) / 2 * h), int((col + 1) / 2 * w)
        out[max(0, i - r) : i + r + 1, max(0, j - r) : j + r + 1] = (230, 30, 30)
    return out


def gmn_view(params: list[Tensor], arch: SirenArch, points: Tensor, target_pts: Tensor, cell: int = 6) -> np.ndarray:
    """What GradMetaNet sees: per layer (columns: inputs, hidden..., outputs), heat maps of a (top) and g (bottom)
    at the sampled points (rows) × neurons (columns), each normalised by its own scale (see _diverging)."""
    ns = decompose_gradients(params, arch, points[None], objective=mse(target_pts[None]))
    tiles = []
    for feats in ns.per_layer():  # (1, B, d_l, 2)
        f = feats[0].numpy()
        a, g = _diverging(f[..., 0]), _diverging(f[..., 1])
        sep = np.full((2, a.shape[1], 3), 255, np.uint8)
        tile = np.concatenate([a, sep, g], 0)
        tiles.append(np.kron(tile, np.ones((1, cell, 1), np.uint8)))  # widen neurons for visibility
    h = max(t.shape[0] for t in tiles)
    tiles = [np.pad(t, ((0, h - t.shape[0]), (0, 0), (0, 0)), constant_values=255) for t in tiles]
    gap = np.full((h, 8, 3), 255, np.uint8)
    out = tiles[0]
    for t in tiles[1:]:
        out = np.concatenate([out, gap, t], 1)
    return np.kron(out, np.ones((3, 1, 1), np.uint8))


def _adam_same_budget(params, arch, x, target, weight, seconds: float, lr: float = LR) -> tuple[list[Tensor], int]:
    """Test-time Adam on the editor's sampled points until `seconds` have passed (at least one step)."""
    p = [t.detach().clone().requires_grad_(True) for t in params]
    opt = torch.optim.Adam(p, lr=lr)
    t0, steps = time.perf_counter(), 0
    while steps == 0 or time.perf_counter() - t0 < seconds:
        err = (weight * (forward(p, arch, x) - target).pow(2)).mean()
        opt.zero_grad(set_to_none=True)
        err.backward()
        opt.step()
        steps += 1
    return [t.detach() for t in p], steps


def _run_edit(settings: Settings, state: dict, editor_name: str, points: int, strength: float, *, mask=None,
              paint=None, seed: int = 0) -> dict:
    """Edit the session's current INR (every tile of a tiled one in one batch); the session changes only if
    the edit succeeds."""
    editor = get_editor(settings, editor_name)
    arch, grid = _arch(state), _grid(state)
    t0 = time.perf_counter()
    try:
        res = edit_inr(state["params"], arch, editor, grid=grid, points=int(points), strength=float(strength),
                       mask=mask, paint=paint, seed=seed)
    except EditorError as e:
        raise _err(e) from None
    total = time.perf_counter() - t0
    edited = render_state(res.params, state)
    if not torch.isfinite(edited).all() or not all(torch.isfinite(t).all() for t in res.params):
        raise gr.Error("the edit produced NaN or Inf values; refused, the original INR is kept")
    # test-time Adam on the same points (of the same tiles), for the editor's time
    b = res.batch
    weight = torch.ones_like(b.target_pts[..., :1]) if b.mask_pts is None else (
        b.mask_pts + editor.config.lam * (1 - b.mask_pts))
    sub, adam_steps = _adam_same_budget(select(state["params"], res.tiles), arch, b.x, b.target_pts, weight,
                                        res.seconds)
    adam = [t.clone() for t in state["params"]]
    for a, t in zip(adam, sub):
        a[res.tiles] = t
    adam_mse = (render_state(adam, state) - res.target).pow(2).mean().item()
    before = (render_state(state["params"], state) - res.target).pow(2).mean().item()
    return {"res": res, "total": total, "adam_mse": adam_mse, "adam_steps": adam_steps, "before_mse": before,
            "task": editor.config.task, "editor": editor_name}


def _commit_edit(state: dict, out: dict, strength: float) -> dict:
    res = out["res"]
    state = dict(state)
    state["history"] = (state["history"] + [state["params"]])[-MAX_HISTORY:]
    state["base"] = state["params"]
    state["dtheta"] = [t.detach().clone() for t in res.dtheta]
    state["params"] = apply_edit(state["base"], state["dtheta"], float(strength))
    view_tile = int(res.tiles[torch.stack([d[res.tiles].flatten(1).abs().sum(1) for d in res.dtheta]).sum(0)
                                   .argmax()])  # the tile the editor changed most: shown in "what GradMetaNet sees"
    k = int((res.tiles == view_tile).nonzero()[0, 0])
    state["edit"] = {"target": res.target, "points": res.points, "tile": view_tile,
                     "tile_x": res.batch.x[k], "tile_target": res.batch.target_pts[k],
                     "seconds": res.seconds, "total": out["total"], "adam_mse": out["adam_mse"],
                     "adam_steps": out["adam_steps"], "before_mse": out["before_mse"], "task": out["task"],
                     "editor": out["editor"], "size": res.size, "strength": float(strength)}
    return state


def edit(settings: Settings, state: dict | None, editor_name: str, points: int = 64, strength: float = 1.0,
         seed: int = 0) -> dict:
    """Apply a filter editor (or any editor that needs no paint) to the session's INR."""
    state = _need(state)
    editor = get_editor(settings, editor_name)
    if editor.config.task not in FILTERS:
        raise gr.Error(f"editor {editor_name!r} is a '{editor.config.task}' editor: use the Paint tab")
    return _commit_edit(state, _run_edit(settings, state, editor_name, points, strength, seed=seed), strength)


def apply_again(settings: Settings, state: dict | None, editor_name: str, points: int = 64,
                strength: float = 1.0) -> dict:
    """Edit the already edited INR once more (new sampled points)."""
    state = _need(state)
    return edit(settings, state, editor_name, points, strength, seed=len(state["history"]))


def paint_inputs(value: dict | None, size: int | tuple[int, int], channels: int) -> tuple[Tensor, Tensor]:
    """gr.ImageEditor value → mask (H, W, 1) from the painted layer's alpha and colours (H, W, C) at
    size (H, W) (an int: square)."""
    from PIL import Image

    h, w = (size, size) if isinstance(size, int) else size

    if not value or not value.get("layers"):
        raise gr.Error("paint a stroke on the image first")
    alpha = np.zeros(np.asarray(value["layers"][0]).shape[:2], np.float32)
    for layer in value["layers"]:
        arr = np.asarray(layer)
        if arr.ndim == 3 and arr.shape[-1] == 4:
            alpha = np.maximum(alpha, arr[..., 3].astype(np.float32) / 255)
    if alpha.max() <= 0:
        raise gr.Error("paint a stroke on the image first")
    m = np.asarray(Image.fromarray((alpha * 255).astype(np.uint8)).resize((w, h), Image.BILINEAR)) > 127
    if not m.any():
        m = np.asarray(Image.fromarray((alpha * 255).astype(np.uint8)).resize((w, h), Image.BOX)) > 0
    comp = np.asarray(value.get("composite"))
    if comp.ndim == 2:
        comp = np.repeat(comp[..., None], 3, -1)
    comp = comp[..., :3].astype(np.uint8)
    rgb = np.asarray(Image.fromarray(comp).resize((w, h), Image.BOX), np.float32) / 255
    if channels == 1:
        rgb = (rgb @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    return torch.from_numpy(m.astype(np.float32))[..., None], torch.from_numpy(np.ascontiguousarray(rgb))


def paint(settings: Settings, state: dict | None, value: dict | None, editor_name: str | None = None,
          points: int = 64, strength: float = 1.0) -> dict:
    """Turn a painted stroke into a weight edit with a paint editor (the chosen one, else the first installed)."""
    state = _need(state)
    arch = _arch(state)
    rows = [r for r in list_editors(settings) if r["task"] == "paint"]
    if editor_name not in [r["name"] for r in rows]:
        if not rows:
            raise gr.Error("no paint editor installed: train and publish one in the admin tab")
        # the first paint editor made for this INR's depth and channels (gray or colour), else the first one
        fits = [r["name"] for r in rows if (r["layers"], r["channels"]) == (arch.layers, arch.dim_out)]
        editor_name = (fits or [rows[0]["name"]])[0]
    mask, colours = paint_inputs(value, _grid(state).image_size, _arch(state).dim_out)
    out = _run_edit(settings, state, editor_name, points, strength, mask=mask, paint=colours)
    return _commit_edit(state, out, strength)


def restrength(state: dict | None, strength: float) -> dict:
    """θ + s·Δθ of the last edit at a new strength, without running GradMetaNet again."""
    state = _need(state)
    if state["dtheta"] is None:
        raise gr.Error("apply an edit first")
    state = dict(state)
    state["params"] = apply_edit(state["base"], state["dtheta"], float(strength))
    state["edit"] = {**state["edit"], "strength": float(strength)}
    return state


def undo(state: dict | None) -> dict:
    state = _need(state)
    if not state["history"]:
        raise gr.Error("nothing to undo")
    state = dict(state)
    state["params"], state["history"] = state["history"][-1], state["history"][:-1]
    state["base"] = state["dtheta"] = state["edit"] = None
    return state


def reset(state: dict | None) -> dict:
    state = _need(state)
    state = dict(state)
    state.update(params=[t.clone() for t in state["orig"]], history=[], base=None, dtheta=None, edit=None)
    return state


def views(state: dict, display: int) -> dict:
    """Everything the edit tab shows: images (uint8) and a metrics line."""
    arch = _arch(state)
    size = out_size(state, display)
    cache = state.get("orig_render")
    if cache is None or tuple(cache.shape[:2]) != size:  # the original never changes: render it once per size
        cache = state["orig_render"] = render_state(state["orig"], state, size)
    orig = cache
    cur = render_state(state["params"], state, size)
    change = (cur - orig).abs().mean(-1).numpy()
    out = {"original": to_uint8(orig), "edited": to_uint8(cur),
           "diff": _heat(change / max(float(change.max()), 1e-6)),
           "target": None, "points": None, "gmn": None, "metrics": describe(state), "photo": None}
    photo = state.get("photo")
    if photo is not None:
        out["photo"] = to_uint8(_resize(photo, size))
        # PSNR against the upload at the display size, or at the photo's own size where the display is larger
        # (an upsampled photo is no reference)
        at = size if max(size) <= max(photo.shape[:2]) else tuple(photo.shape[:2])
        ref = _resize(photo, at)
        fit_db = float(psnr((render_state(state["orig"], state, at) - ref).pow(2).mean()))
        out["metrics"] += f" · PSNR against the uploaded image at {at[1]}×{at[0]}: {_db(fit_db)}"
    e = state.get("edit")
    if e:
        now = (render_state(state["params"], state) - e["target"]).pow(2).mean().item()
        out["target"] = _upscale(e["target"], size)
        out["points"] = draw_points(out["original"], e["points"])
        out["gmn"] = gmn_view(select(state["base"], e["tile"]), arch, e["tile_x"], e["tile_target"])
        where = f" (tile {e['tile']}, the one edited most)" if not _grid(state).is_single else ""
        out["metrics"] += (
            f"\n\n| | MSE to target | time |\n|---|---|---|\n"
            f"| no edit | {e['before_mse']:.4g} | — |\n"
            f"| **{e['editor']}** (strength {e['strength']:g}) | **{now:.4g}** | {e['seconds'] * 1e3:.0f} ms "
            f"(decompose + editor; {e['total'] * 1e3:.0f} ms with objective and render) |\n"
            f"| test-time Adam, same points, same time | {e['adam_mse']:.4g} | {e['adam_steps']} step(s) |"
            f"\n\nWhat GradMetaNet sees{where}.")
    return out


def _db(value: float) -> str:
    """A PSNR for people: above 60 dB the difference is below 8-bit rounding, so say so instead of '120.0 dB'."""
    return "> 60 dB (identical at 8 bits)" if value > 60 else f"{value:.1f} dB"


def _resize(img: Tensor, size: tuple[int, int]) -> Tensor:
    """(h, w, C) image (uint8 or float in [0, 1]) → float (H, W, C) in [0, 1], Lanczos as for fitting."""
    arr = img.numpy().astype(np.float32) / (255.0 if img.dtype == torch.uint8 else 1.0)
    return to_size(arr, tuple(size), aspect="stretch")


def render_current(state: dict | None, size: int = 256, which: str = "edited") -> np.ndarray:
    state = _need(state)
    params = state["orig"] if which == "original" else state["params"]
    return render_image(params, state, size)


def downloads(state: dict, folder: Path, display: int = 256) -> tuple[str, str]:
    """Write the current INR (.safetensors, loadable by `python -m inr`) and a PNG into `folder`."""
    folder.mkdir(parents=True, exist_ok=True)
    arch = _arch(state)
    stem = re.sub(r"[^A-Za-z0-9_.-]", "_", Path(state["source"]).stem.replace("example ", ""))[:40] or "inr"
    inr_path, png_path = folder / f"{stem}-edited.safetensors", folder / f"{stem}-edited.png"
    save_tiled(inr_path, state["params"], arch, _grid(state),
               source=f"gmn app: {state['source']} + {len(state['history'])} edit(s)")
    from PIL import Image

    Image.fromarray(render_image(state["params"], state, display)).save(png_path)
    return str(inr_path), str(png_path)


def session_dir(session_hash: str | None) -> Path:
    safe = re.sub(r"[^A-Za-z0-9]", "", session_hash or "anon")[:64] or "anon"
    return Path(tempfile.gettempdir()) / "gmn-app" / safe


def cleanup_session(session_hash: str | None) -> None:
    shutil.rmtree(session_dir(session_hash), ignore_errors=True)


# admin


def check_admin(password: str | None) -> None:
    """Raise gr.Error unless GMN_ADMIN_PASSWORD is set and `password` equals it (constant-time)."""
    expected = os.environ.get("GMN_ADMIN_PASSWORD")
    if not expected:
        raise gr.Error("admin is disabled: start the app with GMN_ADMIN_PASSWORD set")
    if not hmac.compare_digest((password or "").encode(), expected.encode()):
        raise gr.Error("wrong admin password")


def admin_enabled() -> bool:
    return bool(os.environ.get("GMN_ADMIN_PASSWORD"))


def _check_name(name: str | None, what: str = "name") -> str:
    name = (name or "").strip()
    if not NAME_RE.match(name) or ".." in name:
        raise gr.Error(f"{what} must be 1–48 characters of letters, digits, '.', '_' or '-'")
    return name


def admin_publish(settings: Settings, password: str, run: str, name: str) -> list[dict]:
    """Copy runs/RUN/best.safetensors (+ card) into the published folder as NAME; returns the registry."""
    check_admin(password)
    run, name = _check_name(run, "run"), _check_name(name)
    src = Path(settings.runs_dir) / run / "best.safetensors"
    if not src.exists():
        raise gr.Error(f"run {run!r} has no best.safetensors yet (train it until its first validation)")
    try:
        load_editor(src)
    except EditorError as e:
        raise _err(e) from None
    for d in settings.registry_dirs:
        if (Path(d) / f"{name}.safetensors").exists():
            raise gr.Error(f"{name!r} is a shipped editor's name; choose another")
    dst = Path(settings.published_dir)
    dst.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".safetensors"):  # the weights last: the registry lists *.safetensors
        s = src.with_suffix(suffix)
        if s.exists():
            tmp = dst / f".{name}{suffix}.tmp"
            shutil.copyfile(s, tmp)
            os.replace(tmp, dst / f"{name}{suffix}")
    return list_editors(settings)


def admin_delete(settings: Settings, password: str, name: str) -> list[dict]:
    """Delete a published editor (shipped editors cannot be deleted)."""
    check_admin(password)
    name = _check_name(name)
    path = Path(settings.published_dir) / f"{name}.safetensors"
    if not path.exists():
        shipped = any((Path(d) / f"{name}.safetensors").exists() for d in settings.registry_dirs)
        raise gr.Error(f"{name!r} is a shipped editor and cannot be deleted" if shipped
                       else f"no published editor {name!r}")
    path.unlink()
    path.with_suffix(".json").unlink(missing_ok=True)
    return list_editors(settings)


def admin_evaluate(settings: Settings, password: str, name: str, limit: int = 100, points: int = 64) -> list[list]:
    """Editor vs baselines on the validation split (rows: method, MSE, ms per INR), as in BENCHMARKS.md."""
    check_admin(password)
    from gmn.data import EditData
    from gmn.evaluate import eval_set, no_edit, run_adam, run_editor, tune_adam_lr

    editor = get_editor(settings, name)
    card = read_card(registry(settings)[name])
    dataset = (card.get("data") or {}).get("dataset") or card.get("train_config", {}).get("data") or "mnist5k"
    try:
        data = EditData.from_zoo(dataset, "val", editor.config.task, root=settings.zoo_root, limit=int(limit),
                                 log=lambda *_: None)
        editor.check(data.arch)
    except (ValueError, OSError) as e:
        raise _err(e) from None
    es = eval_set(data)
    rows = [["no edit", f"{no_edit(es):.4g}", "0"]]
    r = run_editor(editor, es, points=int(points))
    rows.append([f"{name} ({editor.config.kind}, B={points})", f"{r['mse']:.4g}", f"{r['seconds_per_inr'] * 1e3:.2f}"])
    for k in (1, 10, 100):
        # the lr that suits Adam best on these very INRs (as the benchmark tunes it on val): favours Adam
        lr, _ = tune_adam_lr(es, points=int(points), steps=k, lrs=(3e-4, 1e-3, 3e-3))
        a = run_adam(es, points=int(points), steps=k, lr=lr, lam=editor.config.lam)
        rows.append([f"Adam on the {points} points, K={k} (lr {lr:g}, tuned)", f"{a['mse']:.4g}",
                     f"{a['seconds_per_inr'] * 1e3:.2f}"])
    return rows


TASK_CHOICES = list(TASKS)
EDITOR_SIZES = {  # EditorConfig overrides
    "tiny": dict(hidden=16, interaction_layers=1, deepsets_layers=1, lowrank=4, theta_channels=4, ws_hidden=8,
                 ws_layers=2, pp_dim=16, pp_blocks=1, pp_heads=2, mlp_hidden=64),
    "small": dict(hidden=32, interaction_layers=2, deepsets_layers=1, lowrank=8, theta_channels=8, ws_hidden=16,
                  ws_layers=2),
    "default": {},
}


def admin_train(settings: Settings, jobs, password: str, run: str, task: str = "dilate", dataset: str = "mnist5k",
                editor: str = "ws+gmn", size: str = "small", minutes: float = 10.0, steps: int | None = None,
                limit: int | None = None, val_size: int = 100, val_every: int | None = None) -> dict:
    """Start a training job in the background (or resume run RUN from its checkpoint). Returns the job status."""
    check_admin(password)
    from gmn.editors import KINDS
    from gmn.train import TrainConfig

    run = _check_name(run, "run")
    if task not in TASKS:
        raise gr.Error(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if editor not in KINDS:
        raise gr.Error(f"unknown editor kind {editor!r}; choose one of {', '.join(KINDS)}")
    if size not in EDITOR_SIZES:
        raise gr.Error(f"unknown size {size!r}; choose one of {', '.join(EDITOR_SIZES)}")
    steps = int(steps) if steps else None
    minutes = float(minutes) if minutes else None
    if not steps and not (minutes and 0 < minutes <= 24 * 60):
        raise gr.Error("give a time budget (minutes, up to 24 h) or a number of steps")
    cfg = TrainConfig(task=task, data=dataset, editor=editor, minutes=minutes, steps=steps, model=EDITOR_SIZES[size],
                      limit=int(limit) if limit else None, val_size=int(val_size), batch=8 if size == "tiny" else 32,
                      val_every=int(val_every) if val_every else None,
                      zoo_root=str(settings.zoo_root) if settings.zoo_root else None)
    try:
        return jobs.start(run, cfg)
    except RuntimeError as e:
        raise _err(e) from None


def admin_status(jobs, password: str) -> dict:
    check_admin(password)
    return jobs.status()


def admin_stop(jobs, password: str) -> dict:
    check_admin(password)
    return jobs.stop()


def admin_runs(jobs, password: str) -> list[dict]:
    check_admin(password)
    return jobs.runs()


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
