"""Editors: one interface (INR params, objective at sampled points) → Δθ, for every model.

    editor = Editor(EditorConfig(kind="ws+gmn", task="dilate", arch=SirenArch().to_dict()))
    dtheta = editor(params, arch, x, target_pts, mask_pts)      # Params, θ' = θ + s·Δθ

Kinds (all equivariant to hidden-neuron permutations except "mlp"; all see θ):
- "gmn":          GradMetaNet on the decomposed gradients (a, g) + weight-derived neuron features.
- "gmnpp":        GradMetaNet++ on (a, g) + weight-derived neuron features.
- "ws":           WS (NP layers) on the weights alone: no information from the points.
- "ws+probe":     WS on θ plus Θ[f] channels of a GradMetaNet encoder fed probing features
                  (activations a at the points only: no target information).
- "ws+probe+res": the same fed (a, r) with the residual r = w·(f − t) at each point broadcast to
                  all neurons: the target information of the gradient, without backpropagation.
- "ws+gmn":       the same fed the gradients (a, g): the paper's best setup.
- "ng":           neural-graph network on the weights alone (`gmn.graph`): message passing on the
                  SIREN's computation graph, a stronger weight-space backbone than the NP layers.
- "ng+gmn":       the same fed GradMetaNet's Θ[f] channels of the gradients, as in "ws+gmn".
- "mlp":          MLP on the flattened mean gradient and θ (non-equivariant, one width only).

The three "ws+…" kinds share one architecture and differ only in what the points tell them,
so comparing them isolates the value of the gradient input.

The objective at the points is a weighted squared error w·(f − t)² with w = m + λ(1 − m)
for a paint mask m (w = 1 for filters): see `gmn.objectives`.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import torch
from torch import Tensor, nn

from inr.siren import Params, SirenArch, biases, forward, weights

from .baselines import FlatGradientMLP, FlatMLPConfig
from .decompose import NeuronSet, Objective, decompose_gradients, probe_features, rank1_gradients
from .graph import NGNet, NGNetConfig
from .model import GradMetaNet, GradMetaNetConfig, GradMetaNetPP, GradMetaNetPPConfig, GradMetaNetWS
from .modelfile import load_module, save_module
from .objectives import pixel_weight
from .weightspace import WSNet, WSNetConfig

KINDS = ("gmn", "gmnpp", "ws", "ws+probe", "ws+probe+res", "ws+gmn", "ng", "ng+gmn", "mlp")
GRADIENT_KINDS = ("gmn", "gmnpp", "ws+gmn", "ng+gmn", "mlp")  # kinds that read per-point gradients
OCE_KINDS = ("ws", "ws+probe", "ws+probe+res", "ws+gmn", "ng", "ng+gmn")  # kinds that can output k copies
KIND_WORDS = {  # what each kind reads, in plain words (the app's editor card)
    "gmn": "GradMetaNet on the edit's gradients at the sampled points",
    "gmnpp": "GradMetaNet++ on the edit's gradients at the sampled points",
    "ws": "a weight-space network on the INR's weights alone (the points are not read)",
    "ws+probe": "a weight-space network on the weights and the activations at the sampled points",
    "ws+probe+res": "a weight-space network on the weights, activations and residuals at the sampled points",
    "ws+gmn": "a weight-space network on the weights plus GradMetaNet on the edit's gradients at the points",
    "ng": "a neural-graph network on the INR's weights alone (the points are not read)",
    "ng+gmn": "a neural-graph network on the weights plus GradMetaNet on the edit's gradients at the points",
    "mlp": "a plain MLP on the flattened mean gradient (not permutation-aware; one width only)",
}
EDITOR_FORMAT = "gmn-editor"


class EditorError(ValueError):
    """An editor cannot be built, loaded or applied (one-line message)."""


@dataclass
class EditorConfig:
    """What an editor is: its kind, the task it was trained for, the SIRENs it edits, sizes."""

    kind: str = "ws+gmn"
    task: str = "dilate"
    arch: dict = field(default_factory=lambda: SirenArch().to_dict())  # SIRENs it was trained on
    points: int = 64  # default number of sampled points at edit time
    lam: float = 1.0  # paint: weight of the preservation term outside the mask
    hidden: int = 48  # GradMetaNet width
    interaction_layers: int = 3
    deepsets_layers: int = 2
    lowrank: int = 8
    theta_channels: int = 8  # Θ[f] channels handed to WS
    ws_hidden: int = 16
    ws_layers: int = 3
    ws_residual: bool = False  # residual connections between WS's hidden layers
    ng_edge: int = 16  # neural-graph edge (weight) width
    ng_node: int = 32  # neural-graph node (neuron) width
    ng_blocks: int = 3
    pp_dim: int = 32
    pp_blocks: int = 2
    pp_heads: int = 4
    mlp_hidden: int = 256
    weight_features: bool = True
    edit_scale_init: float = 0.01
    widths: list[int] | None = None  # SIREN hidden widths it was validated on (None: any width)
    copies: int = 1  # OCE: k edited copies whose outputs are averaged (the edit widens the SIREN k×)
    rounds: int = 1  # the network applied this many times, re-reading the gradients at the edited INR

    def __post_init__(self) -> None:
        if self.kind not in KINDS:
            raise EditorError(f"unknown editor kind {self.kind!r}; choose one of {', '.join(KINDS)}")
        if self.copies < 1:
            raise EditorError(f"copies must be at least 1, got {self.copies}")
        if self.copies > 1 and self.kind not in OCE_KINDS:
            raise EditorError(f"k > 1 edited copies (OCE) need a weight-space backbone: one of {', '.join(OCE_KINDS)}")
        if self.rounds < 1:
            raise EditorError(f"rounds must be at least 1, got {self.rounds}")
        if self.rounds > 1 and (self.copies > 1 or self.kind not in GRADIENT_KINDS):
            raise EditorError("several rounds need an in-place editor that reads gradients (copies = 1, a "
                              f"gradient kind: {', '.join(sorted(GRADIENT_KINDS))})")

    @property
    def siren(self) -> SirenArch:
        return SirenArch.from_dict(self.arch)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> EditorConfig:
        """The config of a card or file; an unknown key (a misspelling would load the default) is refused."""
        unknown = sorted(set(d) - set(cls.__dataclass_fields__))
        if unknown:
            raise EditorError(f"unknown editor config key(s): {', '.join(unknown)}; known: "
                              f"{', '.join(cls.__dataclass_fields__)}")
        return cls(**d)


class Editor(nn.Module):
    """Δθ for a batch of INRs from their parameters and an objective at sampled points."""

    def __init__(self, config: EditorConfig):
        super().__init__()
        self.config = cfg = config
        arch = cfg.siren
        scale = cfg.edit_scale_init
        gkw = dict(hidden=cfg.hidden, interaction_layers=cfg.interaction_layers, deepsets_layers=cfg.deepsets_layers,
                   lowrank=cfg.lowrank, decoder_hidden=cfg.hidden, weight_features=cfg.weight_features)
        if cfg.kind == "gmn":
            self.net = GradMetaNet(GradMetaNetConfig.for_arch(arch, in_features=2, edit_scale_init=scale, **gkw))
        elif cfg.kind == "gmnpp":
            self.net = GradMetaNetPP(GradMetaNetPPConfig.for_arch(
                arch, in_features=2, dim=cfg.pp_dim, blocks=cfg.pp_blocks, heads=cfg.pp_heads, lowrank=cfg.lowrank,
                edit_scale_init=scale, weight_features=cfg.weight_features))
        elif cfg.kind == "ws":
            self.net = WSNet(WSNetConfig.for_arch(arch, in_channels=1, hidden=cfg.ws_hidden, layers=cfg.ws_layers,
                                                  edit_scale_init=scale, residual=cfg.ws_residual,
                                                  out_channels=cfg.copies))
        elif cfg.kind == "ng":
            self.net = NGNet(self._ng_config(1))
        elif "+" in cfg.kind:  # ws+… and ng+gmn
            f = {"ws+probe": 1, "ws+probe+res": 1 + arch.dim_out, "ws+gmn": 2, "ng+gmn": 2}[cfg.kind]
            gcfg = GradMetaNetConfig.for_arch(arch, in_features=f, out_channels=cfg.theta_channels,
                                              edit_scale_init=None, **gkw)
            if cfg.kind.startswith("ng"):
                wcfg = self._ng_config(1 + cfg.theta_channels)
            else:
                wcfg = WSNetConfig.for_arch(arch, in_channels=1 + cfg.theta_channels, hidden=cfg.ws_hidden,
                                            layers=cfg.ws_layers, edit_scale_init=scale, residual=cfg.ws_residual,
                                            out_channels=cfg.copies)
            self.net = GradMetaNetWS(gcfg, wcfg)
        else:  # mlp
            self.net = FlatGradientMLP(arch, FlatMLPConfig(hidden=cfg.mlp_hidden, edit_scale_init=scale))
        # Phase preconditioning: a change Δ of a sine layer's weights moves its phase by ω·Δ·a (ω = 30),
        # while the linear output layer moves f by Δ·a. Dividing the sine layers' edits by ω puts every
        # layer on the same footing, so early layers no longer wreck the image while the editor learns
        # (without it the first-layer output scales collapse to ~0, docs/DESIGN.md §4).
        pre = [1.0 / w for w in arch.omegas for _ in range(2)] + [1.0, 1.0]
        self.register_buffer("precond", torch.tensor(pre), persistent=False)

    def _ng_config(self, channels: int) -> NGNetConfig:
        cfg = self.config
        return NGNetConfig.for_arch(cfg.siren, in_channels=channels, edge_dim=cfg.ng_edge, node_dim=cfg.ng_node,
                                    blocks=cfg.ng_blocks, edit_scale_init=cfg.edit_scale_init, out_channels=cfg.copies)

    # inputs

    def check(self, arch: SirenArch) -> None:
        """Refuse INRs this editor cannot edit, with a message naming both."""
        mine = self.config.siren
        if arch.depth != mine.depth:
            raise EditorError(
                f"INR has {arch.depth} weight layers ({arch.layers} sine layers); editor "
                f"'{self.config.task}/{self.config.kind}' expects {mine.depth} ({mine.layers} sine layers)"
            )
        if (arch.dim_in, arch.dim_out) != (mine.dim_in, mine.dim_out):
            raise EditorError(
                f"INR maps {arch.dim_in}→{arch.dim_out} channels; editor expects {mine.dim_in}→{mine.dim_out}"
            )
        if (arch.w0, arch.w0_initial) != (mine.w0, mine.w0_initial):
            raise EditorError(f"INR has ω = ({arch.w0_initial:g}, {arch.w0:g}); editor expects "
                              f"({mine.w0_initial:g}, {mine.w0:g})")
        if self.config.kind == "mlp" and arch.hidden != mine.hidden:
            raise EditorError(f"the 'mlp' editor only edits width {mine.hidden} INRs, got width {arch.hidden}")
        widths = self.config.widths
        if widths and arch.hidden not in widths:
            raise EditorError(f"editor '{self.config.task}/{self.config.kind}' was validated on SIRENs of width "
                              f"{', '.join(map(str, widths))} only (its edits of other widths were measured worse: "
                              f"see its card); this INR has width {arch.hidden}")

    def neurons(self, params: Params, arch: SirenArch, x: Tensor, target: Tensor, mask: Tensor | None) -> NeuronSet:
        """The per-point neuron features this editor reads (None-free for every kind but 'ws')."""
        kind, lam = self.config.kind, self.config.lam
        if kind in GRADIENT_KINDS:
            return decompose_gradients(params, arch, x, objective=self.objective(target, mask))
        probe = probe_features(params, arch, x)
        if kind == "ws+probe":
            return probe
        # ws+probe+res: residual w·(f − t) of each point, broadcast to every neuron
        f = probe.feats[:, :, -arch.dim_out :, 0]  # (N, B, C): the output neurons' activations
        w = pixel_weight(mask, lam, target)  # (N, B, 1)
        r = (w * (f - target)).unsqueeze(2).expand(-1, -1, probe.feats.shape[2], -1)  # (N, B, n, C)
        return NeuronSet(torch.cat([probe.feats, r], -1), probe.layer, probe.dims)

    def forward(
        self, params: Params, arch: SirenArch, x: Tensor, target: Tensor, mask: Tensor | None = None
    ) -> Params:
        """Δθ (Params) for N INRs; with k = `copies` > 1 every tensor has a trailing axis of k copies
        (`apply_edit` merges them).

        x: (N, B, 2) sampled coordinates; target: (N, B, C) target values there; mask: (N, B, 1)
        paint mask (None for filter edits).

        With `rounds` = R > 1 the network is applied R times to the same points and objective, each round
        reading the gradients of the INR edited so far; Δθ is the sum of the rounds' edits (differentiable
        through every round, so training sees what the last round makes of the first)."""
        return self.edit_rounds(params, arch, x, target, mask)[-1]

    def edit_rounds(self, params: Params, arch: SirenArch, x: Tensor, target: Tensor,
                    mask: Tensor | None = None) -> list[Params]:
        """Per round r = 1..R, the Δθ of rounds 1..r (`forward` is the last); inputs as `forward`."""
        self.check(arch)
        return self._rounds(params, arch, x, target, mask)

    def _rounds(self, params: Params, arch: SirenArch, x: Tensor, target: Tensor, mask: Tensor | None,
                rounds: int | None = None) -> list[Params]:
        """Δθ summed over the first r rounds, for r = 1..`rounds` (default: all of them)."""
        totals: list[Params] = []
        for _ in range(self.config.rounds if rounds is None else rounds):
            current = [p + t for p, t in zip(params, totals[-1])] if totals else params
            d = [d * c for d, c in zip(self._raw(current, arch, x, target, mask), self.precond)]
            totals.append([t + e for t, e in zip(totals[-1], d)] if totals else d)
        return totals

    def objective(self, target: Tensor, mask: Tensor | None = None) -> Objective:
        """The objective this editor reads at its points: w·(f − t)² with w = m + λ(1 − m) at its own λ."""
        return _objective(target, mask, self.config.lam)

    @torch.no_grad()
    def gradients_seen(self, params: Params, arch: SirenArch, x: Tensor, target: Tensor,
                       mask: Tensor | None = None) -> list[NeuronSet]:
        """Per round, the decomposed gradients (a, g) of the editor's own objective (masked, λ-weighted) at the INR
        that round reads: θ, then θ + the edits of the rounds before it. x (N, B, 2), target (N, B, C), mask
        (N, B, 1) or None, as `forward`."""
        self.check(arch)
        objective = self.objective(target, mask)
        earlier = self._rounds(params, arch, x, target, mask, self.config.rounds - 1)
        states = [params] + [[p + t for p, t in zip(params, d)] for d in earlier]
        return [decompose_gradients(p, arch, x, objective=objective) for p in states]

    def _raw(self, params: Params, arch: SirenArch, x: Tensor, target: Tensor, mask: Tensor | None) -> Params:
        kind = self.config.kind
        if kind in ("ws", "ng"):
            return self.net(params)
        neurons = self.neurons(params, arch, x, target, mask)
        if kind in ("gmn", "gmnpp"):
            return [t[..., 0] for t in self.net(neurons, params)]
        if kind == "mlp":
            return self.net(rank1_gradients(neurons, arch), params)
        return self.net(params, neurons)

    @torch.no_grad()
    def fit_norm(self, params: Params, arch: SirenArch, x: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        """Fit the input normalisation statistics on a batch of training data."""
        kind = self.config.kind
        if kind in ("ws", "ng"):
            self.net.fit_norm(params)
            return
        neurons = self.neurons(params, arch, x, target, mask)
        if kind in ("gmn", "gmnpp"):
            self.net.fit_norm(neurons, params)
        elif kind == "mlp":
            self.net.fit_norm(rank1_gradients(neurons, arch), params)
        else:
            self.net.fit_norm(params, neurons)

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())


def _objective(target: Tensor, mask: Tensor | None, lam: float) -> Objective:
    """w·(f − t)² with w = m + λ(1 − m): the helper's masked form with orig = target."""
    if mask is None:
        return Objective("mse", target=target)
    return Objective("masked_mse", target=target, mask=mask, orig=target, lam=lam)


