"""A learned optimizer for small transformers (docs/DESIGN.md §7, paper §7.2), meta-trained on
character-level language modelling with `gmn.transformer.GPT`.

    θ_{t+1} = θ_t − α_{k,t} (d_t + β F(θ_t, ∇_t, momenta, time, gradient-set features))

- d_t: Adam's bias-corrected direction m̂/(√v̂ + ε) with momentum decay µ learnable (with F = 0 the
  optimizer is Adam), as in `gmn.optim` (the SIREN learned optimizer), whose form this follows.
- α_{k,t} = α · exp(o_k + Σ_j c_j φ_j(t)): a learnable offset o_k per parameter kind k (token / position
  embedding, q·k, v·out, MLP in, MLP out, head, LayerNorm weights, biases) and a learned schedule over
  the basis φ(t) = (e^{−t/20}, e^{−t/100}, tanh(t/300), tanh(t/1000)); all start at 0 (constant α = tuned
  Adam lr). β starts at 0.1 (not the paper's 0.001: F is measured in units of Adam's recent step RMS and
  bounded by tanh, so β = 0.1 lets F move at most a tenth of an Adam step at the start), µ at 0.9.
- F: a per-parameter MLP on scale-free features of each entry: its value over its tensor's RMS, the
  normalised gradient, d_t, momenta at decays 0.5/0.9/0.99, log gradient scale, time, the kind (one-hot),
  and (`features=True`) 7 gradient-set channels. For an `nn.Linear` y = W a + b seen at n = batch × block
  token positions, the gradient set is the n rank-1 terms g_t a_tᵀ (a: the layer input, g: ∂ℓ_t/∂y, as
  `gmn.capture` records them, tested equal). Entry W_ij gets: mean and std over points of a_j and of g_i
  (each divided by its layer's RMS, so neuron permutations commute with the features), the signal-to-noise
  ratio mean_t(g_i a_j) / √mean_t(g_i² a_j²) ∈ [−1, 1] (the second moment is one matmul, (g²)ᵀ a²), the log
  of that per-token RMS over Adam's √v̂, and a flag; a bias entry gets its g statistics. Embeddings and
  LayerNorm parameters get zeros and flag 0. The baseline without these channels (`features=False`) sees
  weights, momenta and the mean gradient only.

`LMLearnedOptimizer` (nn.Module) holds the meta-parameters and a functional, differentiable `update`;
`LearnedLMOptimizer` is a `torch.optim.Optimizer` with them frozen (it records the gradient set of the
model's linears by hooks during the usual `loss.backward()`), so `gmn.lm.train_lm` runs one loop for
Adam and the learned optimizer. Meta-training (`metatrain`, `python -m gmn.lm_optim --out DIR`) uses
truncated unrolls on the training texts and sizes, both variants alternately on the same episodes.
"""

from __future__ import annotations

import argparse
import json
import math
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from torch import Tensor, nn
from torch.func import functional_call

from inr.home import data_home, say_where

from .modelfile import load_module, save_module
from .transformer import GPT, TRAIN_TEXTS, VAL_TEXTS, GPTConfig, batches, lm_loss, load_text, split_text

LM_OPTIMIZER_FORMAT = "gmn-lm-learned-optimizer"
KINDS = ("embedding", "qk", "vo", "mlp_in", "mlp_out", "head", "norm", "bias")
SCHEDULE = (("exp", 20.0), ("exp", 100.0), ("tanh", 300.0), ("tanh", 1000.0))
GSET_CHANNELS = 7
SHIPPED = Path(__file__).resolve().parent.parent / "assets" / "optimizers" / "lm-learned.safetensors"


def parameter_kind(name: str) -> int:
    """Index in KINDS of a GPT parameter by its name (e.g. "blocks.0.attn.q.weight" -> "qk")."""
    if name.endswith(".bias"):
        return KINDS.index("bias")
    if name.startswith(("tok.", "pos.")):
        return KINDS.index("embedding")
    if ".ln" in name or name.startswith("ln."):
        return KINDS.index("norm")
    for key, kind in ((".attn.q.", "qk"), (".attn.k.", "qk"), (".attn.v.", "vo"), (".attn.out.", "vo"),
                      (".mlp.fc.", "mlp_in"), (".mlp.proj.", "mlp_out"), ("head.", "head")):
        if key in "." + name:
            return KINDS.index(kind)
    raise ValueError(f"parameter {name!r} is not part of a gmn.transformer.GPT")


