"""Gradient sets of any model (gmn/capture.py): the rank-1 factors summed over positions equal
torch.func per-sample gradients in float64, for every nn.Linear (docs/DESIGN.md §13)."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

from gmn.capture import capture_gradient_set, per_sample_grads
from gmn.decompose import as_gradient_set, decompose_gradients, mse
from inr.siren import SirenArch, init_params, to_sirennet

RTOL = 1e-9


class TinyGPT(nn.Module):
    """A decoder-only transformer with separate q/k/v/o projections, written for these tests."""

    def __init__(self, vocab: int = 11, d: int = 12, heads: int = 3, mlp: int = 20, layers: int = 2, ctx: int = 8):
        super().__init__()
        self.heads = heads
        self.tok, self.pos = nn.Embedding(vocab, d), nn.Embedding(ctx, d)
        self.blocks = nn.ModuleList()
        for _ in range(layers):
            b = nn.Module()
            b.ln1, b.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
            b.q, b.k, b.v, b.o = (nn.Linear(d, d) for _ in range(4))
            b.fc1, b.fc2 = nn.Linear(d, mlp), nn.Linear(mlp, d)
            self.blocks.append(b)
        self.ln, self.head = nn.LayerNorm(d), nn.Linear(d, vocab, bias=False)

    def forward(self, idx):
        e, t = idx.shape
        x = self.tok(idx) + self.pos(torch.arange(t))  # (E, T, d)
        causal = torch.ones(t, t, dtype=torch.bool).triu(1)
        for b in self.blocks:
            y = b.ln1(x)
            q, k, v = (p(y).view(e, t, self.heads, -1).transpose(1, 2) for p in (b.q, b.k, b.v))  # (E, h, T, hd)
            s = (q @ k.transpose(-1, -2) / math.sqrt(q.shape[-1])).masked_fill(causal, float("-inf"))
            x = x + b.o((s.softmax(-1) @ v).transpose(1, 2).reshape(e, t, -1))
            x = x + b.fc2(torch.nn.functional.gelu(b.fc1(b.ln2(x))))
        return self.head(self.ln(x))  # (E, T, vocab)


def lm_loss(logits, targets):
    """Per example: the SUM over positions of the cross-entropy (no 1/T, no 1/E: see gmn/capture.py)."""
    ce = nn.functional.cross_entropy(logits.flatten(0, -2), targets.flatten(), reduction="none")
    return ce.view(targets.shape).sum(-1)


def sq_loss(bd=0):
    """Squared error summed over everything but the example axis `bd` (0 or 1 of a 3-d output)."""
    return lambda out, t: (out - t).pow(2).sum(-1).sum(1 - bd)


def assert_exact(model, loss_fn, inputs, targets, *, batch_dim=0):
    gs = capture_gradient_set(model, loss_fn, inputs, targets, batch_dim=batch_dim)
    ref = per_sample_grads(model, loss_fn, inputs, targets, batch_dim=batch_dim)
    got = gs.param_grads()
    linear_params = {f"{n}.{p}" for n, m in model.named_modules() if isinstance(m, nn.Linear)
                     for p, _ in m.named_parameters(recurse=False)}
    linear_params |= {f"{n}.in_proj_weight" for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)}
    linear_params |= {f"{n}.in_proj_bias" for n, m in model.named_modules() if isinstance(m, nn.MultiheadAttention)}
    assert linear_params <= set(got), f"not captured: {linear_params - set(got)}"
    scale = max(r.abs().max().item() for r in ref.values())  # k's bias gradient is 0 up to rounding
    for name in sorted(got):
        torch.testing.assert_close(got[name], ref[name], rtol=RTOL, atol=1e-13 * scale,
                                   msg=lambda m, n=name: f"{n}: {m}")
        # the mean over examples is the gradient of the mean loss
        torch.testing.assert_close(gs.mean_grad()[name], ref[name].mean(0), rtol=RTOL, atol=1e-12)
    return gs


def test_mlp_with_shared_layer_and_positions():
    torch.manual_seed(0)
    shared = nn.Linear(5, 5)
    model = nn.Sequential(nn.Linear(3, 5), nn.Tanh(), shared, nn.Tanh(), shared, nn.Linear(5, 2, bias=False)).double()
    x = torch.randn(4, 6, 3, dtype=torch.float64)  # (E, T, d_in): 6 positions per example
    target = torch.randn(4, 6, 2, dtype=torch.float64)
    gs = assert_exact(model, sq_loss(), x, target)
    assert gs.terms["2"].a.shape == (4, 12, 5)  # two calls of the shared map: 2 × 6 positions
    assert gs.terms["5"].g.shape == (4, 6, 2) and gs.terms["5"].bias is None


@pytest.mark.parametrize("batch_first", [True, False])
def test_transformer_encoder_layer(batch_first):
    torch.manual_seed(1)
    d, t, e = 8, 5, 3
    layer = nn.TransformerEncoderLayer(d, nhead=2, dim_feedforward=12, dropout=0.0, batch_first=batch_first)
    model = nn.Sequential(layer, nn.Linear(d, 3)).double().eval()
    x = torch.randn(e, t, d, dtype=torch.float64)
    if not batch_first:
        x = x.transpose(0, 1).contiguous()  # (T, E, d)
    target = torch.randn_like(model(x))
    bd = 0 if batch_first else 1
    gs = assert_exact(model, sq_loss(bd), x, target, batch_dim=bd)
    assert {"0.self_attn.q", "0.self_attn.k", "0.self_attn.v", "0.self_attn.out_proj", "0.linear1",
            "0.linear2", "1"} <= set(gs.names())
    assert gs.terms["0.self_attn.q"].a.shape == (e, t, d)


def test_capture_leaves_multihead_attention_unchanged():
    """The functional MultiheadAttention used during capture is the module's own forward, and is removed."""
    torch.manual_seed(2)
    mha = nn.MultiheadAttention(8, 4, batch_first=True).double()
    x = torch.randn(2, 6, 8, dtype=torch.float64)
    causal = torch.ones(6, 6, dtype=torch.bool).triu(1)

    def padding(x):  # per example (so torch.func sees it per example); key 0 is never padded
        return (x[..., 0] > 0.3) & (torch.arange(6) > 0)

    ref = mha(x, x, x, attn_mask=causal, key_padding_mask=padding(x))
    assert padding(x).any()
    seen = {}

    def loss(out, _):
        seen["out"] = out
        return out[0].pow(2).sum((1, 2))

    class Wrap(nn.Module):
        def __init__(self):
            super().__init__()
            self.mha = mha

        def forward(self, x):
            return self.mha(x, x, x, attn_mask=causal, key_padding_mask=padding(x))

    gs = capture_gradient_set(Wrap(), loss, x)
    torch.testing.assert_close(seen["out"][0], ref[0], rtol=1e-12, atol=1e-12)
    torch.testing.assert_close(seen["out"][1], ref[1], rtol=1e-12, atol=1e-12)  # averaged attention weights
    assert "forward" not in vars(mha)
    ps = per_sample_grads(Wrap(), loss, x)
    got = gs.param_grads()
    for name in ("mha.in_proj_weight", "mha.in_proj_bias", "mha.out_proj.weight", "mha.out_proj.bias"):
        torch.testing.assert_close(got[name], ps[name], rtol=RTOL, atol=1e-12)


