"""The edits of bench/tiles.py and their table, "Editing tiled photos": every shipped colour editor on the
256² tiled fits against no edit and test-time Adam, the seam ratio, latency, synthetic paint strokes.
`python -m bench.tiles edits`.
"""

from __future__ import annotations

import contextlib
import math
import time

import numpy as np
import torch

from bench.report import table
from bench.tiles_common import (
    ADAM_KS,
    ADAM_LRS,
    LAT_REPS,
    PHOTOS,
    POINTS,
    SEAM_PX,
    SEEDS,
    STROKE_SEED,
    STROKES,
    TUNE_PHOTO,
    measured,
    med,
    save_result,
    stamp,
    tile_arch,
)
from bench.tiles_fit import load_tiles


@contextlib.contextmanager
def _timed_calls(module, names: list[str], log: dict):
    """Wrap module-level functions of `module` so each call's time is appended to log[name]."""
    orig = {n: getattr(module, n) for n in names}

    def wrap(n, f):
        def g(*a, **k):
            t0 = time.perf_counter()
            out = f(*a, **k)
            log.setdefault(n, []).append(time.perf_counter() - t0)
            return out
        return g

    for n in names:
        setattr(module, n, wrap(n, orig[n]))
    try:
        yield
    finally:
        for n, f in orig.items():
            setattr(module, n, f)


def profiled_edit(params, arch, editor, grid, reps: int, **kw) -> dict:
    """p50 / p95 of `edit_inr` (objective + decomposition + editor + render) over `reps` runs after 2 warm-ups,
    and the p50 split: original render, objective (filter or paint target), point sampling, editor forward
    (decomposition included: EditResult.seconds), edited render, the rest."""
    import gmn.edit as E

    total, cpu, split = [], [], {k: [] for k in ("render original", "objective", "sample points", "editor forward",
                                       "render edited", "rest")}
    for i in range(reps + 2):
        log: dict = {}
        with _timed_calls(E, ["render_tiles", "filter_target", "paint_target", "make_batch"], log):
            t0, c0 = time.perf_counter(), time.process_time()
            res = E.edit_inr(params, arch, editor, grid=grid, points=POINTS, seed=i, **kw)
            dt, dc = time.perf_counter() - t0, time.process_time() - c0
        if i < 2:
            continue
        total.append(dt)
        cpu.append(dc)
        parts = {"render original": log["render_tiles"][0], "render edited": log["render_tiles"][1],
                 "objective": sum(log.get("filter_target", []) + log.get("paint_target", [])),
                 "sample points": sum(log["make_batch"]), "editor forward": res.seconds}
        parts["rest"] = dt - sum(parts.values())
        for k, v in parts.items():
            split[k].append(v)
    ms = lambda xs, q: round(float(np.percentile(xs, q)) * 1000, 1)  # noqa: E731
    return {"p50": ms(total, 50), "p95": ms(total, 95), "cpu_p50": ms(cpu, 50), "reps": reps,
            "tiles": int(len(res.tiles)),
            "split": {k: ms(v, 50) for k, v in split.items()}}


def colour_editors() -> tuple[dict, dict]:
    """Registry editors for 3-channel INRs of the tiles' architecture: (filters, paints), name → path."""
    from gmn.edit import list_editors
    from gmn.editors import EditorError, load_editor
    from gmn.objectives import FILTERS

    filt, paint = {}, {}
    for name, path in list_editors().items():
        editor, _ = load_editor(path)
        if editor.config.siren.dim_out != 3:
            continue
        try:
            editor.check(tile_arch())
        except EditorError as e:
            print(f"skipping colour editor {name}: {e}", flush=True)
            continue
        (filt if editor.config.task in FILTERS else paint if editor.config.task == "paint" else {})[name] = path
    return filt, paint


def seam_masks(grid) -> tuple[torch.Tensor, torch.Tensor]:
    """(H, W) bool: pixels within SEAM_PX of an inner tile edge, and the others (less a SEAM_PX image frame)."""
    h, w = grid.image_size
    band = torch.zeros(h, w, dtype=torch.bool)
    for starts, length, axis in ((grid.row_starts, h, 0), (grid.col_starts, w, 1)):
        for s in starts:
            for e in (s, s + grid.tile):
                if 0 < e < length:
                    if axis == 0:
                        band[max(0, e - SEAM_PX): e + SEAM_PX, :] = True
                    else:
                        band[:, max(0, e - SEAM_PX): e + SEAM_PX] = True
    frame = torch.ones(h, w, dtype=torch.bool)
    frame[SEAM_PX:-SEAM_PX, SEAM_PX:-SEAM_PX] = False
    return band, ~band & ~frame


