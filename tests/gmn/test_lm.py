"""Language modelling with the small GPT: the Adam loop, the learned optimizer, its files and the CLI."""

from __future__ import annotations

import dataclasses
import json
import math

import pytest
import torch

from gmn.__main__ import main
from gmn.capture import capture_gradient_set
from gmn.lm import train_lm
from gmn.lm_optim import (
    LearnedLMOptimizer,
    LinearRecorder,
    LMLearnedOptimizer,
    LMMetaTrainConfig,
    LMOptimizerConfig,
    flat_gradient_set,
    gradient_set_stats,
    load_lm_optimizer,
    metatrain,
    parameter_kind,
    save_lm_optimizer,
)
from gmn.transformer import GPT, GPTConfig, lm_loss

TINY = GPTConfig(width=16, heads=2, layers=1, block=16)


@pytest.fixture
def text():
    """A short, learnable byte text (int64)."""
    raw = ("the quick brown fox jumps over the lazy dog. " * 40).encode()
    return torch.tensor(list(raw), dtype=torch.long)


@pytest.fixture
def text_file(tmp_path):
    path = tmp_path / "fox.txt"
    path.write_bytes(("def fox(x):\n    return x + 1  # the quick brown fox\n" * 60).encode())
    return path


def _step_once(model: GPT, opt, x, y) -> None:
    opt.zero_grad(set_to_none=True)
    lm_loss(model(x), y).backward()
    opt.step()


def test_adam_loop_decreases_loss(text):
    res = train_lm(text, TINY, optimizer="adam", steps=60, lr=1e-2, eval_every=20, seed=1)
    first, last = res.history[0][1], res.history[-1][1]
    assert res.steps == 60 and last < first < math.log(256)
    assert last < 2.5  # a repeated sentence is learnable in 60 steps


def test_target_loss_stops_early(text):
    res = train_lm(text, TINY, optimizer="adam", steps=200, lr=1e-2, eval_every=5, target_loss=4.0)
    assert res.reached and res.steps < 200 and res.loss <= 4.0
    assert res.history[-1][0] == res.steps


def test_recorder_matches_gmn_capture_float64():
    torch.manual_seed(0)
    model = GPT(TINY).double()
    x = torch.randint(0, 256, (3, TINY.block))
    y = torch.randint(0, 256, (3, TINY.block))
    rec = LinearRecorder(model)
    rec.active = True
    lm_loss(model(x), y).backward()
    rec.remove()
    ref = capture_gradient_set(model, lambda out, t: torch.nn.functional.cross_entropy(
        out.transpose(1, 2), t, reduction="none").mean(1), x, y)
    assert set(rec.a) == set(ref.terms)
    for name, term in ref.terms.items():
        # the recorder's loss is the mean over the 3 examples: its g is capture's (per-example mean) / 3
        assert torch.allclose(rec.a[name], term.a.reshape(-1, term.a.shape[-1]), rtol=1e-12, atol=0)
        assert torch.allclose(rec.g[name] * 3, term.g.reshape(-1, term.g.shape[-1]), rtol=1e-9, atol=1e-15)
    # and the weight gradient is the mean of the rank-1 terms the features are computed from
    w = model.get_parameter("blocks.0.mlp.fc.weight").grad
    assert torch.allclose(w, rec.g["blocks.0.mlp.fc"].t() @ rec.a["blocks.0.mlp.fc"], rtol=1e-9)


def test_learned_without_f_is_adam_float64(text):
    """β = 0 and no schedule or kind offsets: the learned update is exactly torch.optim.Adam at lr α."""
    cfg = TINY
    torch.manual_seed(0)
    a, b = GPT(cfg).double(), GPT(cfg).double()
    b.load_state_dict(a.state_dict())
    net = LMLearnedOptimizer(LMOptimizerConfig(alpha=7e-3, beta=0.0, mu=0.8, features=True)).double()
    with torch.no_grad():  # the float64 values (the float32 init rounds α and µ)
        net.log_alpha.fill_(math.log(7e-3))
        net.mu_logit.fill_(math.log(0.8 / 0.2))
    adam = torch.optim.Adam(a.parameters(), lr=7e-3, betas=(0.8, 0.999))
    learned = LearnedLMOptimizer(b, net)
    g = torch.Generator().manual_seed(0)
    for _ in range(4):
        x = torch.randint(0, 256, (2, cfg.block), generator=g)
        _step_once(a, adam, x, x.roll(-1, 1))
        _step_once(b, learned, x, x.roll(-1, 1))
    for p, q in zip(a.parameters(), b.parameters()):
        assert torch.allclose(p, q, rtol=1e-10, atol=1e-12)


