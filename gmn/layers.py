"""Equivariant layers on neuron features of SIRENs (docs/DESIGN.md §4).

Tensors: point-level X (N, B, n, h) for N INRs, B points and n = Σ d_l neurons in layer
order; pooled Z (N, n, h). `dims` = [d_0, ..., d_L] is passed at call time, so one layer
serves any B and any hidden width of its depth. Hidden neurons are permutable within their
layer; input/output neurons keep their identity. Every reduction is a mean, never a sum.
Weight-space outputs are lists [ΔW_1, Δb_1, ..., ΔW_L, Δb_L] with a trailing channel axis:
ΔW_l (N, d_l, d_{l-1}, c), Δb_l (N, d_l, c).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# helpers


def group_means(x: Tensor, dims: list[int], dim: int) -> Tensor:
    """Mean over the neurons of each layer: size Σ dims -> len(dims) along `dim`."""
    return torch.stack([p.mean(dim) for p in x.split(dims, dim)], dim)


def expand_groups(t: Tensor, dims: list[int], dim: int) -> Tensor:
    """Inverse shape of `group_means`: repeat entry l of `dim` d_l times (cat of expands, cheap backward)."""
    dim = dim % t.dim()
    parts = []
    for i, d in enumerate(dims):
        p = t.narrow(dim, i, 1)
        parts.append(p.expand(*p.shape[:dim], d, *p.shape[dim + 1 :]))
    return torch.cat(parts, dim)


def neuron_mean(gm: Tensor, dims: list[int], dim: int) -> Tensor:
    """Mean over all neurons from per-layer means `gm` (keepdim)."""
    w = torch.tensor(dims, dtype=gm.dtype, device=gm.device) / sum(dims)
    shape = [1] * gm.dim()
    shape[dim] = -1
    return (gm * w.view(shape)).sum(dim, keepdim=True)


def mlp(dims: list[int], act: type[nn.Module] = nn.GELU) -> nn.Sequential:
    layers: list[nn.Module] = []
    for i in range(len(dims) - 1):
        layers.append(nn.Linear(dims[i], dims[i + 1]))
        if i < len(dims) - 2:
            layers.append(act())
    return nn.Sequential(*layers)


def add_outputs(a: list[Tensor] | None, b: list[Tensor]) -> list[Tensor]:
    return b if a is None else [x + y for x, y in zip(a, b, strict=True)]


# embedding


class NeuronEmbedding(nn.Module):
    """Lift raw neuron features and add a learned positional encoding (PE).

    Equal to Linear(cat[x, onehot(layer), onehot(index if input/output neuron)]): hidden
    neurons get only their layer's code, input and output neurons also their index, so the
    PE does not depend on the hidden width. dim_out = 0: output neurons get only their layer's
    code, so one model serves any number of outputs (gray and colour SIRENs). Optional per-neuron
    extras (N, n, k), such as weight-derived features, are lifted and added to every point.
    """

    def __init__(self, in_features: int, dim: int, depth: int, dim_in: int, dim_out: int, extra_features: int = 0):
        super().__init__()
        self.lift = nn.Linear(in_features, dim)
        self.layer_code = nn.Parameter(torch.randn(depth + 1, dim) * 0.02)
        self.in_code = nn.Parameter(torch.randn(dim_in, dim) * 0.02)
        self.out_code = nn.Parameter(torch.randn(dim_out, dim) * 0.02) if dim_out else None
        self.extra = nn.Linear(extra_features, dim, bias=False) if extra_features else None

    def encoding(self, dims: list[int]) -> Tensor:
        """PE of every neuron: (n, dim)."""
        if len(dims) != self.layer_code.shape[0]:
            raise ValueError(f"model expects {self.layer_code.shape[0] - 1} weight layers, got {len(dims) - 1}")
        n_out = dims[-1] if self.out_code is None else self.out_code.shape[0]
        if dims[0] != self.in_code.shape[0] or dims[-1] != n_out:
            raise ValueError(f"model expects {self.in_code.shape[0]} inputs and {n_out} outputs")
        codes = [self.layer_code[0] + self.in_code]
        codes += [self.layer_code[i].expand(d, -1) for i, d in enumerate(dims[1:-1], start=1)]
        out = self.layer_code[-1].expand(n_out, -1)
        codes.append(out if self.out_code is None else out + self.out_code)
        return torch.cat(codes, 0)

    def forward(self, x: Tensor, dims: list[int], extra: Tensor | None = None) -> Tensor:
        """x: (N, B, n, f), extra: (N, n, k) -> (N, B, n, dim)."""
        pe = self.encoding(dims).to(x.dtype)  # (n, dim)
        if self.extra is not None:
            if extra is None:
                raise ValueError("this model was built with per-neuron extra features: pass them")
            pe = pe + self.extra(extra)  # (N, n, dim)
            return self.lift(x) + pe.unsqueeze(1)
        return self.lift(x) + pe


# interaction over points × neurons


class InteractionLayer(nn.Module):
    """Exchangeable layer over points × neurons (Hartford et al. 2018), with per-layer means.

    Y[b,n] = M1 X[b,n] + M2 mean_b X[·,n] + M3 mean_n X[b,·] + M4 mean_{b,n} X
             + M5 mean_{n∈layer(n)} X[b,·] + M6 mean_{b, n∈layer(n)} X + bias, then GELU.
    The linear maps act on the small pooled tensors; one expand brings them back to size.
    """

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.self_ = nn.Linear(dim_in, dim_out)
        self.points = nn.Linear(dim_in, dim_out, bias=False)
        self.neurons = nn.Linear(dim_in, dim_out, bias=False)
        self.all = nn.Linear(dim_in, dim_out, bias=False)
        self.layer = nn.Linear(dim_in, dim_out, bias=False)
        self.layer_points = nn.Linear(dim_in, dim_out, bias=False)
        self.act = nn.GELU()

    def forward(self, x: Tensor, dims: list[int]) -> Tensor:
        """x: (N, B, n, f) -> (N, B, n, dim_out)."""
        gm = group_means(x, dims, 2)  # (N, B, L+1, f)
        nm = neuron_mean(gm, dims, 2)  # (N, B, 1, f)
        small = self.layer(gm) + self.layer_points(gm.mean(1, keepdim=True))  # (N, B, L+1, o)
        small = small + self.neurons(nm) + self.all(nm.mean(1, keepdim=True))
        y = self.self_(x) + self.points(x.mean(1, keepdim=True))  # (N, B, n, o)
        return self.act(y + expand_groups(small, dims, 2))


class PoolOverPoints(nn.Module):
    """Point-invariant pooling: Z[n] = M1 mean_b X[·,n] + M2 mean_{b,n} X + M3 mean_{b, n∈layer(n)} X + bias."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.self_ = nn.Linear(dim_in, dim_out)
        self.all = nn.Linear(dim_in, dim_out, bias=False)
        self.layer = nn.Linear(dim_in, dim_out, bias=False)

    def forward(self, x: Tensor, dims: list[int]) -> Tensor:
        """x: (N, B, n, f) -> (N, n, dim_out)."""
        pm = x.mean(1)  # (N, n, f)
        gm = group_means(pm, dims, 1)  # (N, L+1, f)
        small = self.layer(gm) + self.all(neuron_mean(gm, dims, 1))  # (N, L+1, o)
        return self.self_(pm) + expand_groups(small, dims, 1)


