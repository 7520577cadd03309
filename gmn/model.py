"""GradMetaNet and GradMetaNet++ (docs/DESIGN.md §4), with `@dataclass` configs sized for CPU.

    Φ = Decode ∘ DeepSetsᵏ² ∘ PoolOverPoints ∘ Interactionᵏ¹ ∘ PE          (GradMetaNet)
    Φ = PairDecode ∘ (attention over points, over neurons, MLP)ᵏ ∘ PE      (GradMetaNet++)

Input: a `NeuronSet` (feats (N, B, n, f)), optionally the INRs' params for weight-derived
neuron features. Output: Params-layout list with a trailing channel axis, ΔW_l
(N, d_l, d_{l-1}, c), Δb_l (N, d_l, c), times a learnable per-tensor scale (`edit_scale_init`,
None for raw features such as Θ[f] for a WS network). `to_params` turns one channel into Params.
One model serves any number of points B ≥ 1 and any hidden width of its depth.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from inr.siren import Params, SirenArch

from .decompose import FeatureNorm, NeuronSet
from .graph import NGNet, NGNetConfig
from .layers import (
    DeepSetsLayer,
    InteractionLayer,
    LowRankDecoder,
    NeuronEmbedding,
    PairDecoder,
    PointNeuronBlock,
    PoolOverPoints,
    ProductDecoder,
    add_outputs,
)
from .weightspace import WSNet, WSNetConfig, weight_neuron_features


@dataclass
class GradMetaNetConfig:
    """GradMetaNet sizes. dim_in / dim_out / depth describe the SIRENs (any hidden width; dim_out = 0: any
    number of outputs, not told apart)."""

    dim_in: int = 2
    dim_out: int = 1
    depth: int = 3  # weight matrices L (2→H→H→C has 3)
    in_features: int = 2  # 2: (a, g) gradients; 1: probing activations
    hidden: int = 48
    interaction_layers: int = 3
    deepsets_layers: int = 2
    decoder_hidden: int = 48  # hidden width of the ΔW_l[i,j] = MLP₁([z_i, z_j]) decoder on pooled features; 0 disables
    lowrank: int = 8  # rank of the point-averaged term mean_b Σ_k u_k v_k; 0 disables
    out_channels: int = 1
    edit_scale_init: float | None = 0.01  # learnable per-tensor output scale; None: no scale
    weight_features: bool = False  # add weight-derived neuron features (weightspace.weight_neuron_features)

    @classmethod
    def for_arch(cls, arch: SirenArch, **kw) -> GradMetaNetConfig:
        return cls(dim_in=arch.dim_in, dim_out=arch.dim_out, depth=arch.depth, **kw)

    def to_dict(self) -> dict:
        return asdict(self)


@dataclass
class GradMetaNetPPConfig:
    """GradMetaNet++ sizes. blocks = 0 lets features reach the decoder unchanged (after PE)."""

    dim_in: int = 2
    dim_out: int = 1
    depth: int = 3
    in_features: int = 2
    dim: int = 32
    blocks: int = 2
    heads: int = 4
    pair_hidden: int = 16  # hidden width of the pair MLP (memory N·B·d_l·d_{l-1}·pair_hidden); 0 disables
    lowrank: int = 8  # bilinear part Σ_k u_k v_k; 0 disables
    out_channels: int = 1
    edit_scale_init: float | None = 0.01
    weight_features: bool = False

    @classmethod
    def for_arch(cls, arch: SirenArch, **kw) -> GradMetaNetPPConfig:
        return cls(dim_in=arch.dim_in, dim_out=arch.dim_out, depth=arch.depth, **kw)

    def to_dict(self) -> dict:
        return asdict(self)


def to_params(out: list[Tensor], channel: int = 0) -> Params:
    """One channel of a Params-layout output with channels -> Params."""
    return [t[..., channel] for t in out]


class _NeuronModel(nn.Module):
    """Shared input side: feature normalisation, weight-derived features, PE, output scales."""

    def _init_input(self, cfg, width: int) -> None:
        self.norm = FeatureNorm(cfg.depth + 1, cfg.in_features)
        k = max(cfg.dim_in, 2) + 4 if cfg.weight_features else 0  # see weight_neuron_features
        self.wnorm = FeatureNorm(cfg.depth + 1, k, center=True) if k else None
        self.embed = NeuronEmbedding(cfg.in_features, width, cfg.depth, cfg.dim_in, cfg.dim_out, extra_features=k)
        scale = cfg.edit_scale_init
        self.scale = nn.Parameter(torch.full((2 * cfg.depth, cfg.out_channels), scale)) if scale is not None else None

    def _check(self, neurons: NeuronSet) -> None:
        cfg = self.config
        if len(neurons.dims) != cfg.depth + 1:
            raise ValueError(f"model expects SIRENs with {cfg.depth} weight layers, got {len(neurons.dims) - 1}")
        if neurons.feats.shape[-1] != cfg.in_features:
            raise ValueError(f"model expects {cfg.in_features} features per neuron, got {neurons.feats.shape[-1]}")

    def _weight_feats(self, neurons: NeuronSet, params: Params | None) -> Tensor | None:
        if self.wnorm is None:
            return None
        if params is None:
            raise ValueError("this model uses weight-derived neuron features: pass the INRs' params")
        return self.wnorm(weight_neuron_features(params, neurons.dims), neurons.layer)

    def input(self, neurons: NeuronSet, params: Params | None) -> Tensor:
        """Normalised, lifted, position-encoded features (N, B, n, width)."""
        self._check(neurons)
        x = self.norm(neurons.feats, neurons.layer)  # (N, B, n, f)
        return self.embed(x, neurons.dims, self._weight_feats(neurons, params))

    def _scale(self, out: list[Tensor]) -> list[Tensor]:
        return out if self.scale is None else [t * s for t, s in zip(out, self.scale, strict=True)]

    @torch.no_grad()
    def fit_norm(self, neurons: NeuronSet | list[NeuronSet], params: Params | list[Params] | None = None) -> None:
        """Fit the per-layer feature statistics (and weight-feature statistics) from training data."""
        sets = [neurons] if isinstance(neurons, NeuronSet) else list(neurons)
        self.norm.fit([s.feats for s in sets], sets[0].layer)
        if self.wnorm is not None:
            if params is None:
                raise ValueError("this model uses weight-derived neuron features: pass the INRs' params to fit_norm")
            plist = [params] if isinstance(params[0], Tensor) else list(params)
            feats = [weight_neuron_features(p, s.dims) for p, s in zip(plist, sets, strict=True)]
            self.wnorm.fit(feats, sets[0].layer)


class GradMetaNet(_NeuronModel):
    """Equivariant network on decomposed gradients: PE -> interaction layers -> pool over points
    -> DeepSets -> product decoder (+ point-averaged low-rank decoder). Interaction and DeepSets
    layers are residual (x + layer(x)). For scalar outputs put `layers.InvariantHead` on `encode`'s Z."""

    def __init__(self, config: GradMetaNetConfig):
        super().__init__()
        self.config = cfg = config
        if not cfg.decoder_hidden and not cfg.lowrank:
            raise ValueError("GradMetaNetConfig: set decoder_hidden > 0 (the product decoder) or lowrank > 0")
        h = cfg.hidden
        self._init_input(cfg, h)
        self.interactions = nn.ModuleList(InteractionLayer(h, h) for _ in range(cfg.interaction_layers))
        self.pool = PoolOverPoints(h, h)
        self.deepsets = nn.ModuleList(DeepSetsLayer(h, h) for _ in range(cfg.deepsets_layers))
        product = cfg.decoder_hidden > 0
        self.product = ProductDecoder(h, cfg.depth, cfg.out_channels, cfg.decoder_hidden) if product else None
        self.lowrank = LowRankDecoder(h, cfg.depth, cfg.out_channels, cfg.lowrank) if cfg.lowrank else None

    def encode(self, neurons: NeuronSet, params: Params | None = None) -> tuple[Tensor, Tensor]:
        """Point-level features X (N, B, n, h) after the interaction layers and pooled Z (N, n, h)."""
        dims = neurons.dims
        x = self.input(neurons, params)  # (N, B, n, h)
        for layer in self.interactions:
            x = x + layer(x, dims)
        z = self.pool(x, dims)  # (N, n, h)
        for layer in self.deepsets:
            z = z + layer(z, dims)
        return x, z

    def forward(self, neurons: NeuronSet, params: Params | None = None) -> list[Tensor]:
        """Weight-space output [ΔW_l (N, d_l, d_{l-1}, c), Δb_l (N, d_l, c)] for l = 1..L."""
        x, z = self.encode(neurons, params)
        out = self.product(z, neurons.dims) if self.product is not None else None
        if self.lowrank is not None:
            out = add_outputs(out, self.lowrank(x, neurons.dims))
        return self._scale(out)