def test_features_variant_differs_and_reads_the_gradient_set():
    torch.manual_seed(0)
    model = GPT(TINY)
    params = [p.detach() for p in model.parameters()]
    names = [n for n, _ in model.named_parameters()]
    kinds = [parameter_kind(n) for n in names]
    x = torch.randint(0, 256, (2, TINY.block))
    rec = LinearRecorder(model)
    rec.active = True
    lm_loss(model(x), x.roll(-1, 1)).backward()
    grads = [p.grad.clone() for p in model.parameters()]
    stats = gradient_set_stats(names, rec.a, rec.g)
    gset = flat_gradient_set(names, params, stats, grads)
    assert gset.shape == (7, sum(p.numel() for p in params)) and set(gset[6].unique().tolist()) == {0.0, 1.0}
    torch.manual_seed(1)
    feat = LMLearnedOptimizer(LMOptimizerConfig(features=True, beta=0.5))
    torch.manual_seed(1)
    plain = LMLearnedOptimizer(LMOptimizerConfig(features=False, beta=0.5))
    with torch.no_grad():
        feat.f_out.weight.mul_(30)  # make F's contribution visible
        plain.f_out.weight.copy_(feat.f_out.weight)
        new_f, _ = feat.update(params, grads, kinds, feat.init_state(params), gset)
        new_f2, _ = feat.update(params, grads, kinds, feat.init_state(params), gset * 3)
        new_p, _ = plain.update(params, grads, kinds, plain.init_state(params))
    assert any(not torch.allclose(a, b) for a, b in zip(new_f, new_p))
    assert any(not torch.allclose(a, b) for a, b in zip(new_f, new_f2))  # the gradient set changes the step
    with pytest.raises(ValueError, match="gradient-set features"):
        feat.update(params, grads, kinds, feat.init_state(params))


def test_optimizer_file_and_state_round_trip(tmp_path, text):
    torch.manual_seed(2)
    net = LMLearnedOptimizer(LMOptimizerConfig(alpha=5e-3, hidden=6, features=True))
    with torch.no_grad():
        net.kind_alpha.uniform_(-0.5, 0.5)
    save_lm_optimizer(tmp_path / "o.safetensors", net, {"note": "test"})
    loaded, card = load_lm_optimizer(tmp_path / "o.safetensors")
    assert card["note"] == "test" and json.loads((tmp_path / "o.json").read_text())["config"]["hidden"] == 6
    assert all(torch.equal(p, q) for p, q in zip(net.state_dict().values(), loaded.state_dict().values()))

    def run(model, opt, batches_):
        for x in batches_:
            _step_once(model, opt, x, x.roll(-1, 1))

    g = torch.Generator().manual_seed(0)
    xs = [torch.randint(0, 256, (2, TINY.block), generator=g) for _ in range(5)]
    a = GPT(TINY)
    b = GPT(TINY)
    b.load_state_dict(a.state_dict())
    opt_a = LearnedLMOptimizer(a, loaded)
    run(a, opt_a, xs)  # 5 steps straight
    opt_b = LearnedLMOptimizer(b, loaded)
    run(b, opt_b, xs[:3])
    saved = opt_b.state_dict()
    opt_b.remove()
    opt_c = LearnedLMOptimizer(b, loaded)
    opt_c.load_state_dict(saved)  # resume in a new optimizer: the same two last steps
    assert opt_c.opt_state.t == 3
    run(b, opt_c, xs[3:])
    assert all(torch.allclose(p, q, rtol=1e-6, atol=1e-8) for p, q in zip(a.parameters(), b.parameters()))


def test_metatrain_resumes(tmp_path, text_file):
    cfg = LMMetaTrainConfig(out=str(tmp_path / "run"), horizon=4, unroll=2, batch=2, minutes=1e-4, val_every=1,
                            val_steps=2, texts=(str(text_file),), val_texts=(str(text_file),),
                            sizes=(TINY.to_dict(),), optimizer={"hidden": 4})
    first = metatrain(cfg, log=lambda *_: None)
    assert first["features"]["episode"] == 1 and first["plain"]["episode"] == 1
    before = load_lm_optimizer(tmp_path / "run" / "features" / "best.safetensors")[0]
    spent = (first["features"]["cpu"] + first["plain"]["cpu"]) / 60  # the budget counts resumed time too
    second = metatrain(dataclasses.replace(cfg, minutes=spent + 1e-4), log=lambda *_: None)
    assert second["features"]["episode"] == 2 and len(second["plain"]["history"]) == 2
    assert math.isfinite(second["features"]["history"][-1]["meta_loss"])
    assert before.config.features and before.config.hidden == 4


def test_cli_prints_one_line_and_stops_at_target(text_file, capsys):
    assert main(["lm", str(text_file), "--optimizer", "adam", "--steps", "20", "--seed", "3"]) == 0
    out = capsys.readouterr().out.strip().splitlines()
    assert len(out) == 1 and out[0].startswith("loss ") and " after 20 steps, " in out[0] and out[0].endswith(" s")
    assert main(["lm", str(text_file), "--steps", "300", "--target-loss", "5.0"]) == 0
    line = capsys.readouterr().out.strip()
    steps = int(line.split(" after ")[1].split()[0])
    assert steps < 300 and float(line.split()[1]) <= 5.0


def test_cli_learned_file_and_errors(text_file, tmp_path, capsys):
    save_lm_optimizer(tmp_path / "o.safetensors", LMLearnedOptimizer(LMOptimizerConfig(alpha=3e-3)))
    assert main(["lm", str(text_file), "--optimizer", "learned", "--learned", str(tmp_path / "o.safetensors"),
                 "--steps", "10"]) == 0
    assert " after 10 steps, " in capsys.readouterr().out
    assert main(["lm", str(tmp_path / "missing.txt")]) == 2
    assert capsys.readouterr().err.startswith("error: ")
    (tmp_path / "bad.safetensors").write_bytes(b"not a file")
    assert main(["lm", str(text_file), "--optimizer", "learned", "--learned", str(tmp_path / "bad.safetensors")]) == 2
    assert "error: " in capsys.readouterr().err