@dataclass
class LMOptimizerConfig:
    """Sizes and initial meta-parameters of the learned LM optimizer."""

    features: bool = True  # False: the baseline without gradient-set features
    hidden: int = 8  # F's hidden width (8: its cost per step is a few passes over the entries)
    decays: tuple[float, ...] = (0.5, 0.9, 0.99)
    time_scales: tuple[float, ...] = (10.0, 100.0, 1000.0)
    alpha: float = 2e-3  # the tuned Adam lr (gmn.lm.ADAM_LR) at the start
    beta: float = 0.1
    mu: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    @property
    def num_features(self) -> int:
        return 4 + len(self.decays) + (GSET_CHANNELS if self.features else 0)  # time and kind enter separately

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LMOptimizerConfig:
        d = dict(d)
        for k in ("decays", "time_scales"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class LMOptState:
    """Flat over all P entries: m, v (P,), one (P,) momentum per decay, u (P,) (mean square of Adam's
    direction); step count t."""

    m: Tensor
    v: Tensor
    moments: list[Tensor]
    u: Tensor
    t: int = 0

    def detach(self) -> LMOptState:
        return LMOptState(self.m.detach(), self.v.detach(), [x.detach() for x in self.moments], self.u.detach(),
                          self.t)


# gradient sets of the linears


class LinearRecorder:
    """Forward hooks on every nn.Linear of `model`: while `active`, the input a (n, d_in) of each call and,
    after backward, ∂loss/∂output g (n, d_out) (n = all positions), as `gmn.capture` records them but in
    the same backward pass as the parameter gradients (the loss here is the minibatch mean)."""

    def __init__(self, model: nn.Module):
        self.active = False
        self.a: dict[str, Tensor] = {}
        self.g: dict[str, Tensor] = {}
        self.handles = [m.register_forward_hook(self._hook(name)) for name, m in model.named_modules()
                        if isinstance(m, nn.Linear)]

    def _hook(self, name: str):
        def hook(module: nn.Module, args: tuple, out: Tensor) -> None:
            if not self.active or not out.requires_grad:
                return
            self.a[name] = args[0].detach().reshape(-1, args[0].shape[-1])  # (n, d_in)

            def keep(grad: Tensor) -> None:
                self.g[name] = grad.detach().reshape(-1, grad.shape[-1])  # (n, d_out)
            out.register_hook(keep)
        return hook

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


def _neuron_stats(x: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """Per-neuron statistics over points of x (n, d): mean and std over the layer's RMS, and the raw RMS."""
    sq = (x * x).mean(0)  # (d,)
    r = sq.mean().sqrt() + 1e-20
    mean = x.mean(0)
    return mean / r, (sq - mean * mean).clamp_min(0).sqrt() / r, sq.sqrt()


@torch.no_grad()
def gradient_set_stats(names: list[str], a: dict[str, Tensor], g: dict[str, Tensor]) -> dict[str, tuple[Tensor, ...]]:
    """Per-neuron statistics of each recorded linear's gradient set: {module name: (mean a, std a, RMS a)
    (d_in,) each, (mean g, std g, RMS g) (d_out,) each}; means and stds over the layer's RMS.
    a, g from `LinearRecorder`: (n, d_in), (n, d_out) with g = ∂(mean loss)/∂output, so n·g is each
    position's own signal. Cost O(points × neurons)."""
    out: dict[str, tuple[Tensor, ...]] = {}
    for mod in a:
        if mod in g and f"{mod}.weight" in names:
            out[mod] = _neuron_stats(a[mod]) + _neuron_stats(g[mod] * a[mod].shape[0])
    return out


# the meta-learned update


class LMLearnedOptimizer(nn.Module):
    """Meta-parameters (α, per-kind offsets, schedule, β, µ, F) and the functional update.

    The update works on one flat vector of all entries (P,) so that its cost is a few passes over P
    numbers and one small MLP (hidden ReLU layer) per tensor: F's first layer takes the per-entry features,
    plus a learned vector per kind and a linear map of the time features (the same as one-hot inputs,
    without their columns)."""

    def __init__(self, config: LMOptimizerConfig):
        super().__init__()
        self.config = cfg = config
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.alpha)))
        self.kind_alpha = nn.Parameter(torch.zeros(len(KINDS)))
        self.schedule = nn.Parameter(torch.zeros(len(SCHEDULE)))
        self.beta = nn.Parameter(torch.tensor(cfg.beta))
        self.mu_logit = nn.Parameter(torch.tensor(math.log(cfg.mu / (1 - cfg.mu))))
        self.f_in = nn.Linear(cfg.num_features, cfg.hidden)
        self.f_kind = nn.Parameter(torch.randn(len(KINDS), cfg.hidden) / math.sqrt(cfg.hidden))
        self.f_time = nn.Linear(len(cfg.time_scales), cfg.hidden, bias=False)
        self.f_out = nn.Linear(cfg.hidden, 1)
        with torch.no_grad():
            self.f_out.weight.mul_(0.1)
            self.f_out.bias.zero_()

    @property
    def mu(self) -> Tensor:
        return torch.sigmoid(self.mu_logit)

    def step_sizes(self, t: int) -> Tensor:
        """α per kind at step t (0-based): (len(KINDS),)."""
        basis = torch.tensor([math.exp(-t / s) if f == "exp" else math.tanh(t / s) for f, s in SCHEDULE],
                             dtype=self.log_alpha.dtype)
        return (self.log_alpha + self.kind_alpha + (self.schedule * basis).sum()).exp()

    def init_state(self, params: list[Tensor]) -> LMOptState:
        z = torch.cat([p.detach().reshape(-1) for p in params]).zero_()
        return LMOptState(z, z.clone(), [z.clone() for _ in self.config.decays], z.clone())

    def update(self, params: list[Tensor], grads: list[Tensor], kinds: list[int], state: LMOptState,
               gset: Tensor | None = None) -> tuple[list[Tensor], LMOptState]:
        """One step on parameter tensors `params` with gradients `grads` (same shapes), kinds (indices in
        KINDS), gset: (7, P) from `flat_gradient_set` (needed iff features). State is flat (P,).
        Differentiable in the meta-parameters and in params; returns (new params, new state)."""
        cfg = self.config
        p = torch.cat([q.reshape(-1) for q in params])  # (P,)
        g = torch.cat([q.detach().reshape(-1) for q in grads])  # (P,)
        mu, b2, t = self.mu, cfg.beta2, state.t + 1
        m = mu * state.m + (1 - mu) * g
        v = b2 * state.v + (1 - b2) * g * g
        moments = [dk * mk + (1 - dk) * g for dk, mk in zip(cfg.decays, state.moments)]
        rms = (v / (1 - b2**t)).sqrt()
        r = 1.0 / (rms + cfg.eps)
        d = m / (1 - mu**t) * r  # Adam's direction
        u = 0.9 * state.u + 0.1 * d.detach() ** 2  # its recent mean square: the unit of F's step
        sizes = [q.numel() for q in params]

        def per_entry(values: list[Tensor]) -> Tensor:  # one scalar per tensor -> (P,)
            return torch.cat([x.expand(n) for x, n in zip(values, sizes)])

        scale = per_entry([q.detach().pow(2).mean().sqrt() + 1e-12 for q in params])  # each tensor's RMS
        cols = [p / scale, g * r, d] + [mk / (1 - dk**t) * r for dk, mk in zip(cfg.decays, moments)]
        cols.append(torch.log(rms + 1e-12) / 10)
        feats = torch.stack(cols, 0)  # (k0, P), channel-first so that each channel is contiguous
        if cfg.features:
            if gset is None:
                raise ValueError("this learned optimizer uses gradient-set features: pass gset")
            noise = torch.log((gset[5] + 1e-12) / (rms + 1e-12)) / 10 * gset[6]  # per-point RMS over Adam's
            feats = torch.cat([feats, gset[:5], noise[None], gset[6:]], 0)  # (k, P)
        time_f = torch.tensor([math.tanh(t / s) for s in cfg.time_scales], dtype=p.dtype)
        bias = self.f_kind + self.f_in.bias + self.f_time(time_f)  # (kinds, hidden): kind and time terms
        h = self.f_in.weight @ feats  # (hidden, P)
        h = torch.cat([x + bias[k][:, None] for x, k in zip(h.split(sizes, 1), kinds)], 1)
        out = torch.tanh((self.f_out.weight @ torch.relu(h)).squeeze(0) + self.f_out.bias)  # (P,) in (-1, 1)
        unit = (u / (1 - 0.9**t)).sqrt()  # RMS of Adam's recent steps
        alpha = self.step_sizes(t - 1)
        new = p - per_entry([alpha[k] for k in kinds]) * (d + self.beta * out * unit)
        return [x.view_as(q) for x, q in zip(new.split(sizes), params)], LMOptState(m, v, moments, u, t)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


