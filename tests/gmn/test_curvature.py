"""Fisher-diagonal estimation (gmn.curvature): the plain estimator against autograd, equivariance of the
predictors, a tiny training run, files and the `python -m gmn curvature` CLI."""

import pytest
import torch

from gmn.__main__ import main
from gmn.curvature import (
    CurvaturePredictor,
    PredictorConfig,
    TrainSettings,
    evaluate,
    fisher_diagonal,
    gaussian_sirens,
    load_predictor,
    make_sets,
    nmse,
    output_gradients,
    plain_fisher,
    save_predictor,
    train_predictor,
    uniform_points,
)
from gmn.decompose import permute_neurons, permute_params, random_perms
from inr.files import save_inr
from inr.siren import SirenArch, forward, init_params

TINY = dict(hidden=8, layers=1, deepsets_layers=1, decoder_hidden=8, lowrank=2, heads=2, pair_hidden=4, mlp_hidden=16)


def autograd_fisher(params, arch, x):
    """Σ_c mean_b (∂f_c(x_b)/∂θ)² by one autograd.grad per point and channel (float64), Params layout."""
    params = [t.detach().clone().requires_grad_(True) for t in params]
    acc = [torch.zeros_like(t) for t in params]
    for b in range(x.shape[1]):
        f = forward(params, arch, x[:, b : b + 1])  # (N, 1, C)
        for c in range(arch.dim_out):
            grads = torch.autograd.grad(f[..., c].sum(), params, retain_graph=True)
            acc = [a + g.pow(2) for a, g in zip(acc, grads)]
    return [a / x.shape[1] for a in acc]


@pytest.mark.parametrize("dim_in", [1, 2])
def test_plain_estimator_equals_autograd_fisher(dim_in):
    arch = SirenArch(dim_in=dim_in)
    params = [t.double() for t in gaussian_sirens(arch, 2, seed=0)]
    x = uniform_points(2, 128, dim_in, torch.Generator().manual_seed(1)).double()
    plain = plain_fisher(output_gradients(params, arch, x), arch)
    for p, r in zip(plain, autograd_fisher(params, arch, x)):
        assert p.dtype == torch.float64
        torch.testing.assert_close(p, r, rtol=1e-10, atol=1e-12)


def test_fisher_diagonal_sums_channels():
    arch = SirenArch(hidden=8, dim_out=3)
    params = init_params(arch, 2, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    x = uniform_points(2, 16, 2, torch.Generator().manual_seed(1)).double()
    for p, r in zip(fisher_diagonal(params, arch, x, chunk=1), autograd_fisher(params, arch, x)):
        torch.testing.assert_close(p, r, rtol=1e-10, atol=1e-12)


@pytest.fixture(scope="module")
def sets():
    arch = SirenArch(hidden=16)
    return make_sets(gaussian_sirens(arch, 24, seed=0), arch, points=32, target_points=128, seed=0)


@pytest.mark.parametrize("kind", ["gmn", "gmnpp", "ws"])
def test_predictor_is_equivariant_and_point_invariant(sets, kind):
    torch.manual_seed(0)
    model = CurvaturePredictor(PredictorConfig(kind=kind, arch=sets.arch.to_dict(), out_scale=0.5, **TINY)).double()
    model.fit_norm(sets)
    part = sets.select(slice(0, 3))
    params = [t.double() for t in part.params]
    neurons = part.neurons.to(torch.float64)
    with torch.no_grad():
        out = model(params, neurons)
        perms = random_perms(sets.arch.dims, torch.Generator().manual_seed(3))
        neurons_p = neurons.__class__(permute_neurons(neurons.feats, neurons.dims, perms), neurons.layer,
                                      neurons.dims)
        out_p = model(permute_params(params, perms), neurons_p)
        shuffled = neurons.select_points(torch.randperm(neurons.num_points, generator=torch.Generator().manual_seed(4)))
        out_s = model(params, shuffled)
    assert nmse(out, plain_fisher(neurons, sets.arch)).max() > 1e-6  # the model does change the estimate
    for a, b in zip(permute_params(out, perms), out_p):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)
    for a, b in zip(out, out_s):
        torch.testing.assert_close(a, b, rtol=1e-9, atol=1e-12)


def test_mlp_baseline_is_not_equivariant(sets):
    torch.manual_seed(0)
    model = CurvaturePredictor(PredictorConfig(kind="mlp", arch=sets.arch.to_dict(), out_scale=1.0, **TINY))
    model.fit_norm(sets)
    part = sets.select(slice(0, 2))
    perms = random_perms(sets.arch.dims, torch.Generator().manual_seed(3))
    with torch.no_grad():
        out = model(part.params, part.neurons)
        feats = permute_neurons(part.neurons.feats, part.neurons.dims, perms)
        out_p = model(permute_params(part.params, perms), part.neurons.__class__(feats, part.neurons.layer,
                                                                                   part.neurons.dims))
    assert max((a - b).abs().max().item() for a, b in zip(permute_params(out, perms), out_p)) > 1e-6


