import json
import os
import subprocess
import sys
from pathlib import Path

import torch
from safetensors.torch import load_file

from gmn.editors import load_editor
from gmn.train import TrainConfig, train

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
