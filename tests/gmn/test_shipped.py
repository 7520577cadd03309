"""The shipped editors in assets/editors: small, carded, and they do their edit on the bundled examples
(the MNIST examples are test digits the editors never saw; test-split figures are in BENCHMARKS.md)."""

import json
from pathlib import Path

import pytest
import torch

from gmn.edit import edit
from gmn.editors import load_editor
from gmn.objectives import FILTERS
from inr.files import load_inr
from inr.tiles import render_tiles

ASSETS = Path(__file__).resolve().parents[2] / "assets"
SHIPPED = sorted((ASSETS / "editors").glob("*.safetensors"))
EXAMPLES = [load_inr(p, allow_stack=False) for p in sorted((ASSETS / "examples").glob("*.safetensors"))]


def test_there_are_shipped_editors():
    tasks = {json.loads(p.with_suffix(".json").read_text())["task"] for p in SHIPPED}
    assert {"dilate", "erode", "contrast", "paint"} <= tasks


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_shipped_editor_is_small_carded_and_edits(path):
    assert path.stat().st_size < 5e6
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["reproduce"].startswith("python -m") and card["metrics"]["test_mse"] > 0
    editor, _ = load_editor(path)
    arch = editor.config.siren
    examples = [e for e in EXAMPLES if (e.arch.layers, e.arch.dim_out) == (arch.layers, arch.dim_out)]
    # every shipped editor has a bundled example to show it on (the app's examples)
    assert examples, f"no bundled example with {arch.layers} sine layers and {arch.dim_out} channels"
    before, after = [], []
    for i, ex in enumerate(examples):  # digits are one SIREN, photos a grid of tiles: `edit` takes both
        h, w = ex.grid.image_size
        if editor.config.task in FILTERS:
            res = edit(ex, editor, points=64, seed=i)
        else:  # paint a centred rectangle in a colour far from the image there
            mask = torch.zeros(h, w, 1)
            mask[h // 4: h // 2, w // 4: 3 * w // 4] = 1
            colour = torch.full((ex.arch.dim_out,), 0.9)
            res = edit(ex, editor, points=64, mask=mask, paint=colour, seed=i)
        orig = render_tiles(ex.params, ex.arch, ex.grid)[0]
        assert all(torch.isfinite(t).all() for t in res.params)
        before.append((orig - res.target).pow(2).mean().item())
        after.append(res.mse)
    assert sum(after) < 0.8 * sum(before), (before, after)


OPTIMIZERS = sorted(p for p in (ASSETS / "optimizers").glob("*.safetensors") if not p.stem.startswith("lm-"))
LM_OPTIMIZERS = sorted((ASSETS / "optimizers").glob("lm-*.safetensors"))  # learned optimizers for small GPTs


@pytest.mark.parametrize("path", LM_OPTIMIZERS, ids=[p.stem for p in LM_OPTIMIZERS])
def test_shipped_lm_optimizer_is_small_carded_and_loads(path):
    """A shipped optimizer for small GPTs is a small safetensors file whose JSON card names its command, data and
    measured metrics, and it loads through its own reader (not the SIREN optimizer's)."""
    from gmn.lm_optim import load_lm_optimizer

    assert path.stat().st_size < 5e6
    card = json.loads(path.with_suffix(".json").read_text())
    assert "python -m" in card["command"] and card["data"] and card["metrics"]["steps_vs_adam_median"] > 0
    net, meta = load_lm_optimizer(path)
    assert net.num_parameters() == card["parameters"] == meta["parameters"]


@pytest.mark.parametrize("path", OPTIMIZERS, ids=[p.stem for p in OPTIMIZERS])
def test_shipped_optimizer_is_small_carded_and_beats_adam_on_the_examples(path):
    """Each shipped learned optimizer says which images it is for, and on the bundled examples of that kind
    (test images it never saw) it reaches a higher PSNR than Adam at its tuned lr in the same 200 steps."""
    from PIL import Image

    from gmn.optim import fit_learned, load_optimizer
    from inr.fit import fit
    from inr.images import load_image, to_square
    from inr.siren import SirenArch
    from inr.zoo import ZOO_LR

    assert path.stat().st_size < 5e6
    card = json.loads(path.with_suffix(".json").read_text())
    assert card["reproduce"].startswith("python -m") and card["metrics"] and card["channels"]
    net, _ = load_optimizer(path)
    pngs = [p for p in sorted((ASSETS / "examples").glob("*.png")) if len(Image.open(p).getbands()) in card["channels"]]
    assert pngs, "no bundled example of the kind this optimizer is meant for"
    for png in pngs:  # at 32² at most, the size of the images it was meta-trained on
        img = load_image(png)
        img = to_square(img, min(32, img.shape[0]))
        arch = SirenArch(hidden=32, dim_out=img.shape[-1])
        learned, used = fit_learned(img, arch, net, steps=200, notice=lambda m: None)
        adam = fit(img, arch, steps=200, lr=ZOO_LR)  # Adam's lr tuned on val digits and patches (BENCHMARKS.md)
        assert used == "learned" and learned.psnr.item() > adam.psnr.item(), (png.name, learned.psnr, adam.psnr)


def test_an_editor_refuses_widths_it_was_not_validated_on():
    """The shipped neural-graph `blur` transferred badly to width-64 tiles (1.67× its width-32 test MSE, card):
    it edits width-32 SIRENs and refuses others in one line; the registry says so in plain words."""
    from gmn.edit import describe_editor, resolve_editor
    from gmn.editors import EditorError
    from inr.siren import SirenArch

    path = resolve_editor("blur")
    editor, card = load_editor(path)
    assert editor.config.widths == [32] and card["widths"]["validated"] == [32]
    editor.check(SirenArch(hidden=32, dim_out=3))
    with pytest.raises(EditorError, match="validated on SIRENs of width 32 only.*width 64") as e:
        editor.check(SirenArch(hidden=64, dim_out=3))
    assert "\n" not in str(e.value)
    assert "width 32 only" in describe_editor(json.loads(path.with_suffix(".json").read_text()))
    contrast, _ = load_editor(resolve_editor("contrast"))
    contrast.check(SirenArch(hidden=64, dim_out=3))  # validated at 64 too (1.16×): no restriction


@pytest.mark.parametrize("path", SHIPPED, ids=[p.stem for p in SHIPPED])
def test_every_shipped_editor_runs_at_a_second_width(path):
    """Every shipped editor (each kind: gmn, ng+gmn, ws; one and several rounds) applied to width-64 SIRENs (it
    was trained on width 32) — one SIREN for gray, 2×2 tiles for colour — runs and gives a finite edit of the
    INR's own shapes. One validated at width 32 only refuses width 64 in one line, and its network still runs."""
    from dataclasses import replace

    from gmn.edit import edit_inr
    from gmn.editors import EditorError
    from inr.siren import init_params
    from inr.tiles import TileGrid

    editor, _ = load_editor(path)
    arch = replace(editor.config.siren, hidden=64)
    grid = TileGrid.single(28) if arch.dim_out == 1 else TileGrid((60, 60), 32, 4)
    params = init_params(arch, grid.count, generator=torch.Generator().manual_seed(0))
    h, w = grid.image_size
    kw = {}
    if editor.config.task not in FILTERS:
        mask = torch.zeros(h, w, 1)
        mask[h // 4: 3 * h // 4, w // 3: 2 * w // 3] = 1
        kw = dict(mask=mask, paint=torch.full((arch.dim_out,), 0.9))
    if editor.config.widths and 64 not in editor.config.widths:
        with pytest.raises(EditorError, match="width 64") as e:
            edit_inr(params, arch, editor, grid=grid, points=32, **kw)
        assert "\n" not in str(e.value)
        editor.config = replace(editor.config, widths=None)  # the network itself still runs at width 64
    res = edit_inr(params, arch, editor, grid=grid, points=32, **kw)
    k = editor.config.copies  # OCE: the edited INR is k× as wide
    assert res.arch.hidden == 64 * k and tuple(res.params[0].shape) == (grid.count, 64 * k, 2)
    assert all(torch.isfinite(t).all() for t in res.params + res.dtheta) and res.mse == res.mse
    assert any(d.abs().max() > 0 for d in res.dtheta)
