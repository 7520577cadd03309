"""Training editors: `python -m gmn train --task dilate --data mnist5k --editor ws+gmn --minutes 30 --out DIR`.

The loop, in plain sight:

    for step in ...:
        batch  = B random points on each of `batch` random training INRs (+ a random paint stroke)
        Δθ     = editor(θ, points, objective at the points)
        loss   = weighted MSE of the edited INR on the full pixel grid against the objective
        AdamW step (linear warm-up, cosine decay over the step or time budget, grad-norm clip)
        every `val_every` steps: validation MSE of the clamped render → last + best checkpoints

The time budget (`minutes`) counts CPU time of the training process (all its threads), not
wall time, so that runs sharing a machine still get equal budgets.

Every random choice of step s is drawn from seed (seed, s, rank), so a run resumed from its
last checkpoint (model, optimizer, step, elapsed time, history) continues exactly as an
uninterrupted one would. Checkpoints are written atomically. Under `torchrun
--nproc_per_node P` the editor is wrapped in DistributedDataParallel (gloo on CPU, NCCL on
GPU); each rank draws its own batch and rank 0 validates and writes files.

Outputs in DIR: last.safetensors (resume state), best.safetensors + best.json (the editor at
its best validation MSE, with its card), log.jsonl (one line per validation).
"""

from __future__ import annotations

import json
import math
import os
import subprocess
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from inr.home import in_home, runs_dir, say_where

from .data import EditData, sign_flip
from .editors import Editor, EditorConfig, EditorError, edited_forward, load_editor, save_editor


@dataclass
class TrainConfig:
    task: str = "dilate"
    data: str = "mnist5k"
    editor: str = "ws+gmn"
    out: str = field(default_factory=lambda: str(runs_dir("editor")))  # the data home's runs/editor (inr.home)
    minutes: float | None = 10.0  # budget in CPU-minutes of this process (ignored when steps is set)
    steps: int | None = None  # step budget: makes the schedule (and a resumed run) deterministic
    batch: int = 32  # INRs per step (per process)
    points: int = 64  # sampled points per INR
    lr: float = 1e-3
    weight_decay: float = 1e-4
    warmup: int = 100
    clip: float = 1.0
    min_lr: float = 0.05  # final lr as a fraction of lr
    seed: int = 0
    val_every: int | None = None  # default: one epoch of the training split
    val_size: int = 500
    limit: int | None = None  # use only the first `limit` training INRs (tests)
    zoo_root: str | None = None
    device: str = "cpu"
    model: dict = field(default_factory=dict)  # EditorConfig overrides (hidden, lowrank, ...)
    augment: bool = False  # train on INRs with random hidden-neuron sign flips (function-preserving)
    init: str | None = None  # start from this editor file's weights (fine-tuning; same sizes, e.g. more rounds)
    outside_weight: float = 1.0  # paint: the training loss weighs pixels outside the mask this many times more;
    # the objective the editor reads (its gradients) and the validation MSE stay the paint objective's


def _commit() -> str:
    try:
        root = Path(__file__).resolve().parent.parent
        return subprocess.run(["git", "rev-parse", "--short", "HEAD"], cwd=root, capture_output=True, text=True,
                              timeout=5).stdout.strip() or "unknown"
    except (OSError, subprocess.SubprocessError):
        return "unknown"


def _dist() -> tuple[int, int]:
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world > 1:
        import torch.distributed as dist

        if not dist.is_initialized():
            dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
        return dist.get_rank(), world
    return 0, 1


def edit_loss(editor, batch, arch, grid, *, clamp: bool = False, outside_weight: float = 1.0) -> torch.Tensor:
    """Per-INR weighted MSE (N,) of the edited INRs on the full grid; `outside_weight` scales the error
    outside a paint mask (a training-loss choice: the objective itself is unchanged)."""
    dtheta = editor(batch.params, arch, batch.x, batch.target_pts, batch.mask_pts)
    f = edited_forward(batch.params, dtheta, arch, grid)  # (N, H*W, C)
    if clamp:
        f = f.clamp(0, 1)
    obj = batch.objective
    err = obj.error(f.reshape(obj.target.shape))
    if outside_weight == 1.0 or obj.mask is None:
        return err
    sq = obj.weight * (f.reshape(obj.target.shape) - obj.target).pow(2)
    return err + (outside_weight - 1.0) * ((1 - obj.mask) * sq).mean(dim=(1, 2, 3))


def _lr_factor(cfg: TrainConfig, step: int, progress: float) -> float:
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    return cfg.min_lr + (1 - cfg.min_lr) * 0.5 * (1 + math.cos(math.pi * min(progress, 1.0)))