class DeepSetsLayer(nn.Module):
    """DeepSets over neurons: Z'[n] = M1 Z[n] + M2 mean_n Z + M3 mean_{n∈layer(n)} Z + bias, then GELU."""

    def __init__(self, dim_in: int, dim_out: int):
        super().__init__()
        self.self_ = nn.Linear(dim_in, dim_out)
        self.all = nn.Linear(dim_in, dim_out, bias=False)
        self.layer = nn.Linear(dim_in, dim_out, bias=False)
        self.act = nn.GELU()

    def forward(self, z: Tensor, dims: list[int]) -> Tensor:
        """z: (N, n, f) -> (N, n, dim_out)."""
        gm = group_means(z, dims, 1)  # (N, L+1, f)
        small = self.layer(gm) + self.all(neuron_mean(gm, dims, 1))  # (N, L+1, o)
        return self.act(self.self_(z) + expand_groups(small, dims, 1))


# decoders to weight space


class ProductDecoder(nn.Module):
    """Pooled neuron features -> weights: ΔW_l[i,j] = MLP₁([z_i⁽ˡ⁾, z_j⁽ˡ⁻¹⁾]), Δb_l[i] = MLP₂(z_i⁽ˡ⁾).

    One MLP pair per weight layer l (layers are never permuted). The pair MLP's first layer
    is split, A z_i + B z_j, so the (d_l × d_{l-1} × hidden) tensor is formed by one broadcast add.
    """

    def __init__(self, dim: int, depth: int, out_channels: int, hidden: int):
        super().__init__()
        self.row = nn.ModuleList(nn.Linear(dim, hidden) for _ in range(depth))
        self.col = nn.ModuleList(nn.Linear(dim, hidden, bias=False) for _ in range(depth))
        self.w_out = nn.ModuleList(nn.Linear(hidden, out_channels) for _ in range(depth))
        self.b_mlp = nn.ModuleList(mlp([dim, hidden, out_channels]) for _ in range(depth))
        self.act = nn.GELU()

    def forward(self, z: Tensor, dims: list[int]) -> list[Tensor]:
        """z: (N, n, h) -> [ΔW_l (N, d_l, d_{l-1}, c), Δb_l (N, d_l, c)] for l = 1..L."""
        zs = z.split(dims, 1)
        out = []
        for i in range(len(dims) - 1):
            pair = self.row[i](zs[i + 1]).unsqueeze(2) + self.col[i](zs[i]).unsqueeze(1)  # (N, d_l, d_{l-1}, hd)
            out += [self.w_out[i](self.act(pair)), self.b_mlp[i](zs[i + 1])]
        return out


