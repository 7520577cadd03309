"""Editing tiled INRs (gmn.edit.edit_inr with a grid): one batched editor call over the tiles, the
objective from the whole image, paint only where the mask is, clear refusals, and the CLI."""

import json
import subprocess
import sys

import pytest
import torch

from gmn.data import make_batch
from gmn.edit import edit, edit_inr, resolve_editor
from gmn.editors import KINDS, Editor, EditorConfig, EditorError, load_editor
from gmn.objectives import EditTarget, filter_images
from inr.files import load_inr, save_tiled
from inr.siren import SirenArch, coordinate_grid, init_params, select
from inr.tiles import TileGrid, render_tiles

ARCH = SirenArch(dim_out=3)  # 2→32→32→3, the shipped colour editors' SIRENs
GRID = TileGrid((64, 64), 32, 4)  # starts 0, 16, 32: 3×3 tiles


def _params(n=GRID.count, arch=ARCH, seed=0):
    return init_params(arch, n, generator=torch.Generator().manual_seed(seed))


@pytest.fixture(scope="module")
def contrast():
    return load_editor(resolve_editor("contrast"))[0]


@pytest.fixture(scope="module")
def paint():
    return load_editor(resolve_editor("paint-color"))[0]


def _one_line(e):
    assert "\n" not in str(e.value) and str(e.value)


def test_batched_tile_edit_equals_editing_tiles_one_by_one(contrast):
    assert contrast.config.task == "contrast" and contrast.config.siren == ARCH and GRID.shape == (3, 3)
    params = _params()
    points, seed = 24, 5
    res = edit_inr(params, ARCH, contrast, grid=GRID, points=points, seed=seed)
    assert res.tiles.tolist() == list(range(9)) and res.size == (64, 64)
    # the per-tile batch exactly as edit_inr builds it: whole-image target, cut into the tiles' windows
    whole = filter_images(render_tiles(params, ARCH, GRID), "contrast")
    obj = EditTarget(GRID.cut(whole)[0], torch.ones(9, 32, 32, 1))
    batch = make_batch(params, obj, coordinate_grid(32, 32), points, torch.Generator().manual_seed(seed))
    assert batch.x.shape == (9, points, 2)
    with torch.no_grad():
        together = contrast(batch.params, ARCH, batch.x, batch.target_pts)
        alone = [contrast(select(params, i), ARCH, batch.x[i : i + 1], batch.target_pts[i : i + 1]) for i in range(9)]
    for k, (t, name) in enumerate(zip(together, ARCH.param_names())):
        one_by_one = torch.cat([a[k] for a in alone])
        torch.testing.assert_close(t, one_by_one, rtol=1e-4, atol=1e-6, msg=name)
        torch.testing.assert_close(res.dtheta[k], t, rtol=1e-5, atol=1e-7, msg=name)
    assert any(d.abs().max() > 0 for d in res.dtheta)
    # the reported points are the tiles' points on the whole image, and the targets there are the whole target's
    assert res.points.shape == (9 * points, 2) and res.points.abs().max() < 1
    pix = ((res.points + 1) / 2 * 64 - 0.5).round().long()  # pixel (row, col) of each point
    torch.testing.assert_close(((pix.double() + 0.5) / 64 * 2 - 1).float(), res.points, rtol=0, atol=1e-5)
    torch.testing.assert_close(res.target[pix[:, 0], pix[:, 1]], batch.target_pts.reshape(-1, 3))


def test_target_is_the_whole_image_filter_not_per_tile(contrast):
    params = _params(seed=1)
    res = edit_inr(params, ARCH, contrast, grid=GRID, points=16)
    img = render_tiles(params, ARCH, GRID)
    whole = filter_images(img, "contrast")[0]
    torch.testing.assert_close(res.target, whole, rtol=0, atol=0)
    per_tile = filter_images(GRID.cut(img)[0], "contrast")  # CLAHE of each 32×32 window alone
    assert (GRID.cut(res.target[None])[0] - per_tile).abs().max() > 0.05
    edited = render_tiles(res.params, ARCH, GRID)
    assert res.mse == pytest.approx((edited - whole).pow(2).mean().item(), rel=1e-5)


