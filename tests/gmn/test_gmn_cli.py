import math
import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from gmn.editors import Editor, EditorConfig, save_editor
from inr.files import load_inr, save_inr
from inr.siren import SirenArch, init_params

SMALL = dict(hidden=16, interaction_layers=1, deepsets_layers=1, lowrank=4, theta_channels=4, ws_hidden=8,
             ws_layers=2)


def run(*args, env=None):
    return subprocess.run([sys.executable, "-m", "gmn", *map(str, args)], capture_output=True, text=True,
                          timeout=180, env=env)


@pytest.fixture(scope="module")
def files(tmp_path_factory):
    d = tmp_path_factory.mktemp("cli")
    torch.manual_seed(0)
    save_editor(d / "dilate.safetensors", Editor(EditorConfig(kind="ws+gmn", task="dilate", **SMALL)))
    save_editor(d / "paint.safetensors", Editor(EditorConfig(kind="ws+gmn", task="paint", **SMALL)))
    broken = Editor(EditorConfig(kind="ws", task="dilate", ws_hidden=8, ws_layers=2))
    with torch.no_grad():
        broken.net.scale.fill_(math.nan)
    save_editor(d / "nan.safetensors", broken)
    arch = SirenArch()
    save_inr(d / "digit.safetensors", init_params(arch, 1), arch, image_size=[28, 28])
    deep = SirenArch(layers=3)
    save_inr(d / "deep.safetensors", init_params(deep, 1), deep, image_size=[28, 28])
    mask = np.zeros((28, 28), np.uint8)
    mask[5:15, 5:15] = 255
    Image.fromarray(mask).save(d / "mask.png")
    Image.fromarray(np.full((28, 28), 255, np.uint8)).save(d / "target.png")
    return d


def test_edit_filter_and_paint(files, tmp_path):
    r = run("edit", files / "digit.safetensors", "--editor", files / "dilate.safetensors", "--points", "32",
            "-o", tmp_path / "out.safetensors")
    assert r.returncode == 0, r.stderr
    assert "MSE to target" in r.stdout and " ms" in r.stdout
    edited = load_inr(tmp_path / "out.safetensors")
    orig = load_inr(files / "digit.safetensors")
    assert not torch.equal(edited.params[-1], orig.params[-1])  # the edit changed the INR
    r = run("edit", files / "digit.safetensors", "--editor", files / "paint.safetensors", "--mask",
            files / "mask.png", "--target", files / "target.png", "-o", tmp_path / "p.safetensors")
    assert r.returncode == 0, r.stderr


def _one_line_error(r, msg):
    assert r.returncode == 2, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and msg in lines[0] and "Traceback" not in r.stderr, r.stderr


def test_edit_errors(files, tmp_path):
    out = tmp_path / "o.safetensors"
    _one_line_error(run("edit", files / "digit.safetensors", "--editor", "no-such-editor", "-o", out),
                    "unknown editor 'no-such-editor'")
    _one_line_error(run("edit", files / "deep.safetensors", "--editor", files / "dilate.safetensors", "-o", out),
                    "INR has 4 weight layers (3 sine layers); editor 'dilate/ws+gmn' expects 3")
    _one_line_error(run("edit", files / "digit.safetensors", "--editor", files / "nan.safetensors", "-o", out),
                    "NaN or Inf")
    assert not out.exists()  # nothing written on a refused edit
    _one_line_error(run("edit", files / "digit.safetensors", "--editor", files / "paint.safetensors", "-o", out),
                    "needs --mask")
    _one_line_error(run("edit", files / "mask.png", "--editor", files / "dilate.safetensors", "-o", out),
                    "not a valid safetensors")


# issue 31: bad input refused before any work, in process (fast); the long jobs are tripwires


def cli(args, capsys) -> tuple[int, str]:
    """(exit code, stderr) of an in-process `python -m gmn` call; argparse's own exit counts as a return."""
    from gmn.__main__ import main

    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err


def _refused(rc, err, msg):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert rc == 2, err
    assert "Traceback" not in err and "error:" in lines[-1] and msg in lines[-1], err


@pytest.fixture
def tripwire(monkeypatch):
    """Fail loudly if training, meta-training, fitting or a zoo starts."""
    def boom(*a, **k):
        raise AssertionError("work started on input that should have been refused")

    import gmn.data
    import gmn.metatrain
    import gmn.optim
    import gmn.train
    import inr.tiles

    for mod, name in ((gmn.train, "train"), (gmn.metatrain, "metatrain"), (gmn.data, "ensure_zoo"),
                      (gmn.optim, "fit_learned"), (inr.tiles, "fit_photo")):
        monkeypatch.setattr(mod, name, boom)


