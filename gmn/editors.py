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

from collections.abc import Callable
from dataclasses import asdict, dataclass, replace
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

# parts: each kind's networks, built from the models' own configs (docs/DESIGN.md §4)

Part = GradMetaNetConfig | GradMetaNetPPConfig | WSNetConfig | NGNetConfig | FlatMLPConfig
# fields of a part the editor sets from the SIREN, the kind, `copies` and `edit_scale_init` (never stored)
DERIVED = {"reader": frozenset({"dim_in", "dim_out", "depth", "in_features", "edit_scale_init"}),
           "backbone": frozenset({"dim_in", "dim_out", "depth", "in_features", "in_channels", "out_channels",
                                  "edit_scale_init"})}  # the reader's out_channels are its Θ[f] channels


def _reader(theta_channels: int = 1) -> GradMetaNetConfig:
    """The default gradient reader: GradMetaNet with weight-derived neuron features."""
    return GradMetaNetConfig(hidden=48, interaction_layers=3, deepsets_layers=2, decoder_hidden=48, lowrank=8,
                             out_channels=theta_channels, weight_features=True)


@dataclass(frozen=True)
class KindSpec:
    """What one editor kind reads at the points and which parts it is built from."""

    reads: str  # "gradients" (a, g) | "probing" a | "probing+residual" (a, r) | "weights" (the points unread)
    reader: int  # input features of its GradMetaNet reader per neuron (0: no reader)
    backbone: Callable[[], Part] | None  # the default of its backbone's config (None: the reader is the net)
    build: Callable[[SirenArch, GradMetaNetConfig | None, Part | None], nn.Module]  # (arch, reader, backbone)
    call: str  # how the net is called: "neurons" (neurons, θ), "pair" (θ, neurons), "weights" (θ), "flat"
    words: str  # what it reads, in plain words (the app's editor card)


def _ws() -> WSNetConfig:
    return WSNetConfig(hidden=16, layers=3)


def _ng() -> NGNetConfig:
    return NGNetConfig(edge_dim=16, node_dim=32, blocks=3)


def _pp() -> GradMetaNetPPConfig:
    return GradMetaNetPPConfig(dim=32, blocks=2, heads=4, lowrank=8, weight_features=True)


def _mlp() -> FlatMLPConfig:
    return FlatMLPConfig(hidden=256)


def _pair(arch: SirenArch, reader: GradMetaNetConfig | None, backbone: Part | None) -> nn.Module:
    """A weight-space backbone fed the reader's Θ[f] channels (the "+" kinds)."""
    return GradMetaNetWS(reader, backbone)


KIND = {  # kind → what it reads and its parts; the one place a kind is defined
    "gmn": KindSpec("gradients", 2, None, lambda arch, r, b: GradMetaNet(r), "neurons",
                    "GradMetaNet on the edit's gradients at the sampled points"),
    "gmnpp": KindSpec("gradients", 0, _pp, lambda arch, r, b: GradMetaNetPP(b), "neurons",
                      "GradMetaNet++ on the edit's gradients at the sampled points"),
    "ws": KindSpec("weights", 0, _ws, lambda arch, r, b: WSNet(b), "weights",
                   "a weight-space network on the INR's weights alone (the points are not read)"),
    "ws+probe": KindSpec("probing", 1, _ws, _pair, "pair",
                         "a weight-space network on the weights and the activations at the sampled points"),
    "ws+probe+res": KindSpec("probing+residual", 1, _ws, _pair, "pair",  # + dim_out residual channels
                             "a weight-space network on the weights, activations and residuals at the sampled points"),
    "ws+gmn": KindSpec("gradients", 2, _ws, _pair, "pair", "a weight-space network on the weights plus GradMetaNet on "
                       "the edit's gradients at the points"),
    "ng": KindSpec("weights", 0, _ng, lambda arch, r, b: NGNet(b), "weights",
                   "a neural-graph network on the INR's weights alone (the points are not read)"),
    "ng+gmn": KindSpec("gradients", 2, _ng, _pair, "pair", "a neural-graph network on the weights plus GradMetaNet on "
                       "the edit's gradients at the points"),
    "mlp": KindSpec("gradients", 0, _mlp, lambda arch, r, b: FlatGradientMLP(arch, b), "flat",
                    "a plain MLP on the flattened mean gradient (not permutation-aware; one width only)"),
}
KINDS = tuple(KIND)
GRADIENT_KINDS = tuple(k for k, s in KIND.items() if s.reads == "gradients")  # kinds that read per-point gradients
OCE_KINDS = tuple(k for k, s in KIND.items() if s.backbone in (_ws, _ng))  # kinds that can output k copies
KIND_WORDS = {k: s.words for k, s in KIND.items()}
EDITOR_FORMAT = "gmn-editor"
# the old flat layout (cards before issue 27): key → (part, field of that part)
FLAT = {
    "hidden": ("reader", ("hidden", "decoder_hidden")), "interaction_layers": ("reader", ("interaction_layers",)),
    "deepsets_layers": ("reader", ("deepsets_layers",)), "theta_channels": ("reader", ("out_channels",)),
    "lowrank": ("both", ("lowrank",)), "weight_features": ("both", ("weight_features",)),
    "ws_hidden": ("ws", ("hidden",)), "ws_layers": ("ws", ("layers",)), "ws_residual": ("ws", ("residual",)),
    "ng_edge": ("ng", ("edge_dim",)), "ng_node": ("ng", ("node_dim",)), "ng_blocks": ("ng", ("blocks",)),
    "pp_dim": ("pp", ("dim",)), "pp_blocks": ("pp", ("blocks",)), "pp_heads": ("pp", ("heads",)),
    "mlp_hidden": ("mlp", ("hidden",)),
}
_BACKBONE_NAME = {WSNetConfig: "ws", NGNetConfig: "ng", GradMetaNetPPConfig: "pp", FlatMLPConfig: "mlp"}


