"""The learned optimizer: Adam as its F = 0 special case, equivariance of the update, meta-training
lowers the meta-loss, the fallback on divergence, files and the `python -m gmn fit` CLI."""

import math

import numpy as np
import pytest
import torch

from gmn.__main__ import main
from gmn.decompose import permute_params, random_perms
from gmn.metatrain import MetaTrainConfig, es_parameters, fit_loss, metatrain, run_learned
from gmn.optim import (
    GradMetaNetOptimizer,
    LearnedOptimizer,
    LearnedOptimizerConfig,
    OptimizerFileError,
    fit_learned,
    load_optimizer,
    save_optimizer,
)
from inr.datasets import load_dataset
from inr.fit import fit
from inr.siren import SirenArch, coordinate_grid, init_params

ARCH = SirenArch(hidden=12, dim_out=1)


def _images(n=3, side=10, c=1, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.rand(n, side, side, c, generator=g)


def test_zero_beta_is_adam():
    """With β = 0 the update is Adam (lr α, betas (µ, 0.999), eps 1e-8): compare with torch.optim.Adam."""
    torch.manual_seed(0)
    net = LearnedOptimizer(LearnedOptimizerConfig(gmn=False)).double()
    with torch.no_grad():  # α, µ in float64 (the float32 init rounds them)
        net.beta.zero_()
        net.log_alpha.fill_(math.log(3e-3))
        net.mu_logit.fill_(math.log(0.9 / 0.1))
    _assert_is_adam(net, lambda ps: torch.optim.Adam(ps, lr=3e-3))


def test_schedule_and_layer_factors_are_adam_with_those_lrs():
    """β = 0 with a learned α schedule and per-tensor factors: Adam whose lr for tensor i at step t is
    α·exp(a_i + Σ_k c_k e^{−t/s_k}) (torch.optim.Adam with one param group per tensor)."""
    scales = (3.0, 20.0)
    net = LearnedOptimizer(LearnedOptimizerConfig(gmn=False, schedule_scales=scales, layer_alpha=True)).double()
    c = torch.tensor([0.7, -0.4], dtype=torch.float64)
    a = torch.linspace(-0.5, 0.5, 2 * ARCH.depth, dtype=torch.float64)
    with torch.no_grad():
        net.beta.zero_()
        net.log_alpha.fill_(math.log(3e-3))
        net.mu_logit.fill_(math.log(0.9 / 0.1))
        net.schedule.copy_(c)
        net.log_layer_alpha.copy_(a)

    def lrs(t):
        return [3e-3 * math.exp(ai + sum(ck * math.exp(-t / s) for ck, s in zip(c.tolist(), scales)))
                for ai in a.tolist()]

    _assert_is_adam(net, lambda ps: torch.optim.Adam([{"params": [p], "lr": lr} for p, lr in zip(ps, lrs(0))]), lrs)


def _assert_is_adam(net, make_adam, lrs=None, steps: int = 6):
    """Fit 3 images for `steps` steps from the same float64 init with `make_adam(params)` (its per-group
    lrs set to `lrs(t)` at step t when given) and with the learned optimizer `net`: same parameters.
    Returns the initial parameters."""
    imgs = _images().double()
    grid = coordinate_grid(10, 10, dtype=torch.float64)
    init = [p.double() for p in init_params(ARCH, 3, generator=torch.Generator().manual_seed(1))]
    results = []
    for use_adam in (True, False):
        ps = [p.clone().requires_grad_(True) for p in init]
        opt = make_adam(ps) if use_adam else GradMetaNetOptimizer(ps, net, ARCH)
        for t in range(steps):
            if use_adam and lrs is not None:
                for group, lr in zip(opt.param_groups, lrs(t)):
                    group["lr"] = lr
            opt.zero_grad()
            fit_loss(ps, ARCH, grid, imgs.reshape(3, 100, 1)).sum().backward()
            opt.step()
        results.append([p.detach().clone() for p in ps])
    for x, y in zip(*results):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-12)
    assert max((x - p).abs().max().item() for x, p in zip(results[0], init)) > 1e-3  # it moved
    return init