def seam_ratio(render_hw, target, grid) -> float:
    band, inner = seam_masks(grid)
    sq = (render_hw - target).pow(2).mean(-1)
    return float(sq[band].mean() / sq[inner].mean().clamp_min(1e-12))


def render_photo(params, grid):
    from inr.tiles import render_tiles

    return render_tiles(params, tile_arch(), grid)[0]


def _filter_batch(params, grid, target, seed):
    """The per-tile objective and the B points edit_inr samples with `seed` (same generator, same order)."""
    from gmn.data import make_batch
    from gmn.objectives import EditTarget
    from inr.siren import coordinate_grid

    per_tile = EditTarget(grid.cut(target[None])[0], torch.ones(grid.count, grid.tile, grid.tile, 1))
    local = coordinate_grid(grid.tile, grid.tile)
    return per_tile, local, make_batch(params, per_tile, local, POINTS, torch.Generator().manual_seed(seed))


def filter_edits(ename: str, editor, fits: dict) -> dict:
    """MSE to the whole-image target: no edit, the editor, Adam on its points and on the full target."""
    from gmn.edit import edit_inr, global_points
    from gmn.evaluate import adam_on_full, adam_on_points
    from gmn.objectives import filter_target

    arch = tile_arch()
    task = editor.config.task
    out = {}
    lr_for: dict = {}
    for name in [TUNE_PHOTO] + [p for p in PHOTOS if p != TUNE_PHOTO]:
        params, grid, image = fits[name]
        orig = render_photo(params, grid)
        t_obj = time.perf_counter()
        target = filter_target(orig[None], task).target[0].float()
        t_obj = time.perf_counter() - t_obj
        def mse(p, grid=grid, target=target) -> float:
            return float((render_photo(p, grid) - target).pow(2).mean())

        r = {"none": float((orig - target).pow(2).mean()), "objective_ms": t_obj * 1000,
             "seam": {"fit (vs photo)": seam_ratio(orig, image, grid), "no edit": seam_ratio(orig, target, grid)}}
        eds = [edit_inr(params, arch, editor, grid=grid, points=POINTS, seed=s) for s in SEEDS]
        r["editor"] = med(e.mse for e in eds)
        r["editor_ms"] = med(e.seconds for e in eds) * 1000
        r["seam"]["editor"] = med(seam_ratio(render_photo(e.params, grid), target, grid) for e in eds)
        # Adam on the editor's B points of every tile (the same draw: edit_inr's generator and order)
        per_tile = local = None
        pts: dict = {}
        for s, e in zip(SEEDS, eds):
            per_tile, local, b = _filter_batch(params, grid, target, s)
            assert torch.allclose(e.points, global_points(b.x, torch.arange(grid.count), grid)), \
                "the points differ from edit_inr's"
            w = torch.ones_like(b.target_pts[..., :1])
            for k in ADAM_KS:
                lrs = ADAM_LRS if name == TUNE_PHOTO else (lr_for[("points", k)],)
                for lr in lrs:
                    t0 = time.perf_counter()
                    new = adam_on_points(b.params, arch, b.x, b.target_pts, w, steps=k, lr=lr)
                    dt = time.perf_counter() - t0
                    pts.setdefault((k, lr), []).append((mse(new), dt))
        r["points"] = {f"{k}/{lr:g}": {"mse": med(m for m, _ in v), "ms": med(t for _, t in v) * 1000}
                       for (k, lr), v in pts.items()}
        # Adam on the full target: K = 10, 100, and as many steps as the editor's time holds
        full: dict = {}
        for k in ADAM_KS:
            lrs = ADAM_LRS if name == TUNE_PHOTO else (lr_for[("full", k)],)
            for lr in lrs:
                t0 = time.perf_counter()
                new = adam_on_full(params, arch, per_tile, local, steps=k, lr=lr)
                dt = time.perf_counter() - t0
                full[(k, lr)] = (mse(new), dt, new)
        step_s = med(dt / k for (k, _), (_, dt, _) in full.items())
        k_eq = int(r["editor_ms"] / 1000 // step_s)
        r["adam_step_ms"] = step_s * 1000
        r["k_equal_time"] = k_eq
        if name == TUNE_PHOTO:
            for kind, res in (("points", r["points"]), ("full", {f"{k}/{lr:g}": {"mse": v[0]}
                                                                 for (k, lr), v in full.items()})):
                for k in ADAM_KS:
                    lr_for[(kind, k)] = min(ADAM_LRS, key=lambda lr: res[f"{k}/{lr:g}"]["mse"])
            lr_for[("full", "eq")] = lr_for[("full", ADAM_KS[0])]
        if k_eq > 0:
            lr = lr_for[("full", "eq")]
            t0 = time.perf_counter()
            new = adam_on_full(params, arch, per_tile, local, steps=k_eq, lr=lr)
            full[(k_eq, lr, "eq")] = (mse(new), time.perf_counter() - t0, new)
        k100, lr100 = ADAM_KS[-1], lr_for[("full", ADAM_KS[-1])]
        r["seam"][f"Adam full K = {k100}"] = seam_ratio(render_photo(full[(k100, lr100)][2], grid), target, grid)
        r["full"] = {"/".join(f"{x:g}" if isinstance(x, float) else str(x) for x in key):
                     {"mse": v[0], "ms": v[1] * 1000} for key, v in full.items()}
        out[name] = r
        print(f"{ename} on {name}: none {r['none']:.3e}, editor {r['editor']:.3e} ({r['editor_ms']:.0f} ms), "
              f"Adam full step {step_s * 1000:.0f} ms, K_eq {k_eq}", flush=True)
    return {"photos": out, "lr": {f"{a}/{b}": v for (a, b), v in lr_for.items()}}


def _paint_errors(img, orig, colour, m) -> dict:
    """Inside: MSE to the colour over the mask m (H, W); outside: MSE to the original elsewhere; total: to the
    paint target (the objective with λ = 1)."""
    tgt = torch.where(m[..., None], colour.expand_as(orig), orig)
    return {"inside": float((img - colour).pow(2)[m].mean()), "outside": float((img - orig).pow(2)[~m].mean()),
            "total": float((img - tgt).pow(2).mean())}


def _stroke_mask(grid) -> torch.Tensor:
    """A short stroke through the middle of the image (a few tiles): (H, W, 1)."""
    from skimage import draw, morphology

    h, w = grid.image_size
    m = np.zeros((h, w), dtype=bool)
    rr, cc = draw.line(int(h * 0.42), int(w * 0.40), int(h * 0.50), int(w * 0.52))
    m[rr, cc] = True
    m = morphology.dilation(m, morphology.disk(4))
    return torch.from_numpy(m[..., None].astype(np.float32))


def paint_edits(ename: str, editor, fits: dict) -> dict:
    """Synthetic strokes: inside-mask MSE to the colour, outside-mask MSE to the original render."""
    from gmn.data import make_batch
    from gmn.edit import edit_inr
    from gmn.evaluate import adam_on_points
    from gmn.objectives import paint_target, random_paint
    from inr.siren import coordinate_grid, select

    arch = tile_arch()
    lam = editor.config.lam
    out, lr_for = {}, {}
    for name in [TUNE_PHOTO] + [p for p in PHOTOS if p != TUNE_PHOTO]:
        params, grid, _ = fits[name]
        h, w = grid.image_size
        orig = render_photo(params, grid)
        masks, colours = random_paint(STROKES, h, w, 3, generator=np.random.default_rng(STROKE_SEED))
        strokes = []
        adam: dict = {}
        for j in range(STROKES):
            mask, colour = masks[j], colours[j]
            m = mask[..., 0] > 0.5

            def errs(img, m=m, colour=colour, orig=orig) -> dict:
                return _paint_errors(img, orig, colour, m)

            e = edit_inr(params, arch, editor, grid=grid, points=POINTS, mask=mask, paint=colour, seed=0)
            s = {"coverage": float(m.float().mean()), "tiles": int(len(e.tiles)), "none": errs(orig),
                 "editor": errs(render_photo(e.params, grid)), "editor_ms": e.seconds * 1000}
            # Adam on the same points of the same touched tiles
            obj = paint_target(orig[None], mask[None], colour[None], lam)
            tiles = grid.touched(mask)
            per_tile = obj.map(lambda t, g=grid: g.cut(t)[0]).select(tiles)  # keeps the objective's λ
            b = make_batch(select(params, tiles), per_tile, coordinate_grid(grid.tile, grid.tile), POINTS,
                           torch.Generator().manual_seed(0))
            wts = b.objective.weight_at(b.mask_pts, b.target_pts)
            for k in ADAM_KS:
                for lr in ADAM_LRS if name == TUNE_PHOTO else (lr_for[k],):
                    t0 = time.perf_counter()
                    sub = adam_on_points(b.params, arch, b.x, b.target_pts, wts, steps=k, lr=lr)
                    dt = time.perf_counter() - t0
                    new = [p.clone() for p in params]
                    for p, q in zip(new, sub):
                        p[tiles] = q
                    adam.setdefault((k, lr), []).append({**errs(render_photo(new, grid)), "ms": dt * 1000})
            strokes.append(s)
        if name == TUNE_PHOTO:
            for k in ADAM_KS:
                lr_for[k] = min(ADAM_LRS, key=lambda lr: med(a["total"] for a in adam[(k, lr)]))
        out[name] = {"strokes": strokes, "adam": {f"{k}/{lr:g}": v for (k, lr), v in adam.items()}}
        print(f"{ename} on {name}: editor inside {med(s['editor']['inside'] for s in strokes):.3e}, "
              f"outside {med(s['editor']['outside'] for s in strokes):.3e}", flush=True)
    return {"photos": out, "lr": {str(k): v for k, v in lr_for.items()}}


def cmd_edits(force: bool) -> None:
    """Measure every colour filter and paint editor on the 256² tiled fits and save the results as `edits`
    (bench.tiles.write turns them into the table)."""
    from gmn.editors import load_editor

    torch.manual_seed(0)
    fits = {name: load_tiles(name, 256) for name in PHOTOS}
    filt, paint = colour_editors()
    t_run = time.perf_counter()
    results = {"filters": {}, "paints": {}, "latency": {}}
    arch = tile_arch()
    params, grid, _ = fits[TUNE_PHOTO]
    for ename, path in filt.items():
        editor, _ = load_editor(path)
        results["filters"][ename] = {"task": editor.config.task, "kind": editor.config.kind,
                                     **filter_edits(ename, editor, fits)}
        results["latency"][ename] = profiled_edit(params, arch, editor, grid, LAT_REPS)
        print(ename, "latency", results["latency"][ename], flush=True)
    for ename, path in paint.items():
        editor, _ = load_editor(path)
        results["paints"][ename] = {"kind": editor.config.kind, **paint_edits(ename, editor, fits)}
        results["latency"][ename] = profiled_edit(params, arch, editor, grid, LAT_REPS, mask=_stroke_mask(grid),
                                                  paint=torch.tensor([0.9, 0.2, 0.2]))
        print(ename, "latency", results["latency"][ename], flush=True)
    results.update(stamp("python -m bench.tiles edits"), seconds=round(time.perf_counter() - t_run, 1))
    save_result("edits", results)


def _e(x) -> str:
    return "—" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.2e}"


