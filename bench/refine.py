"""Preview, then refine: does GradMetaNet's warm start pay? Every shipped editor's preview followed by K Adam steps
on the full target (`gmn.refine.refine`), against Adam alone from the INR before the edit given the same total
wall time, on photos and digits no editor saw; and solid paint's inside / outside figures.

    python -m bench.refine              # the table (BENCHMARKS.md "refine") and every shipped card's "refine" field
    python -m bench.refine --quick      # a smoke run: one photo at 128 px, 4 digits, K = 10; writes nothing

Images (held out from every zoo, editor and meta-training here, as in bench/fitting.py):
- photos: camera and coins (gray, tiled as R = G = B like the app), stereo_motorcycle's left view and retina, at the
  app's working size (longer side 256: 81 or 72 tiles of 32 px), fitted by `inr.tiles.fit_photo` (TILE_RECIPE);
- digits: the first DIGITS MNIST-5k test digits, one 2→32→32→1 SIREN each (ZOO_RECIPE), as the mnist zoos.
Adam's lr is tuned per editor and per start on other unseen images (the moon photo at 128 px, MNIST-5k validation
digits), at K = 100, over LRS.

Protocol per image and editor: the objective is the filter of the render before the edit (paint: a solid stroke,
`gmn.refine.solid_paint_target`, of a random stroke and colour drawn from a fixed seed; the editor's preview gets the
stroke as the app gives it). Both methods refine the same tiles (`changed_tiles`). Times are CPU seconds of this
process with one torch thread (the time on an idle core: the machine is shared): the editor's time (the edit call
less computing its objective, median of 3) and each start's time per Adam step (median of 3 short runs); Adam alone gets
K' = (t_editor + K·t_step(editor's result)) / t_step(original) steps, the same total CPU time. Scored: the plain MSE
of the whole render to the full target; ratio = editor + refine K over Adam alone K', the median over images of the
per-image ratio. The goal (issue 30): ratio ≤ 0.75 (0.5 stretch). The card's default start is the editor's result
where its ratio at K = 100 is below 1, else the INR before the edit (plain Adam).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from bench.report import table, write_section
from gmn.edit import REGISTRY_DIRS, edit_inr
from gmn.editors import load_editor
from gmn.objectives import random_paint
from gmn.refine import REFINE_STEPS, changed_tiles, refine, refine_target
from inr.siren import Params, SirenArch
from inr.tiles import TileGrid, render_tiles

PHOTOS = ("camera", "coins", "stereo_motorcycle", "retina")  # bench/fitting.py's unseen photos
TUNE_PHOTO = "moon"  # in no training set either: the photos' lr is tuned here
SIZE, TUNE_SIZE = 256, 128
DIGITS, TUNE_DIGITS = 16, 6
KS = (25, REFINE_STEPS)
LRS = (3e-4, 1e-3, 3e-3)
GOAL, STRETCH = 0.75, 0.5
EDGE = 8 / 255


def cache_dir() -> Path:
    """Fits are cached in the data home ($GMN_HOME, default ~/.cache/gmn-inr), never in the checkout."""
    home = Path(os.environ.get("GMN_HOME") or "~/.cache/gmn-inr").expanduser()
    return home / "bench" / "refine"


@dataclass
class Case:
    name: str
    params: Params
    arch: SirenArch
    grid: TileGrid
    before: torch.Tensor  # (1, H, W, C) the render before the edit
    mask: torch.Tensor  # (H, W, 1) the stroke, for paint editors
    colour: torch.Tensor  # (C,)


def _stroke(h: int, w: int, c: int, seed: int) -> tuple[torch.Tensor, torch.Tensor]:
    mask, colour = random_paint(1, h, w, c, generator=np.random.default_rng(seed))
    return mask[0], colour[0]


def photo_case(name: str, size: int, seed: int) -> Case:
    """A photo's tiled fit at the app's working size (cached), with a stroke drawn from `seed`."""
    from bench.tiles_fit import photo
    from inr.files import load_inr, save_tiled
    from inr.tiles import fit_photo

    img, grid, recipe = photo(name, size)
    arch = SirenArch(dim_out=3)
    path = cache_dir() / f"{name}-{size}.safetensors"
    if path.exists():
        params = load_inr(path).params
    else:
        print(f"fitting {name} at {grid.describe()}", flush=True)
        params = fit_photo(img, arch, grid, recipe, seed=0).params
        path.parent.mkdir(parents=True, exist_ok=True)
        save_tiled(path, params, arch, grid, source=f"skimage {name}")  # atomic
    h, w = grid.image_size
    mask, colour = _stroke(h, w, 3, seed)
    return Case(name, params, arch, grid, render_tiles(params, arch, grid), mask, colour)


def digit_cases(split: str, n: int) -> list[Case]:
    """The first n MNIST-5k digits of `split`, fitted as the mnist zoos are (ZOO_RECIPE, one batch)."""
    from inr.datasets import mnist5k
    from inr.fit import ZOO_RECIPE, fit_recipe
    from inr.siren import select

    images = mnist5k(split)[:n]
    arch = SirenArch(dim_out=1)
    params = fit_recipe(images, arch, ZOO_RECIPE, seed=0).params
    grid = TileGrid.single(28)
    out = []
    for i in range(n):
        p = select(params, i)
        mask, colour = _stroke(28, 28, 1, 100 + i)
        out.append(Case(f"{split}-{i}", p, arch, grid, render_tiles(p, arch, grid), mask, colour))
    return out


def shipped_editors() -> dict[str, Path]:
    """Every shipped editor (assets/editors), name → file."""
    return {p.stem: p for d in REGISTRY_DIRS for p in sorted(d.glob("*.safetensors"))}


def _mse(params: Params, arch: SirenArch, case: Case, target: torch.Tensor) -> float:
    return (render_tiles(params, arch, case.grid) - target).pow(2).mean().item()


def _paint_figures(params: Params, arch: SirenArch, case: Case, soft: torch.Tensor) -> dict:
    """Inside: MSE to the colour over the stroke; outside: MSE of the change beyond the feathered edge; changed:
    the fraction of the pixels there changed by more than 8/255 in some channel."""
    after = render_tiles(params, arch, case.grid)[0]
    before = case.before[0]
    core, beyond = case.mask[..., 0] > 0.5, soft[..., 0] == 0
    return {"inside": (after[core] - case.colour).pow(2).mean().item(),
            "outside": (after[beyond] - before[beyond]).pow(2).mean().item(),
            "changed": ((after - before).abs().amax(-1)[beyond] > EDGE).float().mean().item()}


def _cpu(fn) -> tuple[float, object]:
    """(CPU seconds of the process, result) of fn(): with one torch thread, the time it takes on an idle core."""
    c0 = time.process_time()
    out = fn()
    return time.process_time() - c0, out


def _step_seconds(params: Params, arch: SirenArch, case: Case, obj, tiles, lr: float) -> float:
    """CPU seconds per Adam step from `params`: 6 steps less 0 steps (the renders around them), median of 3."""
    def run(k):
        return _cpu(lambda: refine(params, arch, obj, grid=case.grid, tiles=tiles, steps=k, lr=lr))[0]
    return statistics.median((run(6) - run(0)) / 6 for _ in range(3))


def run_case(editor, case: Case, ks, lrs: dict, *, timing: bool = True) -> dict:
    """Editor + refine K and Adam alone at the same total time on one image: MSEs, times, paint figures."""
    task = editor.config.task
    paint = task == "paint"
    obj = refine_target(case.params, case.arch, case.grid, task, case.mask, case.colour)
    tiles = changed_tiles(obj, case.before, case.grid)
    kw = {"mask": case.mask, "paint": case.colour} if paint else {}
    res = edit_inr(case.params, case.arch, editor, grid=case.grid, **kw)
    t_edit = 0.0
    if timing:  # the editor's CPU time: the edit call less computing its objective (both methods need that)
        def edit_cpu():
            t_obj = _cpu(lambda: refine_target(case.params, case.arch, case.grid, task, case.mask, case.colour))[0]
            return _cpu(lambda: edit_inr(case.params, case.arch, editor, grid=case.grid, **kw))[0] - t_obj
        t_edit = max(0.0, statistics.median(edit_cpu() for _ in range(3)))
    target = obj.target
    out = {"tiles": len(tiles), "t_edit": t_edit, "none": _mse(case.params, case.arch, case, target),
           "preview": _mse(res.params, res.arch, case, target), "k": {}}
    if timing:
        out["t_step_e"] = _step_seconds(res.params, res.arch, case, obj, tiles, lrs["editor"])
        out["t_step_a"] = _step_seconds(case.params, case.arch, case, obj, tiles, lrs["original"])
    for k in ks:
        k_adam = max(1, round((t_edit + k * out["t_step_e"]) / out["t_step_a"])) if timing else k
        e = refine(res.params, res.arch, obj, grid=case.grid, tiles=tiles, steps=k, lr=lrs["editor"])
        a = refine(case.params, case.arch, obj, grid=case.grid, tiles=tiles, steps=k_adam, lr=lrs["original"])
        row = {"k_adam": k_adam, "editor": _mse(e.params, res.arch, case, target),
               "adam": _mse(a.params, case.arch, case, target)}
        if paint:
            row["paint_editor"] = _paint_figures(e.params, res.arch, case, obj.mask[0])
            row["paint_adam"] = _paint_figures(a.params, case.arch, case, obj.mask[0])
        out["k"][k] = row
    if paint:
        out["paint_preview"] = _paint_figures(res.params, res.arch, case, obj.mask[0])
    return out


def tune(editor, cases: list[Case], k: int) -> dict:
    """Adam's lr per start ("editor": from the preview, "original": from the INR before the edit) with the lowest
    mean full-target MSE after k steps on the tuning images."""
    task = editor.config.task
    best = {}
    for start in ("editor", "original"):
        scores = {}
        for lr in LRS:
            errs = []
            for case in cases:
                obj = refine_target(case.params, case.arch, case.grid, task, case.mask, case.colour)
                tiles = changed_tiles(obj, case.before, case.grid)
                if start == "editor":
                    kw = {"mask": case.mask, "paint": case.colour} if task == "paint" else {}
                    res = edit_inr(case.params, case.arch, editor, grid=case.grid, **kw)
                    p, arch = res.params, res.arch
                else:
                    p, arch = case.params, case.arch
                r = refine(p, arch, obj, grid=case.grid, tiles=tiles, steps=k, lr=lr)
                errs.append(_mse(r.params, arch, case, obj.target))
            scores[lr] = float(np.mean(errs))
        best[start] = min(scores, key=scores.get)
    return best


def _med(xs) -> float:
    return float(statistics.median(xs))


def summarise(results: list[dict], ks) -> dict:
    """Medians over images: MSEs, times, Adam's steps, the per-image ratio per K."""
    s = {key: _med(r[key] for r in results) for key in ("tiles", "t_edit", "t_step_e", "t_step_a", "none", "preview")}
    s.update({"images": len(results), "k": {}})
    for k in ks:
        rows = [r["k"][k] for r in results]
        s["k"][k] = {"k_adam": _med(x["k_adam"] for x in rows), "editor": _med(x["editor"] for x in rows),
                     "adam": _med(x["adam"] for x in rows),
                     "ratio": _med(x["editor"] / max(x["adam"], 1e-12) for x in rows)}
        for m in ("paint_editor", "paint_adam"):
            if m in rows[0]:
                s["k"][k][m] = {f: _med(x[m][f] for x in rows) for f in ("inside", "outside", "changed")}
    if "paint_preview" in results[0]:
        s["paint_preview"] = {f: _med(r["paint_preview"][f] for r in results) for f in ("inside", "outside", "changed")}
    return s