def test_width_power_and_learned_beta2_are_adam_with_those_settings():
    """β = 0, µP-style width scaling (meta-trained at width 6, run at width 12, power 1) and a learned
    β2: Adam whose lr is halved for the weights with the hidden width as fan-in (W2, W3) only, with
    betas (µ, β2)."""
    net = LearnedOptimizer(LearnedOptimizerConfig(gmn=False, width_power=1.0, ref_width=6, learn_beta2=True))
    net = net.double()
    with torch.no_grad():
        net.beta.zero_()
        net.log_alpha.fill_(math.log(3e-3))
        net.mu_logit.fill_(math.log(0.9 / 0.1))
        net.beta2_logit.fill_(math.log(0.99 / 0.01))
    factors = [1.0, 1.0, 0.5, 1.0, 0.5, 1.0]  # W1 b1 W2 b2 W3 b3
    init = _assert_is_adam(net, lambda ps: torch.optim.Adam([{"params": [p], "lr": 3e-3 * f}
                                                              for p, f in zip(ps, factors)], betas=(0.9, 0.99)))
    # at the width it was meta-trained for, the scaling is off
    net.config.ref_width = 12
    size = sum(p[0].numel() for p in init)
    torch.testing.assert_close(net.step_size(0, init), torch.full((size,), 3e-3, dtype=torch.float64), rtol=1e-12,
                               atol=0)


@pytest.mark.parametrize("update,extra", [("mlp", {}), ("ws", {}),
                                          ("mlp", {"schedule_scales": (5.0, 50.0), "layer_alpha": True})])
def test_update_is_permutation_equivariant(update, extra):
    """Permuting hidden neurons of θ (and of the gradients and state) permutes the update the same way."""
    torch.manual_seed(0)
    net = LearnedOptimizer(LearnedOptimizerConfig(update=update, points=16, **extra)).double()
    with torch.no_grad():
        net.beta.fill_(1.0)  # make F matter
        if extra:  # and the schedule and per-layer factors
            net.schedule.copy_(torch.tensor([0.3, -0.2]))
            net.log_layer_alpha.copy_(torch.linspace(-0.3, 0.3, 2 * ARCH.depth))
    n = 2
    params = [p.double() for p in init_params(ARCH, n, generator=torch.Generator().manual_seed(2))]
    imgs = _images(n).double()
    grid, target = coordinate_grid(10, 10, dtype=torch.float64), imgs.reshape(n, 100, 1)
    x = torch.rand(n, 16, 2, dtype=torch.float64) * 2 - 1
    t = torch.rand(n, 16, 1, dtype=torch.float64)

    def run(ps):
        state = net.init_state(ps)
        for _ in range(3):  # a few steps so momenta and time features are non-trivial
            q = [p.detach().requires_grad_(True) for p in ps]
            grads = torch.autograd.grad(fit_loss(q, ARCH, grid, target).sum(), q)
            ps, state = net.step(ps, list(grads), state, net.gradient_features(ps, ARCH, x, t))
        return ps

    perms = random_perms(ARCH.dims, torch.Generator().manual_seed(3))
    out = run(params)
    out_p = run(permute_params(params, perms))
    for a, b in zip(permute_params(out, perms), out_p):
        torch.testing.assert_close(a, b, rtol=1e-8, atol=1e-10)
    # and F really depends on the GradMetaNet features (a non-vacuous check)
    base = run(params)
    with torch.no_grad():
        for p in net.gmn.parameters():
            p.add_(0.1)
    assert max((a - b).abs().max().item() for a, b in zip(run(params), base)) > 1e-8


