"""Editor benchmark (docs/DESIGN.md §6): train every editor at an equal budget, evaluate on the test
split against no edit, test-time Adam on the same points and Adam on the full target.

    python -m bench.editors train  --task dilate --data mnist5k --minutes 10 [--kinds ws,gmn --seeds 0,1,2 --jobs 2]
    python -m bench.editors report --task dilate --data mnist5k
    python -m bench.editors train  --task paint --data mnist5k --minutes 10 --kinds gmn,ws+probe+res,ws+gmn,ws --seeds 0
    python -m bench.editors report --task paint --data mnist5k
    python -m gmn ship             --task dilate --data mnist5k --run ws-s0 --name dilate   # -> assets/editors
    python -m bench.editors paired --task paint --data tiles --editors 454d282:paint-color,paint-color --seeds 0,1,2,3,4

`train` runs `python -m gmn train` once per (editor, seed) into $GMN_HOME/runs/bench/{data}-{task}/{kind}-s{seed}
(resumable: finished runs are skipped, interrupted ones resume), and logs each run's command
and wall time in runs.json there. `report` evaluates every finished run's best-validation
checkpoint on the test split and writes the section `editors-{data}-{task}` of BENCHMARKS.md;
for paint the test strokes are drawn once from a fixed seed and the MSE is reported inside the
mask, outside it and in total.
`paired` scores paint editors on several stroke seeds, the same strokes and points for each, against the first
(REV:NAME reads a shipped file at a git revision, so an editor that is no longer shipped stays comparable).
Expected time: train = minutes × runs / jobs; report about 5 minutes; paired a few minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import re
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from bench.report import ROOT, table, write_section
from gmn.release import WIDTH_LIMIT, bench_run_dir, found, sci, ship, stamp_widths, width_check
from gmn.train import init_card
from inr.home import say_where

KINDS = ["ws", "gmn", "ws+gmn", "ws+probe", "ws+probe+res", "gmnpp", "mlp"]
SEEDED = {"ws", "gmn", "ws+gmn"}
INFO = {
    "ws": "θ only",
    "ws+probe": "θ + activations at B points (no target)",
    "ws+probe+res": "θ + activations + residuals f−t at B points",
    "ws+gmn": "θ + gradients at B points",
    "gmn": "θ + gradients at B points",
    "gmnpp": "θ + gradients at B points",
    "mlp": "θ + mean gradient at B points",
    "ng": "θ only (neural-graph backbone)",
    "ng+gmn": "θ + gradients at B points (neural-graph backbone)",
}



def run_dir(data: str, task: str) -> Path:
    """The benchmark runs of one (data, task): $GMN_HOME/runs/bench/DATA-TASK (gmn.release, outside the checkout)."""
    return bench_run_dir(data, task)


def _plan(args) -> list[tuple[str, int]]:
    kinds = args.kinds.split(",") if args.kinds else KINDS
    seeds = [int(s) for s in args.seeds.split(",")]
    return [(k, s) for k in kinds for s in (seeds if k in SEEDED else seeds[:1])]


def run_name(kind: str, seed: int, tag: str | None = None) -> str:
    """kind[-tag]-sSEED: a tag names a model variant (--model overrides)."""
    return f"{kind}{'-' + tag if tag else ''}-s{seed}"


def method_of(run: str) -> str:
    """The method (table row) of a run folder name: its name without the seed."""
    return run.rsplit("-s", 1)[0]


def _train_one(args, kind: str, seed: int) -> dict:
    out = run_dir(args.data, args.task) / run_name(kind, seed, args.tag)
    state_file = out / "done.json"
    if state_file.exists():
        return json.loads(state_file.read_text())
    budget = ["--steps", str(args.steps)] if args.steps else ["--minutes", str(args.minutes)]  # steps win: show one
    cmd = [sys.executable, "-m", "gmn", "train", "--task", args.task, "--data", args.data, "--editor", kind,
           *budget, "--seed", str(seed), "--out", str(out), "--device",
           "cpu", "-q"] + (["--model", args.model] if args.model else []) + (["--augment"] if args.augment else [])
    if args.init:
        cmd += ["--init", args.init]
    if args.lr:
        cmd += ["--lr", str(args.lr)]
    if args.outside_weight != 1.0:
        cmd += ["--outside-weight", str(args.outside_weight)]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.log", "a") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    shown = [f"'{c}'" if c.startswith("{") else c for c in cmd[1:]]
    rec = {"kind": kind, "seed": seed, "command": " ".join(shown), "wall_seconds": round(time.time() - t0, 1),
           "threads": args.threads, "date": time.strftime("%Y-%m-%d %H:%M")}
    state_file.write_text(json.dumps(rec, indent=2))
    return rec


def cmd_train(args) -> None:
    from gmn.data import ensure_zoo

    for split in ("train", "val", "test"):
        ensure_zoo(args.data, split)
    say_where("bench.editors runs", run_dir(args.data, args.task))
    plan = _plan(args)
    with ThreadPoolExecutor(args.jobs) as pool:
        for rec in pool.map(lambda ks: _train_one(args, *ks), plan):
            print(f"{rec['kind']} seed {rec['seed']}: {rec['wall_seconds']:.0f} s", flush=True)
    runs = [json.loads(p.read_text()) for p in sorted(run_dir(args.data, args.task).glob("*/done.json"))]
    (run_dir(args.data, args.task) / "runs.json").write_text(json.dumps(runs, indent=2))


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return sci(values[0])
    return f"{sci(statistics.mean(values))} ± {sci(statistics.stdev(values))}"


def _mse_cells(rs: list[dict], paint: bool) -> list[str]:
    """Cells for one method: [reference, objective] MSE for filters, [inside, outside, total] for paint (mean ± std
    over rs)."""
    keys = ("inside", "outside", "mse") if paint else ("mse", "objective")
    return [_fmt([r[k] for r in rs]) for k in keys]


def _info(kind: str, task: str) -> str:
    if task == "paint" and kind == "ws":
        return "θ only (no paint information: the floor)"
    return INFO[kind]


def _checks(task: str, results: dict[str, list[dict]], none: float, best_adam: float) -> list[str]:
    """The figures issue 4 asks for, computed from the table (mean test MSE)."""
    m = {k: statistics.mean(r["mse"] for r in rs) for k, rs in results.items()}
    if not m:
        return []
    best = min(m, key=m.get)
    out = [f"every learned editor beats no edit ({sci(none)}): "
           + ("yes" if all(v < none for v in m.values()) else
              "no, not " + ", ".join(k for k, v in m.items() if v >= none)),
           f"best editor {best} at {m[best] / best_adam:.2f}× the best Adam on the same points (goal ≤ 0.45×)"]
    backbone = {"ws+gmn": ("ws", "ws+probe", "ws+probe+res"), "gmn": ("ws", "ws+probe", "ws+probe+res"),
                "ng+gmn": ("ng",)}
    for name in m:  # a gradient reader against the weights-only runs of the same tag (same budget)
        kind, tag = _kind_tag(name)
        for other_kind in backbone.get(kind, ()):
            other = other_kind + ("-" + tag if tag else "")
            if other in m:
                out.append(f"{name} {_versus(m, name, other)}")
        rounds = re.fullmatch(r"r(\d+)-?(.*)", tag or "")
        if rounds:  # an R-round run against its one-round run of the same steps or budget, and the backbone
            rest = rounds.group(2)
            for other_kind in (kind, *backbone.get(kind, ())):
                other = other_kind + ("-" + rest if rest else "")
                if other in m:
                    out.append(f"{name} ({rounds.group(1)} rounds) {_versus(m, name, other)}")
    return out


def _versus(m: dict[str, float], name: str, other: str) -> str:
    pct = (1 - m[name] / m[other]) * 100
    verdict = f"beats {other} ({pct:.0f}% lower)" if pct > 0 else f"does not beat {other} ({-pct:.0f}% higher)"
    return f"{verdict}: {sci(m[name])} vs {sci(m[other])}"


def _kind_tag(method: str) -> tuple[str, str | None]:
    """'ws+gmn-2k' -> ('ws+gmn', '2k'): the editor kind of a table row and its variant tag."""
    for kind in sorted(INFO, key=len, reverse=True):
        if method == kind or method.startswith(kind + "-"):
            return kind, method[len(kind) + 1:] or None
    return method, None


def _oce_cost(data, copies: list[int]) -> str:
    """What an OCE edit of k copies costs the edited INR: size of its file and render time (median of 20)."""
    import tempfile

    from gmn.editors import apply_edit, edited_arch
    from inr.files import save_inr
    from inr.siren import render

    arch, params, side = data.arch, data.params, data.side
    rows = []
    for k in [1, *copies]:
        dtheta = [torch.zeros_like(p) if k == 1 else p.new_zeros(*p.shape, k) for p in params]
        edited, wide = apply_edit(params, dtheta), edited_arch(arch, dtheta)
        with tempfile.TemporaryDirectory() as d:
            save_inr(Path(d) / "x.safetensors", edited, wide)
            size = (Path(d) / "x.safetensors").stat().st_size
        times = []
        for _ in range(20):
            t0 = time.perf_counter()
            render(edited, wide, side)
            times.append(time.perf_counter() - t0)
        rows.append([str(k), str(wide.hidden), str(sum(t[0].numel() for t in edited)), f"{size / 1024:.1f}",
                     f"{statistics.median(times) * 1000:.2f}"])
    return (f"OCE cost: an edit of k copies merges them into one SIREN of k× the width (`gmn.editors.merge_copies`); "
            f"its file and its {side}×{side} render time (one thread, median of 20) against k = 1:\n\n"
            + table(["k", "width", "parameters", "file (kB)", "render (ms)"], rows))


def _chain_table(data, shipped: list[Path], points: int) -> str:
    """Apply again: each shipped filter editor on its own edited INR (the target recomputed from the edited
    render, as the app does), against editing once. MSE of the clamped render to that step's target."""
    from gmn.data import make_batch
    from gmn.editors import apply_edit, edited_arch, load_editor
    from gmn.objectives import filter_target
    from inr.siren import render

    def once(editor, params, arch, seed):
        obj = filter_target(render(params, arch, data.side), data.task)
        b = make_batch(params, obj, data.grid, points, torch.Generator().manual_seed(seed))
        with torch.no_grad():
            d = editor.eval()(params, arch, b.x, b.target_pts)
        new, wide = apply_edit(params, d), edited_arch(arch, d)
        return new, wide, (render(new, wide, data.side).clamp(0, 1) - obj.target).pow(2).mean().item()

    rows = []
    for path in shipped:
        editor, _ = load_editor(path)
        p1, a1, first = once(editor, data.params, data.arch, 0)
        p2, a2, second = once(editor, p1, a1, 1)
        rows.append([f"`{path.stem}`", sci(first), sci(second), str(a2.hidden)])
    return (f"Apply again: each shipped editor on {len(data)} test INRs, then on its own result (the second target "
            f"is the {data.task} of the first result's render, as the app computes it); MSE to each step's target:\n\n"
            + table(["editor", "first edit", "second edit", "width after two"], rows))


