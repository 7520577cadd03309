"""Curvature from gradient sets (paper §7.1, docs/DESIGN.md §7): predict the diagonal of the Fisher
information of a SIREN's output from the decomposed gradients at a few points.

    F(θ) = E_x[∇_θ f(x) ∇_θ f(x)ᵀ],  x ~ U[-1, 1]^d,   diag: F_W[i,j] = E[g_i² a_j²],  F_b[i] = E[g_i²]

with (a, g) the rank-1 factors of ∇f at x (`decompose_gradients(..., objective=output())`).
Input: the gradient set at B = 128 points. Target: the diagonal over 1,024 independent points.

- `plain_fisher`: the plain estimator, the same mean over the B input points (exact from the factors).
- `CurvaturePredictor`: GradMetaNet, GradMetaNet++, WS or MLP refining the plain estimate.
  Output (one design for all four): with r = plain / s, s the per-tensor mean of the plain estimate
  (an invariant scale, so nothing depends on the units of a layer),

      log F̂ = log s + (α_t + c₀) ⊙ log r + c₁

  α_t a learnable scalar per tensor (init 1) and c the model's weight-space output (init ≈ 0, so an
  untrained predictor *is* the plain estimator). α < 1 shrinks the noisy per-entry estimate; c₁ can
  add a structured prior such as the factorised E[g_i²]·E[a_j²] (additive in log space); c₀ (GradMetaNet(++)
  only, a second channel) makes the shrinkage per entry. GradMetaNet(++) read (a, g) per point plus
  two point-invariant per-neuron features, log mean_b a² and log mean_b g² (`moment_features`).
  WS reads θ, the averaged gradient and log r as weight channels; the MLP reads the flattened log r
  and averaged gradient (it is tied to one architecture).
- Metric `nmse`: per INR, the mean over the 2L tensors of ‖F̂_t − F_t‖² / ‖F_t‖² (per-tensor
  normalisation: layer scales differ by orders of magnitude), then the mean over INRs.
- Data: `gaussian_sirens` (random Gaussian weights with the std of SirenNet's initialisation) or fitted
  zoo INRs (`inr_source("zoo:mnist5k", ...)`), points uniform in [-1, 1]^d.
"""

from __future__ import annotations

import copy
import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn

from inr.siren import Params, SirenArch, select

from .baselines import FlatGradientMLP, FlatMLPConfig
from .decompose import NeuronSet, decompose_gradients, output, rank1_gradients
from .model import GradMetaNet, GradMetaNetConfig, GradMetaNetPP, GradMetaNetPPConfig
from .modelfile import load_module, save_module
from .weightspace import WSNet, WSNetConfig

PREDICTOR_FORMAT = "gmn-fisher-predictor"
ASSETS = Path(__file__).resolve().parent.parent / "assets" / "curvature"
EPS = 1e-6  # floor of r = plain / s in log r (relative to the tensor mean)
LOG_MAX = 30.0  # clamp of the predicted log ratio (an untrained model must not overflow)

# data


def gaussian_sirens(arch: SirenArch, n: int, *, seed: int = 0) -> Params:
    """N SIRENs with Gaussian weights and biases, std of SirenNet's uniform initialisation
    (first layer 1/(d_0 √3), others √2/(ω √d_in)): the paper's random-INR setting in our ω = 30 convention."""
    gen = torch.Generator().manual_seed(seed)
    params: Params = []
    for i, (rows, cols) in enumerate(zip(arch.dims[1:], arch.dims[:-1], strict=True)):
        w0 = arch.w0_initial if i == 0 else arch.w0
        bound = 1.0 / cols if i == 0 else math.sqrt(6.0 / cols) / w0
        std = bound / math.sqrt(3.0)
        params += [torch.randn(n, rows, cols, generator=gen) * std, torch.randn(n, rows, generator=gen) * std]
    return params


