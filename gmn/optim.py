"""GradMetaNet as a learned optimizer for fitting SIRENs (docs/DESIGN.md §7, paper §7.2).

    θ_{t+1} = θ_t − α (d_t + β F(θ_t, ∇_t, momenta, time, GradMetaNet(g_t)))

- d_t = m̂_t / (√v̂_t + ε): Adam's bias-corrected direction, with momentum decay µ learnable.
  With F = 0 the optimizer *is* Adam with lr α, so α starts at the tuned Adam lr (3e-3)
  instead of the paper's 0.1 (the paper's base is SGD with momentum); β and µ start at the
  paper's 0.001 and 0.9. α, β, µ are meta-parameters. Optionally α follows a learned schedule
  α_t = α·exp(Σ_k c_k e^{−t/s_k}) and has a learned factor per parameter tensor (`schedule_scales`,
  `layer_alpha`; per layer, so still equivariant), both starting at constant α. `width_power` scales
  α of the weights whose fan-in is the hidden width by (ref_width / width)^power (µP-style, set by
  hand) so that an optimizer meta-trained at one width keeps its step size at others; `learn_beta2`
  makes Adam's β2 a meta-parameter too.
- F = tanh(network output) × RMS of Adam's recent directions (so F's step shrinks as Adam's does and
  cannot stop a fit from converging); the network is a per-parameter MLP (or, `update="ws"`, an
  equivariant weight-space network) on features of each parameter: its value, the normalised
  gradient, d_t, momenta at decays 0.5/0.9/0.99, log gradient scale, time features, its layer
  and kind (weight/bias; layers are not permuted), and `gmn_channels` channels of a small
  GradMetaNet's weight-space output Θ[g_t].
- g_t: decomposed per-pixel gradients (a, g) of the fitting loss on `points` random pixels per
  INR and step, each layer's channels divided by their RMS (per INR: scale-free, and shared
  by a layer's neurons so the permutation symmetry holds). The GradMetaNet uses dim_out = 0
  (output neurons by layer only), so one optimizer fits gray and colour SIRENs.

Everything is per-parameter or equivariant, so the update commutes with hidden-neuron
permutations (tested). `LearnedOptimizer` (nn.Module) holds the meta-parameters and a
functional, differentiable `step` for meta-training (`gmn.metatrain`); `GradMetaNetOptimizer`
is a `torch.optim.Optimizer` with them frozen, to drop into any loop (e.g. `inr.fit`).
"""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from inr.siren import Params, SirenArch, coordinate_grid, flatten, unflatten

from .decompose import NeuronSet, decompose_gradients, mse
from .model import GradMetaNet, GradMetaNetConfig
from .modelfile import load_module, save_module
from .weightspace import WSNet, WSNetConfig

OPTIMIZER_FORMAT = "gmn-learned-optimizer"


class OptimizerFileError(ValueError):
    """A learned-optimizer file that cannot be used (one-line message)."""


@dataclass
class LearnedOptimizerConfig:
    """Sizes and initial meta-parameters. depth / dim_in describe the SIRENs it fits (any width)."""

    depth: int = 3
    dim_in: int = 2
    gmn: bool = True  # False: the ablation without GradMetaNet features
    gmn_hidden: int = 16
    gmn_interactions: int = 2
    gmn_channels: int = 4
    points: int = 32  # pixels per step whose decomposed gradients the GradMetaNet sees
    update: str = "mlp"  # F: "mlp" (per parameter) or "ws" (equivariant weight-space network)
    dim_out: int = 1  # outputs of the SIRENs, used by update="ws" only (its output neurons are told apart)
    hidden: int = 32
    decays: tuple[float, ...] = (0.5, 0.9, 0.99)
    time_scales: tuple[float, ...] = (10.0, 100.0, 1000.0)
    alpha: float = 3e-3
    # α schedule: α_t = α · exp(Σ_k c_k e^{−t/s_k}) for these scales s_k (c learnable, init 0: constant α)
    schedule_scales: tuple[float, ...] = ()
    layer_alpha: bool = False  # a learnable log-α offset per parameter tensor (per layer, weight / bias)
    # width-aware α (µP-style, set by hand, not learned): weights whose fan-in is the hidden width get
    # α · (ref_width / width)^width_power, so an optimizer meta-trained at ref_width keeps its effective
    # step at other widths (0: off, the behaviour of older files)
    width_power: float = 0.0
    ref_width: int = 32
    learn_beta2: bool = False  # Adam's second-moment decay as a meta-parameter too
    beta: float = 1e-3
    mu: float = 0.9
    beta2: float = 0.999
    eps: float = 1e-8

    @property
    def num_features(self) -> int:
        return 4 + len(self.decays) + len(self.time_scales) + 2 * self.depth + (self.gmn_channels if self.gmn else 0)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> LearnedOptimizerConfig:
        d = dict(d)
        for k in ("decays", "time_scales", "schedule_scales"):
            if k in d:
                d[k] = tuple(d[k])
        return cls(**d)


