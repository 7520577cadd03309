"""Learned optimizer benchmark (issue 6, docs/DESIGN.md §7): steps and wall time to reach the PSNR that tuned
Adam reaches in 500 steps, on held-out test digits and test patches.

    python -m bench.optimizer train  [--minutes 30]     # meta-train with and without GradMetaNet (resumable)
    python -m bench.optimizer report [--test 100]       # evaluate, write the `optimizer` section
    python -m bench.optimizer ship [--variant gmn] [--name learned] [--channels 1] [--widths 32]
    python -m bench.optimizer variants [--val 32]       # hand-made Adam variants vs tuned Adam (val images)
    python -m bench.optimizer photos                    # the bundled colour photos: Adam vs the patches optimizer

`train` runs `python -m gmn metatrain --out $GMN_HOME/runs/lopt/NAME --minutes M` for each of VARIANTS (one after
the other, in order: the es-head runs start from es-nogmn; a finished run is skipped, an interrupted one
resumes) and logs command and wall time in
$GMN_HOME/runs/lopt/runs.json. `report`: Adam's lr is tuned on 32 val images per dataset (best mean PSNR after
500 steps over {1e-3, 3e-3, 1e-2}); per test image, the target is the best PSNR tuned Adam reaches
in 500 steps; every optimizer runs up to `--max-steps` steps and we count the first step whose
best-so-far PSNR reaches the target. Fits run batched (all test images at once, 1 thread); the
time per step is measured separately on one image. Expected time: train 2 × minutes; report ~10 min.
"""

from __future__ import annotations

import argparse
import copy
import json
import math
import shlex
import shutil
import statistics
import subprocess
import sys
import time

import torch

from bench.report import ROOT, table, write_section
from gmn.metatrain import fit_loss, run_learned
from gmn.optim import SHIPPED_DIR, load_optimizer, sample_pixels
from inr.datasets import load_dataset
from inr.home import runs_dir, say_where
from inr.siren import SirenArch, coordinate_grid, init_params

RUNS = runs_dir("lopt")  # $GMN_HOME/runs/lopt (inr.home), outside the checkout
_ES_HEAD = ["--estimator", "es", "--es-params", "head", "--es-pairs", "8", "--horizon", "250", "--meta-lr", "0.02",
            "--val-every", "2", "--init", str(RUNS / "es-nogmn" / "best.safetensors"), "--model",
            '{"schedule_scales": [30, 100, 300, 1000], "layer_alpha": true}']
VARIANTS = {
    "nogmn": ["--no-gmn"],
    "gmn": [],
    # α schedule and per-layer α factors by evolution strategies over whole 250-step fits (F stays at its init)
    "es-nogmn": ["--no-gmn", "--estimator", "es", "--es-pairs", "8", "--horizon", "250", "--meta-lr", "0.05",
                 "--val-every", "4", "--model", '{"schedule_scales": [30, 100, 300, 1000], "layer_alpha": true}'],
    # on top of es-nogmn's schedule, ES also trains β and F's last layer (F's hidden layers and the
    # GradMetaNet stay random: fixed features), with and without GradMetaNet features
    "es-head-nogmn": ["--no-gmn", *_ES_HEAD],
    "es-head-gmn": _ES_HEAD,
    # patches only, from Adam (constant α), β2 learnable too
    "es-patches": ["--no-gmn", "--datasets", "patches", "--estimator", "es", "--es-pairs", "8", "--horizon", "250",
                   "--meta-lr", "0.05", "--val-every", "2", "--model",
                   '{"schedule_scales": [30, 100, 300, 1000], "layer_alpha": true, "learn_beta2": true}'],
}
ONLY = {"es-patches": ("patches",)}  # variants meta-trained on one dataset are tested on it only
WIDTH_SCALED = ("es-nogmn",)  # also tested at width 64 with µP-style width scaling (width_power 1)
LRS = [1e-3, 3e-3, 1e-2]
LABELS = {"nogmn": "learned, no GradMetaNet", "gmn": "learned + GradMetaNet",
          "es-nogmn": "learned α schedule (ES), no GradMetaNet",
          "es-head-nogmn": "ES schedule + F head, no GradMetaNet",
          "es-head-gmn": "ES schedule + F head + GradMetaNet",
          "es-patches": "ES schedule + β2 on patches only, no GradMetaNet"}


