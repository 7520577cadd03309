"""Transformer symmetries of GradMetaNet (gmn/transformer_gmn.py, docs/DESIGN.md §13): permute a GPT's
heads, qk and vo dimensions within heads and MLP neurons; the logits stay, the gradient set's features
permute, the layers commute; negative controls break a symmetry and must fail."""

from __future__ import annotations

import copy

import pytest
import torch
from torch import nn
from torch.func import functional_call

from gmn.capture import capture_gradient_set
from gmn.transformer import GPT, GPTConfig
from gmn.transformer_gmn import (
    GROUPS,
    BlockPerm,
    TransformerGMN,
    TransformerGMNConfig,
    TransformerLayout,
    TransformerNeurons,
    neuron_features,
    permute_block_params,
    permute_neurons,
)

CFG = GPTConfig(width=12, heads=3, layers=2, block=8, mlp_ratio=2, vocab=13)


def seq_loss(logits, targets):
    ce = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    return ce.view(targets.shape).sum(-1)  # (E,): one loss per sequence


@pytest.fixture(scope="module")
def setup():
    torch.manual_seed(0)
    model = GPT(CFG).double()
    with torch.no_grad():  # away from the zero-bias initialisation, so a bias permuted wrongly shows
        for p in model.parameters():
            p.normal_(0, 0.3)
    layout = TransformerLayout.for_gpt(model)
    gen = torch.Generator().manual_seed(1)
    x = torch.randint(0, CFG.vocab, (6, 8), generator=gen)
    y = torch.randint(0, CFG.vocab, (6, 8), generator=gen)
    hd, m = CFG.width // CFG.heads, CFG.mlp_ratio * CFG.width
    perms = [BlockPerm.random(CFG.heads, hd, m, gen) for _ in range(CFG.layers)]
    params = {k: p.detach() for k, p in model.named_parameters()}
    permuted = params
    for blk, p in zip(layout.blocks, perms, strict=True):
        permuted = permute_block_params(permuted, blk, p)
    return model, layout, x, y, perms, params, permuted


def features(model, params, layout, x, y):
    m = copy.deepcopy(model)
    m.load_state_dict(params)
    gs = capture_gradient_set(m, seq_loss, x, y)
    return neuron_features(gs, dict(m.named_parameters()), layout)


def assert_neurons_close(a: TransformerNeurons, b: TransformerNeurons, **kw):
    for g in GROUPS:
        torch.testing.assert_close(a[g], b[g], **kw)


def test_permuted_gpt_computes_the_same_function(setup):
    model, _, x, _, _, params, permuted = setup
    ref = functional_call(model, params, (x,))
    torch.testing.assert_close(functional_call(model, permuted, (x,)), ref, rtol=1e-12, atol=1e-12)
    assert not torch.equal(permuted["blocks.0.attn.q.weight"], params["blocks.0.attn.q.weight"])


def test_gradient_set_features_permute(setup):
    model, layout, x, y, perms, params, permuted = setup
    f = features(model, params, layout, x, y)
    assert f.qk.shape == (1, 2, 3, 4, 14) and f.mlp.shape == (1, 2, 24, 10) and f.res.shape == (1, 2, 12, 18)
    fp = features(model, permuted, layout, x, y)
    assert not torch.allclose(fp.qk, f.qk) and not torch.allclose(fp.vo, f.vo) and not torch.allclose(fp.mlp, f.mlp)
    assert_neurons_close(fp, permute_neurons(f, perms), rtol=1e-9, atol=1e-9)


def test_transformer_gmn_is_equivariant(setup):
    model, layout, x, y, perms, params, permuted = setup
    f = features(model, params, layout, x, y)
    fp = features(model, permuted, layout, x, y)
    torch.manual_seed(2)
    net = TransformerGMN(TransformerGMNConfig(hidden=8, layers=2)).double()
    net.fit_norm([f])
    assert_neurons_close(net(fp), permute_neurons(net(f), perms), rtol=1e-9, atol=1e-9)


class IndexedGMN(TransformerGMN):
    """Negative control: adds a learned embedding of each neuron's index (heads, dims, MLP neurons),
    as a flat-vector model would see them. Not equivariant."""

    def __init__(self, config, shapes):
        super().__init__(config)
        self.pos = nn.ParameterDict({g: nn.Parameter(torch.randn(*s, config.hidden)) for g, s in shapes.items()})

    def forward(self, x):
        z = x.map(lambda g, t: self.lift[g]((t - getattr(self, f"shift_{g}")) / getattr(self, f"scale_{g}"))
                  + (self.pos[g] if g in self.pos else 0))
        for layer in self.layers:
            z = layer(z)
        return z


def test_negative_controls(setup):
    model, layout, x, y, perms, params, permuted = setup
    # permuting the query dimensions of a head without the matching key dimensions changes the function
    broken = dict(params)
    rows = torch.arange(CFG.width)
    rows[:4] = torch.tensor([1, 0, 3, 2])  # within head 0
    broken["blocks.0.attn.q.weight"] = params["blocks.0.attn.q.weight"][rows]
    broken["blocks.0.attn.q.bias"] = params["blocks.0.attn.q.bias"][rows]
    ref = functional_call(model, params, (x,))
    assert (functional_call(model, broken, (x,)) - ref).abs().max() > 1e-3
    # so does permuting v rows without o's columns
    broken = dict(params)
    broken["blocks.1.attn.v.weight"] = params["blocks.1.attn.v.weight"][rows]
    assert (functional_call(model, broken, (x,)) - ref).abs().max() > 1e-3
    # a layer that sees neuron indices is not equivariant: the same test fails
    f = features(model, params, layout, x, y)
    fp = features(model, permuted, layout, x, y)
    torch.manual_seed(3)
    shapes = {"qk": f.qk.shape[1:4], "vo": f.vo.shape[1:4], "mlp": f.mlp.shape[1:3]}
    net = IndexedGMN(TransformerGMNConfig(hidden=8, layers=1), shapes).double()
    net.fit_norm([f])
    with pytest.raises(AssertionError):
        assert_neurons_close(net(fp), permute_neurons(net(f), perms), rtol=1e-6, atol=1e-6)


def test_encoder_layers_layout():
    """nn.TransformerEncoderLayer's packed attention (gmn.capture's q/k/v maps) gives the same groups."""
    torch.manual_seed(5)
    enc = nn.Sequential(*(nn.TransformerEncoderLayer(8, 2, dim_feedforward=10, dropout=0.0, batch_first=True)
                          for _ in range(2)), nn.Linear(8, 3)).double()
    x, t = torch.randn(4, 5, 8, dtype=torch.float64), torch.randn(4, 5, 3, dtype=torch.float64)
    gs = capture_gradient_set(enc, lambda out, t: (out - t).pow(2).sum((1, 2)), x, t)
    layout = TransformerLayout.for_encoder(["0", "1"], heads=2)
    f = neuron_features(gs, dict(enc.named_parameters()), layout)
    assert f.qk.shape == (1, 2, 2, 4, 14) and f.vo.shape == (1, 2, 2, 4, 10) and f.mlp.shape == (1, 2, 10, 10)
    assert f.res.shape == (1, 2, 8, 18) and torch.isfinite(f.res).all()
    w = enc[1].self_attn.in_proj_weight.detach()[8:16]  # the key rows of block 1: feature 11 is their log mean square
    torch.testing.assert_close(f.qk[0, 1, :, :, 11].reshape(-1), w.pow(2).mean(1).log())
