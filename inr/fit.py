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


# the streamed fit: many same-sized images by Adam on all pixels, with hand-written backward (photo tiles)


def _sin_cos(u: Tensor, *, inplace: bool = False) -> tuple[Tensor, Tensor]:
    """sin(u) and cos(u); cos is written into u with `inplace`. On CPU float32 through numpy's SIMD kernels,
    about 3× faster than torch's here (0.3 vs 0.9 ms for 16·1024·32 values on one thread, same to 6e-8)."""
    if u.device.type == "cpu" and u.dtype == torch.float32 and u.is_contiguous():
        import numpy as np

        un = u.numpy()
        s = torch.from_numpy(np.sin(un))
        return s, torch.from_numpy(np.cos(un, out=un if inplace else None))
    return u.sin(), (u.cos_() if inplace else u.cos())


def _sine_forward(theta: Params, arch: SirenArch, rows: Tensor, cols: Tensor) -> tuple[Tensor, list, list]:
    """Forward pass of k SIRENs on the h×w pixel-centre grid, keeping what the backward pass needs.

    The first layer is separable on a grid: ω(W[:, 0] r + W[:, 1] c + b) = A(r) + B(c), so sin and cos of it
    come from sin/cos of h + w values per neuron by the angle-addition formulas instead of h·w (half of the
    fit's transcendental work). Returns f (k, P, C), the activations [a_0 = None, a_1, ..., a_K] (k, P, H) and
    ω cos(ω u_l) per sine layer (k, P, H), P = h·w in row-major order."""
    k, h, w = theta[0].shape[0], len(rows), len(cols)
    W1, b1 = theta[0], theta[1]  # (k, H, 2), (k, H)
    w0 = arch.omegas[0]
    sA, cA = _sin_cos((rows[None, :, None] * W1[:, None, :, 0] + b1[:, None, :]).mul_(w0), inplace=True)  # (k, h, H)
    sB, cB = _sin_cos((cols[None, :, None] * W1[:, None, :, 1]).mul_(w0), inplace=True)  # (k, w, H)
    s = torch.mul(sA[:, :, None], cB[:, None]).addcmul_(cA[:, :, None], sB[:, None]).view(k, h * w, -1)
    c = torch.mul(cA[:, :, None], cB[:, None]).addcmul_(sA[:, :, None], sB[:, None], value=-1.0).view(k, h * w, -1)
    acts, dsin = [None, s], [c.mul_(w0)]  # d sin(ω u)/du = ω cos(ω u)
    for i in range(1, arch.layers):
        W, b = theta[2 * i], theta[2 * i + 1]
        u = torch.baddbmm(b.unsqueeze(1), acts[-1], W.transpose(1, 2)).mul_(arch.omegas[i])  # (k, P, H)
        s, c = _sin_cos(u, inplace=True)
        acts.append(s)
        dsin.append(c.mul_(arch.omegas[i]))
    W, b = theta[-2], theta[-1]
    f = torch.baddbmm(b.unsqueeze(1), acts[-1], W.transpose(1, 2)).add_(0.5)  # (k, P, C)
    return f, acts, dsin


def _sine_backward(g: Tensor, theta: Params, arch: SirenArch, rows: Tensor, cols: Tensor, acts: list,
                   dsin: list) -> Params:
    """Gradients of Σ_k loss_k for every parameter, from g = ∂loss/∂f (k, P, C) (the SPEC's rank-1 recursion
    g_l = ω cos(ω u_l) ⊙ W_{l+1}ᵀ g_{l+1}, summed over points). The first layer's input is the grid (r, c),
    so its weight gradient is two contractions of g over rows and columns."""
    k, h, w = g.shape[0], len(rows), len(cols)
    grads: Params = [None] * len(theta)  # type: ignore[list-item]
    for i in range(arch.layers, 0, -1):
        grads[2 * i] = torch.bmm(g.transpose(1, 2), acts[i])  # (k, d_out, d_in)
        grads[2 * i + 1] = g.sum(1)
        g = torch.bmm(g, theta[2 * i]).mul_(dsin[i - 1])  # (k, P, d_in): ∂loss/∂u of layer i
    H = g.shape[-1]
    row_weighted = torch.matmul(rows, g.view(k, h, w * H)).view(k, w, H)  # Σ_i r_i g[i, j]
    col_weighted = torch.matmul(cols, g.view(k * h, w, H)).view(k, h, H)  # Σ_j c_j g[i, j]
    grads[0] = torch.stack([row_weighted.sum(1), col_weighted.sum(1)], -1)  # (k, H, 2): ∂/∂W_1[:, (row, col)]
    grads[1] = g.sum(1)
    return grads


