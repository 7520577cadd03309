"""The data home (inr.home): every default path of inr, gmn and the app is under $GMN_HOME, read when used;
nothing is written inside the checkout; a run resumed there continues its curve and budget."""

import json
import os
import time
from pathlib import Path

from inr.__main__ import main as inr_main
from inr.home import cache_dir, data_home, editors_dir, in_home, runs_dir, zoo_dir

ROOT = Path(__file__).resolve().parents[2]
CHECKOUT_ARTIFACTS = ("zoo", "runs", ".bench-cache", "editors")  # where artifacts lived before the data home


def _written_in_checkout_since(t0: float) -> list[Path]:
    """Files under the checkout's old artifact folders modified at or after t0."""
    out = []
    for name in CHECKOUT_ARTIFACTS:
        for p in (ROOT / name).rglob("*") if (ROOT / name).exists() else []:
            if p.is_file() and p.stat().st_mtime >= t0:
                out.append(p)
    return out


def test_data_home_reads_gmn_home_when_used_and_defaults_to_the_cache(monkeypatch, tmp_path):
    monkeypatch.setenv("GMN_HOME", str(tmp_path / "h"))
    assert data_home() == tmp_path / "h"
    assert zoo_dir("mnist5k-train") == tmp_path / "h" / "zoo" / "mnist5k-train"
    assert runs_dir("x") == tmp_path / "h" / "runs" / "x" and runs_dir() == tmp_path / "h" / "runs"
    assert cache_dir("tiles") == tmp_path / "h" / "cache" / "tiles" and editors_dir() == tmp_path / "h" / "editors"
    monkeypatch.delenv("GMN_HOME")
    monkeypatch.setenv("HOME", str(tmp_path / "user"))
    assert data_home() == tmp_path / "user" / ".cache" / "gmn-inr"
    monkeypatch.setenv("GMN_HOME", "~/elsewhere")  # user-expanded
    assert data_home() == tmp_path / "user" / "elsewhere"


def test_in_home_finds_an_old_relative_run_name_in_the_data_home(monkeypatch, tmp_path):
    monkeypatch.setenv("GMN_HOME", str(tmp_path / "h"))
    monkeypatch.chdir(tmp_path)
    assert in_home("runs/a/best.safetensors") == Path("runs/a/best.safetensors")  # nowhere: unchanged
    (tmp_path / "h" / "runs" / "a").mkdir(parents=True)
    (tmp_path / "h" / "runs" / "a" / "best.safetensors").write_bytes(b"x")
    assert in_home("runs/a/best.safetensors") == tmp_path / "h" / "runs" / "a" / "best.safetensors"
    (tmp_path / "runs" / "a").mkdir(parents=True)
    (tmp_path / "runs" / "a" / "best.safetensors").write_bytes(b"y")  # a file here wins
    assert in_home("runs/a/best.safetensors") == Path("runs/a/best.safetensors")


def test_zoo_without_out_lands_under_gmn_home_and_says_where(monkeypatch, tmp_path, capsys):
    home = tmp_path / "home"
    monkeypatch.setenv("GMN_HOME", str(home))
    t0 = time.time() - 1
    rc = inr_main(["zoo", "--dataset", "mnist5k", "--split", "val", "--limit", "3", "--shard-size", "3", "--steps", "5",
                   "--processes", "1", "--threads", "1", "-q"])
    assert rc == 0
    zoo = home / "zoo" / "mnist5k-val"
    index = json.loads((zoo / "zoo.json").read_text())
    assert index["count"] == 3 and index["fit"]["steps"] == 5
    out = capsys.readouterr().out
    assert f"zoo: writing to {zoo}" in out.splitlines()
    assert "INRs/s" in out
    assert not _written_in_checkout_since(t0)


def test_gmn_and_app_defaults_are_in_the_data_home(monkeypatch, tmp_path):
    from app.registry import Settings
    from gmn.data import zoo_path
    from gmn.train import TrainConfig

    monkeypatch.setenv("GMN_HOME", str(tmp_path / "h"))
    monkeypatch.delenv("GMN_EDITORS_DIR", raising=False)
    assert Path(TrainConfig().out) == tmp_path / "h" / "runs" / "editor"
    assert zoo_path("mnist5k-aug", "val") == tmp_path / "h" / "zoo" / "mnist5k-val"
    s = Settings()
    assert s.runs_dir == tmp_path / "h" / "runs" / "app" and s.published_dir == tmp_path / "h" / "editors"
    assert s.zoo_root is None  # gmn.data's default: the data home's zoo root
    monkeypatch.setenv("GMN_EDITORS_DIR", str(tmp_path / "pub"))
    assert Settings().published_dir == tmp_path / "pub"


def test_the_suite_runs_in_its_own_data_home():
    home = Path(os.environ["GMN_HOME"])
    assert home != Path("~/.cache/gmn-inr").expanduser() and not home.is_relative_to(ROOT)


def test_run_resumed_in_the_data_home_continues_its_curve_and_budget(monkeypatch, tmp_path, tiny_zoo):
    from gmn.editors import load_editor
    from gmn.train import TrainConfig, train

    monkeypatch.setenv("GMN_HOME", str(tmp_path / "h"))
    small = {"hidden": 8, "interaction_layers": 1, "deepsets_layers": 1, "lowrank": 2, "theta_channels": 2,
             "ws_hidden": 4, "ws_layers": 2}

    def cfg():  # no `out`: the default run folder in the data home
        return TrainConfig(task="erode", editor="ws+gmn", steps=6, val_every=2, batch=3, points=8, warmup=1,
                           zoo_root=str(tiny_zoo), val_size=4, limit=12, model=small)

    calls = {"n": 0}

    def killed_at_step_4():
        calls["n"] += 1
        return calls["n"] >= 4

    t0 = time.time() - 1
    logs: list[str] = []
    part = train(cfg(), log=logs.append, should_stop=killed_at_step_4)
    out = tmp_path / "h" / "runs" / "editor"
    assert f"train: writing to {out}" in logs and part["step"] == 4
    spent = part["elapsed"]
    logs = []
    done = train(cfg(), log=logs.append)
    assert any("resumed" in m and "step 4" in m for m in logs)
    assert done["step"] == 6  # the step budget counts the steps before the restart
    assert [h["step"] for h in done["history"]] == [2, 4, 6]  # one learning curve, continued
    assert done["elapsed"] > spent  # the CPU clock goes on from the saved one
    lines = [json.loads(x) for x in (out / "log.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines] == [2, 4, 6]
    _, card = load_editor(out / "best.safetensors")
    assert [h["step"] for h in card["history"]] == [h["step"] for h in done["history"]][: len(card["history"])]
    assert card["metrics"]["steps"] == done["best_step"]
    # a card naming its starting run as `runs/...` (relative, as shipped cards do) finds it in the data home
    from gmn.editors import save_editor
    from gmn.train import init_card

    editor, _ = load_editor(out / "best.safetensors")
    save_editor(tmp_path / "ft.safetensors", editor, {**card, "init": {"path": "runs/editor/best.safetensors"}})
    monkeypatch.chdir(tmp_path)  # not the checkout: the relative name can only resolve in the data home
    chained = init_card(str(tmp_path / "ft.safetensors"))
    assert chained["runs"] == 2 and chained["steps"] == 2 * card["metrics"]["steps"]
    assert not _written_in_checkout_since(t0)