def apply_edit(params: Params, dtheta: Params, strength: float = 1.0) -> Params:
    """θ' = θ + s·Δθ. An OCE edit (Δθ with a trailing axis of k copies) gives the k SIRENs θ + s·Δθ_c
    merged into one SIREN of k× the hidden width whose output is their mean (`merge_copies`)."""
    if dtheta[0].dim() == params[0].dim():
        return [p + strength * d for p, d in zip(params, dtheta)]
    return merge_copies([p.unsqueeze(-1) + strength * d for p, d in zip(params, dtheta)])


def merge_copies(copies: list[Tensor]) -> Params:
    """k SIRENs (Params layout with a trailing copy axis: W_l (N, d_l, d_{l-1}, k), b_l (N, d_l, k)) → one
    SIREN of width k·d computing their mean output, exactly: the first layer's rows and every hidden bias
    stacked, hidden→hidden weights block-diagonal, the last layer's columns stacked and divided by k,
    its bias averaged. Costs: k× the neurons, ~k² × the hidden→hidden weights and their render time."""
    ws, bs, out = weights(copies), biases(copies), []
    depth, k = len(ws), ws[0].shape[-1]
    for li, (w, b) in enumerate(zip(ws, bs)):
        N, rows, cols, _ = w.shape
        w, b = w.permute(0, 3, 1, 2), b.permute(0, 2, 1)  # (N, k, rows, cols), (N, k, rows)
        if li == depth - 1:  # output layer: Σ_c W_c h_c / k, mean of the biases
            out += [w.permute(0, 2, 1, 3).reshape(N, rows, k * cols) / k, b.mean(1)]
        elif li == 0:  # input layer: every copy's neurons read the same coordinates
            out += [w.reshape(N, k * rows, cols), b.reshape(N, k * rows)]
        else:
            big = w.new_zeros(N, k, rows, k, cols)
            big[:, torch.arange(k), :, torch.arange(k)] = w.transpose(0, 1)  # block c on the diagonal
            out += [big.reshape(N, k * rows, k * cols), b.reshape(N, k * rows)]
    return out