def test_tiny_metatraining_lowers_the_meta_loss(tmp_path):
    """Meta-loss (mean log10 MSE over 30 steps) on held-out val digits, before and after 40 meta-steps."""
    torch.manual_seed(0)
    val = load_dataset("mnist5k", "val")[:4]
    arch = SirenArch(hidden=16, dim_out=1)

    def meta_loss(net):
        _, curve = run_learned(net, val, arch, 30, seed=5, record=True)
        return (-curve[1:] / 10).mean().item()  # mean log10 MSE

    cfg = MetaTrainConfig(out=str(tmp_path / "lopt"), datasets=("mnist5k",), hidden=16, batch=4, unroll=10,
                          horizon=30, meta_lr=1e-2, minutes=None, meta_steps=40, val_every=100, val_size=2,
                          val_steps=10, limit=64, optimizer={"points": 8})
    before = meta_loss(LearnedOptimizer(LearnedOptimizerConfig(points=8)))
    state = metatrain(cfg, log=lambda *_: None)
    assert state["meta_step"] == 40
    net, card = load_optimizer(tmp_path / "lopt" / "best.safetensors")
    assert card["meta_steps"] == 40
    after = meta_loss(net)
    assert after < before - 0.05, (before, after)
    # resume: asking for more meta-steps continues from the checkpoint
    cfg.meta_steps = 43
    assert metatrain(cfg, log=lambda *_: None)["meta_step"] == 43


def test_es_metatraining_raises_held_out_fitness(tmp_path):
    """Evolution strategies over whole fits, from an α 30× too small: the best PSNR reached in 20 steps on
    held-out val digits goes up, and only the schedule meta-parameters moved."""
    val = load_dataset("mnist5k", "val")[:4]
    arch = SirenArch(hidden=16, dim_out=1)
    ocfg = {"gmn": False, "alpha": 1e-4, "schedule_scales": [10.0], "layer_alpha": True}

    def fitness(net):
        best, _ = run_learned(net, val, arch, 20, seed=5)
        return best.mean().item()

    cfg = MetaTrainConfig(out=str(tmp_path / "es"), datasets=("mnist5k",), hidden=16, batch=4, horizon=20,
                          meta_lr=0.3, minutes=None, meta_steps=6, val_every=100, val_size=2, val_steps=10,
                          limit=64, optimizer=ocfg, estimator="es", es_pairs=2, es_sigma=0.2)
    torch.manual_seed(cfg.seed)  # metatrain seeds the same way before building its optimizer
    start = LearnedOptimizer(LearnedOptimizerConfig.from_dict(ocfg))
    before = fitness(start)
    state = metatrain(cfg, log=lambda *_: None)
    assert state["meta_step"] == 6
    from safetensors.torch import load_file

    net = LearnedOptimizer(LearnedOptimizerConfig.from_dict(ocfg))
    net.load_state_dict({k[6:]: v for k, v in load_file(tmp_path / "es" / "last.safetensors").items()
                         if k.startswith("model.")})
    assert fitness(net) > before + 1.0, (before, fitness(net))
    moved = {name for name, p in net.named_parameters()
             if not torch.equal(p, dict(start.named_parameters())[name])}
    assert moved and moved <= {"log_alpha", "schedule", "log_layer_alpha", "mu_logit"}, moved
    assert {id(p) for p in es_parameters(net, "schedule")} < {id(p) for p in net.parameters()}
    # a new run can start from a trained file (--init): before any meta-step it holds the same meta-parameters
    cfg2 = MetaTrainConfig(**{**cfg.__dict__, "out": str(tmp_path / "es2"), "meta_steps": 0,
                              "init": str(tmp_path / "es" / "best.safetensors")})
    metatrain(cfg2, log=lambda *_: None)
    a, b = (load_optimizer(tmp_path / d / "best.safetensors")[0].state_dict() for d in ("es", "es2"))
    assert all(torch.equal(a[k], b[k]) for k in a)
    # ... also into a run with GradMetaNet features: the schedule is copied, F's first layer (more inputs) is not
    cfg3 = MetaTrainConfig(**{**cfg2.__dict__, "out": str(tmp_path / "es3"), "es_params": "head",
                              "optimizer": {**ocfg, "gmn": True, "points": 8}})
    metatrain(cfg3, log=lambda *_: None)
    c = load_optimizer(tmp_path / "es3" / "best.safetensors")[0]
    assert torch.equal(c.schedule, a["schedule"]) and torch.equal(c.log_alpha, a["log_alpha"])
    assert c.f[0].weight.shape != a["f.0.weight"].shape
    head = {name for name, p in c.named_parameters() if any(p is q for q in es_parameters(c, "head"))}
    assert head == {"log_alpha", "schedule", "log_layer_alpha", "mu_logit", "beta", "f.4.weight", "f.4.bias"}


