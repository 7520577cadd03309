"""Meta-training the learned optimizer (`gmn.optim`) on fitting SIRENs to training images.

    python -m gmn metatrain --out ~/.cache/gmn-inr/runs/lopt [--minutes 30] [--no-gmn] [--datasets mnist5k,patches]

Runs belong in the data home (`inr.home.runs_dir`, $GMN_HOME/runs), not in the checkout.

Truncated backpropagation through unrolls: `batch` INRs are fitted from fresh random SIRENs for
`horizon` steps (one episode, one dataset, alternating); every `unroll` steps the meta-loss
— the mean over those steps and INRs of log10(MSE + 1e-10), i.e. −PSNR/10 — is backpropagated
into the meta-parameters (first order: the gradients and GradMetaNet features fed to the update
are treated as inputs; the dependence of the loss on θ through the updates is exact) and AdamW
takes a step. The state carries over (detached) between truncations of an episode.

With `estimator="es"` the meta-gradient is instead estimated by antithetic evolution strategies
over whole fits (no truncation bias): each episode draws `es_pairs` Gaussian directions ε in the
space of the meta-parameters named by `es_params` ("schedule": α, its schedule, the per-layer
factors and µ; "all": every meta-parameter), fits the episode's INRs for `horizon` steps at
θ ± σε from the same initialisations, and steps Adam along Σ (f₊ − f₋) ε / (2σ·pairs), where the
fitness f is the mean best PSNR (capped at 100 dB) the fits reach within the horizon.

Budget: `minutes` of process CPU time (validation excluded), or `meta_steps`. Outputs in DIR:
last.safetensors (resume state, saved after every episode), best.safetensors + best.json (the
optimizer with the best validation PSNR: 8 val images per dataset fitted for `val_steps`),
log.jsonl. A killed run resumes from its last finished episode.
"""

from __future__ import annotations

import json
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from inr.datasets import load_dataset
from inr.home import say_where
from inr.siren import SirenArch, coordinate_grid, forward, init_params

from .optim import LearnedOptimizer, LearnedOptimizerConfig, sample_pixels, save_optimizer
from .train import _commit, _load_state, _save_state


@dataclass
class MetaTrainConfig:
    out: str
    datasets: tuple[str, ...] = ("mnist5k", "patches")
    hidden: int = 32  # SIREN width (2→hidden→hidden→C)
    batch: int = 16
    unroll: int = 50
    horizon: int = 400
    meta_lr: float = 3e-4
    clip: float = 1.0
    minutes: float | None = 30.0  # process CPU minutes
    meta_steps: int | None = None
    val_every: int = 5  # episodes
    val_size: int = 8
    val_steps: int = 300
    seed: int = 0
    device: str = "cpu"
    limit: int | None = None  # first `limit` training images per dataset (tests)
    optimizer: dict = field(default_factory=dict)  # LearnedOptimizerConfig overrides, e.g. {"gmn": false}
    estimator: str = "tbptt"  # "tbptt" (truncated backpropagation) or "es" (evolution strategies, whole fits)
    es_pairs: int = 8
    es_sigma: float = 0.1
    es_params: str = "schedule"  # "schedule", "head" or "all" (see `es_parameters`)
    init: str | None = None  # start from this learned-optimizer file's matching meta-parameters
    siren_init: str | None = None  # fit from this SIREN init (`inr metainit` file) instead of random draws

    def to_dict(self) -> dict:
        d = asdict(self)
        d["datasets"] = list(self.datasets)
        return d


def fit_loss(params, arch: SirenArch, grid, target):
    """Per-INR MSE over all pixels and channels (as `inr.fit`): (N,)."""
    return (forward(params, arch, grid) - target).pow(2).mean(dim=(1, 2))


def _episode_data(cfg: MetaTrainConfig, data: dict, episode: int, device):
    name = cfg.datasets[episode % len(cfg.datasets)]
    images = data[name]
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + episode)
    idx = torch.randperm(len(images), generator=gen)[: cfg.batch]
    imgs = images[idx].to(device)
    arch = SirenArch(hidden=cfg.hidden, dim_out=imgs.shape[-1])
    params = [p.to(device) for p in start_params(cfg.siren_init, arch, len(idx), gen)]
    return name, imgs, arch, params, gen


@torch.no_grad()
def start_params(siren_init: str | None, arch: SirenArch, n: int, gen: torch.Generator):
    """The SIRENs a fit starts from: n random draws, or n copies of a meta-learned init file."""
    if siren_init is None:
        return init_params(arch, n, generator=gen)
    from inr.metainit import load_init

    return load_init(siren_init, n, arch)


