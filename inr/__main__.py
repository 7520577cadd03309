"""`python -m inr`: fit, render, inspect INRs and build zoos.

    python -m inr fit IMAGE -o OUT.safetensors [--size 64 --hidden 32 --layers 2 --steps 500 --target-psnr DB --seed 0]
    python -m inr render INR.safetensors -o OUT.png [--size 256]
    python -m inr info INR.safetensors
    python -m inr zoo --dataset mnist5k --split train [--out DIR --limit N --shard-size 250 --processes P]
    python -m inr metainit --dataset tiles --out INIT.safetensors [--minutes 10 --inner-steps 20]   # Reptile

Bad input prints one line `error: ...` and exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from . import checks
from .errors import InrError


def _check_output(path: str, suffix: str) -> Path:
    """Refuse an output path that cannot be written before any work is done (`inr.checks.output_file`)."""
    return checks.output_file(path, suffix)


# the bounds of every option of every command, by dest (inr.checks; `python -m gmn fit` reuses them)
TYPES = {
    "hidden": checks.integer(1, checks.MAX_HIDDEN), "layers": checks.integer(1, checks.MAX_LAYERS),
    "steps": checks.integer(1, checks.MAX_STEPS), "lr": checks.real(0, 1, open_low=True),
    "target_psnr": checks.real(0, 300, open_low=True), "seed": checks.integer(0, 2**31 - 1),
    "device": checks.device, "threads": checks.THREADS, "processes": checks.THREADS,
    "size": checks.integer(1, 4096), "tile": checks.integer(0, 4096), "overlap": checks.integer(0, 4095),
    "shard_size": checks.integer(1, 100_000), "limit": checks.integer(1, 10**9),
    "minutes": checks.real(0, 10**6, open_low=True), "outer_steps": checks.integer(1, checks.MAX_STEPS),
    "inner_steps": checks.integer(1, checks.MAX_STEPS), "inner_lr": checks.real(0, 1, open_low=True),
    "outer_lr": checks.real(0, 1, open_low=True), "batch": checks.integer(1, 4096),
}


def cmd_fit(args) -> None:
    """`python -m inr fit`: fit an image by the fitting recipe (also `python -m gmn fit --optimizer adam`)."""
    from .files import save_tiled
    from .images import load_image
    from .siren import SirenArch
    from .threads import choose_threads, set_threads
    from .tiles import FIT_GROUP, PREVIEW_SIZE, fit_photo, plan_image

    _check_output(args.output, ".safetensors")
    img = load_image(args.image, channels=args.channels)
    h, w = img.shape[:2]
    plan = plan_image(h, w, img.shape[-1], size=args.size, tile=args.tile, overlap=args.overlap,
                      requested_channels=args.channels, aspect=args.aspect)  # the app's plan too
    grid, recipe = plan.grid, plan.recipe.replace(steps=args.steps, lr=args.lr, target_psnr=args.target_psnr)
    for line in () if args.quiet else plan.notices:
        print(f"notice: {line}", file=sys.stderr)
    arch = SirenArch(hidden=args.hidden, layers=args.layers, dim_out=plan.channels)
    fits = [(plan, recipe, Path(args.output))]
    if args.preview and not grid.is_single and max(grid.image_size) > PREVIEW_SIZE:
        # a progressive fit: a preview at PREVIEW_SIZE first (written next to -o, editable), then the full size
        pre = plan_image(h, w, img.shape[-1], size=PREVIEW_SIZE, tile=args.tile, overlap=args.overlap,
                         requested_channels=args.channels, aspect=args.aspect)
        out = Path(args.output)
        fits.insert(0, (pre, pre.recipe.replace(steps=args.steps, lr=args.lr, target_psnr=args.target_psnr),
                        _check_output(str(out.with_name(out.stem + ".preview" + out.suffix)), ".safetensors")))
    bar = None
    if not args.quiet:  # one bar over every fit, in tile-steps
        from tqdm import tqdm

        bar = tqdm(total=sum(p.grid.count * r.steps for p, r, _ in fits), unit="tile-step",
                   desc=f"fit {grid.describe()}", file=sys.stderr)
    done = 0
    for p, r, out in fits:
        g = p.grid
        # a photo's tiles stream through worker threads of one intra-op thread each (inr.fit.fit_streamed): every
        # core for a photo of at least two working sets of tiles; --threads sets the workers
        workers = 1
        if g.count > 1:
            workers = choose_threads(None if g.count >= 2 * FIT_GROUP else 0, args.threads)
            set_threads(requested=1)
        else:
            set_threads(g.tile**2, args.threads)

        def show(step, psnr, g=g, start=done, label="preview" if out != Path(args.output) else "photo"):
            bar.update(start + (step + 1) * g.count - bar.n)  # the whole photo's progress and PSNR (fit_photo)
            bar.set_postfix_str(f"{label} {g.image_size[1]}×{g.image_size[0]}: PSNR {float(psnr):.2f} dB")

        res = fit_photo(p.target(img), arch, g, r, seed=args.seed, callback=show if bar is not None else None,
                        workers=workers, device=args.device)
        save_tiled(
            out, res.params, arch, g, source=Path(args.image).name, psnr=round(res.psnr, 3),
            source_size=[h, w], fit={**r.to_dict(), "seed": args.seed, "median_steps": int(res.steps.median())},
        )
        done += g.count * r.steps
        line = f"{out}: {g.describe()}, PSNR {res.psnr:.2f} dB, {res.seconds:.2f} s"
        if bar is None:
            print(line)
        else:
            bar.write(line, file=sys.stdout)
    if bar is not None:
        bar.close()


def _render_size(inr, size: int) -> tuple[int, int]:
    """Output (H, W) with the longer side `size`, keeping the aspect ratio of the photo the INR was fitted to
    (its `source_size`, else its working size): a 741×500 photo renders at --size 741 as 741×500."""
    import json

    from .tiles import MAX_SIDE

    if not 1 <= size <= MAX_SIDE:
        raise InrError(f"--size must be between 1 and {MAX_SIDE}, got {size}")
    h, w = inr.image_size or (size, size)
    src = inr.meta.get("source_size")  # JSON text [H, W] (inr.files parses only its own keys)
    try:
        src = json.loads(src) if isinstance(src, str) else src
    except ValueError:
        src = None
    if inr.grid is not None and not inr.grid.is_single and isinstance(src, list) and len(src) == 2 \
            and all(isinstance(v, int) and v > 0 for v in src):
        h, w = src  # a single SIREN covers a square crop: its own square is its aspect
    scale = size / max(h, w)
    return max(1, round(h * scale)), max(1, round(w * scale))


def _cmd_render(args) -> None:
    from .files import load_inr
    from .images import save_png
    from .siren import render
    from .threads import set_threads
    from .tiles import render_tiles

    inr = load_inr(args.inr, allow_stack=False)
    _check_output(args.output, ".png")
    size = _render_size(inr, args.size)
    set_threads(size[0] * size[1], args.threads)
    img = render_tiles(inr.params, inr.arch, inr.grid, size)[0] if inr.grid else render(inr.params, inr.arch, size)[0]
    save_png(img, args.output)
    print(f"{args.output}: {size[1]}×{size[0]}, {inr.arch.dim_out} channel(s)")


def _cmd_info(args) -> None:
    from .files import load_inr

    inr = load_inr(args.inr)
    a = inr.arch
    dims = "→".join(str(d) for d in a.dims)
    print(f"SIREN {dims}  (ω0={a.w0_initial:g}, ω={a.w0:g}, {a.num_params} parameters, {a.num_neurons} neurons)")
    if inr.grid is not None:
        print(f"grid: {inr.grid.describe()} ({inr.n * a.num_params:,} parameters in all)")
    print(f"INRs in file: {inr.n}")
    for k, v in inr.meta.items():
        if k not in ("arch", "grid"):
            print(f"{k}: {v}")
    if "psnr" in inr.tensors:
        p = inr.tensors["psnr"]
        print(f"psnr: mean {p.mean():.2f}  min {p.min():.2f}  max {p.max():.2f} dB")


def _cmd_zoo(args) -> None:
    from .datasets import load_dataset
    from .home import zoo_dir
    from .siren import SirenArch
    from .zoo import build_zoo, default_processes

    out = args.out or zoo_dir(f"{args.dataset}-{args.split}")  # the data home (inr.home)
    checks.output_dir(out)  # before the dataset is loaded
    _check_zoo_resume(Path(out), args)
    channels = load_dataset(args.dataset, "val")[:1].shape[-1]
    arch = SirenArch(hidden=args.hidden, layers=args.layers, dim_out=channels)
    index = build_zoo(
        args.dataset, args.split, out, arch=arch, steps=args.steps, lr=args.lr, shard_size=args.shard_size,
        seed=args.seed, limit=args.limit, threads=args.threads, progress=not args.quiet,
        processes=args.processes or default_processes(),
    )
    if index:
        p = index["psnr"]
        print(f"{out}: {index['count']} INRs, PSNR mean {p['mean']:.2f} min {p['min']:.2f} dB")


def _check_zoo_resume(out: Path, args) -> None:
    """Refuse to resume a zoo in `out` with other settings than it was started with (mixed shards would not
    load together): dataset, split, architecture and shard size from its shards, the recipe from zoo.json."""
    import json

    from safetensors import safe_open

    from .zoo import recipe_for

    if not out.is_dir():
        return
    differ: dict[str, tuple] = {}
    shards = sorted(out.glob("shard-*.safetensors"))
    for path in shards[:1]:
        try:
            with safe_open(str(path), framework="pt") as fh:
                meta = fh.metadata() or {}
                count = fh.get_slice("psnr").get_shape()[0] if "psnr" in fh.keys() else None
            old_arch = json.loads(meta.get("arch", "{}"))
            first = int(meta.get("first_index", 0))
        except Exception:  # a torn shard: the build rebuilds it
            continue
        index = int(path.stem.split("-")[-1])
        for key, flag, now in (("dataset", "--dataset", args.dataset), ("split", "--split", args.split)):
            if meta.get(key, now) != now:
                differ[flag] = (meta[key], now)
        for key in ("hidden", "layers"):
            if old_arch.get(key, getattr(args, key)) != getattr(args, key):
                differ[f"--{key}"] = (old_arch[key], getattr(args, key))
        size = first // index if index else count
        if size is not None and (size != args.shard_size if index or len(shards) > 1 else size > args.shard_size):
            differ["--shard-size"] = (size, args.shard_size)
    if (out / "zoo.json").is_file():
        try:
            fit = json.loads((out / "zoo.json").read_text()).get("fit", {})
        except ValueError:
            fit = {}
        recipe = recipe_for(args.dataset).replace(steps=args.steps, lr=args.lr)
        for key, flag, now in (("steps", "--steps", recipe.steps), ("lr", "--lr", recipe.lr),
                               ("seed", "--seed", args.seed)):
            if key in fit and fit[key] != now:
                differ[flag] = (fit[key], now)
    if differ:
        said = ", ".join(f"{k} {old} (now {new})" for k, (old, new) in differ.items())
        raise InrError(f"{out} holds a zoo built with other settings: {said}; use another --out or those settings")


def _cmd_metainit(args) -> None:
    from .metainit import MetaInitConfig, metatrain_init
    from .threads import set_threads

    _check_output(args.out, ".safetensors")
    set_threads(requested=args.threads or 1)
    cfg = MetaInitConfig(out=args.out, dataset=args.dataset, inner_steps=args.inner_steps, inner_lr=args.inner_lr,
                         batch=args.batch, outer_lr=args.outer_lr, outer_steps=args.outer_steps,
                         minutes=None if args.outer_steps else args.minutes, seed=args.seed, limit=args.limit,
                         freeze_first=args.freeze_first)
    s = metatrain_init(cfg, log=(lambda *_: None) if args.quiet else print)
    print(f"{args.out}: {s['outer_steps']} outer steps, {s['cpu_minutes']:.1f} CPU-min")


def _int_at_least(low: int):
    """An argparse type: an integer ≥ low, else one readable line (argparse exits 2)."""
    what = "a positive integer" if low == 1 else f"an integer ≥ {low}"

    def parse(text: str) -> int:
        try:
            v = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if v < low:
            raise argparse.ArgumentTypeError(f"expected {what}, got {v}")
        return v

    return parse


_positive, _non_negative = _int_at_least(1), _int_at_least(0)


def add_fit_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `fit` (shared with `python -m gmn fit`, which takes the same ones and more)."""
    from .tiles import OVERLAP, TILE

    p.add_argument("image")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--size", type=_positive, default=None,
                   help="working resolution, the longer side (default: 256 for photos; images up to 32 px keep theirs)")
    p.add_argument("--tile", type=_non_negative, default=TILE,
                   help=f"tile side in px (default {TILE}, the colour editors' patch); 0 fits one SIREN")
    p.add_argument("--overlap", type=_non_negative, default=OVERLAP, help=f"pixels shared by neighbouring tiles "
                   f"(default {OVERLAP})")
    p.add_argument("--aspect", choices=["crop", "stretch"], default="crop",
                   help="one SIREN only (tiled photos keep their aspect): centre-crop or stretch to a square")
    p.add_argument("--channels", type=int, choices=[1, 3], default=None,
                   help="default: gray photos are fitted as RGB tiles, small gray images stay gray")
    p.add_argument("--hidden", type=_positive, default=32)
    p.add_argument("--layers", type=_positive, default=2, help="number of sine layers")
    p.add_argument("--steps", type=_positive, default=None, help="default: the recipe's (150 for tiles and digits)")
    p.add_argument("--lr", type=float, default=None, help="Adam's lr (default: the recipe's)")
    p.add_argument("--target-psnr", type=float, default=None,
                   help="per-tile early stop in dB (default: the recipe's, 40 for tiles)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--preview", action="store_true", help="progressive: fit a 256-px preview first, written as "
                   "OUT.preview.safetensors, then the full size (one progress bar)")
    p.add_argument("--device", default="cpu")
    p.add_argument("--threads", type=_positive, default=None, help="torch threads (default: by the work's size)")
    p.add_argument("-q", "--quiet", action="store_true")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m inr", description="SIREN INRs: fit, render, inspect, build zoos")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("fit", help="fit a SIREN to an image")
    add_fit_arguments(p)
    p.set_defaults(run=cmd_fit)

    p = sub.add_parser("render", help="render an INR file to PNG")
    p.add_argument("inr")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--size", type=int, default=256, help="longer side of the PNG (aspect kept)")
    p.add_argument("--threads", type=_positive, default=None)
    p.set_defaults(run=_cmd_render)

    p = sub.add_parser("info", help="describe an INR file")
    p.add_argument("inr")
    p.set_defaults(run=_cmd_info)

    p = sub.add_parser("zoo", help="fit a whole dataset split (torchrun-able)")
    p.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "mnist5k-aug", "patches", "tiles", "lfw"])
    p.add_argument("--split", default="train", choices=["train", "val", "test", "all"])
    p.add_argument("--out", default=None, help="zoo folder (default: $GMN_HOME/zoo/DATASET-SPLIT, "
                   "GMN_HOME defaulting to ~/.cache/gmn-inr)")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--processes", type=_positive, default=None,
                   help="single-thread processes fitting shards at once (default: one per core; not under torchrun)")
    p.add_argument("--steps", type=int, default=None, help="default: the dataset's recipe (150)")
    p.add_argument("--lr", type=float, default=None, help="default: the dataset's recipe (3e-3)")
    p.add_argument("--shard-size", type=int, default=250)
    p.add_argument("--limit", type=int, default=None, help="only the first N images of the split")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(run=_cmd_zoo)

    p = sub.add_parser("metainit", help="meta-learn a SIREN initialisation (Reptile; resumable)")
    p.add_argument("--dataset", default="tiles", choices=["mnist5k", "mnist5k-aug", "tiles", "lfw"])
    p.add_argument("--out", required=True)
    p.add_argument("--minutes", type=float, default=10.0, help="budget in process CPU-minutes")
    p.add_argument("--outer-steps", type=_positive, default=None, help="budget in outer steps (overrides --minutes)")
    p.add_argument("--inner-steps", type=_positive, default=20)
    p.add_argument("--inner-lr", type=float, default=3e-3)
    p.add_argument("--outer-lr", type=float, default=0.5)
    p.add_argument("--batch", type=_positive, default=16)
    p.add_argument("--freeze-first", action="store_true", help="keep the init's first layer at its random draw")
    p.add_argument("--limit", type=_positive, default=None)
    p.add_argument("--threads", type=_positive, default=None, help="torch threads (default 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(run=_cmd_metainit)

    for sp in sub.choices.values():
        checks.apply_types(sp, TYPES)
    args = ap.parse_args(argv)
    try:
        args.run(args)
    except (InrError, ValueError, OSError) as e:  # OSError: a disk that fills or a folder removed mid-run
        print(f"error: {str(e).splitlines()[0] if str(e) else type(e).__name__}", file=sys.stderr)
        return 2
    except (KeyboardInterrupt, Exception) as e:  # Exception: the zoo launcher's Ctrl-C
        if not checks.interrupted(e):
            raise
        print("interrupted; the same command resumes (zoos keep their finished shards, metainit its last "
              "state)", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
