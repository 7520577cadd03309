"""SIRENs as stacks of parameter tensors.

One convention everywhere (docs/DESIGN.md §2):

- Architecture `siren_pytorch.SirenNet(dim_in, dim_hidden=H, dim_out=C, num_layers=K,
  w0=30., w0_initial=30.)`: K sine layers, then one linear layer; L = K + 1 weight matrices.
  Note the hidden ω is 30 (siren-pytorch's own default `w0=1.` would differ from the papers).
- Layer l = 1..L: u_l = W_l a_{l-1} + b_l;  a_l = sin(ω_l u_l) for l < L;  f = u_L + 0.5.
  So a zero last layer renders mid-grey and pixel values live in [0, 1].
- Coordinates: pixel centres on [-1, 1]², last axis ordered (row, col): x[..., 0] is the
  vertical coordinate (-1 at the top), x[..., 1] the horizontal one (-1 at the left).
- A batch of N INRs is a list `[W_1, b_1, ..., W_L, b_L]` with W_l: (N, d_l, d_{l-1}) and
  b_l: (N, d_l), evaluated with batched matmuls (faster than vmap on CPU).
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
from torch import Tensor

Params = list[Tensor]  # [W_1, b_1, ..., W_L, b_L], each with a leading INR axis N

# architecture


@dataclass(frozen=True)
class SirenArch:
    """Shape of a SIREN: `layers` sine layers of width `hidden`, then a linear output layer."""

    dim_in: int = 2
    hidden: int = 32
    layers: int = 2
    dim_out: int = 1
    w0: float = 30.0
    w0_initial: float = 30.0

    def __post_init__(self) -> None:
        for name in ("dim_in", "hidden", "layers", "dim_out"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"SirenArch.{name} must be a positive integer, got {value!r}")
        for name in ("w0", "w0_initial"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or not math.isfinite(value) or not 0 < value <= 1e4:
                raise ValueError(f"SirenArch.{name} must be a finite positive number (at most 1e4), got {value!r}")

    @property
    def depth(self) -> int:
        """Number of weight matrices L (= sine layers + 1)."""
        return self.layers + 1

    @property
    def dims(self) -> list[int]:
        """Neurons per layer, inputs and outputs included: [d_0, ..., d_L]."""
        return [self.dim_in] + [self.hidden] * self.layers + [self.dim_out]

    @property
    def omegas(self) -> list[float]:
        """ω_l of the sine layers l = 1..L-1."""
        return [self.w0_initial] + [self.w0] * (self.layers - 1)

    @property
    def num_params(self) -> int:
        d = self.dims
        return sum(d[i + 1] * d[i] + d[i + 1] for i in range(self.depth))

    @property
    def num_neurons(self) -> int:
        return sum(self.dims)

    def param_shapes(self) -> list[tuple[int, ...]]:
        """Shapes of one INR's tensors, in `Params` order."""
        d = self.dims
        shapes: list[tuple[int, ...]] = []
        for i in range(self.depth):
            shapes += [(d[i + 1], d[i]), (d[i + 1],)]
        return shapes

    def param_names(self) -> list[str]:
        """`SirenNet` state-dict keys, in `Params` order."""
        names = []
        for i in range(self.layers):
            names += [f"layers.{i}.weight", f"layers.{i}.bias"]
        return names + ["last_layer.weight", "last_layer.bias"]

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> SirenArch:
        """The architecture of a file's or card's metadata; an unknown key (a misspelling would load the default)
        is refused with a ValueError naming it."""
        fields = ("dim_in", "hidden", "layers", "dim_out", "w0", "w0_initial")
        unknown = sorted(set(d) - set(fields))
        if unknown:
            raise ValueError(f"unknown SIREN architecture key(s): {', '.join(map(str, unknown))}; known: "
                             f"{', '.join(fields)}")
        known = {k: d[k] for k in fields if k in d}
        for k in ("dim_in", "hidden", "layers", "dim_out"):
            if k in known:
                known[k] = int(known[k])
        for k in ("w0", "w0_initial"):
            if k in known:
                known[k] = float(known[k])
        return cls(**known)

    def with_hidden(self, hidden: int) -> SirenArch:
        return SirenArch(**{**self.to_dict(), "hidden": hidden})


# parameters


