"""The small GPT (gmn/transformer.py): causality, shapes, data windows and the text lists."""

from __future__ import annotations

import pytest
import torch

from gmn.transformer import (
    GPT,
    TEST_TEXTS,
    TRAIN_TEXTS,
    VAL_TEXTS,
    GPTConfig,
    batches,
    lm_loss,
    split_text,
    text_path,
)


@pytest.mark.parametrize("cfg", [GPTConfig(width=32, heads=2, layers=1, block=16),
                                 GPTConfig(width=24, heads=3, layers=2, block=12)])
def test_gpt_is_causal(cfg):
    torch.manual_seed(0)
    model = GPT(cfg).double()
    x = torch.randint(0, 256, (3, cfg.block))
    y = x.clone()
    y[:, 7] = (y[:, 7] + 1) % 256  # change one later token
    a, b = model(x), model(y)
    assert a.shape == (3, cfg.block, 256)
    assert torch.allclose(a[:, :7], b[:, :7], rtol=0, atol=1e-12)  # earlier logits unchanged
    assert not torch.allclose(a[:, 7:], b[:, 7:])  # the changed position and later ones see it


def test_gpt_linears_are_separate_projections():
    model = GPT(GPTConfig(width=32, heads=4, layers=2, block=8))
    names = [n for n, m in model.named_modules() if isinstance(m, torch.nn.Linear)]
    assert names == [f"blocks.{i}.{p}" for i in range(2) for p in ("attn.q", "attn.k", "attn.v", "attn.out",
                                                                     "mlp.fc", "mlp.proj")] + ["head"]


def test_init_is_reproducible_per_generator():
    cfg = GPTConfig(width=32, heads=2, layers=1, block=8)
    a, b = GPT(cfg), GPT(cfg)
    a.reset_parameters(torch.Generator().manual_seed(3))
    b.reset_parameters(torch.Generator().manual_seed(3))
    assert all(torch.equal(p, q) for p, q in zip(a.parameters(), b.parameters()))


def test_batches_are_next_byte_pairs():
    data = torch.arange(100) % 256
    train, val = split_text(data, 0.2)
    assert len(train) == 80 and torch.equal(val, data[80:])
    x, y = next(batches(train, 10, 5, torch.Generator().manual_seed(0)))
    assert x.shape == (5, 10) and torch.equal(y, x + 1) and int(y.max()) < 80


def test_uniform_logits_give_log_256():
    logits = torch.zeros(2, 3, 256)
    loss = lm_loss(logits, torch.zeros(2, 3, dtype=torch.long))
    assert loss.item() == pytest.approx(torch.log(torch.tensor(256.0)).item())


def test_text_lists_are_disjoint_and_named():
    lists = [set(TRAIN_TEXTS), set(VAL_TEXTS), set(TEST_TEXTS)]
    assert sum(map(len, lists)) == len(set().union(*lists))
    assert all(str(text_path(n)).endswith(n.split("/", 1)[1]) for n in TRAIN_TEXTS + VAL_TEXTS + TEST_TEXTS)
