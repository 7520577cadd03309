"""Rank-1 decomposed gradients of SIRENs: the input of GradMetaNet (docs/DESIGN.md §3).

For a point x_b and a per-point loss ℓ_b, every neuron j of every layer l = 0..L (inputs,
hidden, outputs) carries an activation a_j and a backprop signal g_j = ∂ℓ_b/∂u_j, and

    ∇_{W_l} ℓ_b = g⁽ˡ⁾ a⁽ˡ⁻¹⁾ᵀ,   ∇_{b_l} ℓ_b = g⁽ˡ⁾.

`decompose_gradients` computes all (a, g) pairs of N INRs at B points with one batched
forward and one closed-form backward pass: a tensor (N, B, n, 2), n = Σ d_l, instead of
B dense gradients of P parameters each. The loss is per point (not divided by B), so each
rank-1 term is exactly a per-example gradient and the batch gradient is their mean.

Neuron order everywhere: layer by layer, inputs first, outputs last; `layer` gives each
neuron's layer index. Hidden neurons are permutable within their layer; input and output
neurons keep their identity.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

import torch
from torch import Tensor, nn

from inr.siren import Params, SirenArch, check_params, forward, layer, weights

# objectives


@dataclass(frozen=True)
class Objective:
    """A per-point objective ℓ_b(f_b) on the INR output f_b (C channels, +0.5 included).

    kind "mse":        ℓ_b = Σ_c (f - t)²
    kind "masked_mse": ℓ_b = Σ_c [m (f - t)² + λ (1 - m) (f - f_orig)²]
    kind "output":     ℓ_b = Σ_c f_c ("no loss": g is the gradient of the output itself), or
                       ℓ_b = f_channel when `channel` is set (one output's gradient).
    Tensors broadcast against f (N, B, C): target/orig (N, B, C) or (B, C); mask (N, B) or (N, B, 1|C).
    Build with `mse`, `masked_mse` or `output`.
    """

    kind: str
    target: Tensor | None = None
    mask: Tensor | None = None
    orig: Tensor | None = None
    lam: float = 1.0
    channel: int | None = None

    KINDS = ("mse", "masked_mse", "output")

    def __post_init__(self) -> None:
        if self.kind not in self.KINDS:
            raise ValueError(f"unknown objective kind {self.kind!r}; choose one of {', '.join(self.KINDS)}")
        if self.kind in ("mse", "masked_mse") and self.target is None:
            raise ValueError(f"a {self.kind!r} objective needs a target")
        if self.kind == "masked_mse" and (self.mask is None or self.orig is None):
            raise ValueError("a 'masked_mse' objective needs a mask and the original values (orig)")
        if not (isinstance(self.lam, (int, float)) and self.lam >= 0 and self.lam == self.lam):
            raise ValueError(f"λ must be a finite number ≥ 0, got {self.lam!r}")

    def _mask(self, f: Tensor) -> Tensor:
        m = self.mask.to(f.dtype)
        return m.unsqueeze(-1) if m.dim() == f.dim() - 1 else m  # (N, B) -> (N, B, 1)

    def loss(self, f: Tensor) -> Tensor:
        """Per-point loss: (..., C) -> (...)."""
        if self.kind == "mse":
            return (f - self.target).pow(2).sum(-1)
        if self.kind == "masked_mse":
            m = self._mask(f)
            return (m * (f - self.target).pow(2) + self.lam * (1 - m) * (f - self.orig).pow(2)).sum(-1)
        if self.channel is None:
            return f.sum(-1)
        return f[..., self.channel]

    def output_grad(self, f: Tensor) -> Tensor:
        """g at the output layer, dℓ_b/du_L: (..., C), same shape as f."""
        if self.kind == "mse":
            return 2 * (f - self.target)
        if self.kind == "masked_mse":
            m = self._mask(f)
            return 2 * m * (f - self.target) + 2 * self.lam * (1 - m) * (f - self.orig)
        g = torch.ones_like(f)
        if self.channel is not None:
            g = torch.zeros_like(f)
            g[..., self.channel] = 1
        return g


def mse(target: Tensor) -> Objective:
    """Squared error to `target` (N, B, C) or (B, C), summed over channels."""
    return Objective("mse", target=target)


def masked_mse(target: Tensor, mask: Tensor, orig: Tensor, lam: float = 1.0) -> Objective:
    """Painted edit (docs/DESIGN.md §5): m ⊙ (f - target)² + λ (1 - m) ⊙ (f - orig)², summed over channels.

    `mask` in [0, 1]: (N, B), (N, B, 1) or (N, B, C) (the shape of f without or with a channel axis);
    `orig` is the INR's own output (or any preservation target).
    """
    return Objective("masked_mse", target=target, mask=mask, orig=orig, lam=lam)


def output(channel: int | None = None) -> Objective:
    """No loss: g is the gradient of Σ_c f_c (or of f_channel), as used for Fisher/curvature features."""
    return Objective("output", channel=channel)


# neuron sets


def neuron_layers(dims: list[int], device: torch.device | str = "cpu") -> Tensor:
    """Layer index of each neuron: (n,) long, n = Σ dims, in neuron order."""
    return torch.repeat_interleave(torch.arange(len(dims), device=device), torch.tensor(dims, device=device))


@dataclass
class NeuronSet:
    """Per-point neuron features of N INRs.

    feats: (N, B, n, f), f = 2 (a, g) for gradients or 1 (a) for probing features.
    layer: (n,) long, the layer (0..L) of each neuron.  dims: [d_0, ..., d_L].
    """

    feats: Tensor
    layer: Tensor
    dims: list[int]

    @property
    def a(self) -> Tensor:
        return self.feats[..., 0]  # (N, B, n)

    @property
    def g(self) -> Tensor:
        return self.feats[..., 1]  # (N, B, n)

    @property
    def num_points(self) -> int:
        return self.feats.shape[1]

    def per_layer(self) -> tuple[Tensor, ...]:
        """Features split by layer: d_l-sized views (N, B, d_l, f)."""
        return self.feats.split(self.dims, dim=2)

    def to(self, *args, **kwargs) -> NeuronSet:
        feats = self.feats.to(*args, **kwargs)
        return NeuronSet(feats, self.layer.to(feats.device), list(self.dims))

    def select_points(self, index) -> NeuronSet:
        """Subset of points (index into the B axis)."""
        return NeuronSet(self.feats[:, index], self.layer, list(self.dims))


def _activations(params: Params, arch: SirenArch, x: Tensor) -> tuple[list[Tensor], list[Tensor], Tensor]:
    n = check_params(params, arch)
    if x.dim() == 2:
        x = x.unsqueeze(0).expand(n, *x.shape)  # (N, B, d_0)
    if x.dim() != 3 or x.shape[0] != n or x.shape[-1] != arch.dim_in:
        raise ValueError(f"points must be (B, {arch.dim_in}) or ({n}, B, {arch.dim_in}), got {tuple(x.shape)}")
    f, preacts = forward(params, arch, x, return_preacts=True)
    acts = [x] + [torch.sin(w * u) for w, u in zip(arch.omegas, preacts[:-1], strict=True)] + [f]
    return acts, preacts, f


def decompose_gradients(params: Params, arch: SirenArch, x: Tensor, *, objective: Objective) -> NeuronSet:
    """(a, g) of every neuron of N INRs at B points, for a per-point objective.

    params: N INRs; x: (B, d_0) shared or (N, B, d_0). Returns a NeuronSet with feats
    (N, B, n, 2): a⁽⁰⁾ = x, a⁽ˡ⁾ = sin(ω_l u⁽ˡ⁾), a⁽ᴸ⁾ = f (with +0.5); g⁽ᴸ⁾ = dℓ_b/du⁽ᴸ⁾,
    g⁽ˡ⁾ = ω_l cos(ω_l u⁽ˡ⁾) ⊙ (W_{l+1}ᵀ g⁽ˡ⁺¹⁾), g⁽⁰⁾ = W_1ᵀ g⁽¹⁾ (the input gradient).
    Differentiable in params (no detach).
    """
    acts, preacts, f = _activations(params, arch, x)
    g = objective.output_grad(f).expand_as(f)  # (N, B, d_L)
    grads = [g]
    for i in range(arch.depth - 1, -1, -1):  # W_{i+1} maps layer i to layer i+1
        g = torch.matmul(g, weights(params)[i])  # W_{i+1}ᵀ g: (N, B, d_i)
        if i > 0:
            w = arch.omegas[i - 1]
            g = w * torch.cos(w * preacts[i - 1]) * g
        grads.append(g)
    a = torch.cat(acts, -1)  # (N, B, n)
    g = torch.cat(grads[::-1], -1)  # (N, B, n)
    return NeuronSet(torch.stack([a, g], -1), neuron_layers(arch.dims, a.device), arch.dims)


def probe_features(params: Params, arch: SirenArch, x: Tensor) -> NeuronSet:
    """Probing features (Kofinas et al.): activations only, no target information: feats (N, B, n, 1)."""
    acts, _, _ = _activations(params, arch, x)
    a = torch.cat(acts, -1)  # (N, B, n)
    return NeuronSet(a.unsqueeze(-1), neuron_layers(arch.dims, a.device), arch.dims)


def rank1_gradients(neurons: NeuronSet, arch: SirenArch, *, per_point: bool = False) -> Params:
    """Gradients from the rank-1 factors, in Params layout.

    Mean over points (the batch gradient of mean_b ℓ_b): W_l (N, d_l, d_{l-1}), b_l (N, d_l).
    With `per_point`: each point's gradient, W_l (N, B, d_l, d_{l-1}), b_l (N, B, d_l).
    """
    if list(neurons.dims) != arch.dims:
        raise ValueError(f"neuron set has layer sizes {neurons.dims}, architecture has {arch.dims}")
    a = neurons.a.split(neurons.dims, -1)
    g = neurons.g.split(neurons.dims, -1)
    out: Params = []
    for i in range(arch.depth):
        if per_point:
            out += [g[i + 1].unsqueeze(-1) * a[i].unsqueeze(-2), g[i + 1]]
        else:
            b = neurons.num_points
            out += [torch.einsum("nbi,nbj->nij", g[i + 1], a[i]) / b, g[i + 1].mean(1)]
    return out


# normalisation


class FeatureNorm(nn.Module):
    """Per-(layer, channel) feature normalisation, shared by all neurons of a layer.

    y = (x - shift[layer]) / scale[layer]. Without `center`, shift = 0 and scale = RMS
    (keeps the sign of g meaningful); with `center`, per-layer mean and std. Statistics
    are buffers (saved with the model) fitted from data with `fit`; until then it is the identity.
    Sharing statistics across the neurons of a layer keeps the permutation symmetry.
    """

    def __init__(self, num_layers: int, channels: int, *, center: bool = False, eps: float = 1e-6):
        super().__init__()
        self.center, self.eps = center, eps
        self.register_buffer("shift", torch.zeros(num_layers, channels))
        self.register_buffer("scale", torch.ones(num_layers, channels))

    @torch.no_grad()
    def fit(self, feats: Tensor | Iterable[Tensor], layer: Tensor) -> FeatureNorm:
        """Fit from features (..., n, f) (or an iterable of such batches) with neuron layers (n,)."""
        batches = [feats] if isinstance(feats, Tensor) else list(feats)
        num_layers, channels = self.scale.shape
        s1 = torch.zeros(num_layers, channels, dtype=torch.float64)
        s2 = torch.zeros_like(s1)
        count = torch.zeros(num_layers, 1, dtype=torch.float64)
        for x in batches:
            x = x.detach().to(torch.float64).reshape(-1, *x.shape[-2:])  # (M, n, f)
            s1.index_add_(0, layer.cpu(), x.sum(0).cpu())
            s2.index_add_(0, layer.cpu(), x.pow(2).sum(0).cpu())
            count.index_add_(0, layer.cpu(), torch.full((layer.numel(), 1), float(x.shape[0]), dtype=torch.float64))
        count = count.clamp_min(1)
        mean = s1 / count if self.center else torch.zeros_like(s1)
        var = s2 / count - mean.pow(2)
        self.shift.copy_(mean)
        self.scale.copy_(var.clamp_min(0).sqrt().clamp_min(self.eps))
        return self

    def forward(self, x: Tensor, layer: Tensor) -> Tensor:
        """x: (..., n, f), layer: (n,) -> same shape."""
        shift, scale = self.shift[layer].to(x.dtype), self.scale[layer].to(x.dtype)  # (n, f)
        return (x - shift) / scale if self.center else x / scale


# symmetries (for tests and data augmentation)


def permute_params(params: list[Tensor], perms: list[Tensor]) -> list[Tensor]:
    """Permute the hidden neurons of N INRs: rows of W_l, b_l and columns of W_{l+1}.

    Works on Params and on Params-layout outputs with trailing channels.
    perms: one index tensor (d_l,) per hidden layer l = 1..L-1 (shared by the N INRs).
    """
    depth = len(weights(params))
    if len(perms) != depth - 1:
        raise ValueError(f"need {depth - 1} permutations (one per hidden layer), got {len(perms)}")
    out = []
    for i in range(depth):
        w, b = layer(params, i + 1)
        if i < depth - 1:  # rows of W_{i+1}, b_{i+1} belong to hidden layer i+1
            w, b = w[:, perms[i]], b[:, perms[i]]
        if i > 0:  # columns belong to hidden layer i
            w = w[:, :, perms[i - 1]]
        out += [w, b]
    return out


def permute_neurons(x: Tensor, dims: list[int], perms: list[Tensor], dim: int = -2) -> Tensor:
    """Permute the neuron axis `dim` of x (size Σ dims) within each hidden layer; inputs/outputs fixed."""
    index = torch.arange(sum(dims), device=x.device)
    offsets = [0]
    for d in dims:
        offsets.append(offsets[-1] + d)
    for li, p in enumerate(perms, start=1):
        index[offsets[li] : offsets[li + 1]] = offsets[li] + p.to(x.device)
    return x.index_select(dim, index)


def random_perms(dims: list[int], generator: torch.Generator | None = None) -> list[Tensor]:
    """One random permutation per hidden layer of `dims`."""
    return [torch.randperm(d, generator=generator) for d in dims[1:-1]]


# the generic gradient set (gmn/capture.py)


def as_gradient_set(neurons: NeuronSet, arch: SirenArch, objective: Objective | None = None) -> list:
    """The same factors as `gmn.capture.GradientSet`s, one per INR (docs/DESIGN.md §13): each point is
    one example with one position, the maps named as `siren_pytorch.SirenNet`'s layers ("layers.i",
    "last_layer"), a: (B, 1, d_{l-1}), g: (B, 1, d_l). With `objective`, the per-point losses are
    filled in from f = a⁽ᴸ⁾. Views of `neurons` (no copy); the batched SIREN path stays as it is and the
    generic capture of a SirenNet gives the same tensors (tests/gmn/test_capture.py)."""
    from .capture import GradientSet, LinearTerms

    if list(neurons.dims) != arch.dims:
        raise ValueError(f"neuron set has layer sizes {neurons.dims}, architecture has {arch.dims}")
    a = neurons.a.split(neurons.dims, -1)  # per layer (N, B, d_l)
    g = neurons.g.split(neurons.dims, -1)
    names = [f"layers.{i}" for i in range(arch.layers)] + ["last_layer"]
    out = []
    for k in range(neurons.feats.shape[0]):
        terms = {name: LinearTerms(a[i][k].unsqueeze(1), g[i + 1][k].unsqueeze(1), f"{name}.weight", f"{name}.bias")
                 for i, name in enumerate(names)}
        losses = objective.loss(a[-1][k : k + 1])[0] if objective is not None else None  # (B,)
        out.append(GradientSet(terms, losses))
    return out
