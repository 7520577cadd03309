import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from gmn.editors import load_editor, save_editor
from gmn.train import TrainConfig, init_card, train

SMALL = {"hidden": 16, "interaction_layers": 1, "deepsets_layers": 1, "lowrank": 4, "theta_channels": 4,
         "ws_hidden": 8, "ws_layers": 2}


def _cfg(zoo, out, **kw):
    base = dict(task="dilate", data="mnist5k", editor="ws+gmn", out=str(out), steps=8, val_every=4, batch=4,
                points=16, warmup=2, zoo_root=str(zoo), val_size=8, model=SMALL)
    return TrainConfig(**{**base, **kw})


def _model(path):
    return {k: v for k, v in load_file(str(path)).items() if k.startswith("model.")}


def test_resume_after_kill_equals_uninterrupted(tiny_zoo, tmp_path):
    quiet = lambda *_: None
    full = train(_cfg(tiny_zoo, tmp_path / "full"), log=quiet)
    assert full["step"] == 8 and len(full["history"]) == 2
    calls = {"n": 0}

    def killed_at_step_4():
        calls["n"] += 1
        return calls["n"] >= 4

    part = train(_cfg(tiny_zoo, tmp_path / "part"), log=quiet, should_stop=killed_at_step_4)
    assert part["step"] == 4
    logs = []
    resumed = train(_cfg(tiny_zoo, tmp_path / "part"), log=logs.append)
    assert any("resumed" in m and "step 4" in m for m in logs)
    assert resumed["step"] == 8
    a, b = _model(tmp_path / "full" / "last.safetensors"), _model(tmp_path / "part" / "last.safetensors")
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    # the best checkpoint is an editor with a card
    editor, card = load_editor(tmp_path / "full" / "best.safetensors")
    assert card["task"] == "dilate" and card["metrics"]["val_mse"] == full["best_val"]
    assert card["train_config"]["steps"] == 8 and "commit" in card and "training_minutes" in card
    lines = (tmp_path / "full" / "log.jsonl").read_text().splitlines()
    assert [json.loads(x)["step"] for x in lines] == [4, 8]


def test_two_process_ddp_keeps_ranks_identical(tiny_zoo, tmp_path):
    exe = Path(sys.executable).parent / "torchrun"
    out = tmp_path / "ddp"
    cmd = [str(exe), "--standalone", "--nproc_per_node", "2", "-m", "gmn", "train", "--task", "dilate",
           "--editor", "ws+gmn", "--steps", "4", "--val-every", "2", "--batch", "4", "--points", "16",
           "--val-size", "8", "--zoo", str(tiny_zoo), "--out", str(out), "--model", json.dumps(SMALL),
           "--device", "cpu", "-q"]
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=300, env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    info = json.loads((out / "ddp.json").read_text())
    assert info["world"] == 2 and info["max_abs_diff_between_ranks"] == 0.0
    assert (out / "best.safetensors").exists()


def test_sign_flip_augmentation_keeps_the_function_and_changes_training(tiny_zoo, tmp_path):
    """Flipping the sign of a hidden neuron's in- and out-weights keeps a SIREN's function (sin is odd);
    `augment` trains on such copies, so the run differs from the plain one but is as reproducible."""
    from gmn.data import sign_flip
    from inr.siren import SirenArch, init_params, render

    arch = SirenArch(hidden=8, layers=2, dim_out=3)
    params = [p.double() for p in init_params(arch, 4)]
    flipped = sign_flip(params, torch.Generator().manual_seed(0))
    torch.testing.assert_close(render(flipped, arch, 12), render(params, arch, 12), rtol=0, atol=1e-12)
    assert any((a != b).any() for a, b in zip(flipped, params))
    assert torch.equal(flipped[-1], params[-1])  # output biases have no hidden neuron to flip
    quiet = lambda *_: None
    runs = {}
    for name, aug in (("plain", False), ("aug", True), ("aug2", True)):
        train(_cfg(tiny_zoo, tmp_path / name, editor="ws", steps=4, val_every=4, augment=aug), log=quiet)
        runs[name] = _model(tmp_path / name / "last.safetensors")
    same = lambda a, b: all(torch.equal(a[k], b[k]) for k in a)
    assert same(runs["aug"], runs["aug2"]) and not same(runs["aug"], runs["plain"])