@torch.no_grad()
def flat_gradient_set(names: list[str], params: list[Tensor], stats: dict[str, tuple[Tensor, ...]],
                      grads: list[Tensor]) -> Tensor:
    """The gradient-set channels over the flat entries of `params`, channel-first (7, P): [mean a_j, std a_j,
    mean g_i, std g_i, SNR, RMS, flag] for entry (i, j) of a recorded linear's weight (the bias: 0, 0,
    mean g_i, std g_i, SNR, RMS g_i, 1); 0 for every other entry. The minibatch gradient of W_ij is the
    mean over positions of the rank-1 terms g_i a_j; SNR is it over √E[g_i²] √E[a_j²] (the per-neuron
    estimate of the terms' RMS, no per-entry pass over the points; |SNR| <= 1 by Cauchy-Schwarz) and
    RMS is that product. `stats` from `gradient_set_stats`, grads in the order of params."""
    sizes = [q.numel() for q in params]
    out = params[0].new_zeros(GSET_CHANNELS, sum(sizes))
    offset = 0
    for n, q, gr, size in zip(names, params, grads, sizes):
        mod, _, leaf = n.rpartition(".")
        if mod in stats and leaf in ("weight", "bias"):
            ma, sa, ra, mg, sg, rg = stats[mod]
            block = out[:, offset: offset + size]  # (7, numel) view
            if leaf == "weight":
                d_out, d_in = q.shape
                view = block.view(GSET_CHANNELS, d_out, d_in)
                view[0].copy_(ma.expand(d_out, d_in))
                view[1].copy_(sa.expand(d_out, d_in))
                view[2].copy_(mg[:, None].expand(d_out, d_in))
                view[3].copy_(sg[:, None].expand(d_out, d_in))
                torch.mul(rg[:, None], ra[None, :], out=view[5])
                torch.div(gr, view[5] + 1e-30, out=view[4])
            else:
                block[2].copy_(mg)
                block[3].copy_(sg)
                block[5].copy_(rg)
                torch.div(gr, rg + 1e-30, out=block[4])
            block[6].fill_(1.0)
        offset += size
    return out