@dataclass
class StreamStats:
    """What a streamed fit did: iterations run and tile-steps computed (for FLOP/s figures)."""

    iterations: int = 0
    tile_steps: int = 0


def matmul_flops(arch: SirenArch) -> int:
    """Multiply-add FLOPs of one pixel's forward and backward pass (the matmuls only; 2 per multiply-add):
    forward W_l a for every layer, backward Wᵀ g below the last layer and g aᵀ for every layer."""
    d = arch.dims
    fwd = sum(d[i] * d[i + 1] for i in range(arch.depth))
    back = sum(d[i] * d[i + 1] for i in range(1, arch.depth))
    return 2 * (2 * fwd + back)


def fit_streamed(
    images: Tensor,
    arch: SirenArch,
    recipe: FitRecipe,
    *,
    seed: int = 0,
    init: Params | None = None,
    group: int = 16,
    workers: int = 1,
    callback: Callable[[float, Tensor], bool | None] | None = None,
    stats: StreamStats | None = None,
) -> FitResult:
    """Fit N SIRENs to N images (N, h, w, C) by `recipe` (Adam, all pixels), as `fit_recipe` does, faster.

    The same optimisation as `fit` (torch's Adam with default betas, per-INR mean squared error, the best
    parameters seen per INR, per-INR stop at the recipe's target PSNR), computed differently
    (docs/DESIGN.md, "Fitting speed"):

    - `group` INRs are worked on at a time (a working set small enough to stay in cache); an INR leaves the
      working set the step it reaches the target (or after its last step) and the next INR waiting takes
      its place at its own step 0, so no step is spent on an INR that is done.
    - forward and backward are written out (`_sine_forward` / `_sine_backward`), with the first layer's
      sines from the angle-addition formulas, and Adam runs on the stacked tensors with a step count per INR.
    - `workers` threads each stream their own share of the INRs (INR i goes to worker i mod workers), each
      with one intra-op thread: on a busy machine this scales where OpenMP's threads stall at every barrier.

    INRs are independent (the loss is a sum, Adam is elementwise), so each INR's result does not depend on
    `group`, `workers` or which INRs it shared the working set with, up to float rounding (tested against
    `fit`); for given seed, group and workers it is bitwise repeatable.
    callback(fraction_done, mse_per_inr) is called from the calling thread about 20 times a second and at
    the end (mse of the best parameters seen, (N,); INRs not started yet hold their initial MSE); returning
    True stops the fit where it is (every INR keeps the best parameters it reached).
    """
    import threading
    import time

    t0 = time.perf_counter()
    n, h, w, c = images.shape
    if c != arch.dim_out:
        raise ValueError(f"images have {c} channels, the SIREN outputs {arch.dim_out}")
    if group < 1 or workers < 1:
        raise ValueError(f"group and workers must be at least 1, got {group} and {workers}")
    device = images.device
    init = init_params(arch, n, generator=torch.Generator().manual_seed(seed)) if init is None else init
    shapes = arch.param_shapes()
    sizes = [math.prod(s) for s in shapes]
    flat0 = torch.cat([t.detach().to(device, torch.float32).reshape(n, -1) for t in init], 1)  # (N, P_θ)
    target = images.float().reshape(n, h * w, c)
    rows = (torch.arange(h, dtype=torch.float32, device=device) + 0.5) / h * 2 - 1
    cols = (torch.arange(w, dtype=torch.float32, device=device) + 0.5) / w * 2 - 1

    def views(flat: Tensor) -> Params:
        return [p.view(flat.shape[0], *s) for p, s in zip(flat.split(sizes, 1), shapes)]

    best = flat0.clone()
    best_mse = torch.full((n,), math.inf, device=device)
    initial = torch.empty(n, device=device)
    with torch.no_grad():  # the initial MSE of every INR, for the progress figure
        for i in range(0, n, group):
            f, _, _ = _sine_forward(views(flat0[i : i + group]), arch, rows, cols)
            initial[i : i + group] = (f - target[i : i + group]).pow_(2).mean((1, 2))
    used = torch.full((n,), recipe.steps, dtype=torch.long, device=device)
    progress = torch.zeros(n, dtype=torch.long)  # steps done per INR (recipe.steps once it has left), on the CPU
    stop = threading.Event()
    stats = stats if stats is not None else StreamStats()
    shares = [torch.arange(i, n, workers, device=device) for i in range(min(workers, n))]
    errors: list[BaseException] = []

    lock = threading.Lock()

    def work(share: Tensor) -> None:
        try:
            if workers > 1:
                torch.set_num_threads(1)  # this thread's intra-op threads (OpenMP's count is per thread)
            done = _stream(share, flat0, target, arch, recipe, views, rows, cols, group, best, best_mse, used,
                           progress, stop)
            with lock:
                stats.iterations += done.iterations
                stats.tile_steps += done.tile_steps
        except BaseException as e:  # noqa: BLE001 - re-raised in the calling thread
            errors.append(e)
            stop.set()

    def report() -> bool:
        mse = torch.where(torch.isfinite(best_mse), best_mse, initial)
        return bool(callback(float(progress.sum()) / (n * recipe.steps), mse.cpu()))

    if workers == 1 and callback is None:
        work(shares[0])
    else:  # the calling thread reports progress while the workers run
        threads_before = torch.get_num_threads()  # a worker's set_num_threads(1) also sets torch's default
        threads = [threading.Thread(target=work, args=(sh,), daemon=True) for sh in shares]
        for th in threads:
            th.start()
        while any(th.is_alive() for th in threads):
            threads[0].join(0.05)
            if callback is not None and not stop.is_set() and report():
                stop.set()
        for th in threads:
            th.join()
        torch.set_num_threads(threads_before)
    if errors:
        raise errors[0]
    if callback is not None and not stop.is_set():
        report()
    best_mse = torch.where(torch.isfinite(best_mse), best_mse, initial)
    return FitResult([t.cpu() for t in views(best)], psnr(best_mse).cpu(), used.cpu(), time.perf_counter() - t0)


