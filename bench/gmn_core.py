"""GradMetaNet core figures for BENCHMARKS.md (expected run time: 2-3 minutes on 2 cores).

    python -m bench.gmn_core

Sections written: gmn-memory (decomposed vs dense per-example gradients), gmn-speed
(CPU default sizes, forward time per INR, training-step time, decomposition time),
gmn-expressivity (learning the mean gradient: the decoders' ablation in miniature).
Times are medians over repeats of wall time, with torch's default threads (2 here).
"""

from __future__ import annotations

import os
import statistics
import time
from collections.abc import Callable
from functools import partial

import torch
from torch.func import grad, vmap

from bench.report import table, write_section
from gmn.baselines import FlatGradientMLP, FlatMLPConfig
from gmn.decompose import decompose_gradients, mse, rank1_gradients
from gmn.model import GradMetaNet, GradMetaNetConfig, GradMetaNetPP, GradMetaNetPPConfig, GradMetaNetWS, to_params
from gmn.weightspace import WSNet, WSNetConfig
from inr.siren import SirenArch, forward, init_params

COMMAND = "python -m bench.gmn_core"
SMALL = SirenArch(hidden=32, layers=2, dim_out=1)  # 2→32→32→1, the editing INR
LARGE = SirenArch(hidden=256, layers=3, dim_out=3)  # 2→256×3→3


def name(arch: SirenArch) -> str:
    return "→".join(str(d) for d in arch.dims)


def median_time(fn: Callable[[], object], repeats: int, warmup: int = 2, clock=time.perf_counter) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        t0 = clock()
        fn()
        times.append(clock() - t0)
    return statistics.median(times)


def measure(fn: Callable[[], object], repeats: int) -> tuple[float, float]:
    """(median wall time with the default threads, median CPU time with one thread).

    The second is the steadier figure on a shared machine: CPU time of one thread barely
    moves when other processes compete for the cores, wall time with two threads does.
    """
    wall = median_time(fn, repeats)
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu = median_time(fn, repeats, clock=time.process_time)
    finally:
        torch.set_num_threads(threads)
    return wall, cpu


def batch(arch: SirenArch, n: int, b: int, seed: int = 0):
    g = torch.Generator().manual_seed(seed)
    params = init_params(arch, n, generator=g)
    x = torch.rand(n, b, 2, generator=g) * 2 - 1
    obj = mse(torch.rand(n, b, arch.dim_out, generator=g))
    return params, x, obj


def memory() -> None:
    rows = []
    for arch in (SMALL, LARGE):
        for b in (64, 256):
            params, x, obj = batch(arch, 1, b)
            ns = decompose_gradients(params, arch, x, objective=obj)
            dense = rank1_gradients(ns, arch, per_point=True)  # B dense per-example gradients
            mine, full = ns.feats.nbytes, sum(t.nbytes for t in dense)
            rows.append(
                [
                    name(arch),
                    f"{arch.num_params:,}",
                    arch.num_neurons,
                    b,
                    f"{mine / 1024:,.1f}",
                    f"{full / 1024:,.1f}",
                    f"{full / mine:.1f}×",
                ]
            )
            print("memory", rows[-1], flush=True)
    body = (
        "Bytes per INR (float32) of the decomposed representation `NeuronSet.feats` (B × n × 2: a and g "
        "of every neuron) versus B dense per-example gradients (B × P), measured on the tensors. The ratio "
        "is P / (2n): about parameters per neuron, halved for the two channels.\n\n"
        + table(["SIREN", "P", "neurons n", "B", "decomposed (KiB)", "dense (KiB)", "ratio"], rows)
    )
    write_section("gmn-memory", "GradMetaNet core: memory of decomposed gradients", body, command=COMMAND)


def config_rows(cfg) -> str:
    return ", ".join(f"{k}={v}" for k, v in cfg.to_dict().items() if k not in ("dim_in", "dim_out", "depth"))


def models(arch: SirenArch) -> dict:
    theta = GradMetaNetConfig.for_arch(arch, out_channels=8, edit_scale_init=None, weight_features=True)
    return {
        "GradMetaNet": (GradMetaNet(GradMetaNetConfig.for_arch(arch)), "neurons"),
        "GradMetaNet + weight features": (GradMetaNet(GradMetaNetConfig.for_arch(arch, weight_features=True)), "np"),
        "GradMetaNet, pooled decoder only (lowrank=0)": (
            GradMetaNet(GradMetaNetConfig.for_arch(arch, lowrank=0)),
            "neurons",
        ),
        "GradMetaNet++": (GradMetaNetPP(GradMetaNetPPConfig.for_arch(arch)), "neurons"),
        "WS": (WSNet(WSNetConfig.for_arch(arch)), "params"),
        "WS + GradMetaNet (Θ[f], 8 ch)": (GradMetaNetWS(theta, WSNetConfig.for_arch(arch, in_channels=9)), "ws+gmn"),
        "MLP on flat gradient": (FlatGradientMLP(arch, FlatMLPConfig()), "mlp"),
    }


