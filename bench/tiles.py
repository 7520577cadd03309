"""Photo-scale editing (tiled INRs): fitting photos as grids of 2→32→32→3 tiles, editing them with the
shipped colour editors, and a figure.

    python -m bench.tiles                      # fits edits picture: 10-16 min on one thread the first time, ~2 after
    python -m bench.tiles fits [--sizes 256,512]
    python -m bench.tiles edits
    python -m bench.tiles picture
    python -m bench.tiles ... --force          # refit / remeasure instead of reading $GMN_HOME/cache/tiles/

fits: four scikit-image photos (astronaut, coffee, chelsea, camera; the gray camera fitted as R = G = B, the
    app's rule) at the app's working size (longer side 256 and 512, aspect kept: `inr.tiles.plan_fit`) by
    TILE_RECIPE, with and without its per-tile early stop, against ONE SIREN (3 sine layers) with about the
    same parameter count trained by Adam for the tiled fit's CPU time (and, at 256², longer, for its time
    to 30/35/40 dB). 8-14 minutes the first time (the range: how busy the machine was).
edits: on the 256 tiled fits, every colour filter editor of the registry (config.arch.dim_out == 3) against
    no edit and test-time Adam (on the editor's points; on the full target at equal time and K = 10/100),
    the seam ratio, the latency of a whole-photo edit and of a paint stroke, and synthetic paint strokes
    with every colour paint editor. About 2 minutes.
picture: bench/figures/tiles.png. Under a minute.

Everything runs on one torch thread (a background job may hold the other core); times are that thread's CPU
time where the machine is shared (see Clock). The fitted tiles and the fits' results are cached in
$GMN_HOME/cache/tiles/ (refitted only when the recipe or these settings change, or with --force); edits and
picture are measured on every run. Each subcommand rewrites the whole `tiles` section of BENCHMARKS.md from
the results in $GMN_HOME/cache/tiles/, so the parts can be rerun separately.

Modules, one per table: bench/tiles_fit.py (fits), bench/tiles_edit.py (edits), bench/tiles_common.py (the
settings and cache they share); this file draws the picture and writes the section.
"""

from __future__ import annotations

import argparse
import sys
import time

import numpy as np
import torch

from bench.report import ROOT, write_section
from bench.tiles_common import (
    CACHE,
    FIGURE,
    POINTS,
    STROKE_SEED,
    STROKES,
    TUNE_PHOTO,
    load_result,
    measured,
    save_result,
    stamp,
    tile_arch,
)
from bench.tiles_edit import cmd_edits, colour_editors, edits_body, render_photo
from bench.tiles_fit import cmd_fits, fits_body, load_tiles, psnr_db
from inr.home import say_where