def _verdict(ratio: float) -> str:
    if ratio <= STRETCH:
        return f"warm start pays (≥ {1 - STRETCH:.0%} lower: goal met)"
    if ratio <= GOAL:
        return f"warm start pays (≥ {1 - GOAL:.0%} lower)"
    if ratio < 1:
        return f"warm start helps, short of the {1 - GOAL:.0%} goal"
    return "Adam alone is better"


def report(summary: dict, lrs: dict, command: str, load: str) -> str:
    rows, paint_rows = [], []
    for name, s in summary.items():
        for k, r in s["k"].items():
            rows.append([name, s["where"], f"{s['tiles']:.0f}", f"{s['t_edit'] * 1e3:.0f}",
                         f"{s['t_step_e'] * 1e3:.1f} / {s['t_step_a'] * 1e3:.1f}", k, f"{r['k_adam']:.0f}",
                         f"{s['none']:.2e}", f"{s['preview']:.2e}", f"{r['editor']:.2e}", f"{r['adam']:.2e}",
                         f"{r['ratio']:.2f}", _verdict(r["ratio"])])
            if "paint_editor" in r:
                first = [("preview", s["paint_preview"])] if k == next(iter(s["k"])) else []
                for label, m in first + [(f"editor + refine {k}", r["paint_editor"]),
                                         (f"Adam alone {r['k_adam']:.0f}", r["paint_adam"])]:
                    paint_rows.append([name, label, f"{m['inside']:.2e}", f"{m['outside']:.2e}",
                                       f"{m['changed'] * 100:.2f}%"])
    at = {n: s["k"][REFINE_STEPS]["ratio"] for n, s in summary.items() if REFINE_STEPS in s["k"]}
    groups = [("meets the 25% goal", [n for n, r in at.items() if r <= GOAL]),
              ("helps, short of the goal", [n for n, r in at.items() if GOAL < r < 1]),
              ("does not pay (Adam alone is as good or better)", [n for n, r in at.items() if r >= 1])]
    verdict = f"At K = {REFINE_STEPS}, the editor's warm start " + "; ".join(
        f"{what} for {', '.join(f'{n} ({at[n]:.2f})' for n in names)}" for what, names in groups if names) + "."
    cards = [[n, s["default"]["start"], s["default"]["steps"], f"{s['default']['lr']:g}",
              f"{lrs[n]['editor']:g} / {lrs[n]['original']:g}"] for n, s in summary.items()]
    return (
        "Every shipped editor's preview, then K Adam steps on the full target of the changed tiles "
        "(`gmn.refine.refine`), against Adam alone from the INR before the edit given the same total CPU time "
        "(K' steps: the editor's time plus K refine steps, in Adam steps on the original; an OCE editor's result is "
        "k× wider, so its steps cost more and it has more capacity). Images no editor saw: "
        f"the photos {', '.join(PHOTOS)} at longer side {SIZE} (tiled), the first {DIGITS} MNIST-5k test digits; lr "
        f"tuned per editor and start on {TUNE_PHOTO} ({TUNE_SIZE} px) and {TUNE_DIGITS} MNIST-5k validation digits. "
        "MSE: the whole render against the full target (paint: the solid stroke, feathered 2 px, over the render "
        "before). Medians over images; the ratio is the median per-image ratio (editor + refine / Adam alone; "
        f"the goal: ≤ {GOAL} at equal time, {STRETCH} stretch). Times are CPU seconds with one torch thread (the "
        f"time on an idle core; the machine was shared, load average {load}), so the equal-time step counts are "
        "indicative.\n\n"
        + table(["editor", "images", "tiles", "editor ms", "ms/step (editor's / original)", "K", "Adam K'",
                 "no edit", "preview", "editor + refine K", "Adam alone K'", "ratio", "verdict"], rows)
        + f"\n\n{verdict}\n\n"
        + "Solid paint (the same runs): inside = MSE to the colour over the stroke; outside = MSE of the change "
        "beyond the feathered edge; changed = pixels beyond the edge changed by more than 8/255 (goal: inside ≤ 1e-3, "
        "outside ≤ 1e-4, changed 0).\n\n"
        + table(["editor", "method", "inside", "outside", "changed > 8/255"], paint_rows)
        + "\n\nThe default written into each card's `refine` field (start = `editor`: refine from the preview; "
        "`original`: plain Adam from the INR before the edit, where the preview's warm start did not pay at "
        f"K = {REFINE_STEPS}), and the tuned lrs (from the editor's result / from the original):\n\n"
        + table(["editor", "default start", "steps", "lr", "tuned lr (editor / original)"], cards)
    )