def _train(args) -> None:
    RUNS.mkdir(parents=True, exist_ok=True)
    say_where("bench.optimizer runs", RUNS)
    log = RUNS / "runs.json"
    runs = json.loads(log.read_text()) if log.exists() else {}
    for name, flags in VARIANTS.items():
        out = RUNS / name
        if runs.get(name, {}).get("finished"):
            continue
        cmd = [sys.executable, "-m", "gmn", "metatrain", "--out", str(out), "--minutes",
               str(args.minutes), "-q", *flags]
        t0 = time.perf_counter()
        subprocess.run(cmd, cwd=ROOT, check=True, env={**__import__("os").environ, "OMP_NUM_THREADS": "1"})
        runs[name] = {"command": "python " + shlex.join(cmd[1:]), "wall_s": round(time.perf_counter() - t0, 1),
                      "finished": True}
        log.write_text(json.dumps(runs, indent=2) + "\n")


def adam_curve(images: torch.Tensor, arch: SirenArch, steps: int, lr: float, seed: int = 0) -> torch.Tensor:
    """PSNR of the current parameters at every step of an Adam fit: (steps + 1, N)."""
    return adam_variant_curve(images, arch, steps, lr, seed=seed)


@torch.no_grad()
def adam_variant_curve(images: torch.Tensor, arch: SirenArch, steps: int, lr: float, *, betas=(0.9, 0.999),
                       layer_lr=None, schedule=None, seed: int = 0) -> torch.Tensor:
    """PSNR at every step of an Adam fit (steps + 1, N), optionally a hand-made variant: Adam's betas,
    per-tensor lr factors (`layer_lr(i, n)` for tensor i of n: weights and biases alternate) and an lr
    factor per step (`schedule(t)`)."""
    n, h, w, c = images.shape
    params = [p.requires_grad_(True) for p in init_params(arch, n, generator=torch.Generator().manual_seed(seed))]
    factors = [layer_lr(i, len(params)) if layer_lr else 1.0 for i in range(len(params))]
    opt = torch.optim.Adam([{"params": [p], "lr": lr * f} for p, f in zip(params, factors)], lr=lr, betas=betas)
    grid, target = coordinate_grid(h, w), images.reshape(n, h * w, c)
    curve = []
    for t in range(steps + 1):
        with torch.enable_grad():
            err = fit_loss(params, arch, grid, target)
            opt.zero_grad()
            err.sum().backward()
        curve.append(-10 * torch.log10(err.detach().clamp_min(1e-12)))
        for group, f in zip(opt.param_groups, factors):
            group["lr"] = lr * f * (schedule(t) if schedule else 1.0)
        opt.step()
    return torch.stack(curve)


# Hand-made Adam variants (relative to the tuned lr): what tuning Adam further, without learning, buys.
ADAM_VARIANTS = {
    "lr × 1.5": dict(lr=1.5),
    "lr × 0.7": dict(lr=0.7),
    "β1 = 0.95": dict(betas=(0.95, 0.999)),
    "β2 = 0.99": dict(betas=(0.9, 0.99)),
    "β1 = 0.95, β2 = 0.99": dict(betas=(0.95, 0.99)),
    "lr decays ×0.1 over 500 steps": dict(schedule=lambda t: 0.1 ** min(t / 500, 1.0)),
    "lr × 2 decaying to × 0.5 over 500": dict(schedule=lambda t: 2 * 0.25 ** min(t / 500, 1.0)),
    "lr × 4 decaying to × 0.5 over 500": dict(schedule=lambda t: 4 * 0.125 ** min(t / 500, 1.0)),
    "lr × 3 decaying to × 0.5 over 300": dict(schedule=lambda t: 3 * (1 / 6) ** min(t / 300, 1.0)),
    "50-step warm-up to lr × 1.5": dict(schedule=lambda t: 1.5 * min(1.0, (t + 1) / 50)),
    "first layer lr ÷ 3": dict(layer_lr=lambda i, n: 1 / 3 if i < 2 else 1.0),
    "last layer lr × 3": dict(layer_lr=lambda i, n: 3.0 if i >= n - 2 else 1.0),
}