class GradMetaNetPP(_NeuronModel):
    """GradMetaNet++: attention across points and across neurons, no pooling; the decoder averages
    a pair function (MLP + bilinear) over points."""

    def __init__(self, config: GradMetaNetPPConfig):
        super().__init__()
        self.config = cfg = config
        self._init_input(cfg, cfg.dim)
        self.blocks = nn.ModuleList(PointNeuronBlock(cfg.dim, cfg.heads) for _ in range(cfg.blocks))  # MLP ratio 2
        # the pair MLP runs 16 points at a time (PairDecoder.chunk, an execution detail, not a size)
        self.decoder = PairDecoder(cfg.dim, cfg.depth, cfg.out_channels, cfg.pair_hidden, cfg.lowrank)

    def encode(self, neurons: NeuronSet, params: Params | None = None) -> Tensor:
        """Point-level features (N, B, n, dim) after the attention blocks."""
        x = self.input(neurons, params)
        for block in self.blocks:
            x = block(x)
        return x

    def forward(self, neurons: NeuronSet, params: Params | None = None) -> list[Tensor]:
        """Weight-space output [ΔW_l (N, d_l, d_{l-1}, c), Δb_l (N, d_l, c)] for l = 1..L."""
        return self._scale(self.decoder(self.encode(neurons, params), neurons.dims))

    @torch.no_grad()
    def set_gradient_step(self, lr: float | None = None) -> GradMetaNetPP:
        """Hand-set weights so that channel 0 of the output is exactly the mean gradient
        (lr None; output scales set to 1) or -lr × the mean gradient, i.e. θ + Δθ is one SGD step.

        Needs in_features = 2 and lowrank ≥ 1. Features reach the decoder unchanged: blocks
        become identities (zero output projections), PE and the pair MLP are zeroed. A fitted
        FeatureNorm is undone by folding its per-layer scales into u, v and w.
        """
        cfg = self.config
        if cfg.in_features != 2 or not cfg.lowrank or cfg.dim < 2:
            raise ValueError("set_gradient_step needs in_features=2, lowrank>=1 and dim>=2")
        if lr is not None and self.scale is None:
            raise ValueError("an SGD step needs output scales (edit_scale_init not None)")
        for p in self.parameters():
            p.zero_()
        for block in self.blocks:
            for ln in (block.norm1, block.norm2, block.norm3):
                ln.weight.fill_(1.0)
        self.embed.lift.weight[0, 0] = 1.0  # stream channel 0 carries a
        self.embed.lift.weight[1, 1] = 1.0  # stream channel 1 carries g
        s = self.norm.scale  # (L+1, 2)
        bil = self.decoder.bilinear
        for i in range(cfg.depth):
            bil.u[i].weight[0, 1] = s[i + 1, 1]  # u: g of layer i+1
            bil.v[i].weight[0, 0] = s[i, 0]  # v: a of layer i
            bil.w[i].weight[0, 1] = s[i + 1, 1]  # bias: g of layer i+1
        if self.scale is not None:
            self.scale.fill_(1.0 if lr is None else -lr)
        return self


