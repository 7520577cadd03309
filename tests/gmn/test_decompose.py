"""Rank-1 decomposition against autograd and torch.func per-example gradients (float64)."""

import pytest
import torch
from torch.func import grad, vmap

from gmn.decompose import (
    FeatureNorm,
    Objective,
    decompose_gradients,
    masked_mse,
    mse,
    neuron_layers,
    output,
    permute_neurons,
    permute_params,
    probe_features,
    random_perms,
    rank1_gradients,
)
from inr.siren import SirenArch, forward, init_params

ARCHS = [  # (hidden, layers, dim_out): depth L = layers + 1 in 2..4, widths 8..64, gray and colour
    (8, 1, 1),
    (16, 2, 3),
    (64, 2, 1),
    (32, 3, 3),
    (8, 3, 1),
]
N, B = 2, 5


def _setup(hidden, layers, dim_out, seed=0):
    g = torch.Generator().manual_seed(seed)
    arch = SirenArch(hidden=hidden, layers=layers, dim_out=dim_out)
    params = init_params(arch, N, generator=g, dtype=torch.float64)
    x = torch.rand(N, B, 2, generator=g, dtype=torch.float64) * 2 - 1
    return arch, params, x, g


def _objectives(arch, params, x, g):
    c = arch.dim_out
    target = torch.rand(N, B, c, generator=g, dtype=torch.float64)
    mask = (torch.rand(N, B, generator=g) > 0.5).double()
    orig = forward(params, arch, x).detach()
    return {
        "mse": mse(target),
        "masked_mse": masked_mse(target, mask, orig, lam=0.3),
        "output": output(),
        "output_channel": output(channel=c - 1),
    }


def _point_objective(obj: Objective, n: int, b: int) -> Objective:
    pick = lambda t: None if t is None else t[n, b]  # noqa: E731
    return Objective(obj.kind, pick(obj.target), pick(obj.mask), pick(obj.orig), obj.lam, obj.channel)


def _per_example_grads(params, arch, x, obj):
    """torch.func reference: per-INR, per-point gradient of ℓ_b, W_l (N, B, ...)."""

    def point_loss(p, xb, kind_fields):
        f = forward([t.unsqueeze(0) for t in p], arch, xb.view(1, 1, -1))[0, 0]  # (C,)
        return Objective(obj.kind, *kind_fields, obj.lam, obj.channel).loss(f)

    out = []
    for n in range(N):
        p = [t[n] for t in params]
        fields = [None if t is None else t[n] for t in (obj.target, obj.mask, obj.orig)]
        in_dims = (None, 0, [None if t is None else 0 for t in fields])
        out.append(vmap(grad(point_loss), in_dims=in_dims)(p, x[n], fields))
    return [torch.stack(ts) for ts in zip(*out, strict=True)]


@pytest.mark.parametrize("hidden,layers,dim_out", ARCHS)
def test_rank1_terms_are_per_example_gradients(hidden, layers, dim_out):
    arch, params, x, g = _setup(hidden, layers, dim_out)
    for name, obj in _objectives(arch, params, x, g).items():
        ns = decompose_gradients(params, arch, x, objective=obj)
        assert ns.feats.shape == (N, B, arch.num_neurons, 2)
        ref = _per_example_grads(params, arch, x, obj)
        mine = rank1_gradients(ns, arch, per_point=True)
        for r, m in zip(ref, mine, strict=True):
            torch.testing.assert_close(m, r, rtol=1e-9, atol=1e-12, msg=name)


@pytest.mark.parametrize("hidden,layers,dim_out", ARCHS)
def test_mean_is_batch_gradient(hidden, layers, dim_out):
    arch, params, x, g = _setup(hidden, layers, dim_out, seed=1)
    for name, obj in _objectives(arch, params, x, g).items():
        ps = [t.clone().requires_grad_() for t in params]
        loss = obj.loss(forward(ps, arch, x)).mean(1).sum()  # mean over points, INRs independent
        ref = torch.autograd.grad(loss, ps)
        mean = rank1_gradients(decompose_gradients(params, arch, x, objective=obj), arch)
        for r, m in zip(ref, mean, strict=True):
            torch.testing.assert_close(m, r, rtol=1e-9, atol=1e-12, msg=name)


def test_input_gradient_and_activations():
    arch, params, x, g = _setup(16, 2, 3)
    obj = _objectives(arch, params, x, g)["mse"]
    ns = decompose_gradients(params, arch, x, objective=obj)
    xs = x.clone().requires_grad_()
    (dx,) = torch.autograd.grad(obj.loss(forward(params, arch, xs)).sum(), xs)
    a0, g0 = ns.per_layer()[0].unbind(-1)
    torch.testing.assert_close(a0, x)
    torch.testing.assert_close(g0, dx)
    torch.testing.assert_close(ns.per_layer()[-1][..., 0], forward(params, arch, x))
    probe = probe_features(params, arch, x)
    assert probe.feats.shape == (N, B, arch.num_neurons, 1)
    torch.testing.assert_close(probe.feats[..., 0], ns.a)


def test_shared_points_and_layer_index():
    arch, params, x, _ = _setup(8, 2, 1)
    t = torch.rand(B, 1, dtype=torch.float64)
    shared = decompose_gradients(params, arch, x[0], objective=mse(t))
    stacked = decompose_gradients(params, arch, x[0].expand(N, B, 2), objective=mse(t.expand(N, B, 1)))
    torch.testing.assert_close(shared.feats, stacked.feats)
    assert shared.layer.tolist() == [0] * 2 + [1] * 8 + [2] * 8 + [3]
    assert neuron_layers(arch.dims).tolist() == shared.layer.tolist()
    with pytest.raises(ValueError, match="points must be"):
        decompose_gradients(params, arch, torch.zeros(B, 3), objective=output())


def test_decomposition_is_equivariant():
    arch, params, x, g = _setup(16, 3, 3)
    obj = _objectives(arch, params, x, g)["masked_mse"]
    perms = random_perms(arch.dims, g)
    ns = decompose_gradients(params, arch, x, objective=obj)
    ns_p = decompose_gradients(permute_params(params, perms), arch, x, objective=obj)
    torch.testing.assert_close(ns_p.feats, permute_neurons(ns.feats, arch.dims, perms, dim=2))
    torch.testing.assert_close(forward(permute_params(params, perms), arch, x), forward(params, arch, x))


def test_feature_norm_per_layer():
    arch, params, x, g = _setup(16, 2, 1)
    ns = decompose_gradients(params, arch, x, objective=_objectives(arch, params, x, g)["mse"])
    norm = FeatureNorm(arch.depth + 1, 2).fit(ns.feats, ns.layer)
    y = norm(ns.feats, ns.layer)
    for part in y.split(arch.dims, 2):  # unit RMS per layer and channel
        torch.testing.assert_close(part.pow(2).mean((0, 1, 2)).sqrt(), torch.ones(2, dtype=y.dtype))
    perms = random_perms(arch.dims, g)
    permuted = permute_neurons(ns.feats, arch.dims, perms, dim=2)
    torch.testing.assert_close(norm(permuted, ns.layer), permute_neurons(y, arch.dims, perms, dim=2))
    assert set(dict(norm.named_buffers())) == {"shift", "scale"}
