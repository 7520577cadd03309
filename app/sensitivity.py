"""The "Sensitivity" view of the edit tab: which weights of the INR matter, and where in the image.

- Per-layer heat maps of the Fisher diagonal E_x[(∂f/∂θ)²] (x uniform in [-1,1]²), predicted by the shipped
  GradMetaNet Fisher predictor from the gradients at the sampled points (`gmn.curvature`), or the plain
  estimator when no predictor fits the INR. One tile per weight layer: rows = neurons of layer l, columns =
  neurons of layer l-1 plus the bias (last column); colour = log10 of the value, scaled per layer.
- A map of the image regions that move most when the most sensitive weights change: per pixel,
  Σ_{θ ∈ top k%} (∂f(x)/∂θ)², the expected squared change of f(x) under a random unit perturbation of those
  weights (computed exactly from the rank-1 gradient factors on the pixel grid).
"""

from __future__ import annotations

import numpy as np
import torch
from torch import Tensor

from gmn.curvature import default_predictor, fisher_diagonal, load_predictor, output_gradients, uniform_points
from gmn.decompose import decompose_gradients, output
from inr.siren import Params, SirenArch, biases, coordinate_grid, layer, select, weights
from inr.tiles import TileGrid

from .colours import colour_bar, figure, text_row, viridis

MAX_REGION_SIDE = 128  # the region map is computed on at most 128² pixels, then upscaled
_PREDICTORS: dict[tuple[str, float], object] = {}


def predictor_for(arch: SirenArch):
    """The shipped Fisher predictor for this SIREN (cached), or None."""
    path = default_predictor(arch) if arch.dim_out == 1 else None
    if path is None:
        return None
    key = (str(path), path.stat().st_mtime)
    if key not in _PREDICTORS:
        _PREDICTORS[key] = load_predictor(path)[0]
    return _PREDICTORS[key]


@torch.no_grad()
def fisher(params: Params, arch: SirenArch, points: int = 128, seed: int = 0) -> tuple[Params, Params, str]:
    """(plain, shown, source): the plain estimator at `points` uniform points and the diagonal shown
    (the predictor's when one fits, else the plain one)."""
    x = uniform_points(1, points, arch.dim_in, torch.Generator().manual_seed(seed))[0]  # (B, d), shared by tiles
    plain = fisher_diagonal(params, arch, x)
    model = predictor_for(arch)
    if model is None:
        return plain, plain, "plain estimator (no shipped predictor for this SIREN)"
    return plain, model(params, output_gradients(params, arch, x)), "GradMetaNet predictor"


def layer_heatmaps(diag: Params, cell: int = 8, gap: int = 12) -> np.ndarray:
    """One tile per weight layer, [W_l | b_l] as log10 heat maps, side by side, each titled with its layer and
    its log10 range, and a colour bar: uint8 (H, W, 3)."""
    tiles = []
    for i, (w, b) in enumerate(zip(weights(diag), biases(diag), strict=True)):
        parts, ranges = [], []
        for t in (w[0], b[0].unsqueeze(-1)):  # weights and bias column, each on its own log scale
            m = t.clamp_min(1e-30).log10().numpy()
            lo, hi = np.quantile(m, 0.01), m.max()
            ranges.append((lo, hi))
            parts.append(viridis((m - lo) / max(hi - lo, 1e-9) if hi > lo else np.full(m.shape, 0.5)))
        parts[1] = parts[1] // 2 + 64  # dim the bias column a little to set it apart
        tile = np.kron(np.concatenate(parts, 1), np.ones((cell, cell, 1), dtype=np.uint8))  # (d_l, d_{l-1} + 1)
        width = max(tile.shape[1], 110)
        tile = np.pad(tile, ((0, 0), (0, width - tile.shape[1]), (0, 0)), constant_values=255)
        (wl, wh), _ = ranges
        tiles.append(np.concatenate([text_row(width, f"layer {i + 1}: W | b"),
                                     text_row(width, f"log10 {wl:.1f} .. {wh:.1f}"), tile], 0))
    height = max(t.shape[0] for t in tiles)
    out = [np.pad(t, ((0, height - t.shape[0]), (0, gap), (0, 0)), constant_values=255) for t in tiles]
    body = np.concatenate(out, 1)[:, :-gap]
    bar = colour_bar(viridis, min(height, 200), "low", "high")
    return figure(body, "Fisher diagonal: rows = neurons of the layer, columns = its inputs, then the bias", bar)


def region_figure(region: np.ndarray, rep: int) -> np.ndarray:
    """The region map (H, W) ≥ 0, upscaled ×rep, titled, with a colour bar from 0 to its maximum."""
    top = float(region.max())
    img = viridis(region / max(top, 1e-30))
    img = np.kron(img, np.ones((rep, rep, 1), dtype=np.uint8))
    return figure(img, "sum over the top weights of (df(x)/dtheta)^2", colour_bar(viridis, img.shape[0], "0",
                                                                                   f"{top:.2g}"))


def top_mask(diag: Params, percent: float) -> Params:
    """1 for the top `percent` % of all weights by Fisher value (ties included), else 0."""
    flat = torch.cat([t.flatten() for t in diag])
    k = max(1, round(flat.numel() * percent / 100))
    thresh = flat.topk(k).values[-1]
    return [(t >= thresh).to(t.dtype) for t in diag]


