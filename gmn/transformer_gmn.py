"""GradMetaNet for transformers: per-neuron features from a gradient set and layers that respect a
transformer block's permutation symmetries (docs/DESIGN.md §13).

A block (pre-norm: x + o(attn(q, k, v)(ln x)), then x + fc2(act(fc1(ln x)))) has four kinds of neurons:

    qk   (L, H, hd)  the j-th query/key dimension of head h: row h·hd + j of W_q and of W_k (jointly)
    vo   (L, H, hd)  the j-th value dimension of head h: row of W_v and column of W_o (jointly)
    mlp  (L, m)      a hidden MLP neuron: row of W_fc1 and column of W_fc2
    res  (L, d)      a residual-stream dimension as seen by block l: columns of W_q, W_k, W_v, W_fc1,
                     rows of W_o, W_fc2

The model's function is unchanged by, independently in every block: a permutation of the heads (moving
q, k, v rows and o columns head by head), within each head a permutation of the qk dimensions (q and k
rows together: qᵀk is a sum over them) and one of the vo dimensions (v rows with o columns), and a
permutation of the MLP's hidden neurons. The layers here are equivariant to all of these (means over
each permutable axis, never an index of it). Residual dimensions are never permuted by them: a
residual permutation is a symmetry only when applied to every block, the embeddings, every LayerNorm
and the head at once, so it carries no per-block freedom; the layers treat residual dimensions with
shared weights too (width-independent), and tie them across blocks by index (the same residual
dimension in every block).

Point statistics per neuron and channel x (over examples e and positions t): mean x, log mean x², and
for backprop signals log mean_e (Σ_t x)² (the bias's per-example gradient, so the plain Fisher of a
bias is one feature); plus weight statistics (log mean square of the neuron's rows/columns, biases).
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from .capture import GradientSet, LinearTerms

GROUPS = ("qk", "vo", "mlp", "res")
MAPS = ("q", "k", "v", "o", "fc1", "fc2")
TINY = 1e-30  # floor inside the logs (float32 keeps it)

# layout


@dataclass(frozen=True)
class BlockMaps:
    """Names of one block's maps in a GradientSet."""

    q: str
    k: str
    v: str
    o: str
    fc1: str
    fc2: str

    def names(self) -> tuple[str, ...]:
        return tuple(getattr(self, m) for m in MAPS)


@dataclass(frozen=True)
class TransformerLayout:
    """Where a transformer's blocks live in its gradient set, and their head count."""

    blocks: tuple[BlockMaps, ...]
    heads: int

    @classmethod
    def for_gpt(cls, model: nn.Module) -> TransformerLayout:
        """gmn.transformer.GPT: blocks.i.attn.{q,k,v,out}, blocks.i.mlp.{fc,proj}."""
        n = len(model.blocks)
        return cls(tuple(BlockMaps(*(f"blocks.{i}.attn.{m}" for m in ("q", "k", "v", "out")),
                                   f"blocks.{i}.mlp.fc", f"blocks.{i}.mlp.proj") for i in range(n)),
                   model.config.heads)

    @classmethod
    def for_encoder(cls, prefixes: list[str], heads: int) -> TransformerLayout:
        """nn.TransformerEncoderLayer modules at `prefixes` (MultiheadAttention's q/k/v from gmn.capture)."""
        return cls(tuple(BlockMaps(f"{p}.self_attn.q", f"{p}.self_attn.k", f"{p}.self_attn.v",
                                   f"{p}.self_attn.out_proj", f"{p}.linear1", f"{p}.linear2") for p in prefixes),
                   heads)


def map_params(term: LinearTerms, params: dict[str, Tensor]) -> tuple[Tensor, Tensor | None]:
    """The weight (d_out, d_in) and bias (d_out,) a captured map reads (rows of packed parameters)."""
    w = params[term.weight]
    if term.weight_rows is not None:
        w = w[term.weight_rows[0] : term.weight_rows[1]]
    b = params[term.bias] if term.bias is not None else None
    if b is not None and term.bias_rows is not None:
        b = b[term.bias_rows[0] : term.bias_rows[1]]
    return w, b


