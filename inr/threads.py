"""Choosing torch's thread count once, at the edge (CLI and app), by the size of the work.

Tiny SIRENs gain nothing from many BLAS threads and lose a lot on a busy machine (fitting a
28² image took 2.3 s with one thread and 17 s with two while other work ran), so work below
SMALL_WORK elements (INRs × points per step) runs on one thread; larger work uses every core.
An explicit `--threads N` always wins.
"""

from __future__ import annotations

import os

import torch

SMALL_WORK = 1 << 20


def choose_threads(work: int | None = None, requested: int | None = None) -> int:
    """Threads for a job of `work` elements: `requested` if given, else 1 for small work, else all cores."""
    if requested is not None:
        if requested < 1:
            raise ValueError(f"--threads must be at least 1, got {requested}")
        return requested
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)
    return 1 if work is not None and work < SMALL_WORK else max(1, cores)


def set_threads(work: int | None = None, requested: int | None = None) -> int:
    """Set torch's intra-op threads by `choose_threads`; returns the count."""
    n = choose_threads(work, requested)
    torch.set_num_threads(n)
    return n