def inr_source(source: str, n: int, *, arch: SirenArch | None = None, split: str = "train", seed: int = 0,
               zoo_root=None) -> tuple[Params, SirenArch]:
    """INRs for a curvature dataset: "gauss" (Gaussian SIRENs of `arch`, default 2→32→32→1),
    "zoo:DATASET" (the first n fitted INRs of zoo/DATASET-split) or "mix:DATASET" (half of each)."""
    if source.startswith("mix:"):
        zoo, zarch = inr_source(f"zoo:{source[4:]}", n - n // 2, split=split, zoo_root=zoo_root)
        return [torch.cat([z, g]) for z, g in zip(zoo, gaussian_sirens(zarch, n // 2, seed=seed))], zarch
    if source == "gauss":
        arch = arch or SirenArch()
        return gaussian_sirens(arch, n, seed=seed), arch
    if source.startswith("zoo:"):
        from inr.zoo import load_zoo

        from .data import ensure_zoo

        params, zarch, _, _ = load_zoo(ensure_zoo(source[4:], split, zoo_root))
        if n > params[0].shape[0]:
            raise ValueError(f"{source} {split} has {params[0].shape[0]} INRs, asked for {n}")
        return select(params, slice(0, n)), zarch
    raise ValueError(f"unknown INR source {source!r}: use 'gauss' or 'zoo:DATASET'")


def uniform_points(n: int, b: int, dim: int, generator: torch.Generator) -> Tensor:
    """(N, B, d) points uniform in [-1, 1]^d, independent per INR."""
    return torch.rand(n, b, dim, generator=generator) * 2 - 1


def output_gradients(params: Params, arch: SirenArch, x: Tensor) -> NeuronSet:
    """Decomposed gradients of the output f (one channel) at x: feats (N, B, n, 2)."""
    if arch.dim_out != 1:
        raise ValueError(f"the Fisher predictor handles 1-channel SIRENs; this one has {arch.dim_out} channels")
    return decompose_gradients(params, arch, x, objective=output())


def plain_fisher(neurons: NeuronSet, arch: SirenArch) -> Params:
    """Plain estimator of the Fisher diagonal from a gradient set: mean_b (∇f_b)² in Params layout,
    F_W[i,j] = mean_b g_i² a_j² (N, d_l, d_{l-1}), F_b[i] = mean_b g_i² (N, d_l)."""
    if list(neurons.dims) != arch.dims:
        raise ValueError(f"gradient set has layer sizes {neurons.dims}, architecture has {arch.dims}")
    a2 = neurons.a.pow(2).split(neurons.dims, -1)
    g2 = neurons.g.pow(2).split(neurons.dims, -1)
    b = neurons.num_points
    out: Params = []
    for i in range(arch.depth):
        out += [torch.einsum("nbi,nbj->nij", g2[i + 1], a2[i]) / b, g2[i + 1].mean(1)]
    return out


def fisher_diagonal(params: Params, arch: SirenArch, x: Tensor, *, chunk: int = 256) -> Params:
    """Fisher diagonal of the output over points x (N, B, d) or (B, d), any number of channels
    (Σ_c over outputs), computed INR-chunk by INR-chunk."""
    n = params[0].shape[0]
    out: list[list[Tensor]] = []
    for s in range(0, n, chunk):
        p = select(params, slice(s, s + chunk))
        xs = x[s : s + chunk] if x.dim() == 3 else x
        parts = None
        for c in range(arch.dim_out):
            ns = decompose_gradients(p, arch, xs, objective=output(None if arch.dim_out == 1 else c))
            f = plain_fisher(ns, arch)
            parts = f if parts is None else [u + v for u, v in zip(parts, f, strict=True)]
        out.append(parts)
    return [torch.cat(ts, 0) for ts in zip(*out, strict=True)]


@dataclass
class FisherSets:
    """N gradient sets with their targets: params, neurons (N, B, n, 2) at B input points, and the
    Fisher diagonal over independent target points (Params layout)."""

    params: Params
    arch: SirenArch
    neurons: NeuronSet
    target: Params

    def __len__(self) -> int:
        return self.params[0].shape[0]

    def select(self, index) -> FisherSets:
        ns = NeuronSet(self.neurons.feats[index], self.neurons.layer, list(self.neurons.dims))
        return FisherSets(select(self.params, index), self.arch, ns, [t[index] for t in self.target])


def make_sets(params: Params, arch: SirenArch, *, points: int = 128, target_points: int = 1024,
              seed: int = 0) -> FisherSets:
    """Gradient sets at `points` uniform points per INR and the Fisher diagonal over `target_points`
    independent uniform points (all drawn from `seed`)."""
    gen = torch.Generator().manual_seed(seed)
    n = params[0].shape[0]
    params = [t.detach().float() for t in params]
    x = uniform_points(n, points, arch.dim_in, gen)
    xt = uniform_points(n, target_points, arch.dim_in, gen)
    with torch.no_grad():
        neurons = output_gradients(params, arch, x)
        target = fisher_diagonal(params, arch, xt)
    return FisherSets(params, arch, neurons, target)


# metric


def nmse(pred: Params, target: Params) -> Tensor:
    """Normalised MSE per INR: mean over tensors t of ‖pred_t − target_t‖² / ‖target_t‖²: (N,)."""
    errs = [(p - t).pow(2).flatten(1).sum(1) / t.pow(2).flatten(1).sum(1).clamp_min(1e-30)
            for p, t in zip(pred, target, strict=True)]
    return torch.stack(errs, 1).mean(1)


# predictors


def moment_features(neurons: NeuronSet, eps: float = 1e-12) -> NeuronSet:
    """(a, g) per point plus the point-invariant log mean_b a² and log mean_b g² of each neuron,
    broadcast to every point: feats (N, B, n, 4). Permutation-equivariant, point-invariant extras."""
    m = neurons.feats.pow(2).mean(1, keepdim=True).clamp_min(eps).log()  # (N, 1, n, 2)
    feats = torch.cat([neurons.feats, m.expand_as(neurons.feats)], -1)
    return NeuronSet(feats, neurons.layer, list(neurons.dims))


def log_ratio(plain: Params) -> tuple[list[Tensor], list[Tensor]]:
    """Per-tensor scale s (N, 1[, 1]) (mean of the plain estimate) and log r = log(plain / s + EPS)."""
    scales = [t.flatten(1).mean(1).clamp_min(1e-30).view(-1, *([1] * (t.dim() - 1))) for t in plain]
    return scales, [(t / s + EPS).log() for t, s in zip(plain, scales, strict=True)]


@dataclass
class PredictorConfig:
    """A Fisher-diagonal predictor: kind, the SIRENs it reads (1-channel), sizes."""

    kind: str = "gmn"
    arch: dict = field(default_factory=lambda: SirenArch().to_dict())
    points: int = 128  # gradient-set size it was trained with (any B works)
    hidden: int = 32  # GradMetaNet width / GradMetaNet++ dim / WS channels
    layers: int = 2  # interaction layers / attention blocks / WS layers / MLP hidden layers
    deepsets_layers: int = 1
    decoder_hidden: int = 32
    lowrank: int = 4
    heads: int = 4
    pair_hidden: int = 8
    mlp_hidden: int = 256
    out_scale: float = 0.01  # initial per-tensor scale of the model's output c

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> PredictorConfig:
        """The config of a predictor file; an unknown key (a misspelling would load the default) is refused."""
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise ValueError(f"unknown Fisher predictor config key(s): {', '.join(unknown)}; known: "
                             f"{', '.join(cls.__dataclass_fields__)}")
        return cls(**d)


def _gmn_net(cfg: PredictorConfig, arch: SirenArch) -> nn.Module:
    return GradMetaNet(GradMetaNetConfig.for_arch(
        arch, in_features=4, hidden=cfg.hidden, interaction_layers=cfg.layers, deepsets_layers=cfg.deepsets_layers,
        decoder_hidden=cfg.decoder_hidden, lowrank=cfg.lowrank, out_channels=2, edit_scale_init=cfg.out_scale))


def _gmnpp_net(cfg: PredictorConfig, arch: SirenArch) -> nn.Module:
    return GradMetaNetPP(GradMetaNetPPConfig.for_arch(
        arch, in_features=4, dim=cfg.hidden, blocks=cfg.layers, heads=cfg.heads, pair_hidden=cfg.pair_hidden,
        lowrank=cfg.lowrank, out_channels=2, edit_scale_init=cfg.out_scale))


def _ws_net(cfg: PredictorConfig, arch: SirenArch) -> nn.Module:
    return WSNet(WSNetConfig.for_arch(arch, in_channels=3, hidden=cfg.hidden, layers=cfg.layers,
                                      edit_scale_init=cfg.out_scale))


def _mlp_net(cfg: PredictorConfig, arch: SirenArch) -> nn.Module:
    return FlatGradientMLP(arch, FlatMLPConfig(hidden=cfg.mlp_hidden, layers=cfg.layers, use_params=True,
                                               edit_scale_init=cfg.out_scale))


_BUILD = {"gmn": _gmn_net, "gmnpp": _gmnpp_net, "ws": _ws_net, "mlp": _mlp_net}  # kind → its network
KINDS = tuple(_BUILD)


class CurvaturePredictor(nn.Module):
    """log F̂ = log s + (α_t + c₀) log r + c₁ on top of the plain estimator (module doc)."""

    def __init__(self, config: PredictorConfig):
        super().__init__()
        if config.kind not in KINDS:
            raise ValueError(f"unknown predictor kind {config.kind!r}; choose one of {', '.join(KINDS)}")
        self.config = cfg = config
        arch = self.arch
        if arch.dim_out != 1:
            raise ValueError("the Fisher predictor handles 1-channel SIRENs")
        self.net = _BUILD[cfg.kind](cfg, arch)
        self.alpha = nn.Parameter(torch.ones(2 * arch.depth))

    @property
    def arch(self) -> SirenArch:
        return SirenArch.from_dict(self.config.arch)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def _inputs(self, params: Params, neurons: NeuronSet, logr: list[Tensor], arch: SirenArch):
        kind = self.config.kind
        if kind in ("gmn", "gmnpp"):
            return (moment_features(neurons),)
        grad = rank1_gradients(neurons, arch)
        if kind == "ws":
            extra = [torch.stack([g, r], -1) for g, r in zip(grad, logr, strict=True)]
            return params, extra
        return logr, grad  # MLP: flattened log r (its "gradient" slot) and averaged gradient (its "params" slot)

    @torch.no_grad()
    def fit_norm(self, sets: FisherSets) -> None:
        """Input statistics (per layer and channel; per tensor for WS and MLP) from training sets."""
        plain = plain_fisher(sets.neurons, sets.arch)
        inputs = self._inputs(sets.params, sets.neurons, log_ratio(plain)[1], sets.arch)
        if self.config.kind in ("gmn", "gmnpp"):
            self.net.fit_norm(inputs[0])
        else:
            self.net.fit_norm(*inputs)

    def correction(self, params: Params, neurons: NeuronSet, logr: list[Tensor], arch: SirenArch) -> list[Tensor]:
        """The model's output c: Params layout with 1 or 2 trailing channels."""
        inputs = self._inputs(params, neurons, logr, arch)
        out = self.net(*inputs)
        return out if self.config.kind in ("gmn", "gmnpp") else [t.unsqueeze(-1) for t in out]

    def forward(self, params: Params, neurons: NeuronSet) -> Params:
        """Predicted Fisher diagonal of N INRs from their gradient sets (feats (N, B, n, 2)): Params layout."""
        arch, dims = self.arch, list(neurons.dims)
        fixed_width = self.config.kind == "mlp"  # a flat vector: one width only
        if len(dims) != len(arch.dims) or dims[0] != arch.dim_in or dims[-1] != arch.dim_out or \
                (fixed_width and dims != arch.dims) or len(set(dims[1:-1])) != 1:
            raise ValueError(f"predictor expects SIRENs {'→'.join(map(str, arch.dims))}"
                             f"{'' if fixed_width else ' (any hidden width)'}, got {'→'.join(map(str, dims))}")
        arch = arch.with_hidden(dims[1])
        plain = plain_fisher(neurons, arch)
        scales, logr = log_ratio(plain)
        c = self.correction(params, neurons, logr, arch)
        out = []
        for s, r, ct, a in zip(scales, logr, c, self.alpha, strict=True):
            alpha = a + ct[..., 0] if ct.shape[-1] == 2 else a
            z = alpha * r + ct[..., -1]
            out.append(s * z.clamp(-LOG_MAX, LOG_MAX).exp())
        return out


@torch.no_grad()
def predict(model: CurvaturePredictor | None, sets: FisherSets, *, chunk: int = 64) -> Params:
    """Predictions for all sets (the plain estimator when model is None), in chunks of INRs."""
    outs = []
    for s in range(0, len(sets), chunk):
        part = sets.select(slice(s, s + chunk))
        outs.append(plain_fisher(part.neurons, sets.arch) if model is None else model(part.params, part.neurons))
    return [torch.cat(ts, 0) for ts in zip(*outs, strict=True)]


def evaluate(model: CurvaturePredictor | None, sets: FisherSets) -> float:
    """Mean normalised MSE over the sets (model None: the plain estimator)."""
    was = model.training if model is not None else False
    if model is not None:
        model.eval()
    err = nmse(predict(model, sets), sets.target).mean().item()
    if model is not None:
        model.train(was)
    return err


# training


@dataclass
class TrainSettings:
    steps: int = 400
    batch: int = 16
    lr: float = 2e-3
    weight_decay: float = 0.0
    val_every: int = 25
    seed: int = 0


def train_predictor(model: CurvaturePredictor, train: FisherSets, val: FisherSets | None,
                    settings: TrainSettings | None = None, *, log=None) -> dict:
    """Adam on the normalised MSE; keeps the best-validation state (step 0 = plain estimator included).
    Returns {best_val, best_step, history [(step, train loss, val)], seconds, steps}."""
    st = settings or TrainSettings()
    torch.manual_seed(st.seed)
    gen = torch.Generator().manual_seed(st.seed)
    model.fit_norm(train)
    opt = torch.optim.AdamW(model.parameters(), lr=st.lr, weight_decay=st.weight_decay)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=st.lr, total_steps=max(st.steps, 1), pct_start=0.1)
    t0 = time.perf_counter()
    best_val = evaluate(model, val) if val is not None else math.inf
    best_state, best_step, history = copy.deepcopy(model.state_dict()), 0, [(0, None, best_val)]
    n, batch = len(train), min(st.batch, len(train))
    order, pos, running = torch.randperm(n, generator=gen), 0, []
    model.train()
    for step in range(1, st.steps + 1):
        if pos + batch > n:
            order, pos = torch.randperm(n, generator=gen), 0
        part = train.select(order[pos : pos + batch])
        pos += batch
        loss = nmse(model(part.params, part.neurons), part.target).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running.append(loss.item())
        if step % st.val_every == 0 or step == st.steps:
            v = evaluate(model, val) if val is not None else float(sum(running) / len(running))
            history.append((step, sum(running) / len(running), v))
            running = []
            if v < best_val:
                best_val, best_step, best_state = v, step, copy.deepcopy(model.state_dict())
            if log:
                log(f"step {step}: train {history[-1][1]:.4f} val {v:.4f} (best {best_val:.4f} @ {best_step})")
    model.load_state_dict(best_state)
    model.eval()
    return {"best_val": best_val, "best_step": best_step, "history": history,
            "seconds": time.perf_counter() - t0, "steps": st.steps}


# files


def save_predictor(path: str | os.PathLike, model: CurvaturePredictor, card: dict | None = None) -> None:
    """Predictor weights as safetensors (config + card in its metadata), the card as JSON beside it; atomic."""
    card = {"parameters": model.num_parameters(), **(card or {})}
    save_module(path, model, PREDICTOR_FORMAT, model.config.to_dict(), card)


def load_predictor(path: str | os.PathLike) -> tuple[CurvaturePredictor, dict]:
    """Load a predictor file (never unpickles): (model in eval mode, card). ValueError with one line on problems."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"no predictor file {path}")
    return load_module(path, PREDICTOR_FORMAT, "Fisher predictor", ValueError,
                       lambda config: CurvaturePredictor(PredictorConfig.from_dict(config)))


def default_predictor(arch: SirenArch) -> Path | None:
    """The shipped predictor for SIRENs of this depth and input/output size, if any (assets/curvature)."""
    path = ASSETS / f"fisher-{arch.dim_in}d-{arch.depth}l.safetensors"
    return path if path.exists() else None


# training a predictor to ship


def main(argv: list[str] | None = None) -> None:
    """`python -m gmn.curvature --out PATH [--source zoo:mnist5k] [--n 2000] [--kind gmn] [--steps 600]`:
    train a Fisher predictor, evaluate it on held-out INRs, save it with its card."""
    import argparse
    import shlex
    import sys

    from inr.files import load_inr
    from inr.siren import concat

    ap = argparse.ArgumentParser(prog="python -m gmn.curvature", description="train a Fisher-diagonal predictor")
    ap.add_argument("--out", required=True)
    ap.add_argument("--source", default="mix:mnist5k", help="gauss, zoo:DATASET or mix:DATASET (half Gaussian)")
    ap.add_argument("--dim-in", type=int, default=2, help="for --source gauss")
    ap.add_argument("--n", type=int, default=2000, help="training INRs")
    ap.add_argument("--kind", choices=KINDS, default="gmn")
    ap.add_argument("--model", default="{}", help='JSON of PredictorConfig overrides, e.g. \'{"hidden": 32}\'')
    ap.add_argument("--steps", type=int, default=600)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    t0, cpu0 = time.perf_counter(), time.process_time()
    arch = SirenArch(dim_in=args.dim_in) if args.source == "gauss" else None
    params, arch = inr_source(args.source, args.n, arch=arch, split="train", seed=1)
    train = make_sets(params, arch, seed=11)
    held = {}
    for split, n, seed in (("val", 64, 12), ("test", 256, 13)):
        p, _ = inr_source(args.source, n, arch=arch, split=split, seed={"val": 2, "test": 3}[split])
        held[split] = make_sets(p, arch, seed=seed)
    gauss_test = make_sets(gaussian_sirens(arch, 256, seed=4), arch, seed=14)
    if args.source.startswith("mix:"):  # the zoo half of the test split alone
        zoo_test, _ = inr_source("zoo:" + args.source[4:], 256, split="test")
        held["test"] = make_sets(zoo_test, arch, seed=13)
    examples = None
    gray = [load_inr(f) for f in sorted(ASSETS.parent.glob("examples/*.safetensors"))]
    gray = [e.params for e in gray if e.arch == arch]
    if gray:  # the bundled grayscale examples (MNIST digits, camera), 16 draws of points each
        examples = make_sets([t.repeat_interleave(16, 0) for t in concat(gray)], arch, seed=15)
    cfg = PredictorConfig(kind=args.kind, arch=arch.to_dict(), **json.loads(args.model))
    torch.manual_seed(args.seed)
    model = CurvaturePredictor(cfg)
    res = train_predictor(model, train, held["val"], TrainSettings(steps=args.steps, lr=args.lr, seed=args.seed,
                                                                   val_every=max(args.steps // 12, 1)),
                          log=print)
    metrics = {"test_nmse": evaluate(model, held["test"]), "test_nmse_plain": evaluate(None, held["test"]),
               "val_nmse": res["best_val"], "best_step": res["best_step"],
               "gauss_test_nmse": evaluate(model, gauss_test), "gauss_test_nmse_plain": evaluate(None, gauss_test)}
    if examples is not None:
        metrics["examples_nmse"], metrics["examples_nmse_plain"] = evaluate(model, examples), evaluate(None, examples)
    metrics["test_improvement_over_plain"] = 1 - metrics["test_nmse"] / metrics["test_nmse_plain"]
    metrics["gauss_improvement_over_plain"] = 1 - metrics["gauss_test_nmse"] / metrics["gauss_test_nmse_plain"]
    src = {"gauss": "Gaussian", "zoo": f"{args.source[4:]} zoo", "mix": f"{args.source[4:]} zoo + Gaussian"}[
        args.source.split(":")[0]]
    card = {
        "task": "fisher-diagonal",
        "data": {"source": args.source, "train": f"{args.n} {src} INRs (train split)",
                 "val": f"64 {src} INRs", "test": "test_nmse: 256 INRs of the test split (the zoo's for mix); "
                 "gauss_test_nmse: 256 Gaussian SIRENs; examples_nmse: assets/examples grayscale INRs × 16 draws",
                 "input": "decomposed gradients of f at 128 points uniform in [-1,1]^d",
                 "target": "Fisher diagonal over 1,024 independent uniform points"},
        "metric": "normalised MSE: per INR the mean over tensors of |F^ - F|^2 / |F|^2, mean over INRs",
        "metrics": metrics,
        "train": {"steps": args.steps, "batch": 16, "lr": args.lr, "seed": args.seed, "optimizer": "AdamW, one-cycle"},
        "time": {"wall_s": round(time.perf_counter() - t0, 1), "cpu_s": round(time.process_time() - cpu0, 1),
                 "threads": args.threads},
        "command": "python -m gmn.curvature " + shlex.join(sys.argv[1:] if argv is None else argv),
    }
    save_predictor(args.out, model, card)
    print(json.dumps(metrics, indent=1))


if __name__ == "__main__":
    main()
