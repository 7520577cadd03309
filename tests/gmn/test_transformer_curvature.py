"""Fisher diagonal of transformers from gradient sets (gmn/transformer_curvature.py, docs/DESIGN.md §13)."""

from __future__ import annotations

import copy

import torch
from torch import nn

from gmn.capture import capture_gradient_set, per_sample_grads
from gmn.transformer import GPT, GPTConfig
from gmn.transformer_curvature import (
    TrainSettings,
    TransformerFisherPredictor,
    TransformerPredictorConfig,
    evaluate,
    load_predictor,
    make_item,
    plain_fisher,
    save_predictor,
    tensor_names,
    train_predictor,
)
from gmn.transformer_gmn import BlockPerm, TransformerGMNConfig, TransformerLayout, permute_block_params

CFG = GPTConfig(width=8, heads=2, layers=2, block=6, mlp_ratio=3, vocab=7)


def gpt(seed=0, std=0.3):
    torch.manual_seed(seed)
    model = GPT(CFG).double()
    with torch.no_grad():
        for p in model.parameters():
            p.normal_(0, std)
    return model


def seq_loss(logits, targets):
    ce = nn.functional.cross_entropy(logits.flatten(0, 1), targets.flatten(), reduction="none")
    return ce.view(targets.shape).sum(-1)


def test_plain_fisher_is_the_mean_squared_per_sequence_gradient():
    model = gpt()
    layout = TransformerLayout.for_gpt(model)
    x, y = torch.randint(0, 7, (5, 6)), torch.randint(0, 7, (5, 6))
    plain = plain_fisher(capture_gradient_set(model, seq_loss, x, y), layout)
    ref = per_sample_grads(model, seq_loss, x, y)
    names = tensor_names(layout)
    assert len(names) == len(plain) == 2 * (6 * 2 - 1) and 'blocks.0.attn.k.bias' not in names
    for name, f in zip(names, plain, strict=True):
        torch.testing.assert_close(f, ref[name].pow(2).mean(0), rtol=1e-9, atol=1e-14)


def test_untrained_predictor_is_the_plain_estimator_and_training_helps():
    model = gpt(1, 0.2)
    gen = torch.Generator().manual_seed(0)
    items = [make_item(model, torch.randint(0, 7, (4, 6), generator=gen), torch.randint(0, 7, (32, 6), generator=gen),
                       seed=s) for s in range(2)]
    pred = TransformerFisherPredictor(TransformerPredictorConfig(TransformerGMNConfig(hidden=6, layers=1), rank=2)
                                      ).double()
    for a, b in zip(pred(items[0].neurons, items[0].plain), items[0].plain, strict=True):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1.01e-6 * b.mean().item())  # the EPS floor of log r
    plain = sum(evaluate(None, items))
    res = train_predictor(pred, items, items, TrainSettings(steps=20, batch=2, lr=1e-2, val_every=10))
    assert res["best_val"] < plain / 3 and res["best_step"] > 0


def test_predictor_commutes_with_block_permutations(tmp_path):
    """Permute the GPT: its Fisher permutes, and so does the predicted one (a trained-looking predictor)."""
    model = gpt(2)
    layout = TransformerLayout.for_gpt(model)
    gen = torch.Generator().manual_seed(3)
    perms = [BlockPerm.random(2, 4, 24, gen) for _ in range(2)]
    params = {k: p.detach() for k, p in model.named_parameters()}
    permuted = params
    for blk, p in zip(layout.blocks, perms, strict=True):
        permuted = permute_block_params(permuted, blk, p)
    other = copy.deepcopy(model)
    other.load_state_dict(permuted)
    x, xt = torch.randint(0, 7, (4, 6), generator=gen), torch.randint(0, 7, (32, 6), generator=gen)
    a, b = make_item(model, x, xt, seed=5), make_item(other, x, xt, seed=5)  # the same sampled labels
    torch.manual_seed(4)
    pred = TransformerFisherPredictor(TransformerPredictorConfig(TransformerGMNConfig(hidden=6, layers=2), rank=2,
                                                                 out_scale=0.5)).double()
    pred.gmn.fit_norm([a.neurons])
    names = tensor_names(layout)

    def permute(tensors):
        d = dict(zip(names, tensors, strict=True))
        for blk, p in zip(layout.blocks, perms, strict=True):
            d = permute_block_params(d, blk, p)
        return [d[n] for n in names]

    for u, v in zip(b.target, permute(a.target), strict=True):
        torch.testing.assert_close(u, v, rtol=1e-9, atol=1e-14)
    pa, pb = pred(a.neurons, a.plain), pred(b.neurons, b.plain)
    assert max((u - w).abs().max().item() for u, w in zip(pa, a.plain, strict=True)) > 1e-6  # not the plain one
    for u, v in zip(pb, permute(pa), strict=True):
        torch.testing.assert_close(u, v, rtol=1e-8, atol=1e-14)
    save_predictor(tmp_path / "p.safetensors", pred.float(), {"note": "test"})
    back, card = load_predictor(tmp_path / "p.safetensors")
    assert card["note"] == "test"
    for u, v in zip(back(a.neurons.map(lambda g, t: t.float()), [t.float() for t in a.plain]),
                    pred(a.neurons.map(lambda g, t: t.float()), [t.float() for t in a.plain]), strict=True):
        torch.testing.assert_close(u, v)
