"""Colour maps and figure furniture for the app's heat maps: every map is shown with a title and a colour bar
that says what its colours mean (uint8 RGB arrays, drawn with PIL's built-in font)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def heat(x: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] → uint8 RGB with a black-red-yellow-white ramp."""
    x = np.clip(x, 0, 1)
    rgb = np.stack([np.clip(3 * x, 0, 1), np.clip(3 * x - 1, 0, 1), np.clip(3 * x - 2, 0, 1)], -1)
    return (rgb * 255).round().astype(np.uint8)


def viridis(x: np.ndarray) -> np.ndarray:
    """(H, W) in [0, 1] → uint8 RGB, a dark-blue → green → yellow ramp (close to viridis)."""
    stops = np.array([[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64)
    t = np.clip(x, 0, 1) * (len(stops) - 1)
    i = np.minimum(t.astype(int), len(stops) - 2)
    f = (t - i)[..., None]
    return (stops[i] * (1 - f) + stops[i + 1] * f).round().astype(np.uint8)


def diverging_unit(v: np.ndarray) -> np.ndarray:
    """(H, W) in [-1, 1] → uint8 RGB, blue (−1) white (0) red (+1)."""
    v = np.clip(v, -1, 1)[..., None]
    white = np.ones(v.shape[:-1] + (3,))
    red, blue = np.array([0.8, 0.1, 0.1]), np.array([0.1, 0.2, 0.8])
    rgb = np.where(v > 0, white * (1 - v) + red * v, white * (1 + v) - blue * v)
    return (rgb * 255).round().astype(np.uint8)


def robust_scale(x: np.ndarray) -> float:
    """The 98th percentile of |x| (a few outliers dominate the g features), else its max, else 1."""
    return float(np.quantile(np.abs(x), 0.98)) or float(np.abs(x).max()) or 1.0


def nice_ceiling(v: float) -> float:
    """The smallest of 1, 2, 5 × 10^k at least v (v > 0): a colour bar's round top value."""
    if not v > 0:
        return 1e-3
    k = np.floor(np.log10(v))
    for m in (1, 2, 5, 10):
        if m * 10**k >= v * (1 - 1e-9):
            return float(m * 10**k)
    return float(10 ** (k + 1))


def _font():
    from PIL import ImageFont

    return ImageFont.load_default()


def text_row(width: int, text: str, height: int = 14) -> np.ndarray:
    """A white strip `width` wide with `text` in black (cut at the right edge)."""
    from PIL import Image, ImageDraw

    im = Image.new("RGB", (max(1, width), height), (255, 255, 255))
    ImageDraw.Draw(im).text((2, 1), text, fill=(0, 0, 0), font=_font())
    return np.asarray(im)


def colour_bar(cmap: Callable[[np.ndarray], np.ndarray], height: int, lo: str, hi: str, *, signed: bool = False,
               width: int = 12) -> np.ndarray:
    """A vertical colour bar (top: hi, bottom: lo) with its two labels to the right."""
    from PIL import Image, ImageDraw

    t = np.linspace(1, -1 if signed else 0, max(height, 2))[:, None].repeat(width, 1)
    bar = cmap(t)
    label_w = 8 + 6 * max(len(lo), len(hi), 1)
    im = Image.new("RGB", (width + label_w, bar.shape[0]), (255, 255, 255))
    im.paste(Image.fromarray(bar), (0, 0))
    d = ImageDraw.Draw(im)
    d.text((width + 3, 0), hi, fill=(0, 0, 0), font=_font())
    d.text((width + 3, max(0, bar.shape[0] - 12)), lo, fill=(0, 0, 0), font=_font())
    return np.asarray(im)


def _rgb(img: np.ndarray) -> np.ndarray:
    return np.repeat(img[..., None], 3, -1) if img.ndim == 2 else img


def figure(img: np.ndarray, title: str, bar: np.ndarray | None = None, note: str | None = None) -> np.ndarray:
    """`img` with a title line above, an optional colour bar at its right and a note line below."""
    img = _rgb(img)
    if bar is not None:
        h = max(img.shape[0], bar.shape[0])
        pad = lambda a: np.pad(a, ((0, h - a.shape[0]), (0, 0), (0, 0)), constant_values=255)  # noqa: E731
        img = np.concatenate([pad(img), np.full((h, 6, 3), 255, np.uint8), pad(bar)], 1)
    rows = [text_row(img.shape[1], title), img]
    if note:
        rows.append(text_row(img.shape[1], note))
    return np.concatenate(rows, 0)