class EditorError(ValueError):
    """An editor cannot be built, loaded or applied (one-line message)."""


def _part(default: Part, given: Part | dict | None, name: str) -> Part:
    """A part from its default and a (partial) dict of its fields or a config; derived or unknown keys refused."""
    if given is None:
        return default
    if not isinstance(given, dict):
        if type(given) is not type(default):
            raise EditorError(f"{name} must be a {type(default).__name__}, got a {type(given).__name__}")
        return given
    known = set(default.__dataclass_fields__) - DERIVED[name]
    bad = sorted(set(given) - known)
    if bad:
        raise EditorError(f"unknown {name} config key(s): {', '.join(bad)}; known: {', '.join(sorted(known))}")
    return replace(default, **given)


def _stored(part: Part | None, name: str) -> dict | None:
    """A part as written in a file: its own fields, without those the editor derives."""
    return None if part is None else {k: v for k, v in asdict(part).items() if k not in DERIVED[name]}


def _nest_flat(kind: str, flat: dict, reader: GradMetaNetConfig | None, backbone: Part | None):
    """The old flat layout (28 prefixed fields) translated onto the nested parts of `kind`: each key goes
    to the part that used it; keys of parts this kind does not have are dropped (old cards carry all)."""
    unknown = sorted(set(flat) - set(FLAT))
    if unknown:
        raise EditorError(f"unknown editor config key(s): {', '.join(unknown)}; known: "
                          f"{', '.join(list(EditorConfig.__dataclass_fields__) + list(FLAT))}")
    parts = {"reader": reader, "backbone": backbone}
    for key, value in flat.items():
        target, names = FLAT[key]
        if key == "theta_channels" and "+" not in kind:
            continue  # Θ channels exist only where a reader feeds a backbone
        for slot in ("reader", "backbone"):
            part = parts[slot]
            if part is None:
                continue
            here = "reader" if slot == "reader" else _BACKBONE_NAME[type(part)]
            if target == here or (target == "both" and here in ("reader", "pp")):
                parts[slot] = replace(part, **{n: value for n in names})
    return parts["reader"], parts["backbone"]


@dataclass(init=False)
class EditorConfig:
    """What an editor is: its kind, the task it was trained for, the SIRENs it edits, and its parts, nested
    as the models' own configs: `reader` (GradMetaNet on the points, kinds with a reader in `KIND`),
    `backbone` (WS, neural graph, GradMetaNet++ or the MLP), `copies` (OCE) and `rounds`.

    The old flat keywords (`hidden=`, `ws_hidden=`, `pp_dim=`, ... see `FLAT`) are still accepted, here and in
    `from_dict`, and translated once onto the parts (`_nest_flat`); `to_dict` writes the nested layout."""

    kind: str
    task: str
    arch: dict  # SIRENs it was trained on (SirenArch.to_dict)
    points: int  # default number of sampled points at edit time
    lam: float  # paint: weight of the preservation term outside the mask
    widths: list[int] | None  # SIREN hidden widths it was validated on (None: any width)
    edit_scale_init: float  # initial learnable per-tensor scale of Δθ
    reader: GradMetaNetConfig | None  # GradMetaNet on the points (out_channels: Θ[f] channels to the backbone)
    backbone: Part | None  # the network that outputs Δθ from θ (and the reader's Θ channels)
    copies: int  # OCE: k edited copies whose outputs are averaged (the edit widens the SIREN k×)
    rounds: int  # the network applied this many times, re-reading the gradients at the edited INR

    def __init__(self, kind: str = "ws+gmn", task: str = "dilate", arch: dict | None = None, points: int = 64,
                 lam: float = 1.0, widths: list[int] | None = None, edit_scale_init: float = 0.01,
                 reader: GradMetaNetConfig | dict | None = None, backbone: Part | dict | None = None,
                 copies: int = 1, rounds: int = 1, **flat) -> None:
        if kind not in KIND:
            raise EditorError(f"unknown editor kind {kind!r}; choose one of {', '.join(KINDS)}")
        spec = KIND[kind]
        self.kind, self.task, self.arch, self.points, self.lam = kind, task, arch or SirenArch().to_dict(), points, lam
        self.widths, self.edit_scale_init, self.copies, self.rounds = widths, edit_scale_init, copies, rounds
        if spec.reader == 0 and reader is not None:
            raise EditorError(f"editor kind {kind!r} has no GradMetaNet reader; drop 'reader'")
        if spec.backbone is None and backbone is not None:
            raise EditorError(f"editor kind {kind!r} is GradMetaNet alone; drop 'backbone' (its sizes are 'reader')")
        self.reader = None if spec.reader == 0 else _part(_reader(8 if "+" in kind else 1), reader, "reader")
        self.backbone = None if spec.backbone is None else _part(spec.backbone(), backbone, "backbone")
        if flat:
            self.reader, self.backbone = _nest_flat(kind, flat, self.reader, self.backbone)
        self._check()

    def _check(self) -> None:
        if self.kind == "gmn" and self.reader.out_channels != 1:
            raise EditorError(f"the 'gmn' editor outputs Δθ itself: reader out_channels must be 1, "
                              f"got {self.reader.out_channels}")
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
        """The nested layout written into editor files: the parts without the fields the editor derives."""
        d = {k: getattr(self, k) for k in self.__dataclass_fields__}
        return {**d, "reader": _stored(self.reader, "reader"), "backbone": _stored(self.backbone, "backbone")}

    @classmethod
    def from_dict(cls, d: dict) -> EditorConfig:
        """The config of a card or file, nested or in the old flat layout; an unknown key (a misspelling would
        load the default) is refused."""
        return cls(**d)


