import subprocess
import sys

import numpy as np
import pytest
import torch
from PIL import Image

from inr.files import load_inr


def run(*args):
    return subprocess.run([sys.executable, "-m", "inr", *map(str, args)], capture_output=True, text=True, timeout=120)


def test_fit_render_info(tmp_path):
    img = (np.random.default_rng(0).random((40, 30, 3)) * 255).astype(np.uint8)
    Image.fromarray(img).save(tmp_path / "in.png")
    out = tmp_path / "in.safetensors"
    r = run("fit", tmp_path / "in.png", "-o", out, "--size", "16", "--hidden", "16", "--steps", "30", "-q")
    assert r.returncode == 0, r.stderr
    assert "PSNR" in r.stdout
    inr = load_inr(out)
    assert inr.arch.dim_out == 3 and inr.meta["image_size"] == [16, 16]
    r = run("render", out, "-o", tmp_path / "r.png", "--size", "50")
    assert r.returncode == 0, r.stderr
    assert Image.open(tmp_path / "r.png").size == (50, 50)
    r = run("info", out)
    assert r.returncode == 0 and "2→16→16→3" in r.stdout


def _bad_inputs(tmp):
    (tmp / "empty.png").write_bytes(b"")
    (tmp / "text.png").write_text("hello")
    buf = tmp / "ok.png"
    Image.fromarray(np.zeros((50, 50), np.uint8)).save(buf)
    (tmp / "trunc.png").write_bytes(buf.read_bytes()[:60])
    Image.new("1", (8000, 8000)).save(tmp / "bomb.png")
    torch.save({"layers.0.weight": torch.zeros(2, 2)}, tmp / "pickle.pt")
    (tmp / "junk.safetensors").write_bytes(b"\x00" * 100)
    return [
        ("fit", tmp / "empty.png", "empty"),
        ("fit", tmp / "text.png", "not an image"),
        ("fit", tmp / "trunc.png", "truncated"),
        ("fit", tmp / "bomb.png", "megapixels"),
        ("render", tmp / "pickle.pt", "pickled"),
        ("info", tmp / "junk.safetensors", "not a valid safetensors"),
        ("info", tmp / "missing.safetensors", "cannot read"),
    ]


def test_bad_input_one_line_exit_2(tmp_path):
    for cmd, path, msg in _bad_inputs(tmp_path):
        extra = ["-o", tmp_path / "o.x"] if cmd in ("fit", "render") else []
        r = run(cmd, path, *extra)
        assert r.returncode == 2, (cmd, path, r.stderr)
        lines = r.stderr.strip().splitlines()
        assert len(lines) == 1 and msg in lines[0] and "Traceback" not in r.stderr, r.stderr


@pytest.mark.parametrize("args", [["zoo", "--dataset", "mnist5k", "--out", "x", "--hidden", "0"]])
def test_bad_arguments_are_one_line(args):
    r = run(*args)
    assert r.returncode == 2 and "Traceback" not in r.stderr