@torch.no_grad()
def region_map(params: Params, arch: SirenArch, mask: Params, side: int) -> Tensor:
    """Per pixel, Σ_c Σ_θ mask_θ (∂f_c(x)/∂θ)² on a side×side grid: (side, side)."""
    x = coordinate_grid(side, side, dtype=params[0].dtype)
    total = torch.zeros(side * side, dtype=params[0].dtype)
    for c in range(arch.dim_out):
        ns = decompose_gradients(params, arch, x, objective=output(None if arch.dim_out == 1 else c))
        a2 = ns.a[0].pow(2).split(ns.dims, -1)  # (B, d_l) per layer
        g2 = ns.g[0].pow(2).split(ns.dims, -1)
        for i in range(arch.depth):
            mw, mb = layer(mask, i + 1)
            total += torch.einsum("bi,ij,bj->b", g2[i + 1], mw[0], a2[i]) + g2[i + 1] @ mb[0]
    return total.reshape(side, side)


def sensitivity(params: Params, arch: SirenArch, *, points: int = 128, top: float = 5.0, display: int = 256,
                seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """(layer heat maps, region map at display², markdown summary) for one INR."""
    if arch.dim_in != 2:
        raise ValueError("the sensitivity view needs an image INR (2 inputs)")
    if not 1 <= int(points) <= 4096 or not 0 < float(top) <= 100:
        raise ValueError("points must be 1–4096 and the top share 0–100 %")
    plain, diag, source = fisher(params, arch, int(points), seed)
    mask = top_mask(diag, float(top))
    side = min(int(display), MAX_REGION_SIDE)
    region = region_figure(region_map(params, arch, mask, side).numpy(), max(1, int(display) // side))
    rows = ["| tensor | shape | plain mean | shown mean | shown max | in top |", "|---|---|---|---|---|---|"]
    for name, p, d, m in zip(arch.param_names(), plain, diag, mask, strict=True):
        rows.append(f"| {name} | {'×'.join(map(str, d.shape[1:]))} | {p.mean().item():.3g} | {d.mean().item():.3g} "
                    f"| {d.max().item():.3g} | {int(m.sum().item())} |")
    md = (f"Fisher diagonal E[(∂f/∂θ)²] from {int(points)} points uniform in [-1,1]²: **{source}**. "
          f"Heat maps: one tile per layer, rows = neurons, columns = inputs of the layer + bias (last, dimmed, "
          f"own scale), log scale per layer. Region map: Σ over the top {float(top):g}% weights of (∂f(x)/∂θ)².\n\n"
          + "\n".join(rows))
    return layer_heatmaps(diag), region, md


@torch.no_grad()
def region_map_tiles(params: Params, arch: SirenArch, mask: Params, grid: TileGrid, size: tuple[int, int]) -> Tensor:
    """`region_map` of a tiled INR: each tile's own Σ_θ mask_θ (∂f(x)/∂θ)² on its window, blended like the render."""
    flat, local, weight = grid.layout(size, params[0].dtype)
    n, m = local.shape[:2]
    total = torch.zeros(n, m, dtype=params[0].dtype)
    for c in range(arch.dim_out):
        ns = decompose_gradients(params, arch, local, objective=output(None if arch.dim_out == 1 else c))
        a2, g2 = ns.a.pow(2).split(ns.dims, -1), ns.g.pow(2).split(ns.dims, -1)  # (N, M, d_l) per layer
        for i in range(arch.depth):
            mw, mb = layer(mask, i + 1)
            total += torch.einsum("nbi,nij,nbj->nb", g2[i + 1], mw, a2[i]) + torch.einsum("nbi,ni->nb", g2[i + 1], mb)
    out = torch.zeros(size[0] * size[1], dtype=params[0].dtype)
    out.index_add_(0, flat.flatten(), (total * weight).flatten())
    return out.reshape(size)


def sensitivity_tiles(params: Params, arch: SirenArch, grid: TileGrid, *, points: int = 128, top: float = 5.0,
                      display: int = 256, seed: int = 0) -> tuple[np.ndarray, np.ndarray, str]:
    """The sensitivity view of a tiled INR: heat maps of the Fisher diagonal averaged over tiles (each tile on its
    own [-1,1]², `points` uniform points), and the region map with each tile's own top-k% weights, blended."""
    if grid.is_single:
        return sensitivity(params, arch, points=points, top=top, display=display, seed=seed)
    if not 1 <= int(points) <= 4096 or not 0 < float(top) <= 100:
        raise ValueError("points must be 1–4096 and the top share 0–100 %")
    plain, diag, source = fisher(params, arch, int(points), seed)
    per_tile = [top_mask(select(diag, i), float(top)) for i in range(grid.count)]  # each tile its own top k%
    mask = [torch.cat([m[j] for m in per_tile]) for j in range(len(diag))]
    h, w = grid.image_size
    s = min(int(display), MAX_REGION_SIDE) / max(h, w)
    size = (max(1, round(h * s)), max(1, round(w * s)))
    region = region_figure(region_map_tiles(params, arch, mask, grid, size).numpy(), max(1, int(display) // max(size)))
    mean = [t.mean(0, keepdim=True) for t in diag]
    md = (f"Fisher diagonal E[(∂f/∂θ)²] of each of the {grid.count} tiles from {int(points)} points uniform in its "
          f"own [-1,1]²: **{source}**. Heat maps: the mean over tiles, one map per layer (rows = neurons, "
          f"columns = inputs + bias, log scale per layer). Region map: per tile, Σ over its own top {float(top):g}% "
          "weights of (∂f(x)/∂θ)², blended across tile borders like the render.")
    return layer_heatmaps(mean), region, md
