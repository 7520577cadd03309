"""`make bench`: run the measurement scripts that rewrite BENCHMARKS.md.

    python -m bench.run          # quick tables (about 45 minutes on 2 cores; ~35 with $GMN_HOME/cache/tiles/ filled)
    python -m bench.run --long   # + the training-based editor tables (hours: 10 CPU-minutes per editor run)

Each script states its own expected run time in its docstring. Zoos, runs and caches go to the data home,
$GMN_HOME (default ~/.cache/gmn-inr; inr.home), never into the checkout; the `--init runs/bench/...` names
below are relative to it (gmn.train resolves them there, `inr.home.in_home`), so cards stay portable.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

QUICK = [
    ["bench.inr_core"],  # ~10 min: render, photo fit, lr sweep, the 5,000-INR zoo
    ["bench.gmn_core"],  # ~3 min: memory of decomposed gradients, forward and decomposition time
    ["bench.tiles"],  # 10-16 min the first time, ~2 min after (fits cached in $GMN_HOME/cache/tiles/): tiled photos
    ["bench.fitting", "report"],  # ~20 min: steps and time to 30/35/40 dB per fitting method; editability
    ["bench.curves"],  # seconds: the shipped editors' learning curves
    ["bench.structure"],  # a second: the longest function and the largest config of HEAD (issue 27)
    ["bench.paper_sizes"],  # ~8 min: the paper's editor sizes, their file, forward and training-step cost here
    ["bench.editor_resolution"],  # ~15 min the first time, ~10 s cached: colour editors at 256/512/1024 px
]
LONG = [
    ["bench.editors", "train", "--task", "dilate", "--data", "mnist5k", "--jobs", "2"],
    ["bench.editors", "report", "--task", "dilate", "--data", "mnist5k"],
    ["bench.editors", "train", "--task", "erode", "--data", "mnist5k", "--kinds", "ws", "--seeds", "0"],
    ["bench.editors", "report", "--task", "erode", "--data", "mnist5k"],
    ["bench.editors", "train", "--task", "paint", "--data", "mnist5k", "--kinds", "gmn,ws+probe+res,ws+gmn,ws",
     "--seeds", "0", "--jobs", "2"],
    ["bench.editors", "report", "--task", "paint", "--data", "mnist5k"],
    ["bench.editors", "train", "--task", "contrast", "--data", "patches", "--jobs", "2"],
    ["bench.editors", "report", "--task", "contrast", "--data", "patches"],
    ["bench.editors", "train", "--task", "paint", "--data", "patches", "--kinds", "ws+gmn", "--seeds", "0"],
    ["bench.editors", "report", "--task", "paint", "--data", "patches"],
    # the colour editors on the tiles zoo (the tile recipe; ~35 CPU-min to build the zoo the first time)
    ["bench.editors", "train", "--task", "contrast", "--data", "tiles", "--kinds", "gmn,ws", "--seeds", "0",
     "--minutes", "15", "--augment", "--jobs", "2"],
    ["bench.editors", "train", "--task", "contrast", "--data", "tiles", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "30", "--augment", "--tag", "oce4", "--model", '{"copies": 4}'],
    ["bench.editors", "train", "--task", "contrast", "--data", "tiles", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "30", "--augment"],
    ["bench.editors", "report", "--task", "contrast", "--data", "tiles"],
    ["bench.editors", "train", "--task", "paint", "--data", "tiles", "--kinds", "ws+gmn", "--seeds", "0",
     "--minutes", "25", "--augment"],
    ["bench.editors", "train", "--task", "paint", "--data", "tiles", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "70", "--augment"],
    ["bench.editors", "train", "--task", "paint", "--data", "tiles", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "35", "--augment", "--tag", "r2ft", "--model", '{"rounds": 2}', "--lr", "3e-4",
     "--init", "runs/bench/tiles-paint/ng+gmn-s0/best.safetensors"],
    ["bench.editors", "train", "--task", "paint", "--data", "tiles", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "35", "--augment", "--tag", "ft", "--lr", "3e-4",
     "--init", "runs/bench/tiles-paint/ng+gmn-s0/best.safetensors"],  # the one-round control at the same budget
    # three rounds, fine-tuned 35 CPU-min from the two-round run (gradients re-read twice more)
    ["bench.editors", "train", "--task", "paint", "--data", "tiles", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "35", "--augment", "--tag", "r3ft", "--model", '{"rounds": 3}', "--lr", "3e-4",
     "--init", "runs/bench/tiles-paint/ng+gmn-r2ft-s0/best.safetensors"],
    ["bench.editors", "train", "--task", "paint", "--data", "tiles", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "35", "--augment", "--tag", "r4ft", "--model", '{"rounds": 4}', "--lr", "3e-4",
     "--init", "runs/bench/tiles-paint/ng+gmn-r3ft-s0/best.safetensors"],
    # four rounds again, with the training loss outside the stroke weighed twice (the objective is unchanged)
    ["bench.editors", "train", "--task", "paint", "--data", "tiles", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "35", "--augment", "--tag", "r4ow2", "--model", '{"rounds": 4}', "--lr", "3e-4",
     "--outside-weight", "2", "--init", "runs/bench/tiles-paint/ng+gmn-r4ft-s0/best.safetensors"],
    # five rounds with the outside weighed 1.25× (between the two above), fine-tuned from four rounds
    ["bench.editors", "train", "--task", "paint", "--data", "tiles", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "35", "--augment", "--tag", "r5ow125", "--model", '{"rounds": 5}', "--lr", "3e-4",
     "--outside-weight", "1.25", "--init", "runs/bench/tiles-paint/ng+gmn-r4ft-s0/best.safetensors"],
    # 35 CPU-min more on the five-round run: at the same weight (more training alone) and with the outside at 1.4×
    ["bench.editors", "train", "--task", "paint", "--data", "tiles", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "35", "--augment", "--tag", "r5ow125c", "--model", '{"rounds": 5}', "--lr", "3e-4",
     "--outside-weight", "1.25", "--init", "runs/bench/tiles-paint/ng+gmn-r5ow125-s0/best.safetensors"],
    ["bench.editors", "train", "--task", "paint", "--data", "tiles", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "35", "--augment", "--tag", "r5ow14", "--model", '{"rounds": 5}', "--lr", "3e-4",
     "--outside-weight", "1.4", "--init", "runs/bench/tiles-paint/ng+gmn-r5ow125-s0/best.safetensors"],
    ["bench.editors", "report", "--task", "paint", "--data", "tiles"],
    # ~12 min: the colour paint editors shipped so far (their files at the commits that shipped them) and the two
    # runs above on 5 stroke seeds, paired, with Adam on the same points
    ["bench.editors", "paired", "--task", "paint", "--data", "tiles", "--seeds", "0,1,2,3,4", "--editors",
     "454d282:paint-color,5ab35d6:paint-color,adec4c9:paint-color,0623c48:paint-color,fa2295c:paint-color,"
     "runs/bench/tiles-paint/ng+gmn-r5ow125c-s0/best.safetensors,runs/bench/tiles-paint/ng+gmn-r5ow14-s0/best.safetensors"],
    ["bench.editors", "train", "--task", "blur", "--data", "tiles", "--kinds", "gmn", "--seeds", "0",
     "--minutes", "10", "--augment"],
    ["bench.editors", "train", "--task", "blur", "--data", "tiles", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "25", "--augment"],
    ["bench.editors", "report", "--task", "blur", "--data", "tiles"],
    ["bench.editors", "train", "--task", "sharpen", "--data", "tiles", "--kinds", "gmn", "--seeds", "0",
     "--minutes", "10", "--augment"],
    ["bench.editors", "train", "--task", "sharpen", "--data", "tiles", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "15", "--augment"],
    ["bench.editors", "report", "--task", "sharpen", "--data", "tiles"],
    # the augmented MNIST zoo (40,000 INRs, ~37 CPU-min to build the first time): equal-step ws vs ws+gmn,
    # the shipped default dilate (ws-h32l5), a wider variant, and erode
    ["bench.editors", "train", "--task", "dilate", "--data", "mnist5k-aug", "--kinds", "ws,ws+gmn", "--seeds", "0",
     "--steps", "2000", "--augment", "--tag", "2k"],
    ["bench.editors", "train", "--task", "dilate", "--data", "mnist5k-aug", "--kinds", "ws", "--seeds", "0",
     "--minutes", "35", "--augment", "--tag", "h32l5", "--model", '{"ws_hidden": 32, "ws_layers": 5}'],
    ["bench.editors", "train", "--task", "dilate", "--data", "mnist5k-aug", "--kinds", "ws", "--seeds", "0",
     "--minutes", "40", "--augment", "--tag", "h64l5", "--model", '{"ws_hidden": 64, "ws_layers": 5}'],
    # the neural-graph backbone (gmn/graph.py): 40 CPU-min default and wider, and equal-step ng vs ng+gmn
    ["bench.editors", "train", "--task", "dilate", "--data", "mnist5k-aug", "--kinds", "ng", "--seeds", "0",
     "--minutes", "40", "--augment"],
    ["bench.editors", "train", "--task", "dilate", "--data", "mnist5k-aug", "--kinds", "ng,ng+gmn", "--seeds", "0",
     "--steps", "2000", "--augment", "--tag", "2k"],
    ["bench.editors", "train", "--task", "dilate", "--data", "mnist5k-aug", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "85", "--augment", "--tag", "long"],
    # OCE: k = 4 edited copies averaged (the edit widens the SIREN 4×), equal steps with and without gradients
    ["bench.editors", "train", "--task", "dilate", "--data", "mnist5k-aug", "--kinds", "ng,ng+gmn", "--seeds", "0",
     "--steps", "2000", "--augment", "--tag", "oce4-2k", "--model", '{"copies": 4}'],
    # two rounds (gradients re-read at the edited INR, same points), equal steps with ng-2k and ng+gmn-2k
    ["bench.editors", "train", "--task", "dilate", "--data", "mnist5k-aug", "--kinds", "ng+gmn", "--seeds", "0",
     "--steps", "2000", "--augment", "--tag", "r2-2k", "--model", '{"rounds": 2}'],
    ["bench.editors", "report", "--task", "dilate", "--data", "mnist5k-aug"],
    ["bench.editors", "train", "--task", "erode", "--data", "mnist5k-aug", "--kinds", "ws", "--seeds", "0",
     "--minutes", "10", "--augment"],
    ["bench.editors", "train", "--task", "erode", "--data", "mnist5k-aug", "--kinds", "ng,ng+gmn", "--seeds", "0",
     "--steps", "2000", "--augment", "--tag", "oce4-2k", "--model", '{"copies": 4}'],
    ["bench.editors", "report", "--task", "erode", "--data", "mnist5k-aug"],
    # gray paint on the augmented digits: in place (70 CPU-min) and OCE k = 4 at 2,000 steps
    ["bench.editors", "train", "--task", "paint", "--data", "mnist5k-aug", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "70", "--augment"],
    ["bench.editors", "train", "--task", "paint", "--data", "mnist5k-aug", "--kinds", "ng+gmn", "--seeds", "0",
     "--steps", "2000", "--augment", "--tag", "oce4-2k", "--model", '{"copies": 4}'],
    # two rounds (the network applied again at the edited INR, same points) against one, both fine-tuned
    # 40 CPU-min from the 70 CPU-min run above: equal budget, so the extra training is not what differs
    ["bench.editors", "train", "--task", "paint", "--data", "mnist5k-aug", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "40", "--augment", "--tag", "r2ft", "--model", '{"rounds": 2}', "--lr", "3e-4",
     "--init", "runs/bench/mnist5k-aug-paint/ng+gmn-s0/best.safetensors"],
    ["bench.editors", "train", "--task", "paint", "--data", "mnist5k-aug", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "40", "--augment", "--tag", "ft", "--lr", "3e-4",
     "--init", "runs/bench/mnist5k-aug-paint/ng+gmn-s0/best.safetensors"],
    ["bench.editors", "train", "--task", "paint", "--data", "mnist5k-aug", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "35", "--augment", "--tag", "r3ft", "--model", '{"rounds": 3}', "--lr", "3e-4",
     "--init", "runs/bench/mnist5k-aug-paint/ng+gmn-r2ft-s0/best.safetensors"],
    ["bench.editors", "train", "--task", "paint", "--data", "mnist5k-aug", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "35", "--augment", "--tag", "r4ft", "--model", '{"rounds": 4}', "--lr", "3e-4",
     "--init", "runs/bench/mnist5k-aug-paint/ng+gmn-r3ft-s0/best.safetensors"],
    ["bench.editors", "train", "--task", "paint", "--data", "mnist5k-aug", "--kinds", "ng+gmn", "--seeds", "0",
     "--minutes", "35", "--augment", "--tag", "r5ow125", "--model", '{"rounds": 5}', "--lr", "3e-4",
     "--outside-weight", "1.25", "--init", "runs/bench/mnist5k-aug-paint/ng+gmn-r4ft-s0/best.safetensors"],
    ["bench.editors", "report", "--task", "paint", "--data", "mnist5k-aug"],
    # ~5 min: the gray paint editors shipped so far on 5 stroke seeds, paired (the real test digits: mnist5k)
    ["bench.editors", "paired", "--task", "paint", "--data", "mnist5k", "--seeds", "0,1,2,3,4", "--editors",
     "334b5b8:paint,5a89c61:paint,5ab35d6:paint,adec4c9:paint"],
    ["bench.editors", "widths"],  # ~2 min: every shipped editor at width 64 (zoos *-test-w64)
    ["bench.large_inr"],  # ~25 CPU-min the first time: deep patches zoo, contrast editor, photo fit, Adam curves
    ["bench.fitting", "train"],  # ~30 CPU-min: Reptile inits, learned optimizers (tiles, ± GradMetaNet)
    ["bench.optimizer", "train"],  # 2 × 30 CPU-min: meta-train the learned optimizer with and without GradMetaNet
    ["bench.optimizer", "report"],  # ~10 min: steps to tuned Adam's 500-step PSNR
    ["bench.optimizer", "variants"],  # ~6 min: hand-made Adam variants vs tuned Adam (val images)
    ["bench.curvature"],  # ~40 CPU-min on one thread: Fisher diagonal, 5 models × 4 sizes × 3 seeds (resumable)
]


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--long", action="store_true", help="also run the training-based tables")
    args = ap.parse_args()
    for cmd in QUICK + (LONG if args.long else []):
        print("+ python -m", " ".join(cmd), flush=True)
        subprocess.run([sys.executable, "-m", *cmd], check=True)


if __name__ == "__main__":
    main()