def edited_forward(params: Params, dtheta: Params, arch: SirenArch, x: Tensor, strength: float = 1.0) -> Tensor:
    """f (N, B, C) of the edited INRs at points x; for an OCE edit the mean of its k copies' outputs (what
    the merged SIREN computes, at k rather than k² the cost of its hidden layers)."""
    if dtheta[0].dim() == params[0].dim():
        return forward(apply_edit(params, dtheta, strength), arch, x)
    N, k = params[0].shape[0], dtheta[0].shape[-1]
    flat = [(p.unsqueeze(-1) + strength * d).movedim(-1, 1).flatten(0, 1) for p, d in zip(params, dtheta)]
    xs = x if x.dim() == 2 else x.repeat_interleave(k, 0)
    f = forward(flat, arch, xs)  # (N·k, B, C)
    return f.unflatten(0, (N, k)).mean(1)


def edited_arch(arch: SirenArch, dtheta: Params) -> SirenArch:
    """The architecture of `apply_edit(params, dtheta)`: k× the width for an OCE edit of k copies."""
    if dtheta[1].dim() == 2:  # b_1 (N, d_1): one copy
        return arch
    return replace(arch, hidden=arch.hidden * dtheta[0].shape[-1])


# files


def save_editor(path: str | Path, editor: Editor, card: dict | None = None) -> None:
    """Editor weights as safetensors (config + card in its metadata) and the card as JSON beside it."""
    card = dict(card or {})
    card.setdefault("task", editor.config.task)
    card.setdefault("editor", editor.config.kind)
    card.setdefault("parameters", editor.num_parameters())
    save_module(path, editor, EDITOR_FORMAT, editor.config.to_dict(), card)


def load_editor(path: str | Path, device: torch.device | str = "cpu") -> tuple[Editor, dict]:
    """Load an editor file (never unpickles). Returns (editor in eval mode, card)."""
    editor, card = load_module(path, EDITOR_FORMAT, "editor", EditorError,
                               lambda config: Editor(EditorConfig.from_dict(config)))
    return editor.to(device), card