def _budget(card: dict) -> str:
    """A run's training budget as the table shows it: steps and CPU-minutes (and its data)."""
    m = card.get("metrics", {})
    out = f"{m.get('steps')} steps, {card.get('training_minutes')} CPU-min, {card.get('data', {}).get('dataset')}"
    init = card.get("init")
    path = (card.get("train_config") or {}).get("init")
    if path and found(path).exists():  # read again: older cards lack `init`, or count only the last run
        init = init_card(str(found(path)))
    if init:  # fine-tuned: the runs it started from cost this much too
        runs = init.get("runs", 1)
        what = ("the run it started from" if runs == 1
                else f"the {runs} runs it started from (one fine-tuned from the next)")
        out += f", after {init.get('steps')} steps, {init.get('training_minutes')} CPU-min of {what}"
    return out


def _baseline_rows(test, val, B: int, paint: bool) -> tuple[list[list], dict, float | None, dict]:
    """The report's rows without learning: no edit, the objective reached exactly (filters), Adam on the same B
    points and on the full target (K = 1, 10, 100, lr tuned on val), nearest-point painting (paint). Returns
    (rows, no-edit errors, the objective's floor or None for paint, {K: (Adam-on-points MSE, lr)})."""
    from gmn.evaluate import (
        nearest_point_paint,
        no_edit_errors,
        objective_floor,
        run_adam,
        tune_adam_lr,
        tune_nearest_alpha,
    )

    floor = None
    none = no_edit_errors(test)
    rows = [["no edit", "—", *_mse_cells([none], paint), "—", "—", "—"]]
    if not paint:
        floor = objective_floor(test)
        rows.append(["the objective reached exactly", "the filter of the INR's own render", sci(floor), "0", "—",
                     "—", "—"])
    adam_pts = {}
    for k in (1, 10, 100):
        lr, _ = tune_adam_lr(val, points=B, steps=k)
        r = run_adam(test, points=B, steps=k, lr=lr)
        adam_pts[k] = (r["mse"], lr)
        rows.append([f"Adam on the same {B} points, K={k} (lr {lr:g})", f"target at {B} points",
                     *_mse_cells([r], paint), "", f"{r['seconds_per_inr'] * 1000:.2f}", "—"])
        print(rows[-1], flush=True)
    for k in (1, 10, 100):
        lr, _ = tune_adam_lr(val, points=None, steps=k)
        r = run_adam(test, points=None, steps=k, lr=lr)
        rows.append([f"Adam on the full target, K={k} (lr {lr:g})", "full target (oracle)", *_mse_cells([r], paint),
                     "", f"{r['seconds_per_inr'] * 1000:.2f}", "—"])
        print(rows[-1], flush=True)
    if paint:  # the same points, no learning, no INR: what they say about the stroke's shape
        alpha = tune_nearest_alpha(val, points=B)
        r = nearest_point_paint(test, points=B, alpha=alpha)
        rows.append([f"nearest-point painting (α {alpha:g}; a pixel image, not an INR)",
                     f"mask and target at {B} points", *_mse_cells([r], paint), "", "—", "—"])
        print(rows[-1], flush=True)
    return rows, none, floor, adam_pts


