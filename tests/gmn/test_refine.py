"""Preview, then refine (gmn.refine): Adam on the full target of the changed tiles after an edit, solid paint
with a feathered edge, and `gmn edit --refine`."""

import json
from pathlib import Path

import pytest
import torch

from gmn.__main__ import main as gmn_main
from gmn.edit import edit_inr, resolve_editor
from gmn.editors import EditorError, load_editor
from gmn.objectives import EditTarget, filter_target
from gmn.refine import (
    changed_tiles,
    feather_mask,
    refine,
    refine_edit,
    refine_settings,
    refine_target,
    solid_paint_target,
)
from inr.files import load_inr
from inr.siren import SirenArch, coordinate_grid, forward, init_params, select
from inr.tiles import TileGrid, render_tiles

EXAMPLES = Path(__file__).resolve().parents[2] / "assets" / "examples"


def _reference_adam(params, arch, x, target, weight, steps, lr):
    """torch.optim.Adam on one INR's weighted MSE, written out here (the reference for refine's tiles)."""
    p = [t.detach().clone().requires_grad_(True) for t in params]
    opt = torch.optim.Adam(p, lr=lr)
    for _ in range(steps):
        loss = (weight * (forward(p, arch, x) - target).pow(2)).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    return [t.detach() for t in p]


def test_refine_is_adam_on_each_changed_tile_window_float64():
    arch = SirenArch(hidden=12, layers=2, dim_out=2)  # a second width and two channels
    grid = TileGrid((24, 24), 16, 4)  # 2×2 tiles, starts 0 and 8
    params = init_params(arch, grid.count, generator=torch.Generator().manual_seed(1), dtype=torch.float64)
    before = render_tiles(params, arch, grid)
    target = before.clone()
    target[0, 2:6, 2:6] = 0.9  # only tile 0's window differs
    weight = torch.full_like(target[..., :1], 0.5)
    weight[0, :, :3] = 2.0  # a non-uniform weight, so dropping it shows
    obj = EditTarget(target, weight)
    assert changed_tiles(obj, before, grid).tolist() == [0]
    res = refine(params, arch, obj, grid=grid, steps=7, lr=2e-3)
    assert res.tiles.tolist() == [0] and res.steps == 7
    assert all(t.dtype == torch.float64 for t in res.params)
    x = coordinate_grid(16, dtype=torch.float64)
    win_t, win_w = grid.cut(target[0])[0].reshape(1, -1, 2), grid.cut(weight[0])[0].reshape(1, -1, 1)
    ref = _reference_adam(select(params, 0), arch, x, win_t, win_w, steps=7, lr=2e-3)
    for got, want in zip(select(res.params, 0), ref):
        assert torch.allclose(got, want, atol=1e-12, rtol=0)
    for got, orig in zip(select(res.params, slice(1, 4)), select(params, slice(1, 4))):
        assert torch.equal(got, orig)  # untouched tiles: bit-identical
    assert res.mse < res.mse_before


def test_refine_lowers_full_target_mse_of_a_single_siren():
    arch = SirenArch(hidden=16)
    params = init_params(arch, 1, generator=torch.Generator().manual_seed(2))
    obj = filter_target(render_tiles(params, arch, TileGrid.single(20)), "blur")
    res = refine(params, arch, obj, steps=30, lr=1e-3)  # no grid: one SIREN over the objective's image
    assert res.mse < 0.5 * res.mse_before
    full = (render_tiles(res.params, arch, TileGrid.single(20)) - obj.target).pow(2).mean().item()
    assert full == pytest.approx(res.mse, rel=1e-5)  # weight 1: the reported MSE is the plain full-target MSE
    assert refine(params, arch, obj, steps=0).mse == pytest.approx(res.mse_before)
    edited = [p + 0.01 for p in params]  # a stand-in for an editor's result
    for start, want in (("original", params), ("editor", edited)):
        r, _ = refine_edit(params, arch, edited, arch, TileGrid.single(20), "blur",
                           settings={"start": start, "steps": 0, "lr": 1e-3})
        assert all(torch.equal(a, b) for a, b in zip(r.params, want))  # 0 steps: the start itself


def test_refine_refuses_mismatches():
    arch = SirenArch(hidden=8)
    params = init_params(arch, 1)
    obj = filter_target(render_tiles(params, arch, TileGrid.single(16)), "blur")
    with pytest.raises(EditorError, match="objective is 16×16 px"):
        refine(params, arch, obj, grid=TileGrid.single(20))
    with pytest.raises(EditorError, match="channels"):
        refine(params, arch, EditTarget(torch.rand(1, 16, 16, 3), torch.ones(1, 16, 16, 1)))
    with pytest.raises(EditorError, match="at least 0"):
        refine(params, arch, obj, steps=-1)