def cmd_picture() -> None:
    t_run = time.perf_counter()
    from PIL import Image, ImageDraw, ImageFont

    from gmn.edit import edit_inr, resolve_editor
    from gmn.editors import load_editor
    from gmn.objectives import filter_target, random_paint

    arch = tile_arch()
    filt, paint = colour_editors()
    fname = "contrast" if "contrast" in filt else next(iter(filt))
    feditor, _ = load_editor(filt[fname])
    rows, labels = [], []
    for name in ("astronaut", "coffee"):
        params, grid, image = load_tiles(name, 256)
        orig = render_photo(params, grid)
        target = filter_target(orig[None], feditor.config.task).target[0].float()
        e = edit_inr(params, arch, feditor, grid=grid, points=POINTS, seed=0)
        rows.append([image, orig, target, render_photo(e.params, grid)])
        labels.append([f"{name}: photo", f"tiled fit {psnr_db(orig, image):.1f} dB", f"target ({fname}, whole image)",
                       f"{fname} editor, MSE {e.mse:.1e}"])
    pname = "paint-color" if "paint-color" in paint else next(iter(paint), None)
    if pname:
        peditor, _ = load_editor(resolve_editor(pname) if pname == "paint-color" else paint[pname])
        params, grid, image = load_tiles(TUNE_PHOTO, 256)
        h, w = grid.image_size
        orig = render_photo(params, grid)
        masks, colours = random_paint(STROKES, h, w, 3, generator=np.random.default_rng(STROKE_SEED))
        mask, colour = masks[0], colours[0]
        tgt = torch.where(mask > 0.5, colour.expand_as(orig), orig)
        e = edit_inr(params, arch, peditor, grid=grid, points=POINTS, mask=mask, paint=colour, seed=0)
        ed = render_photo(e.params, grid)
        m = mask[..., 0] > 0.5
        inside = float((ed - colour).pow(2)[m].mean())
        outside = float((ed - orig).pow(2)[~m].mean())
        diff = (ed - orig).abs().mean(-1, keepdim=True).clamp(0, 0.25).mul(4).expand_as(orig)
        rows.append([orig, tgt, ed, diff])
        labels.append([f"{TUNE_PHOTO}: tiled fit", "paint target (synthetic stroke)",
                       f"{pname}: inside {inside:.1e}, outside {outside:.1e}", "|edited - fit| x 4"])
    cell = 256
    pad, head = 4, 16
    H = sum(max(x.shape[0] for x in r) + head + pad for r in rows)
    W = 4 * (cell + pad)
    canvas = Image.new("RGB", (W, H), "white")
    draw = ImageDraw.Draw(canvas)
    font = ImageFont.load_default(size=12)
    y = 0
    for r, lab in zip(rows, labels):
        rh = max(x.shape[0] for x in r)
        for i, (x, text) in enumerate(zip(r, lab)):
            arr = (x.clamp(0, 1).numpy() * 255).round().astype(np.uint8)
            canvas.paste(Image.fromarray(arr), (i * (cell + pad), y + head + (rh - arr.shape[0]) // 2))
            draw.text((i * (cell + pad) + 2, y), text, fill="black", font=font)
        y += rh + head + pad
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    canvas.save(FIGURE)
    save_result("picture", {**stamp("python -m bench.tiles picture"), "rows": labels,
                      "seconds": round(time.perf_counter() - t_run, 1)})
    print(f"wrote {FIGURE.relative_to(ROOT)}", flush=True)
    write()


def write() -> None:
    F, D, Pic = load_result("fits"), load_result("edits"), load_result("picture")
    body = []
    if F:
        body += fits_body(F)
    if D:
        body += edits_body(D)
    if Pic and FIGURE.exists():
        body += ["### Picture", "", measured(Pic), "",
                 "Rows: two photos at 256 (photo | tiled fit | contrast target of the whole render | contrast editor), "
                 "then a synthetic paint stroke on astronaut (tiled fit | paint target | paint-color editor | "
                 "|edited − fit| × 4: where the edit changed the image, which is every touched tile, in blocks).",
                 "",
                 f"![tiled fits and edits]({FIGURE.relative_to(ROOT)})", ""]
    write_section("tiles", "Photo-scale editing (tiled INRs)", "\n".join(body) or "(nothing measured yet)",
                  command="python -m bench.tiles " + " ".join(sys.argv[1:]))


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.tiles", description=__doc__.split("\n")[0])
    ap.add_argument("what", nargs="*", metavar="{fits,edits,picture,write}",
                    help="parts to run (default: fits edits picture); 'write' only rewrites the section")
    ap.add_argument("--sizes", default="256,512", help="fits: longer sides of the working size")
    ap.add_argument("--force", action="store_true", help="ignore $GMN_HOME/cache/tiles/ and measure again")
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    say_where("bench.tiles cache", CACHE)
    bad = [w for w in args.what if w not in ("fits", "edits", "picture", "write")]
    if bad:
        ap.error(f"unknown part {bad[0]!r}; choose from fits, edits, picture, write")
    torch.set_num_threads(args.threads)
    torch.set_flush_denormal(True)  # as the app does
    what = args.what or ["fits", "edits", "picture"]
    t0 = time.perf_counter()
    if "fits" in what:
        cmd_fits([int(s) for s in args.sizes.split(",")], args.force)  # bench/tiles_fit.py
        write()
    if "edits" in what:
        cmd_edits(args.force)  # bench/tiles_edit.py
        write()
    if "picture" in what:
        cmd_picture()
    if what == ["write"]:
        write()
    print(f"bench.tiles {' '.join(what)}: {time.perf_counter() - t0:.0f} s", flush=True)


if __name__ == "__main__":
    main()
