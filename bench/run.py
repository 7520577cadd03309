"""`make bench`: run the measurement scripts that rewrite BENCHMARKS.md.

    python -m bench.run          # quick tables (about 15 minutes on 2 cores)
    python -m bench.run --long   # + the training-based editor tables (hours: 10 CPU-minutes per editor run)

Each script states its own expected run time in its docstring.
"""

from __future__ import annotations

import argparse
import subprocess
import sys

QUICK = [
    ["bench.inr_core"],  # ~10 min: render, photo fit, lr sweep, the 5,000-INR zoo
    ["bench.gmn_core"],  # ~3 min: memory of decomposed gradients, forward and decomposition time
]
LONG = [
    ["bench.editors", "train", "--task", "dilate", "--data", "mnist5k", "--jobs", "2"],
    ["bench.editors", "report", "--task", "dilate", "--data", "mnist5k"],
    ["bench.optimizer", "train"],  # 2 × 30 CPU-min: meta-train the learned optimizer with and without GradMetaNet
    ["bench.optimizer", "report"],  # ~10 min: steps to tuned Adam's 500-step PSNR
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
