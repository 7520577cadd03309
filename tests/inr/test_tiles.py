"""Tiled INRs (inr.tiles): grid geometry, blended rendering, fitting, files, the zoo recipe, the `tiles`
dataset and the CLI. Tiny SIRENs (2→8→8→C) and few steps throughout."""

import json
import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image
from safetensors.torch import save_file

from inr import datasets
from inr.errors import InrFileError
from inr.files import COORDS, OUTPUT, load_inr, save_tiled, tile_state_dict
from inr.fit import LARGE_RECIPE, TILE_RECIPE, ZOO_RECIPE, FitRecipe
from inr.siren import SirenArch, coordinate_grid, forward, init_params, render, select
from inr.tiles import MAX_SIDE, TileGrid, TileGridError, fit_photo, plan_fit, render_tiles, working_size

ARCH = SirenArch(hidden=8, dim_out=3)


def _params(grid: TileGrid, arch: SirenArch = ARCH, seed: int = 0, dtype=torch.float64):
    return init_params(arch, grid.count, generator=torch.Generator().manual_seed(seed), dtype=dtype)


def _smooth(params, scale=0.03):
    """The same tiles with a much smaller first layer: slowly varying functions of the coordinates."""
    out = [p.clone() for p in params]
    out[0] *= scale
    return out


# rendering


@pytest.mark.parametrize("size", [(64, 96), (96, 32), (32, 32)])
def test_native_render_without_overlap_is_each_tiles_own_forward(size):
    grid = TileGrid(size, 32, 0)
    assert grid.row_starts == list(range(0, size[0], 32)) and grid.col_starts == list(range(0, size[1], 32))
    params = _params(grid)
    img = render_tiles(params, ARCH, grid, clamp=False)
    assert img.shape == (1, *size, 3) and img.dtype == torch.float64
    cut = grid.cut(img)[0]  # (N, 32, 32, 3)
    own = forward(params, ARCH, coordinate_grid(32, 32, dtype=torch.float64)).reshape(grid.count, 32, 32, 3)
    torch.testing.assert_close(cut, own, rtol=0, atol=1e-10)
    # the default (clamped) render is the same clamped to [0, 1]
    torch.testing.assert_close(render_tiles(params, ARCH, grid)[0], img[0].clamp(0, 1), rtol=0, atol=0)


@pytest.mark.parametrize("size", [32, 7, 64, (20, 50)])
def test_one_by_one_grid_renders_as_a_plain_inr(size):
    grid = TileGrid.single(32)
    assert grid.is_single and grid.shape == (1, 1)
    params = _params(grid)
    torch.testing.assert_close(render_tiles(params, ARCH, grid, size), render(params, ARCH, size),
                               rtol=0, atol=1e-10)


GRIDS = [
    TileGrid((256, 256), 32, 4),
    TileGrid((100, 256), 32, 4),
    TileGrid((64, 64), 32, 4),
    TileGrid((40, 40), 32, 28),  # neighbours overlap by 28 of 32 px: three tiles cover most pixels
    TileGrid((33, 70), 32, 0),  # starts not a multiple of the tile: the overlap is what rounding leaves
]
SIZES = [(1000, 700), (17, 13), (3, 3), None]


def _ramp(t):
    return torch.sin(math.pi / 2 * t.clamp(0, 1)).pow(2)


def _reference_axis(length, starts, tile, out):
    """Blend weight of every tile at every output pixel of one axis, (k, out), straight from the documented
    formula: inside its window, sin² ramps across the overlaps with its previous and next neighbours."""
    p = (torch.arange(out, dtype=torch.float64) + 0.5) / out * length
    w = torch.zeros(len(starts), out, dtype=torch.float64)
    for k, s in enumerate(starts):
        v = ((p >= s) & (p < s + tile)).double()
        if k > 0 and starts[k - 1] + tile - s > 0:
            v = v * _ramp((p - s) / (starts[k - 1] + tile - s))
        if k + 1 < len(starts) and s + tile - starts[k + 1] > 0:
            v = v * _ramp((s + tile - p) / (s + tile - starts[k + 1]))
        w[k] = v
    return w


