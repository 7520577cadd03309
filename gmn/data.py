"""Edit datasets: a zoo split of fitted INRs with the objective of one task, and batches of
(params, sampled points, objective at the points, objective on the full grid).

Zoos live in the data home, `$GMN_HOME/zoo/{dataset}-{split}` (`inr.home`; built on first use with
`inr.zoo.build_zoo`, a few minutes for MNIST-5k). Filter targets are computed from each INR's own render, as at edit
time in the app; paint objectives are drawn fresh (synthetic strokes, blobs and colours)
for every batch from a seeded generator.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from inr.home import zoo_dir
from inr.siren import Params, SirenArch, biases, coordinate_grid, from_layers, render, select, weights
from inr.zoo import build_zoo, default_processes, load_zoo

from .objectives import (
    FILTERS,
    PAINT_LAMBDA,
    TASKS,
    EditTarget,
    filter_target,
    paint_target,
    random_paint,
    sample_points,
)

DATA_ARCH = {"mnist5k": SirenArch(dim_out=1), "mnist5k-aug": SirenArch(dim_out=1), "patches": SirenArch(dim_out=3),
             "tiles": SirenArch(dim_out=3), "lfw": SirenArch(dim_out=1)}


# Augmented datasets validate and test on the real images: their val/test zoos are the originals'.
SHARED_EVAL = {"mnist5k-aug": "mnist5k"}


def zoo_path(dataset: str, split: str, root: str | Path | None = None) -> Path:
    """The zoo folder of dataset/split under `root` (default: the data home's zoo root, `inr.home.zoo_dir`)."""
    if split != "train":
        dataset = SHARED_EVAL.get(dataset, dataset)
    return Path(root or zoo_dir()) / f"{dataset}-{split}"


def ensure_zoo(dataset: str, split: str, root: str | Path | None = None, *, log=print,
               should_stop: Callable[[], bool] | None = None,
               on_progress: Callable[[int, int], None] | None = None) -> Path:
    """Path of the zoo of dataset/split, building it first if it is not there. should_stop / on_progress(done,
    total INRs) go to `inr.zoo.build_zoo` (a stop raises `inr.zoo.ZooStopped`; the shards written are kept)."""
    path = zoo_path(dataset, split, root)
    if split != "train":
        dataset = SHARED_EVAL.get(dataset, dataset)
    if not (path / "zoo.json").exists():
        log(f"building zoo {path} (one-time, resumable)")
        # every core, as `python -m inr zoo` (docs/DESIGN.md §15)
        build_zoo(dataset, split, path, arch=DATA_ARCH.get(dataset), processes=default_processes(), progress=False,
                  log=log, should_stop=should_stop, on_progress=on_progress)
    return path


@dataclass
class Batch:
    params: Params  # N INRs
    x: Tensor  # (N, B, 2) sampled coordinates
    target_pts: Tensor  # (N, B, C)
    mask_pts: Tensor | None  # (N, B, 1) paint mask at the points
    objective: EditTarget  # on the full grid


class EditData:
    """INRs of one zoo split and their objectives for `task`."""

    def __init__(self, params: Params, arch: SirenArch, task: str, *, images: Tensor | None = None, size: int = 0,
                 lam: float = PAINT_LAMBDA):
        if task not in TASKS:
            raise ValueError(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
        self.params, self.arch, self.task, self.lam = params, arch, task, lam
        n = params[0].shape[0]
        side = size or (images.shape[1] if images is not None else 28)
        self.renders = torch.cat([render(select(params, slice(i, i + 256)), arch, side) for i in range(0, n, 256)])
        self.images = images if images is not None else self.renders  # originals (evaluation reference)
        self.targets = filter_target(self.renders, task) if task in FILTERS else None
        self.grid = coordinate_grid(side, side)

    @classmethod
    def from_zoo(cls, dataset: str, split: str, task: str, *, root=None, limit: int | None = None, log=print,
                 lam: float = PAINT_LAMBDA):
        params, arch, images, _ = load_zoo(ensure_zoo(dataset, split, root, log=log))
        if limit is not None:
            params, images = select(params, slice(0, limit)), images[:limit]
        return cls(params, arch, task, images=images, lam=lam)

    def __len__(self) -> int:
        return self.params[0].shape[0]

    @property
    def side(self) -> int:
        return self.renders.shape[1]

    def objective(self, index: Tensor, *, rng: np.random.Generator | None = None) -> EditTarget:
        """Objective on the full grid for INRs `index` (paint: random strokes from `rng`)."""
        if self.targets is not None:
            return self.targets.select(index)
        rng = rng or np.random.default_rng(0)
        imgs = self.renders[index]
        mask, colour = random_paint(len(index), self.side, self.side, imgs.shape[-1], generator=rng)
        return paint_target(imgs, mask, colour, self.lam)

    def batch(self, index: Tensor, points: int, *, seed: int) -> Batch:
        """A batch for INRs `index`, every random choice drawn from `seed`."""
        gen = torch.Generator().manual_seed(seed)
        obj = self.objective(index, rng=np.random.default_rng(seed))
        return make_batch(select(self.params, index), obj, self.grid, points, gen)


def sign_flip(params: Params, gen: torch.Generator) -> Params:
    """Each INR with a random sign flip of every hidden neuron: its incoming weights and bias and its
    outgoing weights change sign. sin is odd, so the function (and every edit target) is unchanged;
    training on flipped copies teaches an editor this symmetry, which its architecture does not have."""
    ws, bs = [w.clone() for w in weights(params)], [b.clone() for b in biases(params)]
    n = params[0].shape[0]
    for l in range(len(ws) - 1):  # hidden layer l+1: rows of W_{l+1}, b_{l+1} and columns of W_{l+2}
        s = torch.randint(0, 2, (n, ws[l].shape[1]), generator=gen).to(params[0]) * 2 - 1  # (N, d_{l+1})
        ws[l] = ws[l] * s[:, :, None]
        bs[l] = bs[l] * s
        ws[l + 1] = ws[l + 1] * s[:, None, :]
    return from_layers(ws, bs)


def make_batch(params: Params, obj: EditTarget, grid: Tensor, points: int, gen: torch.Generator) -> Batch:
    """Sample B points per INR (inside/outside the mask for paint) and gather the objective there."""
    n, h, w, c = obj.target.shape
    idx = sample_points(n, h, w, points, generator=gen, mask=obj.mask, device=obj.target.device)  # (N, B)
    t_flat, _ = obj.flat()
    t_pts = torch.gather(t_flat, 1, idx.unsqueeze(-1).expand(-1, -1, c))
    m_pts = None
    if obj.mask is not None:
        m_pts = torch.gather(obj.mask.reshape(n, h * w, 1), 1, idx.unsqueeze(-1))
    return Batch(params, grid[idx], t_pts, m_pts, obj)
