"""Tiled INRs: a photo as a grid of R×C small SIRENs of one architecture (docs/DESIGN.md, "Tiled INRs").

A small SIREN cannot hold a photo; a grid of them can, and each tile is exactly what the
editors were trained on: a 32×32 window seen on its own pixel-centre grid on [-1, 1]².

Geometry (`TileGrid`), per axis of an image of H pixels, tile side T, overlap O:

- n = ceil((H - T) / (T - O)) + 1 tiles (1 where H = T), starting at round(linspace(0, H - T, n)),
  so neighbours share at least O pixels and the last tile ends at H exactly.
- Tile k covers the native pixel range [s_k, s_k + T); its SIREN's local coordinate at native
  position p (in pixels, continuous) is (p - s_k) / T · 2 - 1, so at native resolution it sees
  the pixel centres (i + 0.5) / T · 2 - 1 of its own T×T window, as a zoo patch does.
- Blending: across an overlap of width o with a neighbour, the tile's weight ramps as
  sin²(π/2 · t), t the distance into the overlap over o; the neighbour's as cos² of the same:
  they sum to one (a partition of unity), so the render is continuous. The 2-D weight is the
  product of the row and column weights, renormalised by the sum over tiles.
- A 1×1 grid (tile = H = W, no overlap) is a plain single INR.

The tiles' parameters are one stack (leading axis N = R·C, row-major), so fitting, decomposing
and editing all tiles is one batched computation.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from .fit import TILE_RECIPE, FitRecipe, fit_streamed, psnr
from .siren import RENDER_CHUNK, Params, SirenArch, evaluate, init_params, select

TILE = 32  # the colour editors' training patch side
OVERLAP = 4  # pixels shared by neighbouring tiles: 256 = 32 + 8 · 28, a 9×9 grid
MAX_SIDE = 4096  # largest working resolution a file may declare (the app fits up to 1024)
FIT_GROUP = 16  # tiles fitted together (see fit_photo)


class TileGridError(ValueError):
    """A tile grid that cannot exist (one-line message)."""


def _starts(length: int, tile: int, overlap: int) -> list[int]:
    if length == tile:
        return [0]
    n = math.ceil((length - tile) / (tile - overlap)) + 1
    return [int(s) for s in np.round(np.linspace(0, length - tile, n))]


@dataclass(frozen=True)
class TileGrid:
    """Where the tiles of an INR lie on its image: `image_size` (H, W) pixels at the working
    resolution, square tiles of `tile` pixels, neighbours sharing at least `overlap` pixels."""

    image_size: tuple[int, int]
    tile: int
    overlap: int = 0

    def __post_init__(self) -> None:
        h, w = self.image_size
        for name, v in (("image height", h), ("image width", w), ("tile", self.tile)):
            if not isinstance(v, (int, np.integer)) or not 1 <= v <= MAX_SIDE:
                raise TileGridError(f"{name} must be an integer between 1 and {MAX_SIDE}, got {v!r}")
        if not isinstance(self.overlap, (int, np.integer)) or not 0 <= self.overlap < self.tile:
            raise TileGridError(f"overlap must be an integer from 0 to tile - 1 = {self.tile - 1}, "
                                f"got {self.overlap!r}")
        if self.tile > min(h, w):
            raise TileGridError(f"tile of {self.tile} px is larger than the {w}×{h} image")
        object.__setattr__(self, "image_size", (int(h), int(w)))

    @classmethod
    def single(cls, size: int | tuple[int, int]) -> TileGrid:
        """The 1×1 grid of a plain INR fitted at `size`."""
        h, w = (size, size) if isinstance(size, int) else size
        if h != w:
            raise TileGridError(f"a single INR covers a square image, got {w}×{h}")
        return cls((h, w), h, 0)

    @classmethod
    def for_image(cls, size: int | tuple[int, int], tile: int = TILE, overlap: int = OVERLAP) -> TileGrid:
        """Tiles of `tile` px over an image of `size`; one INR where the image is no larger than a tile."""
        h, w = (size, size) if isinstance(size, int) else size
        if tile <= 0 or max(h, w) <= tile:
            return cls.single((h, w))
        return cls((h, w), tile, overlap)

    @property
    def row_starts(self) -> list[int]:
        return _starts(self.image_size[0], self.tile, self.overlap)

    @property
    def col_starts(self) -> list[int]:
        return _starts(self.image_size[1], self.tile, self.overlap)

    @property
    def shape(self) -> tuple[int, int]:
        """(R, C) tiles."""
        return len(self.row_starts), len(self.col_starts)

    @property
    def count(self) -> int:
        r, c = self.shape
        return r * c

    @property
    def is_single(self) -> bool:
        return self.count == 1

    def windows(self) -> list[tuple[int, int]]:
        """Top-left pixel (row, col) of every tile, row-major."""
        return [(r, c) for r in self.row_starts for c in self.col_starts]

    def cut(self, image: Tensor) -> Tensor:
        """The tiles' windows of an image (..., H, W, C) → (..., N, T, T, C)."""
        t = self.tile
        if tuple(image.shape[-3:-1]) != self.image_size:
            raise TileGridError(f"image is {tuple(image.shape[-3:-1])}, the grid expects {self.image_size}")
        return torch.stack([image[..., r : r + t, c : c + t, :] for r, c in self.windows()], -4)

    def touched(self, mask: Tensor) -> Tensor:
        """Indices of the tiles whose window holds any pixel of `mask` (H, W, 1) > 0.5: (k,) long."""
        win = self.cut(mask.float()).flatten(1)  # (N, T·T·1)
        return torch.nonzero((win > 0.5).any(1)).flatten()

    def to_dict(self) -> dict:
        r, c = self.shape
        return {"image_size": list(self.image_size), "tile": self.tile, "overlap": self.overlap, "rows": r, "cols": c}

    @classmethod
    def from_dict(cls, d: dict) -> TileGrid:
        try:
            size = d["image_size"]
            if not isinstance(size, (list, tuple)) or len(size) != 2:
                raise TileGridError(f"grid image_size must be [H, W], got {size!r}")
            grid = cls((size[0], size[1]), d["tile"], d.get("overlap", 0))
        except KeyError as e:
            raise TileGridError(f"grid metadata lacks {e.args[0]!r}") from None
        if ("rows" in d and d["rows"] != grid.shape[0]) or ("cols" in d and d["cols"] != grid.shape[1]):
            raise TileGridError(f"grid says {d.get('rows')}×{d.get('cols')} tiles, but its sizes make "
                                f"{grid.shape[0]}×{grid.shape[1]}")
        return grid

    def describe(self) -> str:
        """One line for the user; sizes width×height as image tools write them (tiles: columns×rows)."""
        r, c = self.shape
        h, w = self.image_size
        if self.is_single:
            return f"one SIREN over {w}×{h} px"
        return f"{c}×{r} tiles of {self.tile}² px (overlap {self.overlap} px) over {w}×{h} px"

    # rendering

    def _axis(self, length: int, starts: list[int], out: int):
        """Per tile along one axis: output pixel indices (k, m), local coords (k, m), weights (k, m)."""
        t = self.tile
        p = (torch.arange(out, dtype=torch.float64) + 0.5) / out * length  # native position of each output pixel
        s = torch.tensor(starts, dtype=torch.float64)
        inside = (p[None] >= s[:, None]) & (p[None] < s[:, None] + t)  # (k, out)
        first = inside.float().argmax(1)
        m = int(inside.sum(1).max())
        raw = first[:, None] + torch.arange(m)[None]
        idx = raw.clamp_max(out - 1)  # (k, m)
        pos = p[idx]
        local = (pos - s[:, None]) / t * 2 - 1
        # zero on the padding, also where the clamp repeats the last pixel (it must not count twice)
        w = ((pos >= s[:, None]) & (pos < s[:, None] + t) & (raw < out)).double()
        for k in range(len(starts)):
            if k > 0:  # ramp up across the overlap with the previous tile
                o = starts[k - 1] + t - starts[k]
                if o > 0:
                    w[k] *= torch.sin(math.pi / 2 * ((pos[k] - s[k]) / o).clamp(0, 1)).pow(2)
            if k < len(starts) - 1:  # ramp down across the overlap with the next tile
                o = starts[k] + t - starts[k + 1]
                if o > 0:
                    w[k] *= torch.sin(math.pi / 2 * ((s[k] + t - pos[k]) / o).clamp(0, 1)).pow(2)
        return idx, local, w

    def layout(self, size: tuple[int, int], dtype=torch.float32):
        """Where each tile lands in an output of `size` (H', W'): flat pixel indices (N, M), local
        coordinates (N, M, 2) and blend weights (N, M), M the largest per-tile window. Weights are
        zero on the padding of smaller windows and sum to one over tiles at every output pixel."""
        oh, ow = size
        ri, rl, rw = self._axis(self.image_size[0], self.row_starts, oh)
        ci, cl, cw = self._axis(self.image_size[1], self.col_starts, ow)
        R, C = len(ri), len(ci)
        mr, mc = ri.shape[1], ci.shape[1]
        flat = (ri[:, None, :, None] * ow + ci[None, :, None, :]).reshape(R * C, mr * mc)
        local = torch.stack(torch.broadcast_tensors(rl[:, None, :, None], cl[None, :, None, :]), -1)
        local = local.reshape(R * C, mr * mc, 2)
        weight = (rw[:, None, :, None] * cw[None, :, None, :]).reshape(R * C, mr * mc)
        total = torch.zeros(oh * ow, dtype=torch.float64).index_add_(0, flat.flatten(), weight.flatten())
        weight = weight / total[flat].clamp_min(1e-12)
        return flat, local.to(dtype), weight.to(dtype)