# features


@dataclass
class TransformerNeurons:
    """Per-neuron features of N transformers of one shape (see the module doc for the groups).

    qk, vo: (N, L, H, hd, f); mlp: (N, L, m, f); res: (N, L, d, f) (f differs per group).
    """

    qk: Tensor
    vo: Tensor
    mlp: Tensor
    res: Tensor

    def __getitem__(self, group: str) -> Tensor:
        return getattr(self, group)

    def map(self, fn) -> TransformerNeurons:
        """Apply fn(group, tensor) to every group."""
        return TransformerNeurons(*(fn(g, self[g]) for g in GROUPS))

    @staticmethod
    def stack(items: list[TransformerNeurons]) -> TransformerNeurons:
        """Concatenate along N (same shapes)."""
        return TransformerNeurons(*(torch.cat([it[g] for it in items], 0) for g in GROUPS))


def _point_stats(x: Tensor, summed: bool) -> list[Tensor]:
    """x (E, T, n) -> per neuron: mean, log mean x² [, log mean_e (Σ_t x)²], each (n,)."""
    out = [x.mean((0, 1)), x.pow(2).mean((0, 1)).clamp_min(TINY).log()]
    if summed:
        out.append(x.sum(1).pow(2).mean(0).clamp_min(TINY).log())
    return out


def _log_ms(w: Tensor, dim: int) -> Tensor:
    return w.pow(2).mean(dim).clamp_min(TINY).log()


def _bias(b: Tensor | None, n: int, like: Tensor) -> Tensor:
    return b if b is not None else like.new_zeros(n)