# torch.optim interface


class LearnedLMOptimizer(torch.optim.Optimizer):
    """The learned optimizer with frozen meta-parameters for a `GPT`, as a `torch.optim.Optimizer`.

    Use it in the usual loop (zero_grad, loss.backward(), step): it records the gradient set of the
    model's linears by hooks during the forward/backward that precede each step (call `remove()` to
    drop the hooks). A step that would make a parameter non-finite is skipped and `diverged` set.
    """

    def __init__(self, model: GPT, net: LMLearnedOptimizer):
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        super().__init__([p for _, p in named], {})
        self.net, self.names = net, [n for n, _ in named]
        self.kinds = [parameter_kind(n) for n in self.names]
        self.recorder = LinearRecorder(model) if net.config.features else None
        if self.recorder is not None:
            self.recorder.active = True
        self.opt_state: LMOptState | None = None
        self.diverged = False

    def remove(self) -> None:
        """Remove the gradient-set hooks from the model."""
        if self.recorder is not None:
            self.recorder.remove()

    def state_dict(self) -> dict:
        """The per-parameter state (m, v, momenta, u) and the step count, as plain tensors."""
        s = self.opt_state
        if s is None:
            return {"t": 0}
        out: dict = {"t": s.t, "m": s.m, "v": s.v, "u": s.u}
        for k, x in enumerate(s.moments):
            out[f"moment{k}"] = x
        return {k: v.clone() if torch.is_tensor(v) else v for k, v in out.items()}

    def load_state_dict(self, state: dict) -> None:
        """Inverse of `state_dict`."""
        if int(state.get("t", 0)) == 0:
            self.opt_state = None
            return
        k = len(self.net.config.decays)
        self.opt_state = LMOptState(state["m"].clone(), state["v"].clone(),
                                    [state[f"moment{j}"].clone() for j in range(k)], state["u"].clone(),
                                    int(state["t"]))

    @torch.no_grad()
    def step(self, closure=None):
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        params = self.param_groups[0]["params"]
        grads = [p.grad if p.grad is not None else torch.zeros_like(p) for p in params]
        if self.opt_state is None:
            self.opt_state = self.net.init_state(params)
        gset = None
        if self.recorder is not None:
            stats = gradient_set_stats(self.names, self.recorder.a, self.recorder.g)
            gset = flat_gradient_set(self.names, params, stats, grads)
        new, state = self.net.update([p.detach() for p in params], grads, self.kinds, self.opt_state, gset)
        if not all(torch.isfinite(x).all() for x in new):
            self.diverged = True
            return loss
        for p, q in zip(params, new):
            p.copy_(q)
        self.opt_state = state
        return loss