def render_tiles(
    params: Params,
    arch: SirenArch,
    grid: TileGrid,
    size: int | tuple[int, int] | None = None,
    *,
    clamp: bool = True,
    chunk: int = RENDER_CHUNK,
) -> Tensor:
    """Render a tiled INR (params: N = grid.count tiles) at any resolution: (1, H', W', C).

    `size` defaults to the grid's image size. Tiles are evaluated in groups of about `chunk`
    points, so memory stays bounded at any resolution and the activations in cache."""
    size = grid.image_size if size is None else ((size, size) if isinstance(size, int) else tuple(size))
    n = params[0].shape[0]
    if n != grid.count:
        raise TileGridError(f"the grid has {grid.shape[0]}×{grid.shape[1]} = {grid.count} tiles, "
                            f"the parameters hold {n} SIRENs")
    dtype, device = params[0].dtype, params[0].device
    flat, local, weight = grid.layout(size, dtype)
    flat, local, weight = flat.to(device), local.to(device), weight.to(device)
    oh, ow = size
    out = torch.zeros(oh * ow, arch.dim_out, dtype=dtype, device=device)
    per = max(1, chunk // local.shape[1])
    with torch.no_grad():
        for i in range(0, n, per):
            f = evaluate(select(params, slice(i, i + per)), arch, local[i : i + per])  # (k, M, C)
            out.index_add_(0, flat[i : i + per].flatten(), (f * weight[i : i + per, :, None]).reshape(-1, arch.dim_out))
    if clamp:
        out.clamp_(0.0, 1.0)
    return out.reshape(1, oh, ow, arch.dim_out)


@dataclass
class TiledFit:
    params: Params  # (N tiles) stacked SIREN parameters
    grid: TileGrid
    psnr: float  # of the blended render against the image, dB
    tile_psnr: Tensor  # (N,) per tile on its window
    steps: Tensor  # (N,) steps per tile until it reached the recipe's target
    seconds: float


def fit_photo(
    image: Tensor,
    arch: SirenArch,
    grid: TileGrid,
    recipe: FitRecipe = TILE_RECIPE,
    *,
    seed: int = 0,
    callback=None,
    progress: bool = False,
    workers: int = 1,
    device: torch.device | str = "cpu",
) -> TiledFit:
    """Fit an image (H, W, C) at the grid's resolution as its tiles by `recipe` (`inr.fit.fit_streamed`).

    Every tile's initialisation is drawn up front from `seed`; tiles stream through a working set of
    FIT_GROUP (fitting is memory-bound: groups of ≤ 16 tiles ran several times faster per step than one batch
    of 361), each leaving it the step it reaches the target, on `workers` threads. Tiles are independent, so
    the result does not depend on the grouping or the workers (up to float rounding; bitwise on one thread).
    callback(step, psnr) gets the whole photo's progress in the recipe's steps (0 .. steps - 1) and a (1,)
    tensor: the PSNR of the mean squared error over all tiles' windows of the best parameters so far (the
    final `psnr` is the blended render's). progress: a tqdm bar of the same."""
    if image.dim() != 3 or tuple(image.shape[:2]) != grid.image_size:
        raise TileGridError(f"image is {tuple(image.shape)}, the grid expects {grid.image_size} × C")
    t0 = time.perf_counter()
    tiles = grid.cut(image.to(device))  # (N, T, T, C)
    n = len(tiles)
    init = init_params(arch, n, generator=torch.Generator().manual_seed(seed))
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=recipe.steps, unit="step", desc=f"fit {grid.describe()}")
    last = [-1]

    def report(done: float, mse: Tensor) -> bool | None:
        step = min(recipe.steps - 1, int(done * recipe.steps + 1e-9) - 1) if done < 1 else recipe.steps - 1
        whole = psnr(mse.mean()).reshape(1)  # (1,): the photo so far, not one tile
        if bar is not None:
            bar.update(step + 1 - bar.n)
            bar.set_postfix(psnr=f"{float(whole):.2f}")
        if callback is not None and step > last[0]:
            last[0] = step
            return callback(step, whole)
        return None

    use_report = callback is not None or bar is not None
    res = fit_streamed(tiles, arch, recipe, init=init, group=FIT_GROUP, workers=workers,
                       callback=report if use_report else None)
    if bar is not None:
        bar.close()
    whole = render_tiles(res.params, arch, grid)[0]
    mse = (whole - image.to(whole)).pow(2).mean()
    return TiledFit(res.params, grid, float(psnr(mse)), res.psnr, res.steps, time.perf_counter() - t0)


