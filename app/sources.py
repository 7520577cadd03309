"""Where a session's INR comes from: an uploaded image fitted here, a bundled example, or an uploaded INR file.

Each says what it did to the input (downscaled, composited on white, aspect kept, gray as RGB, ...) in the
session's notices, and bounds the work a loaded INR can cause: an INR file may declare at most the app's
working resolution (`MAX_WORKING`, the largest size the app fits), `MAX_TILES` tiles, `MAX_PARAMS`
parameters and SIRENs of at most `MAX_HIDDEN` × `MAX_LAYERS`; anything larger is refused with one line.
"""

from __future__ import annotations

import io
import os
import threading
from pathlib import Path

import gradio as gr
import numpy as np
import torch

from inr.errors import InrError
from inr.files import load_inr
from inr.fit import fit_recipe
from inr.images import MAX_PIXELS, load_image
from inr.siren import SirenArch
from inr.threads import choose_threads
from inr.tiles import FIT_GROUP, MAX_PHOTO_SIZE, TileGrid, TileGridError, fit_photo, plan_image

from .session import Session
from .validate import MAX_DISPLAY, error, number
from .views import resize

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"
DOWNSCALE_PIXELS = 4_000_000  # larger uploads are downscaled (with a notice) before fitting
DOWNSCALE_SIDE = 1024
DEFAULT_HIDDEN, DEFAULT_LAYERS, DEFAULT_STEPS = 32, 2, 150  # the fitting recipe's steps (inr.fit.TILE_RECIPE)
MAX_WORKING = MAX_PHOTO_SIZE  # longest side of an INR's working resolution (objective and edits run there)
MAX_TILES = 1600  # a 1024² photo is 37×37 = 1369 tiles
MAX_PARAMS = 2_000_000  # a 1024² photo at the default size (2→32→32→3 tiles) has 1.7 M
MAX_HIDDEN, MAX_LAYERS = 256, 6
FIT_OPTIMIZERS = ("Adam", "fast (learned)")
MIN_SIDE = 8  # px: smaller uploads are refused (sklearn's 8×8 digits are the smallest images the project fits)
_FIT_LOCK = threading.Lock()  # photo fits use every core: one at a time


def read_image(path: str | os.PathLike, channels: int | None = None) -> tuple[np.ndarray, str]:
    """Read an uploaded image (PNG, JPEG, WebP, ...); downscale huge ones, refuse decompression bombs.
    Returns (H, W, C) float32 in [0, 1] and a notice ('' if none)."""
    from PIL import Image

    path = Path(path)
    notices = []
    try:
        data = path.read_bytes()
    except OSError as e:
        raise gr.Error(f"cannot read the upload: {e.strerror or e}") from None
    try:
        im = Image.open(io.BytesIO(data))
        w, h = im.size
    except Exception:  # noqa: BLE001 - PIL raises many kinds for non-images; load_image words them
        im, w, h = None, 0, 0
    if im is not None and w * h <= MAX_PIXELS and (im.mode in ("RGBA", "LA", "PA")
                                                   or (im.mode == "P" and "transparency" in im.info)):
        try:
            alpha = im.convert("RGBA").getchannel("A")
            if alpha.getextrema()[0] < 255:
                notices.append("the image has transparent pixels: composited on white before fitting")
            im = Image.open(io.BytesIO(data))
        except (OSError, ValueError, SyntaxError):
            pass  # load_image words the failure below
    if DOWNSCALE_PIXELS < w * h <= MAX_PIXELS:
        try:
            im.draft("RGB", (DOWNSCALE_SIDE, DOWNSCALE_SIDE))
            im.thumbnail((DOWNSCALE_SIDE, DOWNSCALE_SIDE))
            buf = io.BytesIO()
            im.save(buf, format="PNG")
            data = buf.getvalue()
            notices.insert(0, f"the image is {w}×{h}; downscaled to {im.size[0]}×{im.size[1]} before fitting")
        except (OSError, ValueError, SyntaxError) as e:
            raise gr.Error(f"{path.name} is truncated or corrupt: {e}") from None
    try:
        return load_image(data, channels=channels), "; ".join(notices)
    except InrError as e:
        raise gr.Error(str(e).replace("image is", f"{path.name} is", 1)) from None


