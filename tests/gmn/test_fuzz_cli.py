"""Fuzzing `python -m gmn` and the editor file reader with hypothesis (issue 31); tests/inr/test_fuzz.py does
the same for `python -m inr` and INR files (the helpers are shared: tests/fuzz_helpers.py).

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

import json
import time
from collections import Counter
from pathlib import Path

import torch
from fuzz_helpers import JSON, WorkStarted, cli_case, hostile_values, profile, run_cli, subparsers
from fuzz_helpers import fixtures as common_fixtures
from hypothesis import given
from hypothesis import strategies as st
from safetensors import safe_open
from safetensors.torch import load_file, save_file

from gmn.editors import Editor, EditorConfig, EditorError, load_editor, save_editor

SMALL = dict(hidden=8, interaction_layers=1, deepsets_layers=1, lowrank=2, theta_channels=2, ws_hidden=4,
             ws_layers=2)


def fixtures(work: Path) -> None:
    """The shared small inputs and awkward paths (fuzz_helpers.fixtures), and a small editor file."""
    common_fixtures(work)
    save_editor(work / "editor.safetensors", Editor(EditorConfig(kind="ws+gmn", task="dilate", **SMALL)))


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
    @given(cli_case(parsers, hostile_values(work, ("editor.safetensors",)), tail=7))
    def case(argv):
        run_cli(main, argv, work, stats)

    warm_up()
    case()
    with capsys.disabled():
        print(f"\nfuzz gmn CLI: {dict(stats)}")
    assert stats["refused"] > 0


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
