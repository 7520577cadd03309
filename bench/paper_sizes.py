"""What the paper's editor sizes cost on this machine, against the sizes that ship (expected run time: 5-10
minutes on one CPU thread; seconds on a GPU).

    python -m bench.paper_sizes                 # CPU, one thread (the figures BENCHMARKS.md quotes)
    python -m bench.paper_sizes --device cuda   # the same on a GPU, when one is lent

Section written: editors-paper-sizes. For each size: parameters, editor file size, forward time per INR
(decomposition + editor, no grad, N = 32 INRs × B = 64 points, 2→32→32→1 SIRENs), the time of one training
step (forward + backward + Adam on the full-grid dilation loss, the `gmn train` defaults: N = 32, B = 64),
and what 150,000 such steps (the paper's training length) would take at that speed. On the CPU the times are
the median process time of one thread, which other jobs on the machine barely move.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from dataclasses import replace
from pathlib import Path

import torch

from bench.gmn_core import median_time
from bench.report import ROOT, table, write_section
from gmn.data import EditData
from gmn.editors import Editor, EditorConfig, save_editor
from gmn.train import edit_loss
from inr.siren import SirenArch, init_params

PAPER_STEPS = 150_000
N, B = 32, 64
# (label, kind, overrides): the sizes that ship, the CPU defaults, and the paper's (GradMetaNet 10 layers × 256;
# GradMetaNet++ 3 blocks × 8 heads × 64). The paper's best, WS + GradMetaNet++, has no kind here; ws+gmn at the
# paper's GradMetaNet size stands in for it.
SIZES = [
    ("ng+gmn, the size that ships (one round, one copy; `paint` runs 3 rounds, `dilate` 4 copies)", "ng+gmn", {}),
    ("gmn, CPU default (`contrast`)", "gmn", {}),
    ("gmn, paper size (10 layers × 256)", "gmn", {"hidden": 256, "interaction_layers": 10}),
    ("gmnpp, CPU default", "gmnpp", {}),
    ("gmnpp, paper size (3 blocks × 8 heads × 64)", "gmnpp", {"pp_dim": 64, "pp_blocks": 3, "pp_heads": 8}),
    ("ws+gmn, CPU default", "ws+gmn", {}),
    ("ws+gmn, paper-size GradMetaNet (10 layers × 256)", "ws+gmn", {"hidden": 256, "interaction_layers": 10}),
]


def _clock(device: torch.device):
    if device.type == "cuda":
        def wall() -> float:
            torch.cuda.synchronize()
            return time.perf_counter()
        return wall
    return time.process_time


def measure(label: str, kind: str, overrides: dict, data: EditData, device: torch.device, repeats: int) -> list:
    arch = data.arch
    cfg = replace(EditorConfig(kind=kind, task="dilate", arch=arch.to_dict()), **overrides)
    editor = Editor(cfg).to(device)
    batch = data.batch(torch.arange(N), B, seed=0)
    params = [t.to(device) for t in batch.params]
    x, t = batch.x.to(device), batch.target_pts.to(device)
    editor.fit_norm(params, arch, x, t, None)
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "e.safetensors"
        save_editor(path, editor.cpu(), {})
        kb = path.stat().st_size / 1e3
    editor.to(device)
    clock = _clock(device)

    def forward():
        with torch.no_grad():
            editor(params, arch, x, t, None)

    opt = torch.optim.Adam(editor.parameters(), lr=1e-4)
    grid = data.grid.to(device)
    from gmn.data import Batch

    dev_batch = Batch(params, x, t, None, batch.objective.to(device))

    def step():
        opt.zero_grad()
        edit_loss(editor, dev_batch, arch, grid).mean().backward()
        opt.step()

    fwd = median_time(forward, repeats, warmup=1, clock=clock) / N * 1e3
    stp = median_time(step, max(2, repeats // 2), warmup=1, clock=clock)
    hours = stp * PAPER_STEPS / 3600
    return [label, f"{editor.num_parameters():,}", f"{kb:,.0f}", f"{fwd:.1f}", f"{stp:.2f}", f"{hours:,.0f}"]


def shipped_steps() -> tuple[int, int]:
    """The fewest and most training steps of the shipped editors (assets/editors), fine-tuning included."""
    from gmn.editors import load_editor

    steps = []
    for path in sorted((ROOT / "assets" / "editors").glob("*.safetensors")):
        _, card = load_editor(path)
        steps.append((card.get("metrics", {}).get("steps") or 0) + ((card.get("init") or {}).get("steps") or 0))
    return min(steps), max(steps)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    device = torch.device(args.device)
    if device.type == "cpu":
        torch.set_num_threads(1)
    arch = SirenArch()  # 2→32→32→1, the digit editors' INRs
    params = init_params(arch, N, generator=torch.Generator().manual_seed(0))
    data = EditData(params, arch, "dilate")  # random SIRENs: the cost does not depend on what they show
    rows = []
    for label, kind, overrides in SIZES:
        rows.append(measure(label, kind, overrides, data, device, args.repeats))
        print(" | ".join(rows[-1]), flush=True)
    where = ("one CPU thread, process time" if device.type == "cpu"
             else f"{torch.cuda.get_device_name(device)}, wall time")
    lo, hi = shipped_steps()
    body = (f"Editor cost by size, editing 2→32→32→1 SIRENs ({where}; median of {args.repeats} forwards and "
            f"{max(2, args.repeats // 2)} training steps). Forward: decomposition + editor per INR, N = {N} INRs × "
            f"B = {B} points, no grad. Training step: forward + backward + Adam on the full-grid dilation loss, "
            f"N = {N}, B = {B} (the `gmn train` defaults). The last column is {PAPER_STEPS:,} such steps, the "
            "paper's training length, at that speed; the shipped editors trained "
            f"{lo:,}–{hi:,} steps (their cards, counting the runs a fine-tuned one started from).\n\n"
            + table(["editor", "parameters", "file (kB)", "forward (ms / INR)", "training step (s)",
                     f"{PAPER_STEPS // 1000}k steps (hours)"], rows))
    write_section("editors-paper-sizes", "Editors: the paper's sizes, what they cost here", body,
                  command="python -m bench.paper_sizes" + ("" if device.type == "cpu" else f" --device {args.device}"))


if __name__ == "__main__":
    main()
