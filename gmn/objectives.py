"""Edit objectives: what an edit should turn an INR's image into (docs/DESIGN.md §5).

Every objective is a weighted per-pixel squared error

    ℓ(x) = w(x) · (f(x) − t(x))²

on the INR's own pixel grid, with a target image t and a weight map w:

- filters (dilate, erode, contrast, blur, sharpen, invert): t = filter(render(θ)), w = 1.
  Filters are scikit-image's: grayscale morphology with a 3×3 square (dilate/erode),
  CLAHE (`equalize_adapthist`; on the HSV value channel for colour), Gaussian blur
  (σ = 1 px), unsharp mask (radius 1, amount 1), and 1 − f.
- paint: a binary mask m and a colour c; t = m·c + (1 − m)·f_orig and w = m + λ(1 − m),
  which is exactly m(f − c)² + λ(1 − m)(f − f_orig)² for a binary mask.

Points: B random pixel centres per INR, re-drawn every call; for paint half inside the
mask and half outside.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

FILTERS = ("dilate", "erode", "contrast", "blur", "sharpen", "invert")
TASKS = FILTERS + ("paint",)
PAINT_LAMBDA = 1.0


def pixel_weight(mask: Tensor | None, lam: float, like: Tensor) -> Tensor:
    """The per-pixel (or per-point) weight of the objective, computed here and nowhere else:
    w = m + λ(1 − m) for a paint mask m (..., 1), and w = 1 (shaped like `like`[..., :1]) without one."""
    if mask is None:
        return torch.ones_like(like[..., :1])
    return mask + lam * (1 - mask)


def _filter_one(img: np.ndarray, task: str) -> np.ndarray:
    """img: (H, W, C) float in [0, 1] → filtered (H, W, C) float in [0, 1]."""
    from skimage import exposure, filters, morphology

    gray = img.shape[-1] == 1
    if task in ("dilate", "erode"):
        op = morphology.dilation if task == "dilate" else morphology.erosion
        fp = morphology.footprint_rectangle((3, 3))
        out = np.stack([op(img[..., c], fp) for c in range(img.shape[-1])], -1)
    elif task == "contrast":
        k = max(8, min(img.shape[:2]) // 4)
        out = exposure.equalize_adapthist(img[..., 0] if gray else img, kernel_size=k, clip_limit=0.01)
        out = out[..., None] if gray else out
    elif task == "blur":  # per channel: skimage's channel_axis path misbehaves on (H, W, 1)
        chans = [filters.gaussian(img[..., c], sigma=1.0, preserve_range=True) for c in range(img.shape[-1])]
        out = np.stack(chans, -1)
    elif task == "sharpen":
        chans = [filters.unsharp_mask(img[..., c], radius=1.0, amount=1.0, preserve_range=True)
                 for c in range(img.shape[-1])]
        out = np.stack(chans, -1)
    elif task == "invert":
        out = 1.0 - img
    else:
        raise ValueError(f"unknown filter {task!r}; choose one of {', '.join(FILTERS)}")
    return np.clip(out, 0.0, 1.0).astype(np.float32)


def filter_images(images: Tensor, task: str) -> Tensor:
    """Apply a filter edit to (N, H, W, C) images in [0, 1]."""
    if task not in FILTERS:
        raise ValueError(f"unknown filter {task!r}; choose one of {', '.join(FILTERS)}")
    arr = images.detach().cpu().clamp(0, 1).numpy().astype(np.float64)
    return torch.from_numpy(np.stack([_filter_one(a, task) for a in arr]))


@dataclass
class EditTarget:
    """A weighted squared-error objective on a pixel grid."""

    target: Tensor  # (N, H, W, C) desired image
    weight: Tensor  # (N, H, W, 1) per-pixel weight
    mask: Tensor | None = None  # (N, H, W, 1) paint mask (None for filters)
    kind: str | None = None  # "filter" (w = 1) or "paint" (w = m + λ(1 − m)); default: "paint" iff a mask is given
    lam: float = PAINT_LAMBDA  # paint: weight of the preservation term outside the mask

    def __post_init__(self) -> None:
        if self.kind is None:
            self.kind = "filter" if self.mask is None else "paint"
        if self.kind not in ("filter", "paint"):
            raise ValueError(f"unknown objective kind {self.kind!r}; choose 'filter' or 'paint'")
        if (self.kind == "paint") != (self.mask is not None):
            raise ValueError("a paint objective has a mask and a filter objective has none")

    @property
    def shape(self) -> tuple[int, int, int, int]:
        return tuple(self.target.shape)

    def flat(self) -> tuple[Tensor, Tensor]:
        """(N, H*W, C) target and (N, H*W, 1) weight, row-major like `inr.siren.coordinate_grid`."""
        n, h, w, c = self.target.shape
        return self.target.reshape(n, h * w, c), self.weight.reshape(n, h * w, 1)

    def weight_at(self, mask_pts: Tensor | None, like: Tensor) -> Tensor:
        """The weight (N, B, 1) at sampled points with mask values `mask_pts` (N, B, 1) (None for filters),
        with this objective's λ: the same w as `weight`, gathered at the points."""
        return pixel_weight(mask_pts if self.kind == "paint" else None, self.lam, like)

    def error(self, images: Tensor) -> Tensor:
        """Per-INR weighted MSE (N,) of (N, H, W, C) images against this objective."""
        return (self.weight * (images - self.target).pow(2)).mean(dim=(1, 2, 3))

    def to(self, device) -> EditTarget:
        m = None if self.mask is None else self.mask.to(device)
        return EditTarget(self.target.to(device), self.weight.to(device), m, self.kind, self.lam)

    def select(self, index) -> EditTarget:
        m = None if self.mask is None else self.mask[index]
        return EditTarget(self.target[index], self.weight[index], m, self.kind, self.lam)

    def map(self, fn) -> EditTarget:
        """The same objective with `fn` applied to each (N, H, W, ·) map (e.g. cutting tile windows)."""
        m = None if self.mask is None else fn(self.mask)
        return EditTarget(fn(self.target), fn(self.weight), m, self.kind, self.lam)