def _learned_rows(args, test, B: int, paint: bool, best_adam: float, rows: list[list],
                  test_mse: dict[Path, float]) -> tuple[list[Path], dict[str, list[dict]]]:
    """One row per trained method (mean over its finished runs' best checkpoints), appended to `rows`; each
    run's test MSE goes into `test_mse`. Returns (the runs' checkpoint paths, {method: per-run results})."""
    from gmn.editors import load_editor
    from gmn.evaluate import run_editor

    results: dict[str, list[dict]] = {}
    latency: dict[str, float] = {}
    overrides: dict[str, dict] = {}  # EditorConfig overrides of a variant (--model)
    budgets: dict[str, list[str]] = {}  # per method: each run's steps and CPU-minutes
    # only finished runs (done.json): an interrupted run resumes on the next `train` and is not reported
    runs = sorted(p.parent / "best.safetensors" for p in run_dir(args.data, args.task).glob("*/done.json"))
    for path in runs:
        editor, card = load_editor(path)
        r = run_editor(editor, test, points=B)
        test_mse[path] = r["mse"]
        results.setdefault(method_of(path.parent.name), []).append(r)
        overrides[method_of(path.parent.name)] = dict(card.get("train_config", {}).get("model") or {})
        if card.get("train_config", {}).get("augment"):
            overrides[method_of(path.parent.name)]["trained on"] = "sign-flipped copies"
        if card.get("train_config", {}).get("outside_weight", 1.0) != 1.0:
            overrides[method_of(path.parent.name)]["loss outside ×"] = card["train_config"]["outside_weight"]
        latency[method_of(path.parent.name)] = r["seconds_per_inr"]
        budgets.setdefault(method_of(path.parent.name), []).append(_budget(card))
        print(path.parent.name, r["mse"], flush=True)
    for kind in [k for k in KINDS if k in results] + sorted(k for k in results if k not in KINDS):
        if kind in results:
            m = statistics.mean(r["mse"] for r in results[kind])
            n = len(results[kind])
            info = _info(kind.split("-")[0], args.task)
            if overrides.get(kind):
                info += " (" + ", ".join(f"{k} = {v}" for k, v in overrides[kind].items()) + ")"
            rows.append([f"**{kind}** ({n} seed{'s' if n > 1 else ''})", info,
                         *_mse_cells(results[kind], paint), f"{m / best_adam:.2f}×", f"{latency[kind] * 1000:.2f}",
                         "; ".join(dict.fromkeys(budgets[kind]))])
    return runs, results


