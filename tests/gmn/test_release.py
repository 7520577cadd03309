import json
import sys

import torch

import bench.editors
import gmn.release
from gmn.__main__ import main
from gmn.data import EditData
from gmn.editors import load_editor
from gmn.evaluate import eval_set, run_editor
from gmn.train import TrainConfig, train

SMALL = {"ws_hidden": 8, "ws_layers": 2, "lam": 0.5}  # λ ≠ 1: the shipped card must keep the editor's own


def _finished_run(tiny_zoo, tmp_path, monkeypatch):
    """A data home whose zoo is tiny_zoo, a finished 4-step ws run in its bench runs, a fake repo for assets/."""
    home = tmp_path / "home"
    home.mkdir()
    (home / "zoo").symlink_to(tiny_zoo, target_is_directory=True)
    monkeypatch.setenv("GMN_HOME", str(home))
    repo = tmp_path / "repo"
    (repo / "assets" / "editors").mkdir(parents=True)
    monkeypatch.setattr(gmn.release, "ROOT", repo)
    run = gmn.release.bench_run_dir("mnist5k", "dilate") / "ws-s0"
    train(TrainConfig(task="dilate", data="mnist5k", editor="ws", out=str(run), steps=4, val_every=2, batch=4,
                      points=16, warmup=1, zoo_root=str(tiny_zoo), val_size=8, model=SMALL), log=lambda *_: None)
    return repo, run


def test_ship_writes_the_editor_with_its_test_figures_and_reproduce(tiny_zoo, tmp_path, monkeypatch, capsys):
    """`python -m gmn ship` refuses an unfinished run, then copies the finished run's best checkpoint into
    assets/editors with its test MSE (at --points) and the commands that reproduce it, weights unchanged; the
    old `python -m bench.editors ship` writes the same card."""
    repo, run = _finished_run(tiny_zoo, tmp_path, monkeypatch)
    ship = ["ship", "--task", "dilate", "--data", "mnist5k", "--run", "ws-s0", "--name", "tiny", "--points", "24"]
    assert main(ship) == 2  # no done.json yet
    assert "has not finished" in capsys.readouterr().err
    (run / "done.json").write_text(json.dumps({"command": "-m gmn train --task dilate --editor ws"}))
    assert main([*ship, "--note", "a test"]) == 0
    editor, card = load_editor(repo / "assets" / "editors" / "tiny.safetensors")
    best, _ = load_editor(run / "best.safetensors")
    for a, b in zip(editor.state_dict().values(), best.state_dict().values(), strict=True):
        assert torch.equal(a, b)
    assert editor.config.lam == 0.5
    torch.manual_seed(0)
    test = eval_set(EditData.from_zoo("mnist5k", "test", "dilate"))
    assert card["metrics"]["test_mse"] == round(run_editor(best, test, points=24)["mse"], 5)
    assert "24 points" in card["metrics"]["test"] and card["note"] == "a test"
    assert card["reproduce"] == (f"python -m gmn train --task dilate --editor ws && python -m gmn ship --task dilate "
                                 f"--data mnist5k --run {run} --name tiny")
    assert "widths" not in card  # no width-64 test zoo here: not measured, not stamped
    monkeypatch.setattr(sys, "argv", ["bench.editors", *ship[:-3], "old", "--points", "24", "--note", "a test"])
    bench.editors.main()
    _, old = load_editor(repo / "assets" / "editors" / "old.safetensors")
    assert old["metrics"] == card["metrics"] and old["reproduce"] == card["reproduce"].replace("tiny", "old")


def test_ship_refuses_another_tasks_run_in_one_line(tiny_zoo, tmp_path, monkeypatch, capsys):
    """A dilate run shipped as erode is refused with a one-line error (exit 2), and nothing is written."""
    repo, run = _finished_run(tiny_zoo, tmp_path, monkeypatch)
    (run / "done.json").write_text(json.dumps({"command": "-m gmn train"}))
    assert main(["ship", "--task", "erode", "--data", "mnist5k", "--run", str(run), "--name", "x"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and "is a dilate editor, not erode" in err[0]
    assert not list((repo / "assets" / "editors").iterdir())