class LowRankDecoder(nn.Module):
    """Point-level features -> weights, averaged over points (docs/DESIGN.md §4):

        ΔW_l[i,j] = mean_b Σ_k u_k(x_{b,i}⁽ˡ⁾) v_k(x_{b,j}⁽ˡ⁻¹⁾),   Δb_l[i] = mean_b w(x_{b,i}⁽ˡ⁾)

    with linear u, v, w per weight layer l. With u picking g and v picking a this is exactly
    the mean gradient, which pooling before the decoder cannot express.
    """

    def __init__(self, dim: int, depth: int, out_channels: int, rank: int):
        super().__init__()
        self.rank, self.c = rank, out_channels
        self.u = nn.ModuleList(nn.Linear(dim, rank * out_channels, bias=False) for _ in range(depth))
        self.v = nn.ModuleList(nn.Linear(dim, rank * out_channels, bias=False) for _ in range(depth))
        self.w = nn.ModuleList(nn.Linear(dim, out_channels, bias=False) for _ in range(depth))

    def forward(self, x: Tensor, dims: list[int]) -> list[Tensor]:
        """x: (N, B, n, h) -> weight-space list (see module doc)."""
        xs = x.split(dims, 2)
        out = []
        for i in range(len(dims) - 1):
            u = self.u[i](xs[i + 1]).unflatten(-1, (self.rank, self.c))  # (N, B, d_l, k, c)
            v = self.v[i](xs[i]).unflatten(-1, (self.rank, self.c))  # (N, B, d_{l-1}, k, c)
            out += [torch.einsum("nbikc,nbjkc->nijc", u, v) / x.shape[1], self.w[i](xs[i + 1].mean(1))]
        return out