def _variants(args) -> None:
    """Steps to tuned Adam's 500-step PSNR for hand-made Adam variants, on val images (a search, so val)."""
    torch.set_num_threads(1)
    rows, summary = [], {}
    for dataset in ("mnist5k", "patches"):
        lr, _ = _tune_lr(dataset, 32, args.val)
        val = load_dataset(dataset, "val")[: args.val]
        arch = SirenArch(hidden=32, dim_out=val.shape[-1])
        ref = adam_curve(val, arch, 500, lr)
        target = ref.max(0).values
        base = steps_to(ref, target)
        rows.append([dataset, f"Adam, tuned lr {lr:g}", "100%", f"{base.median().item():.0f}", "1.00×",
                     f"{target.clamp(max=100).mean().item():.2f}"])
        for name, v in ADAM_VARIANTS.items():
            t0 = time.perf_counter()
            curve = adam_variant_curve(val, arch, 500, lr * v.get("lr", 1.0), betas=v.get("betas", (0.9, 0.999)),
                                       layer_lr=v.get("layer_lr"), schedule=v.get("schedule"))
            s = steps_to(curve, target)
            med, reached = s.median().item(), (s < math.inf).float().mean().item()
            speed = (base / s).median().item()
            summary[f"{dataset}/{name}"] = {"reached": reached, "median_steps": None if math.isinf(med) else med,
                                            "speedup": speed}
            rows.append([dataset, name, f"{reached * 100:.0f}%", "—" if math.isinf(med) else f"{med:.0f}",
                         f"{speed:.2f}×", f"{curve.max(0).values.clamp(max=100).mean().item():.2f}"])
            print(rows[-1], f"{time.perf_counter() - t0:.1f}s", flush=True)
    (RUNS / "variants.json").parent.mkdir(parents=True, exist_ok=True)
    (RUNS / "variants.json").write_text(json.dumps(summary, indent=2) + "\n")
    body = "\n".join([
        f"Validation images ({args.val} per dataset; this is a search, so no test images), SIRENs 2→32→32→C "
        "from the same initialisations, 500 steps. Target per image: the best PSNR tuned Adam reaches in 500 "
        "steps, as in the table above. Each variant changes one thing of tuned Adam (lr factors are relative "
        "to the tuned lr). Columns: share of images reaching the target within 500 steps, median steps, "
        "median per-image speed-up over tuned Adam (0 where never reached), mean best PSNR within 500 steps "
        "(capped at 100 dB). It measures how much of the ≥ 2× goal hand-tuning alone could give.",
        "",
        table(["data", "variant", "reached", "median steps", "speed-up (steps)", "best PSNR @500 (dB)"], rows),
    ])
    write_section("optimizer-variants", "Learned optimizer: what hand-tuned Adam variants reach", body,
                  command=f"python -m bench.optimizer variants --val {args.val}")


def steps_to(curve: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """First step whose best-so-far PSNR reaches `target` (N,); inf where never."""
    best = torch.cummax(torch.nan_to_num(curve, nan=-math.inf), 0).values  # (S, N)
    hit = best >= target
    first = hit.float().argmax(0).float()
    return torch.where(hit.any(0), first, torch.full_like(first, math.inf))


def ms_per_step(step_fn, repeats: int = 60) -> float:
    """Median wall time of one fitting step of one image, ms."""
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        step_fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times[10:]) * 1000