def test_feather_mask_and_solid_target():
    mask = torch.zeros(12, 12, 1)
    mask[4:8, 4:8] = 1
    soft = feather_mask(mask, 2.0)
    assert torch.equal(soft[4:8, 4:8], torch.ones(4, 4, 1))
    assert soft[5, 3, 0].item() == pytest.approx(2 / 3) and soft[5, 2, 0].item() == pytest.approx(1 / 3)
    assert soft[5, 1, 0].item() == 0 and soft[0, 0, 0].item() == 0  # beyond the feathered edge
    image = torch.rand(12, 12, 3, generator=torch.Generator().manual_seed(0))
    colour = torch.tensor([0.1, 0.7, 0.3])
    obj = solid_paint_target(image, mask, colour, feather=2.0, lam=3.0)
    assert torch.allclose(obj.target[0], soft * colour + (1 - soft) * image)
    assert torch.allclose(obj.weight[0], soft + 3.0 * (1 - soft))  # w = m + λ(1 − m) with the soft mask
    assert obj.kind == "paint" and obj.lam == 3.0


def test_refine_settings_read_the_card():
    assert refine_settings({}) == {"start": "editor", "steps": 100, "lr": 1e-3}
    card = {"refine": {"start": "original", "steps": 40, "lr": 3e-3}}
    assert refine_settings(card) == {"start": "original", "steps": 40, "lr": 3e-3}
    assert refine_settings({"refine": {"start": "elsewhere", "steps": -2, "lr": "x"}})["start"] == "editor"


@pytest.fixture(scope="module")
def camera_corner():
    """The top-left 3×3 tiles of the bundled camera example (a real fitted photo): an 88×88 tiled INR."""
    inr = load_inr(EXAMPLES / "camera.safetensors")
    rows, cols = inr.grid.shape
    idx = torch.tensor([r * cols + c for r in range(3) for c in range(3)])
    grid = TileGrid((88, 88), inr.grid.tile, inr.grid.overlap)
    assert grid.row_starts == inr.grid.row_starts[:3]  # the same windows as in the whole photo
    return select(inr.params, idx), inr.arch, grid


def test_solid_paint_after_the_editor_meets_its_bounds(camera_corner):
    params, arch, grid = camera_corner
    editor = load_editor(resolve_editor("paint-color"))[0]
    mask = torch.zeros(88, 88, 1)
    mask[10:20, 8:44] = 1  # a stroke over tiles (0, 0) and (0, 1)
    colour = torch.tensor([0.95, 0.2, 0.25])
    before = render_tiles(params, arch, grid)[0]
    preview = edit_inr(params, arch, editor, grid=grid, mask=mask, paint=colour)
    obj = refine_target(params, arch, grid, "paint", mask, colour)
    res, res_arch = refine_edit(params, arch, preview.params, preview.arch, grid, "paint", mask=mask, paint=colour,
                                settings={"start": "editor", "steps": 100, "lr": 3e-3})
    assert res_arch == preview.arch and res.steps == 100
    assert sorted(res.tiles.tolist()) == [0, 1]
    after = render_tiles(res.params, preview.arch, grid)[0]
    core, beyond = mask[..., 0] > 0.5, obj.mask[0, ..., 0] == 0
    inside = (after[core] - colour).pow(2).mean().item()
    outside = (after[beyond] - before[beyond]).pow(2).mean().item()
    changed = ((after - before).abs().amax(-1)[beyond] > 8 / 255).float().mean().item()
    assert inside <= 1e-3, inside  # a solid fill of the colour (seen: 1.8e-4)
    assert outside <= 1e-4, outside  # nothing visibly changes outside (seen: 8e-6)
    assert changed <= 1e-3, changed  # at most 0.1% of the pixels beyond the feathered edge off by > 8/255 (seen: 0)
    preview_inside = (render_tiles(preview.params, preview.arch, grid)[0][core] - colour).pow(2).mean().item()
    assert inside < 0.5 * preview_inside  # the refine is what makes it solid
    for t in range(2, grid.count):
        for got, orig in zip(select(res.params, t), select(params, t)):
            assert torch.equal(got, orig)  # tiles the stroke does not reach: bit-identical


def test_cli_edit_refine_end_to_end(tmp_path, capsys):
    src = EXAMPLES / "mnist-test-0.safetensors"
    outs = {}
    for k in (0, 5):  # in-process: the same argparse → edit → refine → file path as the shell command
        out = tmp_path / f"d{k}.safetensors"
        assert gmn_main(["edit", str(src), "--editor", "dilate", "--refine", str(k), "--refine-lr", "2e-3",
                         "--threads", "1", "-o", str(out)]) == 0
        outs[k] = load_inr(out)
    printed = capsys.readouterr().out
    assert "refined 1 SIREN(s)" in printed and "5 Adam steps (lr 0.002)" in printed
    assert json.loads(outs[5].meta["edit"])["refine"]["steps"] == 5
    inr = load_inr(src)
    target = filter_target(render_tiles(inr.params, inr.arch, inr.grid), "dilate").target
    mse = {k: (render_tiles(o.params, o.arch, o.grid) - target).pow(2).mean().item() for k, o in outs.items()}
    assert mse[5] < mse[0]
    try:  # a bad K is refused in one line with exit code 2 (by argparse's bounds, or by the edit command)
        code = gmn_main(["edit", str(src), "--editor", "dilate", "--refine", "-1", "-o", str(tmp_path / "x.st")])
    except SystemExit as e:
        code = e.code
    err = capsys.readouterr().err
    assert code == 2 and "error: " in err and "--refine" in err