def test_augmented_data_validates_and_tests_on_the_real_zoo(tmp_path):
    from gmn.data import zoo_path

    assert zoo_path("mnist5k-aug", "train", tmp_path) == tmp_path / "mnist5k-aug-train"
    assert zoo_path("mnist5k-aug", "val", tmp_path) == tmp_path / "mnist5k-val"
    assert zoo_path("mnist5k-aug", "test", tmp_path) == tmp_path / "mnist5k-test"
    assert zoo_path("tiles", "test", tmp_path) == tmp_path / "tiles-test"


def test_init_fine_tunes_from_an_editor_file_and_refuses_another_kind(tiny_zoo, tmp_path):
    """--init: a run starts from another editor's weights (here a one-round editor trained on for two
    rounds); at step 0 it is that editor; a file of another kind or size is refused in one line."""
    import pytest

    from gmn.editors import EditorError

    quiet = lambda *_: None
    train(_cfg(tiny_zoo, tmp_path / "base"), log=quiet)
    base = tmp_path / "base" / "best.safetensors"
    # lr 0: the fine-tuned file holds exactly the weights it started from
    train(_cfg(tiny_zoo, tmp_path / "ft", steps=2, lr=0.0, model={**SMALL, "rounds": 2}, init=str(base)), log=quiet)
    a, _ = load_editor(base)
    b, card = load_editor(tmp_path / "ft" / "best.safetensors")
    assert b.config.rounds == 2 and a.config.rounds == 1
    assert card["init"]["path"] == str(base) and card["init"]["steps"] == 8  # what it started from
    for (n, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items()):
        assert torch.equal(x, y), n
    # fine-tuned from the fine-tuned run: its budget counts both runs before it
    train(_cfg(tiny_zoo, tmp_path / "ft2", steps=1, lr=0.0, model={**SMALL, "rounds": 2},
               init=str(tmp_path / "ft" / "best.safetensors")), log=quiet)
    _, card2 = load_editor(tmp_path / "ft2" / "best.safetensors")
    assert card2["init"]["steps"] == 8 + 2 and card2["init"]["runs"] == 2
    assert card2["init"]["training_minutes"] == round(card["training_minutes"] + card["init"]["training_minutes"], 2)
    # a card written before `init` was recorded: the chain is followed through its train_config
    ed, old = load_editor(tmp_path / "ft" / "best.safetensors")
    old.pop("init")
    save_editor(tmp_path / "old.safetensors", ed, old)
    assert init_card(str(tmp_path / "old.safetensors"))["steps"] == 2 + 8
    # a card written before chains were summed: its `init` counts only the last run; the chain is read again
    ed2, stale = load_editor(tmp_path / "ft2" / "best.safetensors")
    stale["init"] = {"path": str(tmp_path / "old.safetensors"), "steps": 2, "training_minutes": 0.0}
    save_editor(tmp_path / "stale.safetensors", ed2, stale)
    assert init_card(str(tmp_path / "stale.safetensors"))["steps"] == 1 + 2 + 8
    assert init_card(str(tmp_path / "stale.safetensors"))["runs"] == 3
    # where the runs it started from are not on the machine (a clean clone), the card's record of them counts
    gone = {**card2, "init": {**card2["init"], "path": str(tmp_path / "deleted.safetensors")}}
    save_editor(tmp_path / "shipped.safetensors", ed2, gone)
    assert init_card(str(tmp_path / "shipped.safetensors"))["steps"] == 1 + 8 + 2
    assert init_card(str(tmp_path / "shipped.safetensors"))["runs"] == 3
    with pytest.raises(EditorError, match="is a 'ws\\+gmn' editor"):
        train(_cfg(tiny_zoo, tmp_path / "other", editor="gmn", init=str(base)), log=quiet)
    with pytest.raises(EditorError, match="other sizes"):
        train(_cfg(tiny_zoo, tmp_path / "wide", model={**SMALL, "ws_hidden": 12}, init=str(base)), log=quiet)


