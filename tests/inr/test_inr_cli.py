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


# issue 31: every bad input answered before any work starts, in process (fast): exit 2, one `error:` line,
# nothing left behind; the work itself is replaced by a tripwire, so a check that lets a case through fails


def cli(main, args, capsys) -> tuple[int, str]:
    """(exit code, stderr) of an in-process CLI call; argparse's own exit counts as a return."""
    try:
        rc = main([str(a) for a in args])
    except SystemExit as e:
        rc = e.code
    return rc, capsys.readouterr().err


def _refused(rc, err, msg):
    lines = [line for line in err.strip().splitlines() if line.strip()]
    assert rc == 2, err
    assert "Traceback" not in err and "error:" in lines[-1] and msg in lines[-1], err
    assert all(line.startswith(("usage:", " ", "python -m", "error:")) for line in lines), err


@pytest.fixture
def tripwire(monkeypatch):
    """Fail loudly if any long job starts."""
    def boom(*a, **k):
        raise AssertionError("work started on input that should have been refused")

    import inr.metainit
    import inr.tiles
    import inr.zoo

    for mod, name in ((inr.tiles, "fit_photo"), (inr.zoo, "build_zoo"), (inr.metainit, "metatrain_init")):
        monkeypatch.setattr(mod, name, boom)


@pytest.fixture
def digit(tmp_path):
    Image.fromarray((np.random.default_rng(1).random((20, 20)) * 255).astype(np.uint8)).save(tmp_path / "d.png")
    return tmp_path / "d.png"


@pytest.mark.parametrize("args, msg", [
    (["zoo", "--limit", "-1"], "--limit"),
    (["zoo", "--hidden", "0"], "--hidden"),
    (["zoo", "--shard-size", "nan"], "--shard-size"),
    (["metainit", "--minutes", "NaN", "--out", "m.safetensors"], "--minutes"),
    (["metainit", "--outer-lr", "inf", "--out", "m.safetensors"], "--outer-lr"),
    (["fit", "IMG", "-o", "o.safetensors", "--device", "tiles"], "--device"),
    (["fit", "IMG", "-o", "o.safetensors", "--threads", "100000"], "--threads"),
    (["fit", "IMG", "-o", "o.safetensors", "--hidden", "99999999999999999999"], "--hidden"),
    (["fit", "IMG", "-o", "o.safetensors", "--hidden", "100000"], "from 1 to 1,024"),
    (["fit", "IMG", "-o", "o.safetensors", "--lr", "1e100"], "--lr"),
    (["fit", "IMG", "-o", "o.safetensors", "--target-psnr", "-inf"], "--target-psnr"),
    (["fit", "IMG", "-o", "/proc/x"], "cannot write in folder /proc"),
    (["fit", "IMG", "-o", "a" * 300], "name too long (300 characters"),
    (["fit", "IMG", "-o", "."], "is a folder"),
    (["fit", "IMG", "-o", ""], "-o is empty"),
    (["fit", "IMG", "-o", "nofolder/o.safetensors"], "does not exist"),
    (["render", "IMG", "-o", "o.png", "--size", "99999999999999999999"], "--size"),
    (["zoo", "--out", "b" * 300], "name too long"),
    (["zoo", "--out", "/proc/zoo"], "cannot write in folder /proc"),
    (["metainit", "--out", "/proc/m.safetensors"], "cannot write"),
])
def test_bad_values_refused_before_work(tmp_path, monkeypatch, capsys, tripwire, digit, args, msg):
    from inr.__main__ import main

    monkeypatch.chdir(tmp_path)
    before = sorted(tmp_path.iterdir())
    rc, err = cli(main, [str(digit) if a == "IMG" else a for a in args], capsys)
    _refused(rc, err, msg)
    assert sorted(tmp_path.iterdir()) == before  # nothing left behind


def test_cuda_on_a_cpu_only_torch_is_refused(tmp_path, monkeypatch, capsys, tripwire, digit):
    from inr.__main__ import main

    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    rc, err = cli(main, ["fit", digit, "-o", tmp_path / "o.safetensors", "--device", "cuda"], capsys)
    _refused(rc, err, "sees no CUDA GPU")