class GradMetaNetWS(nn.Module):
    """WS + GradMetaNet (the paper's best setup): GradMetaNet's Θ[f] output (c channels in weight
    space, no output scale) is concatenated to the weights as extra channels of a weight-space
    network: the NP-layer `WSNet` (a `WSNetConfig`) or the neural-graph `NGNet` (an `NGNetConfig`)."""

    def __init__(self, gmn: GradMetaNetConfig, ws: WSNetConfig | NGNetConfig):
        super().__init__()
        if gmn.edit_scale_init is not None:
            raise ValueError("GradMetaNetWS: the GradMetaNet produces features, set its edit_scale_init=None")
        if ws.in_channels != 1 + gmn.out_channels:
            raise ValueError(f"GradMetaNetWS: WS in_channels must be 1 + {gmn.out_channels} (weights + Θ[f])")
        self.gmn = GradMetaNet(gmn)
        self.ws = NGNet(ws) if isinstance(ws, NGNetConfig) else WSNet(ws)

    def forward(self, params: Params, neurons: NeuronSet) -> Params:
        """Δθ in Params layout."""
        return self.ws(params, self.gmn(neurons, params))

    @torch.no_grad()
    def fit_norm(self, params: Params, neurons: NeuronSet) -> None:
        """Fit GradMetaNet's feature statistics, then WS's input RMS of the weights and of the Θ[f] channels
        GradMetaNet (so fitted) hands it: the one fit of both parts."""
        self.gmn.fit_norm(neurons, params)
        self.ws.fit_norm(params, self.gmn(neurons, params))