def test_divergence_falls_back_to_adam():
    net = LearnedOptimizer(LearnedOptimizerConfig(points=8))
    with torch.no_grad():
        net.log_alpha.fill_(math.log(1e4))  # absurd step size
    notes = []
    imgs = _images(1)
    res, used = fit_learned(imgs, ARCH, net, steps=30, notice=notes.append)
    assert used == "adam" and notes and "Adam" in notes[0]
    assert all(torch.isfinite(p).all() for p in res.params)
    adam = fit(imgs, ARCH, steps=30)
    torch.testing.assert_close(res.psnr, adam.psnr)


def test_learned_optimizer_in_inr_fit():
    """The optimizer drops into inr.fit through optimizer_factory and fits (PSNR rises)."""
    net = LearnedOptimizer(LearnedOptimizerConfig(points=8))
    imgs = _images(2)
    res, used = fit_learned(imgs, ARCH, net, steps=40, notice=lambda m: None)
    assert used == "learned"
    short = fit(imgs, ARCH, steps=1)
    assert (res.psnr > short.psnr + 3).all()
    # the same optimizer fits colour SIRENs (its GradMetaNet does not tell output neurons apart)
    colour, arch3 = _images(2, c=3), SirenArch(hidden=12, dim_out=3)
    res, used = fit_learned(colour, arch3, net, steps=40, notice=lambda m: None)
    assert used == "learned" and (res.psnr > fit(colour, arch3, steps=1).psnr + 1).all()


def test_optimizer_errors():
    net = LearnedOptimizer(LearnedOptimizerConfig())
    ps = [p.requires_grad_(True) for p in init_params(ARCH, 1)]
    with pytest.raises(ValueError, match="images"):
        GradMetaNetOptimizer(ps, net, ARCH)
    with pytest.raises(OptimizerFileError, match="3 weight layers"):
        GradMetaNetOptimizer(ps, net, SirenArch(hidden=8, layers=3), _images(1))


