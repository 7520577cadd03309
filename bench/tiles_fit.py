"""The fits of bench/tiles.py and their table, "Fitting photos as tiles": scikit-image photos fitted as grids
of tiles by TILE_RECIPE (with and without its early stop) against one SIREN of the same parameter count
trained by Adam for the tiled fit's CPU time. `python -m bench.tiles fits`.
"""

from __future__ import annotations

import contextlib
import math
import statistics
import time
from pathlib import Path
from types import SimpleNamespace

import numpy as np
import torch

from bench.report import table
from bench.tiles_common import (
    CACHE,
    CURVE_EVERY,
    PHOTOS,
    SINGLE_BATCH,
    SINGLE_LAYERS,
    SINGLE_LONG,
    SINGLE_LR,
    THRESHOLDS,
    load_result,
    measured,
    med,
    save_result,
    stamp,
    tile_arch,
)


def photo(name: str, size: int):
    """The photo at the app's working size (longer side `size`), RGB (gray as R = G = B), and its grid."""
    from skimage import data

    from inr.images import to_size
    from inr.tiles import plan_fit

    img = getattr(data, name)()
    img = (img[0] if isinstance(img, tuple) else img).astype(np.float32) / 255.0  # a stereo pair: its left view
    if img.ndim == 2:
        img = np.repeat(img[..., None], 3, -1)  # a gray photo is tiled through the colour path (R = G = B)
    grid, recipe = plan_fit(img.shape[0], img.shape[1], 3, size=size)
    return to_size(img[..., :3], grid.image_size, aspect="stretch"), grid, recipe


def psnr_db(a, b) -> float:
    from inr.fit import psnr

    return float(psnr((a - b).pow(2).mean()))


class _Stop(Exception):
    pass


class Clock:
    """Wall and CPU seconds since creation, less the time spent inside `exclude()` (the curves' renders).
    With one torch thread the process's CPU time is the wall time it would take on an idle core; the machine
    these benches run on is shared, so the fit budgets and the times to 30/35/40 dB are CPU time."""

    def __init__(self) -> None:
        self.w0, self.c0, self.xw, self.xc = time.perf_counter(), time.process_time(), 0.0, 0.0

    def cpu(self) -> float:
        return time.process_time() - self.c0 - self.xc

    def wall(self) -> float:
        return time.perf_counter() - self.w0 - self.xw

    @contextlib.contextmanager
    def exclude(self):
        w, c = time.perf_counter(), time.process_time()
        try:
            yield
        finally:
            self.xw += time.perf_counter() - w
            self.xc += time.process_time() - c


def tiled_fit(image, grid, recipe, *, curve: bool):
    """Fit the tiles by `recipe`. Without `curve`: `inr.tiles.fit_photo` itself (seed 0), as the app and the CLI
    run it. With `curve`: the same tiles and recipe as one batch (the same per-tile result: tiles are
    independent), recording the whole-image PSNR (clamped blended render of the best parameters per tile so
    far, as the fit keeps them) every CURVE_EVERY steps: [step, CPU s, wall s, dB]; the curve's own time is left
    out, but one batch runs slower per step than fit_photo's groups of 16 tiles, so the curve's times are an
    upper bound."""
    from inr.fit import fit
    from inr.tiles import fit_photo, render_tiles

    arch = tile_arch()
    if not curve:
        clock = Clock()
        tf = fit_photo(image, arch, grid, recipe, seed=0)
        cpu, wall = clock.cpu(), clock.wall()
        p = psnr_db(render_tiles(tf.params, arch, grid)[0], image)
        res = SimpleNamespace(params=tf.params, psnr=tf.tile_psnr, steps=tf.steps)  # what callers read of a FitResult
        return res, {"psnr": round(p, 3), "cpu": round(cpu, 3), "wall": round(wall, 3),
                      "median_steps": int(tf.steps.median()), "curve": []}
    live: list = []
    best: list = []
    state = {"prev": None, "curve": []}
    clock = Clock()

    def factory(ps):
        live.extend(ps)
        return torch.optim.Adam(ps, lr=recipe.lr)

    def cb(step, cur):
        at = clock.cpu(), clock.wall()
        with clock.exclude(), torch.no_grad():
            if not best:
                best.extend(p.detach().clone() for p in live)
            else:  # the tiles whose best PSNR rose took their current parameters, as fit() keeps them
                better = cur > state["prev"]
                if better.any():
                    for b, p in zip(best, live):
                        b[better] = p.detach()[better]
            state["prev"] = cur.clone()
            if step % CURVE_EVERY == 0 or step == recipe.steps - 1:
                whole = render_tiles(best, arch, grid)[0]
                state["curve"].append([step + 1, round(at[0], 4), round(at[1], 4), round(psnr_db(whole, image), 3)])

    res = fit(grid.cut(image), arch, steps=recipe.steps, lr=recipe.lr, target_psnr=recipe.target_psnr, seed=0,
              optimizer_factory=factory if curve else None, callback=cb if curve else None)
    cpu, wall = clock.cpu(), clock.wall()
    whole = render_tiles(res.params, arch, grid)[0]
    p = psnr_db(whole, image)
    if curve:
        state["curve"].append([int(res.steps.max()) + 1, round(cpu, 4), round(wall, 4), round(p, 3)])
    return res, {"psnr": round(p, 3), "cpu": round(cpu, 3), "wall": round(wall, 3),
                 "median_steps": int(res.steps.median()), "curve": state["curve"]}


