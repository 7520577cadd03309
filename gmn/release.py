"""Release tooling: ship a finished benchmark run as assets/editors/NAME (docs/DESIGN.md §6).

    python -m gmn ship --task dilate --data mnist5k --run ws-s0 --name dilate   # -> assets/editors

`ship` evaluates the run's best-validation checkpoint on the test split, measures its width transfer
(width-64 INRs of the same test images, where that zoo is built) and writes the editor with a card holding
its test figures and the commands that reproduce it. The benchmark runs it reads live in the data home
($GMN_HOME/runs/bench/DATA-TASK, `python -m bench.editors train`); `python -m bench.editors ship` is an
alias kept for the commands recorded in older cards.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch

from inr.home import in_home, runs_dir

ROOT = Path(__file__).resolve().parent.parent  # the repository: assets/ is shipped beside gmn/
WIDTH_LIMIT = 1.3  # width-64 / width-32 test MSE above which a shipped editor refuses other widths
SHIP_COMMANDS = ("bench.editors ship ", "gmn ship ")  # a card's `reproduce` step that shipped it (old, new)


def sci(x: float) -> str:
    """An MSE in scientific notation with 3 significant digits: 3.25e-2."""
    if x == 0:
        return "0"
    mant, exp = f"{x:.2e}".split("e")
    return f"{mant}e{int(exp)}"


def bench_run_dir(data: str, task: str) -> Path:
    """The benchmark runs of one (data, task): $GMN_HOME/runs/bench/DATA-TASK (inr.home, outside the checkout)."""
    return runs_dir("bench") / f"{data}-{task}"


def found(path: str) -> Path:
    """A run file named relative to the data home (cards say `runs/bench/...`), else to the repo."""
    return in_home(path) if in_home(path).exists() else ROOT / path


def start_commands(init: Path) -> list[str]:
    """The training commands of the runs behind the editor file `init` (a run's best.safetensors), the first run
    first (`gmn.train.init_chain`): a run fine-tuned from a fine-tuned run needs both. Where the chain starts at a
    shipped file whose own start is not on this machine (a run folder restored from the shipped editor), the
    training commands of that file's `reproduce` stand for it and for the runs before it."""
    from .train import init_chain

    if not init.exists():
        return []
    chain = init_chain(init)
    before = []
    first = chain[0][1]
    if first.get("init") and first.get("reproduce"):  # a shipped file whose own start is not here: its card's
        before = [c for c in first["reproduce"].split(" && ")  # training commands
                  if not any(ship in c for ship in SHIP_COMMANDS)]
        chain = chain[1:]
    done = [file.parent / "done.json" for file, _ in chain]
    return before + ["python " + json.loads(d.read_text())["command"].replace(str(ROOT) + "/", "")
                     for d in done if d.exists()]


def width_check(editor, data: str, task: str, m32: float, points: int) -> dict | None:
    """Width transfer of one editor: its test MSE on width-64 INRs of the same test images (zoo
    {data}-test-w64) against m32, its width-32 test MSE. None when that zoo is not built."""
    from .data import EditData, zoo_path
    from .evaluate import eval_set, run_editor

    wide = zoo_path(data, "test-w64")  # an augmented dataset's is the real test images' zoo
    if not (wide / "zoo.json").exists():
        print(f"note: no {wide.name} zoo, width transfer not measured (python -m inr zoo --dataset "
              f"{data.replace('-aug', '')} --split test --hidden 64 --out zoo/{wide.name})")
        return None
    torch.manual_seed(0)
    refused, editor.config.widths = editor.config.widths, None  # measure it even where it refuses today
    try:
        m64 = run_editor(editor, eval_set(EditData.from_zoo(data, "test-w64", task)), points=points)["mse"]
    finally:
        editor.config.widths = refused
    return {"zoo": wide.name, "m32": m32, "m64": m64, "ratio": m64 / m32, "ok": m64 / m32 <= WIDTH_LIMIT}


def stamp_widths(editor, card: dict, data: str, task: str, m32: float, points: int) -> dict | None:
    """An editor edits widths other than 32 only where it was measured to (≤ WIDTH_LIMIT× its width-32 test
    MSE on width-64 INRs of the same test images); else its config refuses them. Writes the card's `widths`."""
    w = width_check(editor, data, task, m32, points)
    if w is None:
        return None
    editor.config.widths = None if w["ok"] else [32]
    card["widths"] = {"validated": [32, 64] if w["ok"] else [32],
                      "note": f"test INRs fitted at width 64 (zoo {w['zoo']}): MSE {sci(w['m64'])} vs "
                              f"{sci(m32)} at width 32 ({w['ratio']:.2f}×, limit {WIDTH_LIMIT}×)"
                              + ("" if w["ok"] else "; the editor refuses other widths")}
    return w


def ship(task: str, data: str, run: str, name: str, *, points: int = 64, note: str | None = None) -> Path:
    """Copy a finished run's best checkpoint (run: a run folder, or a run name under
    $GMN_HOME/runs/bench/DATA-TASK) to assets/editors/NAME.safetensors with a card holding its test figures
    (`points` sampled points per test INR) and the commands that reproduce it. Returns the written file."""
    from .data import EditData
    from .editors import load_editor, save_editor
    from .evaluate import eval_set, no_edit_errors, run_editor
    from .train import init_card

    folder = (Path(run) if Path(run).is_dir() else bench_run_dir(data, task) / run).resolve()
    done = folder / "done.json"
    if not done.exists():
        raise ValueError(f"{folder} has not finished (no done.json)")
    editor, card = load_editor(folder / "best.safetensors")
    if card.get("task") != task:
        raise ValueError(f"{folder} is a {card.get('task')} editor, not {task}")
    torch.manual_seed(0)
    test = eval_set(EditData.from_zoo(data, "test", task))
    r, none = run_editor(editor, test, points=points), no_edit_errors(test)
    metrics = dict(card.get("metrics", {}))
    metrics["test_mse"] = round(r["mse"], 5)
    if task == "paint":
        metrics["test_inside_mse"], metrics["test_outside_mse"] = round(r["inside"], 5), round(r["outside"], 5)
    else:  # against the filter of the INR's own render (the objective it is given)
        metrics["test_objective_mse"] = round(r["objective"], 5)
    metrics["test"] = (f"{data} test split, {len(test.data)} INRs, {points} points"
                       + (", seeded synthetic strokes (seed 12345)" if task == "paint" else "")
                       + f"; no edit {sci(none['mse'])} (BENCHMARKS.md, editors-{data}-{task})")
    card["metrics"] = metrics
    train_cmd = "python " + json.loads(done.read_text())["command"].replace(str(ROOT) + "/", "")
    card["reproduce"] = (f"{train_cmd} && python -m gmn ship --task {task} --data {data} "
                         f"--run {folder.relative_to(ROOT) if folder.is_relative_to(ROOT) else folder} --name {name}")
    init = (card.get("train_config") or {}).get("init")
    if init:  # fine-tuned: what it started from, and the commands of the runs it started from first
        fresh = init_card(str(found(init))) if found(init).exists() else card.get("init") or {}
        card["init"] = {**fresh, "path": init}  # relative to the repo
        card["reproduce"] = " && ".join([*start_commands(found(init)), card["reproduce"]])
    if note:
        card["note"] = note
    else:
        card.pop("note", None)
    stamp_widths(editor, card, data, task, r["mse"], points)
    out = ROOT / "assets" / "editors" / f"{name}.safetensors"
    save_editor(out, editor, card)
    print(f"shipped {out.relative_to(ROOT)} ({out.stat().st_size / 1e3:.0f} kB): test MSE {sci(r['mse'])}, "
          f"no edit {sci(none['mse'])}")
    return out


def add_ship_arguments(p) -> None:
    """The options of `python -m gmn ship` (--run is read as `args.run_name`: `args.run` is the handler)."""
    p.add_argument("--task", default="dilate")
    p.add_argument("--data", default="mnist5k")
    p.add_argument("--run", dest="run_name", metavar="RUN", required=True,
                   help="a run folder, or a run name under $GMN_HOME/runs/bench/DATA-TASK")
    p.add_argument("--name", required=True, help="the file name in assets/editors")
    p.add_argument("--points", type=int, default=64)
    p.add_argument("--note", default=None, help="a note for the card")
