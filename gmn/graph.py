"""Neural-graph weight-space backbone: message passing on the SIREN's own computation graph.

Every neuron is a node (inputs, hidden, outputs) and every weight W_l[i, j] is an edge from
neuron j of layer l-1 to neuron i of layer l; a bias is a node feature. A block updates
edges from their two end nodes, then nodes from their incoming and outgoing edges
(mean-aggregated, so hidden-neuron permutations commute with the network), in the spirit of
neural-graph metanetworks (Kofinas et al., arXiv 2403.12143; Lim et al., arXiv 2312.04501).
Unlike the NP layer (`gmn.weightspace`), which only sees row, column and layer means of the
weights, a node here receives the per-edge products of weights and neighbour states, like a
forward pass of the MLP itself, so neurons can tell their neighbours apart.

Same interface as `WSNet`: Params (+ optional Params-layout extra channels, e.g. GradMetaNet's
Θ[f]) → Δθ. Input neurons (columns of W_1) and output neurons (rows of W_L) keep their
identity through learned per-index embeddings, as in the NP layer.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from inr.siren import Params, SirenArch, biases, weights

from .weightspace import WeightSpaceInput

# helpers


def _mlp(d_in: int, d_hidden: int, d_out: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(d_in, d_hidden), nn.GELU(), nn.Linear(d_hidden, d_out))


# config


@dataclass
class NGNetConfig:
    """Neural-graph editor backbone; in_channels = 1 (weights) + extra channels."""

    dim_in: int = 2
    dim_out: int = 1
    depth: int = 3  # weight layers of the SIREN
    in_channels: int = 1
    edge_dim: int = 16
    node_dim: int = 32
    blocks: int = 3
    out_channels: int = 1  # Δθ channels: k > 1 gives k edited copies (OCE, `gmn.editors.merge_copies`)
    edit_scale_init: float | None = 0.01

    @classmethod
    def for_arch(cls, arch: SirenArch, **kw) -> NGNetConfig:
        return cls(dim_in=arch.dim_in, dim_out=arch.dim_out, depth=arch.depth, **kw)

    def to_dict(self) -> dict:
        return asdict(self)


# one block


class GraphBlock(nn.Module):
    """Edges from their end nodes, then nodes from their edges; parameters per weight layer."""

    def __init__(self, depth: int, de: int, dn: int):
        super().__init__()
        self.depth = depth
        self.edge_row = nn.ModuleList(nn.Linear(dn, de) for _ in range(depth))  # end node i's part of edge ij
        self.edge_col = nn.ModuleList(nn.Linear(dn, de, bias=False) for _ in range(depth))  # start node j's part
        self.edge_norm = nn.ModuleList(nn.LayerNorm(de) for _ in range(depth))
        self.edge_mlp = nn.ModuleList(_mlp(de, 2 * de, de) for _ in range(depth))
        self.msg_edge = nn.ModuleList(nn.Linear(de, 2 * dn) for _ in range(depth))  # → (forward, backward) gates
        self.to_row = nn.ModuleList(nn.Linear(dn, dn) for _ in range(depth))  # node j's message along its out-edges
        self.to_col = nn.ModuleList(nn.Linear(dn, dn) for _ in range(depth))  # node i's message along its in-edges
        self.node_norm = nn.ModuleList(nn.LayerNorm(dn) for _ in range(depth + 1))
        self.node_mlp = nn.ModuleList(_mlp(4 * dn, 2 * dn, dn) for _ in range(depth + 1))

    def forward(self, edges: list[Tensor], nodes: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        """edges[l]: (N, d_{l+1}, d_l, De) for weight layer l+1; nodes[l]: (N, d_l, Dn), l = 0..L."""
        new_edges, inc, out = [], [torch.zeros_like(h) for h in nodes], [torch.zeros_like(h) for h in nodes]
        for l, e in enumerate(edges):
            row, col = nodes[l + 1], nodes[l]  # (N, d_{l+1}, Dn), (N, d_l, Dn)
            z = e + self.edge_row[l](row)[:, :, None] + self.edge_col[l](col)[:, None]  # (N, d_{l+1}, d_l, De)
            e = e + self.edge_mlp[l](self.edge_norm[l](z))
            new_edges.append(e)
            gf, gb = self.msg_edge[l](e).chunk(2, -1)  # (N, d_{l+1}, d_l, Dn) each
            inc[l + 1] = (gf * self.to_row[l](col)[:, None]).mean(2)  # (N, d_{l+1}, Dn): like W h, a forward pass
            out[l] = (gb * self.to_col[l](row)[:, :, None]).mean(1)  # (N, d_l, Dn): like Wᵀ g, a backward pass
        new_nodes = []
        for l, h in enumerate(nodes):
            pooled = h.mean(1, keepdim=True).expand_as(h)  # the layer's mean (a DeepSets term)
            x = torch.cat([self.node_norm[l](h), inc[l], out[l], pooled], -1)  # (N, d_l, 4 Dn)
            new_nodes.append(h + self.node_mlp[l](x))
        return new_edges, new_nodes


# network


class NGNet(WeightSpaceInput):
    """Equivariant weight-space editor on the neural graph: Δθ = scale ⊙ heads(blocks(embed(θ)))."""

    def __init__(self, config: NGNetConfig):
        super().__init__()
        self.config = cfg = config
        L, c, de, dn = cfg.depth, cfg.in_channels, cfg.edge_dim, cfg.node_dim
        self.edge_in = nn.ModuleList(nn.Linear(c, de) for _ in range(L))
        self.bias_in = nn.ModuleList(nn.Linear(c, dn) for _ in range(L))
        self.layer_emb = nn.Parameter(torch.randn(L + 1, dn) * 0.1)
        self.input_emb = nn.Parameter(torch.randn(cfg.dim_in, dn) * 0.1)  # input neurons keep their identity
        self.output_emb = nn.Parameter(torch.randn(cfg.dim_out, dn) * 0.1)  # and so do output neurons
        self.blocks = nn.ModuleList(GraphBlock(L, de, dn) for _ in range(cfg.blocks))
        k = cfg.out_channels
        self.edge_out = nn.ModuleList(nn.Sequential(nn.LayerNorm(de), nn.Linear(de, k)) for _ in range(L))
        self.bias_out = nn.ModuleList(nn.Sequential(nn.LayerNorm(dn), nn.Linear(dn, k)) for _ in range(L))
        self.register_buffer("in_scale", torch.ones(2 * L, c))
        scale = cfg.edit_scale_init
        self.scale = nn.Parameter(torch.full((2 * L,), scale)) if scale is not None else None

    def inputs(self, params: Params, extra: list[Tensor] | None = None) -> list[Tensor]:
        if len(weights(params)) != self.config.depth:
            raise ValueError(f"NGNet expects {self.config.depth} weight layers, got {len(weights(params))}")
        return super().inputs(params, extra)

    def forward(self, params: Params, extra: list[Tensor] | None = None) -> Params:
        """params: N INRs; extra: Params-layout channels (N, d_l, d_{l-1}, c') / (N, d_l, c'). Returns Δθ
        (with a trailing axis of `out_channels` copies when that is > 1)."""
        x = self.normalised(params, extra)
        ws, bs = weights(x), biases(x)
        N = ws[0].shape[0]
        edges = [f(w) for f, w in zip(self.edge_in, ws, strict=True)]  # (N, d_l, d_{l-1}, De)
        nodes = [(self.input_emb + self.layer_emb[0]).expand(N, -1, -1)]  # (N, d_0, Dn)
        for l, (f, b) in enumerate(zip(self.bias_in, bs, strict=True)):
            h = f(b) + self.layer_emb[l + 1]  # (N, d_l, Dn)
            nodes.append(h + self.output_emb if l == self.config.depth - 1 else h)
        for block in self.blocks:
            edges, nodes = block(edges, nodes)
        out = []
        for l in range(self.config.depth):
            out += [self.edge_out[l](edges[l]), self.bias_out[l](nodes[l + 1])]  # (N, d_l, d_{l-1}, k), (N, d_l, k)
        if self.config.out_channels == 1:
            out = [t[..., 0] for t in out]
        return out if self.scale is None else [t * s for t, s in zip(out, self.scale, strict=True)]
