"""INR core figures for BENCHMARKS.md (expected run time: about 10 minutes on 2 cores).

    python -m bench.inr_core            # everything (builds the 5,000-INR MNIST zoo)
    python -m bench.inr_core --no-zoo   # skip the zoo build (about 3 minutes)
    python -m bench.inr_core --zoo-speed 500   # only: one process vs the default build, N digits (~5 min)

Sections written: inr-lr (learning-rate sweep), inr-zoo (MNIST-5k zoo build, batched vs
one at a time), inr-photo (64×64 colour photo), inr-render (render time and memory), inr-zoo-speed
(`--zoo-speed N`: the build before and after it used every core). The zoo is built into the data home,
$GMN_HOME/zoo/mnist5k-{train,val,test} (inr.home; reused by the editor benchmarks).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.report import table, write_section
from inr.datasets import mnist5k
from inr.fit import LR, fit
from inr.home import zoo_dir
from inr.images import to_square
from inr.siren import SirenArch, init_params, render
from inr.zoo import ZOO_LR, ZOO_STEPS


def lr_sweep() -> None:
    imgs = mnist5k("val")[:100]
    rows = []
    for steps in (150, 500):
        for lr in (3e-4, 1e-3, 3e-3, 5e-3):
            r = fit(imgs, SirenArch(), steps=steps, lr=lr, seed=0)
            rows.append([steps, f"{lr:g}", f"{r.psnr.mean():.2f}", f"{r.psnr.min():.2f}", f"{r.seconds:.1f}"])
            print("lr", rows[-1], flush=True)
    body = (
        "Adam on 100 MNIST-5k **validation** digits, SIREN 2→32→32→1, all 784 pixels per step, "
        "fitted as one batch. The library default `inr.fit.LR` = "
        f"{LR:g} (safe for larger SIRENs and photos); the zoo uses lr {ZOO_LR:g} for {ZOO_STEPS} steps "
        "(`inr.zoo.ZOO_LR`, `ZOO_STEPS`).\n\n"
        + table(["steps", "lr", "mean PSNR (dB)", "min PSNR (dB)", "time (s)"], rows)
    )
    write_section("inr-lr", "INR core: fitting learning rate", body, command="python -m bench.inr_core")


def zoo() -> None:
    from inr.files import load_inr
    from inr.zoo import load_zoo

    out_root = zoo_dir()
    rows = []
    total = total_cpu = 0.0
    psnrs = []
    for split in ("train", "val", "test"):
        with tempfile.TemporaryDirectory() as tmp:
            t0 = time.perf_counter()
            # the default build: one single-thread process per core (inr.zoo, torch.distributed's launcher)
            cmd = [sys.executable, "-m", "inr", "zoo", "--dataset", "mnist5k", "--split", split, "--out", tmp, "-q"]
            subprocess.run(cmd, check=True, capture_output=True)
            secs = time.perf_counter() - t0
            index = json.loads((Path(tmp) / "zoo.json").read_text())
            psnrs.append(load_zoo(tmp)[3])
            per_rank = [0.0] * index["processes"]
            for i, name in enumerate(index["shards"]):  # shard i is fitted by process i mod P
                per_rank[i % len(per_rank)] += float(load_inr(Path(tmp) / name).meta["cpu_seconds"])
            cpu_est = max(per_rank)
            dest = out_root / f"mnist5k-{split}"
            if not (dest / "zoo.json").exists():  # an existing zoo is identical (seeded): keep it
                shutil.copytree(tmp, dest, dirs_exist_ok=True)
        total += secs
        total_cpu += cpu_est
        p = index["psnr"]
        rows.append([split, index["count"], f"{p['mean']:.2f}", f"{p['min']:.2f}", f"{secs:.0f}", f"{cpu_est:.0f}"])
        print("zoo", rows[-1], flush=True)
    allp = torch.cat(psnrs)
    rows.append(["**all**", len(allp), f"{allp.mean():.2f}", f"{allp.min():.2f}", f"**{total:.0f}**",
                 f"**{total_cpu:.0f}**"])

    # the same fit one image at a time, on the first 40 training digits, one thread, CPU time
    torch.set_num_threads(1)
    imgs = mnist5k("train")[:40]
    t0 = time.process_time()
    for i in range(len(imgs)):
        fit(imgs[i], SirenArch(), steps=ZOO_STEPS, lr=ZOO_LR, seed=i)
    one = (time.process_time() - t0) / len(imgs)
    batched = total_cpu * index["processes"] / len(allp)  # CPU seconds per INR (single-thread processes)
    torch.set_num_threads(os.cpu_count() or 1)
    load = os.getloadavg()[0]
    body = (
        f"5,000 MNIST-5k digits → SIREN 2→32→32→1, Adam lr {ZOO_LR:g}, {ZOO_STEPS} full-image steps, shards of 250 "
        f"fitted as batches, built with `python -m inr zoo` ({index['processes']} single-thread processes, one "
        "per core). Goal: mean ≥ 35 dB, min ≥ 30 dB, ≤ 10 minutes. Wall time depends on what else "
        f"runs (load average {load:.1f} at the end of this run); the last column estimates the build time on an "
        "idle machine from CPU time (the busier rank's CPU seconds, one thread each).\n\n"
        + table(["split", "INRs", "mean PSNR (dB)", "min PSNR (dB)", "wall time (s)", "idle estimate (s)"], rows)
        + f"\n\nOne image at a time (same steps and lr, 1 thread, CPU time on 40 digits): {one * 1000:.0f} CPU-ms "
        f"per INR, versus {batched * 1000:.1f} CPU-ms per INR batched: **{one / batched:.1f}× slower**."
    )
    write_section("inr-zoo", "INR core: MNIST-5k zoo", body, command="python -m bench.inr_core")


def photo() -> None:
    import skimage.data as skd

    arch = SirenArch(hidden=64, layers=3, dim_out=3)
    rows = []
    for name in ("astronaut", "coffee", "chelsea", "rocket"):
        img = to_square(getattr(skd, name)().astype(np.float32) / 255.0, 64)
        times, cpus, ps, steps = [], [], [], []
        for seed in range(3):
            c0 = time.process_time()
            r = fit(img, arch, steps=1000, lr=2e-3, target_psnr=28.0, seed=seed)
            cpus.append(time.process_time() - c0)
            times.append(r.seconds)
            ps.append(r.psnr.item())
            steps.append(int(r.steps.item()))
        rows.append([name, f"{statistics.median(ps):.2f}", statistics.median(steps), f"{statistics.median(times):.2f}",
                     f"{statistics.median(cpus):.2f}"])
        print("photo", rows[-1], flush=True)
    body = (
        "64×64 colour photo (scikit-image, centre-cropped, Lanczos) in a SIREN 2→64→64→64→3, Adam lr 2e-3, "
        "all pixels per step, early stop at 28 dB. Median of 3 seeds. Goal: ≥ 28 dB in ≤ 5 s. "
        f"Load average {os.getloadavg()[0]:.1f} during the run; CPU time (both threads) is the contention-free "
        "upper bound of the wall time on an idle machine.\n\n"
        + table(["photo", "PSNR (dB)", "steps", "wall time (s)", "CPU time (s)"], rows)
    )
    write_section("inr-photo", "INR core: fitting a 64×64 photo", body, command="python -m bench.inr_core")


_MEM_SNIPPET = """
import resource, sys, torch
from inr.siren import SirenArch, init_params, render
arch = SirenArch(hidden=256, layers=3, dim_out=3)
p = init_params(arch, 1)
render(p, arch, 64)
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
img = render(p, arch, 2048)
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print((peak - base) / 1024)
"""


def render_times() -> None:
    rows = []
    for arch in (SirenArch(hidden=32, layers=2, dim_out=1), SirenArch(hidden=256, layers=3, dim_out=3)):
        p = init_params(arch, 1)
        for size in (256, 1024):
            render(p, arch, size)
            ts = []
            for _ in range(5 if size == 256 else 3):
                t0 = time.perf_counter()
                render(p, arch, size)
                ts.append(time.perf_counter() - t0)
            dims = "→".join(map(str, arch.dims))
            rows.append([dims, f"{size}²", f"{statistics.median(ts) * 1000:.0f}"])
            print("render", rows[-1], flush=True)
    out = subprocess.run([sys.executable, "-c", _MEM_SNIPPET], capture_output=True, text=True, check=True)
    mem = float(out.stdout.strip().splitlines()[-1])
    body = (
        "Median wall time of `inr.siren.render` (chunks of 65,536 points, no grad), one INR, 2 threads "
        f"(load average {os.getloadavg()[0]:.1f} during the run).\n\n"
        + table(["SIREN", "resolution", "time (ms)"], rows)
        + f"\n\nPeak memory added by a 2048² render of a 2→256×3→3 INR (max RSS growth, separate process): "
        f"**{mem:.0f} MB** (goal < 1 GB; the 2048²×3 float32 output alone is 48 MB)."
    )
    write_section("inr-render", "INR core: render time", body, command="python -m bench.inr_core")


def _timed_build(cmd: list[str]) -> dict:
    """Wall and CPU seconds (user + system, all its processes) of one zoo build, with the load around it."""
    import resource

    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    load0, t0 = os.getloadavg()[0], time.perf_counter()
    subprocess.run(cmd, check=True, capture_output=True)
    wall = time.perf_counter() - t0
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu = after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime
    return {"wall": wall, "cpu": cpu, "load": (load0 + os.getloadavg()[0]) / 2}


def zoo_speed(limit: int, repeats: int) -> None:
    """The first `limit` MNIST-5k training digits built the way `python -m inr zoo` built them before (one
    process, torch's default threads, `fit_recipe`) and as it does now (the default: one single-thread process
    per core, `fit_streamed`), alternately."""
    before = ("import sys; from inr.zoo import build_zoo; "
              "build_zoo('mnist5k', 'train', sys.argv[1], limit=int(sys.argv[2]), streamed=False, progress=False)")
    ways = {
        "before: one process, torch's default threads, autograd fit (`fit_recipe`)": ["-c", before],
        "now: `python -m inr zoo`, one single-thread process per core, `fit_streamed`": [],
    }
    rows, walls = [], {w: [] for w in ways}
    for r in range(repeats):
        for way, extra in ways.items():
            with tempfile.TemporaryDirectory() as tmp:
                cmd = ([sys.executable, *extra, tmp, str(limit)] if extra else
                       [sys.executable, "-m", "inr", "zoo", "--dataset", "mnist5k", "--split", "train", "--limit",
                        str(limit), "--out", tmp, "-q"])
                m = _timed_build(cmd)
            walls[way].append(m["wall"])
            rows.append([way, r + 1, f"{m['wall']:.0f}", f"{m['cpu']:.0f}", f"{limit / m['wall']:.2f}",
                         f"{m['wall'] * 4000 / limit / 60:.1f}", f"{m['load']:.1f}"])
            print("zoo-speed", rows[-1], flush=True)
    before, now = (statistics.median(v) for v in walls.values())
    body = (
        f"The first {limit} MNIST-5k training digits (shards of 250, SIREN 2→32→32→1, the zoo recipe), built "
        f"alternately the two ways, {repeats} time(s) each, on this shared machine ({os.cpu_count()} cores; the "
        "load average over each build is in the table: other work ran, so wall times are what a user of this "
        "machine gets, not an idle machine's). The 4,000-digit column extrapolates linearly (16 shards of 250 "
        "instead of 2); CPU time is all processes' user + system time.\n\n"
        + table(["build", "run", "wall (s)", "CPU (s)", "INRs/s", "4,000 digits (min, extrapolated)",
                 "load average"], rows)
        + f"\n\nMedian wall time: {before:.0f} s before, {now:.0f} s now: **{before / now:.1f}× faster**."
    )
    write_section("inr-zoo-speed", "INR core: zoo build, before and after every core", body,
                  command=f"python -m bench.inr_core --zoo-speed {limit}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--no-zoo", action="store_true")
    ap.add_argument("--zoo-speed", type=int, default=None, metavar="N",
                    help="only time the zoo build of N digits before/after (writes inr-zoo-speed)")
    ap.add_argument("--repeats", type=int, default=1, help="--zoo-speed: builds of each kind")
    args = ap.parse_args()
    if args.zoo_speed:
        zoo_speed(args.zoo_speed, args.repeats)
        return
    torch.manual_seed(0)
    render_times()
    photo()
    lr_sweep()
    if not args.no_zoo:
        zoo()


if __name__ == "__main__":
    main()