class PairDecoder(nn.Module):
    """GradMetaNet++ decoder: the pair function summed (averaged) over points.

        ΔW_l[i,j] = mean_b [ MLP₁([x_{b,i}⁽ˡ⁾, x_{b,j}⁽ˡ⁻¹⁾]) + Σ_k u_k(x_{b,i}) v_k(x_{b,j}) ]
        Δb_l[i]   = mean_b [ MLP₂(x_{b,i}⁽ˡ⁾) + w(x_{b,i}⁽ˡ⁾) ]

    u, v, w linear (the bilinear part makes one gradient step exactly expressible). The pair
    MLP is N·B·d_l·d_{l-1}·hidden floats: it is evaluated `chunk` points at a time and averaged
    through its (linear) last layer. `hidden=0` drops the MLPs, `rank=0` the bilinear part.
    """

    def __init__(self, dim: int, depth: int, out_channels: int, hidden: int, rank: int, chunk: int = 16):
        super().__init__()
        self.hidden, self.chunk = hidden, chunk
        if hidden:
            self.row = nn.ModuleList(nn.Linear(dim, hidden) for _ in range(depth))
            self.col = nn.ModuleList(nn.Linear(dim, hidden, bias=False) for _ in range(depth))
            self.w_out = nn.ModuleList(nn.Linear(hidden, out_channels) for _ in range(depth))
            self.b_mlp = nn.ModuleList(mlp([dim, hidden, out_channels]) for _ in range(depth))
            self.act = nn.GELU()
        self.bilinear = LowRankDecoder(dim, depth, out_channels, rank) if rank else None
        if not hidden and not rank:
            raise ValueError("PairDecoder needs hidden > 0 or rank > 0")

    def forward(self, x: Tensor, dims: list[int]) -> list[Tensor]:
        """x: (N, B, n, h) -> weight-space list."""
        out = self.bilinear(x, dims) if self.bilinear is not None else None
        if not self.hidden:
            return out
        xs = x.split(dims, 2)
        mlp_out = []
        for i in range(len(dims) - 1):
            r, c = self.row[i](xs[i + 1]), self.col[i](xs[i])  # (N, B, d_l, hd), (N, B, d_{l-1}, hd)
            acc = 0
            for s in range(0, x.shape[1], self.chunk):
                pair = r[:, s : s + self.chunk].unsqueeze(3) + c[:, s : s + self.chunk].unsqueeze(2)
                acc = acc + self.act(pair).sum(1)  # (N, d_l, d_{l-1}, hd)
            mlp_out += [self.w_out[i](acc / x.shape[1]), self.b_mlp[i](xs[i + 1]).mean(1)]
        return add_outputs(out, mlp_out)


class InvariantHead(nn.Module):
    """Permutation-invariant scalar outputs: MLP(cat[mean_n Z, per-layer means of Z]) -> (N, out)."""

    def __init__(self, dim: int, depth: int, out: int, hidden: int = 64):
        super().__init__()
        self.net = mlp([dim * (depth + 2), hidden, out])

    def forward(self, z: Tensor, dims: list[int]) -> Tensor:
        """z: (N, n, h) -> (N, out)."""
        gm = group_means(z, dims, 1)  # (N, L+1, h)
        return self.net(torch.cat([neuron_mean(gm, dims, 1), gm], 1).flatten(1))


# attention (GradMetaNet++)


class Attention(nn.Module):
    """Multi-head self-attention over axis `dim` of x (..., h); no positions, so it is set-equivariant."""

    def __init__(self, dim: int, heads: int):
        super().__init__()
        if dim % heads:
            raise ValueError(f"attention width {dim} is not divisible by {heads} heads")
        self.heads = heads
        self.qkv = nn.Linear(dim, 3 * dim)
        self.proj = nn.Linear(dim, dim)

    def forward(self, x: Tensor, dim: int) -> Tensor:
        x = x.transpose(dim, -2)  # (..., S, h)
        lead = x.shape[:-2]
        x = x.reshape(-1, *x.shape[-2:])  # (M, S, h): 4-D q, k, v select the fused CPU kernel
        q, k, v = self.qkv(x).unflatten(-1, (3, self.heads, -1)).permute(2, 0, 3, 1, 4)  # (M, H, S, dh) each
        y = F.scaled_dot_product_attention(q, k, v).transpose(1, 2).flatten(2)  # (M, S, h)
        return self.proj(y).reshape(*lead, *y.shape[-2:]).transpose(dim, -2)


class PointNeuronBlock(nn.Module):
    """Pre-norm residual block: attention across points (per neuron), across neurons (per point), MLP."""

    def __init__(self, dim: int, heads: int, mlp_ratio: int = 2):
        super().__init__()
        self.norm1, self.norm2, self.norm3 = nn.LayerNorm(dim), nn.LayerNorm(dim), nn.LayerNorm(dim)
        self.points = Attention(dim, heads)
        self.neurons = Attention(dim, heads)
        self.mlp = mlp([dim, mlp_ratio * dim, dim])

    def forward(self, x: Tensor) -> Tensor:
        """x: (N, B, n, h) -> (N, B, n, h)."""
        x = x + self.points(self.norm1(x), dim=1)
        x = x + self.neurons(self.norm2(x), dim=2)
        return x + self.mlp(self.norm3(x))

    def zero_(self) -> PointNeuronBlock:
        """Make the block the identity (zero output projections): for hand-set tests."""
        with torch.no_grad():
            for lin in (self.points.proj, self.neurons.proj, self.mlp[-1]):
                lin.weight.zero_()
                lin.bias.zero_()
        return self
