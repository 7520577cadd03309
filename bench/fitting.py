"""Fitting speed at practical targets: steps and time to 30, 35 and 40 dB, per fitting method and image
type, against tuned Adam; and whether the shipped editors still edit what each method fits.

    python -m bench.fitting train     # meta-train the candidates (Reptile inits, learned optimizers): ~35 CPU-min
    python -m bench.fitting report    # the tables: ~15 min on one thread

Image types, all held out from every training set here:
- photo tiles: the 32² tiles (4 px overlap) of four scikit-image photos that no zoo, editor or meta-training
  saw (camera and coins, gray, fitted as R = G = B like the app does; stereo_motorcycle's left view; retina),
  each at the app's working size (longer side 256, `inr.tiles.plan_fit`);
- faces: the 20 test faces of `lfw` (25², gray), one SIREN each;
- digits: the first 100 MNIST-5k test digits (28², gray), one SIREN each;
- whole photos: those four photos, fitted as the app fits them (tiles in groups of 16, each tile stopping at
  the target): the time until every tile has reached it.

Methods (all 2→32→32→C SIRENs, the app's):
- `adam (recipe)`: Adam lr 3e-3 from SirenNet's random init: TILE_RECIPE / ZOO_RECIPE, what ships;
- `adam (tuned)`: Adam with its lr tuned per target on the validation images of the type's training data
  (tiles-val regions, mnist5k val, lfw val), from {1e-3, 2e-3, 3e-3, 5e-3, 1e-2}: the baseline row;
- `first layer ×c (tuned)`: the first layer's weights drawn c times wider (c tuned with the lr over
  {0.75, 1, 1.5, 2}; c = 1 is plain Adam): a known cheap knob for SIRENs (the initial frequency spread);
- `reptile init (tuned)`: Adam (lr tuned) from a meta-learned init (`inr.metainit`, trained on tiles-train crops
  for colour, MNIST-5k train digits for gray);
- `learned opt (+GMN)` / `learned opt (no GMN)`: `gmn.optim` meta-trained on tiles-train crops for a 150-step
  horizon with and without its GradMetaNet features, at the same meta-training budget (CPU-minutes);
- `learned opt (no GMN) from reptile init`: the same, meta-trained and run from the Reptile init;
- `learned opt (shipped)`: the shipped learned optimizer (a learned step-size schedule, no GMN features).

Steps: the first step whose full-image PSNR (best so far, as `inr.fit` keeps the best) reaches the target, of
a 300-step fit; the median over images (images that never reach it count as not reached), and the share
reached within 300 steps. Time: one torch thread (the app's setting for these sizes, `inr.threads`), CPU
seconds per step measured for each method at the app's batch (16 tiles; one face or digit) times the steps;
for whole photos the sum over tile groups. Meta-training and timing are CPU time because the machine is
shared (see bench/tiles_fit.py, Clock).

Editability: each method fits the editors' own test images (tiles-test regions, MNIST-5k test digits) with the
recipe's budget (150 steps, tiles stopping at 40 dB), and the shipped `contrast` / `dilate` editors edit them;
the ratio to their MSE on the zoo-recipe INRs of the same images (goal: within 1.1×).
"""

from __future__ import annotations

import argparse
import json
import math
import os
import shutil
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import torch

from bench.report import ROOT, table, write_section
from inr.home import cache_dir, runs_dir, say_where, zoo_dir

ART = ROOT / "bench" / "artifacts" / "fitting"  # the meta-trained candidates (small, committed with cards)
RUNS = runs_dir("fitting")  # $GMN_HOME/runs/fitting (inr.home), outside the checkout
THRESHOLDS = (30.0, 35.0, 40.0)
STEPS = 300
LRS = (1e-3, 2e-3, 3e-3, 5e-3, 1e-2)
SCALES = (0.75, 1.0, 1.5, 2.0)
PHOTOS = ("camera", "coins", "stereo_motorcycle", "retina")
GROUP = 16  # inr.tiles.FIT_GROUP
TIME_REPS = 5
META_MINUTES = 12.0  # each learned optimizer's meta-training budget, CPU-minutes (with and without GMN alike)
# Reptile: a 50-step inner loop (near the 35 dB horizon) and a small outer step (0.05, decaying), so the init
# keeps SirenNet's spread; during development (64 tiles-val images, lr 3e-3) inner loops of 10 and 50 steps with
# outer lr 0.5 and 2 CPU-min made 35 dB *slower* (median 222 and 171 steps vs 75 from random), outer lr 0.05 and
# 0.01 about even (80, 74)
REPTILE = {"colour": {"dataset": "tiles", "inner_steps": 50, "outer_lr": 0.05, "minutes": 3.0},
           "gray": {"dataset": "mnist5k", "inner_steps": 50, "outer_lr": 0.05, "minutes": 3.0}}