def edits_body(D: dict) -> list[str]:
    out = ["### Editing tiled photos", "", measured(D), "",
           "**Which photos the editors saw.** The colour editors are trained on the `tiles` zoo, whose training "
           "crops come from 12 of the 16 regions of eight bundled photos, astronaut, coffee and chelsea among them: "
           "those three are partly seen in training (their held-out regions are the `tiles` test split, whose "
           "figures are in the editor tables and cards). **camera is in no training set**: its column is the "
           "unseen-photo figure. \"Held-out\" below means not used to tune Adam's lr.", ""]
    held = [p for p in PHOTOS if p != TUNE_PHOTO]
    for ename, R in D.get("filters", {}).items():
        P, lr = R["photos"], R["lr"]
        first = P[held[0]]
        out += [
            f"**{ename}** ({R['kind']} editor, task {R['task']}) on the 256 tiled fits: MSE of the clamped whole-image "
            f"render to the target ({R['task']} of the fit's whole render, as `gmn.edit.edit_inr` computes it); "
            f"every tile is edited from B = {POINTS} points of its own window in one batch. Editor and Adam on its "
            f"points: median over the point draws of seeds {', '.join(map(str, SEEDS))}. Test-time Adam "
            f"(`gmn.evaluate.adam_on_points` / `adam_on_full`, per tile on its window) has its lr picked from "
            f"{{{', '.join(f'{x:g}' for x in ADAM_LRS)}}} on {TUNE_PHOTO} (column 2) and applied unchanged to the "
            f"other three; the median is over those three. Equal time: as many full-target Adam steps as fit in the "
            f"editor's forward time (one step on all tiles ≈ {med(P[p]['adam_step_ms'] for p in held):.0f} ms), at "
            f"the K = {ADAM_KS[0]} lr. Times: median, ms, on one thread.",
            "",
        ]

        def cell(p, key, field="mse", P=P, lr=lr):
            v = P[p]
            if key == "none":
                return v["none"]
            if key == "editor":
                return v["editor"] if field == "mse" else v["editor_ms"]
            kind, k = key
            if kind == "eq":
                hit = [x for n, x in v["full"].items() if n.endswith("/eq")]
                return hit[0][field] if hit else (v["none"] if field == "mse" else 0.0)
            src = v["points"] if kind == "points" else v["full"]
            return src[f"{k}/{lr[f'{kind}/{k}']:g}"][field]

        methods = [("no edit", "none"), (f"{ename} editor", "editor")]
        methods += [(f"Adam on the same points, K = {k} (lr {lr[f'points/{k}']:g})", ("points", k)) for k in ADAM_KS]
        methods += [(f"Adam on the full target, equal time (K = {', '.join(str(P[p]['k_equal_time']) for p in held)}; "
                     f"lr {lr[f'full/{ADAM_KS[0]}']:g})", ("eq", 0))]
        methods += [(f"Adam on the full target, K = {k} (lr {lr[f'full/{k}']:g})", ("full", k)) for k in ADAM_KS]
        rows = []
        for label, key in methods:
            vals = [cell(p, key) for p in [TUNE_PHOTO] + held]
            ms = "—" if key == "none" else f"{med(cell(p, key, 'ms') for p in held):.0f}"
            rows.append([label] + [_e(v) for v in vals] + [f"**{_e(med(vals[1:]))}**", ms])
        header = ["method", f"{TUNE_PHOTO} (lr tuning)"] + held + ["median (not lr-tuned)", "time (ms)"]
        out += [table(header, rows), ""]
        tune = P[TUNE_PHOTO]
        tr = [[f"Adam on the points, K = {k}"] + [_e(tune["points"][f"{k}/{x:g}"]["mse"]) for x in ADAM_LRS]
              for k in ADAM_KS]
        tr += [[f"Adam on the full target, K = {k}"] + [_e(tune["full"][f"{k}/{x:g}"]["mse"]) for x in ADAM_LRS]
               for k in ADAM_KS]
        out += [f"The lr sweep on {TUNE_PHOTO} (MSE):", "",
                table(["method"] + [f"lr {x:g}" for x in ADAM_LRS], tr), ""]
        seam_keys = list(first["seam"])
        srows = [[k] + [f"{P[p]['seam'][k]:.2f}" for p in [TUNE_PHOTO] + held]
                 + [f"**{med(P[p]['seam'][k] for p in PHOTOS):.2f}**"] for k in seam_keys]
        ed_seam = med(P[p]["seam"]["editor"] for p in PHOTOS)
        out += [f"Seams: mean squared error (to the photo for the fit, to the target otherwise) on pixels within "
                f"{SEAM_PX} px of an inner tile edge, over that on the other pixels (a {SEAM_PX} px image frame "
                f"left out of both); 1 = no seam. Goal for the edited result ≤ 1.3×: "
                f"{'met' if ed_seam <= 1.3 else 'not met'} (median {ed_seam:.2f}).", "",
                table(["result", TUNE_PHOTO] + held + ["median (all four)"], srows), ""]
    paints = D.get("paints", {})
    for ename, R in paints.items():
        P, lr = R["photos"], R["lr"]
        hs = [s for p in held for s in P[p]["strokes"]]
        cover = [s["coverage"] for s in hs]
        ntile = [s["tiles"] for s in hs]
        out += [f"**{ename}** ({R['kind']} paint editor): {STROKES} synthetic strokes per photo "
                f"(`gmn.objectives.random_paint` on the whole working image, seed {STROKE_SEED}; on the other three "
                f"photos they cover {min(cover):.0%}–{max(cover):.0%} of the image and touch {min(ntile)}–{max(ntile)} "
                f"tiles), one colour each. Inside: MSE to the colour over the mask; outside: MSE to the fit's original "
                f"render elsewhere; total: MSE to the paint target (the objective, λ = 1). Only the touched tiles are "
                f"edited, B = {POINTS} points per tile (half inside the mask where it can). Adam on the same points "
                f"and tiles, lr from {{{', '.join(f'{x:g}' for x in ADAM_LRS)}}} by total MSE on {TUNE_PHOTO}'s "
                f"strokes. Medians over the {len(hs)} strokes of the three photos not used for lr tuning "
                f"({TUNE_PHOTO}'s in brackets).",
                ""]

        def prow(label, getter, ms=None, hs=hs, P=P):
            vals = {f: med(getter(s, f) for s in hs) for f in ("inside", "outside", "total")}
            tv = {f: med(getter(s, f) for s in P[TUNE_PHOTO]["strokes"]) for f in ("inside", "outside", "total")}
            return [label] + [f"{_e(vals[f])} ({_e(tv[f])})" for f in ("inside", "outside", "total")] + [ms or "—"]

        rows = [prow("no edit", lambda s, f: s["none"][f]),
                prow(f"{ename} editor", lambda s, f: s["editor"][f], f"{med(s['editor_ms'] for s in hs):.0f}")]
        for k in ADAM_KS:
            key = f"{k}/{lr[str(k)]:g}"
            per = [(s, P[p]["adam"][key][i]) for p in held for i, s in enumerate(P[p]["strokes"])]
            tper = list(zip(P[TUNE_PHOTO]["strokes"], P[TUNE_PHOTO]["adam"][key]))
            vals = {f: med(a[f] for _, a in per) for f in ("inside", "outside", "total")}
            tv = {f: med(a[f] for _, a in tper) for f in ("inside", "outside", "total")}
            rows.append([f"Adam on the same points, K = {k} (lr {lr[str(k)]:g})"]
                        + [f"{_e(vals[f])} ({_e(tv[f])})" for f in ("inside", "outside", "total")]
                        + [f"{med(a['ms'] for _, a in per):.0f}"])
        out += [table(["method", "inside MSE", "outside MSE", "total MSE", "time (ms)"], rows), ""]
    lat = D.get("latency", {})
    if lat:
        parts = list(next(iter(lat.values()))["split"])
        rows = []
        for ename, L in lat.items():
            what = ("paint stroke" if ename in paints else "whole-photo filter")
            goal = "" if ename in paints else " (goal p50 ≤ 300 ms: " + ("met" if L["p50"] <= 300 else "not met") + ")"
            rows.append([f"{ename}: {what}, {L['tiles']} tiles", f"{L['p50']:.0f}{goal}", f"{L['p95']:.0f}",
                         f"{L['cpu_p50']:.0f}" if "cpu_p50" in L else "—"]
                        + [f"{L['split'][k]:.0f}" for k in parts])
        out += [f"Latency of one edit of the 256² {TUNE_PHOTO} (9×9 tiles) in-process: `gmn.edit.edit_inr` "
                f"(render, objective, point sampling, decomposition + editor forward, edited render), "
                f"{next(iter(lat.values()))['reps']} runs after 2 warm-ups, one thread; the paint stroke is a short "
                f"line of radius 4 px through the middle. The split is the p50 of each part (timed by wrapping "
                f"`gmn.edit`'s calls), so the parts need not sum to the total's p50.", "",
                table(["edit", "p50 (ms)", "p95 (ms)", "CPU p50 (ms)"] + [f"{k} (ms)" for k in parts], rows), ""]
    return out