# the one fitting plan of the app, `python -m inr fit` and `python -m gmn fit`

PHOTO_SIZE = 256  # side of one large SIREN over a photo (`--tile 0`) when no size is given
MAX_PHOTO_SIZE = 1024  # longest working side: a photo larger than this is downscaled to it (with a notice)
PREVIEW_SIZE = 256  # longest side of a progressive fit's preview (`python -m inr fit --preview`)


def working_size(height: int, width: int, size: int | None = None, *, tile: int = TILE) -> tuple[int, int]:
    """Working resolution (H, W) of an image of height × width, keeping its aspect ratio.

    size=None: the image's own size (native resolution), downscaled so that its longer side is at most
    MAX_PHOTO_SIZE; images no larger than a tile on their shorter side keep that side, square (digits stay
    28×28). Given a size, the longer side is `size`. The shorter side is at least one tile."""
    if size is None:
        if min(height, width) <= tile:
            s = min(height, width)
            return s, s
        size = min(MAX_PHOTO_SIZE, max(height, width))
    if not 1 <= size <= MAX_PHOTO_SIZE:
        raise TileGridError(f"size must be between 1 and {MAX_PHOTO_SIZE}, got {size}")
    scale = size / max(height, width)
    short = min(height, width) * scale
    if short < min(tile, size):
        scale = min(tile, size) / min(height, width)
    h, w = (min(MAX_PHOTO_SIZE, max(1, round(height * scale))), min(MAX_PHOTO_SIZE, max(1, round(width * scale))))
    return h, w


