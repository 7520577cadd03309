"""Recipes (gmn/recipe.py): replaying a recipe equals applying its operations by hand; `python -m gmn apply`
writes one line per input and goes on past a failing one."""

import json

import numpy as np
import pytest
import torch
from PIL import Image

from gmn.__main__ import main
from gmn.edit import edit_inr, resolve_editor
from gmn.editors import EditorError, load_editor
from gmn.recipe import Operation, Recipe, apply_recipe, load_recipe, save_recipe
from inr.files import load_inr, save_tiled
from inr.siren import SirenArch, init_params
from inr.tiles import TileGrid

ARCH = SirenArch(hidden=16, dim_out=3)  # not the editors' default width: they edit any width
GRID = TileGrid((32, 60), 32, 4)  # 1×2 tiles
RECIPE = Recipe((Operation("contrast", strength=0.7, seed=3, points=24), Operation("blur-gmn", strength=1.3, seed=5)))


def _inr():
    return init_params(ARCH, GRID.count, generator=torch.Generator().manual_seed(11))


def test_replaying_a_recipe_equals_applying_its_operations_by_hand():
    params = _inr()
    replayed, arch = apply_recipe(params, ARCH, GRID, RECIPE)
    by_hand, steps = params, []
    for name, strength, seed, points in (("contrast", 0.7, 3, 24), ("blur-gmn", 1.3, 5, None)):
        editor, _ = load_editor(resolve_editor(name))
        by_hand = edit_inr(by_hand, ARCH, editor, grid=GRID, strength=strength, seed=seed, points=points).params
        steps.append(by_hand)
    assert arch == ARCH
    assert all(torch.equal(a, b) for a, b in zip(replayed, by_hand))
    assert not torch.equal(replayed[0], params[0])  # the edits changed the INR
    other, _ = apply_recipe(params, ARCH, GRID, Recipe((Operation("contrast", 0.7, seed=4, points=24),)))
    assert not torch.equal(other[-2], steps[0][-2])  # the seed of the sampled points is part of the operation


def test_recipe_files_and_bad_recipes(tmp_path):
    save_recipe(tmp_path / "r.json", RECIPE)
    assert load_recipe(tmp_path / "r.json") == RECIPE
    assert json.loads((tmp_path / "r.json").read_text())["operations"][0] == {
        "editor": "contrast", "strength": 0.7, "seed": 3, "points": 24}
    for ops, msg in (([{"editor": "contrast", "strenght": 1}], "unknown key 'strenght'"),
                     ([{"editor": "contrast", "strength": float("nan")}], "strength"),
                     ([{"editor": "contrast", "seed": -1}], "seed"), ([], "non-empty"), ([{"strength": 1}], "editor")):
        with pytest.raises(EditorError, match=msg):
            Recipe.from_dict({"format": "gmn-recipe", "operations": ops})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(EditorError, match="not valid JSON"):
        load_recipe(tmp_path / "bad.json")


def test_gmn_apply_one_line_per_input_and_errors_do_not_stop_the_batch(tmp_path, capsys):
    params = _inr()
    save_tiled(tmp_path / "photo.safetensors", params, ARCH, GRID, source="test")
    rng = np.random.default_rng(0)
    Image.fromarray((rng.random((40, 44, 3)) * 255).astype(np.uint8)).save(tmp_path / "small.png")  # fitted first
    (tmp_path / "notes.png").write_text("not an image")
    save_recipe(tmp_path / "r.json", RECIPE)
    out = tmp_path / "out"
    ins = [tmp_path / "photo.safetensors", tmp_path / "notes.png", tmp_path / "small.png"]
    rc = main(["apply", str(tmp_path / "r.json"), *map(str, ins), "-o", str(out), "--threads", "1"])
    cap = capsys.readouterr()
    lines = cap.out.strip().splitlines()
    assert rc == 2 and len(lines) == 3, cap
    assert "photo.safetensors: 2 operation(s)" in lines[0] and "notes.png: error:" in lines[1]
    assert "small.png: 2 operation(s)" in lines[2]  # after the failing input
    assert cap.err.strip().splitlines() == ["error: 1 of 3 input(s) failed (their lines above say why)"]
    edited = load_inr(out / "photo.safetensors")
    want, _ = apply_recipe(params, ARCH, GRID, RECIPE)
    assert edited.grid == GRID and all(torch.equal(a, b) for a, b in zip(edited.params, want))
    small = load_inr(out / "small.safetensors")
    assert small.grid == TileGrid.for_image((40, 44)) and small.arch.dim_out == 3  # native size
    assert not (out / "notes.safetensors").exists()
