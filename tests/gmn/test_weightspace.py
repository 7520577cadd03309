"""Weight-space pieces: weight-derived neuron features, channel helpers, WS and neural-graph networks,
flat baseline."""

import pytest
import torch

from gmn.baselines import FlatGradientMLP, FlatMLPConfig
from gmn.decompose import decompose_gradients, mse, permute_params, probe_features, random_perms, rank1_gradients
from gmn.graph import NGNet, NGNetConfig
from gmn.weightspace import WSNet, WSNetConfig, neuron_channels, weight_channels, weight_neuron_features
from inr.siren import SirenArch, flatten, init_params, unflatten


def test_weight_neuron_features_values():
    arch = SirenArch(hidden=5, layers=2, dim_out=3)
    params = init_params(arch, 2, dtype=torch.float64)
    f = weight_neuron_features(params, arch).split(arch.dims, 1)  # per layer (N, d_l, 6)
    w1, b1, w2, b2, w3, b3 = params
    torch.testing.assert_close(f[0][..., :3], torch.zeros(2, 2, 3, dtype=torch.float64))  # inputs: no incoming
    torch.testing.assert_close(f[0][..., 3], w1.mean(1))
    torch.testing.assert_close(f[1][..., :2], w1)  # raw row: the input layer keeps identity
    torch.testing.assert_close(f[1][..., 2], b1)
    torch.testing.assert_close(f[2][..., 0], w2.mean(2))
    torch.testing.assert_close(f[2][..., 5], w3.abs().amax(1))
    torch.testing.assert_close(f[3][..., 3:], torch.zeros(2, 3, 3, dtype=torch.float64))  # outputs: no outgoing


def test_channel_helpers_and_ws_shapes():
    arch = SirenArch(hidden=8, layers=2)
    params = init_params(arch, 3)
    probe = probe_features(params, arch, torch.rand(16, 2) * 2 - 1).feats.mean(1)  # (N, n, 1)
    ch = neuron_channels(probe, arch.dims)
    assert [tuple(t.shape) for t in ch] == [(*t.shape, 2) for t in params]
    row, col = probe.split(arch.dims, 1)[2], probe.split(arch.dims, 1)[1]
    torch.testing.assert_close(ch[2][0, 3, 5], torch.stack([row[0, 3, 0], col[0, 5, 0]]))
    ws = WSNet(WSNetConfig.for_arch(arch, in_channels=3))
    ws.fit_norm(params, ch)
    delta = ws(params, ch)
    assert [t.shape for t in delta] == [t.shape for t in params]
    assert max(t.abs().max() for t in delta) < 1.0  # small initial edits (scale 0.01)
    assert [t.shape[-1] for t in weight_channels(params)] == [1] * 6


def test_neural_graph_any_width_extra_channels_and_equivariance():
    """NGNet edits any width of its depth, takes extra channels, commutes with hidden-neuron permutations
    (with its random initialisation: nothing here is zero) and names what it expected on bad input."""
    g = torch.Generator().manual_seed(0)
    for hidden in (8, 24):
        arch = SirenArch(hidden=hidden, layers=2, dim_out=3)
        params = init_params(arch, 2, generator=g, dtype=torch.float64)
        extra = [torch.randn(*t.shape, 2, generator=g, dtype=torch.float64) for t in params]
        net = NGNet(NGNetConfig.for_arch(arch, in_channels=3, edge_dim=8, node_dim=8, blocks=2,
                                         edit_scale_init=None)).double()
        net.fit_norm(params, extra)
        out = net(params, extra)
        assert [t.shape for t in out] == [t.shape for t in params]
        perms = random_perms(arch.dims, g)
        moved = net(permute_params(params, perms), permute_params(extra, perms))
        for a, b in zip(moved, permute_params(out, perms)):
            torch.testing.assert_close(a, b)
        assert not torch.allclose(out[2][:, 0], out[2][:, 1])  # hidden neurons are told apart
    with pytest.raises(ValueError, match="expects 3 channels, got 1"):
        net(params)
    deep = SirenArch(hidden=8, layers=3)
    with pytest.raises(ValueError, match="expects 3 weight layers, got 4"):
        NGNet(NGNetConfig.for_arch(arch))(init_params(deep, 1))


def test_flat_baseline_shapes_and_unflatten():
    arch = SirenArch(hidden=8, layers=2, dim_out=3)
    params = init_params(arch, 2)
    for a, b in zip(unflatten(flatten(params), arch), params, strict=True):
        assert torch.equal(a, b)
    ns = decompose_gradients(params, arch, torch.rand(10, 2), objective=mse(torch.rand(10, 3)))
    model = FlatGradientMLP(arch, FlatMLPConfig(hidden=32, use_params=False))
    assert [t.shape for t in model(rank1_gradients(ns, arch))] == [t.shape for t in params]