def single_width(params: int, layers: int = SINGLE_LAYERS) -> int:
    """Width h of a 2→h×layers→3 SIREN with about `params` parameters:
    (2h + h) + (layers - 1)(h² + h) + (3h + 3) = (layers - 1)h² + (layers + 5)h + 3."""
    a, b, c = layers - 1, layers + 5, 3 - params
    return round((-b + math.sqrt(b * b - 4 * a * c)) / (2 * a))


def single_fit(image, width: int, budget: float, checkpoints: list[float], *, batch_pixels: int | None,
               lr: float) -> dict:
    """One SIREN by Adam for `budget` CPU seconds of training; the whole-image PSNR (clamped render of the
    current parameters) at the first step past each checkpoint (CPU s): [step, CPU s, wall s, dB]; the
    renders are left out of the times."""
    from inr.fit import fit
    from inr.siren import SirenArch, render

    arch = SirenArch(hidden=width, layers=SINGLE_LAYERS, dim_out=3)
    live: list = []
    state = {"curve": [], "todo": sorted(checkpoints)}
    h, w = image.shape[:2]
    clock = Clock()

    def factory(ps):
        live.extend(ps)
        return torch.optim.Adam(ps, lr=lr)

    def cb(step, cur):
        cpu, wall = clock.cpu(), clock.wall()
        if state["todo"] and cpu >= state["todo"][0]:
            with clock.exclude():
                while state["todo"] and cpu >= state["todo"][0]:
                    state["todo"].pop(0)
                img = render([p.detach() for p in live], arch, (h, w))[0]
                state["curve"].append([step, round(cpu, 4), round(wall, 4), round(psnr_db(img, image), 3)])
        if cpu >= budget:
            raise _Stop  # skips fit's final full-image evaluation of best and last parameters (seconds at 512²)

    with contextlib.suppress(_Stop):
        fit(image, arch, steps=10**9, lr=lr, seed=0, batch_pixels=batch_pixels, optimizer_factory=factory,
            callback=cb)
    return {"width": width, "params": arch.num_params, "curve": state["curve"]}


def _time_to(curve: list, db: float):
    """(CPU s, wall s, steps) of the first curve point at or above `db` dB, or None."""
    for step, cpu, wall, p in curve:
        if p >= db:
            return [cpu, wall, step]
    return None


def _tiles_path(name: str, size: int) -> Path:
    return CACHE / f"{name}-{size}.safetensors"


def load_tiles(name: str, size: int, *, force: bool = False):
    """The cached tiled fit (params, grid, image), fitting it (by TILE_RECIPE, no curve) when missing."""
    from inr.files import load_inr, save_tiled

    image, grid, recipe = photo(name, size)
    path = _tiles_path(name, size)
    if path.exists() and not force:
        f = load_inr(path, allow_stack=False)
        if f.grid == grid and f.meta.get("fit") == recipe.to_dict():
            return f.params, grid, image
    res, info = tiled_fit(image, grid, recipe, curve=False)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_tiled(path, res.params, tile_arch(), grid, source=f"skimage {name}", psnr=info["psnr"], fit=recipe.to_dict())
    return res.params, grid, image