@pytest.mark.parametrize("grid", GRIDS, ids=lambda g: f"{g.image_size}-{g.tile}-{g.overlap}")
@pytest.mark.parametrize("size", SIZES, ids=str)
def test_blend_weights_are_a_partition_of_unity_by_the_documented_formula(grid, size):
    size = size or grid.image_size
    oh, ow = size
    flat, local, weight = grid.layout(size, torch.float64)
    assert weight.min() >= 0 and flat.min() >= 0 and flat.max() < oh * ow
    total = torch.zeros(oh * ow, dtype=torch.float64).index_add_(0, flat.flatten(), weight.flatten())
    torch.testing.assert_close(total, torch.ones(oh * ow, dtype=torch.float64), rtol=0, atol=1e-12)
    # each (tile, output pixel) pair weighs what the formula says, counted once (summed over repeats)
    rw = _reference_axis(grid.image_size[0], grid.row_starts, grid.tile, oh)
    cw = _reference_axis(grid.image_size[1], grid.col_starts, grid.tile, ow)
    rw, cw = rw / rw.sum(0), cw / cw.sum(0)  # the product's normaliser is separable
    tile = torch.arange(grid.count)[:, None].expand_as(flat)
    keys, inverse = torch.unique(tile * (oh * ow) + flat, return_inverse=True)
    summed = torch.zeros(len(keys), dtype=torch.float64).index_add_(0, inverse.flatten(), weight.flatten())
    k, pix = keys // (oh * ow), keys % (oh * ow)
    cols = grid.shape[1]
    expected = rw[k // cols, pix // ow] * cw[k % cols, pix % ow]
    torch.testing.assert_close(summed, expected, rtol=0, atol=1e-12)
    # where a tile has weight, its local coordinates are those of its window
    start = torch.tensor(grid.windows(), dtype=torch.float64)[:, None, :]  # (N, 1, 2) top-left (row, col)
    native = torch.stack([((flat // ow).double() + 0.5) / oh * grid.image_size[0],
                          ((flat % ow).double() + 0.5) / ow * grid.image_size[1]], -1)
    on = weight > 0
    torch.testing.assert_close(local[on], ((native - start) / grid.tile * 2 - 1)[on], rtol=0, atol=1e-12)
    assert (local[on].abs() <= 1).all()


@pytest.mark.parametrize("grid", GRIDS[:3], ids=lambda g: f"{g.image_size}")
def test_constant_tiles_render_that_constant_everywhere(grid):
    arch = ARCH
    params = [torch.zeros(grid.count, *s, dtype=torch.float64) for s in arch.param_shapes()]
    colour = torch.tensor([0.2, 0.55, 0.9], dtype=torch.float64)
    params[-1][:] = colour - 0.5
    for size in (grid.image_size, (1000, 700), (17, 13)):
        img = render_tiles(params, arch, grid, size)
        torch.testing.assert_close(img, colour.expand(1, *size, 3), rtol=0, atol=1e-12)


def test_render_in_an_overlap_is_the_cos2_sin2_blend_of_the_two_tiles():
    grid = TileGrid((32, 60), 32, 4)  # one row of two tiles, sharing native columns [28, 32)
    assert grid.col_starts == [0, 28] and grid.row_starts == [0]
    params = _params(grid, seed=3)
    oh, ow = 128, 240  # 4× upsampled
    img = render_tiles(params, ARCH, grid, (oh, ow), clamp=False)[0]
    pr = (torch.arange(oh, dtype=torch.float64) + 0.5) / oh * 32
    pc = (torch.arange(ow, dtype=torch.float64) + 0.5) / ow * 60
    rows = (pr / 32 * 2 - 1)[:, None].expand(oh, ow)

    def tile(i, start):
        x = torch.stack([rows, ((pc - start) / 32 * 2 - 1)[None].expand(oh, ow)], -1).reshape(-1, 2)
        return forward(select(params, i), ARCH, x)[0].reshape(oh, ow, 3)

    f_left, f_right = tile(0, 0), tile(1, 28)
    t = ((pc - 28) / 4).clamp(0, 1)
    w_left = torch.where(pc < 28, 1.0, torch.where(pc >= 32, 0.0, torch.cos(math.pi / 2 * t) ** 2))
    expected = w_left[None, :, None] * f_left + (1 - w_left[None, :, None]) * f_right
    assert ((pc >= 28) & (pc < 32)).sum() == 16  # the test does look at the overlap
    torch.testing.assert_close(img, expected, rtol=0, atol=1e-10)


def _col_jumps(img):
    return (img[:, 1:] - img[:, :-1]).abs().amax(dim=(0, 2))  # (W'-1,) largest jump between columns


def _two_smooth_tiles(overlap, width, up):
    """Render at up× of a row of two smooth tiles that disagree (the right one 0.3 brighter), each tile's own
    values on the whole output, and the output column pairs that straddle the overlap (or the border)."""
    grid = TileGrid((32, width), 32, overlap)
    assert grid.shape == (1, 2) and grid.col_starts[1] == 32 - overlap
    params = _smooth(_params(grid, seed=1))
    params[-1][1] += 0.3
    size = (32 * up, width * up)
    img = render_tiles(params, ARCH, grid, size, clamp=False)[0]
    pc = (torch.arange(size[1], dtype=torch.float64) + 0.5) / up
    rows = coordinate_grid(size[0], 1, dtype=torch.float64)[:, :1].expand(size[0], size[1])
    own = []
    for i, s in enumerate(grid.col_starts):  # each tile evaluated alone on the whole output
        x = torch.stack([rows, ((pc - s) / 32 * 2 - 1)[None].expand_as(rows)], -1).reshape(-1, 2)
        own.append(forward(select(params, i), ARCH, x)[0].reshape(*size, 3))
    return img, own, slice((32 - overlap) * up - 1, 32 * up)


def test_border_continuity_of_smooth_random_tiles():
    # without overlap the render jumps at the border; with an 8 px overlap the jump between neighbouring
    # output pixels is bounded by the tiles' own variation plus the blend's slope (at most π/2 per overlap
    # width) times how much the two tiles differ: |Δ(w f_L + (1-w) f_R)| ≤ max|Δf| + |Δw|·|f_L - f_R|
    up = 4
    img, own, border = _two_smooth_tiles(0, 64, up)
    inside = max(_col_jumps(f).max() for f in own)  # the tiles' own variation between columns
    seam = _col_jumps(img)[border].max()
    assert seam > 10 * inside and seam > 0.1  # a visible seam
    img, own, border = _two_smooth_tiles(8, 56, up)
    inside = max(_col_jumps(f).max() for f in own)
    jumps = _col_jumps(img)
    differ = (own[0] - own[1]).abs()[:, border.start : border.stop + 1].max()
    assert jumps[border].max() <= inside + math.pi / (2 * 8) / up * differ + 1e-12
    assert jumps.max() < 0.1 * seam  # no seam anywhere


# geometry


def test_describe_writes_width_by_height():
    """Sizes are written width×height (tiles: columns×rows) like the notices and image tools."""
    assert TileGrid((48, 64), 32, 4).describe() == "3×2 tiles of 32² px (overlap 4 px) over 64×48 px"
    assert TileGrid((128, 85), 32, 4).describe().endswith("over 85×128 px")
    assert TileGrid.single(20).describe() == "one SIREN over 20×20 px"


def test_grid_geometry():
    grid = TileGrid((256, 256), 32, 4)
    assert grid.shape == (9, 9) and grid.count == 81 and not grid.is_single
    for h, w, t, o in ((256, 256, 32, 4), (100, 256, 32, 4), (40, 40, 32, 28), (1000, 33, 32, 0), (77, 91, 16, 5),
                       (32, 32, 32, 0), (4096, 64, 64, 63)):
        g = TileGrid((h, w), t, o)
        for starts, length in ((g.row_starts, h), (g.col_starts, w)):
            assert starts[0] == 0 and starts[-1] == length - t
            assert starts == sorted(set(starts))
            assert all(b - a <= t - o for a, b in zip(starts, starts[1:]))  # neighbours share ≥ o pixels
        assert g.windows() == [(r, c) for r in g.row_starts for c in g.col_starts] and len(g.windows()) == g.count
        if g.count <= 100:
            img = torch.rand(2, h, w, 3)
            cut = g.cut(img)
            assert cut.shape == (2, g.count, t, t, 3)
            for k in (0, g.count // 2, g.count - 1):
                r, c = g.windows()[k]
                assert torch.equal(cut[1, k], img[1, r : r + t, c : c + t])
        assert TileGrid.from_dict(json.loads(json.dumps(g.to_dict()))) == g


@pytest.mark.parametrize("args, msg", [
    (((64, 64), 32, 32), "overlap"),
    (((64, 64), 32, 40), "overlap"),
    (((64, 64), 32, -1), "overlap"),
    (((64, 20), 32, 4), "larger than"),
    (((0, 64), 32, 4), "image height"),
    (((64, 0), 32, 4), "image width"),
    (((64, 64), 0, 0), "tile"),
    (((-64, 64), 32, 4), "image height"),
    (((64, 64), -32, 4), "tile"),
    (((MAX_SIDE + 1, 64), 32, 4), str(MAX_SIDE)),
    (((64, 64.0), 32, 4), "image width"),
])
def test_bad_grids_raise_one_line(args, msg):
    with pytest.raises(TileGridError, match=msg) as e:
        TileGrid(*args)
    assert "\n" not in str(e.value)


def test_touched_tiles():
    grid = TileGrid((64, 64), 32, 4)  # starts 0, 16, 32 on both axes
    mask = torch.zeros(64, 64, 1)
    assert grid.touched(mask).tolist() == []
    mask[2, 2] = 1
    assert grid.touched(mask).tolist() == [0]
    mask[:] = 0
    mask[20, 40] = 1  # row 20 lies in tile rows 0 and 1, column 40 in tile columns 1 and 2
    assert grid.touched(mask).tolist() == [1, 2, 4, 5]


# files


def _tiled(tmp_path, grid=None, arch=ARCH, name="t.safetensors", **meta):
    grid = grid or TileGrid((64, 64), 32, 4)
    params = _params(grid, arch, dtype=torch.float32)
    path = tmp_path / name
    save_tiled(path, params, arch, grid, **meta)
    return path, params


def test_tiled_file_round_trip(tmp_path):
    grid = TileGrid((64, 96), 32, 4)
    path, params = _tiled(tmp_path, grid, source="photo.png", psnr=31.25, fit={"steps": 5})
    inr = load_inr(path)
    assert inr.meta["format"] == "gmn-inr-tiled" and inr.grid == grid and inr.arch == ARCH
    assert inr.n == grid.count and inr.image_size == (64, 96)
    assert all(torch.equal(a, b) for a, b in zip(inr.params, params))
    assert inr.meta["source"] == "photo.png" and inr.meta["psnr"] == 31.25 and inr.meta["fit"] == {"steps": 5}
    assert inr.meta["image_size"] == [64, 96] and inr.meta["grid"] == grid.to_dict()
    torch.testing.assert_close(render_tiles(inr.params, inr.arch, inr.grid), render_tiles(params, ARCH, grid))


def test_one_by_one_grid_saves_a_plain_inr_file(tmp_path):
    grid = TileGrid.single(32)
    path, params = _tiled(tmp_path, grid, source="small")
    inr = load_inr(path)
    assert inr.meta["format"] == "gmn-inr" and "grid" not in inr.meta
    assert inr.grid == grid and inr.n == 1
    assert all(torch.equal(a, b) for a, b in zip(inr.params, params))
    from safetensors.torch import load_file

    assert load_file(str(path))["layers.0.weight"].shape == (8, 2)  # no leading stack axis


def test_tile_state_dict_is_a_plain_sirennet(tmp_path):
    from siren_pytorch import SirenNet

    path, params = _tiled(tmp_path)
    inr = load_inr(path)
    x = torch.rand(11, 2) * 2 - 1
    for i in (0, 4, inr.n - 1):
        net = SirenNet(ARCH.dim_in, ARCH.hidden, ARCH.dim_out, ARCH.layers, w0=30.0, w0_initial=30.0)
        net.load_state_dict(tile_state_dict(inr, i))
        with torch.no_grad():
            torch.testing.assert_close(net(x) + 0.5, forward(select(params, i), ARCH, x)[0])
    with pytest.raises(IndexError):
        tile_state_dict(inr, inr.n)


def _write_tiled(tmp_path, n=9, grid=None, image_size=None, arch=None, name="bad.safetensors"):
    grid = grid if grid is not None else {"image_size": [64, 64], "tile": 32, "overlap": 4, "rows": 3, "cols": 3}
    arch = arch if arch is not None else ARCH.to_dict()
    tensors = {k: t.float() for k, t in zip(ARCH.param_names(), init_params(ARCH, 1))}
    tensors = {k: t.expand(n, *t.shape[1:]).contiguous() for k, t in tensors.items()}
    meta = {"format": "gmn-inr-tiled", "version": "1", "arch": json.dumps(arch), "coords": COORDS,
            "output": OUTPUT, "channels": "3", "grid": json.dumps(grid),
            "image_size": json.dumps(image_size if image_size is not None else grid.get("image_size"))}
    path = tmp_path / name
    save_file(tensors, str(path), metadata=meta)
    return path


def test_hand_written_tiled_file_loads(tmp_path):
    inr = load_inr(_write_tiled(tmp_path))  # the crafted format itself is valid
    assert inr.grid == TileGrid((64, 64), 32, 4) and inr.n == 9


@pytest.mark.parametrize("case, msg", [
    (dict(n=4), "9 tiles, the file holds 4"),
    (dict(grid={"image_size": [64, 64], "tile": 32, "overlap": 32}), "overlap"),
    (dict(grid={"image_size": [64, 64], "tile": 32, "overlap": 4, "rows": 2, "cols": 3}), "tiles"),
    (dict(grid={"image_size": [64], "tile": 32}, image_size=[64, 64]), "grid image_size must be"),
    (dict(grid={"tile": 32, "overlap": 4}, image_size=[64, 64]), "lacks 'image_size'"),
    (dict(grid=[64, 64], image_size=[64, 64]), "without valid 'grid'"),
    (dict(image_size=[0, 0]), "image_size"),
    (dict(image_size=[100000, 100000]), "image_size"),
    (dict(grid={"image_size": [0, 0], "tile": 32, "overlap": 4}, image_size=[64, 64]), "image height"),
    (dict(grid={"image_size": [100000, 100000], "tile": 32, "overlap": 4}, image_size=[64, 64]), "4096"),
    (dict(arch={**ARCH.to_dict(), "w0": math.nan}), "w0"),
    (dict(arch={**ARCH.to_dict(), "w0_initial": math.inf}), "w0_initial"),
])
def test_bad_tiled_files_raise_one_line(tmp_path, case, msg):
    path = _write_tiled(tmp_path, **case)
    with pytest.raises(InrFileError, match=msg) as e:
        load_inr(path)
    assert "\n" not in str(e.value) and path.name in str(e.value)


def test_old_single_inr_files_load_with_a_one_by_one_grid():
    from pathlib import Path

    files = sorted((Path(__file__).resolve().parents[2] / "assets" / "examples").glob("mnist-*.safetensors"))
    assert len(files) >= 4  # the bundled digits: single-INR files in the format every earlier version wrote
    for f in files:
        inr = load_inr(f)
        assert inr.meta["format"] == "gmn-inr" and inr.n == 1
        size = tuple(inr.meta["image_size"])
        assert inr.grid == TileGrid.single(size) and inr.grid.is_single and inr.image_size == size
        torch.testing.assert_close(render_tiles(inr.params, inr.arch, inr.grid, 24), render(inr.params, inr.arch, 24))


# fitting


def test_fit_photo_small_colour_image():
    g = torch.Generator().manual_seed(0)
    r, c = torch.meshgrid(torch.linspace(0, 1, 64), torch.linspace(0, 1, 64), indexing="ij")
    image = torch.stack([r, c, 0.5 * (r + c)], -1) * 0.8 + 0.1 + 0.02 * torch.randn(64, 64, 3, generator=g)
    image = image.clamp(0, 1)
    grid = TileGrid((64, 64), 32, 4)
    arch = SirenArch(hidden=16, dim_out=3)
    res = fit_photo(image, arch, grid, FitRecipe(steps=40, lr=3e-3, target_psnr=None), seed=0)
    assert res.grid == grid and res.params[0].shape[0] == 9 and res.tile_psnr.shape == (9,)
    whole = render_tiles(res.params, arch, grid)[0]
    mse = (whole - image).pow(2).mean()
    assert res.psnr == pytest.approx(float(-10 * torch.log10(mse)), abs=1e-4)  # PSNR of the blended render
    assert res.psnr > 25, res.psnr
    flat = float(-10 * torch.log10((image - image.mean((0, 1))).pow(2).mean()))
    assert res.psnr > flat + 10  # far better than the mean colour
    with pytest.raises(TileGridError, match="grid expects"):
        fit_photo(image[:48], arch, grid, FitRecipe(steps=1))


def test_fit_photo_progress_is_the_whole_photo_and_workers_do_not_change_the_result():
    g = torch.Generator().manual_seed(1)
    image = (0.5 + 0.3 * torch.sin(torch.linspace(0, 9, 60))[:, None, None] * torch.rand(1, 44, 3, generator=g))
    grid, arch = TileGrid((60, 44), 16, 2), SirenArch(hidden=8, dim_out=3)
    recipe = FitRecipe(steps=12, lr=4e-3, target_psnr=None)
    seen = []
    one = fit_photo(image, arch, grid, recipe, seed=3, callback=lambda step, p: seen.append((step, p.clone())))
    steps = [s for s, _ in seen]
    assert steps == sorted(set(steps)) and steps[-1] == recipe.steps - 1 and seen[-1][1].shape == (1,)
    whole = -10 * torch.log10((10 ** (-one.tile_psnr / 10)).mean())  # the mean MSE over every tile's window
    assert float(seen[-1][1]) == pytest.approx(float(whole), abs=1e-4)
    assert abs(float(seen[-1][1]) - float(one.tile_psnr[0])) > 1e-3  # not one tile's figure
    two = fit_photo(image, arch, grid, recipe, seed=3, workers=2)
    for a, b in zip(one.params, two.params):
        torch.testing.assert_close(a, b, rtol=1e-5, atol=1e-6)


def test_cli_progressive_fit_writes_a_preview_then_the_full_size(tmp_path, capsys):
    from inr.__main__ import main

    rng = np.random.default_rng(3)
    Image.fromarray((rng.random((60, 300, 3)) * 255).astype(np.uint8)).save(tmp_path / "wide.png")
    out = tmp_path / "wide.safetensors"
    assert main(["fit", str(tmp_path / "wide.png"), "-o", str(out), "--preview", "--steps", "3", "--hidden", "8"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 2 and "wide.preview.safetensors" in lines[0] and lines[1].startswith(str(out))
    preview, full = load_inr(tmp_path / "wide.preview.safetensors"), load_inr(out)
    assert preview.grid.image_size == (51, 256) and full.grid.image_size == (60, 300)  # native after the preview
    assert preview.arch == full.arch and preview.meta["source_size"] == full.meta["source_size"]


def test_render_keeps_the_photos_aspect(tmp_path):
    from inr.__main__ import main

    arch = SirenArch(hidden=4, dim_out=3)
    for grid, meta in ((TileGrid.for_image((500, 741)), {}), (TileGrid.for_image((173, 256)),
                                                              {"source_size": [500, 741]})):
        out = tmp_path / "photo.safetensors"
        save_tiled(out, init_params(arch, grid.count), arch, grid, **meta)
        assert main(["render", str(out), "-o", str(tmp_path / "r.png"), "--size", "741"]) == 0
        assert Image.open(tmp_path / "r.png").size == (741, 500)  # not 741×501 (173 / 256 · 741 = 500.8)


def test_plan_fit():
    grid, recipe = plan_fit(28, 28, 1)
    assert grid == TileGrid.single(28) and recipe is ZOO_RECIPE
    grid, recipe = plan_fit(600, 400, 3)  # native resolution by default
    assert recipe is TILE_RECIPE and not grid.is_single
    assert grid.image_size == working_size(600, 400) == (600, 400)
    assert working_size(1411, 2000) == (722, 1024)  # above the limit: the longer side downscaled to 1024
    assert grid.tile == 32 and grid.overlap == 4
    grid, recipe = plan_fit(400, 600, 3, size=128)
    assert grid.image_size == (85, 128) and recipe is TILE_RECIPE
    grid, recipe = plan_fit(600, 400, 3, tile=0)
    assert grid.is_single and grid.image_size == (256, 256) and recipe is LARGE_RECIPE
    grid, recipe = plan_fit(20, 20, 3)  # a small colour image is a colour tile
    assert grid == TileGrid.single(20) and recipe is TILE_RECIPE
    with pytest.raises(TileGridError, match="size"):
        working_size(600, 400, 100000)


def test_plan_image_channels_and_notices():
    from inr.tiles import plan_image

    plan = plan_image(28, 28, 1, size=64)  # a digit asked at 64 px is tiles, so RGB tiles
    assert not plan.grid.is_single and plan.channels == 3 and plan.grid.image_size == (64, 64)
    plan = plan_image(308, 308, 1, size=20)  # a gray photo asked at 20 px is one gray SIREN (zoo recipe)
    assert plan.grid == TileGrid.single(20) and plan.channels == 1 and plan.recipe is ZOO_RECIPE
    assert plan_image(308, 308, 1, requested_channels=1).channels == 1  # asked gray: gray tiles
    plan = plan_image(1500, 2000, 3)
    assert plan.grid.image_size == (768, 1024) and len(plan.notices) == 1
    assert "over the 1024 px limit: downscaled to 1024×768" in plan.notices[0]
    assert plan_image(500, 741, 3).notices == () and plan_image(500, 741, 3).grid.image_size == (500, 741)
    img = np.random.default_rng(0).random((40, 60, 1)).astype(np.float32)
    target = plan_image(40, 60, 1).target(img)  # native size, gray as R = G = B
    assert target.shape == (40, 60, 3) and torch.equal(target[..., 0], target[..., 2])
    np.testing.assert_allclose(target[..., 1].numpy(), img[..., 0], atol=1e-6)


def test_panorama_plans_keep_a_tile_on_the_shorter_side_and_say_how_to_raise_it():
    """A 3000×400 panorama works at 1024×137 by default; asked at 256 it is 256×34 and the notice says how to
    raise the working size; a 4000×60 strip keeps one 32 px tile on its shorter side, which takes the longer
    side past 1024 px, so it is squeezed to 1024×32 and the notice says so (sizes written width×height)."""
    from inr.tiles import plan_image

    plan = plan_image(400, 3000, 3)
    assert plan.grid.image_size == (137, 1024) and plan.notices == (
        "the image is 3000×400, over the 1024 px limit: downscaled to 1024×137 (aspect kept)",)
    plan = plan_image(400, 3000, 3, size=256)
    assert plan.grid.image_size == (34, 256) and len(plan.notices) == 1
    assert plan.notices[0].startswith("the image is 3000×400, fitted at 256×34 (aspect kept); its shorter side "
                                      "is only 34 px: raise the working size")
    assert "--size N up to 1024" in plan.notices[0]
    assert "480 gives 64 px" in plan.notices[0] and plan_image(400, 3000, 3, size=480).grid.image_size == (64, 480)
    for size in (None, 256):
        plan = plan_image(60, 4000, 1, size=size)
        assert plan.grid.image_size == (32, 1024) and plan.channels == 3 and len(plan.notices) == 2
        assert "1024×32: squeezed (aspect 67:1 to 32:1)" in plan.notices[1] and "aspect kept" not in plan.notices[1]
        assert "crop it to at most 32:1" in plan.notices[1]
    assert "crop it to a less elongated part" in plan_image(40, 1200, 3).notices[0]  # 1024×34 at the limit


@pytest.mark.parametrize("side,size,channels,tiled", [(28, 64, 3, True), (308, 20, 1, False)])
def test_cli_and_app_make_the_same_plan(tmp_path, side, size, channels, tiled):
    """The two cases where the CLI and the app used to disagree (the CLI turned gray into RGB before
    planning, the app after): both now fit through `inr.tiles.plan_image`."""
    from app.sources import fit_image
    from inr.__main__ import main

    rng = np.random.default_rng(side)
    png = tmp_path / f"gray{side}.png"
    Image.fromarray((rng.random((side, side)) * 255).astype(np.uint8)).save(png)
    out = tmp_path / "cli.safetensors"
    assert main(["fit", str(png), "-o", str(out), "--size", str(size), "--steps", "2", "--hidden", "8", "-q"]) == 0
    cli = load_inr(out)
    session, _ = fit_image(str(png), hidden=8, resolution=size, steps=2)
    assert cli.arch == session.arch and cli.arch.dim_out == channels
    assert (cli.grid or TileGrid.single(size)) == session.grid and session.grid.is_single is not tiled


def test_tiles_zoo_is_fitted_by_the_tile_recipe(tmp_path):
    from inr.zoo import build_zoo, load_zoo, recipe_for

    assert recipe_for("tiles") is TILE_RECIPE and recipe_for("mnist5k") is ZOO_RECIPE
    assert plan_fit(600, 400, 3)[1] is recipe_for("tiles")  # the app/CLI and the zoo fit by one recipe
    index = build_zoo("tiles", "val", tmp_path, arch=ARCH, limit=4, shard_size=4, steps=5, progress=False,
                      log=lambda *_: None)
    want = {**TILE_RECIPE.replace(steps=5).to_dict(), "seed": 0}
    assert index["fit"] == want
    assert json.loads((tmp_path / "zoo.json").read_text())["fit"] == want
    assert want["target_psnr"] == 40.0 and want["lr"] == TILE_RECIPE.lr
    params, arch, images, psnrs = load_zoo(tmp_path)
    assert arch == ARCH and images.shape == (4, 32, 32, 3) and psnrs.shape == (4,)


# the tiles dataset


def _boxes_overlap(a, b):
    return a[0] < b[1] and b[0] < a[1] and a[2] < b[3] and b[2] < a[3]


def test_tiles_dataset_regions_are_held_out(monkeypatch):
    photos = datasets._photos()
    for i, photo in enumerate(photos):
        regions = datasets._regions(i)
        sets = [set(regions[s]) for s in ("train", "val", "test")]
        assert sets[0] | sets[1] | sets[2] == set(range(datasets.GRID ** 2))
        assert not (sets[0] & sets[1]) and not (sets[0] & sets[2]) and not (sets[1] & sets[2])
        assert len(sets[1]) == len(sets[2]) == 2
        boxes = [datasets._region_box(photo.shape, k) for k in range(datasets.GRID ** 2)]
        for a in range(len(boxes)):  # the regions partition the photo: distinct regions never overlap
            assert all(not _boxes_overlap(boxes[a], boxes[b]) for b in range(a + 1, len(boxes)))
    # every training crop lies inside a training region and touches no validation or test region:
    # record where each crop handed to the resizer lies in its photo (it is a view of the photo)
    monkeypatch.setattr(datasets, "_photos", lambda: photos)
    crops = []
    resize = datasets._box_resize

    def spy(img, size):
        i = next(k for k, p in enumerate(photos) if img.base is p)
        offset = img.__array_interface__["data"][0] - photos[i].__array_interface__["data"][0]
        r, c = divmod(offset // photos[i].strides[1], photos[i].shape[1])
        crops.append((i, (r, r + img.shape[0], c, c + img.shape[1])))
        return resize(img, size)

    monkeypatch.setattr(datasets, "_box_resize", spy)
    tiles = datasets._tiles_train.__wrapped__(600, 32)
    assert len(crops) >= 600 and tiles.shape == (600, 32, 32, 3)
    for i, box in crops:
        regions, shape = datasets._regions(i), photos[i].shape
        inside = [datasets._region_box(shape, k) for k in regions["train"]]
        assert any(b[0] <= box[0] and box[1] <= b[1] and b[2] <= box[2] and box[3] <= b[3] for b in inside)
        for k in regions["val"] + regions["test"]:
            assert not _boxes_overlap(box, datasets._region_box(shape, k)), (i, box, k)
    # held-out tiles are cut only inside their own split's regions
    asked = []
    region_box = datasets._region_box
    monkeypatch.setattr(datasets, "_region_box", lambda shape, k: asked.append(k) or region_box(shape, k))
    for split in ("val", "test"):
        asked.clear()
        datasets._tiles_heldout.__wrapped__(split, 32)
        want = [k for i in range(len(photos)) for k in datasets._regions(i)[split]]
        assert asked == want


def test_tiles_dataset_shapes_and_determinism():
    val, test = datasets.tiles("val"), datasets.tiles("test")
    for t in (val, test):
        assert t.dim() == 4 and t.shape[1:] == (32, 32, 3) and len(t) > 50 and t.dtype == torch.float32
        assert 0 <= t.min() and t.max() <= 1
    assert torch.equal(val, torch.from_numpy(datasets._tiles_heldout.__wrapped__("val", 32)))
    train = datasets.tiles("train")
    assert train.shape == (datasets.TILES_TRAIN, 32, 32, 3) and len(train) >= 20000
    assert torch.equal(train[:300], torch.from_numpy(datasets._tiles_train.__wrapped__(300, 32)))
    assert 0 <= train.min() and train.max() <= 1 and (train.flatten(1).std(1) >= 0.03).all()
    gray = (train[..., 0] == train[..., 1]) & (train[..., 1] == train[..., 2])
    assert 0.1 < gray.flatten(1).all(1).float().mean() < 0.3  # about 1 in 5 turned gray
    with pytest.raises(ValueError, match="unknown split"):
        datasets.tiles("dev")


# CLI


def run(*args):
    return subprocess.run([sys.executable, "-m", "inr", *map(str, args)], capture_output=True, text=True, timeout=180)


def _one_line_error(r, msg):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and msg in lines[0], r.stderr


def test_cli_fit_render_info_tiled(tmp_path):
    rng = np.random.default_rng(0)
    img = (np.linspace(0, 1, 80)[None, :, None] * np.linspace(0.3, 1, 60)[:, None, None] * [255, 200, 120]
           + rng.random((60, 80, 3)) * 20).clip(0, 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "photo.png")  # 80 wide, 60 tall
    out = tmp_path / "photo.safetensors"
    r = run("fit", tmp_path / "photo.png", "-o", out, "--size", "64", "--steps", "5", "--hidden", "8", "-q",
            "--threads", "1")
    assert r.returncode == 0, r.stderr
    inr = load_inr(out)
    assert inr.meta["format"] == "gmn-inr-tiled" and inr.grid == TileGrid((48, 64), 32, 4)
    assert inr.arch == ARCH and inr.n == 6 and inr.meta["fit"]["steps"] == 5
    r = run("info", out)
    assert r.returncode == 0, r.stderr
    assert "grid: 3×2 tiles of 32² px (overlap 4 px) over 64×48 px" in r.stdout and "INRs in file: 6" in r.stdout
    r = run("render", out, "-o", tmp_path / "big.png", "--size", "128")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "big.png").size == (128, 96)
    # bad requests: one line, exit 2, nothing half-written left behind
    (tmp_path / "dir.safetensors").mkdir()
    _one_line_error(run("fit", tmp_path / "photo.png", "-o", tmp_path / "dir.safetensors"), "is a folder")
    _one_line_error(run("render", out, "-o", tmp_path, "--size", "64"), "is a folder")
    for r in (run("render", out, "-o", tmp_path / "r.png", "--size", "-1"),  # argparse's refusal (inr.checks)
              run("render", out, "-o", tmp_path / "r.png", "--size", "100000"),
              run("fit", tmp_path / "photo.png", "-o", tmp_path / "f.safetensors", "--size", "100000")):
        assert r.returncode == 2 and "error: argument --size" in r.stderr and "Traceback" not in r.stderr
    _one_line_error(run("fit", tmp_path / "photo.png", "-o", tmp_path / "f.safetensors", "--overlap", "40",
                        "--tile", "32"), "overlap")
    assert not (tmp_path / "r.png").exists() and not (tmp_path / "f.safetensors").exists()
    assert not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))
    r = run("fit", tmp_path / "photo.png", "-o", tmp_path / "f.safetensors", "--size", "-3")
    assert r.returncode == 2 and "error: argument --size" in r.stderr  # argparse's own refusal