@pytest.mark.parametrize("kind", ["gmn", "gmnpp", "ws", "mlp"])
def test_zero_output_scale_is_the_plain_estimator(sets, kind):
    model = CurvaturePredictor(PredictorConfig(kind=kind, arch=sets.arch.to_dict(), out_scale=0.0, **TINY))
    model.fit_norm(sets)
    part = sets.select(slice(0, 4))
    with torch.no_grad():
        out = model(part.params, part.neurons)
    for a, b in zip(out, plain_fisher(part.neurons, sets.arch)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)  # up to the EPS floor inside log r


def test_training_lowers_the_loss(sets):
    torch.manual_seed(0)
    model = CurvaturePredictor(PredictorConfig(kind="gmn", arch=sets.arch.to_dict(), **TINY))
    model.fit_norm(sets)
    before = evaluate(model, sets)
    res = train_predictor(model, sets, None, TrainSettings(steps=40, batch=8, lr=1e-2, val_every=10))
    after = evaluate(model, sets)
    assert after < before
    assert res["history"][-1][1] < res["history"][1][1]


def test_save_load_roundtrip(tmp_path, sets):
    model = CurvaturePredictor(PredictorConfig(kind="gmn", arch=sets.arch.to_dict(), out_scale=0.3, **TINY))
    model.fit_norm(sets)
    save_predictor(tmp_path / "p.safetensors", model, {"metrics": {"test_nmse": 0.01}})
    loaded, card = load_predictor(tmp_path / "p.safetensors")
    assert card["metrics"]["test_nmse"] == 0.01 and (tmp_path / "p.json").exists()
    part = sets.select(slice(0, 2))
    with torch.no_grad():
        for a, b in zip(model.eval()(part.params, part.neurons), loaded(part.params, part.neurons)):
            torch.testing.assert_close(a, b)
    wider = SirenArch(hidden=24)  # GradMetaNet and WS serve any hidden width of their depth
    other = make_sets(gaussian_sirens(wider, 2, seed=5), wider, points=16, target_points=16)
    ws = CurvaturePredictor(PredictorConfig(kind="ws", arch=sets.arch.to_dict(), **TINY))
    with torch.no_grad():
        assert loaded(other.params, other.neurons)[2].shape == (2, 24, 24)
        assert ws(other.params, other.neurons)[2].shape == (2, 24, 24)
    mlp = CurvaturePredictor(PredictorConfig(kind="mlp", arch=sets.arch.to_dict(), **TINY))
    with pytest.raises(ValueError, match="predictor expects SIRENs 2→16→16→1, got 2→24→24→1"):
        mlp(other.params, other.neurons)


def test_cli(tmp_path, capsys, sets):
    inr = tmp_path / "inr.safetensors"
    save_inr(inr, gaussian_sirens(SirenArch(), 1, seed=0), SirenArch(), image_size=[28, 28])
    model = CurvaturePredictor(PredictorConfig(kind="gmn", **TINY))
    model.fit_norm(make_sets(gaussian_sirens(SirenArch(), 4, seed=1), SirenArch(), points=16, target_points=16))
    pred = tmp_path / "pred.safetensors"
    save_predictor(pred, model)
    assert main(["curvature", str(inr), "--points", "32", "--predictor", str(pred)]) == 0
    out = capsys.readouterr().out
    assert "layers.1.weight" in out and "pred mean" in out and "32 points" in out
    assert main(["curvature", str(inr), "--plain-only"]) == 0
    assert "pred mean" not in capsys.readouterr().out
    assert main(["curvature", str(tmp_path / "missing.safetensors")]) == 2
    with pytest.raises(SystemExit) as refused:  # an out-of-range count is refused by the parser (inr.checks)
        main(["curvature", str(inr), "--points", "0"])
    assert refused.value.code == 2
    assert main(["curvature", str(inr), "--predictor", str(inr)]) == 2  # an INR file is not a predictor
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a safetensors file")
    assert main(["curvature", str(bad)]) == 2
    deep = tmp_path / "deep.safetensors"
    arch3 = SirenArch(layers=3)
    save_inr(deep, gaussian_sirens(arch3, 1, seed=0), arch3)
    assert main(["curvature", str(deep), "--predictor", str(pred)]) == 2  # depth mismatch
    err = capsys.readouterr().err
    assert err.count("error:") == 5 and "Traceback" not in err


def test_the_shipped_predictor_predicts_as_before_and_unknown_config_keys_are_refused():
    """The kind → builder table rebuilds the shipped predictor exactly (Σ log F̂ recorded with the if-chain code,
    commit 4ddbefe); a misspelled config key is refused in one line instead of loading the default."""
    from pathlib import Path

    pred, _ = load_predictor(Path(__file__).resolve().parents[2] / "assets" / "curvature" / "fisher-2d-3l.safetensors")
    arch = pred.arch
    params = gaussian_sirens(arch, 2, seed=3)
    x = torch.rand(2, 128, 2, generator=torch.Generator().manual_seed(1)) * 2 - 1
    with torch.no_grad():
        fisher = pred(params, output_gradients(params, arch, x))
    assert sum(t.double().log().sum() for t in fisher).item() == pytest.approx(-11744.302021484065, rel=1e-6)
    with pytest.raises(ValueError, match=r"^unknown Fisher predictor config key\(s\): hiden;"):
        PredictorConfig.from_dict({"kind": "ws", "hiden": 8})
    assert PredictorConfig.from_dict({"kind": "ws", "hidden": 8}).hidden == 8
