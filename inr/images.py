"""Reading user images safely and preparing them for fitting.

Aspect ratio: one SIREN's domain is the square [-1, 1]², so an image fitted as one INR is first
centre-cropped to a square (`aspect="crop"`, the default: nothing is distorted, the borders of
the longer side are cut) or resized to a square ignoring its aspect (`aspect="stretch"`), then
resized with Lanczos filtering. A tiled photo (`inr.tiles`) keeps its aspect ratio: its working
size is proportional to the image (`inr.tiles.working_size`), so nothing is cut.
"""

from __future__ import annotations

import io
import os
import stat
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from .errors import ImageError

MAX_PIXELS = 50_000_000  # decompression-bomb limit: refuse images above 50 megapixels


def load_image(source: str | os.PathLike | bytes, *, channels: int | None = None, max_pixels: int = MAX_PIXELS):
    """Read an image file into a float32 array (H, W, C) in [0, 1].

    channels: 1 (grayscale), 3 (RGB) or None (grayscale stays grayscale, anything else RGB).
    Transparent pixels are composited on white. Raises ImageError with a one-line reason.
    """
    from PIL import Image, UnidentifiedImageError

    name = "image" if isinstance(source, bytes) else Path(source).name
    try:
        if not isinstance(source, bytes) and not stat.S_ISREG(os.stat(source).st_mode):
            raise ImageError(f"{name} is not a regular file (a folder, FIFO or device is not an image)")
        data = source if isinstance(source, bytes) else Path(source).read_bytes()
    except OSError as e:
        raise ImageError(f"cannot read {name}: {e.strerror or e}") from None
    if not data:
        raise ImageError(f"{name} is empty (0 bytes)")
    with warnings.catch_warnings():
        warnings.simplefilter("error", Image.DecompressionBombWarning)
        try:
            im = Image.open(io.BytesIO(data))
            w, h = im.size
            if w * h > max_pixels:
                raise ImageError(
                    f"{name} is {w}×{h} = {w * h / 1e6:.0f} megapixels, over the {max_pixels / 1e6:g} MP limit"
                )
            im.load()
        except ImageError:
            raise
        except (UnidentifiedImageError, Image.DecompressionBombError, Image.DecompressionBombWarning) as e:
            if isinstance(e, UnidentifiedImageError):
                raise ImageError(f"{name} is not an image PIL can read (PNG, JPEG, WebP, ...)") from None
            raise ImageError(f"{name} is too large (decompression-bomb limit)") from None
        except (OSError, SyntaxError, ValueError) as e:
            raise ImageError(f"{name} is truncated or corrupt: {e}") from None
    if im.mode in ("RGBA", "LA", "PA") or (im.mode == "P" and "transparency" in im.info):
        rgba = im.convert("RGBA")
        white = Image.new("RGBA", rgba.size, (255, 255, 255, 255))
        im = Image.alpha_composite(white, rgba)
    gray_source = im.mode in ("1", "L", "LA", "I", "I;16", "F")
    want = channels or (1 if gray_source else 3)
    if want not in (1, 3):
        raise ImageError(f"channels must be 1 or 3, got {want}")
    if im.mode in ("I", "I;16", "F"):
        arr = np.asarray(im, dtype=np.float64)  # float64: the span of float32 extremes would overflow
        if not np.isfinite(arr).all():  # a float TIFF: NaN would fit as black, inf as "PSNR nan"
            raise ImageError(f"{name} has NaN or infinite pixel values")
        span = arr.max() - arr.min()
        arr = ((arr - arr.min()) / span if span > 0 else np.zeros_like(arr)).astype(np.float32)
        arr = arr[..., None] if want == 1 else np.repeat(arr[..., None], 3, -1)
    else:
        arr = np.asarray(im.convert("L" if want == 1 else "RGB"), dtype=np.float32) / 255.0
        if want == 1:
            arr = arr[..., None]
    return arr


def to_square(img: np.ndarray, size: int, *, aspect: str = "crop") -> Tensor:
    """(H, W, C) array in [0, 1] → (size, size, C) tensor; see the module doc for `aspect`."""
    if size < 1:
        raise ValueError(f"size must be positive, got {size}")
    return to_size(img, (size, size), aspect=aspect)


def to_size(img: np.ndarray, size: tuple[int, int], *, aspect: str = "crop") -> Tensor:
    """(H, W, C) array in [0, 1] → (h, w, C) tensor (Lanczos). aspect "crop" first centre-crops to the
    aspect ratio of (h, w); "stretch" resizes as is (a tiled photo's working size keeps its aspect, so
    nothing is cut or distorted)."""
    from PIL import Image

    if aspect not in ("crop", "stretch"):
        raise ValueError(f"aspect must be 'crop' or 'stretch', got {aspect!r}")
    th, tw = size
    if th < 1 or tw < 1:
        raise ValueError(f"size must be positive, got {tw}×{th}")
    h, w = img.shape[:2]
    if aspect == "crop" and h * tw != w * th:
        if h * tw > w * th:  # too tall: cut rows
            nh = max(1, round(w * th / tw))
            top = (h - nh) // 2
            img = img[top : top + nh]
        else:
            nw = max(1, round(h * tw / th))
            left = (w - nw) // 2
            img = img[:, left : left + nw]
    if img.shape[0] != th or img.shape[1] != tw:
        chans = [
            np.asarray(Image.fromarray(img[..., c].astype(np.float32)).resize((tw, th), Image.LANCZOS))
            for c in range(img.shape[2])
        ]
        img = np.clip(np.stack(chans, -1), 0.0, 1.0)
    return torch.from_numpy(np.ascontiguousarray(img, dtype=np.float32))


def save_png(img: Tensor | np.ndarray, path: str | os.PathLike) -> None:
    """Write an (H, W, C) image in [0, 1] as an 8-bit PNG, atomically."""
    from PIL import Image

    arr = img.detach().cpu().numpy() if isinstance(img, Tensor) else np.asarray(img)
    arr = (np.clip(arr, 0, 1) * 255).round().astype(np.uint8)
    arr = arr[..., 0] if arr.shape[-1] == 1 else arr
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    Image.fromarray(arr).save(tmp, format="PNG")
    os.replace(tmp, path)


def to_uint8(img: Tensor) -> np.ndarray:
    """(H, W, C) tensor in [0, 1] → uint8 array (H, W) for gray or (H, W, 3)."""
    arr = (img.detach().cpu().clamp(0, 1) * 255).round().to(torch.uint8).numpy()
    return arr[..., 0] if arr.shape[-1] == 1 else arr
