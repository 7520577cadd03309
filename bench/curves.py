"""Learning curves of the shipped editors: validation MSE against training steps, one panel per editor.

    python -m bench.curves        # bench/figures/learning_curves.png and the `curves` section; seconds

The curve of an editor is the `history` of its card (cards written by `gmn train` carry it) or, for cards
older than that, the `log.jsonl` of the run folder its card names (`train_config.out`) when that folder is
still on this machine. Editors with neither are listed as such: their curve was not kept.
"""

from __future__ import annotations

import json

from bench.report import ROOT, table, write_section
from inr.home import in_home

FIGURE = ROOT / "bench" / "figures" / "learning_curves.png"


def curve_of(card: dict) -> tuple[list[dict], str] | tuple[None, str]:
    """[{step, minutes, val}] and where it came from."""
    if card.get("history"):
        return card["history"], "card"
    out = card.get("train_config", {}).get("out")
    if out:
        log = in_home(out) if in_home(out).exists() else ROOT / out  # the data home, else the repo
        log = log / "log.jsonl"
        if log.exists():
            rows = [json.loads(line) for line in log.read_text().splitlines() if line.strip()]
            return [{"step": r["step"], "minutes": round(r["elapsed"] / 60, 2), "val": r["val"]} for r in rows], \
                f"`{out}/log.jsonl`"
    return None, "not kept (trained before cards carried their curve; its run folder is gone)"


def segments(card: dict) -> list[tuple[int, int, list[dict] | None]]:
    """(rounds, steps, curve) of every run behind an editor, the first run first, as far as those run folders
    are on this machine (`gmn.train.init_chain`; a clean clone has only the shipped card's curve)."""
    from gmn.train import init_chain

    up = (card.get("init") or {}).get("path") or (card.get("train_config") or {}).get("init")
    before = init_chain(up) if up and (in_home(up).exists() or (ROOT / up).exists()) else []
    return [((c.get("config") or {}).get("rounds", 1), c.get("metrics", {}).get("steps") or 0, curve_of(c)[0])
            for c in [*(c for _, c in before), card]]


def _start(card: dict) -> int:
    """Steps of the run a fine-tuned editor started from (0 for one trained from scratch)."""
    return int((card.get("init") or {}).get("steps") or 0)


def _plus(start: int, before, own):
    """A table cell of a fine-tuned editor: the starting run's share, then its own ("9445 + 2272")."""
    return f"{before} + {own}" if start else own


def main() -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cards = {p.stem: json.loads(p.read_text()) for p in sorted((ROOT / "assets" / "editors").glob("*.json"))}
    curves = {name: curve_of(card) for name, card in cards.items()}
    drawn = [n for n, (c, _) in curves.items() if c]
    cols = 3
    rows_n = max(1, (len(drawn) + cols - 1) // cols)
    fig, axes = plt.subplots(rows_n, cols, figsize=(4.2 * cols, 3.0 * rows_n), squeeze=False)
    for ax, name in zip(axes.flat, drawn):
        c, _ = curves[name]
        card = cards[name]
        start = _start(card)  # a fine-tuned editor's curve continues the runs it started from
        parts = segments(card)
        offset = start - sum(steps for _, steps, _ in parts[:-1])
        for rounds, steps, run_curve in parts:  # the earlier runs where their folders are kept, then its own
            if run_curve:
                ax.plot([offset + h["step"] for h in run_curve], [h["val"] for h in run_curve], "o-", ms=3,
                        label=f"{rounds} round{'s' if rounds > 1 else ''}")
            offset += steps
        if len(parts) > 1:
            ax.legend(fontsize=7)
        best = min(c, key=lambda h: h["val"])
        ax.axvline(start + best["step"], color="0.7", ls="--", lw=1)
        ax.set_yscale("log")
        tuned = f", tuned from {start}" if start else ""
        ax.set_title(f"{name} ({card.get('editor')}, {card.get('data', {}).get('dataset')}{tuned})", fontsize=9)
        ax.set_xlabel("training step", fontsize=8)
        ax.set_ylabel("validation MSE", fontsize=8)
        ax.tick_params(labelsize=7)
    for ax in list(axes.flat)[len(drawn):]:
        ax.axis("off")
    fig.tight_layout()
    FIGURE.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(FIGURE, dpi=110)
    body = []
    for name, (c, src) in curves.items():
        card = cards[name]
        m = card.get("metrics", {})
        start, init = _start(card), card.get("init") or {}
        body.append([f"`{name}`", card.get("editor"), card.get("data", {}).get("dataset"),
                     f"{m.get('val_mse', float('nan')):.3e}", _plus(start, start, m.get("best_step")),
                     _plus(start, start, m.get("steps")),
                     _plus(start, init.get("training_minutes"), card.get("training_minutes")),
                     len(c) if c else 0, src])
    text = ("Validation MSE (the editor's validation split, clamped render, the metric of its card) against "
            "training steps for every shipped editor whose curve was kept; the dashed line is the best step, the "
            "checkpoint that ships. A fine-tuned editor's steps and CPU-minutes are the runs it started from plus its "
            "own; its panel draws those runs' curves too where their run folders are on this machine."
            "\n\n![learning curves](bench/figures/learning_curves.png)\n\n"
            + table(["editor", "kind", "data", "best val MSE", "best step", "steps", "CPU-min", "points", "curve from"],
                    body))
    write_section("curves", "Editors: learning curves", text, command="python -m bench.curves")


if __name__ == "__main__":
    main()