def test_fit_cli(tmp_path, capsys):
    from PIL import Image

    from inr.files import load_inr

    img = tmp_path / "img.png"
    Image.fromarray((np.random.default_rng(0).random((20, 20)) * 255).astype(np.uint8)).save(img)
    lopt = tmp_path / "lopt.safetensors"
    save_optimizer(lopt, LearnedOptimizer(LearnedOptimizerConfig(points=8)), {"note": "untrained"})
    out = tmp_path / "out.safetensors"
    assert main(["fit", str(img), "-o", str(out), "--learned", str(lopt), "--steps", "20", "--size", "16",
                 "--hidden", "8", "-q"]) == 0
    captured = capsys.readouterr()
    assert "learned" in captured.out
    assert "warning: INRs fitted by this learned optimizer are outside the editors' distribution (not measured)" \
        in captured.err  # its card does not say "editable": true
    inr = load_inr(out)
    assert inr.meta["fit"]["optimizer"] == "learned" and inr.arch.hidden == 8
    assert main(["fit", str(img), "-o", str(out), "--optimizer", "adam", "--steps", "5", "--size", "16", "-q"]) == 0
    # errors: one line, exit 2
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a file")
    assert main(["fit", str(img), "-o", str(out), "--learned", str(bad), "-q"]) == 2
    assert main(["fit", str(img), "-o", str(out), "--learned", str(lopt), "--layers", "3", "-q"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 2 and all(e.startswith("error: ") for e in err)
    assert "weight layers" in err[1]


def test_shipped_optimizer_is_chosen_by_channel_count(tmp_path, monkeypatch, capsys):
    """assets/optimizers: the default file first, each used only for the channel counts its card lists; a
    colour image with no optimizer meant for it is fitted with Adam, with a notice."""
    from PIL import Image

    import gmn.optim as optim
    from inr.files import load_inr

    monkeypatch.setattr(optim, "SHIPPED_DIR", tmp_path)
    monkeypatch.setattr(optim, "SHIPPED", tmp_path / "learned.safetensors")
    assert optim.shipped_optimizer(1) is None  # nothing installed
    net = LearnedOptimizer(LearnedOptimizerConfig(gmn=False))
    save_optimizer(tmp_path / "learned.safetensors", net, {"channels": [1]})
    assert optim.shipped_optimizer(1) == tmp_path / "learned.safetensors"
    assert optim.shipped_optimizer(3) is None
    img = tmp_path / "rgb.png"
    Image.fromarray((np.random.default_rng(0).random((12, 12, 3)) * 255).astype(np.uint8)).save(img)
    out = tmp_path / "out.safetensors"
    assert main(["fit", str(img), "-o", str(out), "--optimizer", "learned", "--steps", "5", "--size", "12",
                 "--hidden", "8", "-q"]) == 0
    assert "no learned optimizer is shipped for 3-channel images" in capsys.readouterr().err
    assert load_inr(out).meta["fit"]["optimizer"] == "adam"
    save_optimizer(tmp_path / "a-rgb.safetensors", net, {"channels": [3]})
    save_optimizer(tmp_path / "b-any.safetensors", net)  # a card naming no channels: any image
    assert optim.shipped_optimizer(3) == tmp_path / "a-rgb.safetensors"
    assert optim.shipped_optimizer(4) == tmp_path / "b-any.safetensors"
    assert optim.shipped_optimizer(1) == tmp_path / "learned.safetensors"
    save_optimizer(tmp_path / "a-w16.safetensors", net, {"channels": [3], "widths": [16]})
    assert optim.shipped_optimizer(3, 16) == tmp_path / "a-rgb.safetensors"
    (tmp_path / "a-rgb.safetensors").unlink()
    assert optim.shipped_optimizer(3, 16) == tmp_path / "a-w16.safetensors"
    assert optim.shipped_optimizer(3, 8) == tmp_path / "b-any.safetensors"
    assert main(["fit", str(img), "-o", str(out), "--optimizer", "learned", "--steps", "5", "--size", "12",
                 "--hidden", "8", "-q"]) == 0
    assert load_inr(out).meta["fit"]["optimizer"] == "learned"


def test_learned_fits_can_start_from_a_meta_learned_init(tmp_path):
    from inr.metainit import MetaInitConfig, load_init, metatrain_init

    init = tmp_path / "init.safetensors"
    metatrain_init(MetaInitConfig(out=str(init), dataset="mnist5k", limit=40, batch=4, inner_steps=3, outer_steps=4,
                                  minutes=None), log=lambda *_: None)
    images = load_dataset("mnist5k", "val")[:3]
    arch = SirenArch()
    net = LearnedOptimizer(LearnedOptimizerConfig(gmn=False))
    _, curve = run_learned(net, images, arch, 0, record=True, siren_init=str(init))
    p0 = load_init(init, 3, arch)
    want = -10 * torch.log10(fit_loss(p0, arch, coordinate_grid(28, 28), images.reshape(3, -1, 1)))
    assert torch.allclose(curve[0], want)
    _, rand = run_learned(net, images, arch, 0, record=True)
    assert not torch.allclose(curve[0], rand[0])