def _shipped_rows(args, test, B: int, paint: bool, best_adam: float, rows: list[list],
                  test_mse: dict[Path, float]) -> list[Path]:
    """One row per shipped editor (assets/editors) of this task tested on this test zoo, appended to `rows`;
    returns their files."""
    from gmn.editors import load_editor
    from gmn.evaluate import run_editor

    shipped = []
    for card_path in sorted((ROOT / "assets" / "editors").glob("*.json")):
        card = json.loads(card_path.read_text())
        from gmn.data import zoo_path

        dataset = card.get("data", {}).get("dataset")
        if card.get("task") != args.task or dataset is None or zoo_path(dataset, "test") != zoo_path(args.data, "test"):
            continue  # the shipped editors tested on this test zoo (an augmented dataset tests on the real one)
        editor, _ = load_editor(card_path.with_suffix(".safetensors"))
        if editor.config.siren.layers != test.data.arch.layers:
            continue
        shipped.append(card_path.with_suffix(".safetensors"))
        r = run_editor(editor, test, points=B)
        test_mse[shipped[-1]] = r["mse"]
        rows.append([f"shipped `{card_path.stem}` ({card.get('editor')}, {card.get('training_minutes')} CPU-min)",
                     _info(editor.config.kind, args.task), *_mse_cells([r], paint), f"{r['mse'] / best_adam:.2f}×",
                     f"{r['seconds_per_inr'] * 1000:.2f}", _budget(card)])
        print(rows[-1], flush=True)
    return shipped