def _learned_optimizer(channels: int, width: int):
    """The learned optimizer for images with `channels` channels fitted at hidden `width` (cached):
    $GMN_LEARNED_OPTIMIZER, or the shipped one meant for them whose INRs the editors still edit (its card's
    "editable"); None when there is none."""
    from gmn.optim import load_optimizer, shipped_optimizer

    env = os.environ.get("GMN_LEARNED_OPTIMIZER")
    path = Path(env) if env else shipped_optimizer(channels, width, editable=True)
    if path is None:
        return None
    if path not in _LEARNED:
        _LEARNED[path] = load_optimizer(path)[0] if path.exists() else None
    return _LEARNED[path]


_LEARNED: dict = {}


def fit_image(path: str | None, *, hidden=DEFAULT_HIDDEN, layers=DEFAULT_LAYERS, resolution=None, steps=None,
              colour: str = "auto", callback=None, optimizer: str = "Adam") -> tuple[Session, str]:
    """Fit an uploaded image by the one fitting plan (`inr.tiles.plan_image`, also `python -m inr fit`'s): a
    photo becomes a grid of 32-px tile SIRENs at its working resolution (the longer side `resolution`, by
    default the photo's own up to 1024, aspect kept; gray photos as RGB tiles, so the colour editors apply);
    an image of at most 32 px stays one SIREN. Photo fits use every core, one fit at a time.
    optimizer: "Adam" or "fast (learned)" (single gray SIRENs only; Adam, with a notice, elsewhere).
    callback(step, psnr) is forwarded to the fit (the progress bar). Returns (session, notice)."""
    if not path or not isinstance(path, (str, os.PathLike)):
        raise gr.Error("upload an image (PNG, JPEG or WebP) first")
    if str(path).endswith(".safetensors"):
        raise gr.Error("that is an INR file: load it with 'Load INR' instead of fitting")
    if (colour or "auto") not in ("auto", "gray", "colour"):
        raise gr.Error(f"channels must be auto, gray or colour, got {colour!r}")
    if optimizer not in FIT_OPTIMIZERS:
        raise gr.Error(f"unknown optimizer {optimizer!r}: choose {' or '.join(FIT_OPTIMIZERS)}")
    res = None if resolution in (None, "", "auto", 0) else number(resolution, "training resolution", 8,
                                                                  MAX_PHOTO_SIZE, integer=True)
    hidden = number(hidden, "hidden width", 4, MAX_HIDDEN, integer=True)
    layers = number(layers, "sine layers", 1, MAX_LAYERS, integer=True)
    steps = None if steps in (None, "", 0) else number(steps, "fit steps", 1, 5000, integer=True)
    channels = {"auto": None, "gray": 1, "colour": 3}[colour or "auto"]
    img, notice = read_image(path, channels)
    h0, w0 = img.shape[:2]
    if min(h0, w0) < MIN_SIDE:  # a SIREN fitted to a few pixels reports a high PSNR and renders stripes between them
        raise gr.Error(f"{Path(path).name} is {w0}×{h0} px; the app fits images of at least {MIN_SIDE} px a side")
    notices = [notice] if notice else []
    try:  # the one plan of the app and the CLIs: grid, recipe, channels, notices
        plan = plan_image(h0, w0, img.shape[-1], size=res, requested_channels=channels)
    except TileGridError as e:
        raise error(e) from None
    grid, recipe, c = plan.grid, plan.recipe.replace(steps=steps), plan.channels
    notices += plan.notices
    arch = SirenArch(hidden=hidden, layers=layers, dim_out=c)
    target = plan.target(img)
    used, net = "Adam", None
    if optimizer != "Adam":
        if not grid.is_single:
            notices.append("photos are fitted as tiles with Adam (the recipe the colour editors were trained on); "
                           "the learned optimizer fits single gray SIRENs only")
        else:
            net = _learned_optimizer(c, hidden)
            if net is None:
                notices.append(f"no learned optimizer is installed for {'gray' if c == 1 else 'colour'} images at "
                               f"width {hidden} whose INRs the editors still edit (BENCHMARKS.md, 'Fitting speed'); "
                               "fitted with Adam")
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
        # every core, one fit at a time: the tiles stream through one worker thread per core (each with one
        # intra-op thread, inr.fit.fit_streamed); a second fit waits here for the first
        workers = choose_threads(None if grid.count >= 2 * FIT_GROUP else 0)
        with _FIT_LOCK:
            tiled = fit_photo(target, arch, grid, recipe, callback=callback, workers=workers)
        params, fit_psnr, seconds = tiled.params, tiled.psnr, tiled.seconds
    if grid.is_single:
        photo = target
    else:
        photo = torch.from_numpy(np.ascontiguousarray(np.repeat(img, c // img.shape[-1], -1)))
    if max(photo.shape[:2]) > MAX_DISPLAY:  # kept for the side-by-side view: at most the largest display
        s = MAX_DISPLAY / max(photo.shape[:2])
        photo = resize(photo, (max(1, round(photo.shape[0] * s)), max(1, round(photo.shape[1] * s))))
    photo = (photo.clamp(0, 1) * 255).round().to(torch.uint8)  # uint8: a 1024² photo is 3 MB per session
    session = Session.new(params, arch, grid, Path(path).name, psnr=fit_psnr, photo=photo, notices=notices)
    session.fit = {"seconds": seconds, "optimizer": used, "steps": recipe.steps}
    return session, "; ".join(notices)


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


def check_work(arch: SirenArch, grid: TileGrid, name: str) -> None:
    """Refuse an INR whose edits or renders would cost more than the app allows any one request (module doc)."""
    h, w = grid.image_size
    n = grid.count * arch.num_params
    if max(h, w) > MAX_WORKING:
        raise gr.Error(f"{name} declares a working resolution of {w}×{h}; the app edits INRs up to "
                       f"{MAX_WORKING} px on the longer side")
    if grid.count > MAX_TILES or n > MAX_PARAMS:
        raise gr.Error(f"{name} holds {grid.count} SIREN(s) with {n:,} parameters; the app edits at most "
                       f"{MAX_TILES} tiles and {MAX_PARAMS:,} parameters")
    if arch.hidden > MAX_HIDDEN or arch.layers > MAX_LAYERS or arch.dim_in != 2 or arch.dim_out not in (1, 3):
        raise gr.Error(f"{name} is a {'→'.join(map(str, arch.dims))} SIREN; the app edits image INRs (2 inputs, "
                       f"1 or 3 channels) of at most {MAX_LAYERS} sine layers of width {MAX_HIDDEN}")


def load_inr_file(path, source: str | None = None) -> Session:
    """A session from an INR .safetensors file (never unpickled), within the work bounds (module doc)."""
    if not path or not isinstance(path, (str, os.PathLike)):
        raise gr.Error("upload an INR .safetensors file first")
    name = Path(path).name
    try:
        inr = load_inr(path, allow_stack=False)
    except InrError as e:
        raise error(e) from None
    notices = []
    grid = inr.grid
    if grid is None:
        grid = TileGrid.single(64)
        notices.append("the file gives no square image size for its SIREN: shown and edited at 64×64")
    check_work(inr.arch, grid, name)
    psnr = inr.meta.get("psnr")
    ok = isinstance(psnr, (int, float)) and not isinstance(psnr, bool) and np.isfinite(psnr)
    return Session.new(inr.params, inr.arch, grid, source or name, psnr=float(psnr) if ok else None, notices=notices)


def load_example(name: str) -> Session:
    if name not in example_names():
        raise gr.Error(f"unknown example {name!r}; choose one of {', '.join(example_names())}")
    return load_inr_file(EXAMPLES / f"{name}.safetensors", source=f"example {name}")
