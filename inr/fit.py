"""Fitting SIRENs to images: one image or many at once (stacked parameters).

Adam on the per-INR mean squared error over all pixels (or a random minibatch of pixels
per step for large images). The INRs of a batch are independent: the loss is the sum of
per-INR losses and Adam is elementwise, so fitting N images together gives each the same
trajectory as fitting it alone (up to float rounding), only faster.

Learning rate: 1e-3 (LR below) was the best of {1e-4, 3e-4, 1e-3, 3e-3} for 2→32→32→1 on
MNIST-5k validation digits at 500 steps; see BENCHMARKS.md (INR core).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from .siren import Params, SirenArch, coordinate_grid, forward, init_params

LR = 1e-3

OptimizerFactory = Callable[[list[Tensor]], torch.optim.Optimizer]


def psnr(mse: Tensor) -> Tensor:
    """PSNR in dB of a mean squared error, for pixel values in [0, 1]."""
    return -10.0 * torch.log10(mse.clamp_min(1e-12))


@dataclass
class FitResult:
    params: Params  # best parameters seen per INR
    psnr: Tensor  # (N,) PSNR of `params` on the full image, dB
    steps: Tensor  # (N,) steps until the target PSNR was reached (or all steps)
    seconds: float


def fit(
    images: Tensor,
    arch: SirenArch,
    *,
    steps: int = 500,
    lr: float = LR,
    target_psnr: float | None = None,
    seed: int = 0,
    init: Params | None = None,
    batch_pixels: int | None = None,
    optimizer_factory: OptimizerFactory | None = None,
    callback: Callable[[int, Tensor], bool | None] | None = None,
    progress: bool = False,
    device: torch.device | str = "cpu",
) -> FitResult:
    """Fit N SIRENs to N images at once.

    images: (N, H, W, C) (or (H, W, C) for one image), values in [0, 1], C = arch.dim_out.
    target_psnr: an INR that reaches it (dB, on the pixels of the step) stops changing;
        the fit ends when all have.
    batch_pixels: if set, each step uses that many random pixels (seeded) instead of all.
    optimizer_factory: builds the optimizer from the parameter list (default Adam(lr)).
    callback(step, psnr_per_inr): called every step; returning True stops the fit.
    Returns the best parameters seen per INR (by full-image PSNR checked every step on the
    step's pixels), their full-image PSNR and the steps used.
    """
    import time

    t0 = time.perf_counter()
    if images.dim() == 3:
        images = images[None]
    n, h, w, c = images.shape
    if c != arch.dim_out:
        raise ValueError(f"images have {c} channels, the SIREN outputs {arch.dim_out}")
    device = torch.device(device)
    gen = torch.Generator().manual_seed(seed)
    params = init_params(arch, n, generator=gen) if init is None else [t.detach().clone() for t in init]
    params = [t.to(device).requires_grad_(True) for t in params]
    target = images.to(device=device, dtype=params[0].dtype).reshape(n, h * w, c)
    grid = coordinate_grid(h, w, device=device)
    opt = optimizer_factory(params) if optimizer_factory else torch.optim.Adam(params, lr=lr)

    best = [t.detach().clone() for t in params]
    best_mse = torch.full((n,), math.inf, device=device)
    done = torch.zeros(n, dtype=torch.bool, device=device)
    used = torch.full((n,), steps, dtype=torch.long)
    bar = None
    if progress:
        from tqdm import tqdm

        bar = tqdm(total=steps, unit="step", desc=f"fit {n} INR{'s' if n > 1 else ''}")
    for step in range(steps):
        if batch_pixels and batch_pixels < h * w:
            idx = torch.randperm(h * w, generator=gen)[:batch_pixels].to(device)
            x, t = grid[idx], target[:, idx]
        else:
            x, t = grid, target
        err = (forward(params, arch, x) - t).pow(2).mean(dim=(1, 2))  # (N,)
        with torch.no_grad():
            # params now are those that produced `err`: keep them if they are the best so far
            better = (err < best_mse) & ~done & torch.isfinite(err)
            if better.any():
                best_mse = torch.where(better, err, best_mse)
                for b, p in zip(best, params):
                    b[better] = p[better]
            if target_psnr is not None:
                newly = (psnr(err) >= target_psnr) & ~done
                used[newly.cpu()] = step
                done |= newly
        cur = psnr(best_mse.detach())
        if bar is not None:
            bar.update(1)
            bar.set_postfix(psnr=f"{cur.mean().item():.2f}")
        if callback is not None and callback(step, cur.cpu()):
            break
        if bool(done.all()):
            break
        opt.zero_grad(set_to_none=True)
        err.sum().backward()
        opt.step()
    if bar is not None:
        bar.close()
    with torch.no_grad():
        final = [t.detach() for t in params]
        full_best = (forward(best, arch, grid) - target).pow(2).mean(dim=(1, 2))
        full_last = (forward(final, arch, grid) - target).pow(2).mean(dim=(1, 2))
        take_last = (full_last < full_best) & ~done & torch.isfinite(full_last)
        out = [torch.where(take_last.view(-1, *[1] * (b.dim() - 1)), p, b) for b, p in zip(best, final)]
        mse = torch.where(take_last, full_last, full_best)
    return FitResult([t.cpu() for t in out], psnr(mse).cpu(), used, time.perf_counter() - t0)


# the fitting recipes: one per kind of INR, shared by the app, the CLI and the zoos


@dataclass(frozen=True)
class FitRecipe:
    """How an INR is fitted. The editors were trained on INRs fitted by a recipe, so an INR fitted
    any other way may be outside their training distribution: the app, `python -m inr fit` and the
    zoos all fit through `fit_recipe` (docs/DESIGN.md, "One recipe, one distribution")."""

    steps: int = 150
    lr: float = 3e-3
    target_psnr: float | None = None  # per-INR early stop (dB): an INR that reaches it stops changing

    def to_dict(self) -> dict:
        return {"steps": self.steps, "lr": self.lr, "target_psnr": self.target_psnr, "optimizer": "adam",
                "pixels": "all"}

    def replace(self, **changes) -> FitRecipe:
        from dataclasses import replace

        return replace(self, **{k: v for k, v in changes.items() if v is not None})


# digits, faces and the old grid-cut patches zoo: Adam lr 3e-3 (best of {1e-3, 3e-3, 5e-3} at 150 steps on
# MNIST-5k val digits, BENCHMARKS.md), 150 full-image steps, no early stop
ZOO_RECIPE = FitRecipe(steps=150, lr=3e-3, target_psnr=None)
# photo tiles (32×32 windows of a photo) and the `tiles` zoo that trains the colour editors: the same Adam
# schedule, each tile stopping once it reaches 40 dB (a photo's tiles then average ~37-39 dB at 150 steps)
TILE_RECIPE = FitRecipe(steps=150, lr=3e-3, target_psnr=40.0)
# one large SIREN over a whole photo (`--tile 0`): lr 1e-3 (LR) is safer for wide SIRENs, and it needs more steps
LARGE_RECIPE = FitRecipe(steps=500, lr=LR, target_psnr=None)


def fit_recipe(
    images: Tensor,
    arch: SirenArch,
    recipe: FitRecipe,
    *,
    seed: int = 0,
    init: Params | None = None,
    callback: Callable[[int, Tensor], bool | None] | None = None,
    progress: bool = False,
    device: torch.device | str = "cpu",
) -> FitResult:
    """Fit N SIRENs to N images (N, H, W, C) by `recipe`, as one batch (from `init`, else drawn from `seed`)."""
    return fit(images, arch, steps=recipe.steps, lr=recipe.lr, target_psnr=recipe.target_psnr, seed=seed,
               init=init, callback=callback, progress=progress, device=device)
