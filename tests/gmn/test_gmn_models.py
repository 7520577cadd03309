"""GradMetaNet(++) as models: one SGD step is in GradMetaNet++'s class (hand-set, exact),
a small GradMetaNet learns the mean gradient, and one set of weights serves any B and width."""

import pytest
import torch

from gmn.decompose import decompose_gradients, masked_mse, mse, rank1_gradients
from gmn.model import GradMetaNet, GradMetaNetConfig, GradMetaNetPP, GradMetaNetPPConfig, to_params
from gmn.weightspace import WSNet, WSNetConfig
from inr.siren import SirenArch, forward, init_params


@pytest.mark.parametrize("hidden,layers,dim_out,blocks", [(8, 1, 1, 0), (16, 2, 3, 2), (32, 3, 1, 1)])
def test_pp_hand_set_is_one_sgd_step(hidden, layers, dim_out, blocks):
    g = torch.Generator().manual_seed(0)
    arch = SirenArch(hidden=hidden, layers=layers, dim_out=dim_out)
    params = init_params(arch, 3, generator=g, dtype=torch.float64)
    x = torch.rand(3, 11, 2, generator=g, dtype=torch.float64) * 2 - 1
    t, mask = torch.rand(3, 11, dim_out, generator=g, dtype=torch.float64), torch.rand(3, 11, generator=g)
    obj = masked_mse(t, mask.double(), forward(params, arch, x) * 0.9, lam=0.5)
    ns = decompose_gradients(params, arch, x, objective=obj)
    cfg = GradMetaNetPPConfig.for_arch(arch, dim=8, blocks=blocks, heads=2, pair_hidden=4, lowrank=2)
    model = GradMetaNetPP(cfg).double()
    model.fit_norm(ns)  # folded back into u, v: the raw gradient comes out
    model.set_gradient_step()
    ps = [p.clone().requires_grad_() for p in params]
    ref = torch.autograd.grad(obj.loss(forward(ps, arch, x)).mean(1).sum(), ps)
    for mine, r in zip(to_params(model(ns)), ref, strict=True):
        torch.testing.assert_close(mine, r, rtol=0, atol=1e-10)
    lr = 0.1
    stepped = [p + d for p, d in zip(params, to_params(model.set_gradient_step(lr)(ns)), strict=True)]
    for s, p, r in zip(stepped, params, ref, strict=True):
        torch.testing.assert_close(s, p - lr * r, rtol=0, atol=1e-10)


@pytest.fixture
def one_thread():
    """One intra-op thread: small tensors, and steady times on a shared 2-core machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_gradmetanet_learns_mean_gradient(one_thread):
    """200 Adam steps on random SIRENs and targets: relative error of every tensor < 10% (~10 s)."""
    torch.manual_seed(0)
    arch = SirenArch(hidden=16, layers=2)

    def batch(n, gen=None):
        p = init_params(arch, n, generator=gen)
        x = torch.rand(n, 32, 2, generator=gen) * 2 - 1
        ns = decompose_gradients(p, arch, x, objective=mse(torch.rand(n, 32, 1, generator=gen)))
        return ns, rank1_gradients(ns, arch)

    cfg = GradMetaNetConfig.for_arch(
        arch, hidden=32, interaction_layers=2, deepsets_layers=1, decoder_hidden=16, lowrank=4, edit_scale_init=0.03
    )
    model = GradMetaNet(cfg)
    model.fit_norm(batch(256)[0])
    steps, lr = 200, 3e-3
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=lr, total_steps=steps, pct_start=0.1)
    for _ in range(steps):
        ns, grads = batch(32)
        loss = sum((a - b).pow(2).sum() / b.pow(2).sum() for a, b in zip(to_params(model(ns)), grads, strict=True))
        opt.zero_grad()
        loss.backward()
        opt.step()
        sched.step()
    ns, grads = batch(64, torch.Generator().manual_seed(123))  # fresh SIRENs
    with torch.no_grad():
        pred = to_params(model(ns))
    rel = [((a - b).norm() / b.norm()).item() for a, b in zip(pred, grads, strict=True)]
    assert max(rel) < 0.10, rel


def test_any_points_any_width_same_weights(one_thread):
    torch.manual_seed(0)
    models = [
        GradMetaNet(GradMetaNetConfig(hidden=8, interaction_layers=1, deepsets_layers=1, decoder_hidden=4, lowrank=2)),
        GradMetaNetPP(GradMetaNetPPConfig(dim=8, blocks=1, heads=2, pair_hidden=4, lowrank=2)),
    ]
    ws = WSNet(WSNetConfig(hidden=4, layers=2))
    for hidden in (16, 32, 64):
        arch = SirenArch(hidden=hidden, layers=2)
        params = init_params(arch, 2)
        out_ws = ws(params)
        assert [t.shape for t in out_ws] == [t.shape for t in params]
        for b in (1, 16, 64, 256):
            x = torch.rand(b, 2) * 2 - 1
            ns = decompose_gradients(params, arch, x, objective=mse(torch.rand(b, 1)))
            for model in models:
                out = to_params(model(ns))
                assert [t.shape for t in out] == [t.shape for t in params]
                assert all(torch.isfinite(t).all() for t in out)


def test_config_errors_are_actionable():
    arch = SirenArch(hidden=8, layers=2)
    ns = decompose_gradients(init_params(arch), arch, torch.zeros(4, 2), objective=mse(torch.zeros(4, 1)))
    with pytest.raises(ValueError, match="weight layers"):
        GradMetaNet(GradMetaNetConfig(depth=4))(ns)
    with pytest.raises(ValueError, match="pass the INRs' params"):
        GradMetaNet(GradMetaNetConfig(weight_features=True))(ns)
    with pytest.raises(ValueError, match="lowrank"):
        GradMetaNet(GradMetaNetConfig(decoder_hidden=0, lowrank=0))


def test_model_configs_have_at_most_12_fields_and_decoder_hidden_0_drops_the_product_decoder():
    """Issue 27's figure for the configs an editor nests; decoder_hidden = 0 is the low-rank-only GradMetaNet."""
    from gmn.baselines import FlatMLPConfig
    from gmn.curvature import PredictorConfig
    from gmn.editors import EditorConfig
    from gmn.graph import NGNetConfig

    for cfg in (EditorConfig, GradMetaNetConfig, GradMetaNetPPConfig, WSNetConfig, NGNetConfig, FlatMLPConfig,
                PredictorConfig):
        assert len(cfg.__dataclass_fields__) <= 12, cfg.__name__
    arch = SirenArch(hidden=8, layers=2)
    ns = decompose_gradients(init_params(arch), arch, torch.zeros(4, 2), objective=mse(torch.zeros(4, 1)))
    low = GradMetaNet(GradMetaNetConfig(decoder_hidden=0, lowrank=3, hidden=6))
    both = GradMetaNet(GradMetaNetConfig(decoder_hidden=5, lowrank=3, hidden=6))
    assert low.product is None and both.product is not None
    assert [t.shape for t in low(ns)] == [t.shape for t in both(ns)]