def test_tiny_gpt_every_linear():
    torch.manual_seed(3)
    model = TinyGPT().double()
    idx = torch.randint(0, 11, (5, 8))
    gs = assert_exact(model, lm_loss, idx, torch.randint(0, 11, (5, 8)))
    assert len(gs.names()) == 2 * 6 + 1
    gw, gb = gs.per_example_grads("blocks.1.fc1")
    assert gw.shape == (5, 20, 12) and gb.shape == (5, 20)


def test_gpt_every_linear():
    """gmn.transformer.GPT (scaled_dot_product_attention, separate q/k/v/out): every nn.Linear exact."""
    from gmn.transformer import GPT, GPTConfig

    torch.manual_seed(5)
    model = GPT(GPTConfig(width=8, heads=2, layers=2, block=6, mlp_ratio=3, vocab=9)).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, 0.3)
    idx, tgt = torch.randint(0, 9, (4, 6)), torch.randint(0, 9, (4, 6))
    gs = assert_exact(model, lm_loss, idx, tgt)
    assert len(gs.names()) == 2 * 6 + 1 and gs.terms["blocks.1.mlp.proj"].a.shape == (4, 6, 24)


def test_siren_decomposition_is_a_gradient_set():
    """gmn.decompose's batched SIREN path and the generic capture on siren_pytorch's SirenNet agree:
    the same a and g per layer, one example per point (T = 1)."""
    torch.manual_seed(4)
    arch = SirenArch(dim_in=2, hidden=7, dim_out=2, layers=2)
    params = [p.double() for p in init_params(arch, 1, generator=torch.Generator().manual_seed(4))]
    net = to_sirennet(params, arch).double()
    x = torch.rand(9, 2, dtype=torch.float64) * 2 - 1
    t = torch.rand(9, 2, dtype=torch.float64)
    loss = lambda out, t: (out + 0.5 - t).pow(2).sum(-1)  # noqa: E731
    gs = capture_gradient_set(net, loss, x, t)
    objective = mse(t.unsqueeze(0))
    ours = as_gradient_set(decompose_gradients(params, arch, x, objective=objective), arch, objective)[0]
    assert ours.names() == gs.names()
    for name in gs.names():
        torch.testing.assert_close(ours.terms[name].a, gs.terms[name].a, rtol=RTOL, atol=1e-13)
        torch.testing.assert_close(ours.terms[name].g, gs.terms[name].g, rtol=RTOL, atol=1e-13)
        assert ours.terms[name].weight == gs.terms[name].weight
    ref = per_sample_grads(net, loss, x, t)
    for name, grad in ours.param_grads().items():
        torch.testing.assert_close(grad, ref[name], rtol=RTOL, atol=1e-12)
    torch.testing.assert_close(ours.losses, gs.losses, rtol=RTOL, atol=1e-13)