# images


def image_sets() -> dict:
    """{type: (test images (N, H, W, C), validation images for tuning, family)}; the photo tiles are the four
    photos' tiles in PHOTOS order (`tile_counts` says how many each)."""
    from bench.tiles_fit import photo
    from inr.datasets import load_dataset

    tiles = []
    for name in PHOTOS:
        img, grid, _ = photo(name, 256)  # the app's working size (longer side 256)
        tiles.append(grid.cut(img))
    return {
        "photo tiles": (torch.cat(tiles), load_dataset("tiles", "val")[:64], "colour"),
        "faces": (load_dataset("lfw", "test"), load_dataset("lfw", "val"), "gray"),
        "digits": (load_dataset("mnist5k", "test")[:100], load_dataset("mnist5k", "val")[:64], "gray"),
    }


def tile_counts() -> list[int]:
    """Tiles per photo of PHOTOS at the app's working size."""
    from bench.tiles_fit import photo

    return [photo(name, 256)[1].count for name in PHOTOS]


def _arch(family: str):
    from inr.siren import SirenArch

    return SirenArch(hidden=32, layers=2, dim_out=3 if family == "colour" else 1)


# methods


@dataclass
class Method:
    name: str
    tuned: bool = False  # lr (and scale) tuned per target on validation images
    scale: bool = False  # first-layer width factor
    reptile: bool = False
    learned: str | None = None  # learned-optimizer file

    def init(self, n: int, arch, family: str, seed: int, c: float = 1.0):
        from inr.metainit import load_init
        from inr.siren import init_params

        if self.reptile:
            return load_init(ART / f"reptile-{family}.safetensors", n, arch)
        p = init_params(arch, n, generator=torch.Generator().manual_seed(seed))
        if c != 1.0:
            p[0] = p[0] * c
        return p


def methods() -> list[Method]:
    out = [Method("adam (recipe)"), Method("adam (tuned)", tuned=True), Method("first layer ×c (tuned)", tuned=True,
                                                                                scale=True)]
    out.append(Method("reptile init (tuned)", tuned=True, reptile=True))
    out += [Method("learned opt (+GMN)", learned=str(ART / "lopt-gmn.safetensors")),
            Method("learned opt (no GMN)", learned=str(ART / "lopt-nogmn.safetensors")),
            Method("learned opt (no GMN) from reptile init", reptile=True,
                   learned=str(ART / "lopt-nogmn-reptile.safetensors")),
            Method("learned opt (shipped)", learned=str(ROOT / "assets" / "optimizers" / "learned.safetensors"))]
    return out


def available(m: Method, family: str) -> bool:
    if m.reptile and not (ART / f"reptile-{family}.safetensors").exists():
        return False
    return m.learned is None or Path(m.learned).exists()


def _factory(m: Method, arch, images, seed: int):
    if m.learned is None:
        return None
    from gmn.optim import GradMetaNetOptimizer, load_optimizer

    net, _ = load_optimizer(m.learned)
    return lambda params: GradMetaNetOptimizer(params, net, arch, images, seed=seed)


_CURVES: dict = {}


def curves(m: Method, images: torch.Tensor, family: str, *, lr: float = 3e-3, c: float = 1.0, steps: int = STEPS,
           seed: int = 0, group: int = 64) -> torch.Tensor:
    """Best-so-far full-image PSNR per step (steps, N) of fitting `images` by method m (memoised per run)."""
    key = (m.name, id(images), lr, c, steps, seed)
    if key not in _CURVES:
        _CURVES[key] = _curves(m, images, family, lr=lr, c=c, steps=steps, seed=seed, group=group)
    return _CURVES[key]


def _curves(m: Method, images: torch.Tensor, family: str, *, lr: float, c: float, steps: int, seed: int,
            group: int) -> torch.Tensor:
    from inr.fit import fit

    arch = _arch(family)
    out = []
    for i in range(0, len(images), group):
        imgs = images[i : i + group]
        rec: list[torch.Tensor] = []
        fit(imgs, arch, steps=steps, lr=lr, init=m.init(len(imgs), arch, family, seed + i, c),
            optimizer_factory=_factory(m, arch, imgs, seed + i), seed=seed + i,
            callback=lambda s, p, rec=rec: rec.append(p.clone()))
        while len(rec) < steps:  # a fit stops early only on a target; none is set here
            rec.append(rec[-1])
        out.append(torch.stack(rec))
    return torch.cat(out, 1)