def _timers(image: torch.Tensor, arch: SirenArch, nets: dict, lr: float) -> dict:
    h, w, c = image.shape
    grid, target = coordinate_grid(h, w), image.reshape(1, h * w, c)
    params = [p.requires_grad_(True) for p in init_params(arch, 1)]
    opt = torch.optim.Adam(params, lr=lr)

    def adam_step():
        err = fit_loss(params, arch, grid, target)
        opt.zero_grad()
        err.sum().backward()
        opt.step()

    out = {"adam": ms_per_step(adam_step)}
    for name, net in nets.items():
        box = {"p": [p.detach() for p in init_params(arch, 1)]}
        box["s"] = net.init_state(box["p"])

        def step(net=net, box=box):
            ps = [p.requires_grad_(True) for p in box["p"]]
            grads = torch.autograd.grad(fit_loss(ps, arch, grid, target).sum(), ps)
            with torch.no_grad():
                gfeat = None
                if net.gmn is not None:
                    x, t = sample_pixels(image[None], net.config.points)
                    gfeat = net.gradient_features(box["p"], arch, x, t)
                box["p"], box["s"] = net.step([p.detach() for p in ps], list(grads), box["s"], gfeat)

        out[name] = ms_per_step(step)
    return out


def _tune_lr(dataset: str, hidden: int, n: int) -> tuple[float, dict]:
    val = load_dataset(dataset, "val")[:n]
    arch = SirenArch(hidden=hidden, dim_out=val.shape[-1])
    scores = {lr: adam_curve(val, arch, 500, lr).max(0).values.clamp(max=100).mean().item() for lr in LRS}
    return max(scores, key=scores.get), scores


