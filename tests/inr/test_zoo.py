import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from inr.zoo import build_zoo, load_zoo

ARGS = dict(steps=10, shard_size=2, limit=6, progress=False)


def _same(a, b):
    pa, arch_a, ia, sa = load_zoo(a)
    pb, arch_b, ib, sb = load_zoo(b)
    assert arch_a == arch_b
    assert torch.equal(ia, ib)
    for x, y in zip(pa, pb):
        torch.testing.assert_close(x, y, rtol=0, atol=1e-6)


def test_zoo_resumes_after_interruption(tmp_path):
    full = tmp_path / "full"
    build_zoo("mnist5k", "val", full, log=lambda *_: None, **ARGS)
    params, arch, images, psnr = load_zoo(full)
    assert params[0].shape[0] == 6 and images.shape == (6, 28, 28, 1) and psnr.shape == (6,)

    class Stop(Exception):
        pass

    def die_after_first_shard(msg):
        if "shard 1/3" in msg:
            raise Stop  # the process dies right after shard 1 is on disk

    part = tmp_path / "part"
    with pytest.raises(Stop):
        build_zoo("mnist5k", "val", part, log=die_after_first_shard, **ARGS)
    assert [p.name for p in sorted(part.glob("shard-*"))] == ["shard-00000.safetensors"]
    assert not (part / "zoo.json").exists()
    (part / "shard-00001.safetensors").write_bytes(b"half-written garbage")  # a torn write is rebuilt
    first = (part / "shard-00000.safetensors").stat().st_mtime_ns
    logs = []
    build_zoo("mnist5k", "val", part, log=logs.append, **ARGS)
    assert any("already built" in m for m in logs) and any("unreadable" in m for m in logs)
    assert (part / "shard-00000.safetensors").stat().st_mtime_ns == first
    _same(full, part)


@pytest.mark.skipif(shutil.which("torchrun") is None and not (Path(sys.executable).parent / "torchrun").exists(),
                    reason="torchrun not installed")
def test_two_processes_by_torchrun_or_by_the_launcher_equal_one_process(tmp_path, capfd):
    exe = Path(sys.executable).parent / "torchrun"
    common = ["--dataset", "mnist5k", "--split", "val", "--limit", "8", "--shard-size", "2", "--steps", "10",
              "--threads", "1", "-q"]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    build_zoo("mnist5k", "val", tmp_path / "one", steps=10, shard_size=2, limit=8, threads=1, processes=1,
              progress=False, log=lambda *_: None)
    two = subprocess.run([str(exe), "--standalone", "--nproc_per_node", "2", "-m", "inr", "zoo",
                          "--out", str(tmp_path / "two"), *common], capture_output=True, text=True, env=env,
                         timeout=300)
    assert two.returncode == 0, two.stderr[-2000:]
    assert "[rank 1]" in two.stdout + two.stderr  # both ranks did work
    _same(tmp_path / "one", tmp_path / "two")
    # the CLI's default: build_zoo's own launcher (torch.distributed elastic, single-thread processes)
    build_zoo("mnist5k", "val", tmp_path / "cli", steps=10, shard_size=2, limit=2, progress=False,
              log=lambda *_: None)  # shard 1 already there: only the 3 others are dealt out
    capfd.readouterr()
    logs = []
    index = build_zoo("mnist5k", "val", tmp_path / "cli", steps=10, shard_size=2, limit=8, processes=2,
                      progress=False, log=logs.append)
    out = "\n".join(logs) + capfd.readouterr().out
    assert "fitting 3 shards (6 INRs) in 2 processes" in out and "[rank 1]" in out and "INRs/s" in out
    assert index["processes"] == 2 and index["count"] == 8
    assert not list((tmp_path / "cli").glob(".images-*"))  # the launcher's hand-over file is gone
    _same(tmp_path / "one", tmp_path / "cli")


def test_streamed_zoo_fit_matches_the_autograd_fit(tmp_path):
    args = dict(steps=10, shard_size=4, limit=4, progress=False, log=lambda *_: None)
    build_zoo("mnist5k", "val", tmp_path / "streamed", **args)
    build_zoo("mnist5k", "val", tmp_path / "autograd", streamed=False, **args)
    ps, _, _, psnr_s = load_zoo(tmp_path / "streamed")
    pa, _, _, psnr_a = load_zoo(tmp_path / "autograd")
    for x, y in zip(ps, pa):  # the same optimisation from the same init: equal up to float rounding
        torch.testing.assert_close(x, y, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(psnr_s, psnr_a, rtol=0, atol=1e-3)
    from inr.files import load_inr

    codes = [load_inr(tmp_path / d / "shard-00000.safetensors").meta["fit_code"] for d in ("streamed", "autograd")]
    assert codes == ["fit_streamed", "fit_recipe"]