def _fit_settings(recipe) -> dict:
    """What a cached fits row depends on (a change refits it)."""
    return {"recipe": recipe.to_dict(), "arch": tile_arch().to_dict(),
            "single": [SINGLE_LAYERS, SINGLE_BATCH, SINGLE_LR],
            "single_long": {str(k): v for k, v in SINGLE_LONG.items()}, "curve_every": CURVE_EVERY}


def cmd_fits(sizes: list[int], force: bool) -> None:
    """Fit every photo at each longer side in `sizes` (cached in $GMN_HOME/cache/tiles unless `force` or the
    settings changed) and save the results as `fits` (bench.tiles.write turns them into the table)."""
    from inr.files import save_tiled
    from inr.fit import FitRecipe
    from inr.tiles import TileGrid

    results = load_result("fits")
    results.setdefault("photos", {})
    warm = photo(PHOTOS[0], 256)  # one untimed fit first: the first fit of a process pays for allocator warm-up
    tiled_fit(warm[0][:64, :64].contiguous(), TileGrid((64, 64), warm[1].tile, warm[1].overlap), warm[2], curve=False)
    for size in sizes:
        for name in PHOTOS:
            key = f"{name}/{size}"
            image, grid, recipe = photo(name, size)
            settings = _fit_settings(recipe)
            cached = results["photos"].get(key, {})
            if cached.get("settings") == settings and _tiles_path(name, size).exists() and not force:
                print(f"{key}: cached", flush=True)
                continue
            t_run = time.perf_counter()
            arch = tile_arch()
            res, tiled = tiled_fit(image, grid, recipe, curve=False)  # the timed fit, as the app runs it
            _, curved = tiled_fit(image, grid, recipe, curve=True)  # the same fit again, for its PSNR curve
            tiled.update(curve=curved["curve"], curve_run_cpu=curved["cpu"])
            save_tiled(_tiles_path(name, size), res.params, arch, grid, source=f"skimage {name}",
                       psnr=tiled["psnr"], fit=recipe.to_dict())
            nostop = FitRecipe(steps=recipe.steps, lr=recipe.lr, target_psnr=None)
            _, free = tiled_fit(image, grid, nostop, curve=False)
            n_params = grid.count * arch.num_params
            width = single_width(n_params)
            T = tiled["cpu"]  # the equal-time budget: the tiled fit's CPU time (one thread)
            long = SINGLE_LONG.get(size, 1.0)
            marks = [T * f for f in np.arange(0.25, long + 1e-9, 0.25)] if long > 1 else [T / 2, T]
            single = single_fit(image, width, T * long, marks, batch_pixels=SINGLE_BATCH, lr=SINGLE_LR)
            at_T = next((c for c in single["curve"] if c[1] >= T), single["curve"][-1])
            row = {
                "size": list(grid.image_size), "tiles": grid.count, "grid": list(grid.shape), "params": n_params,
                "tiled": tiled, "tiled_nostop": {k: free[k] for k in ("psnr", "cpu", "wall", "median_steps")},
                "single": {**single, "budget": round(T * long, 3), "at_equal_time": at_T},
            }
            if size == 256:  # all pixels a step (LARGE_RECIPE's way): a handful of steps in the tiled fit's time
                full = single_fit(image, width, T, [T], batch_pixels=None, lr=SINGLE_LR)
                row["single_all_pixels"] = full["curve"][-1]
            row["settings"] = settings
            row["seconds"] = round(time.perf_counter() - t_run, 1)
            results["photos"][key] = row
            print(f"{key}: {grid.describe()}, tiled {tiled['psnr']:.2f} dB in {T:.2f} CPU s ({tiled['wall']:.2f} s "
                  f"wall; no stop {free['psnr']:.2f} dB in {free['cpu']:.2f} s); single 2→{width}×{SINGLE_LAYERS}→3 "
                  f"{at_T[3]:.2f} dB at {at_T[1]:.2f} s", flush=True)
            results.update(stamp("python -m bench.tiles fits"))
            save_result("fits", results)


def _s(x, d=2) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{d}f}"


def _ttd(curve, db, budget=None) -> str:
    t = _time_to(curve, db)
    if t is None:
        return f"> {budget:.1f}" if budget else "—"
    return f"{t[0]:.2f}"


