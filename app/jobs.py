"""The admin tab's background training worker: one job at a time, in a thread of the server.

    jobs = Jobs(runs_dir, zoo_root)
    jobs.start("dilate-1", TrainConfig(...))   # runs gmn.train.train in a thread
    jobs.status()                               # dict: state, run, step, progress, history, log
    jobs.stop()                                 # stops the zoo build at once, else train() after its step

Each run lives in runs_dir/RUN: job.json (its TrainConfig), plus what gmn.train writes
(last.safetensors checkpoint, best.safetensors + best.json, log.jsonl). Starting a run whose
folder already holds a checkpoint resumes it with its saved config, so a server restart loses
only the steps since the last validation; the settings given that differ from the saved ones
are listed in the status's `notice` (they are not applied).

The CPU-minute budget counts the training thread's own CPU time (`time.thread_time`, passed to
`gmn.train.train` as its `clock`), so edits and other requests served meanwhile do not
eat it; with GMN_APP_THREADS = 1 (the default) torch's math runs in that thread too. Progress is
steps / step budget or CPU time / time budget over the whole run (a resumed run goes on from
where it was), and stays below 100 % until the job is done. The CPU time before the first step and in
validations is not counted (train() does not count it either), so the bar follows train()'s own budget.

A dataset whose zoos are not on this machine is built first (`gmn.data.ensure_zoo`, every core): the status's
`phase` is "data" and its `data` line reads "building zoo NAME · k/N INRs" (the bar shows that build's
fraction), then "train". Stop ends a zoo build within a second or so (the shards written are kept, so the next
start resumes it) and a training run after its current step.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from dataclasses import asdict
from pathlib import Path

from gmn.data import ensure_zoo, zoo_path
from gmn.train import TrainConfig, train
from inr.zoo import ZooStopped

IGNORED_ON_RESUME = ("out", "zoo_root")  # not settings of the run


def changed_settings(saved: dict, given: dict) -> list[str]:
    """'name: saved → given' for every setting the resumed run keeps although another was given."""
    out = []
    for k, v in given.items():
        if k not in IGNORED_ON_RESUME and k in saved and saved[k] != v:
            out.append(f"{k}: {saved[k]!r} (kept) ≠ {v!r} (given)")
    return out


class Jobs:
    def __init__(self, runs_dir: str | Path, zoo_root: str | Path | None = None):
        self.runs_dir = Path(runs_dir)
        self.zoo_root = zoo_root
        self._lock = threading.Lock()
        self._thread: threading.Thread | None = None
        self._stop = threading.Event()
        self._status: dict = {"state": "idle", "run": None, "step": 0, "progress": 0.0, "history": [], "log": [],
                              "error": None}

    # control

    def running(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, run: str, cfg: TrainConfig | None) -> dict:
        """Start (or resume, when runs_dir/RUN holds a checkpoint) a training job. Raises RuntimeError when busy."""
        out = self.runs_dir / run
        saved = out / "job.json"
        resumed = (out / "last.safetensors").exists() and saved.exists()
        with self._lock:
            if self.running():
                raise RuntimeError(f"a training job is already running ({self._status['run']}); stop it first")
            notice = ""
            if resumed:
                given = cfg
                cfg = TrainConfig(**json.loads(saved.read_text()))
                changed = changed_settings(asdict(cfg), asdict(given)) if given is not None else []
                if changed:
                    notice = (f"run {run!r} resumed from its checkpoint with its saved settings; ignored: "
                              + "; ".join(changed) + ". Choose a new run name to train with other settings.")
            elif cfg is None:
                raise RuntimeError(f"no run {run!r} to resume")
            cfg.out = str(out)
            if self.zoo_root is not None and cfg.zoo_root is None:
                cfg.zoo_root = str(self.zoo_root)
            out.mkdir(parents=True, exist_ok=True)
            saved.write_text(json.dumps(asdict(cfg), indent=2))
            history = []
            log = out / "log.jsonl"
            if resumed and log.exists():
                history = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            self._stop.clear()
            self._status = {"state": "running", "run": run, "step": history[-1]["step"] if history else 0,
                            "progress": 0.0, "history": history, "log": [], "error": None, "resumed": resumed,
                            "phase": "train", "data": "",
                            "config": asdict(cfg), "started": time.time(), "notice": notice,
                            "elapsed": history[-1].get("elapsed", 0.0) if history else 0.0}
            self._thread = threading.Thread(target=self._work, args=(cfg,), name=f"train-{run}", daemon=True)
            self._thread.start()
        return self.status()

    def stop(self) -> dict:
        """Ask the running job to stop: a zoo build at once, a training run after its current step."""
        if self.running():
            self._stop.set()
            self._status["state"] = "stopping"
        return self.status()

    def wait(self, timeout: float | None = None) -> dict:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.status()

    def status(self) -> dict:
        """A copy of the job's status: state, run, phase, data, step, progress, history, the last log lines."""
        s = dict(self._status)
        s["history"] = list(s["history"])
        s["log"] = list(s["log"][-20:])
        if s.get("phase") == "data" and s.get("data"):
            s["log"].append(s["data"])  # the line shown before the first step says how far the build is
        return s

    def runs(self) -> list[dict]:
        """Every run folder: name, whether it has a best editor and a checkpoint, its last log entry."""
        out = []
        for d in sorted(p for p in self.runs_dir.glob("*") if p.is_dir()):
            log = d / "log.jsonl"
            last = log.read_text().splitlines()[-1] if log.exists() and log.stat().st_size else ""
            entry = json.loads(last) if last else {}
            out.append({"run": d.name, "best": (d / "best.safetensors").exists(),
                        "checkpoint": (d / "last.safetensors").exists(), "step": entry.get("step"),
                        "val": entry.get("val")})
        return out

    # the worker

    def _build_data(self, cfg: TrainConfig) -> bool:
        """Build the missing train/val zoos of cfg.data with a progress line; False when stopped meanwhile."""
        s = self._status
        for split in ("train", "val"):
            name = zoo_path(cfg.data, split, cfg.zoo_root).name
            if (zoo_path(cfg.data, split, cfg.zoo_root) / "zoo.json").exists():
                continue
            s["phase"] = "data"

            def on_progress(done: int, total: int, name: str = name) -> None:
                s["data"] = f"building zoo {name} · {done}/{total} INRs"
                s["progress"] = min(0.99, done / max(total, 1))

            on_progress(0, 0)
            try:
                ensure_zoo(cfg.data, split, cfg.zoo_root, log=lambda line: s["log"].append(line),
                           should_stop=self._stop.is_set, on_progress=on_progress)
            except ZooStopped as e:
                s["log"].append(str(e))
                return False
        s["phase"], s["data"], s["progress"] = "train", "", 0.0
        return True

    def _work(self, cfg: TrainConfig) -> None:
        s = self._status
        start_step = s["step"]
        base = s["elapsed"]  # train()'s own CPU seconds at its last validation
        mark = None  # thread_time() when that count was taken (the first step, then each validation)
        calls = 0

        def should_stop() -> bool:  # called once per training step, in the training thread
            nonlocal calls, mark
            calls += 1
            now = time.thread_time()
            mark = now if mark is None else mark  # the data loading before the first step is not the budget's
            s["step"] = max(s["step"], start_step + calls)
            s["elapsed"] = base + now - mark
            if cfg.steps:
                done = s["step"] / cfg.steps
            else:
                done = s["elapsed"] / (cfg.minutes * 60) if cfg.minutes else 0.0
            s["progress"] = min(0.99, done)  # 100 % only once train() has returned
            return self._stop.is_set()

        def on_val(entry: dict) -> None:
            nonlocal base, mark
            s["history"].append(entry)
            s["step"] = entry["step"]
            base, mark = entry.get("elapsed", s["elapsed"]), time.thread_time()  # validation is not the budget's

        try:  # the budget is this (training) thread's CPU time
            if not self._build_data(cfg):
                s["state"] = "stopped"
                return
            train(cfg, log=lambda line: s["log"].append(line), on_val=on_val, should_stop=should_stop,
                  clock=time.thread_time)
            s["state"] = "stopped" if self._stop.is_set() else "done"
            if s["state"] == "done":
                s["progress"] = 1.0
        except Exception as e:  # noqa: BLE001 - the worker reports any failure in the status
            s["state"] = "failed"
            s["error"] = f"{type(e).__name__}: {e}"
            s["log"].append(traceback.format_exc(limit=3))