def run_learned(net: LearnedOptimizer, images: torch.Tensor, arch: SirenArch, steps: int, *, seed: int = 0,
                record: bool = False, siren_init: str | None = None):
    """Fit `images` (N, H, W, C) for `steps` steps with the learned optimizer (functional loop).

    Returns (best PSNR (N,), PSNR per step (steps + 1, N) if `record`). PSNR is of the current
    parameters on the full image; the best is the max over steps (as `inr.fit` keeps the best)."""
    n, h, w, c = images.shape
    gen = torch.Generator().manual_seed(seed)
    params = start_params(siren_init, arch, n, gen)
    grid, target = coordinate_grid(h, w), images.reshape(n, h * w, c)
    state = net.init_state(params)
    curve = []
    best = torch.full((n,), -math.inf)
    for _ in range(steps + 1):
        with torch.enable_grad():
            ps = [p.detach().requires_grad_(True) for p in params]
            err = fit_loss(ps, arch, grid, target)
            grads = torch.autograd.grad(err.sum(), ps)
        p_now = -10 * torch.log10(err.detach().clamp_min(1e-12))
        p_now = torch.where(torch.isfinite(p_now), p_now, torch.full_like(p_now, -math.inf))
        best = torch.maximum(best, p_now)
        if record:
            curve.append(p_now)
        gfeat = None
        if net.gmn is not None:
            x, t = sample_pixels(images, net.config.points, gen)
            gfeat = net.gradient_features(params, arch, x, t)
        params, state = net.step(params, list(grads), state, gfeat)
    return best, (torch.stack(curve) if record else None)


ES_SCHEDULE = ("log_alpha", "schedule", "log_layer_alpha", "mu_logit", "beta2_logit")


def es_parameters(net: LearnedOptimizer, which: str) -> list[torch.nn.Parameter]:
    """The meta-parameters evolution strategies perturbs: "schedule" (α, its schedule and per-layer
    factors, µ, β2 if learnable), "head" (those, β and the last layer of F: F's hidden units and the
    GradMetaNet stay at their random initialisation, as fixed features) or "all"."""
    if which == "all":
        return list(net.parameters())
    names = set(ES_SCHEDULE)
    if which == "head":
        if net.config.update != "mlp":
            raise ValueError("es_params 'head' needs update='mlp' (F's last layer)")
        last = len(net.f) - 1
        names |= {"beta", f"f.{last}.weight", f"f.{last}.bias"}
    elif which != "schedule":
        raise ValueError(f"es_params must be 'schedule', 'head' or 'all', got {which!r}")
    return [p for name, p in net.named_parameters() if name in names]


def load_init(net: LearnedOptimizer, path: str) -> list[str]:
    """Copy into `net` the meta-parameters of the optimizer file `path` whose names and shapes match
    (e.g. a learned schedule into a run that adds GradMetaNet features). Returns the names copied."""
    from .optim import load_optimizer

    start, _ = load_optimizer(path)
    own = net.state_dict()
    copied = {k: v for k, v in start.state_dict().items() if k in own and own[k].shape == v.shape}
    if not copied:
        raise ValueError(f"{path} shares no meta-parameters with this run's optimizer")
    net.load_state_dict(copied, strict=False)
    return sorted(copied)


@torch.no_grad()
def es_gradient(net: LearnedOptimizer, params: list[torch.nn.Parameter], images: torch.Tensor, arch: SirenArch,
                cfg: MetaTrainConfig, gen: torch.Generator, seed: int) -> tuple[list[torch.Tensor], float]:
    """Antithetic ES estimate of ∇ fitness for `params` (same images and initialisations for every
    evaluation). Returns (gradient per parameter, mean fitness of the evaluations)."""
    base = [p.detach().clone() for p in params]
    grad = [torch.zeros_like(p) for p in params]
    scores = []
    for _ in range(cfg.es_pairs):
        eps = [torch.randn(p.shape, generator=gen).to(p) for p in params]
        f = []
        for sign in (1.0, -1.0):
            for p, b, e in zip(params, base, eps):
                p.copy_(b + sign * cfg.es_sigma * e)
            best, _ = run_learned(net, images, arch, cfg.horizon, seed=seed, siren_init=cfg.siren_init)
            f.append(torch.nan_to_num(best, nan=0.0, neginf=0.0).clamp(max=100).mean().item())
        scores += f
        for g, e in zip(grad, eps):
            g.add_(e, alpha=(f[0] - f[1]) / (2 * cfg.es_sigma * cfg.es_pairs))
    for p, b in zip(params, base):
        p.copy_(b)
    return grad, sum(scores) / len(scores)