def test_unwritable_outputs_leave_nothing(tmp_path, monkeypatch, capsys, tripwire, digit):
    """A symlink to a folder, a file as folder, and a read-only folder (simulated: root may write anywhere)."""
    import errno
    import os

    from inr.__main__ import main

    (tmp_path / "dir").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "dir")
    (tmp_path / "file").write_text("x")
    _refused(*cli(main, ["fit", digit, "-o", tmp_path / "link"], capsys), "is a folder")
    _refused(*cli(main, ["fit", digit, "-o", tmp_path / "file" / "o.safetensors"], capsys), "is not a folder")
    _refused(*cli(main, ["zoo", "--out", tmp_path / "file"], capsys), "is a file, not a folder")
    real_open = os.open

    def read_only(path, flags, *a):
        if str(path).startswith(str(tmp_path / "dir")) and flags & os.O_CREAT:
            raise PermissionError(errno.EACCES, "Permission denied")
        return real_open(path, flags, *a)

    monkeypatch.setattr(os, "open", read_only)
    _refused(*cli(main, ["fit", digit, "-o", tmp_path / "dir" / "o.safetensors"], capsys), "Permission denied")
    _refused(*cli(main, ["zoo", "--out", tmp_path / "dir" / "zoo"], capsys), "Permission denied")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["d.png", "dir", "file", "link"]
    assert list((tmp_path / "dir").iterdir()) == []


def test_fifo_and_bad_float_tiff_refused(tmp_path, capsys, tripwire):
    import os

    from inr.__main__ import main

    os.mkfifo(tmp_path / "pipe.png")
    _refused(*cli(main, ["fit", tmp_path / "pipe.png", "-o", tmp_path / "o.safetensors"], capsys),
             "not a regular file")
    _refused(*cli(main, ["info", tmp_path / "pipe.png"], capsys), "not a regular file")
    for bad in (np.nan, np.inf):
        arr = np.linspace(0, 1, 400, dtype=np.float32).reshape(20, 20)
        arr[3, 4] = bad
        Image.fromarray(arr, mode="F").save(tmp_path / "f.tif")
        _refused(*cli(main, ["fit", tmp_path / "f.tif", "-o", tmp_path / "o.safetensors"], capsys),
                 "NaN or infinite pixel values")
    assert not (tmp_path / "o.safetensors").exists()


def test_huge_layer_claim_refused_by_info_at_once(tmp_path, capsys):
    import json

    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from inr.__main__ import main
    from inr.files import save_inr
    from inr.siren import SirenArch, init_params

    arch = SirenArch(hidden=8)
    save_inr(tmp_path / "ok.safetensors", init_params(arch, 1), arch, image_size=[8, 8])
    with safe_open(str(tmp_path / "ok.safetensors"), framework="pt") as fh:
        meta = fh.metadata()
    for layers in (10**9, 10**7):
        meta["arch"] = json.dumps({**arch.to_dict(), "layers": layers})
        save_file(load_file(str(tmp_path / "ok.safetensors")), str(tmp_path / "bad.safetensors"), metadata=meta)
        _refused(*cli(main, ["info", tmp_path / "bad.safetensors"], capsys), f"says {layers} sine layers")
        _refused(*cli(main, ["render", tmp_path / "bad.safetensors", "-o", tmp_path / "r.png"], capsys),
                 "sine layers")
    assert not (tmp_path / "r.png").exists()