# files


class LMOptimizerFileError(ValueError):
    """A learned LM optimizer file that cannot be used (one-line message)."""


def save_lm_optimizer(path: str | Path, net: LMLearnedOptimizer, card: dict | None = None) -> None:
    """Meta-parameters as safetensors (config + card in the metadata) and the card as JSON beside it (atomic)."""
    save_module(path, net, LM_OPTIMIZER_FORMAT, net.config.to_dict(),
                {"parameters": net.num_parameters(), **(card or {})})


def load_lm_optimizer(path: str | Path) -> tuple[LMLearnedOptimizer, dict]:
    """Load a learned LM optimizer file (never unpickles): (LMLearnedOptimizer, frozen, eval mode; card)."""
    net, card = load_module(path, LM_OPTIMIZER_FORMAT, "learned LM optimizer", LMOptimizerFileError,
                            lambda config: LMLearnedOptimizer(LMOptimizerConfig.from_dict(config)))
    for p in net.parameters():
        p.requires_grad_(False)
    return net, card


# meta-training


TRAIN_SIZES = (GPTConfig(width=32, heads=2, layers=1), GPTConfig(width=64, heads=4, layers=1),
               GPTConfig(width=32, heads=4, layers=2))


@dataclass
class LMMetaTrainConfig:
    """Truncated-unroll meta-training of both variants (features / no features) on the same episodes."""

    out: str
    horizon: int = 300  # inner steps per episode
    unroll: int = 50  # truncation length (short truncations bias the learned step size low)
    batch: int = 16
    meta_lr: float = 3e-3  # F's weights
    scalar_lr_factor: float = 3.0  # α, its offsets and schedule, β, µ learn at meta_lr × this
    clip: float = 1.0
    minutes: float = 40.0  # process CPU minutes, both variants together (validation included)
    val_every: int = 6  # episodes
    val_steps: int = 200
    seed: int = 0
    texts: tuple[str, ...] = TRAIN_TEXTS
    val_texts: tuple[str, ...] = VAL_TEXTS
    sizes: tuple[dict, ...] = tuple(c.to_dict() for c in TRAIN_SIZES)
    optimizer: dict = field(default_factory=dict)  # LMOptimizerConfig overrides (features is set per variant)

    def to_dict(self) -> dict:
        d = asdict(self)
        d["texts"], d["val_texts"], d["sizes"] = list(self.texts), list(self.val_texts), list(self.sizes)
        return d