def _report_intro(args, test, B: int, paint: bool, floor: float | None) -> str:
    """The report's opening paragraph: what the test is and how each number is measured."""
    if paint:
        intro = (
            f"Paint on test INRs with synthetic strokes: each test INR gets 1–3 brush strokes or ellipse blobs "
            f"(`gmn.objectives.random_paint`, drawn once from seed 12345, so every method sees the same masks) "
            f"in one random {'gray level' if test.data.arch.dim_out == 1 else 'RGB colour'}. Metric per INR on the "
            f"{test.data.side}×{test.data.side} grid, clamped render: *inside* = MSE to the "
            f"painted colour over the mask's pixels, *outside* = MSE to the INR's original render over the other "
            f"pixels, *total* = MSE over all pixels to the painted image (the paint objective with λ = 1), "
            f"averaged over INRs. {B} sampled points per INR, half inside the mask and half outside, the same "
            f"points for editors and Adam-on-points (objective m(f − c)² + λ(1 − m)(f − f_orig)² at the points). "
            f"Nearest-point painting uses the same points without learning: a pixel is painted when its nearest "
            f"inside point is closer than 1/α times its nearest outside point (α tuned on validation), in the "
            f"inside points' colour (`gmn.evaluate.nearest_point_paint`). "
        )
    else:
        intro = (f"Test split, {B} sampled points per INR (the same points for editors and Adam-on-points), MSE of "
                 f"the clamped render against the reference target (the {args.task} of the original image), and "
                 f"against the objective every method is given (the {args.task} of the INR's own render). Their "
                 f"difference is the fit's error seen through the filter: an edit that reaches the objective "
                 f"exactly scores {sci(floor)} against the reference (row 2). ")
    return intro


def _points_tables(args, test, val, B: int, paint: bool, results: dict[str, list[dict]], adam_pts: dict,
                   runs: list[Path], shipped: list[Path], test_mse: dict[Path, float]) -> str:
    """MSE against the number of points B (the best editor vs Adam on the same points) and, where the width-64
    test zoo is built, the width transfer of every run and shipped editor."""
    from gmn.data import EditData, zoo_path
    from gmn.editors import load_editor
    from gmn.evaluate import eval_set, no_edit_errors, run_adam, run_editor, tune_adam_lr

    best_kind = min(results, key=lambda k: statistics.mean(r["mse"] for r in results[k]))
    best_k = min(adam_pts, key=lambda k: adam_pts[k][0])
    best_path = min((p for p in runs if method_of(p.parent.name) == best_kind),
                    key=lambda p: load_editor(p)[1]["metrics"]["val_mse"])
    editor, _ = load_editor(best_path)
    # when the best editor reads no points (ws), also show the best one that reads gradients
    grads = [k for k in results if k.split("-")[0] in ("gmn", "ws+gmn", "ng+gmn", "gmnpp")]
    grad_kind = min(grads, key=lambda k: statistics.mean(r["mse"] for r in results[k])) if grads else None
    grad_editor = None
    if grad_kind and best_kind.split("-")[0] in ("ws", "ng"):
        grad_editor = load_editor(min((p for p in runs if method_of(p.parent.name) == grad_kind),
                                      key=lambda p: load_editor(p)[1]["metrics"]["val_mse"]))[0]
    side = test.data.side
    brows = []
    for b in (16, 64, 256, side * side):
        e = run_editor(editor, test, points=b)
        g = [sci(run_editor(grad_editor, test, points=b)["mse"])] if grad_editor else []
        lr, _ = tune_adam_lr(val, points=b, steps=best_k)
        a = run_adam(test, points=b, steps=best_k, lr=lr)
        inside = [sci(e["inside"]), sci(a["inside"])] if paint else []
        brows.append([b if b < side * side else f"{b} (all pixels)", sci(e["mse"]), *g,
                      f"{sci(a['mse'])} (lr {lr:g})", *inside, f"{e['mse'] / a['mse']:.2f}×"])
        print("B", brows[-1], flush=True)
    inside_cols = ["editor inside MSE", "Adam inside MSE"] if paint else []
    grad_cols = [f"{grad_kind} MSE (reads the gradients)"] if grad_editor else []
    body = (f"\n\nMSE against the number of sampled points B: the best editor ({best_kind}, "
             f"`{best_path.parent.name}`) vs Adam on the same points (K={best_k}, lr tuned on val per B).\n\n"
             + table(["B", "editor MSE", *grad_cols, "Adam on points MSE", *inside_cols, "ratio"], brows))

    wide = zoo_path(args.data, "test-w64")  # an augmented dataset's is the real test images' zoo
    if (wide / "zoo.json").exists():
        wtest = eval_set(EditData.from_zoo(args.data, "test-w64", args.task))
        wrows = []
        for path in runs + shipped:
            editor, _ = load_editor(path)
            if editor.config.kind == "mlp":
                continue
            editor.config.widths = None  # measured even where it refuses other widths (that is the point)
            m32 = test_mse[path]  # the width-32 figure of the table above
            m64 = run_editor(editor, wtest, points=B)["mse"]
            name = f"shipped `{path.stem}`" if path in shipped else path.parent.name
            wrows.append([name, sci(m32), sci(m64), f"{m64 / m32:.2f}×"])
        body += (f"\n\nWidth transfer: editors trained on width-32 INRs, applied to width-64 INRs of the same "
                 f"test images (zoo `{wide.name}`, no edit {sci(no_edit_errors(wtest)['mse'])}). "
                 f"Limit ≤ {WIDTH_LIMIT}× (above it `ship` makes the editor refuse other widths).\n\n"
                 + table(["run", "width 32 MSE", "width 64 MSE", "ratio"], wrows))
    return body


