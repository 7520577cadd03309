"""Training a small GPT on one text, with Adam or the learned optimizer (docs/DESIGN.md §7).

    python -m gmn lm TEXTFILE --optimizer adam|learned [--steps N] [--target-loss L] [--seed S]
    -> loss 2.3456 after 300 steps, 4.2 s

One loop (`train_lm`) for both optimizers. The text's bytes are split into its first 90% (training
batches) and its last 10% (validation); "loss" is the mean cross-entropy in nats per byte on fixed
validation windows of the held-out tail, evaluated every `eval_every` steps (10 by default) and after
the last step. `--target-loss` stops at the first evaluation at or below it. Times are process CPU
seconds of the training steps (forward, backward, optimizer step, the learned optimizer's gradient-set
features included; validation evaluations excluded, the same for both optimizers).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

import torch
from torch import Tensor

from .transformer import GPT, GPTConfig, batches, lm_loss, split_text, windows

# Adam's lr, tuned on the validation texts (gmn.transformer.VAL_TEXTS) at the benchmark's model size
# (GPTConfig(width=48, heads=4, layers=2), batch 16, block 64), seed 0, mean validation loss after 300 steps:
# 1e-3: 2.3937, 2e-3: 2.3095, 3e-3: 2.3625, 5e-3: 2.6024 (shared 2-core machine, 2026-12-04), found by
#     python -m bench.lm_optim --tune
ADAM_LR = 2e-3
BATCH = 16
EVAL_EVERY = 10
# the CLI's model when none is given: the benchmark's held-out size (not used in meta-training)
DEFAULT_MODEL = GPTConfig(width=48, heads=4, layers=2)


@dataclass
class LMResult:
    """A training run: final validation loss, steps taken, CPU seconds of training, the evaluations."""

    loss: float
    steps: int
    seconds: float
    history: list[tuple[int, float, float]] = field(default_factory=list)  # (step, val loss, CPU s so far)
    reached: bool = False  # the target loss was reached
    diverged: bool = False


def validation_batches(val: Tensor, block: int, batch: int = BATCH, count: int = 8) -> list[tuple[Tensor, Tensor]]:
    """Fixed validation windows spread evenly over the held-out bytes: `count` batches of (batch, T)."""
    T = min(block, len(val) - 1)
    if T < 1:
        raise ValueError(f"the held-out split has {len(val)} bytes; the text is too short for validation")
    starts = torch.linspace(0, len(val) - T - 1, batch * count).round().long()
    return [windows(val, block, s) for s in starts.split(batch)]


@torch.no_grad()
def evaluate(model: GPT, val_batches: list[tuple[Tensor, Tensor]]) -> float:
    """Mean validation cross-entropy (nats per byte) over the given batches."""
    return sum(lm_loss(model(x), y).item() for x, y in val_batches) / len(val_batches)


def make_optimizer(model: GPT, optimizer: str, *, lr: float = ADAM_LR, learned=None) -> torch.optim.Optimizer:
    """"adam" (torch.optim.Adam at lr) or "learned" (`LearnedLMOptimizer` with the `learned` net, default: the
    shipped one, assets/optimizers/lm-learned.safetensors)."""
    if optimizer == "adam":
        return torch.optim.Adam(model.parameters(), lr=lr)
    if optimizer == "learned":
        from .lm_optim import SHIPPED, LearnedLMOptimizer, load_lm_optimizer

        net = learned if learned is not None else load_lm_optimizer(SHIPPED)[0]
        return LearnedLMOptimizer(model, net)
    raise ValueError(f"optimizer must be 'adam' or 'learned', got {optimizer!r}")


def train_lm(text: Tensor, config: GPTConfig = DEFAULT_MODEL, *, optimizer: str = "adam", steps: int = 300,
             lr: float = ADAM_LR, learned=None, target_loss: float | None = None, seed: int = 0,
             batch: int = BATCH, eval_every: int = EVAL_EVERY, val_fraction: float = 0.1,
             callback: Callable[[int, float], None] | None = None) -> LMResult:
    """Train a GPT (initialised from `seed`) on the first 1 − val_fraction of `text` (int64 bytes (n,)) for
    `steps` steps or until the validation loss is at most `target_loss`. Batches are drawn from a
    generator seeded by `seed`, so Adam and the learned optimizer see the same batches."""
    if steps < 1:
        raise ValueError(f"--steps must be at least 1, got {steps}")
    train, val = split_text(text, val_fraction)
    if len(train) < 2:
        raise ValueError(f"the training split has {len(train)} bytes; the text is too short")
    vb = validation_batches(val, config.block, batch)
    model = GPT(config)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    opt = make_optimizer(model, optimizer, lr=lr, learned=learned)
    data = batches(train, config.block, batch, torch.Generator().manual_seed(seed + 1))
    history: list[tuple[int, float, float]] = []
    cpu, loss, reached, step = 0.0, float("nan"), False, 0
    try:
        for step in range(1, steps + 1):
            x, y = next(data)
            t0 = time.process_time()
            opt.zero_grad(set_to_none=True)
            lm_loss(model(x), y).backward()
            opt.step()
            cpu += time.process_time() - t0
            if getattr(opt, "diverged", False):
                return LMResult(float("nan"), step, cpu, history, False, True)
            if step % eval_every == 0 or step == steps:
                loss = evaluate(model, vb)
                history.append((step, loss, cpu))
                if callback is not None:
                    callback(step, loss)
                if target_loss is not None and loss <= target_loss:
                    reached = True
                    break
    finally:
        if hasattr(opt, "remove"):
            opt.remove()
    return LMResult(loss, step, cpu, history, reached)


def cmd_lm(args) -> None:
    """`python -m gmn lm`: train on TEXTFILE and print `loss X after N steps, T s`."""
    from inr.threads import set_threads

    from .transformer import load_text

    set_threads(requested=args.threads or 1)
    if args.target_loss is not None and not args.target_loss > 0:
        raise ValueError(f"--target-loss must be positive, got {args.target_loss}")
    learned = None
    if args.optimizer == "learned" and args.learned:
        from .lm_optim import load_lm_optimizer

        learned = load_lm_optimizer(args.learned)[0]
    res = train_lm(load_text(args.textfile), optimizer=args.optimizer, steps=args.steps, learned=learned,
                   target_loss=args.target_loss, seed=args.seed, lr=args.lr)
    if res.diverged:
        raise ValueError(f"the learned optimizer diverged at step {res.steps}; train with --optimizer adam")
    print(f"loss {res.loss:.4f} after {res.steps} steps, {res.seconds:.1f} s")


def add_lm_arguments(p) -> None:
    """The options of `python -m gmn lm`."""
    p.add_argument("textfile", help="any file (read as bytes); the last 10%% is the validation split")
    p.add_argument("--optimizer", choices=["adam", "learned"], default="adam")
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--target-loss", type=float, default=None,
                   help="stop when the validation loss (nats per byte, every 10 steps) is at most this")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--lr", type=float, default=ADAM_LR, help=f"Adam's lr (default {ADAM_LR}, tuned)")
    p.add_argument("--learned", default=None, help="learned-optimizer file (default: the shipped one)")
    p.set_defaults(run=cmd_lm)
