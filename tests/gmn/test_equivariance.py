"""Equivariance to hidden-neuron permutations and invariance to point order, for every layer
and model (float64): permute, run, un-permute, allclose. The flat MLP baseline must fail."""

import pytest
import torch

from gmn.baselines import FlatGradientMLP, FlatMLPConfig
from gmn.decompose import NeuronSet, decompose_gradients, mse, permute_neurons, permute_params, random_perms
from gmn.decompose import rank1_gradients as mean_gradient
from gmn.layers import (
    DeepSetsLayer,
    InteractionLayer,
    InvariantHead,
    LowRankDecoder,
    NeuronEmbedding,
    PairDecoder,
    PointNeuronBlock,
    PoolOverPoints,
    ProductDecoder,
)
from gmn.model import GradMetaNet, GradMetaNetConfig, GradMetaNetPP, GradMetaNetPPConfig, GradMetaNetWS
from gmn.weightspace import NPLayer, WSNet, WSNetConfig, neuron_channels, weight_neuron_features
from inr.siren import SirenArch, init_params

ARCH = SirenArch(hidden=6, layers=3, dim_out=3)  # 2→6→6→6→3: three hidden layers, colour
DIMS = ARCH.dims
N, B, H = 2, 7, 8


@pytest.fixture(autouse=True)
def _float64():
    old = torch.get_default_dtype()
    torch.set_default_dtype(torch.float64)
    yield
    torch.set_default_dtype(old)


def _data(seed=0):
    g = torch.Generator().manual_seed(seed)
    params = init_params(ARCH, N, generator=g, dtype=torch.float64)
    x = torch.rand(N, B, 2, generator=g, dtype=torch.float64) * 2 - 1
    ns = decompose_gradients(params, ARCH, x, objective=mse(torch.rand(N, B, 3, generator=g, dtype=torch.float64)))
    return params, ns, random_perms(DIMS, g), torch.randperm(B, generator=g)


def _permuted_set(ns: NeuronSet, perms, point_perm=None) -> NeuronSet:
    feats = permute_neurons(ns.feats, ns.dims, perms, dim=2)
    return NeuronSet(feats if point_perm is None else feats[:, point_perm], ns.layer, ns.dims)


def _close(a, b):
    for x, y in zip(a, b, strict=True):
        torch.testing.assert_close(x, y, rtol=1e-9, atol=1e-11)


def _randomize(model):  # zero-initialised pieces would make the tests trivially pass
    with torch.no_grad():
        for p in model.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return model


# layers

X_LAYERS = {
    "interaction": lambda: (InteractionLayer(H, 5), lambda m, x: m(x, DIMS)),
    "block": lambda: (PointNeuronBlock(H, 2), lambda m, x: m(x)),
}


@pytest.mark.parametrize("name", X_LAYERS)
def test_point_level_layers(name):
    torch.manual_seed(0)
    model, call = X_LAYERS[name]()
    _randomize(model)
    _, _, perms, pp = _data()
    x = torch.randn(N, B, sum(DIMS), H)
    y = call(model, x)
    _close([call(model, permute_neurons(x, DIMS, perms, 2))], [permute_neurons(y, DIMS, perms, 2)])
    _close([call(model, x[:, pp])], [y[:, pp]])


def test_embedding_pool_deepsets_head():
    torch.manual_seed(1)
    _, _, perms, pp = _data()
    emb = _randomize(NeuronEmbedding(2, H, ARCH.depth, 2, 3, extra_features=4))
    x, extra = torch.randn(N, B, sum(DIMS), 2), torch.randn(N, sum(DIMS), 4)
    y = emb(x, DIMS, extra)
    y_p = emb(permute_neurons(x, DIMS, perms, 2), DIMS, permute_neurons(extra, DIMS, perms, 1))
    _close([y_p, emb(x[:, pp], DIMS, extra)], [permute_neurons(y, DIMS, perms, 2), y[:, pp]])

    pool, ds, head = (
        _randomize(PoolOverPoints(H, 5)),
        _randomize(DeepSetsLayer(5, 5)),
        _randomize(InvariantHead(5, 4, 3)),
    )
    h = torch.randn(N, B, sum(DIMS), H)
    z = pool(h, DIMS)
    _close(
        [pool(permute_neurons(h, DIMS, perms, 2), DIMS), pool(h[:, pp], DIMS)], [permute_neurons(z, DIMS, perms, 1), z]
    )
    z2 = ds(z, DIMS)
    _close([ds(permute_neurons(z, DIMS, perms, 1), DIMS)], [permute_neurons(z2, DIMS, perms, 1)])
    _close([head(permute_neurons(z2, DIMS, perms, 1), DIMS)], [head(z2, DIMS)])


def test_decoders():
    torch.manual_seed(2)
    _, _, perms, pp = _data()
    z, x = torch.randn(N, sum(DIMS), H), torch.randn(N, B, sum(DIMS), H)
    prod = _randomize(ProductDecoder(H, ARCH.depth, 2, 5))
    out = prod(z, DIMS)
    assert [tuple(t.shape) for t in out[:2]] == [(N, 6, 2, 2), (N, 6, 2)]
    _close(prod(permute_neurons(z, DIMS, perms, 1), DIMS), permute_params(out, perms))
    for dec in (LowRankDecoder(H, ARCH.depth, 2, 3), PairDecoder(H, ARCH.depth, 2, 5, 3, chunk=3)):
        _randomize(dec)
        out = dec(x, DIMS)
        _close(dec(permute_neurons(x, DIMS, perms, 2), DIMS), permute_params(out, perms))
        _close(dec(x[:, pp], DIMS), out)