def fits_body(F: dict) -> list[str]:
    from inr.fit import TILE_RECIPE

    P = F.get("photos", {})
    sizes = sorted({int(k.split("/")[1]) for k in P})
    slow = med(r["tiled"]["curve_run_cpu"] / r["tiled"]["cpu"] - 1 for r in P.values() if "curve_run_cpu" in r["tiled"])
    out = [
        "### Fitting photos as tiles",
        "",
        measured(F, sum(r.get("seconds", 0) for r in P.values()) if all("seconds" in r for r in P.values()) else None),
        "",
        f"Four scikit-image photos at the app's working size (longer side 256 or 512, aspect kept: "
        f"`inr.tiles.plan_fit`; coffee and chelsea are landscape), the gray camera as R = G = B. **Tiled**: 32² "
        f"tiles with 4 px overlap, each a 2→32→32→3 SIREN (1,251 parameters), fitted by `inr.tiles.fit_photo` "
        f"(as the app and the CLI fit): TILE_RECIPE (Adam lr {TILE_RECIPE.lr:g}, {TILE_RECIPE.steps} full-tile "
        f"steps, a tile stops changing at {TILE_RECIPE.target_psnr:g} dB) in groups of 16 tiles, a group ending "
        f"when all its tiles have), and the same without the early "
        f"stop. PSNR is of the whole clamped image (the blended render). Times are CPU seconds of the one torch "
        f"thread, which is the wall time on an idle core (the machine was shared: the wall time is in brackets). "
        f"Times to 30/35/40 dB: a second run of the same tiles as one batch (the same per-tile result) records the "
        f"whole-image PSNR every {CURVE_EVERY} steps "
        f"(best parameters per tile so far, as the fit keeps them); rendering that curve is timed and left out "
        + f"(the curve run took {1 + slow:.2f}× the plain run's time, median; above 1 these times are pessimistic)"
        + f". '—': not reached in {TILE_RECIPE.steps} steps.",
        "",
    ]
    rows, meds_ = [], []
    for size in sizes:
        keys = [f"{n}/{size}" for n in PHOTOS if f"{n}/{size}" in P]
        for k in keys:
            r = P[k]
            t, f = r["tiled"], r["tiled_nostop"]
            rows.append([k.split("/")[0], f"{r['size'][0]}×{r['size'][1]}",
                         f"{r['grid'][0]}×{r['grid'][1]} ({r['params']:,})", _s(t["psnr"]),
                         f"{_s(t['cpu'])} ({_s(t['wall'])})", t["median_steps"],
                         " / ".join(_ttd(t["curve"], db) for db in THRESHOLDS),
                         _s(f["psnr"]), f"{_s(f['cpu'])} ({_s(f['wall'])})"])
        ttd = []
        for db in THRESHOLDS:
            ts = [_time_to(P[k]["tiled"]["curve"], db) for k in keys]
            # a photo that never reaches it counts as infinitely slow: the median exists if most reach it
            vals = sorted(x[0] if x else math.inf for x in ts)
            m = statistics.median(vals)
            ttd.append("—" if math.isinf(m) else f"{m:.2f}")
        meds_.append([f"**median, {size}**", "", "", f"**{_s(med(P[k]['tiled']['psnr'] for k in keys))}**",
                      f"**{_s(med(P[k]['tiled']['cpu'] for k in keys))}** "
                      f"({_s(med(P[k]['tiled']['wall'] for k in keys))})",
                      int(med(P[k]["tiled"]["median_steps"] for k in keys)), " / ".join(ttd),
                      _s(med(P[k]["tiled_nostop"]["psnr"] for k in keys)),
                      f"{_s(med(P[k]['tiled_nostop']['cpu'] for k in keys))} "
                      f"({_s(med(P[k]['tiled_nostop']['wall'] for k in keys))})"])
    out += [table(["photo", "working size", "tiles (params)", "PSNR (dB)", "time (s)", "median steps per tile",
                   "time to 30 / 35 / 40 dB (s)", "no early stop: PSNR (dB)", "no early stop: time (s)"],
                  rows + meds_), ""]
    out += [
        f"**Against one SIREN at equal time.** One 2→h×{SINGLE_LAYERS}→3 SIREN, h chosen for about the tiles' "
        f"parameter count, Adam lr {SINGLE_LR:g} on {SINGLE_BATCH:,} random pixels a step (the best at equal "
        f"time of a few batch sizes and lrs tried on astronaut 256 during development; LARGE_RECIPE's all pixels "
        f"a step is the last column), run for the tiled fit's CPU time"
        + "".join(f" (at {s}: {SINGLE_LONG[s]:g}× that, for its time to 30/35/40 dB)" for s in SINGLE_LONG)
        + ". Its whole-image PSNR (clamped render of the current parameters) is taken at the first step past each "
        "quarter of the tiled time (renders left out of the time); '> t': not reached in the t CPU seconds it ran.",
        "",
    ]
    rows = []
    for size in sizes:
        keys = [f"{n}/{size}" for n in PHOTOS if f"{n}/{size}" in P]
        for k in keys:
            r = P[k]
            t, sg = r["tiled"], r["single"]
            eq = sg["at_equal_time"]
            ap = r.get("single_all_pixels")
            rows.append([k.split("/")[0], f"{r['size'][0]}×{r['size'][1]}", _s(t["psnr"]), _s(t["cpu"]),
                         f"2→{sg['width']}×{SINGLE_LAYERS}→3 ({sg['params']:,})", eq[0], _s(eq[3]),
                         _s(t["psnr"] - eq[3]), " / ".join(_ttd(sg["curve"], db, sg["budget"]) for db in THRESHOLDS),
                         f"{_s(ap[3])} ({ap[0]} steps)" if ap else "—"])
        rows.append([f"**median, {size}**", "", _s(med(P[k]["tiled"]["psnr"] for k in keys)),
                     _s(med(P[k]["tiled"]["cpu"] for k in keys)), "", "",
                     _s(med(P[k]["single"]["at_equal_time"][3] for k in keys)),
                     f"**{_s(med(P[k]['tiled']['psnr'] - P[k]['single']['at_equal_time'][3] for k in keys))}**", "",
                     _s(med(P[k]["single_all_pixels"][3] for k in keys))
                     if all("single_all_pixels" in P[k] for k in keys) else "—"])
    out += [table(["photo", "working size", "tiled PSNR (dB)", "tiled time (s)", "single SIREN (params)",
                   "its steps in that time", "single PSNR (dB)", "tiled − single (dB)",
                   "single time to 30 / 35 / 40 dB (s)", "single, all pixels a step (dB)"], rows), ""]

    def meds(size, f):
        keys = [f"{n}/{size}" for n in PHOTOS if f"{n}/{size}" in P]
        return med(f(P[k]) for k in keys) if keys else float("nan")

    g = []
    if 256 in sizes:
        p256 = meds(256, lambda r: r["tiled"]["psnr"])
        c256, w256 = meds(256, lambda r: r["tiled"]["cpu"]), meds(256, lambda r: r["tiled"]["wall"])
        g.append(["default photo fit (256, TILE_RECIPE) ≥ 36 dB", f"{p256:.2f} dB", "met" if p256 >= 36 else "not met"])
        g.append(["256: ≥ 36 dB in ≤ 3 s median wall", f"{p256:.2f} dB in {c256:.2f} s CPU ({w256:.2f} s wall)",
                  "met" if p256 >= 36 and c256 <= 3 else "not met"])
    if 512 in sizes:
        p512 = meds(512, lambda r: r["tiled"]["psnr"])
        c512, w512 = meds(512, lambda r: r["tiled"]["cpu"]), meds(512, lambda r: r["tiled"]["wall"])
        g.append(["512: ≥ 35 dB in ≤ 12 s median wall", f"{p512:.2f} dB in {c512:.2f} s CPU ({w512:.2f} s wall)",
                  "met" if p512 >= 35 and c512 <= 12 else "not met"])
    for size in sizes:
        gap = meds(size, lambda r: r["tiled"]["psnr"] - r["single"]["at_equal_time"][3])
        g.append([f"{size}: ≥ 8 dB above the single SIREN at equal time", f"{gap:+.2f} dB",
                  "met" if gap >= 8 else "not met"])
    out += ["Goals (medians over the four photos; times on one thread, judged by CPU time):", "",
            table(["goal", "measured", ""], g), ""]
    return out