def steps_to(curve: torch.Tensor, target: float) -> torch.Tensor:
    """(N,) first step reaching target (inf where never)."""
    hit = curve >= target
    first = hit.float().argmax(0).float() + 1  # steps taken when the PSNR was measured (step 0 = 1 step)
    return torch.where(hit.any(0), first, torch.full_like(first, math.inf))


def _score(curve, target) -> tuple:
    s = steps_to(curve, target)
    return (float(s.median()), float(torch.where(torch.isfinite(s), s, torch.full_like(s, 2 * STEPS)).mean()))


def tune(m: Method, val: torch.Tensor, family: str) -> dict[float, tuple[float, float]]:
    """Per target: the (lr, c) of the grid with the fewest median steps on `val` (mean capped steps breaks ties)."""
    if not m.tuned:
        return {t: (3e-3, 1.0) for t in THRESHOLDS}
    grid = [(lr, c) for lr in LRS for c in (SCALES if m.scale else (1.0,))]
    cs = {g: curves(m, val, family, lr=g[0], c=g[1], seed=777) for g in grid}
    return {t: min(grid, key=lambda g: _score(cs[g], t)) for t in THRESHOLDS}


_TIMES: dict = {}


def step_seconds(m: Method, images: torch.Tensor, family: str, batch: int, lr: float, c: float) -> float:
    """CPU seconds per fitting step at the app's batch (median of TIME_REPS runs of 30 steps)."""
    key = (m.name, id(images), batch, lr, c)
    if key not in _TIMES:
        _TIMES[key] = _step_seconds(m, images, family, batch, lr, c)
    return _TIMES[key]


def _step_seconds(m: Method, images: torch.Tensor, family: str, batch: int, lr: float, c: float) -> float:
    from inr.fit import fit

    arch = _arch(family)
    imgs = images[:batch]
    times = []
    for r in range(TIME_REPS):
        t0 = time.process_time()
        fit(imgs, arch, steps=30, lr=lr, init=m.init(len(imgs), arch, family, r, c),
            optimizer_factory=_factory(m, arch, imgs, r), seed=r)
        times.append((time.process_time() - t0) / 30)
    return statistics.median(times)


# train


def _run(cmd: list[str], log: Path) -> float:
    t0 = time.time()
    print("+", " ".join(cmd), flush=True)
    with open(log, "a") as fh:
        subprocess.run(cmd, check=True, stdout=fh, stderr=subprocess.STDOUT, cwd=ROOT,
                       env={**os.environ, "OMP_NUM_THREADS": "1"})  # one thread per job (the machine is shared)
    return (time.time() - t0) / 60


def train(minutes: float) -> None:
    """Meta-train the candidates (resumable: each run continues from its state in $GMN_HOME/runs/fitting/)."""
    RUNS.mkdir(parents=True, exist_ok=True)
    say_where("bench.fitting runs", RUNS)
    ART.mkdir(parents=True, exist_ok=True)
    py = [sys.executable]
    cards = json.loads((ART / "cards.json").read_text()) if (ART / "cards.json").exists() else {}
    for family, spec in REPTILE.items():
        out = RUNS / f"reptile-{family}.safetensors"
        cmd = py + ["-m", "inr", "metainit", "--dataset", spec["dataset"], "--out", str(out),
                    "--minutes", str(spec["minutes"]), "--inner-steps", str(spec["inner_steps"]), "--outer-lr",
                    str(spec["outer_lr"]), "--threads", "1", "-q"]
        wall = _run(cmd, RUNS / f"reptile-{family}.log")
        shutil.move(out, ART / out.name)  # from the data home into the checkout (maybe another file system)
        cards[out.stem] = {"command": " ".join(["python"] + cmd[1:]), "wall_minutes": round(wall, 1),
                           "date": time.strftime("%Y-%m-%d %H:%M")}
    reptile = str((ART / "reptile-colour.safetensors").relative_to(ROOT))
    for tag, extra in (("gmn", []), ("nogmn", ["--no-gmn"]), ("nogmn-reptile", ["--no-gmn", "--siren-init", reptile])):
        out = RUNS / f"lopt-{tag}"
        cmd = py + ["-m", "gmn", "metatrain", "--out", str(out), "--datasets", "tiles", "--horizon",
                    "150", "--minutes", str(minutes), "--val-every", "4", "-q", *extra]
        wall = _run(cmd, RUNS / f"lopt-{tag}.log")
        for suffix in (".safetensors", ".json"):
            (ART / f"lopt-{tag}{suffix}").write_bytes((out / f"best{suffix}").read_bytes())
        cards[f"lopt-{tag}"] = {"command": " ".join(["python"] + cmd[1:]), "wall_minutes": round(wall, 1),
                                "date": time.strftime("%Y-%m-%d %H:%M")}
    (ART / "cards.json").write_text(json.dumps(cards, indent=1))


