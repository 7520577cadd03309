"""Fitting speed of photos at their own resolution: the streamed tile fit against this CPU's matmul peak,
the old autograd fit, and full fits of 1024×768 and 741×500 photos. Writes the `fit_speed` section.

    python -m bench.fit_speed              # about 10-25 min on a busy 2-core machine
    python -m bench.fit_speed --quick      # the probe and the 256² comparison only (2-3 min)
    python -m bench.fit_speed --report     # rewrite the section from the last run's results

Results are kept in $GMN_HOME/bench/fit_speed.json (inr.home), written atomically.

- Probe: one thread's float32 matmul rate here per CPU-second of the thread, a 2048² sgemm and the fit's own
  bmm shape (16 × 1024 × 32 × 32), median of 7.
- 256²: one photo no editor saw (scikit-image's retina, centre-cropped, resized), 9×9 tiles of
  2→32→32→3 by TILE_RECIPE, fitted by the old path (`inr.fit.fit_recipe`, autograd and torch's Adam, groups
  of 16 tiles that end when all their tiles are done) and by `inr.fit.fit_streamed` (one worker). FLOPs are
  the matmuls' (`inr.fit.matmul_flops` × pixels × tile-steps computed); the rate is per CPU-second of the
  process, so it does not depend on how busy the machine is; the ratio is against the probe's bmm rate.
- Full fits: 1024×768 photos made from scikit-image photos no editor saw (retina downscaled; the two
  stereo_motorcycle views centre-cropped to 4:3 and upscaled ×1.54, which makes them smoother than a
  native 1024×768 photo), fitted by `inr.tiles.fit_photo` with one worker per core as the CLI does; and the
  two 741×500 stereo_motorcycle views (native) through `python -m inr fit` (a subprocess, wall time
  including start-up). The editors' training photos (inr.datasets._photos) are not used.

The machine is shared: wall times carry the load (`uptime` is quoted before and after), CPU times less so.
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

from bench.report import table, write_section


def _load() -> str:
    return ", ".join(f"{x:.2f}" for x in os.getloadavg())


def probe() -> dict:
    """One thread's float32 GFLOP/s: a 2048² sgemm and the fit's bmm (16 × 1024 × 32 @ 32 × 32)."""
    torch.set_num_threads(1)

    def rate(f, flops, n=7):  # per CPU-second of this thread, as the fits below (the machine is shared)
        f()
        ts = []
        for _ in range(n):
            t0 = time.thread_time()
            f()
            ts.append(time.thread_time() - t0)
        return flops / statistics.median(ts) / 1e9

    a, b = torch.randn(2048, 2048), torch.randn(2048, 2048)
    x, w = torch.randn(16, 1024, 32), torch.randn(16, 32, 32)
    return {"sgemm": rate(lambda: a @ b, 2 * 2048**3),
            "bmm": rate(lambda: [torch.bmm(x, w) for _ in range(20)], 20 * 2 * 16 * 1024 * 32 * 32)}


def photo(name: str) -> np.ndarray:
    """A float32 (H, W, 3) photo in [0, 1] from scikit-image (none of them in the editors' training set)."""
    import skimage.data as skd

    if name == "retina":
        return skd.retina().astype(np.float32) / 255.0
    left, right = skd.stereo_motorcycle()[:2]
    return (left if name == "motorcycle-left" else right).astype(np.float32) / 255.0


def at_size(img: np.ndarray, h: int, w: int) -> torch.Tensor:
    """Centre-crop to h:w and resize (Lanczos): (h, w, 3)."""
    from inr.images import to_size

    return to_size(img, (h, w), aspect="crop")


def compare_256() -> dict:
    """Old (autograd, groups) and streamed fits of one 256² photo: CPU s, wall s, PSNR, GFLOP/CPU-s."""
    from inr.fit import TILE_RECIPE, StreamStats, fit_recipe, fit_streamed, matmul_flops, psnr
    from inr.siren import SirenArch, init_params, select
    from inr.tiles import FIT_GROUP, TileGrid, render_tiles

    torch.set_num_threads(1)
    image = at_size(photo("retina"), 256, 256)
    grid, arch = TileGrid.for_image((256, 256)), SirenArch(dim_out=3)
    tiles = grid.cut(image)
    n = len(tiles)
    init = init_params(arch, n, generator=torch.Generator().manual_seed(0))
    out = {}
    for name in ("old", "streamed"):
        c0, t0 = time.process_time(), time.perf_counter()
        if name == "old":
            rs = [fit_recipe(tiles[i : i + FIT_GROUP], arch, TILE_RECIPE, init=select(init, slice(i, i + FIT_GROUP)))
                  for i in range(0, n, FIT_GROUP)]
            params = [torch.cat(ts) for ts in zip(*(r.params for r in rs))]
            # each group runs until its slowest tile is done: its step count times its size
            tile_steps = sum(len(r.steps) * (int(r.steps.max()) + 1) for r in rs)
        else:
            stats = StreamStats()
            params = fit_streamed(tiles, arch, TILE_RECIPE, init=init, group=FIT_GROUP, stats=stats).params
            tile_steps = stats.tile_steps
        cpu, wall = time.process_time() - c0, time.perf_counter() - t0
        whole = render_tiles(params, arch, grid)[0]
        flops = matmul_flops(arch) * grid.tile**2 * tile_steps
        out[name] = {"cpu": cpu, "wall": wall, "psnr": float(psnr((whole - image).pow(2).mean())),
                     "tile_steps": tile_steps, "gflops": flops / cpu / 1e9}
    return out


def full_fit(name: str, size: tuple[int, int]) -> dict:
    """fit_photo of a photo at `size` with one worker per core (as the CLI): wall, CPU, PSNR."""
    from inr.fit import TILE_RECIPE
    from inr.siren import SirenArch
    from inr.threads import choose_threads
    from inr.tiles import TileGrid, fit_photo

    torch.set_num_threads(1)
    image = at_size(photo(name), *size)
    grid = TileGrid.for_image(size)
    c0 = time.process_time()
    res = fit_photo(image, SirenArch(dim_out=3), grid, TILE_RECIPE, workers=choose_threads())
    return {"photo": name, "tiles": grid.count, "wall": res.seconds, "cpu": time.process_time() - c0,
            "psnr": res.psnr}


def cli_fit(name: str) -> dict:
    """`python -m inr fit` of a native 741×500 photo (defaults): wall time of the command, its PSNR."""
    from PIL import Image

    from inr.files import load_inr

    with tempfile.TemporaryDirectory() as tmp:
        png, out = Path(tmp) / f"{name}.png", Path(tmp) / "out.safetensors"
        Image.fromarray((photo(name) * 255).round().astype(np.uint8)).save(png)
        t0 = time.perf_counter()
        r = subprocess.run([sys.executable, "-m", "inr", "fit", str(png), "-o", str(out), "-q"], capture_output=True,
                           text=True)
        wall = time.perf_counter() - t0
        if r.returncode != 0:
            raise RuntimeError(r.stderr.strip())
        inr = load_inr(out)
        return {"photo": name, "size": inr.grid.image_size, "wall": wall, "psnr": float(inr.meta["psnr"])}


def _results_path() -> Path:
    from inr.home import data_home

    return data_home() / "bench" / "fit_speed.json"


def main(argv: list[str] | None = None) -> None:
    import json

    ap = argparse.ArgumentParser(prog="python -m bench.fit_speed", description=__doc__.split("\n")[0])
    ap.add_argument("--quick", action="store_true", help="the probe and the 256² comparison only")
    ap.add_argument("--report", action="store_true", help="rewrite the section from the saved results")
    args = ap.parse_args(argv)
    path = _results_path()
    if args.report:
        r = json.loads(path.read_text())
    else:
        load0 = _load()
        p = probe()
        cmp = compare_256()
        print("probe", p, "\n256²", cmp, flush=True)
        big = [] if args.quick else [full_fit(n, (768, 1024)) for n in ("retina", "motorcycle-left",
                                                                         "motorcycle-right")]
        print("1024×768", big, flush=True)
        cli = [] if args.quick else [cli_fit(n) for n in ("motorcycle-left", "motorcycle-right")]
        print("741×500", cli, flush=True)
        r = {"load0": load0, "load1": _load(), "probe": p, "cmp": cmp, "big": big, "cli": cli, "quick": args.quick}
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(r, indent=1))
        os.replace(tmp, path)
    report(r)


