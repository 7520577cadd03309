"""`python -m gmn curvature --gpt TEXTFILE` and the shipped transformer Fisher predictor
(gmn/transformer_curvature.py, assets/curvature/fisher-gpt.*, docs/DESIGN.md §13)."""

from __future__ import annotations

import json
import math

import pytest
import torch

from gmn.__main__ import main
from gmn.transformer import GPT, GPTConfig
from gmn.transformer_curvature import (
    SHIPPED,
    TransformerFisherPredictor,
    TransformerPredictorConfig,
    item_nmse,
    kind_errors,
    load_predictor,
    make_item,
    tensor_names,
)
from gmn.transformer_gmn import MAPS, TransformerGMNConfig, TransformerLayout

TINY = ["--width", "8", "--heads", "2", "--layers", "2", "--steps", "3", "--sequences", "4", "--reference", "16",
        "--seed", "3", "--threads", "1"]


@pytest.fixture
def text(tmp_path):
    path = tmp_path / "text.txt"
    path.write_bytes(b"".join(f"line {i}: the quick brown fox jumps over {i % 7} lazy dogs.\n".encode()
                              for i in range(40)))
    return path


def cli(args, capsys) -> tuple[int, str, str]:
    """(exit code, stdout, stderr) of an in-process `python -m gmn` call; argparse's exit counts as a return."""
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code
    out = capsys.readouterr()
    return rc, out.out, out.err


def rows(out: str) -> dict[str, list[float]]:
    """The per-kind lines of the table: name -> its numbers (nMSE, then the predictor's nMSE and change)."""
    got = {}
    for line in out.splitlines():
        parts = line.split()
        if parts and parts[0] in (*MAPS, "total"):
            got[parts[0]] = [float(p.rstrip("%")) for p in parts[1:]]
    return got


def test_cli_prints_plain_and_predictor_error_per_map_kind(text, capsys):
    rc, out, err = cli(["curvature", "--gpt", text, *TINY], capsys)
    assert rc == 0, err
    assert "GPT 8w·2h·2L, 3 Adam steps" in out and "4 held-out sequences" in out and str(SHIPPED) in out
    got = rows(out)
    assert list(got) == [*MAPS, "total"]
    for kind, (plain, pred, change) in got.items():
        assert plain > 0 and pred > 0 and math.isfinite(change), kind
        assert change == pytest.approx(100 * (pred / plain - 1), abs=0.6), kind  # rounded to 4 digits
    assert got["total"][0] == pytest.approx(sum(v[0] for k, v in got.items() if k != "total") / len(MAPS), abs=0.3)
    rc, out2, err = cli(["curvature", "--gpt", text, *TINY, "--plain-only"], capsys)
    assert rc == 0, err
    assert "none (plain estimator only)" in out2
    plain_only = rows(out2)
    assert all(len(v) == 1 for v in plain_only.values())
    assert {k: v[0] for k, v in plain_only.items()} == {k: v[0] for k, v in got.items()}  # same seed, same data


def test_shipped_predictor_loads_and_predicts_a_tiny_gpt():
    model, card = load_predictor(SHIPPED)
    assert card["task"] == "fisher-diagonal" and "command" in card and card["metrics"]["test_nmse"] < 0.2149
    assert json.loads(SHIPPED.with_suffix(".json").read_text())["parameters"] == model.num_parameters()
    torch.manual_seed(1)
    gpt = GPT(GPTConfig(width=12, heads=3, layers=2, block=8))  # a size the predictor never saw
    x = torch.randint(0, 256, (24, 8))
    item = make_item(gpt, x[:4], x[4:], 5)
    with torch.no_grad():
        pred = model(item.neurons, item.plain)
    params = dict(gpt.named_parameters())
    names = tensor_names(TransformerLayout.for_gpt(gpt))
    assert len(pred) == len(names) == len(item.plain) == 2 * 6 * 2 - 2  # per block 6 maps × (w, b), no key bias
    for name, p, q in zip(names, pred, item.plain, strict=True):
        assert p.shape == q.shape == params[name].shape, name
        assert torch.isfinite(p).all() and (p >= 0).all(), name
    assert not all(torch.allclose(p, q) for p, q in zip(pred, item.plain, strict=True))  # it is trained: not plain


def test_kind_errors_average_the_tensors_of_each_kind():
    torch.manual_seed(2)
    gpt = GPT(GPTConfig(width=8, heads=2, layers=2, block=6)).double()
    x = torch.randint(0, 256, (20, 6))
    item = make_item(gpt, x[:3], x[3:], 7)
    layout = TransformerLayout.for_gpt(gpt)
    errs = kind_errors(layout, item.plain, item.target)
    assert errs["total"] == pytest.approx(item_nmse(item.plain, item.target).item(), rel=1e-12)
    names = tensor_names(layout)
    fc1 = [((p - t).pow(2).sum() / t.pow(2).sum()).item() for n, p, t in zip(names, item.plain, item.target,
                                                                               strict=True) if ".mlp.fc." in n]
    assert len(fc1) == 4 and errs["fc1"] == pytest.approx(sum(fc1) / 4, rel=1e-12)
    cfg = TransformerPredictorConfig(TransformerGMNConfig(hidden=6, layers=1))
    untrained = TransformerFisherPredictor(cfg).double()
    untrained.gmn.fit_norm([item.neurons])
    with torch.no_grad():
        same = kind_errors(layout, untrained(item.neurons, item.plain), item.target)
    assert same["total"] == pytest.approx(errs["total"], rel=1e-6)  # an untrained predictor is the plain estimator


@pytest.mark.parametrize("args, msg", [
    (["--width", "0"], "--width"),
    (["--width", "10", "--heads", "4"], "not divisible"),
    (["--steps", "-1"], "--steps"),
    (["--sequences", "1"], "--sequences"),
    (["--reference", "1e9"], "--reference"),
    (["--points", "8"], "--points is for INR files"),
    (["--predictor", "{missing}"], "missing.safetensors"),
])
def test_bad_arguments_exit_2_with_one_line(text, tmp_path, capsys, args, msg):
    args = [a.replace("{missing}", str(tmp_path / "missing.safetensors")) for a in args]
    rc, _, err = cli(["curvature", "--gpt", text, *args], capsys)
    lines = [line for line in err.strip().splitlines() if line.strip() and not line.startswith("usage:")
             and not line.startswith(" ")]
    assert rc == 2 and "Traceback" not in err, err
    assert len(lines) == 1 and "error:" in lines[0] and msg in lines[0], err


def test_bad_inputs_exit_2(text, tmp_path, capsys):
    for args, msg in ((["--gpt", tmp_path / "nope.txt"], "nope.txt"), (["--gpt", tmp_path], "is a folder"),
                      (["--gpt", ""], "non-empty"), ([], "give an INR file"),
                      ([text, "--gpt", text], "not both")):
        rc, _, err = cli(["curvature", *args], capsys)
        assert rc == 2 and "Traceback" not in err and msg in err.strip().splitlines()[-1], (args, err)