def test_np_layer_and_weight_features():
    torch.manual_seed(3)
    params, ns, perms, _ = _data()
    layer = _randomize(NPLayer(3, 4, ARCH.depth, 2, 3))
    w = [torch.randn(*t.shape, 3) for t in params]
    out = layer(w)
    assert [tuple(t.shape) for t in out] == [(*t.shape, 4) for t in params]
    _close(layer(permute_params(w, perms)), permute_params(out, perms))

    feats = weight_neuron_features(params, ARCH)
    assert feats.shape == (N, ARCH.num_neurons, 6)
    _close([weight_neuron_features(permute_params(params, perms))], [permute_neurons(feats, DIMS, perms, 1)])
    pooled = ns.feats.mean(1)  # (N, n, 2)
    ch = neuron_channels(pooled, DIMS)
    _close(neuron_channels(permute_neurons(pooled, DIMS, perms, 1), DIMS), permute_params(ch, perms))


# models


def _gmn(**kw):
    sizes = dict(hidden=H, interaction_layers=2, deepsets_layers=1, decoder_hidden=6, lowrank=2)
    return GradMetaNet(GradMetaNetConfig.for_arch(ARCH, **{**sizes, **kw}))


def _pp(**kw):
    sizes = dict(dim=H, blocks=1, heads=2, pair_hidden=4, lowrank=2)
    model = GradMetaNetPP(GradMetaNetPPConfig.for_arch(ARCH, **{**sizes, **kw}))
    model.decoder.chunk = 3  # points per chunk of the pair MLP: several chunks
    return model


MODELS = {
    "gmn": lambda: (_gmn(out_channels=2), lambda m, p, ns: m(ns)),
    "gmn_weight_features": lambda: (_gmn(weight_features=True), lambda m, p, ns: m(ns, p)),
    "gmn_pooled_only": lambda: (_gmn(lowrank=0), lambda m, p, ns: m(ns)),
    "gmn_pp": lambda: (_pp(out_channels=2), lambda m, p, ns: m(ns)),
    "gmn_pp_weight_features": lambda: (_pp(weight_features=True), lambda m, p, ns: m(ns, p)),
    "ws": lambda: (WSNet(WSNetConfig.for_arch(ARCH, hidden=4, layers=2)), lambda m, p, ns: m(p)),
    "ws_residual": lambda: (WSNet(WSNetConfig.for_arch(ARCH, hidden=4, layers=4, residual=True)),
                            lambda m, p, ns: m(p)),
    "ws_probing": lambda: (
        WSNet(WSNetConfig.for_arch(ARCH, in_channels=3, hidden=4, layers=2)),
        lambda m, p, ns: m(p, neuron_channels(ns.feats[..., :1].mean(1), ns.dims)),
    ),
    "ws_gmn": lambda: (
        GradMetaNetWS(
            GradMetaNetConfig.for_arch(
                ARCH,
                hidden=H,
                interaction_layers=1,
                deepsets_layers=1,
                decoder_hidden=6,
                lowrank=2,
                out_channels=3,
                edit_scale_init=None,
                weight_features=True,
            ),
            WSNetConfig.for_arch(ARCH, in_channels=4, hidden=4, layers=2),
        ),
        lambda m, p, ns: m(p, ns),
    ),
}


def _fit(model, params, ns):
    if isinstance(model, GradMetaNetWS):
        model.fit_norm(params, ns)
    elif isinstance(model, WSNet):
        model.fit_norm(params)
    else:
        model.fit_norm(ns, params)


@pytest.mark.parametrize("name", MODELS)
def test_models_equivariant_and_point_invariant(name):
    torch.manual_seed(4)
    model, call = MODELS[name]()
    params, ns, perms, pp = _data()
    _fit(model, params, ns)
    model = _randomize(model)
    out = call(model, params, ns)
    out_p = call(model, permute_params(params, perms), _permuted_set(ns, perms))
    _close(out_p, permute_params(out, perms))
    # shuffling the points changes nothing
    _close(call(model, params, _permuted_set(ns, [torch.arange(d) for d in DIMS[1:-1]], pp)), out)
    assert max(t.abs().max() for t in out) > 1e-3  # not trivially zero


def test_flat_mlp_baseline_is_not_equivariant():
    torch.manual_seed(5)
    params, ns, perms, _ = _data()
    model = FlatGradientMLP(ARCH, FlatMLPConfig(hidden=16))
    model.fit_norm(mean_gradient(ns, ARCH), params)
    out = model(mean_gradient(ns, ARCH), params)
    out_p = model(mean_gradient(_permuted_set(ns, perms), ARCH), permute_params(params, perms))
    with pytest.raises(AssertionError):
        _close(out_p, permute_params(out, perms))