# checkpoints


def _save_state(path: Path, editor: Editor, opt: torch.optim.Optimizer, state: dict) -> None:
    from safetensors.torch import save_file

    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in editor.state_dict().items()}
    osd = opt.state_dict()
    for pid, st in osd["state"].items():
        for k, v in st.items():
            tensors[f"opt.{pid}.{k}"] = (v if torch.is_tensor(v) else torch.tensor(v)).detach().cpu().contiguous()
    meta = {"format": "gmn-train-state", "state": json.dumps(state), "groups": json.dumps(osd["param_groups"])}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.replace(tmp, path)


def _load_state(path: Path, editor: Editor, opt: torch.optim.Optimizer) -> dict:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        meta = fh.metadata()
        tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    editor.load_state_dict({k[6:]: v for k, v in tensors.items() if k.startswith("model.")})
    state: dict = {}
    for k, v in tensors.items():
        if k.startswith("opt."):
            _, pid, key = k.split(".", 2)
            state.setdefault(int(pid), {})[key] = v
    opt.load_state_dict({"state": state, "param_groups": json.loads(meta["groups"])})
    return json.loads(meta["state"])


# the loop


def train(cfg: TrainConfig, *, log: Callable[[str], None] = print, on_val: Callable[[dict], None] | None = None,
          should_stop: Callable[[], bool] | None = None, progress: bool = False,
          clock: Callable[[], float] = time.process_time) -> dict:
    """Train (or resume) an editor; returns the final state (step, best_val, history, ...).

    clock: the CPU-seconds clock the budget counts (default this process's CPU time; the app's training thread
    passes `time.thread_time`, its own)."""
    rank, world = _dist()
    device = torch.device(cfg.device)
    torch.manual_seed(cfg.seed)
    out = Path(cfg.out)
    quiet = (lambda *_: None) if rank else log
    if rank == 0:
        out.mkdir(parents=True, exist_ok=True)
        say_where("train", out, quiet)
    lam = EditorConfig.from_dict({"kind": cfg.editor, **cfg.model}).lam  # the paint objective's λ is the editor's own
    train_data = EditData.from_zoo(cfg.data, "train", cfg.task, root=cfg.zoo_root, limit=cfg.limit, log=quiet,
                                   lam=lam)
    val_data = EditData.from_zoo(cfg.data, "val", cfg.task, root=cfg.zoo_root, limit=cfg.val_size, log=quiet,
                                 lam=lam)
    arch, grid = train_data.arch, train_data.grid.to(device)
    ecfg = EditorConfig(kind=cfg.editor, task=cfg.task, arch=arch.to_dict(), points=cfg.points, **cfg.model)
    editor = Editor(ecfg)
    nb = train_data.batch(torch.arange(min(len(train_data), 256)), cfg.points, seed=cfg.seed)
    editor.fit_norm(nb.params, arch, nb.x, nb.target_pts, nb.mask_pts)  # identical on every rank
    start = init_card(cfg.init) if cfg.init else None  # where a fine-tuned run starts from, for its card
    if cfg.init:
        _init_from(editor, cfg.init)
    editor.to(device)
    opt = torch.optim.AdamW(editor.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    # "elapsed": CPU seconds of this process spent training (the budget, fair under contention);
    # "wall": wall-clock seconds. Validation counts in neither.
    state = {"step": 0, "elapsed": 0.0, "wall": 0.0, "best_val": None, "best_step": None, "history": []}
    last = out / "last.safetensors"
    if last.exists():
        state = _load_state(last, editor, opt)
        quiet(f"resumed from {last} at step {state['step']} ({state['elapsed'] / 60:.1f} min)")
    model = editor
    if world > 1:
        from torch.nn.parallel import DistributedDataParallel

        model = DistributedDataParallel(editor, find_unused_parameters=True)
    val_every = cfg.val_every or max(1, len(train_data) // (cfg.batch * world))
    val_batches = [val_data.batch(torch.arange(i, min(i + 64, len(val_data))), cfg.points, seed=10**9 + i)
                   for i in range(0, len(val_data), 64)]
    budget = cfg.minutes * 60 if cfg.minutes else None

    def done() -> bool:
        if cfg.steps is not None:
            return state["step"] >= cfg.steps
        return budget is not None and state["elapsed"] >= budget

    bar = None
    if progress and rank == 0:
        from tqdm import tqdm

        bar = tqdm(total=cfg.steps or int(budget or 0), initial=state["step"] if cfg.steps else int(state["elapsed"]),
                   unit="step" if cfg.steps else "s", desc=f"train {cfg.task}/{cfg.editor}")
    losses: list[float] = []
    t_last, c_last = time.perf_counter(), clock()
    while not done():
        step = state["step"]
        prog = step / cfg.steps if cfg.steps else state["elapsed"] / budget if budget else 0.0
        loss = _train_step(cfg, model, editor, opt, train_data, arch, grid, device, step, prog, world, rank)
        losses.append(loss.item())
        now, cnow = time.perf_counter(), clock()
        state["wall"] = state.get("wall", 0.0) + now - t_last
        state["elapsed"] += cnow - c_last
        t_last, c_last = now, cnow
        state["step"] = step + 1
        if world > 1:  # ranks agree on the clock and on stopping
            import torch.distributed as dist

            t = torch.tensor([state["elapsed"], float(bool(should_stop and should_stop()))])
            dist.all_reduce(t, op=dist.ReduceOp.MAX)
            state["elapsed"], stop = t[0].item(), t[1].item() > 0
        else:
            stop = bool(should_stop and should_stop())
        if bar is not None:
            bar.n = state["step"] if cfg.steps else min(int(state["elapsed"]), bar.total)
            bar.set_postfix(loss=f"{loss.item():.4f}")
            bar.refresh()
        if state["step"] % val_every == 0 or done() or stop:
            if rank == 0:
                val = _validate(editor, val_batches, arch, grid, device)
                entry = {"step": state["step"], "elapsed": round(state["elapsed"], 2), "wall": round(state["wall"], 2),
                         "train": sum(losses) / max(len(losses), 1), "val": val,
                         "lr": opt.param_groups[0]["lr"]}
                state["history"].append(entry)
                if state["best_val"] is None or val < state["best_val"]:
                    state["best_val"], state["best_step"] = val, state["step"]
                    save_editor(out / "best.safetensors", editor, _card(cfg, state, ecfg, train_data, device, start))
                _save_state(last, editor, opt, state)
                with open(out / "log.jsonl", "a") as fh:
                    fh.write(json.dumps(entry) + "\n")
                quiet(f"step {state['step']}  train {entry['train']:.5f}  val {val:.5f}  "
                      f"best {state['best_val']:.5f} @ {state['best_step']}  {state['elapsed'] / 60:.1f} min")
                if on_val:
                    on_val(entry)
            losses = []
            t_last, c_last = time.perf_counter(), clock()  # validation is not counted
            if world > 1:
                import torch.distributed as dist

                dist.barrier()
        if stop:
            break
    if bar is not None:
        bar.close()
    if world > 1:
        _check_replicas(editor, out, rank, world, quiet)
    return state


def _validate(editor: Editor, val_batches: list, arch, grid: torch.Tensor, device: torch.device) -> float:
    """The editor's mean clamped edit loss over the validation batches (in eval mode, no gradients)."""
    editor.eval()
    with torch.no_grad():
        errs = [edit_loss(editor, _to(b, device), arch, grid, clamp=True) for b in val_batches]
    editor.train()
    return torch.cat(errs).mean().item()


def _train_step(cfg: TrainConfig, model, editor: Editor, opt, train_data: EditData, arch, grid: torch.Tensor,
                device: torch.device, step: int, prog: float, world: int, rank: int) -> torch.Tensor:
    """One optimiser step of `train` on this rank's batch of step `step` (lr scheduled by `prog`, the fraction of
    the budget spent); returns the batch's mean loss (before the step)."""
    for g in opt.param_groups:
        g["lr"] = cfg.lr * _lr_factor(cfg, step, prog)
    seed = (cfg.seed * 1_000_003 + step) * world + rank
    idx = torch.randint(len(train_data), (cfg.batch,), generator=torch.Generator().manual_seed(seed))
    batch = train_data.batch(idx, cfg.points, seed=seed)
    if cfg.augment:
        batch.params = sign_flip(batch.params, torch.Generator().manual_seed(seed + 17))
    batch = _to(batch, device)
    loss = edit_loss(model, batch, arch, grid, outside_weight=cfg.outside_weight).mean()
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(editor.parameters(), cfg.clip)
    opt.step()
    return loss


def _check_replicas(editor: Editor, out: Path, rank: int, world: int, quiet: Callable[[str], None]) -> None:
    """DDP keeps replicas identical: check it, and record it (OUT/ddp.json) for the tests and the card."""
    import torch.distributed as dist

    flat = torch.cat([p.detach().flatten().cpu() for p in editor.parameters()])
    gathered = [torch.empty_like(flat) for _ in range(world)]
    dist.all_gather(gathered, flat)
    diff = max((g - gathered[0]).abs().max().item() for g in gathered)
    if rank == 0:
        (out / "ddp.json").write_text(json.dumps({"world": world, "max_abs_diff_between_ranks": diff}))
        quiet(f"{world} ranks hold identical weights (max |Δ| = {diff:g})" if diff == 0 else
              f"warning: ranks differ by up to {diff:g}")


def _to(batch, device):
    if device.type == "cpu":
        return batch
    from .data import Batch

    o = batch.objective.to(device)
    m = None if batch.mask_pts is None else batch.mask_pts.to(device)
    return Batch([t.to(device) for t in batch.params], batch.x.to(device), batch.target_pts.to(device), m, o)


def _init_from(editor: Editor, path: str) -> None:
    """Copy the weights (and input normalisation) of the editor file `path` into `editor`: fine-tuning, e.g.
    a one-round editor trained on for two rounds. Its kind and sizes must match."""
    src, _ = load_editor(in_home(path))  # a relative `runs/...` name may be in the data home
    if src.config.kind != editor.config.kind:
        raise EditorError(f"--init {path} is a {src.config.kind!r} editor; this run trains {editor.config.kind!r}")
    try:
        editor.load_state_dict(src.state_dict())
    except RuntimeError as e:
        raise EditorError(
            f"--init {path} has other sizes than this run's editor: {str(e).splitlines()[-1].strip()}") from None


def init_chain(path: str | Path) -> list[tuple[Path, dict]]:
    """(file, card with its config) of the editor `path` and of every run it was fine-tuned from, the first run
    first, as far as those files are on this machine. A card names the file it started from in `init.path`
    (or, written before that was recorded, `train_config.init`); a relative name is looked up here, then in
    the data home (which keeps the checkout's old `runs/...` layout, `inr.home.in_home`), then in the repo."""
    file = in_home(path)
    if not file.is_absolute() and not file.exists():
        file = Path(__file__).resolve().parent.parent / file
    editor, card = load_editor(file)
    card = {**card, "config": editor.config.to_dict()}  # as the card's file holds it
    up = (card.get("init") or {}).get("path") or (card.get("train_config") or {}).get("init")
    if up and (in_home(up).exists() or (Path(__file__).resolve().parent.parent / up).exists()):
        return [*init_chain(up), (file, card)]
    return [(file, card)]


def init_card(path: str) -> dict:
    """What a fine-tuned run started from: the editor file, its commit, and the steps and CPU-minutes it cost,
    counting the runs it was itself fine-tuned from (`runs`: how many runs those figures add up). The chain is
    read again from its files (cards written before chains were summed count only the last run); where the
    first file's own start is not on this machine, its card's record of it is added."""
    chain = init_chain(path)
    beyond = chain[0][1].get("init") or {}  # recorded, its files not here (a clean clone)
    parts = [(c.get("metrics", {}).get("steps"), c.get("training_minutes")) for _, c in chain]
    if beyond:
        parts.insert(0, (beyond.get("steps"), beyond.get("training_minutes")))
    (steps, minutes), runs = parts[-1], 1
    if None not in (v for part in parts for v in part):
        steps, minutes = sum(st for st, _ in parts), round(sum(m for _, m in parts), 2)
        runs = len(chain) + (beyond.get("runs", 1) if beyond else 0)
    return {"path": path, "steps": steps, "training_minutes": minutes, "commit": chain[-1][1].get("commit"),
            "runs": runs}


def _card(cfg: TrainConfig, state: dict, ecfg: EditorConfig, data: EditData, device, start: dict | None) -> dict:
    return {
        "task": cfg.task,
        "editor": cfg.editor,
        "data": {"dataset": cfg.data, "train": f"{cfg.data} train ({len(data)} INRs)",
                 "val": f"{cfg.data} val (first {cfg.val_size})"},
        "metrics": {"val_mse": state["best_val"], "best_step": state["best_step"], "steps": state["step"]},
        # the learning curve (validation MSE by step and CPU-minute), for the card's picture
        "history": [{"step": h["step"], "minutes": round(h["elapsed"] / 60, 2), "val": h["val"]}
                    for h in state["history"]],
        "train_config": asdict(cfg),
        "training_minutes": round(state["elapsed"] / 60, 2),  # CPU-minutes of the training process
        # a fine-tuned run's starting point and what it had cost (its budget adds to this run's)
        "init": start,
        "training_wall_minutes": round(state.get("wall", 0.0) / 60, 2),
        "device": str(device) if device.type == "cpu" else torch.cuda.get_device_name(device),
        "processes": int(os.environ.get("WORLD_SIZE", "1")),
        "commit": _commit(),
        "date": time.strftime("%Y-%m-%d"),
    }