def test_zoo_resumed_with_other_settings_is_refused(tmp_path, monkeypatch, capsys, tripwire):
    import inr.datasets
    from inr.__main__ import main
    from inr.files import save_stack
    from inr.siren import SirenArch, init_params

    out = tmp_path / "zoo"
    out.mkdir()
    arch = SirenArch(hidden=32)
    save_stack(out / "shard-00000.safetensors", init_params(arch, 4), arch,
               {"images": torch.rand(4, 28, 28, 1), "psnr": torch.full((4,), 30.0)}, dataset="mnist5k",
               split="train", first_index=0, image_size=[28, 28], channels=1)
    save_stack(out / "shard-00001.safetensors", init_params(arch, 4), arch,
               {"images": torch.rand(4, 28, 28, 1), "psnr": torch.full((4,), 30.0)}, dataset="mnist5k",
               split="train", first_index=4, image_size=[28, 28], channels=1)
    rc, err = cli(main, ["zoo", "--dataset", "mnist5k", "--split", "train", "--out", out, "--shard-size", "4",
                         "--hidden", "16"], capsys)
    _refused(rc, err, "--hidden 32 (now 16)")
    rc, err = cli(main, ["zoo", "--dataset", "mnist5k", "--split", "val", "--out", out, "--shard-size", "8"], capsys)
    _refused(rc, err, "--split train (now val), --shard-size 4 (now 8)")
    monkeypatch.setattr(inr.datasets, "load_dataset", lambda *a: torch.zeros(1, 28, 28, 1))
    with pytest.raises(AssertionError, match="work started"):  # the same settings resume (the tripwire fires)
        main(["zoo", "--dataset", "mnist5k", "--split", "train", "--out", str(out), "--shard-size", "4"])


@pytest.mark.parametrize("kind", ["keyboard", "launcher"])
def test_ctrl_c_in_a_long_job_is_a_clean_resumable_exit(tmp_path, monkeypatch, capsys, kind):
    """Ctrl-C in a zoo build: a KeyboardInterrupt, or (worker processes) the SignalException torch's elastic
    launcher raises in its parent; either way exit 130, one line, no traceback."""
    import inr.datasets
    import inr.zoo
    from inr.__main__ import main

    class SignalException(Exception):  # torch.distributed.elastic.multiprocessing.api's, by name
        pass

    def interrupted(*a, **k):
        raise KeyboardInterrupt if kind == "keyboard" else SignalException("Process 1 got signal: 2")

    monkeypatch.setattr(inr.datasets, "load_dataset", lambda *a: torch.zeros(1, 28, 28, 1))
    monkeypatch.setattr(inr.zoo, "build_zoo", interrupted)
    rc, err = cli(main, ["zoo", "--out", tmp_path / "zoo"], capsys)
    assert rc == 130 and err.strip().splitlines() == [err.strip()] and "the same command resumes" in err, err
    assert "Traceback" not in err

    # a worker process of a multi-process build (inr.zoo._worker) ends quietly: exit 130, no traceback
    import inspect

    from safetensors.torch import save_file

    from inr.siren import SirenArch

    save_file({"images": torch.zeros(2, 28, 28, 1)}, str(tmp_path / "images.safetensors"))
    given = {"images_file": str(tmp_path / "images.safetensors"), "dataset": "mnist5k", "split": "train",
             "out": str(tmp_path / "zoo"), "arch": SirenArch(hidden=8).to_dict(), "recipe": {}, "shard_size": 2,
             "seed": 0, "todo": [0], "progress": False, "streamed": True}
    monkeypatch.setenv("RANK", "0")
    monkeypatch.setenv("WORLD_SIZE", "1")
    monkeypatch.setattr(inr.zoo, "_fit_shards", interrupted)
    names = inspect.signature(inr.zoo._worker).parameters
    if kind == "keyboard":  # (the launcher's SignalException is raised in the parent, never in a worker)
        with pytest.raises(SystemExit) as stop:
            inr.zoo._worker(**{n: given.get(n, str(tmp_path / n)) for n in names})
        worker_err = capsys.readouterr().err
        assert stop.value.code == 130 and "Traceback" not in worker_err, worker_err

    # gmn metatrain interrupted before its first validation leaves no empty log.jsonl
    import gmn.metatrain
    from gmn.__main__ import main as gmn_main

    monkeypatch.setattr(gmn.metatrain, "load_dataset", lambda *a: torch.zeros(2, 28, 28, 1))
    monkeypatch.setattr(gmn.metatrain, "_validate", interrupted)
    rc, err = cli(gmn_main, ["metatrain", "--out", tmp_path / "meta", "--threads", "1"], capsys)
    assert rc == 130 and "Traceback" not in err and "the same command resumes" in err, err
    assert (tmp_path / "meta").is_dir() and not (tmp_path / "meta" / "log.jsonl").exists()
