"""Editor benchmark (SPEC §6): train every editor at an equal budget, evaluate on the test
split against no edit, test-time Adam on the same points and Adam on the full target.

    python -m bench.editors train  --task dilate --data mnist5k --minutes 10 [--kinds ws,gmn --seeds 0,1,2 --jobs 2]
    python -m bench.editors report --task dilate --data mnist5k

`train` runs `python -m gmn train` once per (editor, seed) into runs/bench/{data}-{task}/{kind}-s{seed}
(resumable: finished runs are skipped, interrupted ones resume), and logs each run's command
and wall time in runs.json there. `report` evaluates every finished run's best-validation
checkpoint on the test split and writes the section `editors-{data}-{task}` of BENCHMARKS.md.
Expected time: train = minutes × runs / jobs; report about 5 minutes.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import torch

from bench.report import ROOT, table, write_section

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
}


def run_dir(data: str, task: str) -> Path:
    return ROOT / "runs" / "bench" / f"{data}-{task}"


def _plan(args) -> list[tuple[str, int]]:
    kinds = args.kinds.split(",") if args.kinds else KINDS
    seeds = [int(s) for s in args.seeds.split(",")]
    return [(k, s) for k in kinds for s in (seeds if k in SEEDED else seeds[:1])]


def _train_one(args, kind: str, seed: int) -> dict:
    out = run_dir(args.data, args.task) / f"{kind}-s{seed}"
    state_file = out / "done.json"
    if state_file.exists():
        return json.loads(state_file.read_text())
    cmd = [sys.executable, "-m", "gmn", "train", "--task", args.task, "--data", args.data, "--editor", kind,
           "--minutes", str(args.minutes), "--seed", str(seed), "--out", str(out.relative_to(ROOT)), "--device",
           "cpu", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    t0 = time.time()
    out.mkdir(parents=True, exist_ok=True)
    with open(out / "train.log", "a") as log:
        subprocess.run(cmd, check=True, stdout=log, stderr=subprocess.STDOUT, env=env, cwd=ROOT)
    rec = {"kind": kind, "seed": seed, "command": " ".join(cmd[1:]), "wall_seconds": round(time.time() - t0, 1),
           "threads": args.threads, "date": time.strftime("%Y-%m-%d %H:%M")}
    state_file.write_text(json.dumps(rec, indent=2))
    return rec


def cmd_train(args) -> None:
    from gmn.data import ensure_zoo

    for split in ("train", "val", "test"):
        ensure_zoo(args.data, split)
    plan = _plan(args)
    with ThreadPoolExecutor(args.jobs) as pool:
        for rec in pool.map(lambda ks: _train_one(args, *ks), plan):
            print(f"{rec['kind']} seed {rec['seed']}: {rec['wall_seconds']:.0f} s", flush=True)
    runs = [json.loads(p.read_text()) for p in sorted(run_dir(args.data, args.task).glob("*/done.json"))]
    (run_dir(args.data, args.task) / "runs.json").write_text(json.dumps(runs, indent=2))


def _fmt(values: list[float]) -> str:
    if len(values) == 1:
        return f"{values[0]:.4f}"
    return f"{statistics.mean(values):.4f} ± {statistics.stdev(values):.4f}"


def cmd_report(args) -> None:
    from gmn.data import EditData
    from gmn.editors import load_editor
    from gmn.evaluate import eval_set, no_edit, run_adam, run_editor, tune_adam_lr

    torch.manual_seed(0)
    test = eval_set(EditData.from_zoo(args.data, "test", args.task))
    val = eval_set(EditData.from_zoo(args.data, "val", args.task, limit=200))
    B = args.points
    rows = [["no edit", "—", f"{no_edit(test):.4f}", "—", "—"]]
    adam_pts = {}
    for k in (1, 10, 100):
        lr, _ = tune_adam_lr(val, points=B, steps=k)
        r = run_adam(test, points=B, steps=k, lr=lr)
        adam_pts[k] = (r["mse"], lr)
        rows.append([f"Adam on the same {B} points, K={k} (lr {lr:g})", f"target at {B} points", f"{r['mse']:.4f}",
                     "", f"{r['seconds_per_inr'] * 1000:.2f}"])
        print(rows[-1], flush=True)
    for k in (1, 10, 100):
        lr, _ = tune_adam_lr(val, points=None, steps=k)
        r = run_adam(test, points=None, steps=k, lr=lr)
        rows.append([f"Adam on the full target, K={k} (lr {lr:g})", "full target (oracle)", f"{r['mse']:.4f}",
                     "", f"{r['seconds_per_inr'] * 1000:.2f}"])
        print(rows[-1], flush=True)
    best_adam = min(v[0] for v in adam_pts.values())
    results: dict[str, list[float]] = {}
    latency: dict[str, float] = {}
    # only finished runs (done.json): an interrupted run resumes on the next `train` and is not reported
    runs = sorted(p.parent / "best.safetensors" for p in run_dir(args.data, args.task).glob("*/done.json"))
    budget = None
    for path in runs:
        editor, card = load_editor(path)
        r = run_editor(editor, test, points=B)
        results.setdefault(editor.config.kind, []).append(r["mse"])
        latency[editor.config.kind] = r["seconds_per_inr"]
        budget = card.get("train_config", {}).get("minutes")
        print(path.parent.name, r["mse"], flush=True)
    for kind in KINDS:
        if kind in results:
            m = statistics.mean(results[kind])
            rows.append([f"**{kind}** ({len(results[kind])} seed{'s' if len(results[kind]) > 1 else ''})", INFO[kind],
                         _fmt(results[kind]), f"{m / best_adam:.2f}×", f"{latency[kind] * 1000:.2f}"])
    body = (
        f"Test split ({len(test.data)} INRs), {B} sampled points per INR (the same points for editors and "
        f"Adam-on-points), MSE of the clamped render against the reference target; learned editors at their "
        f"best-validation checkpoint after {budget} CPU-minutes of training each (1 process, "
        f"`python -m bench.editors train`). Ratio: editor MSE / best Adam-on-the-same-points MSE "
        f"({best_adam:.4f}). Latency: per INR, batched by 64, decomposition + forward (editors) or K Adam steps.\n\n"
        + table(["method", "information", "test MSE", "vs Adam on points", "ms / INR"], rows)
    )
    # MSE against the number of points B: the best editor vs Adam on the same points
    if results:
        best_kind = min(results, key=lambda k: statistics.mean(results[k]))
        best_k = min(adam_pts, key=lambda k: adam_pts[k][0])
        best_path = min((p for p in runs if p.parent.name.startswith(best_kind + "-s")),
                        key=lambda p: load_editor(p)[1]["metrics"]["val_mse"])
        editor, _ = load_editor(best_path)
        side = test.data.side
        brows = []
        for b in (16, 64, 256, side * side):
            e = run_editor(editor, test, points=b)["mse"]
            lr, _ = tune_adam_lr(val, points=b, steps=best_k)
            a = run_adam(test, points=b, steps=best_k, lr=lr)["mse"]
            brows.append([b if b < side * side else f"{b} (all pixels)", f"{e:.4f}", f"{a:.4f} (lr {lr:g})",
                          f"{e / a:.2f}×"])
            print("B", brows[-1], flush=True)
        body += (f"\n\nMSE against the number of sampled points B: the best editor ({best_kind}, "
                 f"`{best_path.parent.name}`) vs Adam on the same points (K={best_k}, lr tuned on val per B).\n\n"
                 + table(["B", "editor MSE", "Adam on points MSE", "ratio"], brows))
        wide = ROOT / "zoo" / f"{args.data}-test-w64"
        if (wide / "zoo.json").exists():
            wtest = eval_set(EditData.from_zoo(args.data, "test-w64", args.task))
            wrows = []
            for path in runs:
                editor, _ = load_editor(path)
                if editor.config.kind == "mlp":
                    continue
                m32 = run_editor(editor, test, points=B)["mse"]
                m64 = run_editor(editor, wtest, points=B)["mse"]
                wrows.append([path.parent.name, f"{m32:.4f}", f"{m64:.4f}", f"{m64 / m32:.2f}×"])
            body += (f"\n\nWidth transfer: editors trained on width-32 INRs, applied to width-64 INRs of the same "
                     f"test images (zoo `{wide.name}`, no edit {no_edit(wtest):.4f}). Goal ≤ 1.5×.\n\n"
                     + table(["run", "width 32", "width 64", "ratio"], wrows))
    runs_json = run_dir(args.data, args.task) / "runs.json"
    if runs_json.exists():
        recs = json.loads(runs_json.read_text())
        body += "\n\nTraining runs (command, wall time):\n\n" + "\n".join(
            f"- `python {r['command'].replace(str(ROOT) + '/', '')}` — {r['wall_seconds'] / 60:.1f} min wall, "
            f"{r['threads']} thread(s), {r['date']}"
            for r in recs)
    write_section(f"editors-{args.data}-{args.task}", f"Editors: {args.data} {args.task}", body,
                  command=f"python -m bench.editors report --task {args.task} --data {args.data}")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("phase", choices=["train", "report"])
    ap.add_argument("--task", default="dilate")
    ap.add_argument("--data", default="mnist5k")
    ap.add_argument("--minutes", type=float, default=10.0)
    ap.add_argument("--kinds", default=None)
    ap.add_argument("--seeds", default="0,1,2")
    ap.add_argument("--jobs", type=int, default=1)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--points", type=int, default=64)
    args = ap.parse_args()
    (cmd_train if args.phase == "train" else cmd_report)(args)


if __name__ == "__main__":
    main()
