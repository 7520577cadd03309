"""Fisher diagonal of small transformers from their gradient sets (paper §7.1, docs/DESIGN.md §13) for
BENCHMARKS.md: the learned predictor against the plain estimator from the same gradients, both scored
against the reference Fisher over many held-out sequences, on texts and a model size not trained on.

    python -m bench.transformer_curvature              # ~12 CPU-minutes on one thread (resumable)
    python -m bench.transformer_curvature --train 24 --steps 100 --no-write   # a quick look

Models: gmn.transformer.GPT on bytes, random-init (nanoGPT's) or briefly trained (Adam lr 3e-3,
batch 16 × 32 bytes, 30 or 150 steps) on their text. Training family: widths 32/48, 1–2 blocks,
2–4 heads, texts gmn.transformer.TRAIN_TEXTS; validation (checkpoint selection): VAL_TEXTS; test:
TEST_TEXTS (never seen) with two family sizes and a width-64 size no predictor saw. Input: the gradient
set of 16 sequences of 32 bytes, labels sampled from the model; target: the same Fisher over 512
independent sequences. Items and the predictor are cached under $GMN_HOME/runs/transformer-curvature/
(default ~/.cache/gmn-inr), so an interrupted run resumes. Section written: transformer-curvature.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import statistics
import sys
import time
from pathlib import Path

import torch

from bench.report import table, write_section
from gmn.transformer import GPT, TEST_TEXTS, TRAIN_TEXTS, VAL_TEXTS, GPTConfig, batches, lm_loss, load_text, windows
from gmn.transformer_curvature import (
    FisherItem,
    TrainSettings,
    TransformerFisherPredictor,
    TransformerPredictorConfig,
    evaluate,
    load_predictor,
    make_item,
    save_predictor,
    train_predictor,
)
from gmn.transformer_gmn import GROUPS, TransformerGMNConfig, TransformerNeurons
from inr.home import runs_dir

FAMILY = [(32, 2, 1), (32, 4, 2), (48, 4, 1), (48, 2, 2)]  # (width, heads, layers) trained on
TEST_SIZES = [(32, 4, 2), (48, 4, 1), (64, 4, 2)]  # the last is outside the training family
TRAIN_STEPS = (0, 30, 150)
SEQ, POINTS, TARGET = 32, 16, 512
COMMAND = "python -m bench.transformer_curvature"


def home() -> Path:
    """The run folder under the data home ($GMN_HOME/runs, inr.home)."""
    return runs_dir("transformer-curvature")


def brief_training(model: GPT, text: torch.Tensor, steps: int, seed: int) -> None:
    """Adam (lr 3e-3) on random 32-byte windows of the text, batch 16."""
    if steps == 0:
        return
    opt = torch.optim.Adam(model.parameters(), lr=3e-3)
    it = batches(text, SEQ, 16, torch.Generator().manual_seed(seed))
    for _ in range(steps):
        x, y = next(it)
        loss = lm_loss(model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()


def build_item(text: str, size: tuple[int, int, int], steps: int, seed: int) -> FisherItem:
    """One transformer (seeded init, brief training) and its input/target Fisher data on `text`."""
    width, heads, layers = size
    torch.manual_seed(seed)
    model = GPT(GPTConfig(width=width, heads=heads, layers=layers, block=SEQ))
    model.reset_parameters(torch.Generator().manual_seed(seed))
    data = load_text(text)
    brief_training(model, data, steps, seed)
    gen = torch.Generator().manual_seed(seed + 1)
    starts = torch.randint(0, len(data) - SEQ - 1, (POINTS + TARGET,), generator=gen)
    x, _ = windows(data, SEQ, starts)  # (E + M, T)
    return make_item(model, x[:POINTS], x[POINTS:], seed + 2,
                     {"text": text, "width": width, "heads": heads, "layers": layers, "steps": steps, "seed": seed})


def save_item(path: Path, item: FisherItem) -> None:
    from safetensors.torch import save_file

    tensors = {f"n.{g}": item.neurons[g].contiguous() for g in GROUPS}
    tensors |= {f"p.{i}": t.contiguous() for i, t in enumerate(item.plain)}
    tensors |= {f"t.{i}": t.contiguous() for i, t in enumerate(item.target)}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata={"info": json.dumps(item.info)})
    os.replace(tmp, path)


def load_item(path: Path) -> FisherItem:
    from safetensors import safe_open

    with safe_open(str(path), framework="pt") as fh:
        info = json.loads(fh.metadata()["info"])
        t = {k: fh.get_tensor(k) for k in fh.keys()}
    n = sum(1 for k in t if k.startswith("p."))
    return FisherItem(TransformerNeurons(*(t[f"n.{g}"] for g in GROUPS)), [t[f"p.{i}"] for i in range(n)],
                      [t[f"t.{i}"] for i in range(n)], info)


def plan(split: str, n: int) -> list[tuple[str, tuple[int, int, int], int, int]]:
    """(text, size, training steps, seed) of each item of a split."""
    rng = random.Random({"train": 0, "val": 1, "test": 2}[split])
    if split == "test":  # every test text × size × {random init, 150 steps}
        return [(t, s, st, 1000 + i) for i, (t, s, st) in
                enumerate((t, s, st) for t in TEST_TEXTS for s in TEST_SIZES for st in (0, 150))]
    texts = TRAIN_TEXTS if split == "train" else VAL_TEXTS
    base = 0 if split == "train" else 500
    return [(rng.choice(texts), rng.choice(FAMILY), rng.choice(TRAIN_STEPS), base + i) for i in range(n)]


def items(split: str, n: int, log) -> list[FisherItem]:
    """The split's items, built once and cached (one file each)."""
    out = []
    for text, size, steps, seed in plan(split, n):
        name = f"{split}-{seed}-{text.replace('/', '_')}-{'x'.join(map(str, size))}-{steps}.safetensors"
        path = home() / "items" / name
        if not path.exists():
            t0 = time.process_time()
            save_item(path, build_item(text, size, steps, seed))
            log(f"{split} item {path.name}: {time.process_time() - t0:.1f} CPU-s")
        out.append(load_item(path))
    return out