def init_params(
    arch: SirenArch,
    n: int = 1,
    *,
    generator: torch.Generator | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str = "cpu",
) -> Params:
    """N INRs drawn from `SirenNet`'s initialisation: U(±1/d_in) for the first layer,
    U(±sqrt(6/d_in)/ω) for the others (weights and biases alike)."""
    params: Params = []
    for i, (rows, cols) in enumerate(zip(arch.dims[1:], arch.dims[:-1])):
        w0 = arch.w0_initial if i == 0 else arch.w0
        bound = 1.0 / cols if i == 0 else math.sqrt(6.0 / cols) / w0  # U(-bound, bound)
        for shape in ((n, rows, cols), (n, rows)):
            t = torch.rand(shape, generator=generator, dtype=dtype) * (2 * bound) - bound
            params.append(t.to(device))
    return params


def check_params(params: Params, arch: SirenArch) -> int:
    """Validate shapes against `arch`; return N. Raises ValueError with a one-line message."""
    shapes = arch.param_shapes()
    if len(params) != len(shapes):
        raise ValueError(f"expected {len(shapes)} tensors for a {arch.depth}-layer SIREN, got {len(params)}")
    n = params[0].shape[0]
    for name, t, shape in zip(arch.param_names(), params, shapes):
        if tuple(t.shape) != (n, *shape):
            raise ValueError(f"tensor {name} has shape {tuple(t.shape)}, expected {(n, *shape)}")
    return n


def select(params: Params, index) -> Params:
    """Sub-batch of INRs (`index` an int, slice or index tensor); keeps the leading axis."""
    if isinstance(index, int):
        index = slice(index, index + 1)
    return [t[index] for t in params]


def concat(batches: list[Params]) -> Params:
    return [torch.cat(ts, 0) for ts in zip(*batches)]


def flatten(params: Params) -> Tensor:
    """(N, P, ...) vector per INR, in `Params` order (trailing axes beyond a tensor's own shape are kept only
    by `unflatten`'s `like` form; here every tensor is flattened from axis 1)."""
    return torch.cat([t.flatten(1) for t in params], 1)


def unflatten(vec: Tensor, like: Params | SirenArch) -> Params:
    """Inverse of `flatten`: (N, P) → Params with the shapes of `like` (an architecture, or a Params stack
    whose per-INR shapes are used; trailing axes of `vec` beyond P are kept)."""
    shapes = like.param_shapes() if isinstance(like, SirenArch) else [tuple(t.shape[1:]) for t in like]
    parts = vec.split([math.prod(s) for s in shapes], 1)
    return [q.reshape(vec.shape[0], *s, *vec.shape[2:]) for q, s in zip(parts, shapes)]


# named access to the parameter layout [W_1, b_1, ..., W_L, b_L]


def weights(params: Params) -> list[Tensor]:
    """[W_1, ..., W_L], W_l: (N, d_l, d_{l-1})."""
    return params[0::2]


def biases(params: Params) -> list[Tensor]:
    """[b_1, ..., b_L], b_l: (N, d_l)."""
    return params[1::2]


def layer(params: Params, l: int) -> tuple[Tensor, Tensor]:
    """(W_l, b_l) of layer l = 1..L."""
    if not 1 <= l <= len(params) // 2:
        raise IndexError(f"layer {l} of a {len(params) // 2}-layer SIREN (layers are 1..L)")
    return params[2 * l - 2], params[2 * l - 1]


def from_layers(ws: list[Tensor], bs: list[Tensor]) -> Params:
    """Params from per-layer weights and biases: the inverse of (`weights`, `biases`)."""
    if len(ws) != len(bs):
        raise ValueError(f"{len(ws)} weight matrices but {len(bs)} bias vectors")
    return [t for pair in zip(ws, bs) for t in pair]


# forward


def forward(params: Params, arch: SirenArch, x: Tensor, *, return_preacts: bool = False):
    """Evaluate N INRs at points x: (B, dim_in) shared, or (N, B, dim_in) per INR.

    Returns f: (N, B, dim_out) with the +0.5 offset. With `return_preacts`, also the list
    of pre-activations [u_1, ..., u_L], u_l: (N, B, d_l) (u_L = f - 0.5).
    """
    a = x
    preacts = []
    for i in range(arch.depth):
        W, b = layer(params, i + 1)
        u = torch.matmul(a, W.transpose(1, 2)) + b.unsqueeze(1)  # (N, B, d_l)
        preacts.append(u)
        a = torch.sin(arch.omegas[i] * u) if i < arch.layers else u
    f = a + 0.5
    return (f, preacts) if return_preacts else f