def test_paint_edits_only_the_tiles_the_mask_touches(paint):
    params = _params(seed=2)
    mask = torch.zeros(64, 64, 1)
    mask[2:7, 3:21] = 1  # rows of tile row 0 only; columns 3-20 lie in tile columns 0 and 1
    colour = torch.tensor([1.0, 0.2, 0.1])
    res = edit_inr(params, ARCH, paint, grid=GRID, points=32, mask=mask, paint=colour)
    assert res.tiles.tolist() == GRID.touched(mask).tolist() == [0, 1]
    untouched = [i for i in range(9) if i not in (0, 1)]
    for d, p, q in zip(res.dtheta, res.params, params):
        assert torch.count_nonzero(d[untouched]) == 0
        assert torch.equal(p[untouched], q[untouched])
    assert all(torch.count_nonzero(d[[0, 1]]) > 0 for d in res.dtheta[-2:])
    assert res.points.shape == (2 * 32, 2)
    torch.testing.assert_close(res.target[mask[..., 0] > 0.5], colour.expand(int(mask.sum()), 3))
    with pytest.raises(EditorError, match="mask is empty") as e:
        edit_inr(params, ARCH, paint, grid=GRID, mask=torch.zeros(64, 64, 1), paint=colour)
    _one_line(e)
    with pytest.raises(EditorError, match="needs a painted mask"):
        edit_inr(params, ARCH, paint, grid=GRID)
    with pytest.raises(EditorError, match="mask is"):
        edit_inr(params, ARCH, paint, grid=GRID, mask=torch.ones(32, 32, 1), paint=colour)


def test_refusals(contrast, tmp_path):
    deep = SirenArch(layers=3, dim_out=3)
    with pytest.raises(EditorError, match="INR has 4 weight layers") as e:
        edit_inr(_params(arch=deep), deep, contrast, grid=GRID)
    _one_line(e)
    with pytest.raises(EditorError, match="holds 4 SIRENs") as e:
        edit_inr(_params(n=4), ARCH, contrast, grid=GRID)
    _one_line(e)
    with pytest.raises(EditorError, match="at least 1"):
        edit_inr(_params(), ARCH, contrast, grid=GRID, points=0)
    gray = SirenArch()
    with pytest.raises(EditorError, match="channels"):
        edit_inr(_params(arch=gray), gray, contrast, grid=GRID)
    # edit() of a loaded tiled file uses its grid
    save_tiled(tmp_path / "t.safetensors", _params(), ARCH, GRID)
    inr = load_inr(tmp_path / "t.safetensors")
    res = edit(inr, contrast, points=8)
    assert len(res.tiles) == 9 and res.params[0].shape[0] == 9


SMALL = dict(hidden=16, interaction_layers=1, deepsets_layers=1, lowrank=4, theta_channels=4, ws_hidden=8,
             ws_layers=2, pp_dim=16, pp_blocks=1, pp_heads=2)