def _report(args) -> None:
    torch.set_num_threads(1)
    nets = {}
    for name in VARIANTS:
        path = RUNS / name / "best.safetensors"
        if path.exists():
            nets[name] = load_optimizer(path)
    label = LABELS
    rows, tuning, curves, summary = [], [], {}, {}
    settings = [("mnist5k", 32), ("patches", 32), ("mnist5k", 64)]
    for dataset, hidden in settings:
        lr, scores = _tune_lr(dataset, hidden, args.val)
        tuning.append(f"{dataset} width {hidden}: " + ", ".join(f"lr {k:g} → {v:.2f} dB" for k, v in scores.items())
                      + f" (chosen {lr:g})")
        test = load_dataset(dataset, "test")[: args.test]
        arch = SirenArch(hidden=hidden, dim_out=test.shape[-1])
        ref = adam_curve(test, arch, args.max_steps, lr)
        target = ref[: 501].max(0).values  # tuned Adam's best PSNR within 500 steps, per image
        results, timed = {"Adam (tuned lr)": ref}, {}
        for name, (net, _) in nets.items():
            if dataset not in ONLY.get(name, (dataset,)):
                continue
            _, curve = run_learned(net, test, arch, args.max_steps, record=True)
            results[label[name]] = curve
            timed[label[name]] = net
            if hidden != net.config.ref_width and name in WIDTH_SCALED:
                scaled = copy.deepcopy(net)
                scaled.config.width_power = 1.0
                _, curve = run_learned(scaled, test, arch, args.max_steps, record=True)
                results[label[name] + ", µP width scaling"] = curve
                timed[label[name] + ", µP width scaling"] = scaled
        timers = _timers(test[0], arch, timed, lr)
        adam_steps = steps_to(ref, target)
        summary[f"{dataset}-w{hidden}"] = {"adam_lr": lr}
        for name, curve in results.items():
            s = steps_to(curve, target)
            ratio = adam_steps / s  # per-image speed-up (0 where never reached)
            ms = timers["adam" if name.startswith("Adam") else name]
            med = s.median().item()
            summary[f"{dataset}-w{hidden}"][name] = {
                "reached": (s < math.inf).float().mean().item(), "median_steps": None if math.isinf(med) else med,
                "speedup_steps": ratio.median().item(), "ms_per_step": ms,
                "psnr_500": curve[min(500, len(curve) - 1)].clamp(max=100).mean().item()}
            rows.append([f"{dataset} ({len(test)} test), width {hidden}", name,
                         f"{(s < math.inf).float().mean().item() * 100:.0f}%",
                         "—" if math.isinf(med) else f"{med:.0f}", f"{ratio.median().item():.2f}×",
                         f"{curve[min(500, len(curve) - 1)].clamp(max=100).mean().item():.2f}", f"{ms:.2f}",
                         "—" if math.isinf(med) else f"{med * ms / 1000:.2f}"])
        curves[f"{dataset}-w{hidden}"] = {k: v.clamp(max=100).mean(1).tolist() for k, v in results.items()}
        print(rows[-len(results):], flush=True)
    (RUNS / "curves.json").write_text(json.dumps(curves))
    (RUNS / "report.json").write_text(json.dumps(summary, indent=2) + "\n")
    fig = _figure(curves)
    cards = []
    for name, (_, card) in nets.items():
        cards.append(f"- {label[name]}: {card.get('cpu_minutes')} CPU-min of meta-training "
                     f"({card.get('episode')} episodes, {card.get('meta_steps')} meta-steps), best val PSNR "
                     f"{card.get('val_psnr')} dB, {card.get('parameters')} meta-parameters.")
    body = "\n".join([
        "Fitting SIRENs 2→H→H→C from the same random initialisations. Target per image: the best PSNR "
        "that Adam with the lr tuned on validation images reaches in 500 full-image steps. Columns: share "
        "of test images that reach it within "
        f"{args.max_steps} steps, median steps to reach it, median per-image speed-up in steps over tuned "
        "Adam (Adam's own steps to its best ÷ the optimizer's; 0 where never reached), mean PSNR after 500 "
        "steps (capped at 100 dB), wall time per step fitting one image (1 thread, median), and median wall "
        "time to the target. Goal: ≥ 2× fewer steps than tuned Adam, and GradMetaNet features better than "
        "without. Width 64: optimizers meta-trained on width-32 SIRENs only; \"µP width scaling\" runs the same "
        "optimizer with α of the hidden-fan-in weights × 32/width (`width_power` 1, set by hand, not learned).",
        "",
        table(["test set", "optimizer", "reached", "median steps", "speed-up (steps)", "PSNR @500 (dB)",
               "ms/step", "time to target (s)"], rows),
        "",
        "Adam lr tuning (32 val images, 500 steps, mean best PSNR): " + "; ".join(tuning) + ".",
        "",
        *cards,
        "",
        f"![PSNR vs steps]({fig})" if fig else "",
    ])
    write_section("optimizer", "Learned optimizer: steps to tuned Adam's 500-step PSNR", body,
                  command="python -m bench.optimizer report")


def _figure(curves: dict) -> str | None:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    fig, axes = plt.subplots(1, len(curves), figsize=(4.2 * len(curves), 3.4))
    for ax, (name, res) in zip(axes, curves.items()):
        for label, ys in res.items():
            ax.plot(ys, label=label)
        ax.set_title(name)
        ax.set_xlabel("step")
        ax.set_ylabel("mean PSNR (dB)")
        ax.axvline(500, color="gray", lw=0.5)
    axes[0].legend(fontsize=7)
    fig.tight_layout()
    path = ROOT / "bench" / "figures" / "optimizer.png"
    path.parent.mkdir(exist_ok=True)
    fig.savefig(path, dpi=90)
    return str(path.relative_to(ROOT))


