import pytest
import torch

from inr.siren import (
    SirenArch,
    coordinate_grid,
    evaluate,
    forward,
    from_state_dict,
    init_params,
    render,
    state_dict,
    to_sirennet,
)


@pytest.mark.parametrize("hidden,layers,dim_out", [(8, 1, 1), (32, 2, 1), (16, 3, 3), (64, 4, 3)])
def test_batched_forward_equals_sirennet(hidden, layers, dim_out):
    from siren_pytorch import SirenNet

    torch.manual_seed(0)
    arch = SirenArch(hidden=hidden, layers=layers, dim_out=dim_out)
    params = init_params(arch, 3, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    x = torch.rand(50, 2, dtype=torch.float64) * 2 - 1
    f = forward(params, arch, x)  # (3, 50, C)
    assert f.shape == (3, 50, dim_out)
    for i in range(3):
        net = SirenNet(2, hidden, dim_out, layers, w0=30.0, w0_initial=30.0).double()
        net.load_state_dict(state_dict(params, arch, i))
        torch.testing.assert_close(net(x) + 0.5, f[i], rtol=0, atol=1e-12)
    # and float32, against the module built by to_sirennet
    p32 = [t.float() for t in params]
    torch.testing.assert_close(to_sirennet(p32, arch, 1)(x.float()) + 0.5, forward(p32, arch, x.float())[1])


def test_per_inr_points_and_shared_points_agree():
    arch = SirenArch()
    params = init_params(arch, 2, generator=torch.Generator().manual_seed(0))
    x = torch.rand(10, 2)
    torch.testing.assert_close(forward(params, arch, x), forward(params, arch, x.expand(2, 10, 2)))


def test_init_matches_sirennet_ranges():
    from siren_pytorch import SirenNet

    arch = SirenArch(hidden=32, layers=2)
    params = init_params(arch, 200, generator=torch.Generator().manual_seed(0))
    torch.manual_seed(0)
    nets = [SirenNet(2, 32, 1, 2, w0=30.0, w0_initial=30.0).state_dict() for _ in range(200)]
    for t, name in zip(params, arch.param_names()):
        bound = max(sd[name].abs().max().item() for sd in nets)
        assert t.abs().max().item() <= bound * 1.05 + 1e-6, name
        assert t.abs().max().item() >= bound * 0.8, name


def test_state_dict_round_trip():
    arch = SirenArch(hidden=16, layers=3, dim_out=3)
    params = init_params(arch, 2, generator=torch.Generator().manual_seed(0))
    back, arch2 = from_state_dict(to_sirennet(params, arch, 1).state_dict())
    assert arch2 == arch
    for a, b in zip(back, params):
        assert torch.equal(a[0], b[1])


def test_coordinate_grid_convention():
    g = coordinate_grid(2, 4)
    assert g.shape == (8, 2)
    # row-major, (row, col), pixel centres
    assert torch.allclose(g[0], torch.tensor([-0.5, -0.75]))
    assert torch.allclose(g[1], torch.tensor([-0.5, -0.25]))
    assert torch.allclose(g[4], torch.tensor([0.5, -0.75]))


def test_render_shapes_range_and_resolution_independence():
    arch = SirenArch(hidden=16, dim_out=3)
    params = init_params(arch, 2, generator=torch.Generator().manual_seed(0))
    img = render(params, arch, (12, 20))
    assert img.shape == (2, 12, 20, 3)
    assert img.min() >= 0 and img.max() <= 1
    # resolution independence: the pixel centres of a 16² grid are every other centre... of a 48² grid
    # at offsets (3k + 1): centre of pixel k at 16² = (k + .5)/16 = (3k + 1.5)/48 = centre of pixel 3k+1 at 48²
    lo, hi = render(params, arch, 16, clamp=False), render(params, arch, 48, clamp=False)
    torch.testing.assert_close(lo, hi[:, 1::3, 1::3], rtol=0, atol=1e-5)
    # chunking does not change the result
    torch.testing.assert_close(render(params, arch, 30, chunk=7), render(params, arch, 30))


@pytest.mark.parametrize("layers,dim_out", [(1, 1), (3, 3)])
def test_in_place_evaluate_equals_forward_in_float64(layers, dim_out):
    """Renders use `evaluate` (no autograd, in place): the same function as `forward`, for points shared by
    every INR and for points of their own, and it leaves its inputs untouched."""
    arch = SirenArch(hidden=12, layers=layers, dim_out=dim_out)
    g = torch.Generator().manual_seed(3)
    params = init_params(arch, 3, generator=g, dtype=torch.float64)
    shared = torch.rand(50, 2, generator=g, dtype=torch.float64) * 2 - 1
    own = torch.rand(3, 40, 2, generator=g, dtype=torch.float64) * 2 - 1
    kept = [t.clone() for t in params], shared.clone()
    for x in (shared, own):
        torch.testing.assert_close(evaluate(params, arch, x), forward(params, arch, x), rtol=0, atol=1e-13)
    assert all(torch.equal(a, b) for a, b in zip(params, kept[0])) and torch.equal(shared, kept[1])


def test_zero_last_layer_is_mid_grey():
    arch = SirenArch()
    params = init_params(arch, 1)
    params[-2].zero_()
    params[-1].zero_()
    assert torch.allclose(render(params, arch, 8), torch.full((1, 8, 8, 1), 0.5))


def test_arch_validation():
    with pytest.raises(ValueError, match="hidden"):
        SirenArch(hidden=0)
    a = SirenArch(hidden=32, layers=2)
    assert a.dims == [2, 32, 32, 1] and a.num_params == 1185 and a.num_neurons == 67
