"""Zoos: a whole dataset split fitted into SIRENs, stored as sharded safetensors stacks.

Layout of a zoo folder:

    shard-00000.safetensors ...   stacked params + `images` (n, H, W, C) + `psnr` (n,)
    zoo.json                      dataset, split, arch, fit settings, shard list, PSNR summary

Each shard is fitted from its own seed (seed, shard index), so its INRs do not depend on
how many processes build the zoo, and written atomically: an interrupted build resumes by
skipping the shards already on disk. With `processes=P` (the CLI's default: one per core), the shards
left to build are dealt to P single-thread processes started by torch.distributed's elastic launcher
(the engine of torchrun), each fitting its shards by `inr.fit.fit_streamed`; under
`torchrun --nproc_per_node P` itself, rank r fits shards r, r + P, ... (gloo) and rank 0 writes
zoo.json. Zoos default to the data home (`inr.home.zoo_dir`; docs/DESIGN.md §15).

A build can be stopped (`should_stop`, polled between shards and inside each shard's fit, about 20 times a
second): the shard being fitted is dropped, the shards written stay (a rerun resumes) and `ZooStopped` is
raised. The processes of a multi-process build see the stop as a file the parent writes in the zoo folder.
`on_progress(done, total)` reports INRs fitted (shards on disk plus the fraction of the ones being fitted).
"""

from __future__ import annotations

import functools
import json
import os
import threading
import time
from collections.abc import Callable
from pathlib import Path

import torch

from .datasets import load_dataset
from .files import load_inr, save_stack
from .fit import TILE_RECIPE, ZOO_RECIPE, FitRecipe, fit_recipe, fit_streamed
from .home import say_where, zoo_dir
from .siren import Params, SirenArch, concat

ZOO_LR = ZOO_RECIPE.lr
ZOO_STEPS = ZOO_RECIPE.steps
# the photo-tile zoo is fitted exactly as the tiles of a user's photo are (inr.tiles.fit_photo)
RECIPES = {"tiles": TILE_RECIPE}


class ZooStopped(RuntimeError):
    """A zoo build stopped by its `should_stop` before every shard was written (the written ones are kept)."""


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