def run_unrolled(net: LMLearnedOptimizer, model: GPT, params: list[Tensor], names: list[str],
                 data: Tensor, steps: int, gen: torch.Generator, batch: int, *, state: LMOptState | None = None,
                 recorder: LinearRecorder | None = None, train: bool = False):
    """`steps` functional steps of the learned optimizer from `params` on random batches of `data`.

    Returns (params, state, mean training loss over the steps as a tensor (differentiable in the
    meta-parameters when `train`)). One forward per step serves the meta-loss and the gradient."""
    kinds = [parameter_kind(n) for n in names]
    state = state or net.init_state(params)
    it = batches(data, model.config.block, batch, gen)
    total = 0.0
    for _ in range(steps):
        x, y = next(it)
        ps = params if train else [p.detach().requires_grad_(True) for p in params]
        if recorder is not None:
            recorder.a.clear()
            recorder.g.clear()
            recorder.active = True
        with torch.enable_grad():
            loss = lm_loss(functional_call(model, dict(zip(names, ps)), (x,)), y)
            grads = torch.autograd.grad(loss, ps, retain_graph=train)
        gset = None
        if recorder is not None:
            recorder.active = False
            stats = gradient_set_stats(names, recorder.a, recorder.g)
            gset = flat_gradient_set(names, ps, stats, grads)
        total = total + (loss if train else loss.detach())
        with torch.set_grad_enabled(train):
            params, state = net.update(ps, [g.detach() for g in grads], kinds, state, gset)
    return params, state, total / steps