# report


def _fmt_steps(s: torch.Tensor) -> str:
    med = float(s.median())
    share = float(torch.isfinite(s).float().mean())
    return f"{med:.0f} ({share:.0%})" if math.isfinite(med) else f"— ({share:.0%})"


def _fmt_time(x: float) -> str:
    if not math.isfinite(x):
        return "—"
    return f"{x * 1000:.0f} ms" if x < 1 else f"{x:.2f} s"


def measure(only: set[str] | None = None, names: set[str] | None = None) -> dict:
    torch.set_num_threads(1)
    sets = image_sets()
    counts = tile_counts()
    res: dict = {}
    for kind, (test, val, family) in sets.items():
        if only and kind not in only:
            continue
        batch = GROUP if family == "colour" else 1
        for m in methods():
            if not available(m, family) or (names and m.name not in names):
                continue
            t0 = time.time()
            best = tune(m, val, family)
            row = {"params": {str(t): best[t] for t in THRESHOLDS}, "steps": {}, "seconds": {}}
            for t in THRESHOLDS:
                lr, c = best[t]
                s = steps_to(curves(m, test, family, lr=lr, c=c), t)
                sec = step_seconds(m, test, family, batch, lr, c)
                per_image = sec / batch
                row["steps"][str(t)] = s.tolist()
                row["seconds"][str(t)] = [x * per_image for x in s.tolist()]
                row.setdefault("step_seconds", {})[str(t)] = sec
                if kind == "photo tiles":  # whole photos: groups of 16 end when their last tile reaches t
                    photo = []
                    n0 = 0
                    for count in counts:
                        ss = s[n0 : n0 + count]
                        n0 += count
                        groups = [ss[i : i + GROUP] for i in range(0, len(ss), GROUP)]
                        photo.append(sum(float(g.max()) * sec * len(g) / GROUP for g in groups))
                    row.setdefault("photo_seconds", {})[str(t)] = photo
            print(f"{kind} / {m.name}: {time.time() - t0:.0f} s", flush=True)
            res.setdefault(kind, {})[m.name] = row
    return res


def editability(res: dict, names: set[str] | None = None) -> dict:
    """Shipped editors' test MSE on INRs fitted by each method vs on the zoo-recipe INRs of the same images."""
    from gmn.data import EditData
    from gmn.editors import load_editor
    from gmn.evaluate import eval_set, run_editor
    from inr.fit import fit
    from inr.zoo import load_zoo

    torch.set_num_threads(1)
    out: dict = {}
    for family, editor_name, zoo, task, n, target in (("colour", "contrast", "tiles-test", "contrast", 304, 40.0),
                                                     ("gray", "dilate", "mnist5k-test", "dilate", 200, None)):
        editor, _ = load_editor(ROOT / "assets" / "editors" / f"{editor_name}.safetensors")
        params, arch, images, _ = load_zoo(zoo_dir(zoo))
        params = [p[:n] for p in params]
        images = images[:n]

        def score(p, arch=arch, task=task, images=images, editor=editor):
            return run_editor(editor, eval_set(EditData(p, arch, task, images=images)), points=64)["mse"]

        row = {"zoo recipe": score(params)}
        for m in methods():
            if not available(m, family) or m.name == "adam (recipe)" or (names and m.name not in names):
                continue
            # the recipe's budget (150 steps, tiles stop at 40 dB), each method with its 35 dB settings (as tuned
            # for photo tiles / digits by `measure`)
            lr, c = res["photo tiles" if family == "colour" else "digits"][m.name]["params"]["35.0"]
            got = [fit(images[i : i + 64], arch, steps=150, lr=lr, target_psnr=target,
                       init=m.init(len(images[i : i + 64]), arch, family, 1000 + i, c),
                       optimizer_factory=_factory(m, arch, images[i : i + 64], 1000 + i), seed=1000 + i).params
                   for i in range(0, n, 64)]
            row[m.name] = score([torch.cat(ts) for ts in zip(*got)])
            print(f"editability {editor_name} / {m.name}: {row[m.name]:.3e}", flush=True)
        out[editor_name] = row
    return out