def _ship(args) -> None:
    """Copy runs/lopt/VARIANT/best.safetensors to assets/optimizers/NAME.safetensors with a card holding the
    reproducing command, the test figures of the last report and the channel counts it is meant for."""
    src = RUNS / args.variant / "best.safetensors"
    card = json.loads(src.with_suffix(".json").read_text())
    dest = SHIPPED_DIR / f"{args.name}.safetensors"
    dest.parent.mkdir(parents=True, exist_ok=True)
    runs = json.loads((RUNS / "runs.json").read_text()) if (RUNS / "runs.json").exists() else {}
    card["reproduce"] = (runs.get(args.variant, {}).get("command")
                         or f"python -m bench.optimizer train  # runs/lopt/{args.variant}")
    card["benchmark"] = "BENCHMARKS.md, section 'Learned optimizer' (python -m bench.optimizer report)"
    if args.channels:
        card["channels"] = [int(c) for c in args.channels.split(",")]
    if args.widths:
        card["widths"] = [int(w) for w in args.widths.split(",")]
    report = RUNS / "report.json"
    if report.exists():  # test-set figures of this run
        label = LABELS[args.variant]
        card["metrics"] = {k: {"adam_lr": v["adam_lr"], **{name: r for name, r in v.items() if name.startswith(label)}}
                           for k, v in json.loads(report.read_text()).items()}
    net, _ = load_optimizer(src)
    from gmn.optim import save_optimizer

    card.pop("config", None)
    save_optimizer(dest, net, card)
    shutil.copystat(src, dest)
    print(f"shipped {dest} ({dest.stat().st_size / 1e3:.0f} kB)")


def _photos(args) -> None:
    """The bundled colour photos at the app's settings (2→32→32→3, 300 full-image steps, 32² and 64²): Adam
    at the app's lr 1e-3 and at the tuned 3e-3 against the learned optimizers meta-trained on colour patches."""
    from gmn.optim import fit_learned
    from inr.fit import fit
    from inr.images import load_image, to_square

    torch.set_num_threads(1)
    nets = {name: load_optimizer(RUNS / name / "best.safetensors")[0] for name in ONLY
            if "patches" in ONLY[name] and (RUNS / name / "best.safetensors").exists()}
    rows = []
    for png in sorted((ROOT / "assets" / "examples").glob("*.png")):
        img = load_image(png)
        if img.shape[-1] != 3:
            continue
        for size in (32, 64):
            target = to_square(img, size)
            arch = SirenArch(hidden=32, dim_out=3)
            cells = [f"{fit(target, arch, steps=300, lr=lr).psnr.item():.2f}" for lr in (1e-3, 3e-3)]
            cells += [f"{fit_learned(target, arch, net, steps=300, notice=print)[0].psnr.item():.2f}"
                      for net in nets.values()]
            rows.append([png.name, f"{size}²", *cells])
            print(rows[-1], flush=True)
    body = "\n".join([
        "Bundled colour photos (`assets/examples`), SIREN 2→32→32→3, 300 steps on all pixels from the same "
        "initialisation, PSNR (dB) at the end: Adam at the app's colour lr (`inr.fit.LR`, 1e-3) and at the lr "
        "tuned on val patches (3e-3), and the optimizers meta-trained on colour patches (not shipped).",
        "",
        table(["photo", "grid", "Adam lr 1e-3", "Adam lr 3e-3", *(LABELS[n] for n in nets)], rows),
    ])
    write_section("optimizer-photos", "Learned optimizer: bundled colour photos", body,
                  command="python -m bench.optimizer photos")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["train", "report", "ship", "variants", "photos"])
    ap.add_argument("--minutes", type=float, default=30.0)
    ap.add_argument("--test", type=int, default=100)
    ap.add_argument("--val", type=int, default=32)
    ap.add_argument("--max-steps", type=int, default=1000)
    ap.add_argument("--variant", choices=list(VARIANTS), default="gmn", help="ship: which meta-trained run")
    ap.add_argument("--name", default="learned", help="ship: file name in assets/optimizers (learned: the default)")
    ap.add_argument("--channels", default=None,
                    help="ship: channel counts it is meant for, e.g. 1 or 3 (default: any image)")
    ap.add_argument("--widths", default=None, help="ship: SIREN widths it is meant for, e.g. 32 (default: any)")
    args = ap.parse_args()
    {"train": _train, "report": _report, "ship": _ship, "variants": _variants, "photos": _photos}[args.phase](args)


if __name__ == "__main__":
    main()