def call(model, kind: str, params, ns, arch):
    if kind == "neurons":
        return to_params(model(ns))
    if kind == "np":
        return to_params(model(ns, params))
    if kind == "params":
        return model(params)
    if kind == "ws+gmn":
        return model(params, ns)
    return model(rank1_gradients(ns, arch), params)


def train_step(model, kind: str, opt, params, ns, arch) -> None:
    loss = sum(t.pow(2).sum() for t in call(model, kind, params, ns, arch))
    opt.zero_grad()
    loss.backward()
    opt.step()


def speed() -> None:
    load0 = os.getloadavg()[0]
    rows_fwd, rows_step = [], []
    n_fwd, n_step, b_step = 32, 32, 32
    for arch, n in ((SMALL, n_fwd), (LARGE, 2)):
        params, x, obj = batch(arch, n, 64)
        ns = decompose_gradients(params, arch, x, objective=obj)
        for label, (model, kind) in models(arch).items():
            if arch is LARGE and kind == "mlp":
                continue  # 133k inputs × 256 hidden: not a useful baseline at this size
            nparams = sum(p.numel() for p in model.parameters())
            with torch.no_grad():
                t, c = measure(partial(call, model, kind, params, ns, arch), repeats=7 if n > 2 else 3)
            rows_fwd.append([label, name(arch), f"{nparams:,}", n, f"{1e3 * t / n:.2f}", f"{1e3 * c / n:.2f}"])
            print("forward", rows_fwd[-1], flush=True)
            if arch is SMALL:
                sp, sx, so = batch(arch, n_step, b_step, seed=1)
                sns = decompose_gradients(sp, arch, sx, objective=so)

                step = partial(train_step, model, kind, torch.optim.Adam(model.parameters(), lr=1e-4), sp, sns, arch)
                t, c = measure(step, repeats=5)
                rows_step.append([label, f"{t:.3f}", f"{c:.3f}"])
                print("step", rows_step[-1], flush=True)

    rows_dec = []
    for arch in (SMALL, LARGE):
        params, x, obj = batch(arch, 64, 64)
        with torch.no_grad():
            t, c = measure(partial(decompose_gradients, params, arch, x, objective=obj), repeats=7)
        ref = ["–", "–"]
        if arch is SMALL:  # torch.func per-example gradients, dense, for comparison

            def loss(p, xb, tb, a=arch):
                return (forward([w.unsqueeze(0) for w in p], a, xb.view(1, 1, -1))[0, 0] - tb).pow(2).sum()

            per_inr = vmap(vmap(grad(loss), in_dims=(None, 0, 0)), in_dims=(0, 0, 0))
            ref = [f"{1e3 * v:.1f}" for v in measure(partial(per_inr, params, x, obj.target), repeats=5)]
        rows_dec.append([name(arch), f"{1e3 * t:.1f}", f"{1e3 * c:.1f}", *ref])
        print("decompose", rows_dec[-1], flush=True)
    load1 = os.getloadavg()[0]

    gcfg, pcfg, wcfg = GradMetaNetConfig(), GradMetaNetPPConfig(), WSNetConfig()
    body = (
        "CPU default sizes (the `@dataclass` defaults):\n\n"
        f"- `GradMetaNetConfig`: {config_rows(gcfg)}\n"
        f"- `GradMetaNetPPConfig`: {config_rows(pcfg)}\n"
        f"- `WSNetConfig`: {config_rows(wcfg)}; `FlatMLPConfig`: hidden=256, layers=2\n\n"
        f"Times: median wall time with {torch.get_num_threads()} threads, and median CPU time with 1 thread "
        "(steadier when other processes share the machine).\n\n"
        "**Forward time per INR** (no grad, B = 64 points, batches of N INRs, median of 7 runs (3 for N = 2); "
        "input: `decompose_gradients` output; the MLP's mean gradient is included in its time):\n\n"
        + table(["model", "SIREN", "parameters", "N", "ms per INR (wall)", "ms per INR (1-thread CPU)"], rows_fwd)
        + f"\n\n**Training step** (forward + backward + Adam, N = {n_step} INRs × B = {b_step} points, "
        "SIREN 2→32→32→1, median of 5):\n\n"
        + table(["model", "s per step (wall)", "s per step (1-thread CPU)"], rows_step)
        + "\n\n**Decomposition** of 64 INRs × 64 points (one batched forward + closed-form backward, no grad, "
        "median of 7), against dense per-example gradients from `torch.func.vmap(grad)`:\n\n"
        + table(
            [
                "SIREN",
                "decompose (ms, wall)",
                "decompose (ms, 1-thread CPU)",
                "vmap(grad) (ms, wall)",
                "vmap(grad) (ms, 1-thread CPU)",
            ],
            rows_dec,
        )
        + f"\n\nLoad average (1 min) at start / end: {load0:.1f} / {load1:.1f} (2 cores, shared: wall times "
        "taken above a load of about 2 are inflated)."
    )
    write_section("gmn-speed", "GradMetaNet core: CPU sizes and speed", body, command=COMMAND)