def report(res: dict, edit: dict, command: str) -> None:
    parts = []
    for kind, rows in res.items():
        base = rows.get("adam (tuned)")
        header = ["method"] + [f"steps to {t:.0f} dB" for t in THRESHOLDS] + [f"time to {t:.0f} dB" for t in THRESHOLDS]
        header += ["vs tuned Adam at 35 dB"]
        body = []
        for name, row in rows.items():
            st = [torch.tensor(row["steps"][str(t)]) for t in THRESHOLDS]
            tm = [statistics.median(row["seconds"][str(t)]) for t in THRESHOLDS]
            speed = "—"
            if base is not None:
                b = statistics.median(base["seconds"]["35.0"])
                mine = tm[1]
                speed = f"{b / mine:.2f}×" if math.isfinite(mine) and math.isfinite(b) else "—"
            body.append([name] + [_fmt_steps(s) for s in st] + [_fmt_time(x) for x in tm] + [speed])
        parts.append(f"### {kind}\n\n{len(next(iter(rows.values()))['steps']['35.0'])} images. Steps: median "
                     f"(share reaching the target within {STEPS} steps). Time: median CPU time per image at the "
                     "app's batch, one thread. Speed-up: tuned Adam's median time to 35 dB / the method's.\n\n"
                     + table(header, body))
        if kind == "photo tiles":
            header = ["method"] + [f"photo time to {t:.0f} dB" for t in THRESHOLDS]
            body = [[name] + [_fmt_time(statistics.median(row["photo_seconds"][str(t)])) for t in THRESHOLDS]
                    for name, row in rows.items()]
            parts.append(f"### whole 256² photos ({', '.join(PHOTOS)})\n\nMedian over the four photos of the CPU "
                         "time until every tile reaches the target (the app's per-tile stop), tiles in groups of "
                         "16, one thread.\n\n" + table(header, body))
        params = [[name] + [f"lr {row['params'][str(t)][0]:g}" + (f", c {row['params'][str(t)][1]:g}"
                                                                   if row['params'][str(t)][1] != 1 else "")
                            for t in THRESHOLDS] for name, row in rows.items() if name.endswith("(tuned)")]
        if params:
            parts.append(f"Tuned settings ({kind}, on validation images):\n\n"
                         + table(["method"] + [f"{t:.0f} dB" for t in THRESHOLDS], params))
    if edit:
        body = []
        for editor_name, row in edit.items():
            z = row["zoo recipe"]
            for name, v in row.items():
                body.append([editor_name, name, f"{v:.3e}", f"{v / z:.2f}×"])
        parts.append("### Editability\n\nShipped editors' test MSE on INRs fitted by each method (the recipe's "
                     "150-step budget, each with its 35 dB settings) against the zoo-recipe INRs of the same "
                     "images (contrast: 304 tiles-test regions; dilate: 200 MNIST-5k test digits). Goal ≤ 1.1×.\n\n"
                     + table(["editor", "fitted by", "editor MSE", "vs zoo recipe"], body))
    parts.append(_figures(res, edit))
    cards = json.loads((ART / "cards.json").read_text()) if (ART / "cards.json").exists() else {}
    if cards:
        parts.append("Meta-training of the candidates (`python -m bench.fitting train`, one thread each; files in "
                     "`bench/artifacts/fitting/`):\n\n" + "\n".join(
                         f"- `{k}`: `{v['command']}` — {v['wall_minutes']} min wall, {v['date']}"
                         for k, v in cards.items()))
    write_section("fitting", "Fitting speed at practical targets", "\n\n".join(parts), command=command)


def _med_time(row: dict, t: float, key: str = "seconds") -> float:
    return statistics.median(row[key][str(t)])