def plan_fit(height: int, width: int, channels: int, *, size: int | None = None, tile: int = TILE,
             overlap: int = OVERLAP) -> tuple[TileGrid, FitRecipe]:
    """The grid and recipe that fit an image: tiles by TILE_RECIPE for photos; one SIREN by the zoo recipe
    for small gray images (digits, faces: the MNIST editors' distribution) and TILE_RECIPE for a small colour
    one (a colour tile); one large SIREN (tile=0 on a photo) by LARGE_RECIPE. `plan_image` adds the channels
    and the notices; the app and the CLIs call that."""
    from .fit import LARGE_RECIPE, ZOO_RECIPE

    small = min(height, width) <= max(tile, 0) if size is None else size <= tile
    if tile <= 0 or small:  # one SIREN over a square image
        grid = TileGrid.single(size or (min(height, width) if min(height, width) <= TILE else PHOTO_SIZE))
    else:
        grid = TileGrid.for_image(working_size(height, width, size, tile=tile), tile, overlap)
    if not grid.is_single:
        return grid, TILE_RECIPE
    side = grid.image_size[0]
    if side <= TILE:
        return grid, (TILE_RECIPE if channels == 3 else ZOO_RECIPE)
    return grid, LARGE_RECIPE


@dataclass(frozen=True)
class FitPlan:
    """Everything decided about fitting one image, in one place (`plan_image`): the grid, the recipe, the
    INR's channels, how the image is brought to the working size and what the user is told about it."""

    grid: TileGrid
    recipe: FitRecipe
    channels: int  # of the INR: a gray photo fitted as tiles becomes RGB (R = G = B)
    aspect: str  # "stretch" for tiles (the working size keeps the aspect); "crop" or "stretch" for one SIREN
    source_size: tuple[int, int]  # (H, W) of the image as given
    notices: tuple[str, ...] = ()

    def target(self, image) -> Tensor:
        """The image (H, W, C) array in [0, 1] as the fit's target: (h, w, channels) at the working size."""
        from .images import to_size

        img = np.asarray(image, dtype=np.float32)
        if tuple(img.shape[:2]) != self.source_size:
            raise TileGridError(f"image is {img.shape[1]}×{img.shape[0]}, the plan is for "
                                f"{self.source_size[1]}×{self.source_size[0]}")
        if img.shape[-1] == 1 and self.channels == 3:
            img = np.repeat(img, 3, -1)
        return to_size(img, self.grid.image_size, aspect=self.aspect)