def report(r: dict) -> None:
    """Write the `fit_speed` section from a run's results."""
    from inr.tiles import TileGrid

    load0, load1, p, cmp, big, cli = r["load0"], r["load1"], r["probe"], r["cmp"], r["big"], r["cli"]
    rows_, cols_ = TileGrid.for_image((768, 1024)).shape
    o, s = cmp["old"], cmp["streamed"]
    rows = [[k, f"{v['cpu']:.2f}", f"{v['wall']:.2f}", f"{v['psnr']:.2f}", f"{v['tile_steps']:,}",
             f"{v['gflops']:.1f}", f"{v['gflops'] / p['bmm']:.0%}"] for k, v in (("old: autograd, groups of 16", o),
                                                                          ("streamed (`fit_streamed`)", s))]
    body = [f"Load average (1, 5, 15 min) before: {load0}; after: {load1} (2 cores, shared with other jobs).", "",
            f"**Probe** (one thread, float32, per CPU-second): 2048² sgemm {p['sgemm']:.0f} GFLOP/s; the fit's bmm "
            f"shape 16 × 1024 × 32 @ 32 × 32 {p['bmm']:.0f} GFLOP/s.", "",
            "**One 256² photo** (retina, 9×9 tiles of 2→32→32→3, TILE_RECIPE, one thread). GFLOP/s counts the "
            "matmuls (forward W·a, backward Wᵀ·g and g·aᵀ) per CPU-second; the last column is that over the "
            "probe's bmm rate:", "",
            table(["fit", "CPU s", "wall s", "PSNR dB", "tile-steps", "GFLOP/CPU-s", "of bmm peak"], rows), "",
            f"Streamed vs old: {o['cpu'] / s['cpu']:.2f}× less CPU time, {s['psnr'] - o['psnr']:+.3f} dB "
            f"({(1 - s['tile_steps'] / o['tile_steps']):.0%} fewer tile-steps from the early exit)."]
    if big:
        body += ["", f"**1024×768 photos** (`fit_photo`, TILE_RECIPE, one worker thread per core; {rows_}×{cols_} "
                 f"= {rows_ * cols_:,} tiles; the motorcycle views upscaled from 741×500, see the script's doc; "
                 "CPU s over wall s is the share of the machine this process got):", "",
                 table(["photo", "tiles", "wall s", "CPU s", "PSNR dB"],
                       [[b["photo"], b["tiles"], f"{b['wall']:.1f}", f"{b['cpu']:.1f}", f"{b['psnr']:.2f}"]
                        for b in big]), "",
                 f"Median: {statistics.median(b['psnr'] for b in big):.2f} dB, "
                 f"{statistics.median(b['wall'] for b in big):.1f} s wall, "
                 f"{statistics.median(b['cpu'] for b in big):.1f} s CPU (goals: ≥ 38 dB, ≤ 20 s wall)."]
    if cli:
        body += ["", "**741×500 photos through the CLI** (`python -m inr fit photo.png -o out.safetensors`, "
                 "defaults: native size, 18×27 tiles; wall time of the whole command):", "",
                 table(["photo", "size", "wall s", "PSNR dB"],
                       [[c["photo"], f"{c['size'][1]}×{c['size'][0]}", f"{c['wall']:.1f}", f"{c['psnr']:.2f}"]
                        for c in cli]), "",
                 f"Median: {statistics.median(c['psnr'] for c in cli):.2f} dB in "
                 f"{statistics.median(c['wall'] for c in cli):.1f} s (goal: ≥ 36 dB in ≤ 10 s)."]
    write_section("fit_speed", "Fitting speed: photos at their own resolution", "\n".join(body),
                  command="python -m bench.fit_speed" + (" --quick" if r["quick"] else ""))


if __name__ == "__main__":
    main()