def _filled(part: Part, **derived) -> Part:
    """A part with the fields the editor derives (those of `derived` that the part has) filled in."""
    return replace(part, **{k: v for k, v in derived.items() if k in part.__dataclass_fields__})


class Editor(nn.Module):
    """Δθ for a batch of INRs from their parameters and an objective at sampled points."""

    def __init__(self, config: EditorConfig):
        super().__init__()
        self.config = cfg = config
        spec, arch = KIND[cfg.kind], cfg.siren
        shape = dict(dim_in=arch.dim_in, dim_out=arch.dim_out, depth=arch.depth)
        reader = None
        if spec.reader:  # ws+probe+res also reads the dim_out residual channels
            features = spec.reader + (arch.dim_out if spec.reads == "probing+residual" else 0)
            reader = _filled(cfg.reader, **shape, in_features=features,
                             edit_scale_init=cfg.edit_scale_init if spec.backbone is None else None)
        backbone = None
        if spec.backbone is not None:
            theta = reader.out_channels if reader is not None else 0
            backbone = _filled(cfg.backbone, **shape, in_features=2, in_channels=1 + theta,
                               out_channels=cfg.copies, edit_scale_init=cfg.edit_scale_init)
        self.net = spec.build(arch, reader, backbone)
        # Phase preconditioning: a change Δ of a sine layer's weights moves its phase by ω·Δ·a (ω = 30),
        # while the linear output layer moves f by Δ·a. Dividing the sine layers' edits by ω puts every
        # layer on the same footing, so early layers no longer wreck the image while the editor learns
        # (without it the first-layer output scales collapse to ~0, docs/DESIGN.md §4).
        pre = [1.0 / w for w in arch.omegas for _ in range(2)] + [1.0, 1.0]
        self.register_buffer("precond", torch.tensor(pre), persistent=False)

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
        """The per-point neuron features this editor reads (`KIND[kind].reads`; kinds that read the weights
        alone have none)."""
        reads, lam = KIND[self.config.kind].reads, self.config.lam
        if reads == "gradients":
            return decompose_gradients(params, arch, x, objective=self.objective(target, mask))
        if reads == "weights":
            raise EditorError(f"editor kind {self.config.kind!r} reads no features at the points")
        probe = probe_features(params, arch, x)
        if reads == "probing":
            return probe
        # probing+residual: residual w·(f − t) of each point, broadcast to every neuron
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

    def _inputs(self, params: Params, arch: SirenArch, x: Tensor, target: Tensor, mask: Tensor | None) -> tuple:
        """The arguments of `self.net` (and of its `fit_norm`), in the order `KIND[kind].call` names."""
        call = KIND[self.config.kind].call
        if call == "weights":
            return (params,)
        neurons = self.neurons(params, arch, x, target, mask)
        if call == "flat":
            return rank1_gradients(neurons, arch), params
        return (neurons, params) if call == "neurons" else (params, neurons)

    def _raw(self, params: Params, arch: SirenArch, x: Tensor, target: Tensor, mask: Tensor | None) -> Params:
        out = self.net(*self._inputs(params, arch, x, target, mask))
        return [t[..., 0] for t in out] if KIND[self.config.kind].call == "neurons" else out

    @torch.no_grad()
    def fit_norm(self, params: Params, arch: SirenArch, x: Tensor, target: Tensor, mask: Tensor | None = None) -> None:
        """Fit the input normalisation statistics on a batch of training data."""
        self.net.fit_norm(*self._inputs(params, arch, x, target, mask))

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