def cmd_report(args) -> None:
    """Evaluate every finished run of (data, task) and the shipped editors against the baselines on the test
    split; writes the BENCHMARKS section `editors-DATA-TASK`."""
    from gmn.data import EditData
    from gmn.editors import load_editor
    from gmn.evaluate import eval_set

    torch.manual_seed(0)
    paint = args.task == "paint"
    test = eval_set(EditData.from_zoo(args.data, "test", args.task))
    val = eval_set(EditData.from_zoo(args.data, "val", args.task, limit=200))
    B = args.points
    rows, none, floor, adam_pts = _baseline_rows(test, val, B, paint)
    best_adam = min(v[0] for v in adam_pts.values())
    test_mse: dict[Path, float] = {}  # per run / shipped file
    runs, results = _learned_rows(args, test, B, paint, best_adam, rows, test_mse)
    shipped = _shipped_rows(args, test, B, paint, best_adam, rows, test_mse)
    mse_cols = ["inside mask MSE", "outside MSE", "total MSE"] if paint else ["test MSE", "MSE to the objective"]
    intro = _report_intro(args, test, B, paint, floor)
    body = (
        f"{intro}{len(test.data)} test INRs; learned editors at their best-validation checkpoint; the "
        f"training budget of a row is that checkpoint's (steps and CPU-minutes of 1 process, 1 thread, "
        f"`python -m bench.editors train`; the training data when it is not {args.data}), mean ± std over "
        f"seeds where there are several. Ratio: editor total MSE / best Adam-on-the-same-points MSE "
        f"({sci(best_adam)}). Latency: per INR, batched by 64, decomposition + forward (editors) or K Adam steps.\n\n"
        + table(["method", "information", *mse_cols, "vs Adam on points", "ms / INR", "training budget"], rows)
    )
    checks = _checks(args.task, results, none["mse"], best_adam)
    if checks:
        body += "\n\nFigures (mean test MSE from the table above):\n\n" + "\n".join(f"- {c}" for c in checks)
    # MSE against the number of points B: the best editor vs Adam on the same points
    if results:
        body += _points_tables(args, test, val, B, paint, results, adam_pts, runs, shipped, test_mse)
    if not paint and shipped:
        body += "\n\n" + _chain_table(EditData.from_zoo(args.data, "test", args.task, limit=128), shipped, B)
    copies = sorted({load_editor(p)[0].config.copies for p in runs} - {1})
    if copies:
        body += "\n\n" + _oce_cost(EditData.from_zoo(args.data, "test", args.task, limit=1), copies)
    runs_json = run_dir(args.data, args.task) / "runs.json"
    if runs_json.exists():
        recs = json.loads(runs_json.read_text())
        body += "\n\nTraining runs (command, wall time):\n\n" + "\n".join(
            f"- `python {r['command'].replace(str(ROOT) + '/', '')}` — {r['wall_seconds'] / 60:.1f} min wall, "
            f"{r['threads']} thread(s), {r['date']}"
            for r in recs)
    write_section(f"editors-{args.data}-{args.task}", f"Editors: {args.data} {args.task}", body,
                  command=f"python -m bench.editors report --task {args.task} --data {args.data}")


def cmd_ship(args) -> None:
    """Alias of `python -m gmn ship` (gmn/release.py), kept for the commands recorded in older cards."""
    if not args.run or not args.name:
        raise SystemExit("error: ship needs --run RUN_DIR_OR_NAME and --name NAME")
    try:
        ship(args.task, args.data, args.run, args.name, points=args.points, note=args.note)
    except ValueError as e:  # an unfinished run, another task's editor, an unreadable file
        raise SystemExit(f"error: {e}") from None


