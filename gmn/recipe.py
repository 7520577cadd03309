"""Edits as operations, replayed: a recipe is a small JSON list of filter edits applied in order.

    {"format": "gmn-recipe", "version": 1,
     "operations": [{"editor": "contrast", "strength": 1.0, "seed": 0},
                    {"editor": "sharpen", "strength": 0.5, "seed": 1, "points": 128}]}

    python -m gmn apply recipe.json photo.jpg other.safetensors ... -o OUTDIR

Each input is an INR file (`.safetensors`, edited as it is) or an image (fitted first by the one plan of
the app and the CLIs, `inr.tiles.plan_image`, at its own resolution). Every operation is one `gmn.edit.
edit_inr` call with its editor (a registry name or an editor file), strength, seed of the sampled points
and number of points (the editor's own when not given), so replaying a recipe is exactly applying its
operations by hand. Each input gives one line (`name: ...` or `name: error: ...`) and its edited INR in
OUTDIR/<stem>.safetensors; a failing input does not stop the others. Paint operations (strokes) are not
part of recipes yet; an operation whose editor widens the INR (the 4-copy `dilate`/`erode`) can only be
the last one (a further edit is refused, as in the app).
"""

from __future__ import annotations

import json
import math
import os
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from inr.siren import Params, SirenArch
from inr.tiles import TileGrid

from .editors import EditorError

FORMAT = "gmn-recipe"


@dataclass(frozen=True)
class Operation:
    """One filter edit: `editor` (registry name or .safetensors path) at `strength`, its points sampled
    from `seed`; `points` per tile (None: the editor's own)."""

    editor: str
    strength: float = 1.0
    seed: int = 0
    points: int | None = None

    @classmethod
    def from_dict(cls, d: dict, where: str = "operation") -> Operation:
        if not isinstance(d, dict):
            raise EditorError(f"{where} must be an object with an 'editor', got {d!r}")
        unknown = sorted(set(d) - {"editor", "strength", "seed", "points"})
        if unknown:
            raise EditorError(f"{where} has unknown key {unknown[0]!r} (known: editor, strength, seed, points)")
        editor = d.get("editor")
        if not isinstance(editor, str) or not editor:
            raise EditorError(f"{where} needs an 'editor' name, got {editor!r}")
        strength = d.get("strength", 1.0)
        if isinstance(strength, bool) or not isinstance(strength, (int, float)) or not math.isfinite(strength) \
                or not 0 <= strength <= 3:
            raise EditorError(f"{where}: strength must be a number from 0 to 3, got {strength!r}")
        seed, points = d.get("seed", 0), d.get("points")
        if isinstance(seed, bool) or not isinstance(seed, int) or not 0 <= seed < 2**31:
            raise EditorError(f"{where}: seed must be an integer from 0 to 2^31 - 1, got {seed!r}")
        if points is not None and (isinstance(points, bool) or not isinstance(points, int) or not 1 <= points <= 512):
            raise EditorError(f"{where}: points must be an integer from 1 to 512, got {points!r}")
        return cls(editor, float(strength), seed, points)


@dataclass(frozen=True)
class Recipe:
    """A list of operations, applied in order."""

    operations: tuple[Operation, ...] = field(default_factory=tuple)

    def to_dict(self) -> dict:
        return {"format": FORMAT, "version": 1, "operations": [asdict(op) for op in self.operations]}

    @classmethod
    def from_dict(cls, d: dict) -> Recipe:
        if not isinstance(d, dict) or d.get("format", FORMAT) != FORMAT:
            raise EditorError(f"not a recipe: expected an object with \"format\": \"{FORMAT}\"")
        ops = d.get("operations")
        if not isinstance(ops, list) or not ops:
            raise EditorError("a recipe needs a non-empty 'operations' list")
        return cls(tuple(Operation.from_dict(op, f"operation {i + 1}") for i, op in enumerate(ops)))