def coordinate_grid(height: int, width: int | None = None, *, dtype=torch.float32, device="cpu") -> Tensor:
    """Pixel-centre coordinates on [-1, 1]², (H*W, 2) in row-major order, last axis (row, col)."""
    width = height if width is None else width
    rows = (torch.arange(height, dtype=dtype, device=device) + 0.5) / height * 2 - 1
    cols = (torch.arange(width, dtype=dtype, device=device) + 0.5) / width * 2 - 1
    return torch.stack(torch.meshgrid(rows, cols, indexing="ij"), -1).reshape(-1, 2)


RENDER_CHUNK = 1 << 12  # points per INR per evaluation when rendering: the activations stay in cache
# (a 256² render of a 2→128→128→1 SIREN on one thread: 310 ms in one 64k chunk, 90 ms in 4k ones;
# docs/DESIGN.md §2)


@torch.no_grad()
def evaluate(params: Params, arch: SirenArch, x: Tensor) -> Tensor:
    """`forward` without autograd, computed in place (renders): f (N, B, dim_out)."""
    a = x.expand(params[0].shape[0], -1, -1) if x.dim() == 2 else x
    for i in range(arch.depth):
        W, b = layer(params, i + 1)
        u = torch.baddbmm(b.unsqueeze(1), a, W.transpose(1, 2))  # (N, B, d_l)
        a = u.mul_(arch.omegas[i]).sin_() if i < arch.layers else u
    return a.add_(0.5)


@torch.no_grad()
def render(
    params: Params,
    arch: SirenArch,
    size: int | tuple[int, int],
    *,
    chunk: int = RENDER_CHUNK,
    clamp: bool = True,
) -> Tensor:
    """Render N INRs on a pixel-centre grid at any resolution: (N, H, W, C).

    Points are evaluated in chunks of `chunk` per INR, so memory stays at a few
    chunk × hidden floats (any resolution renders in a few MB) and in cache.
    """
    h, w = (size, size) if isinstance(size, int) else size
    n = params[0].shape[0]
    grid = coordinate_grid(h, w, dtype=params[0].dtype, device=params[0].device)
    out = torch.empty(n, h * w, arch.dim_out, dtype=params[0].dtype, device=params[0].device)
    for start in range(0, h * w, chunk):
        out[:, start : start + chunk] = evaluate(params, arch, grid[start : start + chunk])
    if clamp:
        out.clamp_(0.0, 1.0)
    return out.reshape(n, h, w, arch.dim_out)


# interop with siren_pytorch


def to_sirennet(params: Params, arch: SirenArch, index: int = 0):
    """One INR of the stack as a `siren_pytorch.SirenNet` (same outputs, minus the +0.5)."""
    from siren_pytorch import SirenNet

    net = SirenNet(arch.dim_in, arch.hidden, arch.dim_out, arch.layers, w0=arch.w0, w0_initial=arch.w0_initial)
    net.load_state_dict(state_dict(params, arch, index))
    return net


def state_dict(params: Params, arch: SirenArch, index: int = 0) -> dict[str, Tensor]:
    """`SirenNet` state dict of INR `index`."""
    return {name: t[index].detach().clone() for name, t in zip(arch.param_names(), params)}


def from_state_dict(sd: dict[str, Tensor], *, w0: float = 30.0, w0_initial: float = 30.0) -> tuple[Params, SirenArch]:
    """Params (N = 1) and architecture of a plain `SirenNet` state dict.

    The ω's are not part of a state dict: pass the ones the network was built with.
    """
    layers = 0
    while f"layers.{layers}.weight" in sd:
        layers += 1
    if layers == 0 or "last_layer.weight" not in sd:
        raise ValueError("not a SirenNet state dict: expected layers.0.weight ... last_layer.weight")
    first, last = sd["layers.0.weight"], sd["last_layer.weight"]
    arch = SirenArch(
        dim_in=int(first.shape[1]),
        hidden=int(first.shape[0]),
        layers=layers,
        dim_out=int(last.shape[0]),
        w0=w0,
        w0_initial=w0_initial,
    )
    missing = [k for k in arch.param_names() if k not in sd]
    if missing:
        raise ValueError(f"SirenNet state dict lacks {missing[0]}")
    params = [sd[k].detach().clone().unsqueeze(0) for k in arch.param_names()]
    check_params(params, arch)
    return params, arch
