"""Gradient sets of any PyTorch model: per-example, per-position rank-1 factors of every linear map
(docs/DESIGN.md §13).

For a linear map u = W a + b applied at positions t = 1..T of example e, with per-example loss ℓ_e,

    ∇_W ℓ_e = Σ_t g_{e,t} a_{e,t}ᵀ,   ∇_b ℓ_e = Σ_t g_{e,t},   g_{e,t} = ∂ℓ_e/∂u_{e,t}.

`capture_gradient_set(model, loss_fn, inputs, targets)` records a (the input of the map) with forward hooks and g
(the gradient of the loss with respect to the map's output) by one backward pass to the recorded outputs,
for every `nn.Linear` of the model, so a minibatch's gradient set is A: (E, T, d_in) and G: (E, T, d_out)
per map: memory O(points × neurons), never O(examples × parameters).

Scaling convention: `loss_fn(output, targets)` returns one loss per example, (E,). The backward pass is
run on their SUM, so examples never mix and each g is exactly ∂ℓ_e/∂u (not divided by E);
`per_example_grads` are the gradients of each ℓ_e and `mean_grad` the gradient of mean_e ℓ_e. The model
must treat examples independently (no batch statistics; dropout off or seeded per call).

What is captured:
- every `nn.Linear` called as a module (inputs (E, ..., d_in): every axis but the batch axis is a
  position; a map called twice in one forward gets both calls' positions);
- `nn.MultiheadAttention`, which never calls its projections as modules (its q/k/v weights are packed
  in `in_proj_weight` and `out_proj` is applied functionally): during capture its forward is replaced by
  an exact functional re-implementation that records q, k and v as three maps on rows of the packed
  weight ("NAME.q", "NAME.k", "NAME.v") and calls `out_proj` as a module. Bias-k/v and add-zero-attn are
  refused. Tests check the replacement against the original output and torch.func per-sample gradients;
- `siren_pytorch.Siren` layers (their F.linear is the map; g is taken before the sine), so SirenNet's
  gradient set is the same as `gmn.decompose.decompose_gradients` (the SIREN path, `as_gradient_set`).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from contextlib import contextmanager
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F
from torch import Tensor, nn

# the gradient set


@dataclass
class LinearTerms:
    """Rank-1 factors of one linear map over a minibatch.

    a: (E, T, d_in) inputs, g: (E, T, d_out) gradients of the summed loss w.r.t. the map's outputs.
    weight / bias: the parameter names the map reads (bias None when there is none); weight_rows /
    bias_rows: the rows of that parameter the map uses when it is packed (MultiheadAttention's in_proj),
    else None (the whole parameter).
    """

    a: Tensor
    g: Tensor
    weight: str
    bias: str | None = None
    weight_rows: tuple[int, int] | None = None
    bias_rows: tuple[int, int] | None = None

    @property
    def num_positions(self) -> int:
        return self.a.shape[1]


@dataclass
class GradientSet:
    """The gradient set of a minibatch of E examples: rank-1 factors per linear map (`terms`, by name,
    in call order), the per-example losses (E,) where known, and the shapes of packed parameters.
    Built by `capture_gradient_set` (or, for SIRENs, `gmn.decompose.as_gradient_set`)."""

    terms: dict[str, LinearTerms]
    losses: Tensor | None = None
    param_shapes: dict[str, tuple[int, ...]] = field(default_factory=dict)

    @property
    def num_examples(self) -> int:
        return next(iter(self.terms.values())).a.shape[0]

    def names(self) -> list[str]:
        """The captured maps, in the order they were first called."""
        return list(self.terms)

    def per_example_grads(self, name: str) -> tuple[Tensor, Tensor | None]:
        """Each example's gradient of the map `name`: weight (E, d_out, d_in) = Σ_t g aᵀ, bias (E, d_out)."""
        t = self._term(name)
        gw = torch.einsum("eto,eti->eoi", t.g, t.a)
        return gw, (t.g.sum(1) if t.bias is not None else None)

    def mean_grad(self) -> dict[str, Tensor]:
        """Gradient of mean_e ℓ_e by parameter name (each parameter's shape)."""
        return {k: v.mean(0) for k, v in self.param_grads().items()}

    def param_grads(self) -> dict[str, Tensor]:
        """Per-example gradients by parameter name, (E, *shape): the maps that share a packed parameter
        (in_proj's q, k, v) are assembled into it; a map called several times is summed already."""
        out: dict[str, Tensor] = {}
        for n in self.names():
            t = self.terms[n]
            gw, gb = self.per_example_grads(n)
            for pname, rows, grad in ((t.weight, t.weight_rows, gw), (t.bias, t.bias_rows, gb)):
                if pname is None:
                    continue
                if rows is None:
                    out[pname] = out[pname] + grad if pname in out else grad
                    continue
                if pname not in out:
                    out[pname] = grad.new_zeros(grad.shape[0], *self.param_shapes[pname])
                out[pname][:, rows[0] : rows[1]] += grad
        return out

    def _term(self, name: str) -> LinearTerms:
        if name not in self.terms:
            raise KeyError(f"no linear map {name!r} in the gradient set; it has {', '.join(self.terms)}")
        return self.terms[name]


# capture


class _Recorder:
    """Collects (a, u) per map during one forward; u are the outputs whose gradients become g."""

    def __init__(self, batch_dim: int):
        self.batch_dim = batch_dim
        self.calls: dict[str, list[tuple[Tensor, Tensor, int]]] = {}
        self.meta: dict[str, tuple] = {}

    def record(self, name: str, a: Tensor, u: Tensor, weight: str, bias: str | None,
               rows: tuple[int, int] | None = None, bias_rows: tuple[int, int] | None = None,
               *, batch_dim: int | None = None) -> Tensor:
        if not u.requires_grad:
            raise ValueError(f"output of {name!r} does not require grad; enable grad on the model's parameters")
        bd = self.batch_dim if batch_dim is None else batch_dim
        a = a.detach().movedim(bd, 0)
        # u itself (not a view of it) is what the rest of the forward uses, so its gradient is the signal g
        self.calls.setdefault(name, []).append((a.reshape(a.shape[0], -1, a.shape[-1]), u, bd))
        self.meta[name] = (weight, bias, rows, bias_rows)
        return u


def _prefix(name: str, leaf: str) -> str:
    return f"{name}.{leaf}" if name else leaf


def _linear_hook(rec: _Recorder, name: str, has_bias: bool, batch_dim: int | None):
    """Forward hook of an nn.Linear; batch_dim 0 for MultiheadAttention's out_proj (called batch-first)."""
    def hook(module: nn.Module, args: tuple, out: Tensor) -> None:
        rec.record(name, args[0], out, _prefix(name, "weight"), _prefix(name, "bias") if has_bias else None,
                   batch_dim=batch_dim)
    return hook


def _siren_forward(rec: _Recorder, name: str, m: nn.Module):
    def forward(x: Tensor) -> Tensor:
        u = F.linear(x, m.weight, m.bias)  # (E, ..., d_out), the pre-activation
        rec.record(name, x, u, _prefix(name, "weight"), _prefix(name, "bias") if m.bias is not None else None)
        return m.dropout(m.activation(u))
    return forward


def _mha_forward(rec: _Recorder, name: str, m: nn.MultiheadAttention):
    """Exact functional MultiheadAttention (batched inputs) that records q, k, v as maps and calls
    out_proj as a module (so its hook records it)."""

    def forward(query: Tensor, key: Tensor, value: Tensor, key_padding_mask: Tensor | None = None,
                need_weights: bool = True, attn_mask: Tensor | None = None, average_attn_weights: bool = True,
                is_causal: bool = False):
        if m.bias_k is not None or m.add_zero_attn:
            raise ValueError(f"capture does not support bias_k/bias_v or add_zero_attn in {name!r}")
        if query.dim() != 3:
            raise ValueError(f"capture needs batched inputs for {name!r}, got query of shape {tuple(query.shape)}")
        if not m.batch_first:
            query, key, value = (x.transpose(0, 1) for x in (query, key, value))  # (E, T, d)
        e, tq, d = query.shape
        tk, h = key.shape[1], m.num_heads
        hd = d // h
        if m._qkv_same_embed_dim:
            ws = m.in_proj_weight.chunk(3)
            wnames = [_prefix(name, "in_proj_weight")] * 3
        else:
            ws = (m.q_proj_weight, m.k_proj_weight, m.v_proj_weight)
            wnames = [_prefix(name, f"{c}_proj_weight") for c in "qkv"]
        bs = m.in_proj_bias.chunk(3) if m.in_proj_bias is not None else (None,) * 3
        bname = _prefix(name, "in_proj_bias") if m.in_proj_bias is not None else None
        qkv = []
        for i, (c, x, w, b) in enumerate(zip("qkv", (query, key, value), ws, bs, strict=True)):
            rows = (i * d, (i + 1) * d)
            u = F.linear(x, w, b)  # (E, T, d)
            rec.record(_prefix(name, c), x, u, wnames[i], bname, rows if m._qkv_same_embed_dim else None,
                       rows if bname else None, batch_dim=0)
            qkv.append(u)
        q, k, v = (t.view(e, -1, h, hd).transpose(1, 2) for t in qkv)  # (E, h, T, hd)
        mask = _attention_mask(attn_mask, key_padding_mask, is_causal, e, h, tq, tk, q.dtype, q.device)
        scores = q @ k.transpose(-2, -1) / math.sqrt(hd)  # (E, h, Tq, Tk)
        if mask is not None:
            scores = scores + mask
        attn = torch.softmax(scores, -1)
        if m.training and m.dropout > 0:
            attn = F.dropout(attn, p=m.dropout)
        out = m.out_proj((attn @ v).transpose(1, 2).reshape(e, tq, d))  # the module call: (E, Tq, d)
        if not m.batch_first:
            out = out.transpose(0, 1)  # (Tq, E, d)
        weights = None
        if need_weights:
            weights = attn.mean(1) if average_attn_weights else attn
        return out, weights

    return forward


def _attention_mask(attn_mask, key_padding_mask, is_causal, e, h, tq, tk, dtype, device) -> Tensor | None:
    """Additive float mask (E, h, Tq, Tk) (or broadcastable) from MultiheadAttention's mask arguments."""
    def additive(mk: Tensor) -> Tensor:
        if mk.dtype == torch.bool:
            return torch.zeros(mk.shape, dtype=dtype, device=device).masked_fill(mk, float("-inf"))
        return mk.to(dtype)

    mask = None
    if attn_mask is None and is_causal:
        attn_mask = torch.ones(tq, tk, dtype=torch.bool, device=device).triu(1)
    if attn_mask is not None:
        mask = additive(attn_mask)
        mask = mask.view(1, 1, tq, tk) if mask.dim() == 2 else mask.view(e, h, tq, tk)
    if key_padding_mask is not None:
        kp = additive(key_padding_mask).view(e, 1, 1, tk)
        mask = kp if mask is None else mask + kp
    return mask


def _is_siren(m: nn.Module) -> bool:
    return type(m).__name__ == "Siren" and type(m).__module__.startswith("siren_pytorch")


@contextmanager
def _hooked(model: nn.Module, rec: _Recorder):
    """Install the recording hooks and forward replacements; remove them on exit."""
    handles, patched = [], []
    mha_out = set()
    for name, m in model.named_modules():
        if isinstance(m, nn.MultiheadAttention):
            patched.append(m)
            m.forward = _mha_forward(rec, name, m)
            mha_out.add(_prefix(name, "out_proj"))
        elif _is_siren(m):
            patched.append(m)
            m.forward = _siren_forward(rec, name, m)
    for name, m in model.named_modules():
        if isinstance(m, nn.Linear):
            hook = _linear_hook(rec, name, m.bias is not None, 0 if name in mha_out else None)
            handles.append(m.register_forward_hook(hook))
    try:
        yield
    finally:
        for hd in handles:
            hd.remove()
        for m in patched:
            del m.forward  # back to the class's forward


def capture_gradient_set(model: nn.Module, loss_fn: Callable[[Tensor, Tensor | None], Tensor], inputs: Tensor,
                         targets: Tensor | None = None, *, batch_dim: int = 0,
                         create_graph: bool = False) -> GradientSet:
    """Run `model(inputs)`, the per-example losses `loss_fn(output, targets)` (E,), and one backward pass
    of their sum to every linear map's output: the minibatch's gradient set.

    batch_dim: the example axis of the inputs every `nn.Linear` sees (0 for batch-first models; 1 for
    sequence-first ones such as `nn.TransformerEncoderLayer(batch_first=False)`).
    create_graph: keep g differentiable (for meta-training through the gradient set); a is detached.
    Parameter .grad fields are not touched.
    """
    rec = _Recorder(batch_dim)
    with _hooked(model, rec):
        out = model(inputs)
    losses = loss_fn(out, targets)
    if losses.dim() != 1:
        raise ValueError(f"loss_fn must return one loss per example (E,), got shape {tuple(losses.shape)}")
    if not rec.calls:
        raise ValueError("the model called no nn.Linear, nn.MultiheadAttention or Siren layer")
    names = list(rec.calls)
    us = [u for n in names for _, u, _ in rec.calls[n]]
    gs = torch.autograd.grad(losses.sum(), us, create_graph=create_graph, allow_unused=True)
    shapes = {k: tuple(p.shape) for k, p in model.named_parameters()}
    terms: dict[str, LinearTerms] = {}
    i = 0
    e = losses.shape[0]
    for n in names:
        a_parts, g_parts = [], []
        for a, u, bd in rec.calls[n]:
            g = (gs[i] if gs[i] is not None else torch.zeros_like(u)).movedim(bd, 0)
            i += 1
            if a.shape[0] != e:
                raise ValueError(f"{n!r} sees {a.shape[0]} examples on axis {rec.batch_dim}, the loss has {e}; "
                                 "set batch_dim")
            a_parts.append(a)
            g_parts.append(g.reshape(e, -1, g.shape[-1]))
        terms[n] = LinearTerms(torch.cat(a_parts, 1), torch.cat(g_parts, 1), *rec.meta[n])
    return GradientSet(terms, losses.detach(), shapes)


# reference


def per_sample_grads(model: nn.Module, loss_fn: Callable[[Tensor, Tensor | None], Tensor], inputs: Tensor,
                     targets: Tensor | None = None, *, batch_dim: int = 0) -> dict[str, Tensor]:
    """Reference per-example gradients of every parameter with torch.func (functional_call + vmap(grad)):
    {name: (E, *shape)}; targets' example axis is `batch_dim` too. For tests and small models: memory
    O(E × parameters)."""
    from torch.func import functional_call, grad, vmap

    params = {k: p.detach() for k, p in model.named_parameters()}
    buffers = {k: b.detach() for k, b in model.named_buffers()}

    def one(p, x, y):
        out = functional_call(model, (p, buffers), (x.unsqueeze(batch_dim),))
        return loss_fn(out, None if y is None else y.unsqueeze(batch_dim)).sum()

    return vmap(grad(one), in_dims=(None, batch_dim, None if targets is None else batch_dim))(params, inputs, targets)