def _validate(net: LearnedOptimizer, val: dict, cfg: MetaTrainConfig) -> float:
    scores = []
    for imgs in val.values():
        arch = SirenArch(hidden=cfg.hidden, dim_out=imgs.shape[-1])
        best, _ = run_learned(net, imgs, arch, cfg.val_steps, seed=cfg.seed, siren_init=cfg.siren_init)
        scores.append(best.clamp(max=100).mean().item())
    return sum(scores) / len(scores)


def metatrain(cfg: MetaTrainConfig, *, log: Callable[[str], None] = print, progress: bool = False) -> dict:
    """Meta-train (or resume) into cfg.out. Returns the final state dict."""
    device = torch.device(cfg.device)
    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    say_where("metatrain", out, log)
    ocfg = LearnedOptimizerConfig.from_dict(cfg.optimizer)  # (JSON lists become the config's tuples)
    torch.manual_seed(cfg.seed)
    net = LearnedOptimizer(ocfg).to(device)
    if cfg.estimator not in ("tbptt", "es"):
        raise ValueError(f"estimator must be 'tbptt' or 'es', got {cfg.estimator!r}")
    if cfg.init:
        names = load_init(net, cfg.init)
        log(f"initialised {len(names)} of {len(net.state_dict())} meta-parameter tensors from {cfg.init}")
    es_params = es_parameters(net, cfg.es_params) if cfg.estimator == "es" else []
    meta_opt = torch.optim.AdamW(es_params or net.parameters(), lr=cfg.meta_lr, weight_decay=0.0)
    state = {"episode": 0, "meta_step": 0, "cpu": 0.0, "wall": 0.0, "best_val": None, "best_episode": None}
    last = out / "last.safetensors"
    if last.exists():
        state = _load_state(last, net, meta_opt)
        log(f"resumed from {last}: episode {state['episode']}, {state['cpu'] / 60:.1f} CPU-min")
    data = {d: load_dataset(d, "train")[: cfg.limit] for d in cfg.datasets}
    val = {d: load_dataset(d, "val")[: cfg.val_size] for d in cfg.datasets}
    bar = None
    if progress and cfg.minutes:
        from tqdm import tqdm

        bar = tqdm(total=cfg.minutes, initial=state["cpu"] / 60, unit="CPU-min", desc="meta-train")

    def done() -> bool:
        if cfg.meta_steps is not None and state["meta_step"] >= cfg.meta_steps:
            return True
        return cfg.minutes is not None and state["cpu"] >= cfg.minutes * 60

    def write_log(rec: dict) -> None:  # opened per record: an interrupt before the first leaves no empty log
        with open(out / "log.jsonl", "a") as fh:
            fh.write(json.dumps(rec) + "\n")

    if state["best_val"] is None:  # the starting point (Adam with lr α) is a candidate too
        state["best_val"], state["best_episode"] = _validate(net, val, cfg), 0
        save_optimizer(out / "best.safetensors", net, _card(cfg, state, ocfg))
        write_log({"episode": 0, "val_psnr": state["best_val"]})
    while not done():
        c0, t0 = time.process_time(), time.perf_counter()
        name, imgs, arch, params, gen = _episode_data(cfg, data, state["episode"], device)
        n, h, w, c = imgs.shape
        grid, target = coordinate_grid(h, w, device=device), imgs.reshape(n, h * w, c)
        ost = net.init_state(params)
        if cfg.estimator == "es":
            losses, ok = [_es_step(net, meta_opt, es_params, imgs, arch, cfg, gen, state)], True
        else:
            losses, ok = _tbptt_episode(net, meta_opt, params, ost, imgs, arch, grid, target, gen, cfg, ocfg, state)
        state["episode"] += 1
        dc, dt = time.process_time() - c0, time.perf_counter() - t0
        state["cpu"] += dc
        state["wall"] += dt
        rec = _episode_record(net, state, name, losses, ok)
        if state["episode"] % cfg.val_every == 0 or done():
            v = _validate(net, val, cfg)
            rec["val_psnr"] = v
            if state["best_val"] is None or v > state["best_val"]:
                state["best_val"], state["best_episode"] = v, state["episode"]
                save_optimizer(out / "best.safetensors", net, _card(cfg, state, ocfg))
        write_log(rec)
        log(json.dumps(rec))
        _save_state(last, net, meta_opt, state)
        if bar is not None:
            bar.update(dc / 60)
    if bar is not None:
        bar.close()
    return state


