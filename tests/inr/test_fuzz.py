"""Fuzzing `python -m inr` and the INR file reader with hypothesis (issue 31).

- Every subcommand of the CLI, with options drawn from its own parser and values from a pool of hostile
  ones (NaN, ±inf, huge and negative numbers, empty strings, /proc, 300-character names, a FIFO, a folder, a
  symlink to one, real small files): each call ends with exit 0 or 2 and no traceback, leaves no file
  behind, and a refusal is one `error:` line. The long jobs (fitting, rendering, zoo builds, Reptile) are
  tripwires: reaching one means the input passed every check, which is also an accepted outcome.
- Mutated INR files (single and tiled): metadata values replaced by arbitrary JSON (or junk, or removed),
  tensors reshaped, removed or added. Loading either raises InrFileError or gives an INR that renders.

Bounded for `make test` (a few dozen examples each, derandomized); `GMN_FUZZ_EXAMPLES=1000` runs the long
profile (random, with a 10 s deadline per case) and prints the counts (pytest -s).
"""

from __future__ import annotations

import io
import json
import time
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import pytest
import torch
from fuzz_helpers import JSON, WorkStarted, cli_case, fixtures, hostile_values, profile, run_cli, subparsers
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from inr.errors import InrFileError
from inr.files import load_inr


def test_fuzz_inr_cli(tmp_path, monkeypatch, capsys):
    import inr.datasets
    import inr.metainit
    import inr.siren
    import inr.tiles
    import inr.zoo
    from inr.__main__ import main

    def trip(*a, **k):
        raise WorkStarted

    for mod, name in ((inr.tiles, "fit_photo"), (inr.tiles, "render_tiles"), (inr.siren, "render"),
                      (inr.zoo, "build_zoo"), (inr.metainit, "metatrain_init")):
        monkeypatch.setattr(mod, name, trip)
    # the zoo command reads the dataset's channel count first: its loading is data, not a check (37 s cold)
    monkeypatch.setattr(inr.datasets, "load_dataset", lambda name, split="train": torch.zeros(1, 28, 28, 1))
    work = tmp_path
    fixtures(work)
    monkeypatch.chdir(work)
    parsers, stats = subparsers(main), Counter()

    @profile(30)
    @given(cli_case(parsers, hostile_values(work)))
    def case(argv):
        run_cli(main, argv, work, stats)

    case()
    with capsys.disabled():
        print(f"\nfuzz inr CLI: {dict(stats)}")
    assert stats["refused"] > 0


# mutated INR files


META_KEYS = ["format", "version", "arch", "image_size", "channels", "grid", "psnr", "fit", "source"]
ARCH_KEYS = ["dim_in", "hidden", "layers", "dim_out", "w0", "w0_initial"]
GRID_KEYS = ["image_size", "tile", "overlap", "rows", "cols"]


@st.composite
def mutation(draw, tensor_names: list[str]):
    """A list of changes: ("meta", key, text or None), ("arch"/"grid", key, value), ("tensor", name, shape or None)."""
    changes = []
    for _ in range(draw(st.integers(1, 3))):
        kind = draw(st.sampled_from(["meta", "arch", "grid", "tensor"]))
        if kind == "meta":
            text = draw(st.one_of(JSON.map(json.dumps), st.text(max_size=12), st.none()))
            changes.append(("meta", draw(st.sampled_from(META_KEYS)), text))
        elif kind in ("arch", "grid"):
            keys = ARCH_KEYS if kind == "arch" else GRID_KEYS
            value = draw(st.one_of(JSON, st.integers(-3, 10**10), st.sampled_from([10**7, 10**9, 7, 0, True])))
            changes.append((kind, draw(st.sampled_from(keys)), value))
        else:
            name = draw(st.sampled_from(tensor_names + ["layers.2.weight", "layers.9.bias"]))
            shape = draw(st.none() | st.lists(st.integers(0, 40), max_size=3))
            changes.append(("tensor", name, shape))
    return changes


def mutate(src: Path, dst: Path, changes) -> None:
    with safe_open(str(src), framework="pt") as fh:
        meta = dict(fh.metadata())
    tensors = load_file(str(src))
    for kind, key, value in changes:
        if kind == "meta":
            if value is None:
                meta.pop(key, None)
            else:
                meta[key] = value
        elif kind in ("arch", "grid"):
            try:
                d = json.loads(meta.get(kind, "{}"))
            except ValueError:
                d = {}
            if isinstance(d, dict):
                d[key] = value
                meta[kind] = json.dumps(d)
        elif value is None:
            tensors.pop(key, None)
        else:
            tensors[key] = torch.zeros(value)
    save_file(tensors, str(dst), metadata=meta)


@pytest.mark.parametrize("which", ["digit.safetensors", "tiled.safetensors"])
def test_fuzz_inr_files(which, tmp_path, capsys):
    from inr.__main__ import main
    from inr.siren import render
    from inr.tiles import render_tiles

    work = tmp_path
    fixtures(work)
    src = work / which
    stats = Counter()

    @profile(25)
    @given(mutation(list(load_file(str(src)))))
    def case(changes):
        dst = work / "mutated.safetensors"
        mutate(src, dst, changes)
        t0 = time.perf_counter()
        try:
            inr = load_inr(dst)
        except InrFileError as e:
            assert "\n" not in str(e)
            stats["refused"] += 1
        else:
            stats["loaded"] += 1
            img = render_tiles(inr.params, inr.arch, inr.grid, (8, 8)) if inr.grid else \
                render(inr.params, inr.arch, 8)
            assert torch.isfinite(img).all() and img.shape[-1] in (1, 3)
        with redirect_stdout(io.StringIO()), redirect_stderr(io.StringIO()):
            assert main(["info", str(dst)]) in (0, 2)
        stats["max_seconds"] = max(stats["max_seconds"], round(time.perf_counter() - t0, 2))

    case()
    with capsys.disabled():
        print(f"\nfuzz {which}: {dict(stats)}")
    assert stats["refused"] > 0