def default_processes() -> int:
    """One process per core (the fastest build measured; docs/DESIGN.md, "Artifacts outside the checkout")."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def shard_path(out: Path, i: int) -> Path:
    """The file of shard i of the zoo in `out`."""
    return out / f"shard-{i:05d}.safetensors"


def _shard_done(out: Path, i: int, n_shards: int, rank: int, log) -> bool:
    """Whether shard i is on disk and readable (a torn write is rebuilt)."""
    path = shard_path(out, i)
    if not path.exists():
        return False
    try:
        load_inr(path)
        log(f"[rank {rank}] shard {i + 1}/{n_shards} already built, skipping")
        return True
    except ValueError:
        log(f"[rank {rank}] shard {i + 1}/{n_shards} is unreadable, rebuilding")
        return False


def _fit_shards(images: torch.Tensor, out: Path, todo: list[int], *, dataset: str, split: str, arch: SirenArch,
                recipe: FitRecipe, shard_size: int, seed: int, rank: int, progress: bool, log,
                streamed: bool = True, should_stop: Callable[[], bool] | None = None,
                on_shard: Callable[[float], None] | None = None) -> bool:
    """Fit and write the shards `todo` of `images` (N, H, W, C), logging INRs per second as it goes. `streamed`:
    by `inr.fit.fit_streamed` (the same optimisation as `fit_recipe`, written out, in cache-sized groups: about
    1.5x less CPU per digit; photo tiles are fitted by it too), else by `fit_recipe` (autograd, as before).
    should_stop() is polled between shards and (streamed) inside each fit; on_shard(INRs fitted so far, as a
    float: the shard being fitted counts by its fraction done). Returns False when stopped (that shard unwritten)."""
    n_shards = (len(images) + shard_size - 1) // shard_size
    t0, fitted = time.perf_counter(), 0
    for i in todo:
        if should_stop is not None and should_stop():
            return False
        chunk = images[i * shard_size : (i + 1) * shard_size]
        cpu0 = time.process_time()
        shard_seed = seed * 1_000_003 + i
        cut = []  # set when the fit was stopped before its last step
        if streamed:
            def callback(frac: float, _mse, base: int = fitted, k: int = len(chunk), cut: list = cut) -> bool:
                if on_shard is not None:
                    on_shard(base + frac * k)
                if frac < 1 and should_stop is not None and should_stop():
                    cut.append(True)
                return bool(cut)

            watched = should_stop is not None or on_shard is not None
            res = fit_streamed(chunk, arch, recipe, seed=shard_seed, callback=callback if watched else None)
        else:
            res = fit_recipe(chunk, arch, recipe, seed=shard_seed, progress=progress and rank == 0)
        if cut:
            return False  # a fit cut short is not a shard of the zoo's recipe: rebuilt on the next run
        cpu = time.process_time() - cpu0
        save_stack(
            shard_path(out, i),
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
            fit_code="fit_streamed" if streamed else "fit_recipe",
        )
        fitted += len(chunk)
        rate = fitted / max(time.perf_counter() - t0, 1e-9)
        log(
            f"[rank {rank}] shard {i + 1}/{n_shards}: {len(chunk)} INRs, PSNR mean {res.psnr.mean():.2f} "
            f"min {res.psnr.min():.2f} dB, {res.seconds:.1f} s ({len(chunk) / res.seconds:.1f} INRs/s; this "
            f"process {fitted} INRs at {rate:.1f} INRs/s)"
        )
        if on_shard is not None:
            on_shard(float(fitted))
    return True


def _quiet_on_ctrl_c(worker: Callable) -> Callable:
    """A worker process that ends quietly on Ctrl-C once it runs (exit code 130, no traceback; the parent says
    how to resume, the shards written so far are kept)."""
    @functools.wraps(worker)
    def run(*args, **kwargs):
        try:
            return worker(*args, **kwargs)
        except KeyboardInterrupt:
            raise SystemExit(130) from None

    return run


@_quiet_on_ctrl_c
def _worker(images_file: str, dataset: str, split: str, out: str, arch: dict, recipe: dict, shard_size: int,
            seed: int, todo: list[int], progress: bool, streamed: bool, stop_file: str, progress_file: str) -> None:
    """One process of a multi-process build (started by torch.distributed's elastic launcher, as torchrun
    starts its workers): rank r of P fits the shards todo[r], todo[r + P], ... on one thread, reading the
    split's images from `images_file` (written once by the parent, so no process rebuilds the dataset); it
    stops, between shards or inside a fit, once `stop_file` exists, and writes the INRs it has fitted to
    `progress_file`-RANK about twice a second (for the parent's progress line)."""
    from safetensors import safe_open

    torch.set_num_threads(1)
    rank, world = int(os.environ["RANK"]), int(os.environ["WORLD_SIZE"])
    with safe_open(images_file, framework="pt") as fh:
        images = fh.get_tensor("images")  # (n, H, W, C)
    fields = {k: v for k, v in recipe.items() if k in ("steps", "lr", "target_psnr")}
    mine, last = Path(f"{progress_file}-{rank}"), [0.0]

    def on_shard(done: float) -> None:
        now = time.monotonic()
        if now - last[0] >= 0.5:
            last[0] = now
            tmp = mine.with_name(mine.name + ".tmp")
            tmp.write_text(f"{done:.1f}")
            os.replace(tmp, mine)

    _fit_shards(images, Path(out), todo[rank::world], dataset=dataset, split=split, arch=SirenArch.from_dict(arch),
                recipe=FitRecipe(**fields), shard_size=shard_size, seed=seed, rank=rank, progress=progress,
                log=lambda m: print(m, flush=True), streamed=streamed,
                should_stop=lambda: os.path.exists(stop_file), on_shard=on_shard)


def _launch(processes: int, images: torch.Tensor, out: Path, *args, should_stop: Callable[[], bool] | None = None,
            on_poll: Callable[[float], None] | None = None) -> bool:
    """Run `_worker` in `processes` local processes through torch.distributed's elastic launcher (the engine
    behind torchrun); a failed worker fails the build (the shards it wrote are kept, so a rerun resumes).
    A watcher thread calls on_poll(INRs the workers have fitted so far) and polls should_stop() 5 times a
    second; a stop writes the workers' stop file. Returns False when stopped."""
    import uuid

    from safetensors.torch import save_file
    from torch.distributed.launcher.api import LaunchConfig, elastic_launch

    images_file = out / f".images-{uuid.uuid4().hex[:8]}.safetensors"
    save_file({"images": images.contiguous()}, str(images_file))
    config = LaunchConfig(min_nodes=1, max_nodes=1, nproc_per_node=processes, run_id=images_file.stem[1:],
                          rdzv_backend="c10d", rdzv_endpoint="localhost:0", max_restarts=0, monitor_interval=0.5)
    stop_file, progress_file = out / f".stop-{images_file.stem[8:]}", out / f".progress-{images_file.stem[8:]}"
    stopped, finished = threading.Event(), threading.Event()

    def fitted() -> float:
        total = 0.0
        for f in out.glob(progress_file.name + "-*"):
            try:
                total += 0.0 if f.name.endswith(".tmp") else float(f.read_text())
            except (OSError, ValueError):  # replaced meanwhile: counted at the next poll
                pass
        return total

    def watch() -> None:
        while not finished.wait(0.2):
            if on_poll is not None:
                on_poll(fitted())
            if should_stop is not None and should_stop():
                stop_file.touch()
                stopped.set()
                return

    watcher = threading.Thread(target=watch, name="zoo-stop-watcher", daemon=True)
    watcher.start()
    try:
        elastic_launch(config, _worker)(str(images_file), *args, str(stop_file), str(progress_file))
    finally:
        finished.set()
        watcher.join()
        images_file.unlink(missing_ok=True)
        stop_file.unlink(missing_ok=True)
        for f in out.glob(progress_file.name + "-*"):
            f.unlink(missing_ok=True)
    return not stopped.is_set()


def build_zoo(
    dataset: str,
    split: str,
    out: str | os.PathLike | None = None,
    *,
    arch: SirenArch | None = None,
    recipe: FitRecipe | None = None,
    steps: int | None = None,
    lr: float | None = None,
    shard_size: int = 250,
    seed: int = 0,
    limit: int | None = None,
    threads: int | None = None,
    processes: int = 1,
    streamed: bool = True,
    progress: bool = True,
    log=print,
    should_stop: Callable[[], bool] | None = None,
    on_progress: Callable[[int, int], None] | None = None,
) -> dict | None:
    """Fit every image of `dataset`/`split` by `recipe` (default: the dataset's, `recipe_for`; `steps`
    and `lr` override it) and store the zoo in `out` (default: the data home's zoo/DATASET-SPLIT, `inr.home`).
    `processes` > 1 fits the shards left to build in that many single-thread processes (torch.distributed's
    launcher; the INRs are the same as with one process); under torchrun its processes share the shards.
    `streamed=False` fits by `fit_recipe` (autograd; the build before `fit_streamed`; the INRs agree up to float
    rounding). should_stop() ends the build within a fraction of a second of fitting (raising ZooStopped; the
    shards written are kept); on_progress(done, total) gets the INRs fitted of the split's total as it goes.
    Returns the index (on rank 0; None on other ranks)."""
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
    out = Path(out) if out is not None else zoo_dir(f"{dataset}-{split}")
    out.mkdir(parents=True, exist_ok=True)
    if rank == 0:
        say_where("zoo", out, log)
    n_shards = (len(images) + shard_size - 1) // shard_size
    t0 = time.perf_counter()
    todo = [i for i in range(n_shards) if i % world == rank and not _shard_done(out, i, n_shards, rank, log)]
    todo_inrs = sum(len(images[i * shard_size : (i + 1) * shard_size]) for i in todo)
    processes = min(processes, len(todo))
    total, before = len(images), len(images) - todo_inrs * world  # INRs of the split, INRs already on disk

    def report(done: float) -> None:
        if on_progress is not None:
            on_progress(min(total, before + int(done)), total)

    def poll(fitted: float) -> None:  # a multi-process build: what the workers say, at least the shards on disk
        report(max(fitted, sum(min(shard_size, total - i * shard_size) for i in todo if shard_path(out, i).exists())))

    report(0)
    if world == 1 and processes > 1:
        log(f"zoo: fitting {len(todo)} shards ({todo_inrs} INRs) in {processes} processes")
        built = _launch(processes, images, out, dataset, split, str(out), arch.to_dict(), recipe.to_dict(),
                        shard_size, seed, todo, progress, streamed, should_stop=should_stop, on_poll=poll)
    else:
        built = _fit_shards(images, out, todo, dataset=dataset, split=split, arch=arch, recipe=recipe,
                            shard_size=shard_size, seed=seed, rank=rank, progress=progress, log=log,
                            streamed=streamed, should_stop=should_stop, on_shard=report)
    if not built:
        raise ZooStopped(f"zoo build stopped: {sum(shard_path(out, i).exists() for i in range(n_shards))} of "
                         f"{n_shards} shards of {out} are on disk (a rerun resumes)")
    report(total)
    if world > 1:
        import torch.distributed as dist

        dist.barrier()
    if rank != 0:
        return None
    secs = time.perf_counter() - t0
    psnrs = torch.cat([load_inr(shard_path(out, i)).tensors["psnr"] for i in range(n_shards)])
    index = {
        "dataset": dataset,
        "split": split,
        "count": len(images),
        "arch": arch.to_dict(),
        "fit": {**recipe.to_dict(), "seed": seed},
        "shards": [shard_path(out, i).name for i in range(n_shards)],
        "psnr": {"mean": psnrs.mean().item(), "min": psnrs.min().item(), "max": psnrs.max().item()},
        "processes": max(world, processes),
        "seconds_this_run": round(secs, 2),
        "inrs_per_second_this_run": round(todo_inrs * world / secs, 2) if todo_inrs else None,
    }
    tmp = out / ".zoo.json.tmp"
    tmp.write_text(json.dumps(index, indent=2))
    os.replace(tmp, out / "zoo.json")
    if todo_inrs:
        log(f"zoo: {todo_inrs * world} INRs fitted in {secs:.1f} s, {todo_inrs * world / secs:.1f} INRs/s "
            f"({max(world, processes)} process{'es' if max(world, processes) > 1 else ''})")
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