@pytest.mark.parametrize("args, msg", [
    (["fit", "DIGIT", "-o", "OUT", "--lr", "1e100"], "--lr"),
    (["train", "--model", "-1", "--out", "OUTDIR"], "--model"),
    (["train", "--model", '{"hidden": 1e309}', "--out", "OUTDIR"], "--model"),
    (["train", "--model", '{"hidden": -3}', "--out", "OUTDIR"],  # the reason as torch says it, not its repr
     "--model does not describe a ws+gmn editor: Trying to create tensor with negative dimension"),
    (["train", "--model", '{"hidden": 20000}', "--out", "OUTDIR"], "parameters; at most"),
    (["train", "--model", '{"hidden": 100000}', "--out", "OUTDIR"], "hidden = 100000 is out of range"),
    (["train", "--model", '{"task": "erode"}', "--out", "OUTDIR"], "--model cannot set task"),
    (["train", "--model", '{"ws_layers": 60000}', "--out", "OUTDIR"], "ws_layers = 60000 is out of range"),
    (["metatrain", "--model", '{"depth": 10000000}', "--out", "OUTDIR"], "depth = 10000000 is out of range"),
    (["train", "--steps", "-1", "--out", "OUTDIR"], "--steps"),
    (["train", "--lr", "1e309", "--out", "OUTDIR"], "--lr"),
    (["train", "--init", "/nonexistent", "--out", "OUTDIR"], "/nonexistent"),
    (["train", "--out", "/proc/run"], "cannot write in folder /proc"),
    (["train", "--out", "r" * 300], "name too long"),
    (["metatrain", "--horizon", "-1", "--out", "OUTDIR"], "--horizon"),
    (["metatrain", "--horizon", "0", "--out", "OUTDIR"], "--horizon"),
    (["metatrain", "--model", "", "--out", "OUTDIR"], "--model"),
    (["metatrain", "--datasets", "mnist5k,nope", "--out", "OUTDIR"], "unknown dataset 'nope'"),
    (["metatrain", "--siren-init", "/nonexistent", "--out", "OUTDIR"], "--siren-init"),
    (["eval", "--editor", "dilate", "--limit", "99999999999999999999"], "--limit"),
    (["eval", "--editor", "dilate", "--data", ""], "--data"),
    (["edit", "DIGIT", "--editor", "dilate", "--strength", "1e9", "-o", "OUT"], "--strength"),
    (["edit", "DIGIT", "--editor", "dilate", "--points", "0", "-o", "OUT"], "--points"),
    (["edit", "DIGIT", "--editor", "dilate", "-o", "/proc/x"], "cannot write in folder /proc"),
    (["curvature", "DIGIT", "--threads", "100000"], "--threads"),
    (["fit", "PNG", "-o", "OUTDIR", "--optimizer", "learned"], "is a folder"),
    (["fit", "PNG", "-o", "LINK", "--optimizer", "learned"], "is a folder"),
])
def test_bad_values_refused_before_work(files, tmp_path, monkeypatch, capsys, tripwire, args, msg):
    (tmp_path / "outdir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "outdir")
    names = {"DIGIT": files / "digit.safetensors", "PNG": files / "mask.png", "OUT": tmp_path / "o.safetensors",
             "OUTDIR": tmp_path / "outdir", "LINK": tmp_path / "link"}
    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.rglob("*"))
    _refused(*cli([names.get(a, a) for a in args], capsys), msg)
    assert sorted(tmp_path.rglob("*")) == before and (tmp_path / "link").is_symlink()  # nothing left behind


def _started_run(out, **config):
    """A run folder as `gmn train` leaves it after its first validation (its last state and best card)."""
    import json

    from gmn.train import TrainConfig

    out.mkdir()
    (out / "last.safetensors").write_bytes(b"")  # only its presence matters to the check
    cfg = {**TrainConfig(out=str(out)).__dict__, **config}
    (out / "best.json").write_text(json.dumps({"train_config": cfg}))


def test_train_resume_with_other_settings_is_refused(tmp_path, monkeypatch, capsys, tripwire):
    import gmn.train

    out = tmp_path / "run"
    _started_run(out, task="dilate", lr=1e-3, batch=32, val_size=500, editor="ws+gmn", model={})
    rc, err = cli(["train", "--out", out, "--task", "erode", "--lr", "2e-3", "--batch", "8", "--val-size", "50",
                   "--editor", "ws", "--model", '{"ws_hidden": 8}'], capsys)
    _refused(rc, err, "--task 'dilate' (now 'erode'), --editor 'ws+gmn' (now 'ws'), --model {} (now {'ws_hidden': "
                      "8}), --lr 0.001 (now 0.002), --batch 32 (now 8), --val-size 500 (now 50)")
    seen = []
    monkeypatch.setattr(gmn.train, "train", lambda cfg, **k: seen.append(cfg) or {"best_val": None})
    rc, err = cli(["train", "--out", out, "--minutes", "2"], capsys)  # the same settings, a longer budget: resumes
    assert rc == 0 and seen[0].minutes == 2.0, err


def test_mutated_editor_config_refused_from_the_meta_build(files, tmp_path):
    """An editor file whose config claims 10⁹-wide layers is refused without allocating them."""
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from gmn.editors import EditorError, load_editor

    src = files / "dilate.safetensors"
    with safe_open(str(src), framework="pt") as fh:
        meta = fh.metadata()
    for change, msg in (({"hidden": 10**9}, "out of range"), ({"hidden": 24}, "shape"),
                        ({"ws_layers": 60000}, "ws_layers = 60000 is out of range")):
        config = {**json.loads(meta["config"]), **change}
        save_file(load_file(str(src)), str(tmp_path / "e.safetensors"), metadata={**meta, "config": json.dumps(config)})
        with pytest.raises(EditorError, match=msg):
            load_editor(tmp_path / "e.safetensors")
    save_file(load_file(str(src)), str(tmp_path / "e.safetensors"),
              metadata={**meta, "config": meta["config"].replace("0.01", "NaN")})
    with pytest.raises(EditorError, match="not a finite number"):
        load_editor(tmp_path / "e.safetensors")
