"""Evaluating edits against fair baselines (docs/DESIGN.md §6).

Metric: per-INR MSE between the edited INR's clamped render on its pixel grid and the
reference target — filter(original image) for filter edits, the painted colour inside the
mask and the INR's original render outside it for paint — averaged over INRs. Filter edits
also report "objective": the MSE to the filter of the INR's own render, which is the target
every method is given (the two differ by the fit's error seen through the filter: tiny for
the MNIST zoos, large for CLAHE contrast of 38 dB photo tiles; `objective_floor`). For paint the
two parts are reported too: "inside" (MSE to the colour over the mask's pixels) and
"outside" (MSE to the original render over the rest); the total is the plain MSE over all
pixels, which is the paint objective with λ = 1.

Baselines, each given a stated amount of information:
- no edit (identity);
- `adam_on_points`: test-time Adam on the objective at the same B sampled points the editor
  sees (K steps, lr tuned on validation);
- `adam_on_full`: test-time Adam on the full-grid objective (the oracle; K steps, with time).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import Tensor

from inr.siren import Params, SirenArch, forward, render, select

from .data import Batch, EditData, make_batch
from .editors import Editor, apply_edit
from .objectives import FILTERS, EditTarget, filter_images


@dataclass
class EvalSet:
    """Test INRs with a fixed objective (target image on the grid) and fixed sampled points."""

    data: EditData
    reference: Tensor  # (N, H, W, C) target image the metric compares with
    objectives: EditTarget  # the objective the editors optimise (from the INR's own render)
    mask: Tensor | None = None  # (N, H, W, 1) paint mask: the metric is also split inside/outside it

    def batches(self, points: int, *, seed: int = 0, size: int = 64) -> list[tuple[Tensor, Batch]]:
        """(INR indices, batch) pairs of `size` INRs with B = `points` fixed sampled points each."""
        out = []
        for i in range(0, len(self.data), size):
            idx = torch.arange(i, min(i + size, len(self.data)))
            gen = torch.Generator().manual_seed(seed * 1_000_003 + i)
            out.append((idx, make_batch(select(self.data.params, idx), self.objectives.select(idx), self.data.grid,
                                        points, gen)))
        return out


def eval_set(data: EditData, *, seed: int = 12345) -> EvalSet:
    """Fix the objectives of `data`. Paint: the strokes and colours are drawn once from `seed`,
    so every method is scored on the same masks (the same INRs get the same strokes on every run)."""
    idx = torch.arange(len(data))
    if data.task in FILTERS:
        ref = filter_images(data.images, data.task)
        return EvalSet(data, ref, data.targets)
    obj = data.objective(idx, rng=np.random.default_rng(seed))
    # painted colour inside, the INR's original render outside: what the user painted on and wants kept
    return EvalSet(data, obj.target, obj, obj.mask)


def editor_eval_set(editor: Editor, dataset: str, split: str, *, root=None, limit: int | None = None, log=print,
                    seed: int = 12345) -> EvalSet:
    """The EvalSet an editor is scored on (`gmn eval`, the app's admin): `dataset`/`split` with the editor's task
    and its objective's λ, so the baselines are tuned and run on the objective the editor was given."""
    data = EditData.from_zoo(dataset, split, editor.config.task, root=root, limit=limit, log=log,
                             lam=editor.config.lam)
    return eval_set(data, seed=seed)


def mse_to(params: Params, arch: SirenArch, reference: Tensor) -> Tensor:
    """Per-INR MSE (N,) of the clamped render against reference (N, H, W, C)."""
    return errors_to(params, arch, reference)["mse"]


def errors_to(params: Params, arch: SirenArch, reference: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
    """Per-INR errors (N,) of the clamped render against reference (N, H, W, C): "mse" over all
    pixels, and with a paint mask (N, H, W, 1) also "inside" and "outside" (MSE over the mask's
    pixels and over the others; 0 where a side has no pixels)."""
    return image_errors(render(params, arch, tuple(reference.shape[1:3])), reference, mask)


def image_errors(image: Tensor, reference: Tensor, mask: Tensor | None = None) -> dict[str, Tensor]:
    """`errors_to` for images (N, H, W, C) already rendered (clamped)."""
    sq = (image - reference).pow(2)
    out = {"mse": sq.mean(dim=(1, 2, 3))}
    if mask is not None:
        c = sq.shape[-1]
        for name, m in (("inside", mask), ("outside", 1 - mask)):
            out[name] = (m * sq).sum(dim=(1, 2, 3)) / (m.sum(dim=(1, 2, 3)) * c).clamp_min(1)
    return out


def _summary(errs: list[dict[str, Tensor]], secs: float) -> dict:
    """{"mse", "per_inr", "seconds_per_inr"} (+ "inside", "outside" and their "per_inr_inside",
    "per_inr_outside" for paint) from per-batch errors."""
    e = {k: torch.cat([d[k] for d in errs]) for k in errs[0]}
    out = {"mse": e["mse"].mean().item(), "per_inr": e["mse"], "seconds_per_inr": secs / len(e["mse"])}
    out.update({k: v.mean().item() for k, v in e.items() if k != "mse"})
    out.update({f"per_inr_{k}": v for k, v in e.items() if k in ("inside", "outside")})
    return out


@torch.no_grad()
def edit_with(editor: Editor, batch: Batch, arch: SirenArch, strength: float = 1.0) -> Params:
    editor.eval()
    return apply_edit(batch.params, editor(batch.params, arch, batch.x, batch.target_pts, batch.mask_pts), strength)


def adam_loop(params: Params, arch: SirenArch, x: Tensor, target: Tensor, weight: Tensor, *, lr: float,
                   steps: int | None = None, seconds: float | None = None,
                   clock: Callable[[], float] = time.perf_counter,
                   on_step: Callable[[int, Params], None] | None = None) -> tuple[Params, int]:
    """The one test-time Adam loop (docs/DESIGN.md §6): `torch.optim.Adam` on the stacked parameters of N INRs,
    minimising Σ_n mean_{b,c} w (f_n(x_b) − t_b)². The INRs share no parameter and Adam is elementwise, so each
    INR takes exactly the steps it would take alone.

    x: (N, B, 2) or (B, 2) points; target (N, B, C); weight (N, B, 1) (`EditTarget.weight_at`).
    Stops after `steps` steps (0: none), or, with `seconds`, at the first step that ends `seconds` after the
    start by `clock` (at least one step). `on_step(k, params)` is called after step k = 1, 2, ... with the current
    parameters (detached; time it takes counts in `seconds`). Returns (the parameters after, detached; the number
    of steps taken)."""
    if (steps is None) == (seconds is None):
        raise ValueError("adam_loop: give exactly one of steps= and seconds=")
    p = [t.detach().clone().requires_grad_(True) for t in params]
    opt = torch.optim.Adam(p, lr=lr)
    t0, done = clock(), 0
    while (done < steps) if steps is not None else (done == 0 or clock() - t0 < seconds):
        err = (weight * (forward(p, arch, x) - target).pow(2)).mean(dim=(1, 2)).sum()
        opt.zero_grad(set_to_none=True)
        err.backward()
        opt.step()
        done += 1
        if on_step is not None:
            on_step(done, [t.detach() for t in p])
    return [t.detach() for t in p], done


def adam_on_points(params: Params, arch: SirenArch, x: Tensor, target: Tensor, weight: Tensor, *, steps: int,
                   lr: float) -> Params:
    """Test-time Adam for `steps` steps on mean_b w_b (f(x_b) - t_b)² at the given points only, every INR
    independent (`adam_loop`)."""
    return adam_loop(params, arch, x, target, weight, steps=steps, lr=lr)[0]


def adam_on_full(params: Params, arch: SirenArch, objective: EditTarget, grid: Tensor, *, steps: int,
                 lr: float) -> Params:
    """Test-time Adam on the objective over the full pixel grid (the oracle)."""
    t, w = objective.flat()
    return adam_on_points(params, arch, grid, t, w, steps=steps, lr=lr)


# Adam on the same points: the lr tuned on validation for K steps (BENCHMARKS.md, editors tables, the rows
# "Adam on the same 64 points"), for callers that cannot tune it themselves (the app's equal-time baseline)
POINTS_LR = {1: 3e-3, 10: 3e-4, 100: 1e-4}


def points_lr(steps: int) -> float:
    """The tuned lr of Adam on the sampled points for the K of `POINTS_LR` nearest to `steps` (in log K)."""
    k = min(POINTS_LR, key=lambda s: abs(np.log(max(steps, 1)) - np.log(s)))
    return POINTS_LR[k]


def _errors(es: EvalSet, params: Params, idx: Tensor) -> dict[str, Tensor]:
    if es.mask is not None:
        return errors_to(params, es.data.arch, es.reference[idx], es.mask[idx])
    # filters: also the MSE to the objective itself (the filter of the INR's own render), the target every
    # method is given; it differs from the reference by the fit's error seen through the filter
    f = render(params, es.data.arch, tuple(es.reference.shape[1:3]))
    objective = es.objectives.target[idx].reshape(f.shape).clamp(0, 1)
    return {**image_errors(f, es.reference[idx]), "objective": image_errors(f, objective)["mse"]}


def objective_floor(es: EvalSet) -> float:
    """Filters: the reference MSE of an edit that reaches its objective exactly (the filter of the INR's render,
    clamped, against the filter of the original image): no method given that objective is expected below it."""
    objective = es.objectives.target.reshape(es.reference.shape).clamp(0, 1)
    return (objective - es.reference).pow(2).mean(dim=(1, 2, 3)).mean().item()


def run_editor(editor: Editor, es: EvalSet, *, points: int, seed: int = 0, strength: float = 1.0) -> dict:
    """Editor MSE per INR on an EvalSet (+ inside/outside the mask for paint), and its latency per
    INR (batched, including decomposition)."""
    arch = es.data.arch
    errs, secs = [], 0.0
    for idx, b in es.batches(points, seed=seed):
        t0 = time.perf_counter()
        edited = edit_with(editor, b, arch, strength)
        secs += time.perf_counter() - t0
        errs.append(_errors(es, edited, idx))
    return _summary(errs, secs)


def run_adam(es: EvalSet, *, points: int | None, steps: int, lr: float, seed: int = 0) -> dict:
    """Adam on the same sampled points (`points` B) or on the full grid (`points` None), on the EvalSet's own
    objective (its λ and weights: `EditTarget.weight_at`)."""
    arch = es.data.arch
    errs, secs = [], 0.0
    for idx, b in es.batches(points or 1, seed=seed):
        t0 = time.perf_counter()
        if points is None:
            new = adam_on_full(b.params, arch, b.objective, es.data.grid, steps=steps, lr=lr)
        else:
            w = b.objective.weight_at(b.mask_pts, b.target_pts)
            new = adam_on_points(b.params, arch, b.x, b.target_pts, w, steps=steps, lr=lr)
        secs += time.perf_counter() - t0
        errs.append(_errors(es, new, idx))
    return _summary(errs, secs)


def no_edit(es: EvalSet) -> float:
    return mse_to(es.data.params, es.data.arch, es.reference).mean().item()


def no_edit_errors(es: EvalSet) -> dict:
    """The identity's errors, as `run_editor` reports them (latency 0)."""
    return _summary([_errors(es, es.data.params, torch.arange(len(es.data)))], 0.0)


def tune_adam_lr(es_val: EvalSet, *, points: int | None, steps: int,
                 lrs=(1e-4, 3e-4, 1e-3, 3e-3, 1e-2)) -> tuple[float, dict[float, float]]:
    """Pick the Adam lr with the lowest MSE on a validation EvalSet."""
    scores = {lr: run_adam(es_val, points=points, steps=steps, lr=lr)["mse"] for lr in lrs}
    return min(scores, key=scores.get), scores


def nearest_point_paint(es: EvalSet, *, points: int, alpha: float, seed: int = 0) -> dict:
    """Paint only: what the B sampled points alone say about the stroke, without learning and without an INR.
    Each pixel is called inside the mask when its nearest inside point is closer than 1/alpha times its
    nearest outside point (the points are half inside and half outside, so the inside side is sampled more
    densely: alpha > 1 corrects for that), and gets the colour of the inside points there; the other pixels
    keep the INR's render. Errors as `run_editor` reports them (a pixel image, not an edited INR)."""
    if es.mask is None:
        raise ValueError("nearest_point_paint is for paint objectives")
    n, h, w, c = es.reference.shape
    grid = es.data.grid.reshape(h * w, 2)
    errs = []
    for idx, b in es.batches(points, seed=seed):
        d = torch.cdist(grid[None].expand(len(idx), -1, -1), b.x)  # (N, HW, B)
        inside_pt = (b.mask_pts[..., 0] > 0.5)[:, None, :]
        d_in = torch.where(inside_pt, d, torch.inf).min(-1).values
        d_out = torch.where(inside_pt, torch.inf, d).min(-1).values
        painted = (alpha * d_in < d_out)[..., None]  # (N, HW, 1)
        colour = (b.target_pts * b.mask_pts).sum(1) / b.mask_pts.sum(1).clamp_min(1)  # (N, C)
        orig = es.data.renders[idx].reshape(len(idx), h * w, c).clamp(0, 1)
        img = torch.where(painted, colour[:, None, :], orig).reshape(len(idx), h, w, c)
        errs.append(image_errors(img, es.reference[idx], es.mask[idx]))
    return _summary(errs, 0.0)


def tune_nearest_alpha(es_val: EvalSet, *, points: int, alphas=(1.0, 1.5, 2.0, 2.5, 3.0, 4.0)) -> float:
    """The nearest-point painter's alpha with the lowest total MSE on a validation EvalSet."""
    scores = {a: nearest_point_paint(es_val, points=points, alpha=a)["mse"] for a in alphas}
    return min(scores, key=scores.get)