def cmd_widths(args) -> None:
    """Width transfer of every shipped editor (assets/editors): its width-32 test MSE (re-measured) against
    width-64 INRs of the same test images. With --stamp, rewrites each card's `widths` and, above the limit,
    makes the editor refuse other widths (the weights are unchanged). Writes the BENCHMARKS section
    `editors-widths`. About 2 minutes."""
    from gmn.data import EditData
    from gmn.editors import load_editor, save_editor
    from gmn.evaluate import eval_set, run_editor

    rows = []
    for path in sorted((ROOT / "assets" / "editors").glob("*.safetensors")):
        editor, card = load_editor(path)
        data, task = card["data"]["dataset"], card["task"]
        torch.manual_seed(0)
        m32 = run_editor(editor, eval_set(EditData.from_zoo(data, "test", task)), points=args.points)["mse"]
        before = (card.get("widths") or {}).get("validated")
        w = stamp_widths(editor, card, data, task, m32, args.points) if args.stamp else \
            width_check(editor, data, task, m32, args.points)
        if w is None:
            rows.append([f"`{path.stem}`", data, task, sci(m32), "not measured", "", ""])
            continue
        if args.stamp and card["widths"]["validated"] != before:  # rewrite only what changes (binary churn)
            save_editor(path, editor, card)
            print(f"stamped {path.name}: widths {card['widths']['validated']}")
        refuses = "any" if w["ok"] else "32 only"
        rows.append([f"`{path.stem}`", data, task, sci(m32), sci(w["m64"]), f"{w['ratio']:.2f}×", refuses])
        print(rows[-1], flush=True)
    body = (f"Every shipped editor on width-64 INRs of its test images (fitted by the zoo recipe at hidden width "
            f"64) against width 32, {args.points} points. Above {WIDTH_LIMIT}× the editor's card says so and "
            f"the editor refuses other widths with a one-line error (`widths`: 32 only).\n\n"
            + table(["editor", "data", "task", "width 32 MSE", "width 64 MSE", "ratio", "widths it edits"], rows))
    write_section("editors-widths", "Editors: width transfer", body,
                  command=f"python -m bench.editors widths{' --stamp' if args.stamp else ''}")


def _editor_at(spec: str):
    """An editor named on the command line: a shipped name (assets/editors/NAME), a file path, or REV:NAME, the
    shipped file NAME as it was at git revision REV (read with `git show`, so a clone with history reproduces
    a comparison with an editor that is no longer shipped). Returns (editor, card, label)."""
    import tempfile

    from gmn.editors import load_editor

    rev, _, name = spec.rpartition(":") if ":" in spec and not Path(spec).exists() else ("", "", spec)
    if rev:
        with tempfile.TemporaryDirectory() as tmp:
            for ext in ("safetensors", "json"):
                blob = subprocess.run(["git", "show", f"{rev}:assets/editors/{name}.{ext}"], cwd=ROOT,
                                      capture_output=True, check=False)
                if blob.returncode:
                    raise SystemExit(f"no assets/editors/{name}.{ext} at git revision {rev}")
                (Path(tmp) / f"{name}.{ext}").write_bytes(blob.stdout)
            editor, card = load_editor(Path(tmp) / f"{name}.safetensors")
        return editor, card, f"`{name}` at `{rev}`"
    path = Path(spec) if Path(spec).exists() else ROOT / "assets" / "editors" / f"{spec}.safetensors"
    if not path.exists():
        raise SystemExit(f"no editor {spec!r} (a shipped name, a file, or REV:NAME)")
    editor, card = load_editor(path)
    label = f"`{spec}`" if path.parent == ROOT / "assets" / "editors" else f"`{path.parent.name}`"
    return editor, card, label


def paired_difference(new: torch.Tensor, old: torch.Tensor) -> tuple[float, float]:
    """Mean of new - old over (seed, INR) pairs (S, N) and its standard error with the INRs as clusters: the
    per-INR mean difference over seeds, its std / sqrt(N). Seeds redraw strokes and points for every INR, so
    they vary the paint; the INRs are the same ones in every seed."""
    d = (new - old).mean(dim=0)
    return d.mean().item(), (d.std(unbiased=True) / len(d) ** 0.5).item()