def _stream(share: Tensor, flat0: Tensor, target: Tensor, arch: SirenArch, recipe: FitRecipe, views, rows: Tensor,
            cols: Tensor, group: int, best: Tensor, best_mse: Tensor, used: Tensor, progress: Tensor,
            stop) -> StreamStats:
    """One worker of `fit_streamed`: stream the INRs of `share` through a working set of `group` slots,
    writing each INR's best parameters, MSE, steps used and progress into the shared tensors (rows of
    `share` only, so workers never write the same row)."""
    steps, (beta1, beta2), eps = recipe.steps, (0.9, 0.999), 1e-8
    h, w, c = len(rows), len(cols), target.shape[-1]
    k = min(group, len(share))
    idx = share[:k].clone()  # the INR in each slot of the working set
    theta = flat0[idx].clone()
    m, v = torch.zeros_like(theta), torch.zeros_like(theta)
    t = torch.zeros(k, dtype=torch.long, device=theta.device)  # each slot's step
    queue = k  # position in `share` of the next INR waiting
    stats = StreamStats()
    with torch.no_grad():
        while len(idx) and not stop.is_set():
            p = views(theta)
            f, acts, dsin = _sine_forward(p, arch, rows, cols)
            r = f.sub_(target[idx])  # (k, P, C)
            err = r.pow(2).mean((1, 2))  # (k,)
            stats.iterations += 1
            stats.tile_steps += len(idx)
            better = (err < best_mse[idx]) & torch.isfinite(err)
            if better.any():
                best_mse[idx[better]] = err[better]
                best[idx[better]] = theta[better]
            leave = t >= steps
            if recipe.target_psnr is not None:
                reached = (psnr(err) >= recipe.target_psnr) & ~leave
                used[idx[reached]] = t[reached]
                leave |= reached
            progress[idx.cpu()] = torch.where(leave, steps, t).cpu()
            grads = _sine_backward(r.mul_(2.0 / (h * w * c)), p, arch, rows, cols, acts, dsin)
            g = torch.cat([q.reshape(len(idx), -1) for q in grads], 1)  # (k, P_θ)
            # torch's Adam: θ -= lr / bc1 · m / (sqrt(v) / sqrt(bc2) + eps), the bias corrections per slot
            # (a leaving slot's update is overwritten below)
            t += 1
            m.lerp_(g, 1 - beta1)
            v.mul_(beta2).addcmul_(g, g, value=1 - beta2)
            tf = t.double()[:, None]
            bc1, bc2 = (1 - beta1**tf).float(), (1 - beta2**tf).sqrt().float()  # (k, 1)
            theta.sub_(m.div(v.sqrt().div_(bc2).add_(eps)).mul_(recipe.lr / bc1))
            if leave.any():
                keep = []
                for s in torch.nonzero(leave).flatten().tolist():
                    if queue < len(share):  # the next INR takes the slot at its step 0
                        idx[s], t[s] = share[queue], 0
                        theta[s], m[s], v[s] = flat0[share[queue]], 0.0, 0.0
                        queue += 1
                    else:
                        keep.append(s)
                if keep:  # nothing left to start: the working set shrinks
                    stay = torch.ones(len(idx), dtype=torch.bool, device=idx.device)
                    stay[keep] = False
                    idx, t, theta, m, v = idx[stay], t[stay], theta[stay], m[stay], v[stay]
    return stats
