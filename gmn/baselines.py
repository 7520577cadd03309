"""Non-equivariant baseline: an MLP on flattened gradients (and optionally weights).

It is tied to one architecture (one hidden width, since the input is a flat vector) and
ignores the neuron-permutation symmetry: it exists to show what equivariance buys, and
it fails the equivariance tests by construction.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
from torch import Tensor, nn

from inr.siren import Params, SirenArch, flatten, unflatten

from .layers import mlp


@dataclass
class FlatMLPConfig:
    hidden: int = 256
    layers: int = 2  # hidden layers
    use_params: bool = True  # also feed θ (flattened), not only the mean gradient
    edit_scale_init: float | None = 0.01

    def to_dict(self) -> dict:
        return asdict(self)


class FlatGradientMLP(nn.Module):
    """Δθ = scale ⊙ unflatten(MLP([flat mean gradient, flat θ])), inputs divided by per-tensor RMS."""

    def __init__(self, arch: SirenArch, config: FlatMLPConfig | None = None):
        super().__init__()
        config = config or FlatMLPConfig()
        self.arch, self.config = arch, config
        p = arch.num_params
        n_in = 2 * p if config.use_params else p
        self.net = mlp([n_in] + [config.hidden] * config.layers + [p])
        self.register_buffer("in_scale", torch.ones(2, 2 * arch.depth))  # (gradient | params, tensor)
        s = config.edit_scale_init
        self.scale = nn.Parameter(torch.full((2 * arch.depth,), s)) if s is not None else None

    def _flat(self, ts: list[Tensor], row: int) -> Tensor:
        return flatten([t / s.to(t.dtype) for t, s in zip(ts, self.in_scale[row], strict=True)])

    @torch.no_grad()
    def fit_norm(self, grad: Params, params: Params | None = None) -> None:
        """Per-tensor RMS of the gradients (and weights)."""
        for row, ts in enumerate([grad, params]):
            if ts is not None:
                self.in_scale[row] = torch.stack([t.pow(2).mean().sqrt().clamp_min(1e-12) for t in ts])

    def forward(self, grad: Params, params: Params | None = None) -> Params:
        """grad: mean gradient in Params layout (e.g. `rank1_gradients(neurons, arch)`); params: θ. Returns Δθ."""
        x = self._flat(grad, 0)  # (N, P)
        if self.config.use_params:
            if params is None:
                raise ValueError("this baseline was built with use_params=True: pass params")
            x = torch.cat([x, self._flat(params, 1)], 1)  # (N, 2P)
        out = unflatten(self.net(x), self.arch)
        return out if self.scale is None else [t * s for t, s in zip(out, self.scale, strict=True)]