def _es_step(net: LearnedOptimizer, meta_opt, es_params: list, imgs: torch.Tensor, arch: SirenArch,
             cfg: MetaTrainConfig, gen: torch.Generator, state: dict) -> float:
    """One evolution-strategies meta-step on this episode's images (whole fits scored); returns its loss in the
    TBPTT loss's units (−PSNR/10). Counts the meta-step in `state`."""
    fit_seed = cfg.seed * 1_000_003 + state["episode"]
    grad, fitness = es_gradient(net, es_params, imgs, arch, cfg, gen, seed=fit_seed)
    meta_opt.zero_grad(set_to_none=True)
    for p, g in zip(es_params, grad):
        p.grad = -g  # ascent on the fitness
    meta_opt.step()
    state["meta_step"] += 1
    return -fitness / 10  # in the TBPTT loss's units: −PSNR/10


def _tbptt_episode(net: LearnedOptimizer, meta_opt, params: list, ost, imgs: torch.Tensor, arch: SirenArch,
                   grid: torch.Tensor, target: torch.Tensor, gen: torch.Generator, cfg: MetaTrainConfig,
                   ocfg: LearnedOptimizerConfig, state: dict) -> tuple[list[float], bool]:
    """One episode of truncated backpropagation: cfg.horizon fit steps in unrolls of cfg.unroll, one meta-step
    each (counted in `state`). Returns (the unrolls' meta-losses, False when one was not finite)."""
    losses, ok = [], True
    for _ in range(0, cfg.horizon, cfg.unroll):
        theta = [p.detach().requires_grad_(True) for p in params]
        ost = ost.detach()
        terms = []
        for k in range(cfg.unroll + 1):
            err = fit_loss(theta, arch, grid, target)  # (N,)
            if k > 0:
                terms.append(torch.log10(err + 1e-10).mean())
            if k == cfg.unroll:
                break
            grads = torch.autograd.grad(err.sum(), theta, retain_graph=k > 0)
            gfeat = None
            if net.gmn is not None:
                x, t = sample_pixels(imgs, ocfg.points, gen)
                gfeat = net.gradient_features(theta, arch, x, t)
            theta, ost = net.step(theta, list(grads), ost, gfeat)
        meta_loss = torch.stack(terms).mean()
        if not torch.isfinite(meta_loss):
            ok = False
            break
        meta_opt.zero_grad(set_to_none=True)
        meta_loss.backward()
        torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip)
        meta_opt.step()
        state["meta_step"] += 1
        losses.append(meta_loss.item())
        params = [p.detach() for p in theta]
        if cfg.meta_steps is not None and state["meta_step"] >= cfg.meta_steps:
            break  # an exact meta-step budget ends the episode early
    return losses, ok


def _episode_record(net: LearnedOptimizer, state: dict, name: str, losses: list[float], ok: bool) -> dict:
    """The log line of an episode: its data, mean meta-loss, final PSNR, the step-size parameters, budget spent."""
    rec = {"episode": state["episode"], "data": name, "meta_loss": sum(losses) / max(len(losses), 1),
           "final_psnr": -10 * losses[-1] if losses else None, "finite": ok,
           "alpha": net.alpha.item(), "beta": net.beta.item(), "mu": net.mu.item(),
           "cpu_min": state["cpu"] / 60, "meta_step": state["meta_step"]}
    if net.schedule is not None:
        rec["schedule"] = [round(x, 4) for x in net.schedule.tolist()]
    if net.log_layer_alpha is not None:
        rec["layer_log_alpha"] = [round(x, 4) for x in net.log_layer_alpha.tolist()]
    return rec


def _card(cfg: MetaTrainConfig, state: dict, ocfg: LearnedOptimizerConfig) -> dict:
    return {
        "kind": "learned optimizer" + ("" if ocfg.gmn else " (no GradMetaNet)"),
        "data": {d: "train" for d in cfg.datasets},
        "siren": f"2→{cfg.hidden}→{cfg.hidden}→C",
        "metatrain": cfg.to_dict(),
        "val_psnr": round(state["best_val"], 3) if state["best_val"] is not None else None,
        "val": f"mean best PSNR (dB, capped at 100) of {cfg.val_size} val images per dataset after "
               f"{cfg.val_steps} steps",
        "episode": state["episode"],
        "meta_steps": state["meta_step"],
        "cpu_minutes": round(state["cpu"] / 60, 2),
        "wall_minutes": round(state["wall"] / 60, 2),
        "device": cfg.device,
        "commit": _commit(),
    }