def test_outside_weight_scales_only_the_loss_outside_the_paint_mask(tiny_zoo, tmp_path):
    """`outside_weight` w makes the paint training loss mean(λ-weight · (m + w(1 − m)) · (f − t)²); the
    batch the editor reads is unchanged. A run records it in its card."""
    from gmn.data import EditData
    from gmn.editors import Editor, EditorConfig, edited_forward
    from gmn.train import edit_loss

    data = EditData.from_zoo("mnist5k", "train", "paint", root=tiny_zoo, limit=8, log=lambda *_: None)
    editor = Editor(EditorConfig(kind="ws+gmn", task="paint", arch=data.arch.to_dict(), points=16, **SMALL))
    batch = data.batch(torch.arange(8), 16, seed=3)
    with torch.no_grad():
        plain = edit_loss(editor, batch, data.arch, data.grid)
        heavy = edit_loss(editor, batch, data.arch, data.grid, outside_weight=3.0)
        dtheta = editor(batch.params, data.arch, batch.x, batch.target_pts, batch.mask_pts)
        obj = batch.objective
        f = edited_forward(batch.params, dtheta, data.arch, data.grid).reshape(obj.target.shape)
    sq = obj.weight * (f - obj.target).pow(2)
    torch.testing.assert_close(plain, sq.mean(dim=(1, 2, 3)))
    torch.testing.assert_close(heavy, (sq * (obj.mask + 3.0 * (1 - obj.mask))).mean(dim=(1, 2, 3)))
    assert (heavy > plain).all()  # the edit changes some pixels outside every mask
    train(_cfg(tiny_zoo, tmp_path / "ow", task="paint", steps=4, outside_weight=2.0), log=lambda *_: None)
    assert json.loads((tmp_path / "ow" / "best.json").read_text())["train_config"]["outside_weight"] == 2.0


def test_start_commands_of_a_run_restored_from_a_shipped_file(tmp_path):
    """A run folder restored from a shipped editor (its own start not on the machine) stands for its chain with
    the training commands of the shipped card's `reproduce`; a run fine-tuned from it adds its own."""
    from gmn.editors import Editor, EditorConfig
    from gmn.release import start_commands

    editor = Editor(EditorConfig(kind="ws", task="paint"))
    shipped = {"task": "paint", "init": {"path": "runs/gone/best.safetensors", "steps": 5, "training_minutes": 1.0},
               "reproduce": "python -m gmn train A && python -m gmn train B && python -m bench.editors ship --run R"}
    (tmp_path / "restored").mkdir()
    save_editor(tmp_path / "restored" / "best.safetensors", editor, shipped)
    assert start_commands(tmp_path / "restored" / "best.safetensors") == ["python -m gmn train A",
                                                                          "python -m gmn train B"]
    (tmp_path / "next").mkdir()
    save_editor(tmp_path / "next" / "best.safetensors", editor,
                {"task": "paint", "train_config": {"init": str(tmp_path / "restored" / "best.safetensors")}})
    (tmp_path / "next" / "done.json").write_text(json.dumps({"command": "-m gmn train C"}))
    assert start_commands(tmp_path / "next" / "best.safetensors")[-1] == "python -m gmn train C"
    assert len(start_commands(tmp_path / "next" / "best.safetensors")) == 3


def test_the_time_budget_counts_the_clock_it_is_given(tiny_zoo, tmp_path):
    """train(..., clock=) reads the budget's CPU seconds from `clock` (the app passes its training thread's): a fake
    clock that moves 10 s per reading ends a 0.5-minute run after 3 steps, whatever the real time."""
    ticks = iter(range(0, 10_000, 10))
    state = train(_cfg(tiny_zoo, tmp_path / "clocked", steps=None, minutes=0.5, val_every=1000), log=lambda *_: None,
                  clock=lambda: float(next(ticks)))
    assert state["step"] == 3 and state["elapsed"] == 30.0