def load_recipe(path: str | os.PathLike) -> Recipe:
    """Read a recipe JSON file (one-line EditorError when it is not one)."""
    try:
        d = json.loads(Path(path).read_text())
    except OSError as e:
        raise EditorError(f"cannot read recipe {Path(path).name}: {e.strerror or e}") from None
    except ValueError as e:
        raise EditorError(f"recipe {Path(path).name} is not valid JSON: {e}") from None
    return Recipe.from_dict(d)


def save_recipe(path: str | os.PathLike, recipe: Recipe) -> None:
    """Write a recipe atomically."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(recipe.to_dict(), indent=2) + "\n")
    os.replace(tmp, path)


def apply_operation(params: Params, arch: SirenArch, grid: TileGrid, op: Operation):
    """One operation on an INR (every tile of a tiled INR): (params, arch, gmn.edit.EditResult)."""
    from .edit import edit_inr, resolve_editor
    from .editors import load_editor

    editor, _ = load_editor(resolve_editor(op.editor))
    if editor.config.task == "paint":
        raise EditorError(f"'{op.editor}' is a paint editor; recipes hold filter edits only")
    res = edit_inr(params, arch, editor, grid=grid, points=op.points, strength=op.strength, seed=op.seed)
    if not all(torch.isfinite(t).all() for t in res.params):
        raise EditorError(f"'{op.editor}' made NaN or Inf weights; refused")
    return res.params, res.arch, res


def apply_recipe(params: Params, arch: SirenArch, grid: TileGrid, recipe: Recipe) -> tuple[Params, SirenArch]:
    """Every operation of `recipe` in order, each on the INR the previous one produced."""
    for op in recipe.operations:
        params, arch, _ = apply_operation(params, arch, grid, op)
    return params, arch


def load_input(path: str | os.PathLike):
    """An input of `gmn apply`: (params, arch, grid, source name). An INR file is read as it is (never
    unpickled); an image is fitted by the one plan (`inr.tiles.plan_image`, native resolution)."""
    from inr.files import load_inr
    from inr.images import load_image
    from inr.threads import choose_threads
    from inr.tiles import FIT_GROUP, fit_photo, plan_image

    path = Path(path)
    if path.suffix == ".safetensors":
        inr = load_inr(path, allow_stack=False)
        if inr.grid is None:
            raise EditorError(f"{path.name} does not say its image size")
        return inr.params, inr.arch, inr.grid, inr.meta.get("source", path.name)
    img = load_image(path)
    plan = plan_image(*img.shape[:2], img.shape[-1])
    arch = SirenArch(dim_out=plan.channels)
    workers = choose_threads(None if plan.grid.count >= 2 * FIT_GROUP else 0)
    res = fit_photo(plan.target(img), arch, plan.grid, plan.recipe, workers=workers)
    return res.params, arch, plan.grid, path.name


def apply_files(recipe: Recipe, inputs: list[str], outdir: str | os.PathLike, log=print) -> int:
    """Apply `recipe` to every input, writing OUTDIR/<stem>.safetensors; one line per input through `log`
    (errors included, the batch goes on). Returns the number of inputs that failed."""
    from inr.errors import InrError
    from inr.files import save_tiled

    out = Path(outdir)
    failed = 0
    for name in inputs:
        t0 = time.perf_counter()
        try:
            params, arch, grid, source = load_input(name)
            params, arch = apply_recipe(params, arch, grid, recipe)
            dest = out / f"{Path(name).stem}.safetensors"
            save_tiled(dest, params, arch, grid, source=f"{source} + recipe",
                       edit={"recipe": recipe.to_dict()["operations"]})
            log(f"{name}: {len(recipe.operations)} operation(s), {grid.describe()} -> {dest} "
                f"({time.perf_counter() - t0:.2f} s)")
        except (EditorError, InrError, ValueError, OSError) as e:
            failed += 1
            log(f"{name}: error: {str(e).splitlines()[0] if str(e) else type(e).__name__}")
    return failed