def write_cards(summary: dict) -> None:
    """The `refine` field of each shipped card (JSON beside the editor file), written atomically."""
    for name, s in summary.items():
        path = shipped_editors()[name].with_suffix(".json")
        card = json.loads(path.read_text())
        card["refine"] = {**s["default"], "ratio_at_equal_time": round(s["k"][REFINE_STEPS]["ratio"], 3),
                          "measured": "BENCHMARKS.md, refine (python -m bench.refine)"}
        tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(card, indent=2) + "\n")
        os.replace(tmp, path)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="smoke run: one photo at 128 px, 4 digits, K = 10")
    ap.add_argument("--editors", default=None, help="comma-separated shipped editor names (default: all)")
    ap.add_argument("--fresh", action="store_true", help="measure every editor again (default: reuse cached ones)")
    args = ap.parse_args()
    torch.set_num_threads(1)
    photos, size, digits, ks = (PHOTOS[:1], TUNE_SIZE, 4, (10,)) if args.quick else (PHOTOS, SIZE, DIGITS, KS)
    tune_k = ks[-1]
    editors = shipped_editors()
    if args.editors:
        editors = {n: editors[n] for n in args.editors.split(",")}
    colour = [photo_case(n, size, seed=i) for i, n in enumerate(photos)]
    gray = digit_cases("test", digits)
    tune_sets = {3: [photo_case(TUNE_PHOTO, TUNE_SIZE, seed=99)],
                 1: digit_cases("val", 2 if args.quick else TUNE_DIGITS)}
    summary, lrs = {}, {}
    done_path = cache_dir() / ("quick.json" if args.quick else "results.json")
    done = json.loads(done_path.read_text()) if done_path.exists() and not args.fresh else {}
    for name, path in editors.items():
        if name in done:  # measured by an earlier run of this command (--fresh measures again)
            summary[name], lrs[name] = done[name]["summary"], done[name]["lrs"]
            summary[name]["k"] = {int(k): v for k, v in summary[name]["k"].items()}
            continue
        editor, _ = load_editor(path)
        c = editor.config.arch["dim_out"]
        cases = colour if c == 3 else gray
        lrs[name] = tune(editor, tune_sets[c], tune_k)
        print(f"{name}: lr {lrs[name]}", flush=True)
        results = [run_case(editor, case, ks, lrs[name]) for case in cases]
        s = summarise(results, ks)
        s["where"] = f"{len(cases)} photos" if c == 3 else f"{len(cases)} digits"
        r = s["k"][ks[-1]]["ratio"]
        start = "editor" if r < 1 else "original"
        s["default"] = {"start": start, "steps": REFINE_STEPS, "lr": lrs[name][start]}
        summary[name] = s
        print(f"{name}: {json.dumps({k: v for k, v in s.items() if k != 'paint_preview'})}", flush=True)
        done[name] = {"summary": s, "lrs": lrs[name], "load": os.getloadavg()[0]}
        tmp = done_path.with_name(f".{done_path.name}.{os.getpid()}.tmp")
        tmp.write_text(json.dumps(done, indent=1))
        os.replace(tmp, done_path)
    loads = [done[n]["load"] for n in summary if "load" in done.get(n, {})] or [os.getloadavg()[0]]
    load = f"{min(loads):.1f}–{max(loads):.1f} at the end of each editor's runs"
    body = report(summary, lrs, "python -m bench.refine", load)
    if args.quick:
        print(body)
        return
    write_section("refine", "Preview, then refine: editor + refine against Adam alone at equal time", body,
                  command="python -m bench.refine")
    write_cards(summary)


if __name__ == "__main__":
    main()