def trained(args, train: list[FisherItem], val: list[FisherItem], alpha_only: bool, log
            ) -> tuple[TransformerFisherPredictor, dict]:
    """The predictor of these settings, trained once (resumed from its last checkpoint if interrupted).
    alpha_only: the control without gradient-set features, c = 0 (only the per-kind shrinkage α learns)."""
    tag = "-alpha" if alpha_only else ""
    run = home() / f"predictor{tag}-h{args.hidden}-l{args.layers}-n{args.train}-s{args.steps}-seed{args.seed}"
    final = run / "best.safetensors"
    if final.exists():
        return load_predictor(final)
    cfg = TransformerPredictorConfig(TransformerGMNConfig(hidden=args.hidden, layers=args.layers))
    torch.manual_seed(args.seed)
    model = TransformerFisherPredictor(cfg)
    last, start = run / "last.safetensors", 0
    if last.exists():  # resume: weights (and normalisation) of the last validation, the step from its card
        model, lcard = load_predictor(last)
        start = int(lcard["step"])
        model.train()
    if alpha_only:
        model.scale.requires_grad_(False)  # stays 0

    def checkpoint(m, step, best):
        save_predictor(last, m, {"step": step, **best})

    st = TrainSettings(steps=args.steps, lr=args.lr, seed=args.seed, val_every=max(args.steps // 12, 1))
    res = train_predictor(model, train, val, st, start_step=start, log=log, checkpoint=checkpoint)
    card = {"train_cpu_s": round(res["cpu_s"], 1), "best_step": res["best_step"], "best_val": res["best_val"],
            "plain_val": res["plain_val"], "resumed_at": start, "alpha_only": alpha_only}
    save_predictor(final, model, card)
    return model, card


def main(argv: list[str] | None = None) -> None:
    ap = argparse.ArgumentParser(prog=COMMAND, description=__doc__.splitlines()[0])
    ap.add_argument("--train", type=int, default=384, help="training transformers")
    ap.add_argument("--val", type=int, default=16)
    ap.add_argument("--steps", type=int, default=800, help="predictor training steps")
    ap.add_argument("--hidden", type=int, default=32)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--lr", type=float, default=2e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--no-write", action="store_true", help="print, do not write BENCHMARKS.md")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    log = print
    t0 = time.process_time()
    train, val, test = items("train", args.train, log), items("val", args.val, log), items("test", 0, log)
    data_cpu = time.process_time() - t0
    model, card = trained(args, train, val, False, log)
    control, ccard = trained(args, train, val, True, log)
    plain, pred, ctrl = evaluate(None, test), evaluate(model, test), evaluate(control, test)
    rows, groups = [], {}
    for it, p, q, c in zip(test, plain, pred, ctrl, strict=True):
        inf = it.info
        size = f"{inf['width']}w·{inf['heads']}h·{inf['layers']}L"
        for key in (("text", inf["text"]), ("size", size + (" (unseen)" if inf["width"] == 64 else "")),
                    ("training", f"{inf['steps']} steps"), ("all", "all test models")):
            groups.setdefault(key, []).append((p, q, c))
    for (kind, name), vals in groups.items():
        mp, mq, mc = (statistics.mean(v[i] for v in vals) for i in range(3))
        better = sum(v[1] < v[0] for v in vals)
        rows.append([kind, name, len(vals), f"{mp:.4f}", f"{mc:.4f} ({100 * (1 - mc / mp):+.1f}%)", f"{mq:.4f}",
                     f"{100 * (1 - mq / mp):+.1f}%", f"{better}/{len(vals)}"])
    sizes = []  # the same settings with other numbers of training transformers, where their runs are cached
    for n in (192, 384, 768):
        pa = {k: home() / f"predictor{t}-h{args.hidden}-l{args.layers}-n{n}-s{args.steps}-seed{args.seed}"
              / "best.safetensors" for k, t in (("pred", ""), ("ctrl", "-alpha"))}
        if n != args.train and all(p.exists() for p in pa.values()):
            ep, ec = (statistics.mean(evaluate(load_predictor(pa[k])[0], test)) for k in ("pred", "ctrl"))
            sizes.append(f"n = {n}: predictor {ep:.4f} ({100 * (1 - ep / statistics.mean(plain)):+.1f}% vs plain), "
                         f"α only {ec:.4f}, features {100 * (1 - ep / ec):+.1f}% over α only")
    order = {"all": 0, "text": 1, "size": 2, "training": 3}
    rows.sort(key=lambda r: order[r[0]])
    floor = statistics.mean(plain) * POINTS / TARGET
    body = f"""Task: from the gradient set of a byte-level GPT (gmn.transformer) at {POINTS} sequences of {SEQ} bytes
(labels sampled from the model), predict the diagonal of its Fisher information for every block weight and
bias (q, k, v, out, fc, proj); target: the same Fisher over {TARGET} independent sequences of the same text
(the reference). Metric: normalised MSE against the reference, per model the mean over its block tensors of
‖F̂ − F‖² / ‖F‖², then the mean over models. Plain estimator: mean over the {POINTS} sequences of the squared
per-sequence gradients (the same gradients the predictor reads). The reference's own sampling error is about
{floor:.4f} on this scale (plain error × {POINTS}/{TARGET}).

Predictor: TransformerGMN ({args.layers} layers × {args.hidden}, {model.num_parameters():,} parameters) with a
pair decoder, log F̂ = log s + (α + c₀) log(plain/s) + c₁ (gmn/transformer_curvature.py), trained on
{len(train)} transformers ({', '.join('·'.join(map(str, s)) for s in FAMILY)} as width·heads·blocks; random
init, 30 or 150 Adam steps) on the {len(TRAIN_TEXTS)} training texts; best of {args.steps} steps on
{len(val)} validation transformers (validation texts), step 0 (the plain estimator) included: best step
{card.get('best_step')}, validation {card.get('best_val', float('nan')):.4f} vs plain
{card.get('plain_val', float('nan')):.4f}. Test: the {len(TEST_TEXTS)} test texts ({', '.join(TEST_TEXTS)}),
none seen in training, × 3 sizes (64w·4h·2L outside the training family) × {{random init, 150 steps}}.

{table(['group', 'test models', 'n', 'plain nMSE', 'α only (control)', 'predictor nMSE', 'improvement',
        'predictor better'], rows)}

"α only": the same predictor trained with its decoder switched off (c = 0): only the per-kind power
α of the plain estimate is learned, no gradient-set features — what shrinkage alone buys
(validation {ccard.get('best_val', float('nan')):.4f}, best step {ccard.get('best_step')}). Over all test models the
gradient-set features take the error from {statistics.mean(ctrl):.4f} (α only) to {statistics.mean(pred):.4f}
({100 * (1 - statistics.mean(pred) / statistics.mean(ctrl)):+.1f}%); the predictor beats α only on
{sum(q < c for q, c in zip(pred, ctrl, strict=True))}/{len(test)} test models.
{"Other training-set sizes (same test models): " + "; ".join(sizes) + "." if sizes else ""}

Goal in issue 28: ≥ 15% lower error than the plain estimator. The paper's reported Fisher-diagonal
comparison (§7.1) is on INRs, as a relative improvement over the same plain estimator (GradMetaNet
13.7%, GradMetaNet++ 26.3%; ours on SIRENs: section "Curvature" above); this section is the transformer
counterpart at CPU size, not a reproduction of a paper figure.
CPU: data {data_cpu:.0f} CPU-s this run (cached items cost nothing), predictor training
{card.get('train_cpu_s', 0):.0f} CPU-s (one thread, a shared 2-core machine)."""
    print(body)
    if not args.no_write:
        write_section("transformer-curvature", "Curvature for transformers: Fisher diagonal from 16 sequences",
                      body, command=COMMAND + (" " + " ".join(sys.argv[1:]) if argv is None and sys.argv[1:] else ""))


if __name__ == "__main__":
    main()
