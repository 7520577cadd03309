"""Settings and helpers shared by the photo-scale benchmark's parts (bench/tiles.py): the cache of measured
results in $GMN_HOME/cache/tiles, the tiles' SIREN, the run stamp, medians.
"""

from __future__ import annotations

import datetime as _dt
import json
import math
import os
import statistics

import torch

from bench.report import ROOT, commit, machine
from inr.home import cache_dir

CACHE = cache_dir("tiles")  # $GMN_HOME/cache/tiles (inr.home), outside the checkout
FIGURE = ROOT / "bench" / "figures" / "tiles.png"
PHOTOS = ("astronaut", "coffee", "chelsea", "camera")
TUNE_PHOTO = "astronaut"  # test-time Adam's lr is tuned on this photo; medians are over the others
THRESHOLDS = (30.0, 35.0, 40.0)
CURVE_EVERY = 5  # steps between whole-image renders of the tiled fit's PSNR curve
# the single SIREN: 3 sine layers, width matched to the tiles' parameter count; Adam lr 1e-3 (LARGE_RECIPE's)
# on 8,192 random pixels a step: the best at equal time of {all pixels, 4096, 8192, 16384} × {3e-4, 1e-3, 3e-3}
# tried once on astronaut 256² during development (all pixels: 7 steps in the tiled fit's time)
SINGLE_LAYERS = 3
SINGLE_BATCH = 8192
SINGLE_LR = 1e-3
SINGLE_LONG = {256: 3.0}  # at 256² the single SIREN runs 3× the tiled fit's time (time to 30/35/40 dB)
# test-time Adam's lr grid: the brief's {1e-3, 3e-3, 1e-2} and, because 1e-3 won at its edge on the first run,
# two smaller ones
ADAM_LRS = (1e-4, 3e-4, 1e-3, 3e-3, 1e-2)
ADAM_KS = (10, 100)
POINTS = 64
SEEDS = (0, 1, 2)  # point draws of the filter edits
STROKE_SEED = 12345
STROKES = 3  # synthetic strokes per photo
LAT_REPS = 12
SEAM_PX = 2


def tile_arch():
    """The tiles' SIREN: 2→32→32→3."""
    from inr.siren import SirenArch

    return SirenArch(hidden=32, layers=2, dim_out=3)


def stamp(command: str) -> dict:
    """What a result records about its run: date, commit, machine, command, threads, load."""
    return {"date": _dt.date.today().isoformat(), "commit": commit(), "machine": machine(), "command": command,
            "threads": torch.get_num_threads(), "load": list(os.getloadavg())}


def load_result(name: str) -> dict:
    """A part's cached results, CACHE/NAME.json ({} when not measured yet)."""
    p = CACHE / f"{name}.json"
    return json.loads(p.read_text()) if p.exists() else {}


def save_result(name: str, data: dict) -> None:
    """Write a part's results to CACHE/NAME.json (atomically: a temporary file, then a rename)."""
    CACHE.mkdir(parents=True, exist_ok=True)
    tmp = CACHE / f"{name}.json.tmp"
    tmp.write_text(json.dumps(data, indent=1))
    os.replace(tmp, CACHE / f"{name}.json")


def med(xs) -> float:
    """The median of the values that are not None or NaN (NaN when none is left)."""
    xs = [x for x in xs if x is not None and not (isinstance(x, float) and math.isnan(x))]
    return statistics.median(xs) if xs else float("nan")


def measured(d: dict, seconds: float | None = None) -> str:
    """The sentence under a table: when, at which commit, by which command, how long, on how loaded a machine."""
    load = d.get("load") or [float("nan")]
    seconds = d.get("seconds") if seconds is None else seconds
    took = (f", {seconds:.0f} s" if seconds < 120 else f", {seconds / 60:.1f} minutes") if seconds else ""
    return (f"Measured {d.get('date')} at commit `{d.get('commit')}` by `{d.get('command')}`{took}, "
            f"{d.get('threads')} torch thread(s), load average {load[0]:.1f} at the end of the run (2 cores; other "
            f"jobs shared the machine).")