def regress_mean_gradient(model, arch: SirenArch, steps: int = 200, lr: float = 3e-3) -> list[float]:
    """Train `model` to output the mean gradient of random SIRENs / targets; relative error per tensor."""

    def data(n, gen=None):
        params, x, obj = batch(arch, n, 32, seed=int(torch.randint(1 << 30, (1,), generator=gen)))
        ns = decompose_gradients(params, arch, x, objective=obj)
        return ns, rank1_gradients(ns, arch)

    model.fit_norm(data(256)[0])
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    for _ in range(steps):
        ns, grads = data(32)
        loss = sum((a - b).pow(2).sum() / b.pow(2).sum() for a, b in zip(to_params(model(ns)), grads, strict=True))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    ns, grads = data(128, torch.Generator().manual_seed(123))
    with torch.no_grad():
        pred = to_params(model(ns))
    return [((a - b).norm() / b.norm()).item() for a, b in zip(pred, grads, strict=True)]


def expressivity() -> None:
    arch = SirenArch(hidden=16, layers=2)
    small = dict(interaction_layers=2, deepsets_layers=1, decoder_hidden=16, edit_scale_init=0.03)
    variants = {
        "GradMetaNet, product + low-rank (rank 4)": GradMetaNetConfig.for_arch(arch, hidden=32, lowrank=4, **small),
        "GradMetaNet, product decoder only": GradMetaNetConfig.for_arch(arch, hidden=32, lowrank=0, **small),
        "GradMetaNet, low-rank only": GradMetaNetConfig.for_arch(arch, hidden=32, lowrank=4,
                                                                 **{**small, "decoder_hidden": 0}),
        "GradMetaNet++ (dim 16, 1 block, rank 4)": GradMetaNetPPConfig.for_arch(
            arch, dim=16, blocks=1, heads=2, pair_hidden=8, lowrank=4, edit_scale_init=0.03
        ),
    }
    rows = []
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    for label, cfg in variants.items():
        torch.manual_seed(0)
        model = GradMetaNetPP(cfg) if isinstance(cfg, GradMetaNetPPConfig) else GradMetaNet(cfg)
        t0 = time.perf_counter()
        rel = regress_mean_gradient(model, arch)
        rows.append([label] + [f"{100 * r:.1f}" for r in rel] + [f"{time.perf_counter() - t0:.0f}"])
        print("expressivity", rows[-1], flush=True)
    torch.set_num_threads(threads)
    body = (
        "Can the model output the mean gradient mean_b g aᵀ of the points it is given? SIREN 2→16→16→1 at "
        "random initialisation, random targets, B = 32 points, 200 Adam steps (lr 3e-3, one-cycle) of 32 "
        "random SIRENs each, relative error ‖pred − ∇‖/‖∇‖ per tensor on 128 fresh SIRENs (%), one seed, one "
        "thread. Pooling over points before the decoder loses the pairing of a and g, so the product decoder "
        "alone cannot express it; the point-summed low-rank term can (docs/DESIGN.md §4). "
        "`tests/gmn/test_gmn_models.py` asserts < 10% for the first row (same sizes).\n\n"
        + table(["model", "W_1", "b_1", "W_2", "b_2", "W_3", "b_3", "time (s)"], rows)
    )
    write_section("gmn-expressivity", "GradMetaNet core: learning one gradient step", body, command=COMMAND)


def main() -> None:
    t0 = time.perf_counter()
    memory()
    speed()
    expressivity()
    print(f"done in {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