def cmd_paired(args) -> None:
    """Paint editors compared on S stroke seeds: each seed s draws new strokes and colours for every test INR
    (seed 12345 + s; s = 0 is the report's) and new points, and every editor sees the same ones. The first
    editor of --editors is the reference; each other gets the mean paired difference inside, outside and in
    total with a 95% interval. Writes the section `editors-{data}-paint-paired`. Minutes (S x the editors'
    ms / INR x the test INRs)."""
    from gmn.data import EditData
    from gmn.evaluate import eval_set, no_edit_errors, run_adam, run_editor, tune_adam_lr

    specs = [s for s in (args.editors or "").split(",") if s]
    if len(specs) < 2 or args.task != "paint":
        raise SystemExit("paired needs --task paint and --editors REF,OTHER[,...] (names, files or REV:NAME)")
    seeds = [int(s) for s in args.seeds.split(",")]
    editors = [_editor_at(s) for s in specs]
    labels = [label for _, _, label in editors]
    if len(set(labels)) < len(labels):
        raise SystemExit(f"paired: two editors would share a row name ({', '.join(labels)}); name each once")
    data = EditData.from_zoo(args.data, "test", "paint")
    torch.manual_seed(0)
    adam_k = 100  # test-time Adam on the same points, its lr tuned on validation strokes as in the report
    lr, _ = tune_adam_lr(eval_set(EditData.from_zoo(args.data, "val", "paint", limit=200)), points=args.points,
                         steps=adam_k)
    methods = [(label, card.get("editor", "?"), lambda es, s, e=editor: run_editor(e, es, points=args.points, seed=s))
               for editor, card, label in editors]
    adam = f"Adam on the same {args.points} points, K={adam_k} (lr {lr:g})"
    methods.append((adam, "—", lambda es, s: run_adam(es, points=args.points, steps=adam_k, lr=lr, seed=s)))
    keys = ("per_inr_inside", "per_inr_outside", "per_inr")
    per = {label: {k: [] for k in keys} for label, _, _ in methods}
    none = []
    for s in seeds:
        torch.manual_seed(0)
        es = eval_set(data, seed=12345 + s)
        none.append(no_edit_errors(es)["mse"])
        for label, _, run in methods:
            r = run(es, s)
            for key in keys:
                per[label][key].append(r[key])
            print(f"seed {s} {label}: inside {r['inside']:.4g} outside {r['outside']:.4g} total {r['mse']:.4g}",
                  flush=True)
    stacked = {label: {k: torch.stack(v) for k, v in d.items()} for label, d in per.items()}  # (S, N)
    ref = editors[0][2]
    rows = []
    for label, kind, _ in methods:
        m = stacked[label]
        cells = []
        for k in keys:
            by_seed = m[k].mean(dim=1)
            cells.append(f"{sci(by_seed.mean().item())} ({sci(by_seed.min().item())}–{sci(by_seed.max().item())})")
        for k in keys:
            if label == ref:
                cells.append("—")
                continue
            diff, se = paired_difference(m[k], stacked[ref][k])
            sign = "+" if diff >= 0 else "−"
            pct = abs(100 * diff / stacked[ref][k].mean().item())
            cells.append(f"{sign}{sci(abs(diff))} ± {sci(1.96 * se)} ({sign}{pct:.1f}%)")
        ratio = m["per_inr"].mean() / stacked[adam]["per_inr"].mean()
        rows.append([label, kind, *cells, "" if label == adam else f"{ratio:.2f}×"])
    n_seeds, n_inr = len(seeds), len(data)
    body = (f"Paint editors on {n_seeds} stroke seeds of the {args.data} test split ({n_inr} INRs, {args.points} "
            f"points): seed s draws new strokes and colours for every INR (`random_paint`, seed 12345 + s; s = 0 "
            f"is the report's) and new points, the same for every editor. Each MSE cell is the mean over seeds "
            f"(the seeds' range in brackets); each difference is against {ref}, the mean over the {n_seeds} × "
            f"{n_inr} pairs ± a 95% interval (1.96 standard errors, the INRs as clusters: "
            f"`bench.editors.paired_difference`). No edit: {sci(sum(none) / len(none))} total.\n\n"
            + table(["editor", "kind", "inside MSE", "outside MSE", "total MSE", "inside vs ref", "outside vs ref",
                     "total vs ref", "total vs Adam"], rows))
    write_section(f"editors-{args.data}-paint-paired", f"Editors: {args.data} paint, paired over stroke seeds",
                  body, command=f"python -m bench.editors paired --task paint --data {args.data} "
                                f"--editors {args.editors} --seeds {args.seeds}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["train", "report", "ship", "widths", "paired"])
    ap.add_argument("--task", default="dilate")
    ap.add_argument("--data", default="mnist5k")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--steps", type=int, default=None, help="train: a step budget instead of --minutes")
    ap.add_argument("--kinds", default=None)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--points", type=int, default=64)
    ap.add_argument("--model", default=None, help='train: JSON of EditorConfig overrides, e.g. \'{"ws_hidden": 32}\'')
    ap.add_argument("--tag", default=None, help="train: names the variant (run folders KIND-TAG-sSEED)")
    ap.add_argument("--augment", action="store_true", help="train: random hidden-neuron sign flips (gmn train)")
    ap.add_argument("--init", default=None, help="train: fine-tune from this editor file (gmn train --init)")
    ap.add_argument("--lr", type=float, default=None, help="train: learning rate (gmn train's default otherwise)")
    ap.add_argument("--outside-weight", type=float, default=1.0,
                    help="train: paint loss weight outside the mask (gmn train --outside-weight)")
    ap.add_argument("--run", default=None, help="ship: a run folder, or a run name under "
                    "$GMN_HOME/runs/bench/DATA-TASK")
    ap.add_argument("--name", default=None, help="ship: the file name in assets/editors")
    ap.add_argument("--note", default=None, help="ship: a note for the card")
    ap.add_argument("--editors", default=None,
                    help="paired: REF,OTHER,... shipped names, editor files, or REV:NAME (a shipped file at a git rev)")
    ap.add_argument("--stamp", action="store_true", help="widths: rewrite each shipped card's widths")
    args = ap.parse_args()
    phases = {"train": cmd_train, "report": cmd_report, "ship": cmd_ship, "widths": cmd_widths, "paired": cmd_paired}
    phases[args.phase](args)


if __name__ == "__main__":
    main()
