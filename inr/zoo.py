"""Zoos: a whole dataset split fitted into SIRENs, stored as sharded safetensors stacks.

Layout of a zoo folder:

    shard-00000.safetensors ...   stacked params + `images` (n, H, W, C) + `psnr` (n,)
    zoo.json                      dataset, split, arch, fit settings, shard list, PSNR summary

Each shard is fitted from its own seed (seed, shard index), so its INRs do not depend on
how many processes build the zoo, and written atomically: an interrupted build resumes by
skipping the shards already on disk. Under `torchrun --nproc_per_node P`, rank r fits
shards r, r + P, ... (torch.distributed, gloo) and rank 0 writes zoo.json.
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import torch

from .datasets import load_dataset
from .files import load_inr, save_stack
from .fit import TILE_RECIPE, ZOO_RECIPE, FitRecipe, fit_recipe
from .siren import Params, SirenArch, concat

ZOO_LR = ZOO_RECIPE.lr
ZOO_STEPS = ZOO_RECIPE.steps
# the photo-tile zoo is fitted exactly as the tiles of a user's photo are (inr.tiles.fit_photo)
RECIPES = {"tiles": TILE_RECIPE}


def recipe_for(dataset: str) -> FitRecipe:
    """The fitting recipe of a dataset's zoo."""
    return RECIPES.get(dataset, ZOO_RECIPE)


def _dist() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("gloo")
        return dist.get_rank(), dist.get_world_size()
    return 0, 1


def shard_path(out: Path, i: int) -> Path:
    return out / f"shard-{i:05d}.safetensors"


def build_zoo(
    dataset: str,
    split: str,
    out: str | os.PathLike,
    *,
    arch: SirenArch | None = None,
    recipe: FitRecipe | None = None,
    steps: int | None = None,
    lr: float | None = None,
    shard_size: int = 250,
    seed: int = 0,
    limit: int | None = None,
    threads: int | None = None,
    progress: bool = True,
    log=print,
) -> dict | None:
    """Fit every image of `dataset`/`split` by `recipe` (default: the dataset's, `recipe_for`; `steps`
    and `lr` override it) and store the zoo in `out`. Returns the index (on rank 0; None on other ranks)."""
    recipe = (recipe or recipe_for(dataset)).replace(steps=steps, lr=lr)
    rank, world = _dist()
    if threads:
        torch.set_num_threads(threads)
    images = load_dataset(dataset, split)
    if limit is not None:
        images = images[:limit]
    arch = arch or SirenArch(dim_out=images.shape[-1])
    if arch.dim_out != images.shape[-1]:
        raise ValueError(f"{dataset} images have {images.shape[-1]} channels, the SIREN outputs {arch.dim_out}")
    out = Path(out)
    out.mkdir(parents=True, exist_ok=True)
    n_shards = (len(images) + shard_size - 1) // shard_size
    t0 = time.perf_counter()
    mine = [i for i in range(n_shards) if i % world == rank]
    for i in mine:
        path = shard_path(out, i)
        if path.exists():
            try:
                load_inr(path)
                log(f"[rank {rank}] shard {i + 1}/{n_shards} already built, skipping")
                continue
            except ValueError:
                log(f"[rank {rank}] shard {i + 1}/{n_shards} is unreadable, rebuilding")
        chunk = images[i * shard_size : (i + 1) * shard_size]
        cpu0 = time.process_time()
        res = fit_recipe(chunk, arch, recipe, seed=seed * 1_000_003 + i, progress=progress and rank == 0)
        cpu = time.process_time() - cpu0
        save_stack(
            path,
            res.params,
            arch,
            {"images": chunk, "psnr": res.psnr},
            dataset=dataset,
            split=split,
            first_index=i * shard_size,
            image_size=list(chunk.shape[1:3]),
            channels=arch.dim_out,
            fit_seconds=round(res.seconds, 3),
            cpu_seconds=round(cpu, 3),
        )
        log(
            f"[rank {rank}] shard {i + 1}/{n_shards}: {len(chunk)} INRs, PSNR mean {res.psnr.mean():.2f} "
            f"min {res.psnr.min():.2f} dB, {res.seconds:.1f} s"
        )
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    if rank != 0:
        return None
    psnrs = torch.cat([load_inr(shard_path(out, i)).tensors["psnr"] for i in range(n_shards)])
    index = {
        "dataset": dataset,
        "split": split,
        "count": len(images),
        "arch": arch.to_dict(),
        "fit": {**recipe.to_dict(), "seed": seed},
        "shards": [shard_path(out, i).name for i in range(n_shards)],
        "psnr": {"mean": psnrs.mean().item(), "min": psnrs.min().item(), "max": psnrs.max().item()},
        "processes": world,
        "seconds_this_run": round(time.perf_counter() - t0, 2),
    }
    tmp = out / ".zoo.json.tmp"
    tmp.write_text(json.dumps(index, indent=2))
    os.replace(tmp, out / "zoo.json")
    return index


def load_zoo(path: str | os.PathLike) -> tuple[Params, SirenArch, torch.Tensor, torch.Tensor]:
    """All INRs of a zoo folder: (params, arch, images (n, H, W, C), psnr (n,))."""
    path = Path(path)
    index_file = path / "zoo.json"
    if not index_file.exists():
        raise ValueError(f"{path} is not a zoo (no zoo.json); build it with `python -m inr zoo`")
    index = json.loads(index_file.read_text())
    shards = [load_inr(path / name) for name in index["shards"]]
    params = concat([s.params for s in shards])
    images = torch.cat([s.tensors["images"] for s in shards])
    psnrs = torch.cat([s.tensors["psnr"] for s in shards])
    return params, shards[0].arch, images, psnrs
