"""Helpers shared by the fuzz suites (tests/inr/test_fuzz.py, tests/gmn/test_fuzz_cli.py; issue 31): the
hypothesis profile, a strategy of argument lists drawn from a CLI's own subcommand parsers and a pool of
hostile values, one checked CLI call, and arbitrary JSON values for mutated file metadata.

Importable from any test module: pytest puts this folder (it holds the root conftest.py) on sys.path.
"""

from __future__ import annotations

import argparse
import io
import os
import time
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from PIL import Image

from inr.files import save_inr, save_tiled
from inr.siren import SirenArch, init_params
from inr.tiles import TileGrid

LONG = int(os.environ.get("GMN_FUZZ_EXAMPLES", "0"))


def profile(default: int) -> settings:
    """The fuzz settings: `default` derandomized examples, or GMN_FUZZ_EXAMPLES random ones (10 s deadline)."""
    return settings(max_examples=LONG or default, deadline=10_000 if LONG else None, derandomize=not LONG,
                    database=None, suppress_health_check=list(HealthCheck), print_blob=True)


class WorkStarted(Exception):
    """Raised by a tripwire: the input passed every check and real work would start."""


def subparsers(main) -> dict[str, argparse.ArgumentParser]:
    """The subcommand parsers `main` builds (caught at its parse_args, so new subcommands are fuzzed too)."""
    class Caught(Exception):
        pass

    def catch(self, *a, **k):
        raise Caught(self)

    real = argparse.ArgumentParser.parse_args
    argparse.ArgumentParser.parse_args = catch
    try:
        main([])
    except Caught as e:
        parser = e.args[0]
    finally:
        argparse.ArgumentParser.parse_args = real
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    return dict(sub.choices)


def hostile_values(work: Path, files: tuple[str, ...] = ()) -> list[str]:
    """Strings a careless or hostile user types, and paths of every kind, in `work` (`files`: more real files
    there, e.g. an editor); the last entries are the plausible file and output names `cli_case` prefers."""
    return ["", "0", "1", "-1", "2", "3", "7", "64", "0.5", "1e-3", "-0.0", "nan", "NaN", "inf", "-inf", "1e309",
            "1e100", "99999999999999999999", "abc", "[1, 2, 3]", '{"hidden": 1e309}', '{"hidden": 8}', "{}", "cpu",
            "cuda", "tiles", "dilate", "mnist5k", "/proc/x", "a" * 300, "/nonexistent/file", str(work / "dir"),
            str(work / "link"), str(work / "fifo"), str(work / "digit.safetensors"), str(work / "digit.png"),
            str(work / "tiled.safetensors"), *(str(work / f) for f in files), str(work / "dir" / "out.safetensors"),
            "out.png", "out.safetensors"]


def cli_case(parsers: dict, values: list[str], tail: int = 6):
    """A hypothesis strategy of argument lists: a subcommand, its positionals, a subset of its options (an option
    without choices or a default takes one of the last `tail` values, the plausible files, 3 times in 4)."""
    @st.composite
    def build(draw):
        name = draw(st.sampled_from(sorted(parsers)))
        argv = [name]
        for action in parsers[name]._actions:
            if isinstance(action, argparse._HelpAction):
                continue
            plausible = [str(c) for c in action.choices or []]
            if action.default not in (None, False, True) and not plausible:
                plausible = [str(action.default)]
            good = st.sampled_from(plausible or values[-tail:])  # 3 in 4 values plausible, so checks further in run
            value = st.one_of(good, good, good, st.sampled_from(values))
            if not action.option_strings:
                argv.append(draw(value))
            elif action.required or draw(st.integers(0, 5)) == 0:
                flag = draw(st.sampled_from(action.option_strings))
                argv += [flag] if action.nargs == 0 else [flag, draw(value)]
        return argv

    return build()


def run_cli(main, argv: list[str], work: Path, stats: Counter) -> None:
    """One fuzz case: exit 0 or 2 (or a tripwire), one `error:` line on refusal, no file left on refusal."""
    before = sorted(p.name for p in work.rglob("*"))
    threads = torch.get_num_threads()
    err, t0 = io.StringIO(), time.perf_counter()
    try:
        with redirect_stderr(err), redirect_stdout(io.StringIO()):
            try:
                rc = main(argv)
            except SystemExit as e:
                rc = e.code
    except WorkStarted:
        rc = "accepted"
    finally:
        torch.set_num_threads(threads)  # --threads sets it for the whole process
    stats["max_seconds"] = max(stats["max_seconds"], round(time.perf_counter() - t0, 2))
    text = err.getvalue()
    assert rc in (0, 2, "accepted"), (argv, rc, text)
    assert "Traceback" not in text, (argv, text)
    after = sorted(p.name for p in work.rglob("*"))
    if rc == 2:
        lines = [line for line in text.strip().splitlines() if line.strip()]
        assert lines and "error:" in lines[-1], (argv, text)
        assert after == before, (argv, set(after) - set(before))
        stats["refused"] += 1
    else:
        stats["accepted" if rc == "accepted" else "exit 0"] += 1
        for name in set(after) - set(before):  # an output a successful command wrote
            path = work / name
            if path.is_file():
                path.unlink()


def containers(inner):
    """JSON lists and objects of `inner` values."""
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8), containers,
    max_leaves=8,
)


def fixtures(work: Path) -> None:
    """Small valid inputs and awkward paths in `work`."""
    (work / "dir").mkdir()
    (work / "link").symlink_to(work / "dir")
    os.mkfifo(work / "fifo")
    arch = SirenArch(hidden=8)
    save_inr(work / "digit.safetensors", init_params(arch, 1), arch, image_size=[8, 8])
    grid = TileGrid((40, 40), 32, 4)
    save_tiled(work / "tiled.safetensors", init_params(SirenArch(hidden=8, dim_out=3), grid.count),
               SirenArch(hidden=8, dim_out=3), grid)
    Image.fromarray((np.random.default_rng(0).random((12, 12)) * 255).astype(np.uint8)).save(work / "digit.png")