SMEAR_SIDE = 64  # a working shorter side below this (two tiles) loses most detail: the notice says how to raise it


def _size_notice(height: int, width: int, h: int, w: int, size: int | None, tile: int) -> str:
    """What the user is told when an image of height × width is fitted at h × w (sizes written width×height).

    The shorter side is kept at one tile at least (`working_size`); where that would take the longer side past
    MAX_PHOTO_SIZE the image is squeezed, and the notice says so and how to avoid it (crop). A thin working side
    (under SMEAR_SIDE px, smaller than the image's own) comes with how to raise it: a larger --size / the app's
    "Working resolution" (docs/DESIGN.md, "Tiled INRs")."""
    over = size is None and max(height, width) > MAX_PHOTO_SIZE
    why = f"over the {MAX_PHOTO_SIZE} px limit: downscaled to" if over else "fitted at"
    long_in, short_in = max(height, width), min(height, width)
    long_out, short_out = max(h, w), min(h, w)
    if abs(long_in * short_out / (short_in * long_out) - 1) > 1 / short_out + 1 / long_out:  # beyond rounding
        return (f"the image is {width}×{height}, {why} {w}×{h}: squeezed (aspect {long_in / short_in:.0f}:1 to "
                f"{long_out / short_out:.0f}:1), as its shorter side must stay at least one {tile} px tile and its "
                f"longer side at most {MAX_PHOTO_SIZE} px; crop it to at most {MAX_PHOTO_SIZE // tile}:1 to keep "
                f"its aspect")
    text = f"the image is {width}×{height}, {why} {w}×{h} (aspect kept)"
    if short_out < min(SMEAR_SIDE, short_in):
        top = min(MAX_PHOTO_SIZE, round(long_in * min(1.0, SMEAR_SIDE / short_in)))
        if long_out < top:
            text += (f"; its shorter side is only {short_out} px: raise the working size for more detail (--size N "
                     f"up to {MAX_PHOTO_SIZE}, the app's \"Working resolution\"; {top} gives "
                     f"{min(short_in, round(short_in * top / long_in))} px)")
        else:
            text += (f"; its shorter side is only {short_out} px at the {MAX_PHOTO_SIZE} px limit: crop it to a "
                     f"less elongated part for more detail")
    return text


def plan_image(height: int, width: int, channels: int, *, size: int | None = None, tile: int = TILE,
               overlap: int = OVERLAP, requested_channels: int | None = None, aspect: str = "crop") -> FitPlan:
    """How an image of height × width × channels is fitted, for the app, `python -m inr fit` and `gmn fit`
    alike (docs/DESIGN.md, "Tiled INRs"): `plan_fit`'s grid and recipe (native resolution up to
    MAX_PHOTO_SIZE by default), then the channels: a gray image fitted as tiles becomes RGB tiles (R = G = B,
    so the colour editors edit it) unless `requested_channels` says otherwise; one SIREN keeps the image's
    channels (a gray digit stays gray, the MNIST editors' distribution). `channels` is the image's own as
    loaded (after `requested_channels` was applied by the loader)."""
    grid, recipe = plan_fit(height, width, channels, size=size, tile=tile, overlap=overlap)
    notices = []
    out = channels
    if not grid.is_single and channels == 1 and requested_channels is None:
        out = 3
        notices.append("gray photo: fitted as colour tiles with R = G = B, so the colour editors apply")
    h, w = grid.image_size
    if grid.is_single:
        if height != width:
            how = "centre-cropped" if aspect == "crop" else "stretched"
            notices.append(f"the image is {width}×{height}: {how} to a square for a single SIREN")
    elif (height, width) != (h, w):
        notices.append(_size_notice(height, width, h, w, size, grid.tile))
    return FitPlan(grid, recipe, out, aspect if grid.is_single else "stretch", (height, width), tuple(notices))
