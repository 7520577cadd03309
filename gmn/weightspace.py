"""Weight-space side: the NP-style equivariant linear layer for MLP weights (NFN, arXiv
2302.14040), the WS baseline network built from it, and neuron features derived from weights.

Layout with channels: W_l (N, d_l, d_{l-1}, c), b_l (N, d_l, c), l = 1..L, in a list
[W_1, b_1, ..., W_L, b_L]. Hidden neurons are permutable; input neurons (columns of W_1)
and output neurons (rows of W_L, b_L) keep their identity, so their indices may be used.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from inr.siren import Params, SirenArch, biases, layer, weights

# helpers


def param_dims(params: list[Tensor]) -> list[int]:
    """[d_0, ..., d_L] of Params (or Params-layout tensors with channels)."""
    return [params[0].shape[2]] + [w.shape[1] for w in weights(params)]


def weight_channels(params: Params) -> list[Tensor]:
    """Params -> one-channel layout: W_l (N, d_l, d_{l-1}, 1), b_l (N, d_l, 1)."""
    return [t.unsqueeze(-1) for t in params]


def cat_channels(*outs: list[Tensor]) -> list[Tensor]:
    """Concatenate Params-layout lists along the channel axis."""
    return [torch.cat(ts, -1) for ts in zip(*outs, strict=True)]


def neuron_channels(feats: Tensor, dims: list[int]) -> list[Tensor]:
    """Neuron features (N, n, f) -> weight channels (outer broadcast of row and column neurons).

    W_l[i,j] gets cat[feat_i⁽ˡ⁾, feat_j⁽ˡ⁻¹⁾] and b_l[i] gets cat[feat_i⁽ˡ⁾, 0] (a bias is a weight
    from a constant input): 2f channels, equivariant. E.g. probing activations pooled over
    points, `probe_features(...).feats.mean(1)`, for "WS + probing".
    """
    fs = feats.split(dims, 1)
    out = []
    for i in range(len(dims) - 1):
        row, col = fs[i + 1], fs[i]  # (N, d_l, f), (N, d_{l-1}, f)
        w = torch.cat(
            [row.unsqueeze(2).expand(-1, -1, col.shape[1], -1), col.unsqueeze(1).expand(-1, row.shape[1], -1, -1)], -1
        )
        out += [w, torch.cat([row, torch.zeros_like(row)], -1)]
    return out


def weight_neuron_features(params: Params, arch: SirenArch | list[int] | None = None) -> Tensor:
    """Per-neuron features derived from the INR's own weights: (N, n, k), k = max(d_0, 2) + 4.

    For neuron i of layer l: [incoming | bias | outgoing]:
    incoming: the raw row W_1[i, :] for l = 1 (the input layer is not permuted), else the
    mean and std of the row W_l[i, :] (zero-padded; zeros for input neurons); bias b_l[i]
    (0 for inputs); mean, std and max|·| of the outgoing column W_{l+1}[:, i] (zeros for
    outputs). Permutation-equivariant. Raw values: standardise per layer (a fitted,
    centred `FeatureNorm`, as GradMetaNet does).
    """
    dims = param_dims(params)
    if arch is not None and list(arch if isinstance(arch, list) else arch.dims) != dims:
        raise ValueError(f"params have layer sizes {dims}, expected {arch}")
    n_inr, depth, k_in = params[0].shape[0], len(weights(params)), max(dims[0], 2)
    feats = []
    for li, d in enumerate(dims):
        f = params[0].new_zeros(n_inr, d, k_in + 4)
        if li >= 1:
            w, b = layer(params, li)  # (N, d, d_{l-1}), (N, d)
            if li == 1:
                f[..., : dims[0]] = w
            else:
                f[..., 0], f[..., 1] = w.mean(2), w.std(2, correction=0)
            f[..., k_in] = b
        if li < depth:
            out = weights(params)[li]  # W_{l+1}: (N, d_{l+1}, d): column i holds neuron i's outgoing weights
            f[..., k_in + 1], f[..., k_in + 2] = out.mean(1), out.std(1, correction=0)
            f[..., k_in + 3] = out.abs().amax(1)
        feats.append(f)
    return torch.cat(feats, 1)


# equivariant linear layer


def _node_sizes(dims_io: tuple[int, int], depth: int, c: int) -> list[int]:
    d0, dl = dims_io
    sizes = []
    for li in range(depth + 1):
        k = 2 * c if li >= 1 else 0  # row mean of W_l, b_l
        k += d0 * c if li == 1 else 0  # raw row of W_1
        k += c if li < depth else 0  # column mean of W_{l+1}
        k += dl * c if li == depth - 1 else 0  # raw column of W_L
        sizes.append(k)
    return sizes


def _node_features(ws: list[Tensor], bs: list[Tensor]) -> list[Tensor]:
    """Per-neuron summaries of the weights (N, d_l, k_l), l = 0..L (see `_node_sizes`)."""
    depth, out = len(ws), []
    for li in range(depth + 1):
        parts = []
        if li >= 1:
            parts += [ws[li - 1].mean(2), bs[li - 1]]
        if li == 1:
            parts.append(ws[0].flatten(2))
        if li < depth:
            parts.append(ws[li].mean(1))
        if li == depth - 1:
            parts.append(ws[-1].transpose(1, 2).flatten(2))
        out.append(torch.cat(parts, -1))
    return out


class NPLayer(nn.Module):
    """Equivariant linear map between weight spaces of an L-layer MLP, c_in -> c_out channels.

    Neuron summaries nf_l[i] = [row mean of W_l, b_l, column mean of W_{l+1}] (+ the raw row
    W_1[i,:] for l = 1 and the raw column W_L[:,i] for l = L-1, whose other axis is fixed).
    Then, for each layer l:
        ΔW_l[i,j] = A W_l[i,j] + P nf_l[i] + Q nf_{l-1}[j] + R g + e
        Δb_l[i]   = A' b_l[i] + P' nf_l[i] + R' g + e'
    with g the full means of every W_m and b_m (so row, column and full means of W_l, the
    biases and neighbouring layers' pooled values all enter). Fixed neurons keep identity:
    for l = 1, P maps nf_1[i] to a separate value per input column j; for l = L, Q maps
    nf_{L-1}[j] to a value per output row i, and learned offsets e depend on the fixed index.
    """

    def __init__(self, c_in: int, c_out: int, depth: int, dim_in: int, dim_out: int):
        super().__init__()
        self.depth, self.dim_in, self.dim_out, self.c_out = depth, dim_in, dim_out, c_out
        k = _node_sizes((dim_in, dim_out), depth, c_in)
        self.w_self = nn.ModuleList(nn.Linear(c_in, c_out) for _ in range(depth))
        self.w_row = nn.ModuleList(
            nn.Linear(k[li], c_out * (dim_in if li == 1 else 1), bias=False) for li in range(1, depth + 1)
        )
        self.w_col = nn.ModuleList(
            nn.Linear(k[li - 1], c_out * (dim_out if li == depth else 1), bias=False) for li in range(1, depth + 1)
        )
        self.w_glob = nn.ModuleList(nn.Linear(2 * depth * c_in, c_out, bias=False) for _ in range(depth))
        self.b_self = nn.ModuleList(nn.Linear(c_in, c_out) for _ in range(depth))
        self.b_node = nn.ModuleList(nn.Linear(k[li], c_out, bias=False) for li in range(1, depth + 1))
        self.b_glob = nn.ModuleList(nn.Linear(2 * depth * c_in, c_out, bias=False) for _ in range(depth))
        self.pos_in = nn.Parameter(torch.zeros(dim_in, c_out))  # per input column of W_1
        self.pos_out = nn.Parameter(torch.zeros(dim_out, c_out))  # per output row of W_L
        self.pos_out_b = nn.Parameter(torch.zeros(dim_out, c_out))  # per output bias

    def forward(self, x: list[Tensor]) -> list[Tensor]:
        """[W_l (N, d_l, d_{l-1}, c_in), b_l (N, d_l, c_in)] -> same layout with c_out channels."""
        ws, bs = weights(x), biases(x)
        if len(ws) != self.depth:
            raise ValueError(f"NPLayer expects {self.depth} weight layers, got {len(ws)}")
        nf = _node_features(ws, bs)
        glob = torch.cat([w.mean((1, 2)) for w in ws] + [b.mean(1) for b in bs], -1)  # (N, 2L c)
        out = []
        for i, (w, b) in enumerate(zip(ws, bs, strict=True)):
            li = i + 1
            row = self.w_row[i](nf[li])  # (N, d_l, c_out [× d_0])
            row = row.unflatten(-1, (self.dim_in, self.c_out)) if li == 1 else row.unsqueeze(2)  # (N, d_l, 1|d_0, o)
            col = self.w_col[i](nf[li - 1])  # (N, d_{l-1}, c_out [× d_L])
            if li == self.depth:
                col = col.unflatten(-1, (self.dim_out, self.c_out)).transpose(1, 2)  # (N, d_L, d_{L-1}, o)
            else:
                col = col.unsqueeze(1)  # (N, 1, d_{l-1}, o)
            small = self.w_glob[i](glob)[:, None, None]  # (N, 1, 1, o)
            if li == 1:
                small = small + self.pos_in
            if li == self.depth:
                small = small + self.pos_out[:, None]
            new_w = self.w_self[i](w) + row + col + small  # (N, d_l, d_{l-1}, o)
            new_b = self.b_self[i](b) + self.b_node[i](nf[li]) + self.b_glob[i](glob)[:, None]  # (N, d_l, o)
            if li == self.depth:
                new_b = new_b + self.pos_out_b
            out += [new_w, new_b]
        return out


# WS network


@dataclass
class WSNetConfig:
    """WS baseline: NP layers with GELU between; in_channels = 1 (weights) + extra channels."""

    dim_in: int = 2
    dim_out: int = 1
    depth: int = 3
    in_channels: int = 1
    hidden: int = 16
    layers: int = 3
    edit_scale_init: float | None = 0.01
    residual: bool = False  # hidden → hidden layers add to their input (lets deeper WS networks train)
    out_channels: int = 1  # Δθ channels: k > 1 gives k edited copies (OCE, `gmn.editors.merge_copies`)

    @classmethod
    def for_arch(cls, arch: SirenArch, **kw) -> WSNetConfig:
        return cls(dim_in=arch.dim_in, dim_out=arch.dim_out, depth=arch.depth, **kw)

    def to_dict(self) -> dict:
        return asdict(self)


class WeightSpaceInput(nn.Module):
    """The input side shared by the weight-space networks (`WSNet`, `gmn.graph.NGNet`): θ as one channel plus
    optional extra Params-layout channels, divided by a per-tensor, per-channel RMS fitted with `fit_norm`
    (the `in_scale` buffer, (2L, in_channels), and `config.in_channels` are the subclass's)."""

    def inputs(self, params: Params, extra: list[Tensor] | None = None) -> list[Tensor]:
        x = weight_channels(params)
        if extra is not None:
            x = cat_channels(x, extra)
        if x[0].shape[-1] != self.config.in_channels:
            raise ValueError(f"{type(self).__name__} expects {self.config.in_channels} channels, got {x[0].shape[-1]}")
        return x

    @torch.no_grad()
    def fit_norm(self, params: Params, extra: list[Tensor] | None = None) -> None:
        """Per-tensor, per-channel RMS of the inputs (weights only when `extra` is None)."""
        x = self.inputs(params, extra) if extra is not None else weight_channels(params)
        for i, t in enumerate(x):
            rms = t.pow(2).flatten(0, -2).mean(0).sqrt().clamp_min(1e-8)
            self.in_scale[i, : rms.shape[0]] = rms

    def normalised(self, params: Params, extra: list[Tensor] | None = None) -> list[Tensor]:
        return [t / s.to(t.dtype) for t, s in zip(self.inputs(params, extra), self.in_scale, strict=True)]


class WSNet(WeightSpaceInput):
    """Equivariant weight-space editor: Δθ = scale ⊙ NP-network(θ [, extra channels]).

    Inputs are divided by a per-tensor, per-channel RMS (buffers fitted with `fit_norm`),
    since SIREN layers differ in scale by orders of magnitude (ω = 30 in the first layer).
    """

    def __init__(self, config: WSNetConfig):
        super().__init__()
        self.config = cfg = config
        chans = [cfg.in_channels] + [cfg.hidden] * (cfg.layers - 1) + [cfg.out_channels]
        self.layers = nn.ModuleList(
            NPLayer(a, b, cfg.depth, cfg.dim_in, cfg.dim_out) for a, b in zip(chans[:-1], chans[1:], strict=True)
        )
        self.act = nn.GELU()
        self.register_buffer("in_scale", torch.ones(2 * cfg.depth, cfg.in_channels))
        scale = cfg.edit_scale_init
        self.scale = nn.Parameter(torch.full((2 * cfg.depth,), scale)) if scale is not None else None

    def forward(self, params: Params, extra: list[Tensor] | None = None) -> Params:
        """params: N INRs; extra: Params-layout channels (N, d_l, d_{l-1}, c') / (N, d_l, c'). Returns Δθ
        (with a trailing axis of `out_channels` copies when that is > 1)."""
        x = self.normalised(params, extra)
        last = len(self.layers) - 1
        for i, np_layer in enumerate(self.layers):
            y = np_layer(x)
            if i == last:
                x = y
            elif self.config.residual and 0 < i:  # hidden → hidden
                x = [t + self.act(u) for t, u in zip(x, y, strict=True)]
            else:
                x = [self.act(u) for u in y]
        out = [t[..., 0] for t in x] if self.config.out_channels == 1 else x
        return out if self.scale is None else [t * s for t, s in zip(out, self.scale, strict=True)]
