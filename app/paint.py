"""The Paint section's input: a `gr.ImageEditor` value (from the browser: numpy arrays; from the API: file
references) → the mask and colours a paint editor takes. Anything malformed is one readable line.

The painted layers' alpha is the mask; their own colours (alpha-composited, top layer last) are the target
colours. The background and the composite are not needed (and may be None)."""

from __future__ import annotations

import io
from pathlib import Path

import gradio as gr
import numpy as np
import torch
from torch import Tensor

MAX_LAYER_SIDE = 4096
MAX_LAYERS = 16


def _decode(item, what: str) -> np.ndarray:
    """One layer: a numpy array, a PIL image or a Gradio file reference ({"path": ...} inside Gradio's upload
    folder, where Gradio put the request's files; no other path is read)."""
    from PIL import Image

    if isinstance(item, np.ndarray):
        arr = item
    else:
        if isinstance(item, dict) and isinstance(item.get("path"), str):
            item = Path(item["path"])
            if not _in_upload_folder(item):
                raise gr.Error(f"{what} is not an uploaded file")
        if isinstance(item, Image.Image):
            im = item
        elif isinstance(item, Path):
            try:
                data = Path(item).read_bytes()
                im = Image.open(io.BytesIO(data))
                if im.size[0] > MAX_LAYER_SIDE or im.size[1] > MAX_LAYER_SIDE:
                    raise gr.Error(f"{what} is {im.size[0]}×{im.size[1]}; at most {MAX_LAYER_SIDE} px a side")
                im.load()
            except gr.Error:
                raise
            except Exception:  # noqa: BLE001 - PIL raises many kinds for text, truncated or odd files
                raise gr.Error(f"{what} is not a readable image (not a PNG, or truncated)") from None
        else:
            raise gr.Error(f"{what} must be an image, got {type(item).__name__}")
        arr = np.asarray(im.convert("RGBA"))
    if arr.ndim == 2:
        arr = np.stack([arr, arr, arr, np.full_like(arr, 255)], -1)
    if arr.ndim != 3 or arr.shape[-1] not in (3, 4) or min(arr.shape[:2]) < 1:
        raise gr.Error(f"{what} must be an (H, W, 3 or 4) image, got shape {tuple(arr.shape)}")
    if max(arr.shape[:2]) > MAX_LAYER_SIDE:
        raise gr.Error(f"{what} is {arr.shape[1]}×{arr.shape[0]}; at most {MAX_LAYER_SIDE} px a side")
    if arr.shape[-1] == 3:  # no alpha: nothing marks where was painted
        arr = np.concatenate([arr, np.zeros(arr.shape[:2] + (1,), arr.dtype)], -1)
    if arr.dtype != np.uint8:
        arr = np.clip(np.nan_to_num(arr.astype(np.float64)), 0, 255).astype(np.uint8)
    return arr


def _in_upload_folder(path: Path) -> bool:
    from gradio.utils import get_upload_folder

    try:
        return path.resolve().is_relative_to(Path(get_upload_folder()).resolve())
    except (OSError, ValueError):
        return False


def paint_inputs(value, size: int | tuple[int, int], channels: int) -> tuple[Tensor, Tensor]:
    """gr.ImageEditor value → mask (H, W, 1) in {0, 1} from the painted layers' alpha and colours (H, W, C) at
    size (H, W) (an int: square)."""
    from PIL import Image

    h, w = (size, size) if isinstance(size, int) else size
    if value is None:
        raise gr.Error("paint a stroke on the image first")
    if not isinstance(value, dict):
        raise gr.Error(f"the paint value must be an image-editor value (background, layers, composite), "
                       f"got {type(value).__name__}")
    layers = value.get("layers")
    if layers is None or (isinstance(layers, (list, tuple)) and not layers):
        raise gr.Error("paint a stroke on the image first")
    if not isinstance(layers, (list, tuple)):
        raise gr.Error(f"the paint value's layers must be a list of images, got {type(layers).__name__}")
    if len(layers) > MAX_LAYERS:
        raise gr.Error(f"at most {MAX_LAYERS} paint layers, got {len(layers)}")
    arrs = [_decode(layer, f"paint layer {i + 1}") for i, layer in enumerate(layers)]
    shape = arrs[0].shape[:2]
    if any(a.shape[:2] != shape for a in arrs):
        raise gr.Error("the paint layers differ in size")
    alpha = np.zeros(shape, np.float32)
    premul = np.zeros(shape + (3,), np.float32)  # colours × alpha, composited layer over layer
    for a in arrs:
        al = a[..., 3].astype(np.float32) / 255
        premul = premul * (1 - al[..., None]) + a[..., :3].astype(np.float32) / 255 * al[..., None]
        alpha = alpha + al * (1 - alpha)
    if alpha.max() <= 0:
        raise gr.Error("paint a stroke on the image first")
    a8 = Image.fromarray((alpha * 255).round().astype(np.uint8))
    m = np.asarray(a8.resize((w, h), Image.BILINEAR)) > 127
    if not m.any():
        m = np.asarray(a8.resize((w, h), Image.BOX)) > 0
    small_a = np.asarray(a8.resize((w, h), Image.BOX), np.float32) / 255
    small_c = np.stack([np.asarray(Image.fromarray((premul[..., k] * 255).round().astype(np.uint8))
                                   .resize((w, h), Image.BOX), np.float32) / 255 for k in range(3)], -1)
    rgb = np.where(small_a[..., None] > 0, small_c / np.maximum(small_a[..., None], 1e-6), 0).clip(0, 1)
    rgb = rgb.astype(np.float32)
    if channels == 1:
        rgb = (rgb @ np.array([0.299, 0.587, 0.114], np.float32))[..., None]
    return torch.from_numpy(m.astype(np.float32))[..., None], torch.from_numpy(np.ascontiguousarray(rgb))
