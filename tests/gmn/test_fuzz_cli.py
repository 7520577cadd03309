"""Fuzzing `python -m gmn` and the editor file reader with hypothesis (issue 31); tests/inr/test_fuzz.py does
the same for `python -m inr` and INR files (the helpers are copied: test folders are not packages).

- Every subcommand, options drawn from its own parser, values from a pool of hostile ones and real small
  files: exit 0 or 2, no traceback, no file left on refusal, a refusal is one `error:` line. Training,
  meta-training, zoos, fitting, editing, evaluation and the Fisher estimate are tripwires (reaching one means
  the input passed every check, an accepted outcome).
- Mutated editor files (config values replaced by arbitrary JSON, tensors reshaped or removed): loading
  raises EditorError or gives an editor; nothing huge is ever allocated (configs are built on the meta
  device first).

Bounded for `make test`; `GMN_FUZZ_EXAMPLES=1000` runs the long profile (random, 10 s deadline per case)
and prints the counts (pytest -s).
"""

from __future__ import annotations

import argparse
import io
import json
import os
import time
from collections import Counter
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path

import numpy as np
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from gmn.editors import Editor, EditorConfig, EditorError, load_editor, save_editor
from inr.files import save_inr, save_tiled
from inr.siren import SirenArch, init_params
from inr.tiles import TileGrid

LONG = int(os.environ.get("GMN_FUZZ_EXAMPLES", "0"))
SMALL = dict(hidden=8, interaction_layers=1, deepsets_layers=1, lowrank=2, theta_channels=2, ws_hidden=4,
             ws_layers=2)


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


def hostile_values(work: Path) -> list[str]:
    """Strings a careless or hostile user types, and paths of every kind, in `work`."""
    return ["", "0", "1", "-1", "2", "3", "7", "64", "0.5", "1e-3", "-0.0", "nan", "NaN", "inf", "-inf", "1e309",
            "1e100", "99999999999999999999", "abc", "[1, 2, 3]", '{"hidden": 1e309}', '{"hidden": 8}', "{}", "cpu",
            "cuda", "tiles", "dilate", "mnist5k", "/proc/x", "a" * 300, "/nonexistent/file", str(work / "dir"),
            str(work / "link"), str(work / "fifo"), str(work / "digit.safetensors"), str(work / "digit.png"),
            str(work / "tiled.safetensors"), str(work / "editor.safetensors"), str(work / "dir" / "out.safetensors"),
            "out.png", "out.safetensors"]


def cli_case(parsers: dict, values: list[str]):
    """A hypothesis strategy of argument lists: a subcommand, its positionals, a subset of its options."""
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
            good = st.sampled_from(plausible or values[-7:])  # 3 in 4 values plausible, so checks further in run
            value = st.one_of(good, good, good, st.sampled_from(values))
            if not action.option_strings:
                argv.append(draw(value))
            elif action.required or draw(st.integers(0, 5)) == 0:
                flag = draw(st.sampled_from(action.option_strings))
                argv += [flag] if action.nargs == 0 else [flag, draw(value)]
        return argv

    return build()


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
    save_editor(work / "editor.safetensors", Editor(EditorConfig(kind="ws+gmn", task="dilate", **SMALL)))


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


def warm_up() -> None:
    """The first module built on the meta device pays a one-time setup (6-8 s on a loaded machine): pay it
    before the cases, so the long profile's 10 s deadline times the checks, not torch's start-up."""
    with torch.device("meta"):
        Editor(EditorConfig(kind="ws+gmn", **SMALL))


def test_fuzz_gmn_cli(tmp_path, monkeypatch, capsys):
    import gmn.curvature
    import gmn.data
    import gmn.edit
    import gmn.evaluate
    import gmn.metatrain
    import gmn.optim
    import gmn.train
    import gmn.transformer_curvature
    import inr.tiles
    from gmn.__main__ import main

    def trip(*a, **k):
        raise WorkStarted

    for mod, name in ((gmn.train, "train"), (gmn.metatrain, "metatrain"), (gmn.data, "ensure_zoo"),
                      (gmn.optim, "fit_learned"), (inr.tiles, "fit_photo"), (gmn.edit, "edit_inr"),
                      (gmn.evaluate, "editor_eval_set"), (gmn.curvature, "fisher_diagonal"),
                      (gmn.transformer_curvature, "compare_on_text")):
        monkeypatch.setattr(mod, name, trip)
    try:
        import gmn.lm

        monkeypatch.setattr(gmn.lm, "train_lm", trip)
    except ImportError:  # the language-model command is optional
        pass
    work = tmp_path
    fixtures(work)
    monkeypatch.chdir(work)
    parsers, stats = subparsers(main), Counter()

    @profile(30)
    @given(cli_case(parsers, hostile_values(work)))
    def case(argv):
        run_cli(main, argv, work, stats)

    warm_up()
    case()
    with capsys.disabled():
        print(f"\nfuzz gmn CLI: {dict(stats)}")
    assert stats["refused"] > 0


def containers(inner):
    """JSON lists and objects of `inner` values."""
    return st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)


JSON = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**70), 2**70) | st.floats() | st.text(max_size=8), containers,
    max_leaves=8,
)
HOSTILE_INTS = st.sampled_from([0, -1, 7, 10**7, 10**9, 60_000, True])


def test_fuzz_editor_files(tmp_path, capsys):
    src = tmp_path / "editor.safetensors"
    save_editor(src, Editor(EditorConfig(kind="ws+gmn", task="dilate", **SMALL)))
    with safe_open(str(src), framework="pt") as fh:
        meta = dict(fh.metadata())
    tensors = load_file(str(src))
    keys = sorted(json.loads(meta["config"]))
    stats = Counter()

    @profile(25)
    @given(st.lists(st.tuples(st.sampled_from(["config", "tensor", "meta"]), st.data()), min_size=1, max_size=3))
    def case(changes):
        config, m, t = json.loads(meta["config"]), dict(meta), dict(tensors)
        for kind, data in changes:
            if kind == "config":
                config[data.draw(st.sampled_from(keys))] = data.draw(st.one_of(JSON, HOSTILE_INTS))
            elif kind == "tensor":
                name = data.draw(st.sampled_from(sorted(t)))
                shape = data.draw(st.none() | st.lists(st.integers(0, 12), max_size=3))
                t.pop(name) if shape is None else t.__setitem__(name, torch.zeros(shape))
            else:
                m[data.draw(st.sampled_from(["format", "config", "card"]))] = data.draw(st.text(max_size=12))
        if all(kind != "meta" for kind, _ in changes):  # a replaced metadata text stays as drawn
            m["config"] = json.dumps(config)
        dst = tmp_path / "mutated.safetensors"
        save_file(t, str(dst), metadata=m)
        t0 = time.perf_counter()
        try:
            editor, _ = load_editor(dst)
        except EditorError as e:
            assert "\n" not in str(e)
            stats["refused"] += 1
        else:
            assert sum(p.numel() for p in editor.parameters()) < 10**7
            stats["loaded"] += 1
        stats["max_seconds"] = max(stats["max_seconds"], round(time.perf_counter() - t0, 2))

    warm_up()
    case()
    with capsys.disabled():
        print(f"\nfuzz editor files: {dict(stats)}")
    assert stats["refused"] > 0
