"""`python -m inr`: fit, render, inspect INRs and build zoos.

    python -m inr fit IMAGE -o OUT.safetensors [--size 64 --hidden 32 --layers 2 --steps 500 --target-psnr DB --seed 0]
    python -m inr render INR.safetensors -o OUT.png [--size 256]
    python -m inr info INR.safetensors
    python -m inr zoo --dataset mnist5k --split train --out DIR [--limit N --shard-size 250]

Bad input prints one line `error: ...` and exits with code 2.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from .errors import InrError


def _cmd_fit(args) -> None:
    from .files import save_inr
    from .fit import fit
    from .images import load_image, to_square
    from .siren import SirenArch

    img = load_image(args.image, channels=args.channels)
    target = to_square(img, args.size, aspect=args.aspect)
    arch = SirenArch(hidden=args.hidden, layers=args.layers, dim_out=target.shape[-1])
    res = fit(
        target, arch, steps=args.steps, lr=args.lr, target_psnr=args.target_psnr, seed=args.seed,
        progress=not args.quiet, device=args.device,
    )
    save_inr(
        args.output, res.params, arch, image_size=[args.size, args.size], source=Path(args.image).name,
        psnr=round(res.psnr.item(), 3), fit={"steps": int(res.steps.item()), "lr": args.lr, "seed": args.seed},
    )
    print(f"{args.output}: PSNR {res.psnr.item():.2f} dB after {int(res.steps.item())} steps, {res.seconds:.2f} s")


def _cmd_render(args) -> None:
    from .files import load_inr
    from .images import save_png
    from .siren import render

    inr = load_inr(args.inr, allow_stack=False)
    img = render(inr.params, inr.arch, args.size)[0]
    save_png(img, args.output)
    print(f"{args.output}: {args.size}×{args.size}, {inr.arch.dim_out} channel(s)")


def _cmd_info(args) -> None:
    from .files import load_inr

    inr = load_inr(args.inr)
    a = inr.arch
    dims = "→".join(str(d) for d in a.dims)
    print(f"SIREN {dims}  (ω0={a.w0_initial:g}, ω={a.w0:g}, {a.num_params} parameters, {a.num_neurons} neurons)")
    print(f"INRs in file: {inr.n}")
    for k, v in inr.meta.items():
        if k not in ("arch",):
            print(f"{k}: {v}")
    if "psnr" in inr.tensors:
        p = inr.tensors["psnr"]
        print(f"psnr: mean {p.mean():.2f}  min {p.min():.2f}  max {p.max():.2f} dB")


def _cmd_zoo(args) -> None:
    from .datasets import load_dataset
    from .siren import SirenArch
    from .zoo import build_zoo

    channels = load_dataset(args.dataset, "val")[:1].shape[-1]
    arch = SirenArch(hidden=args.hidden, layers=args.layers, dim_out=channels)
    index = build_zoo(
        args.dataset, args.split, args.out, arch=arch, steps=args.steps, lr=args.lr, shard_size=args.shard_size,
        seed=args.seed, limit=args.limit, threads=args.threads, progress=not args.quiet,
    )
    if index:
        p = index["psnr"]
        print(f"{args.out}: {index['count']} INRs, PSNR mean {p['mean']:.2f} min {p['min']:.2f} dB")


def add_fit_arguments(p: argparse.ArgumentParser) -> None:
    """The options of `fit` (shared with `python -m gmn fit`, which takes the same ones and more)."""
    from .fit import LR

    p.add_argument("image")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--size", type=int, default=64, help="training resolution (square; default 64)")
    p.add_argument("--aspect", choices=["crop", "stretch"], default="crop")
    p.add_argument("--channels", type=int, choices=[1, 3], default=None, help="default: keep gray as gray")
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=2, help="number of sine layers")
    p.add_argument("--steps", type=int, default=500)
    p.add_argument("--lr", type=float, default=LR, help="Adam's lr")
    p.add_argument("--target-psnr", type=float, default=None)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="cpu")
    p.add_argument("-q", "--quiet", action="store_true")


def main(argv: list[str] | None = None) -> int:
    from .zoo import ZOO_LR, ZOO_STEPS

    ap = argparse.ArgumentParser(prog="python -m inr", description="SIREN INRs: fit, render, inspect, build zoos")
    sub = ap.add_subparsers(dest="cmd", required=True)

    p = sub.add_parser("fit", help="fit a SIREN to an image")
    add_fit_arguments(p)
    p.set_defaults(run=_cmd_fit)

    p = sub.add_parser("render", help="render an INR file to PNG")
    p.add_argument("inr")
    p.add_argument("-o", "--output", required=True)
    p.add_argument("--size", type=int, default=256)
    p.set_defaults(run=_cmd_render)

    p = sub.add_parser("info", help="describe an INR file")
    p.add_argument("inr")
    p.set_defaults(run=_cmd_info)

    p = sub.add_parser("zoo", help="fit a whole dataset split (torchrun-able)")
    p.add_argument("--dataset", default="mnist5k", choices=["mnist5k", "patches", "lfw"])
    p.add_argument("--split", default="train", choices=["train", "val", "test", "all"])
    p.add_argument("--out", required=True)
    p.add_argument("--hidden", type=int, default=32)
    p.add_argument("--layers", type=int, default=2)
    p.add_argument("--steps", type=int, default=ZOO_STEPS)
    p.add_argument("--lr", type=float, default=ZOO_LR)
    p.add_argument("--shard-size", type=int, default=250)
    p.add_argument("--limit", type=int, default=None, help="only the first N images of the split")
    p.add_argument("--threads", type=int, default=None, help="torch threads per process")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("-q", "--quiet", action="store_true")
    p.set_defaults(run=_cmd_zoo)

    args = ap.parse_args(argv)
    try:
        args.run(args)
    except (InrError, ValueError, FileNotFoundError) as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    return 0


if __name__ == "__main__":
    sys.exit(main())