def test_refusals():
    model = nn.Sequential(nn.Linear(3, 2))
    with pytest.raises(ValueError, match="one loss per example"):
        capture_gradient_set(model, lambda out, _: out.sum(), torch.randn(4, 3))
    with pytest.raises(ValueError, match="set batch_dim"):
        capture_gradient_set(model, lambda out, _: out.sum((0, 2)), torch.randn(4, 5, 3))
    with pytest.raises(KeyError, match="no linear map"):
        capture_gradient_set(model, lambda out, _: out.sum(-1), torch.randn(4, 3)).per_example_grads("x")


def test_as_gradient_set_of_a_stack_without_losses():
    """One GradientSet per INR of a stack, views of the same factors; no objective, no losses."""
    arch = SirenArch(dim_in=1, hidden=5, layers=3, dim_out=1)
    params = init_params(arch, 3, generator=torch.Generator().manual_seed(6), dtype=torch.float64)
    x = torch.rand(3, 4, 1, dtype=torch.float64)
    ns = decompose_gradients(params, arch, x, objective=mse(torch.zeros(3, 4, 1, dtype=torch.float64)))
    sets = as_gradient_set(ns, arch)
    assert len(sets) == 3 and sets[2].losses is None and sets[2].num_examples == 4
    assert sets[1].names() == ["layers.0", "layers.1", "layers.2", "last_layer"]
    gw, gb = sets[1].per_example_grads("layers.1")  # W_2 of INR 1 at each point: g⁽²⁾ a⁽¹⁾ᵀ
    a, g = ns.a.split(ns.dims, -1), ns.g.split(ns.dims, -1)
    torch.testing.assert_close(gw, g[2][1].unsqueeze(-1) * a[1][1].unsqueeze(-2), rtol=0, atol=0)
    torch.testing.assert_close(gb, g[2][1], rtol=0, atol=0)
