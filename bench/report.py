"""Write one owned section of BENCHMARKS.md, stamped with date, machine, commit and command.

Each bench script owns the sections it names; a section sits between
`<!-- begin NAME -->` and `<!-- end NAME -->` and is replaced whole on each run, so the
rest of the file (other scripts' sections, hand-written prose) is kept.
"""

from __future__ import annotations

import datetime as _dt
import fcntl
import os
import platform
import re
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
BENCHMARKS = ROOT / "BENCHMARKS.md"


def machine() -> str:
    """One line describing the machine: CPU model, cores, torch version, device."""
    import torch

    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU only"
    return f"{cpu}, {os.cpu_count()} cores, torch {torch.__version__}, {dev}"


def commit() -> str:
    try:
        sha = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=ROOT, capture_output=True, text=True, check=True
        ).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain"], cwd=ROOT, capture_output=True, text=True).stdout
        return sha + ("+dirty" if dirty.strip() else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def write_section(name: str, title: str, body: str, *, command: str | None = None) -> None:
    """Replace (or append) section `name` of BENCHMARKS.md with `title` and `body` (markdown)."""
    command = command or "python " + " ".join(sys.argv)
    stamp = (
        f"_{_dt.date.today().isoformat()} · {machine()} · commit `{commit()}` · "
        f"command: `{command}`_"
    )
    block = f"<!-- begin {name} -->\n## {title}\n\n{stamp}\n\n{body.strip()}\n<!-- end {name} -->"
    header = "# Benchmarks\n\nWritten by `make bench` (scripts in `bench/`).\n"
    # several reports may finish at once (parallel bench jobs): one read-modify-write at a time
    with open(BENCHMARKS.with_suffix(".md.lock"), "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        text = BENCHMARKS.read_text() if BENCHMARKS.exists() else header
        pattern = re.compile(rf"<!-- begin {re.escape(name)} -->.*?<!-- end {re.escape(name)} -->", re.S)
        text = pattern.sub(lambda _: block, text) if pattern.search(text) else text.rstrip() + "\n\n" + block + "\n"
        tmp = BENCHMARKS.with_suffix(f".md.{os.getpid()}.tmp")
        tmp.write_text(text)
        os.replace(tmp, BENCHMARKS)


def table(header: list[str], rows: list[list]) -> str:
    """Markdown table from a header and rows of cells (str() of each)."""
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)