def _figures(res: dict, edit: dict) -> str:
    """The issue's figures, computed from the tables above."""
    out = []
    for kind in ("photo tiles", "faces", "digits"):
        rows = res.get(kind, {})
        if "adam (tuned)" not in rows:
            continue
        base = _med_time(rows["adam (tuned)"], 35.0)
        speed = {n: base / _med_time(r, 35.0) for n, r in rows.items() if n != "adam (tuned)"}
        best = max(speed, key=speed.get)
        goal = " (goal ≥ 3×)" if kind in ("photo tiles", "faces") else ""
        out.append(f"{kind}: the fastest candidate to 35 dB is {best}, {speed[best]:.2f}× tuned Adam's wall "
                   f"time{goal}: {'met' if speed[best] >= 3 else 'not met'}")
    photo = res.get("photo tiles", {})
    if photo:
        best = min(photo, key=lambda n: _med_time(photo[n], 35.0, "photo_seconds"))
        t = _med_time(photo[best], 35.0, "photo_seconds")
        out.append(f"whole 256² photo at 35 dB: fastest {best}, {t:.2f} s (goal ≤ 1 s): "
                   f"{'met' if t <= 1 else 'not met'}")
    for kind, rows in res.items():
        if "learned opt (+GMN)" in rows and "learned opt (no GMN)" in rows:
            g, n = rows["learned opt (+GMN)"], rows["learned opt (no GMN)"]
            gs = float(torch.tensor(g["steps"]["35.0"]).median())
            ns = float(torch.tensor(n["steps"]["35.0"]).median())
            out.append(f"GradMetaNet features ({kind}, equal meta-training budget): median steps to 35 dB {gs:.0f} "
                       f"with vs {ns:.0f} without, wall time {_med_time(g, 35.0) * 1000:.0f} vs "
                       f"{_med_time(n, 35.0) * 1000:.0f} ms: they {'help' if gs < ns else 'do not help'}")
    ship = [n for kind in ("photo tiles", "digits") for n, r in res.get(kind, {}).items()
            if n != "adam (tuned)" and "adam (tuned)" in res[kind]
            and _med_time(res[kind]["adam (tuned)"], 35.0) / _med_time(r, 35.0) >= 2]
    out.append("shipping rule (≥ 2× tuned Adam's wall time to 35 dB): "
               + (f"{', '.join(sorted(set(ship)))} qualify" if ship else "no candidate qualifies; the recipes stay"))
    for editor_name, row in edit.items():
        z = row["zoo recipe"]
        bad = [n for n, v in row.items() if v / z > 1.1]
        out.append(f"editability ({editor_name}): within 1.1× for "
                   + ", ".join(n for n in row if n != "zoo recipe" and n not in bad)
                   + (f"; outside it: {', '.join(f'{n} ({row[n] / z:.2f}×)' for n in bad)}" if bad else ""))
    return "Figures:\n\n" + "\n".join(f"- {x}" for x in out)


def main() -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.fitting")
    sub = ap.add_subparsers(dest="cmd", required=True)
    p = sub.add_parser("train")
    p.add_argument("--minutes", type=float, default=META_MINUTES)
    p = sub.add_parser("report")
    p.add_argument("--only", default=None, help="comma-separated image types (default: all)")
    p.add_argument("--no-edit", action="store_true")
    p.add_argument("--methods", default=None, help="comma-separated method names to (re)measure (default: all)")
    p.add_argument("--from-cache", action="store_true", help="rewrite the section from $GMN_HOME/cache/fitting.json")
    args = ap.parse_args()
    if args.cmd == "train":
        train(args.minutes)
        return
    cache = cache_dir() / "fitting.json"
    old = json.loads(cache.read_text()) if cache.exists() else {}
    if args.from_cache:  # rewrite the section from the last measurement
        report(old["res"], old.get("edit", {}), "python -m bench.fitting report")
        return
    names = set(args.methods.split(",")) if args.methods else None
    res = measure(set(args.only.split(",")) if args.only else None, names)
    merged = old.get("res", {})
    for kind, rows in res.items():  # rows of the methods measured now replace theirs; the others are kept
        merged[kind] = {**merged.get(kind, {}), **rows}
        merged[kind] = {m.name: merged[kind][m.name] for m in methods() if m.name in merged[kind]}  # table order
    old["res"] = merged
    if not args.no_edit:
        edit = editability(old["res"], names)
        old["edit"] = {k: {**old.get("edit", {}).get(k, {}), **v} for k, v in edit.items()}
    cache.parent.mkdir(parents=True, exist_ok=True)
    cache.write_text(json.dumps(old))
    report(old["res"], old.get("edit", {}), "python -m bench.fitting report")


if __name__ == "__main__":
    main()