@dataclass
class OptState:
    """Optimizer state of N INRs, flat per INR: m, v (N, P), one (N, P) momentum per decay, the mean
    square of Adam's direction u (N, P), step count."""

    m: Tensor
    v: Tensor
    moments: list[Tensor]
    u: Tensor
    t: int = 0

    def detach(self) -> OptState:
        return OptState(self.m.detach(), self.v.detach(), [x.detach() for x in self.moments], self.u.detach(),
                        self.t)


def _logit(p: float) -> float:
    return math.log(p / (1 - p))


# the meta-learned update


class LearnedOptimizer(nn.Module):
    """Meta-parameters (α, β, µ, F, GradMetaNet) and the functional update."""

    def __init__(self, config: LearnedOptimizerConfig):
        super().__init__()
        self.config = cfg = config
        if cfg.update not in ("mlp", "ws"):
            raise ValueError(f"update must be 'mlp' or 'ws', got {cfg.update!r}")
        self.log_alpha = nn.Parameter(torch.tensor(math.log(cfg.alpha)))
        self.beta = nn.Parameter(torch.tensor(cfg.beta))
        self.mu_logit = nn.Parameter(torch.tensor(_logit(cfg.mu)))
        self.schedule = nn.Parameter(torch.zeros(len(cfg.schedule_scales))) if cfg.schedule_scales else None
        self.log_layer_alpha = nn.Parameter(torch.zeros(2 * cfg.depth)) if cfg.layer_alpha else None
        self.beta2_logit = nn.Parameter(torch.tensor(_logit(cfg.beta2))) if cfg.learn_beta2 else None
        self.gmn = None
        if cfg.gmn:
            self.gmn = GradMetaNet(GradMetaNetConfig(
                dim_in=cfg.dim_in, dim_out=0, depth=cfg.depth, hidden=cfg.gmn_hidden,
                interaction_layers=cfg.gmn_interactions, deepsets_layers=1, decoder_hidden=cfg.gmn_hidden,
                lowrank=cfg.gmn_channels, out_channels=cfg.gmn_channels, edit_scale_init=None,
            ))
        k = cfg.num_features
        if cfg.update == "mlp":
            self.f = nn.Sequential(nn.Linear(k, cfg.hidden), nn.GELU(), nn.Linear(cfg.hidden, cfg.hidden), nn.GELU(),
                                   nn.Linear(cfg.hidden, 1))
            with torch.no_grad():
                self.f[-1].weight.mul_(0.1)
                self.f[-1].bias.zero_()
        else:
            self.f = WSNet(WSNetConfig(dim_in=cfg.dim_in, dim_out=cfg.dim_out, depth=cfg.depth, in_channels=k,
                                       hidden=cfg.hidden // 2, layers=3, edit_scale_init=None))

    @property
    def alpha(self) -> Tensor:
        return self.log_alpha.exp()

    def step_size(self, t: int, params: Params) -> Tensor:
        """α at step t (0-based): a scalar, or (P,) per parameter with per-tensor offsets."""
        log = self.log_alpha
        if self.schedule is not None:
            decay = torch.tensor([math.exp(-t / s) for s in self.config.schedule_scales], dtype=log.dtype,
                                 device=log.device)
            log = log + (self.schedule * decay).sum()
        per = log + (self.log_layer_alpha if self.log_layer_alpha is not None else 0.0)
        if self.config.width_power:  # weights of layers 2..L: fan-in is the hidden width
            width = torch.tensor([0.0 if i % 2 or i == 0 else math.log(self.config.ref_width / q.shape[-1])
                                  for i, q in enumerate(params)], dtype=log.dtype, device=log.device)
            per = per + self.config.width_power * width
        if per.dim() == 0:
            return per.exp()
        sizes = torch.tensor([q[0].numel() for q in params], device=log.device)
        return torch.repeat_interleave(per.exp(), sizes)

    @property
    def mu(self) -> Tensor:
        return torch.sigmoid(self.mu_logit)

    @property
    def beta2(self) -> Tensor | float:
        return self.config.beta2 if self.beta2_logit is None else torch.sigmoid(self.beta2_logit)

    def init_state(self, params: Params) -> OptState:
        z = torch.zeros_like(flatten(params))
        return OptState(z, z.clone(), [z.clone() for _ in self.config.decays], z.clone())

    def check(self, arch: SirenArch) -> None:
        cfg = self.config
        if arch.depth != cfg.depth or arch.dim_in != cfg.dim_in:
            raise OptimizerFileError(f"the learned optimizer fits SIRENs with {cfg.depth} weight layers and "
                                     f"{cfg.dim_in} inputs; this one has {arch.depth} and {arch.dim_in}")
        if cfg.update == "ws" and arch.dim_out != cfg.dim_out:
            raise OptimizerFileError(f"this learned optimizer fits SIRENs with {cfg.dim_out} outputs, "
                                     f"not {arch.dim_out}")

    def gradient_features(self, params: Params, arch: SirenArch, x: Tensor, target: Tensor) -> list[Tensor] | None:
        """GradMetaNet's Θ[g_t]: Params layout with `gmn_channels` trailing channels (None without GMN).

        x: (N, B, d_in) pixel coordinates, target: (N, B, C) their values. Inputs are detached:
        the features describe the current loss landscape, meta-gradients flow through θ only.
        """
        if self.gmn is None:
            return None
        with torch.no_grad():
            neurons = decompose_gradients([p.detach() for p in params], arch, x, objective=mse(target))
            neurons = normalise_neurons(neurons)
        return self.gmn(neurons)

    def features(self, params: Params, grads: Params, state: OptState, gfeat: list[Tensor] | None) -> tuple:
        """Update the state with `grads`; per-parameter features. Returns (d_t (N, P), feats (N, P, k), state)."""
        cfg = self.config
        p, g = flatten(params), flatten(grads)  # (N, P)
        mu, b2, t = self.mu, self.beta2, state.t + 1
        m = mu * state.m + (1 - mu) * g
        v = b2 * state.v + (1 - b2) * g * g
        moments = [dk * mk + (1 - dk) * g for dk, mk in zip(cfg.decays, state.moments)]
        rms = (v / (1 - b2**t)).sqrt()
        r = 1.0 / (rms + cfg.eps)
        d = m / (1 - mu**t) * r  # Adam's direction
        u = 0.9 * state.u + 0.1 * d.detach() ** 2  # its recent mean square: the unit of F's step
        cols = [p, g * r, d] + [mk / (1 - dk**t) * r for dk, mk in zip(cfg.decays, moments)]
        cols.append(torch.log(rms + 1e-12) / 10)
        feats = torch.stack(cols, -1)  # (N, P, 4 + decays)
        # time and (layer, weight/bias) codes: the same for all entries of a tensor (layers are not permuted)
        time = torch.tensor([math.tanh(t / s) for s in cfg.time_scales], dtype=p.dtype, device=p.device)
        sizes = torch.tensor([q[0].numel() for q in params], device=p.device)
        code = torch.repeat_interleave(torch.eye(len(params), dtype=p.dtype, device=p.device), sizes, 0)  # (P, 2L)
        const = torch.cat([time.expand(code.shape[0], -1), code], -1)  # (P, k')
        parts = [feats, const.expand(p.shape[0], -1, -1)]
        if gfeat is not None:
            parts.append(flatten(gfeat).reshape(*p.shape, -1).to(p.dtype))  # (N, P, c): c is each tensor's last axis
        return d, torch.cat(parts, -1), OptState(m, v, moments, u, t)

    def step(self, params: Params, grads: Params, state: OptState, gfeat: list[Tensor] | None = None
             ) -> tuple[Params, OptState]:
        """One update of N stacked INRs: params/grads in Params layout (leading N). Differentiable in
        the meta-parameters (and in params); returns (new params, new state)."""
        d, feats, state = self.features(params, grads, state, gfeat)  # (N, P), (N, P, k)
        unit = (state.u / (1 - 0.9**state.t)).sqrt()  # (N, P) RMS of Adam's recent steps
        if self.config.update == "mlp":
            out = self.f(feats).squeeze(-1)  # (N, P)
        else:  # WSNet reads channel 0 as "the weights"; the other features are extra channels
            fp = unflatten(feats, params)
            out = flatten(self.f([t[..., 0] for t in fp], [t[..., 1:] for t in fp]))
        # F is bounded (tanh) and measured in units of Adam's recent step size: it vanishes where Adam's
        # steps do, so it cannot add a drift that stops the fit from converging (an early version without
        # the unit collapsed the validation PSNR from 57 to 30 dB once β grew)
        out = torch.tanh(out) * unit
        new = flatten(params) - self.step_size(state.t - 1, params) * (d + self.beta * out)
        return unflatten(new, params), state

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def normalise_neurons(neurons: NeuronSet, eps: float = 1e-12) -> NeuronSet:
    """Divide each layer's (a, g) channels by their RMS over points and the layer's neurons, per INR."""
    parts = []
    for x in neurons.per_layer():  # (N, B, d_l, f)
        rms = x.pow(2).mean(dim=(1, 2), keepdim=True).sqrt()
        parts.append(x / (rms + eps))
    return NeuronSet(torch.cat(parts, 2), neurons.layer, neurons.dims)


# sampling pixels and the fitting loss


def sample_pixels(images: Tensor, points: int, generator: torch.Generator | None = None) -> tuple[Tensor, Tensor]:
    """`points` random pixel centres per image: x (N, B, 2), target (N, B, C). images: (N, H, W, C)."""
    n, h, w, c = images.shape
    grid = coordinate_grid(h, w, device=images.device)  # (H·W, 2)
    idx = torch.randint(0, h * w, (n, points), generator=generator).to(images.device)
    return grid[idx], images.reshape(n, h * w, c).gather(1, idx.unsqueeze(-1).expand(-1, -1, c))


# files


def save_optimizer(path: str | Path, net: LearnedOptimizer, card: dict | None = None) -> None:
    """Meta-parameters as safetensors (config + card in its metadata) and the card as JSON beside it."""
    save_module(path, net, OPTIMIZER_FORMAT, net.config.to_dict(), {"parameters": net.num_parameters(), **(card or {})})


def load_optimizer(path: str | Path) -> tuple[LearnedOptimizer, dict]:
    """Load a learned-optimizer file (never unpickles). Returns (LearnedOptimizer in eval mode, card)."""
    net, card = load_module(path, OPTIMIZER_FORMAT, "learned-optimizer", OptimizerFileError,
                            lambda config: LearnedOptimizer(LearnedOptimizerConfig.from_dict(config)))
    for p in net.parameters():
        p.requires_grad_(False)
    return net, card


SHIPPED_DIR = Path(__file__).resolve().parent.parent / "assets" / "optimizers"
SHIPPED = SHIPPED_DIR / "learned.safetensors"  # the default, tried first


def shipped_optimizer(channels: int, width: int | None = None, *, editable: bool = False) -> Path | None:
    """The shipped learned optimizer for images with `channels` channels fitted into SIRENs of hidden
    `width`: the first file in assets/optimizers (learned.safetensors first) whose card's "channels" and
    "widths" list them (a card naming none: any); None when no shipped optimizer is meant for them (it was
    measured slower than Adam there). editable=True: only one whose card says `"editable": true`, i.e. the
    shipped editors were measured to edit the INRs it fits within 1.1× of zoo-recipe INRs (docs/DESIGN.md §12)."""
    for path in sorted(SHIPPED_DIR.glob("*.safetensors"), key=lambda p: (p != SHIPPED, p.name)):
        card = json.loads(path.with_suffix(".json").read_text()) if path.with_suffix(".json").exists() else {}
        if editable and card.get("editable") is not True:
            continue
        if channels in card.get("channels", [channels]) and (width is None or width in card.get("widths", [width])):
            return path
    return None


def editable_optimizer_installed() -> bool:
    """Whether any shipped learned optimizer keeps its INRs editable (the app offers "fast (learned)" then)."""
    return any(shipped_optimizer(c, editable=True) is not None for c in (1, 3))


# torch.optim interface


class GradMetaNetOptimizer(torch.optim.Optimizer):
    """The learned optimizer with frozen meta-parameters, as a `torch.optim.Optimizer`.

    params: the INR parameter tensors in Params order [W1, b1, ..., WL, bL] (leading N, as
    `inr.fit` stacks them). images (N, H, W, C): what the INRs are being fitted to, needed for the
    GradMetaNet features (it samples `points` pixels per step); may be None without GMN.
    If an update would produce non-finite parameters it is skipped and `diverged` set: the
    caller decides (see `fit_learned`, which falls back to Adam).
    """

    def __init__(self, params, net: LearnedOptimizer, arch: SirenArch, images: Tensor | None = None, *,
                 seed: int = 0):
        params = list(params)
        super().__init__(params, {})
        net.check(arch)
        if len(params) != 2 * arch.depth:
            raise ValueError(f"expected the {2 * arch.depth} parameter tensors of a depth-{arch.depth} SIREN, "
                             f"got {len(params)}")
        if net.gmn is not None and images is None:
            raise ValueError("this learned optimizer uses GradMetaNet features: pass the images being fitted")
        self.net, self.arch, self.images = net, arch, images
        self.generator = torch.Generator().manual_seed(seed)
        self.opt_state: OptState | None = None
        self.diverged = False

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
        gfeat = None
        if self.net.gmn is not None:
            x, t = sample_pixels(self.images.to(params[0].dtype), self.net.config.points, self.generator)
            gfeat = self.net.gradient_features(params, self.arch, x.to(params[0].device), t.to(params[0].device))
        new, state = self.net.step([p.detach() for p in params], grads, self.opt_state, gfeat)
        if not all(torch.isfinite(x).all() for x in new):
            self.diverged = True
            return loss
        for p, q in zip(params, new):
            p.copy_(q)
        self.opt_state = state
        return loss


def optimizer_factory(net: LearnedOptimizer, arch: SirenArch, images: Tensor, *, seed: int = 0):
    """For `inr.fit(..., optimizer_factory=...)`: params -> GradMetaNetOptimizer."""
    return lambda params: GradMetaNetOptimizer(params, net, arch, images, seed=seed)


def _initial_psnr(images: Tensor, arch: SirenArch, seed: int) -> Tensor:
    """PSNR of the SIRENs `inr.fit` starts from (same seed)."""
    from inr.fit import psnr
    from inr.siren import forward, init_params

    n, h, w, c = images.shape
    params = init_params(arch, n, generator=torch.Generator().manual_seed(seed))
    with torch.no_grad():
        err = (forward(params, arch, coordinate_grid(h, w)) - images.reshape(n, h * w, c)).pow(2).mean(dim=(1, 2))
    return psnr(err)


def fit_learned(images: Tensor, arch: SirenArch, net: LearnedOptimizer, *, steps: int = 500,
                target_psnr: float | None = None, seed: int = 0, progress: bool = False,
                device: torch.device | str = "cpu", notice=print, fallback_lr: float | None = None, callback=None):
    """`inr.fit` with the learned optimizer. If it diverges (a non-finite update, or a final PSNR
    below the initial one) the images are fitted again with Adam and `notice` says so.
    Returns (FitResult, name of the optimizer that produced it)."""
    from inr.fit import LR, fit

    images = images if images.dim() == 4 else images[None]
    box: dict = {}

    def factory(params):
        box["opt"] = GradMetaNetOptimizer(params, net.to(device), arch, images.to(device), seed=seed)
        return box["opt"]

    res = fit(images, arch, steps=steps, target_psnr=target_psnr, seed=seed, optimizer_factory=factory,
              progress=progress, device=device, callback=callback)
    init = _initial_psnr(images, arch, seed)
    bad = box["opt"].diverged or not bool(torch.isfinite(res.psnr).all()) or bool((res.psnr <= init).any())
    if not bad:
        return res, "learned"
    notice("notice: the learned optimizer diverged on this input; fitting with Adam instead")
    res = fit(images, arch, steps=steps, lr=fallback_lr or LR, target_psnr=target_psnr, seed=seed,
              progress=progress, device=device, callback=callback)
    return res, "adam"