def filter_target(images: Tensor, task: str) -> EditTarget:
    """Objective of a filter edit for (N, H, W, C) renders."""
    t = filter_images(images, task).to(images)  # the renders' dtype and device
    return EditTarget(t, pixel_weight(None, PAINT_LAMBDA, t), None, "filter")


def paint_target(images: Tensor, mask: Tensor, colour: Tensor, lam: float = PAINT_LAMBDA) -> EditTarget:
    """Objective of a painted edit: mask (N, H, W, 1) in {0, 1}, colour (N, H, W, C) or (N, C)."""
    if colour.dim() == 2:
        colour = colour[:, None, None, :].expand_as(images)
    mask = (mask > 0.5).to(images.dtype)
    target = mask * colour + (1 - mask) * images
    return EditTarget(target, pixel_weight(mask, lam, target), mask, "paint", float(lam))


# synthetic paint for training


def random_paint(n: int, h: int, w: int, channels: int, *, generator: np.random.Generator) -> tuple[Tensor, Tensor]:
    """Synthetic masks and colours: 1-3 brush strokes or blobs per image covering roughly
    5-40% of it, each image one colour (gray level or RGB). Returns mask (n, h, w, 1), colour (n, C)."""
    from skimage import draw, morphology

    masks = np.zeros((n, h, w), dtype=bool)
    for i in range(n):
        for _ in range(generator.integers(1, 4)):
            if generator.random() < 0.5:  # a stroke: a thick polyline
                pts = generator.random((generator.integers(2, 5), 2)) * [h - 1, w - 1]
                line = np.zeros((h, w), dtype=bool)
                for (r0, c0), (r1, c1) in zip(pts[:-1], pts[1:]):
                    rr, cc = draw.line(int(r0), int(c0), int(r1), int(c1))
                    line[rr, cc] = True
                radius = int(generator.integers(1, max(2, min(h, w) // 10) + 1))
                masks[i] |= morphology.dilation(line, morphology.disk(radius))
            else:  # a blob: a rotated ellipse
                r, c = generator.random(2) * [h, w]
                rr, cc = draw.ellipse(
                    r, c, generator.uniform(0.08, 0.3) * h, generator.uniform(0.08, 0.3) * w,
                    shape=(h, w), rotation=generator.uniform(-np.pi, np.pi),
                )
                masks[i, rr, cc] = True
    colour = generator.random((n, channels)).astype(np.float32)
    return torch.from_numpy(masks[..., None].astype(np.float32)), torch.from_numpy(colour)


def sample_points(
    n: int, h: int, w: int, b: int, *, generator: torch.Generator | None = None, mask: Tensor | None = None,
    device: torch.device | str | None = None,
) -> Tensor:
    """B random pixel indices per INR (N, B) into the row-major H×W grid, without repetition, on `device`
    (default: the mask's, else the CPU); drawn on the CPU from `generator`, so the same on every device.

    With a mask (N, H, W, 1), half the points are drawn inside the mask and half outside
    (as far as each side has pixels)."""
    hw = h * w
    b = min(b, hw)
    device = device if device is not None else (mask.device if mask is not None else "cpu")
    if mask is None:
        keys = torch.rand(n, hw, generator=generator)
        return keys.argsort(dim=1)[:, :b].to(device)
    inside = (mask.reshape(n, hw) > 0.5).cpu()
    keys = torch.rand(n, hw, generator=generator)
    n_in = torch.minimum(inside.sum(1), torch.tensor(b // 2))
    n_in = torch.maximum(n_in, b - (~inside).sum(1))  # too few outside pixels: take more inside
    # sort inside pixels first (by their random key), then outside ones; take n_in + (b - n_in)
    order_in = torch.where(inside, keys, keys + 2).argsort(dim=1)
    order_out = torch.where(~inside, keys, keys + 2).argsort(dim=1)
    ar = torch.arange(b)
    take_in = ar[None, :] < n_in[:, None]
    idx_in = order_in[:, :b]
    idx_out = torch.gather(order_out, 1, (ar[None, :] - n_in[:, None]).clamp_min(0))
    return torch.where(take_in, idx_in, idx_out).to(device)
