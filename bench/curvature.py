"""Fisher-diagonal estimation (paper §7.1) for BENCHMARKS.md: test normalised MSE vs training-set size.

    python -m bench.curvature                       # ~35 CPU-minutes on one thread (resumable)
    python -m bench.curvature --sizes 10,100 --seeds 1 --scale 0.2    # a quick look
    python -m bench.curvature --source zoo:mnist5k --sizes 100,2000 --seeds 2   # fitted MNIST INRs
    python -m bench.curvature --dim-in 1 --sizes 100,2000 --seeds 2             # SIRENs 1→32→32→1

Data: SIRENs 2→32→32→1 with random Gaussian weights (`gmn.curvature.gaussian_sirens`); input: decomposed
gradients of f at 128 uniform points; target: the Fisher diagonal over 1,024 independent points. Training
sets are the first n of a seed-dependent permutation of a 2,000-INR pool; 64 validation and 256 test INRs
are fixed (other seeds). Each model trains a fixed number of steps (batch 16, AdamW, one-cycle lr) and
keeps its best-validation state (step 0, the plain estimator, included). Section written: curvature.
Results are cached in $GMN_HOME/cache/curvature-bench/ (one JSON per source), so an interrupted run resumes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from pathlib import Path

import torch

from bench.report import table, write_section
from gmn.curvature import (
    CurvaturePredictor,
    PredictorConfig,
    TrainSettings,
    evaluate,
    inr_source,
    make_sets,
    train_predictor,
)
from inr.home import cache_dir, say_where
from inr.siren import SirenArch

ROOT = Path(__file__).resolve().parent.parent
CACHE = cache_dir("curvature-bench") / "results.json"  # $GMN_HOME/cache (inr.home)
COMMAND = "python -m bench.curvature"
# CPU sizes: one training run of GradMetaNet(++) is about a minute on one thread
MODELS = {
    "MLP": (dict(kind="mlp", mlp_hidden=256, layers=2), dict(steps=400, lr=1e-3)),
    "WS": (dict(kind="ws", hidden=16, layers=3), dict(steps=400, lr=2e-3)),
    "GradMetaNet": (dict(kind="gmn", hidden=16, layers=1, deepsets_layers=1, decoder_hidden=16, lowrank=4),
                    dict(steps=300, lr=2e-3)),
    "GradMetaNet++": (dict(kind="gmnpp", hidden=16, layers=1, heads=2, pair_hidden=0, lowrank=4),
                      dict(steps=120, lr=2e-3)),
}


def cache_path(label: str) -> Path:
    """One cache file per data source, so benches of different sources can run side by side."""
    return CACHE if label == "gauss" else CACHE.with_name(f"results-{label.replace(':', '-')}.json")


def load_cache(path: Path) -> dict:
    return json.loads(path.read_text()) if path.exists() else {}


def save_cache(results: dict, path: Path) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    tmp.write_text(json.dumps(results, indent=1))
    os.replace(tmp, path)


def fmt(values: list[float]) -> str:
    m = statistics.mean(values)
    s = statistics.stdev(values) if len(values) > 1 else 0.0
    return f"{m * 1e3:.2f} ± {s * 1e3:.2f}"


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--sizes", default="10,100,500,2000")
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--models", default=",".join(MODELS))
    ap.add_argument("--scale", type=float, default=1.0, help="multiply every model's step count")
    ap.add_argument("--source", default="gauss", help="gauss or zoo:mnist5k")
    ap.add_argument("--dim-in", type=int, default=2, help="SIREN inputs for gauss (1: 1→32→32→1)")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = ap.parse_args()
    say_where("bench.curvature cache", CACHE.parent)
    torch.set_num_threads(1)
    sizes = [int(s) for s in args.sizes.split(",")]
    models = args.models.split(",")
    t0 = time.perf_counter()
    label = args.source if args.dim_in == 2 else f"{args.source}{args.dim_in}d"
    pool_params, arch = inr_source(args.source, max(sizes), arch=SirenArch(dim_in=args.dim_in), seed=1, split="train")
    pool = make_sets(pool_params, arch, seed=11)
    if args.source == "gauss":
        held, _ = inr_source("gauss", 320, arch=arch, seed=2)
    else:
        held, _ = inr_source(args.source, 320, split="test")
    held = make_sets(held, arch, seed=12)
    val, test = held.select(slice(0, 64)), held.select(slice(64, 320))
    print(f"data: {time.perf_counter() - t0:.1f} s", flush=True)
    results = load_cache(cache_path(label))
    plain = evaluate(None, test)
    key0 = f"{label}|plain"
    results[key0] = {"test": plain, "val": evaluate(None, val)}
    for size in sizes:
        for seed in range(args.seeds):
            perm = torch.randperm(len(pool), generator=torch.Generator().manual_seed(100 + seed))
            train = pool.select(perm[:size])
            for name in models:
                mcfg, tcfg = MODELS[name]
                steps = max(1, round(tcfg["steps"] * args.scale))
                key = f"{label}|{name}|{size}|{seed}|{steps}"
                if key in results:
                    continue
                torch.manual_seed(seed)
                model = CurvaturePredictor(PredictorConfig(arch=arch.to_dict(), **mcfg))
                cpu0 = time.process_time()
                res = train_predictor(model, train, val, TrainSettings(steps=steps, lr=tcfg["lr"], seed=seed,
                                                                       val_every=max(steps // 8, 1)))
                err = evaluate(model, test)
                results[key] = {"test": err, "val": res["best_val"], "best_step": res["best_step"],
                                "cpu_s": time.process_time() - cpu0, "params": model.num_parameters()}
                save_cache(results, cache_path(label))
                print(f"{name:14s} n={size:<5d} seed {seed}: test {err:.5f} (plain {plain:.5f}, "
                      f"{(1 - err / plain) * 100:+.1f}%), best step {res['best_step']}/{steps}, "
                      f"{results[key]['cpu_s']:.0f} CPU-s", flush=True)
    rows, gains = [], []
    for name in models:
        steps = max(1, round(MODELS[name][1]["steps"] * args.scale))
        row, grow = [name], [name]
        for size in sizes:
            vals = [results[f"{label}|{name}|{size}|{s}|{steps}"]["test"] for s in range(args.seeds)]
            row.append(fmt(vals))
            grow.append(f"{(1 - statistics.mean(vals) / plain) * 100:+.1f}%")
        cpu = statistics.mean(results[f"{label}|{name}|{size}|{s}|{steps}"]["cpu_s"]
                              for size in sizes for s in range(args.seeds))
        params = results[f"{label}|{name}|{sizes[0]}|0|{steps}"]["params"]
        rows.append(row + [f"{steps}", f"{params:,}", f"{cpu:.0f}"])
        gains.append(grow)
    total_cpu = sum(results[f"{label}|{name}|{size}|{s}|{max(1, round(MODELS[name][1]['steps'] * args.scale))}"]
                    ["cpu_s"] for name in models for size in sizes for s in range(args.seeds))
    header = ["model"] + [f"n = {s}" for s in sizes]
    body = [["plain estimator (128 points)"] + [f"{plain * 1e3:.2f}"] * len(sizes) + ["—", "0", "0"], *rows]
    extra = []  # other step budgets in the cache (ablations run with --models/--scale), as lines
    for key, r in sorted(results.items()):
        parts = key.split("|")
        if len(parts) == 5 and parts[0] == label and parts[1] in MODELS and \
                int(parts[4]) != max(1, round(MODELS[parts[1]][1]["steps"] * args.scale)):
            extra.append(f"- {parts[1]}, {parts[4]} steps, n = {parts[2]}, seed {parts[3]}: "
                         f"{r['test'] * 1e3:.2f} ({(1 - r['test'] / plain) * 100:+.1f}%), {r['cpu_s']:.0f} CPU-s")
    extra_text = ("Other step budgets (same data and settings, test nMSE ×10⁻³; run with e.g. `--models "
                  "GradMetaNet,GradMetaNet++ --sizes 2000 --seeds 1 --scale 3.3334 --no-write`):\n\n"
                  + "\n".join(extra)) if extra else ""
    src = {"gauss": f"random Gaussian SIRENs {'→'.join(map(str, arch.dims))}"}.get(
        args.source, f"fitted {args.source[4:]} SIRENs {'→'.join(map(str, arch.dims))}")
    text = f"""