@pytest.mark.parametrize("task", ["dilate", "paint"])
@pytest.mark.parametrize("kind", [k for k in KINDS if k not in ("mlp", "ws", "ng")])  # ws, ng: no points
def test_every_point_twice_leaves_the_edit_unchanged(kind, task):
    # the editors average over points: a sum would double (or otherwise change) Δθ
    arch = SirenArch(hidden=8, dim_out=3)
    torch.manual_seed(0)
    editor = Editor(EditorConfig(kind=kind, task=task, arch=arch.to_dict(), **SMALL)).double()
    g = torch.Generator().manual_seed(1)
    n, b = 3, 12
    params = init_params(arch, n, generator=g, dtype=torch.float64)
    x = torch.rand(n, b, 2, generator=g, dtype=torch.float64) * 2 - 1
    target = torch.rand(n, b, 3, generator=g, dtype=torch.float64)
    mask = (torch.rand(n, b, 1, generator=g) < 0.5).double() if task == "paint" else None
    editor.fit_norm(params, arch, x, target, mask)
    with torch.no_grad():  # zero-initialised pieces would make the comparison trivial
        for p in editor.parameters():
            p.add_(torch.randn(p.shape, generator=g, dtype=torch.float64) * 0.1)
    editor.eval()
    twice = (lambda t: None if t is None else torch.cat([t, t], 1))
    with torch.no_grad():
        once = editor(params, arch, x, target, mask)
        dup = editor(params, arch, twice(x), twice(target), twice(mask))
        other = editor(params, arch, x[:, : b // 2], target[:, : b // 2], None if mask is None else mask[:, : b // 2])
    assert max(d.abs().max().item() for d in once) > 1e-6
    for a, c, name in zip(once, dup, arch.param_names()):
        torch.testing.assert_close(c, a, rtol=1e-6, atol=1e-5 * max(1.0, a.abs().max().item()), msg=name)
    # and the points do matter: a different set of points gives a different edit
    assert max((a - o).abs().max().item() for a, o in zip(once, other)) > 1e-8


# CLI


def run(*args):
    return subprocess.run([sys.executable, "-m", "gmn", *map(str, args)], capture_output=True, text=True,
                          timeout=180)


def _error(r, msg):
    """Exit 2 with the error on one line: `error: ...` alone, or argparse's usage then its `...: error: ...` line
    for a value its type check refuses (as tests/gmn/test_gmn_cli.py accepts)."""
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert "Traceback" not in r.stderr and "error:" in lines[-1] and msg in lines[-1], r.stderr
    assert len(lines) == 1 or lines[0].startswith("usage:"), r.stderr


def test_cli_edit_tiled(tmp_path):
    src = tmp_path / "tiled.safetensors"
    params = _params(seed=3)
    save_tiled(src, params, ARCH, GRID, source="random")
    out = tmp_path / "out.safetensors"
    r = run("edit", src, "--editor", "contrast", "--points", "16", "--threads", "1", "-o", out)
    assert r.returncode == 0, r.stderr
    assert "edit of 9 SIREN(s)" in r.stdout
    edited = load_inr(out)
    assert edited.meta["format"] == "gmn-inr-tiled" and edited.grid == GRID and edited.arch == ARCH
    assert json.loads(edited.meta["edit"])["points"] == 9 * 16 and "contrast" in edited.meta["source"]
    assert not torch.equal(edited.params[-1], params[-1])
    bad = tmp_path / "bad.safetensors"
    _error(run("edit", src, "--editor", "contrast", "--points", "0", "-o", bad), "--points")
    _error(run("edit", src, "--editor", "contrast", "--points", "-5", "-o", bad), "--points")
    _error(run("edit", src, "--editor", "contrast", "--size", "-4", "-o", bad), "--size")
    _error(run("edit", src, "--editor", "contrast", "--size", "32", "-o", bad), "single-SIREN")
    _error(run("edit", src, "--editor", "contrast", "-o", tmp_path), "is a folder")
    _error(run("edit", src, "--editor", "dilate", "-o", bad), "channels")
    r = run("edit", src, "--editor", "contrast", "--points", "many", "-o", bad)
    _error(r, "expected an integer from 1 to 4,096, got 'many'")
    assert not bad.exists() and not list(tmp_path.glob("*.tmp")) and not list(tmp_path.glob(".*.tmp"))


def test_an_oce_editor_widens_every_tile_and_the_cli_saves_the_wider_inr(tmp_path):
    """k averaged copies (OCE): every tile of the edited INR is k× as wide, renders as edit_inr measured,
    and `gmn edit` saves it in the tiled format with the wider architecture."""
    torch.manual_seed(0)
    editor = Editor(EditorConfig(kind="ws", task="contrast", arch=ARCH.to_dict(), copies=2, ws_hidden=8,
                                 ws_layers=2, edit_scale_init=0.05)).eval()
    params = _params()
    res = edit_inr(params, ARCH, editor, grid=GRID, points=16)
    assert res.arch.hidden == 2 * ARCH.hidden and res.params[2].shape == (GRID.count, 64, 64)
    out = render_tiles(res.params, res.arch, GRID)
    assert abs((out - res.target).pow(2).mean().item() - res.mse) < 1e-7
    from gmn.editors import save_editor

    save_editor(tmp_path / "oce.safetensors", editor)
    save_tiled(tmp_path / "in.safetensors", params, ARCH, GRID)
    r = subprocess.run([sys.executable, "-m", "gmn", "edit", str(tmp_path / "in.safetensors"), "--editor",
                        str(tmp_path / "oce.safetensors"), "-o", str(tmp_path / "out.safetensors"), "--points", "16"],
                       capture_output=True, text=True)
    assert r.returncode == 0, r.stderr
    assert "2 averaged copies: width 64" in r.stdout
    back = load_inr(tmp_path / "out.safetensors")
    assert back.arch.hidden == 64
    torch.testing.assert_close(render_tiles(back.params, back.arch, back.grid), out, rtol=0, atol=1e-5)


# issue 27: dtype, λ and chunks


def test_edit_follows_float64_parameters_single_and_tiled(contrast, paint):
    """A float64 INR is edited in float64 (grid, targets, points, Δθ), by a float32 shipped editor or a float64
    one, one SIREN or tiles; the result agrees with the float32 edit of the same INR."""
    single = SirenArch(dim_out=3)
    p1 = _params(n=1, arch=single, seed=3)
    cases = [(p1, dict(size=32), contrast), (_params(seed=4), dict(grid=GRID), contrast)]
    mask = torch.zeros(64, 64, 1, dtype=torch.float64)
    mask[10:40, 5:30] = 1
    paint_kw = dict(grid=GRID, mask=mask, paint=torch.tensor([0.9, 0.1, 0.3], dtype=torch.float64))
    cases.append((_params(seed=5), paint_kw, paint))
    for params, kw, editor in cases:
        res32 = edit_inr(params, ARCH, editor, points=24, **kw)
        p64 = [t.double() for t in params]
        res = edit_inr(p64, ARCH, editor, points=24, **kw)
        assert all(t.dtype == torch.float64 for t in res.params + res.dtheta)
        assert res.target.dtype == res.batch.x.dtype == res.batch.target_pts.dtype == res.points.dtype == torch.float64
        assert all(torch.isfinite(t).all() for t in res.params)
        for a, b in zip(res.dtheta, res32.dtheta):
            torch.testing.assert_close(a.float(), b, rtol=1e-3, atol=1e-4 * max(1.0, b.abs().max().item()))
    double = load_editor(resolve_editor("contrast"))[0].double()  # an editor in float64 too
    res = edit_inr([t.double() for t in p1], ARCH, double, size=32, points=24)
    assert all(t.dtype == torch.float64 for t in res.dtheta) and res.mse == res.mse


def test_paint_editor_with_lambda_03_builds_its_paint_target_at_that_lambda():
    """The editor's λ reaches the paint objective edit_inr builds: the per-tile objective carries λ = 0.3, its
    weights are m + 0.3 (1 − m), and the editor's Δθ is the one its own λ = 0.3 objective gives."""
    arch = SirenArch(hidden=8, dim_out=3)
    torch.manual_seed(0)
    editor = Editor(EditorConfig(kind="ws+probe+res", task="paint", arch=arch.to_dict(), lam=0.3, **SMALL))
    params = init_params(arch, GRID.count, generator=torch.Generator().manual_seed(6))
    mask = torch.zeros(64, 64, 1)
    mask[20:44, 20:44] = 1
    res = edit_inr(params, arch, editor, grid=GRID, points=20, mask=mask, paint=torch.tensor([1.0, 0.0, 0.0]))
    obj, b = res.batch.objective, res.batch
    assert obj.lam == 0.3
    torch.testing.assert_close(obj.weight, obj.mask + 0.3 * (1 - obj.mask))
    torch.testing.assert_close(obj.weight_at(b.mask_pts, b.target_pts), b.mask_pts + 0.3 * (1 - b.mask_pts))
    with torch.no_grad():
        at_one = Editor(EditorConfig(kind="ws+probe+res", task="paint", arch=arch.to_dict(), lam=1.0, **SMALL))
        at_one.load_state_dict(editor.state_dict())
        d1 = at_one(b.params, arch, b.x, b.target_pts, b.mask_pts)
    assert max((a[res.tiles] - c).abs().max().item() for a, c in zip(res.dtheta, d1)) > 1e-7


@pytest.mark.parametrize("rows", [3, 4])  # 9 and 16 touched tiles: more than one editor chunk
def test_paint_touching_more_tiles_than_one_chunk_equals_editing_tile_by_tile(paint, rows):
    """A paint edit whose mask touches 9 or 16 tiles (EDIT_CHUNK = 8 per editor forward) gives every tile the Δθ
    the editor gives that tile alone, from its own points, targets and mask values."""
    from gmn.edit import EDIT_CHUNK

    grid = TileGrid((116, 116), 32, 4)  # starts 0, 28, 56, 84: 4×4 tiles
    params = _params(n=16, seed=7)
    mask = torch.zeros(116, 116, 1)
    mask[20 : 28 * rows - 4, 20 : 28 * rows - 4] = 1  # reaches tile row and column rows-1, and no further
    colour = torch.tensor([0.1, 0.8, 0.2])
    res = edit_inr(params, ARCH, paint, grid=grid, points=16, mask=mask, paint=colour, seed=3)
    expect = [r * 4 + c for r in range(rows) for c in range(rows)]
    assert res.tiles.tolist() == expect and len(expect) > EDIT_CHUNK
    b = res.batch
    assert b.mask_pts.shape == (len(expect), 16, 1) and (b.mask_pts.sum(1) > 0).all()
    with torch.no_grad():
        alone = [paint(select(b.params, i), ARCH, b.x[i : i + 1], b.target_pts[i : i + 1], b.mask_pts[i : i + 1])
                 for i in range(len(expect))]
    for k, name in enumerate(ARCH.param_names()):
        one_by_one = torch.cat([a[k] for a in alone])
        torch.testing.assert_close(res.dtheta[k][res.tiles], one_by_one, rtol=1e-4, atol=1e-6, msg=name)
    assert len(res.rounds) == paint.config.rounds
    torch.testing.assert_close(res.rounds[-1][0], res.dtheta[0][res.tiles])
