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