Task (paper §7.1): from the decomposed gradients of the output f at 128 points uniform in [-1,1]^d, predict the
diagonal of the Fisher information E[∇f ∇fᵀ] computed on 1,024 independent points; {src}.
Metric: normalised MSE, per INR the mean over the 6 tensors of ‖F̂ − F‖² / ‖F‖² (the output bias's Fisher is exactly 1
for every method, so its term is 0), averaged over 256 test INRs
(×10⁻³, mean ± std over {args.seeds} seeds; a seed draws the training INRs and initialises the model). Every
predictor refines the plain estimator, log F̂ = log s + (α + c₀) log(plain / s) + c₁ (gmn/curvature.py), and keeps
its best state on 64 validation INRs (step 0, the plain estimator itself, included).

{table(header + ["steps", "parameters", "CPU-s / run"], body)}

Relative improvement over the plain estimator (paper: GradMetaNet 13.7%, GradMetaNet++ 26.3%):

{table(header, gains)}

{extra_text}

CPU sizes: batch 16 sets, AdamW with a one-cycle lr; GradMetaNet hidden 16, 1 interaction + 1 DeepSets layer,
rank-4 point-summed decoder; GradMetaNet++ dim 16, 1 block × 2 heads, bilinear pair decoder only (the pair MLP
and more heads cost seconds per step here); WS: 3 NP layers × 16 channels on θ, the averaged gradient and
log(plain / s); MLP: 2 × 256 on the flattened log(plain / s) and averaged gradient. Training time, all runs:
{total_cpu / 60:.0f} CPU-minutes on one thread (a shared 2-core machine); the script resumes from its cache.
"""
    print(text)
    if not args.no_write:
        cmd = " ".join([COMMAND] + [f"--{k.replace('_', '-')} {v}" for k, v in vars(args).items()
                                    if v != ap.get_default(k) and k != "no_write"])
        name = "curvature" if label == "gauss" else f"curvature-{label.replace(':', '-')}"
        write_section(name, f"Curvature: Fisher diagonal from 128 gradients ({src})", text, command=cmd)


if __name__ == "__main__":
    main()