def _episode(cfg: LMMetaTrainConfig, texts: dict, episode: int):
    name = cfg.texts[episode % len(cfg.texts)]
    size = GPTConfig(**cfg.sizes[(episode // len(cfg.texts) + episode) % len(cfg.sizes)])
    seed = cfg.seed * 1_000_003 + episode
    return name, texts[name], size, seed


def _init_params(size: GPTConfig, seed: int) -> tuple[GPT, list[str], list[Tensor]]:
    model = GPT(size)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    named = list(model.named_parameters())
    for _, p in named:
        p.requires_grad_(False)
    return model, [n for n, _ in named], [p.detach().clone() for _, p in named]


@torch.no_grad()
def validate(net: LMLearnedOptimizer, cfg: LMMetaTrainConfig, val: dict) -> float:
    """Mean held-out loss after `val_steps` steps over the validation texts (each at a training size)."""
    from .lm import evaluate, validation_batches

    losses = []
    for i, data in enumerate(val.values()):
        size = GPTConfig(**cfg.sizes[i % len(cfg.sizes)])
        model, names, params = _init_params(size, 10_000 + i)
        rec = LinearRecorder(model) if net.config.features else None
        tr, va = split_text(data)
        params, _, _ = run_unrolled(net, model, params, names, tr, cfg.val_steps, torch.Generator().manual_seed(i),
                                    cfg.batch, recorder=rec)
        if rec is not None:
            rec.remove()
        with torch.no_grad():
            for n, p in zip(names, params):
                model.get_parameter(n).copy_(p)
        losses.append(evaluate(model, validation_batches(va, size.block)))
    return sum(losses) / len(losses)


def metatrain(cfg: LMMetaTrainConfig, log=print) -> dict:
    """Meta-train (or resume) both variants; checkpoints in cfg.out/{features,plain}/ (last + best)."""
    from .train import _commit, _load_state, _save_state

    out = Path(cfg.out)
    out.mkdir(parents=True, exist_ok=True)
    texts = {n: split_text(load_text(n))[0] for n in cfg.texts}
    val = {n: load_text(n) for n in cfg.val_texts}
    runs = {}
    for variant in ("features", "plain"):
        d = out / variant
        d.mkdir(exist_ok=True)
        net = LMLearnedOptimizer(LMOptimizerConfig.from_dict({**cfg.optimizer, "features": variant == "features"}))
        scalars = [p for n, p in net.named_parameters() if not n.startswith("f_")]  # α, offsets, schedule, β, µ
        opt = torch.optim.Adam([{"params": [p for n, p in net.named_parameters() if n.startswith("f_")]},
                                {"params": scalars, "lr": cfg.meta_lr * cfg.scalar_lr_factor}], lr=cfg.meta_lr)
        state = {"episode": 0, "cpu": 0.0, "best_val": None, "best_episode": None, "history": []}
        if (d / "last.safetensors").exists():
            state = _load_state(d / "last.safetensors", net, opt)
            log(f"{variant}: resumed at episode {state['episode']}")
        runs[variant] = (d, net, opt, state)
    (out / "config.json").write_text(json.dumps(cfg.to_dict(), indent=2) + "\n")
    start = time.process_time() - sum(r[3]["cpu"] for r in runs.values())
    while time.process_time() - start < cfg.minutes * 60:
        episode = min(r[3]["episode"] for r in runs.values())
        name, data, size, seed = _episode(cfg, texts, episode)
        for variant, (d, net, opt, state) in runs.items():
            if state["episode"] != episode:
                continue
            t0 = time.process_time()
            model, names, params = _init_params(size, seed)
            rec = LinearRecorder(model) if net.config.features else None
            gen = torch.Generator().manual_seed(seed)
            st, losses = None, []
            for _ in range(cfg.horizon // cfg.unroll):
                params = [p.detach().requires_grad_(True) for p in params]
                params, st, meta_loss = run_unrolled(net, model, params, names, data, cfg.unroll, gen, cfg.batch,
                                                     state=st, recorder=rec, train=True)
                opt.zero_grad()
                if not torch.isfinite(meta_loss):
                    log(f"{variant}: non-finite meta-loss in episode {episode}; episode dropped")
                    break
                meta_loss.backward()
                torch.nn.utils.clip_grad_norm_(net.parameters(), cfg.clip)
                opt.step()
                params, st = [p.detach() for p in params], st.detach()
                losses.append(meta_loss.item())
            if rec is not None:
                rec.remove()
            state["episode"] = episode + 1
            entry = {"episode": episode, "text": name, "width": size.width, "layers": size.layers,
                     "meta_loss": sum(losses) / max(len(losses), 1), "final_loss": losses[-1] if losses else None,
                     "alpha": net.log_alpha.exp().item(), "beta": net.beta.item(), "mu": net.mu.item()}
            if (episode + 1) % cfg.val_every == 0:
                entry["val"] = validate(net, cfg, val)
                if state["best_val"] is None or entry["val"] < state["best_val"]:
                    state["best_val"], state["best_episode"] = entry["val"], episode + 1
                    save_lm_optimizer(d / "best.safetensors", net, {
                        "episode": episode + 1, "val_loss": entry["val"], "commit": _commit(),
                        "metatrain": cfg.to_dict(), "cpu_minutes": (state["cpu"] + time.process_time() - t0) / 60})
            state["cpu"] += time.process_time() - t0
            state["history"].append(entry)
            _save_state(d / "last.safetensors", net, opt, state)
            with open(d / "log.jsonl", "a") as fh:
                fh.write(json.dumps(entry) + "\n")
            log(f"{variant} ep {episode} {name} w{size.width}x{size.layers}: meta-loss {entry['meta_loss']:.3f} "
                f"last {entry['final_loss']:.3f} α {entry['alpha']:.2e} β {entry['beta']:.3f} µ {entry['mu']:.3f}"
                + (f" val {entry['val']:.4f}" if "val" in entry else "") + f" cpu {state['cpu'] / 60:.1f} min")
    return {v: r[3] for v, r in runs.items()}


def main(argv: list[str] | None = None) -> int:
    """`python -m gmn.lm_optim [--out DIR] [--minutes M]`: meta-train both variants (resumable)."""
    ap = argparse.ArgumentParser(prog="python -m gmn.lm_optim", description=main.__doc__)
    ap.add_argument("--out", default=str(data_home() / "runs" / "lm-lopt"))
    ap.add_argument("--minutes", type=float, default=40.0, help="process CPU minutes, both variants together")
    ap.add_argument("--horizon", type=int, default=300)
    ap.add_argument("--unroll", type=int, default=50)
    ap.add_argument("--meta-lr", type=float, default=3e-3)
    ap.add_argument("--val-every", type=int, default=6)
    ap.add_argument("--alpha", type=float, default=None, help="initial α (default: gmn.lm.ADAM_LR)")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)
    from .lm import ADAM_LR

    torch.set_num_threads(1)
    say_where("gmn.lm_optim meta-training run", args.out)
    cfg = LMMetaTrainConfig(out=args.out, minutes=args.minutes, horizon=args.horizon, unroll=args.unroll,
                            val_every=args.val_every, seed=args.seed, meta_lr=args.meta_lr,
                            optimizer={"alpha": args.alpha or ADAM_LR})
    try:
        metatrain(cfg, log=lambda s: print(s, flush=True))
    except (ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