def neuron_features(gs: GradientSet, params: dict[str, Tensor], layout: TransformerLayout) -> TransformerNeurons:
    """Features of every neuron of one transformer from its gradient set and weights: N = 1.

    params: the model's named parameters (e.g. dict(model.named_parameters())).
    qk f = 14, vo f = 10, mlp f = 10, res f = 18 (see `FEATURES`).
    """
    h = layout.heads
    groups: dict[str, list[Tensor]] = {g: [] for g in GROUPS}
    for blk in layout.blocks:
        t = {m: gs.terms[n] for m, n in zip(MAPS, blk.names(), strict=True)}
        w = {m: map_params(t[m], params) for m in MAPS}
        d = t["q"].a.shape[-1]
        u = {m: torch.einsum("eti,oi->eto", t[m].a, w[m][0]) + (w[m][1] if w[m][1] is not None else 0)
             for m in ("q", "k", "v", "fc1")}  # the maps' outputs (E, T, d_out)
        qk = [*_point_stats(t["q"].g, True), *_point_stats(t["k"].g, True), *_point_stats(u["q"], False),
              *_point_stats(u["k"], False), _log_ms(w["q"][0], 1), _log_ms(w["k"][0], 1),
              _bias(w["q"][1], d, u["q"]), _bias(w["k"][1], d, u["k"])]
        vo = [*_point_stats(t["v"].g, True), *_point_stats(u["v"], False), *_point_stats(t["o"].a, False),
              _log_ms(w["v"][0], 1), _log_ms(w["o"][0], 0), _bias(w["v"][1], d, u["v"])]
        m = w["fc1"][0].shape[0]
        mlp = [*_point_stats(t["fc1"].g, True), *_point_stats(u["fc1"], False), *_point_stats(t["fc2"].a, False),
               _log_ms(w["fc1"][0], 1), _log_ms(w["fc2"][0], 0), _bias(w["fc1"][1], m, u["fc1"])]
        res = [*_point_stats(t["q"].a, False), *_point_stats(t["o"].g, True), *_point_stats(t["fc1"].a, False),
               *_point_stats(t["fc2"].g, True), *(_log_ms(w[k][0], 0) for k in ("q", "k", "v", "fc1")),
               _log_ms(w["o"][0], 1), _log_ms(w["fc2"][0], 1), _bias(w["o"][1], d, u["q"]),
               _bias(w["fc2"][1], d, u["q"])]
        groups["qk"].append(torch.stack(qk, -1).view(h, d // h, -1))  # (H, hd, f)
        groups["vo"].append(torch.stack(vo, -1).view(h, d // h, -1))
        groups["mlp"].append(torch.stack(mlp, -1))  # (m, f)
        groups["res"].append(torch.stack(res, -1))  # (d, f)
    return TransformerNeurons(*(torch.stack(groups[g]).unsqueeze(0).detach() for g in GROUPS))


FEATURES = {"qk": 14, "vo": 10, "mlp": 10, "res": 18}


# layers


class TransformerGMNLayer(nn.Module):
    """One equivariant layer over a transformer's neurons (module doc), with a residual connection.

    Each neuron is updated from itself, its head's mean qk and vo features (qk, vo), its block's means
    of all four groups, the means over blocks, and (res) the same residual dimension's mean over
    blocks. Every pooled term is a mean over a permutable axis, so any per-block permutation of heads,
    of qk or vo dimensions within a head, or of MLP neurons commutes with the layer.
    """

    def __init__(self, hidden: int):
        super().__init__()
        h = hidden
        self.own = nn.ModuleDict({g: nn.Linear(h, h) for g in GROUPS})
        self.head = nn.ModuleDict({g: nn.Linear(2 * h, h, bias=False) for g in ("qk", "vo")})
        self.block = nn.ModuleDict({g: nn.Linear(4 * h, h, bias=False) for g in GROUPS})
        self.glob = nn.ModuleDict({g: nn.Linear(4 * h, h, bias=False) for g in GROUPS})
        self.across = nn.Linear(h, h, bias=False)
        self.act = nn.GELU()

    def forward(self, x: TransformerNeurons) -> TransformerNeurons:
        """x: groups with features of size hidden -> the same shapes."""
        heads = torch.cat([x.qk.mean(3), x.vo.mean(3)], -1)  # (N, L, H, 2h)
        c = torch.cat([x.qk.mean((2, 3)), x.vo.mean((2, 3)), x.mlp.mean(2), x.res.mean(2)], -1)  # (N, L, 4h)
        gc = c.mean(1, keepdim=True)  # (N, 1, 4h)
        ctx = {g: self.block[g](c) + self.glob[g](gc) for g in GROUPS}  # (N, L, h)
        qk = self.own["qk"](x.qk) + self.head["qk"](heads).unsqueeze(3) + ctx["qk"][:, :, None, None]
        vo = self.own["vo"](x.vo) + self.head["vo"](heads).unsqueeze(3) + ctx["vo"][:, :, None, None]
        mlp = self.own["mlp"](x.mlp) + ctx["mlp"][:, :, None]
        res = self.own["res"](x.res) + ctx["res"][:, :, None] + self.across(x.res.mean(1, keepdim=True))
        return TransformerNeurons(*(x[g] + self.act(y) for g, y in zip(GROUPS, (qk, vo, mlp, res), strict=True)))


@dataclass
class TransformerGMNConfig:
    """Sizes of a TransformerGMN: hidden features per neuron and the number of layers."""

    hidden: int = 32
    layers: int = 2

    def to_dict(self) -> dict:
        return asdict(self)


class TransformerGMN(nn.Module):
    """Lift each group's features (standardised per group and feature, statistics from `fit_norm`),
    then `layers` TransformerGMNLayers: per-neuron embeddings (same groups, f = hidden)."""

    def __init__(self, config: TransformerGMNConfig):
        super().__init__()
        self.config = config
        self.lift = nn.ModuleDict({g: nn.Linear(FEATURES[g], config.hidden) for g in GROUPS})
        self.layers = nn.ModuleList([TransformerGMNLayer(config.hidden) for _ in range(config.layers)])
        for g in GROUPS:
            self.register_buffer(f"shift_{g}", torch.zeros(FEATURES[g]))
            self.register_buffer(f"scale_{g}", torch.ones(FEATURES[g]))

    @torch.no_grad()
    def fit_norm(self, items: list[TransformerNeurons]) -> None:
        """Per-(group, feature) mean and std over every neuron of every item (shared by a group's
        neurons, so the statistics keep the symmetry)."""
        for g in GROUPS:
            x = torch.cat([it[g].reshape(-1, FEATURES[g]).double() for it in items])
            getattr(self, f"shift_{g}").copy_(x.mean(0))
            getattr(self, f"scale_{g}").copy_(x.std(0).clamp_min(1e-6) if x.shape[0] > 1 else torch.ones_like(x[0]))

    def forward(self, x: TransformerNeurons) -> TransformerNeurons:
        def lift(g: str, t: Tensor) -> Tensor:
            shift, scale = getattr(self, f"shift_{g}").to(t.dtype), getattr(self, f"scale_{g}").to(t.dtype)
            return self.lift[g]((t - shift) / scale)

        z = x.map(lift)
        for layer in self.layers:
            z = layer(z)
        return z


# symmetries (for tests and augmentation)


@dataclass
class BlockPerm:
    """One block's symmetry: heads (H,), qk (H, hd) and vo (H, hd) per head, mlp (m,).

    New neuron (h, j) of qk is old neuron (heads[h], qk[h, j]); likewise vo; new MLP neuron i is old mlp[i].
    """

    heads: Tensor
    qk: Tensor
    vo: Tensor
    mlp: Tensor

    @staticmethod
    def random(h: int, hd: int, m: int, generator: torch.Generator | None = None) -> BlockPerm:
        def rp(n: int) -> Tensor:
            return torch.randperm(n, generator=generator)

        return BlockPerm(rp(h), torch.stack([rp(hd) for _ in range(h)]), torch.stack([rp(hd) for _ in range(h)]),
                         rp(m))

    def rows(self, which: str) -> Tensor:
        """Index into the d = H·hd rows of q/k ("qk") or v (and o columns, "vo")."""
        within = self.qk if which == "qk" else self.vo
        hd = within.shape[1]
        return (self.heads[:, None] * hd + within).reshape(-1)


def permute_block_params(params: dict[str, Tensor], blk: BlockMaps, perm: BlockPerm) -> dict[str, Tensor]:
    """A copy of `params` with one block's neurons permuted (the function is unchanged). Parameters
    named by separate nn.Linear maps (e.g. gmn.transformer.GPT): NAME.weight, NAME.bias."""
    out = dict(params)
    qk, vo = perm.rows("qk"), perm.rows("vo")
    for name, rows in ((blk.q, qk), (blk.k, qk), (blk.v, vo), (blk.fc1, perm.mlp)):
        out[f"{name}.weight"] = params[f"{name}.weight"][rows]
        if f"{name}.bias" in params:
            out[f"{name}.bias"] = params[f"{name}.bias"][rows]
    out[f"{blk.o}.weight"] = params[f"{blk.o}.weight"][:, vo]
    out[f"{blk.fc2}.weight"] = params[f"{blk.fc2}.weight"][:, perm.mlp]
    return out


def permute_neurons(x: TransformerNeurons, perms: list[BlockPerm]) -> TransformerNeurons:
    """Apply per-block permutations to per-neuron tensors (N, L, ...): the action matching
    `permute_block_params` (res is unchanged)."""
    def one(t: Tensor, l: int, group: str) -> Tensor:
        p = perms[l]
        if group == "mlp":
            return t[:, p.mlp]
        if group == "res":
            return t
        within = p.qk if group == "qk" else p.vo
        th = t[:, p.heads]  # (N, H, hd, f)
        return torch.gather(th, 2, within[None, :, :, None].expand(th.shape[0], -1, -1, th.shape[-1]))

    return TransformerNeurons(*(torch.stack([one(x[g][:, l], l, g) for l in range(x[g].shape[1])], 1)
                                for g in GROUPS))

