"""Curvature for transformers (paper §7.1, docs/DESIGN.md §13): predict the Fisher diagonal of a small
language model's block weights from its gradient set at a few sequences.

    F(θ) = E_x E_{y ~ p_θ(·|x)} [∇_θ ℓ(x, y)²],   ℓ(x, y) = Σ_t −log p_θ(y_t | x_≤t)

one example = one sequence of T tokens, labels sampled from the model (the Fisher of its predictive
distribution, not the empirical Fisher of the text's next bytes). From the gradient set
(`gmn.capture`, per map a: (E, T, d_in), g: (E, T, d_out)) a sequence's gradient is Σ_t g aᵀ, so

- `plain_fisher`: the plain estimator from the same gradients, mean_e (Σ_t g_e,t a_e,tᵀ)² per weight
  and mean_e (Σ_t g_e,t)² per bias, at the E input sequences;
- `reference_fisher`: the same over many independent sequences (the target; 512 in the bench);
- `TransformerFisherPredictor`: the SIREN predictor's output rule (gmn/curvature.py) on the transformer's
  maps, log F̂ = log s + (α + c₀) log r + c₁ with r = plain / s, s the tensor's mean plain value, α
  per map kind (q, k, v, o, fc1, fc2; weight or bias) and c a pair decoder of TransformerGMN's neuron
  embeddings (gmn/transformer_gmn.py): c[i, j] = p(z_i) + p'(z_j) + Σ_k u_k(z_i) v_k(z_j), bias c[i] = p_b(z_i),
  scaled by a learnable factor per map kind starting at 0, so an untrained predictor is exactly the
  plain estimator (up to the EPS floor of log r).
  It reads the maps of the blocks; the embeddings and the head keep the plain estimate. The key bias
  is left out everywhere: its gradient is exactly zero (it adds q·b_k to every score of a query, and the
  softmax ignores a constant), so its "Fisher" is rounding noise that a normalised error would amplify.
- Metric `nmse` (gmn/curvature.py): per model, the mean over the block tensors of ‖F̂ − F‖² / ‖F‖².
"""

from __future__ import annotations

import copy
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
from torch import Tensor, nn

from .capture import GradientSet, capture_gradient_set
from .curvature import LOG_MAX, log_ratio, nmse
from .transformer_gmn import (
    GROUPS,
    MAPS,
    TransformerGMN,
    TransformerGMNConfig,
    TransformerLayout,
    TransformerNeurons,
    neuron_features,
)

# (out group, in group) of each map's weight: rows, columns
MAP_GROUPS = {"q": ("qk", "res"), "k": ("qk", "res"), "v": ("vo", "res"), "o": ("res", "vo"),
              "fc1": ("mlp", "res"), "fc2": ("res", "mlp")}
PREDICTOR_FORMAT = "gmn-transformer-fisher-predictor"
# the predictor bench/transformer_curvature.py trained (its card: assets/curvature/fisher-gpt.json)
SHIPPED = Path(__file__).resolve().parent.parent / "assets" / "curvature" / "fisher-gpt.safetensors"
SEQ, POINTS, TARGET = 32, 16, 512  # the shipped predictor's sequence length, input and reference sequences

# Fisher from gradient sets


def sampled_label_loss(generator: torch.Generator):
    """Per-sequence loss Σ_t −log p(y_t) with y_t drawn from the model's own softmax (E,)."""
    def loss(logits: Tensor, _targets) -> Tensor:
        e, t, v = logits.shape
        probs = logits.detach().double().softmax(-1).reshape(-1, v)
        y = torch.multinomial(probs, 1, generator=generator).view(e, t)
        ce = nn.functional.cross_entropy(logits.reshape(-1, v), y.reshape(-1), reduction="none")
        return ce.view(e, t).sum(1)
    return loss


def fisher_gradient_set(model: nn.Module, x: Tensor, generator: torch.Generator) -> GradientSet:
    """Gradient set of E sequences x (E, T) with labels sampled from the model."""
    return capture_gradient_set(model, sampled_label_loss(generator), x)


def _tensors(layout: TransformerLayout) -> list[tuple[str, str, str]]:
    """(map kind, map name, "weight" | "bias") of the predicted tensors, in order (no key bias)."""
    return [(m, n, p) for blk in layout.blocks for m, n in zip(MAPS, blk.names(), strict=True)
            for p in ("weight", "bias") if (m, p) != ("k", "bias")]


def plain_fisher(gs: GradientSet, layout: TransformerLayout) -> list[Tensor]:
    """mean_e of the squared per-sequence gradients of every block map, in `tensor_names` order:
    per block and map, weight (d_out, d_in) then bias (d_out,), the key bias left out (module doc)."""
    out = []
    for _, name, p in _tensors(layout):
        gw, gb = gs.per_example_grads(name)
        out.append((gw if p == "weight" else gb).pow(2).mean(0))
    return out


def tensor_names(layout: TransformerLayout) -> list[str]:
    """Parameter names of the predicted tensors (weights and biases of the block maps but the key bias)."""
    return [f"{n}.{p}" for _, n, p in _tensors(layout)]


def reference_fisher(model: nn.Module, layout: TransformerLayout, x: Tensor, generator: torch.Generator,
                     *, chunk: int = 64) -> list[Tensor]:
    """The plain estimator over many sequences x (M, T), in chunks: the target Fisher diagonal."""
    total, m = None, x.shape[0]
    for s in range(0, m, chunk):
        part = plain_fisher(fisher_gradient_set(model, x[s : s + chunk], generator), layout)
        w = x[s : s + chunk].shape[0]
        total = [p * w for p in part] if total is None else [a + p * w for a, p in zip(total, part, strict=True)]
    return [t / m for t in total]


@dataclass
class FisherItem:
    """One transformer's input and target: neuron features, plain estimate at E sequences, the
    reference over M sequences, and what it is (text, sizes, training steps)."""

    neurons: TransformerNeurons
    plain: list[Tensor]
    target: list[Tensor]
    info: dict


def make_item(model: nn.Module, x: Tensor, xt: Tensor, seed: int, info: dict | None = None) -> FisherItem:
    """Gradient set at x (E, T) and reference Fisher at xt (M, T) of a gmn.transformer.GPT (float32)."""
    layout = TransformerLayout.for_gpt(model)
    gen = torch.Generator().manual_seed(seed)
    gs = fisher_gradient_set(model, x, gen)
    params = {k: p.detach() for k, p in model.named_parameters()}
    with torch.no_grad():
        neurons = neuron_features(gs, params, layout)
    plain = [t.detach() for t in plain_fisher(gs, layout)]
    target = [t.detach() for t in reference_fisher(model, layout, xt, gen)]
    return FisherItem(neurons, plain, target, dict(info or {}))


# predictor


@dataclass
class TransformerPredictorConfig:
    """The Fisher predictor for transformers: its TransformerGMN and decoder sizes."""

    gmn: TransformerGMNConfig
    rank: int = 4
    out_scale: float = 0.0  # the decoder's learnable output scale starts at 0: untrained = plain estimator

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> TransformerPredictorConfig:
        return cls(TransformerGMNConfig(**d["gmn"]), int(d["rank"]), float(d["out_scale"]))


class PairDecoder(nn.Module):
    """Two channels per weight entry from its row and column neurons (z_out (.., n, h), z_in (.., m, h)):
    p(z_i) + p'(z_j) + Σ_k u_k(z_i) v_k(z_j) -> (.., n, m, 2); bias channels from the row neuron (.., n, 2)."""

    def __init__(self, hidden: int, rank: int):
        super().__init__()
        self.rank = rank
        self.p_out, self.p_bias = nn.Linear(hidden, 2), nn.Linear(hidden, 2)
        self.p_in = nn.Linear(hidden, 2, bias=False)
        self.u, self.v = nn.Linear(hidden, 2 * rank, bias=False), nn.Linear(hidden, 2 * rank, bias=False)

    def forward(self, z_out: Tensor, z_in: Tensor) -> tuple[Tensor, Tensor]:
        u = self.u(z_out).unflatten(-1, (2, self.rank))  # (.., n, 2, k)
        v = self.v(z_in).unflatten(-1, (2, self.rank))  # (.., m, 2, k)
        w = self.p_out(z_out).unsqueeze(-2) + self.p_in(z_in).unsqueeze(-3)  # (.., n, m, 2)
        w = w + torch.einsum("...ick,...jck->...ijc", u, v)
        return w, self.p_bias(z_out)


class TransformerFisherPredictor(nn.Module):
    """log F̂ = log s + (α + c₀) log r + c₁ for every block tensor (module doc)."""

    def __init__(self, config: TransformerPredictorConfig):
        super().__init__()
        self.config = config
        self.gmn = TransformerGMN(config.gmn)
        self.decoders = nn.ModuleDict({m: PairDecoder(config.gmn.hidden, config.rank) for m in MAPS})
        self.alpha = nn.Parameter(torch.ones(len(MAPS), 2))  # per map kind: weight, bias
        self.scale = nn.Parameter(torch.full((len(MAPS), 2), config.out_scale))

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def forward(self, neurons: TransformerNeurons, plain: list[Tensor]) -> list[Tensor]:
        """neurons of N = 1 transformer and its plain estimate (tensor_names order) -> predicted Fisher."""
        z = self.gmn(neurons)
        flat = {g: z[g].flatten(2, 3) if g in ("qk", "vo") else z[g] for g in GROUPS}  # (1, L, n_g, h)
        scales, logr = log_ratio([p.unsqueeze(0) for p in plain])
        out, i = [], 0
        for blk in range(flat["res"].shape[1]):
            for k, m in enumerate(MAPS):
                rows, cols = MAP_GROUPS[m]
                cw, cb = self.decoders[m](flat[rows][:, blk], flat[cols][:, blk])  # (1, n, m, 2), (1, n, 2)
                for j, c in enumerate((cw, cb) if m != "k" else (cw,)):  # no key bias (module doc)
                    c = c * self.scale[k, j]
                    zlog = (self.alpha[k, j] + c[..., 0]) * logr[i] + c[..., 1]
                    out.append((scales[i] * zlog.clamp(-LOG_MAX, LOG_MAX).exp())[0])
                    i += 1
        return out


def item_nmse(pred: list[Tensor], target: list[Tensor]) -> Tensor:
    """Normalised MSE of one model (scalar): the mean over its block tensors (gmn.curvature.nmse)."""
    return nmse([p.unsqueeze(0) for p in pred], [t.unsqueeze(0) for t in target])[0]


def evaluate(model: TransformerFisherPredictor | None, items: list[FisherItem]) -> list[float]:
    """Per item nMSE of the predictor (None: the plain estimator)."""
    out = []
    with torch.no_grad():
        for it in items:
            pred = it.plain if model is None else model(it.neurons, it.plain)
            out.append(item_nmse(pred, it.target).item())
    return out


@dataclass
class TrainSettings:
    steps: int = 600
    batch: int = 4  # items per step
    lr: float = 2e-3
    val_every: int = 50
    seed: int = 0


def train_predictor(model: TransformerFisherPredictor, train: list[FisherItem], val: list[FisherItem],
                    settings: TrainSettings, *, start_step: int = 0, log=None, checkpoint=None) -> dict:
    """AdamW on the mean nMSE over `batch` items per step (one-cycle lr over all steps); keeps the
    best-validation state (the plain estimator, step 0, included). `checkpoint(model, step, best)` is
    called at every validation, so a run can resume from its last checkpoint (`start_step`)."""
    st = settings
    gen = torch.Generator().manual_seed(st.seed + start_step)
    if start_step == 0:
        model.gmn.fit_norm([it.neurons for it in train])
    opt = torch.optim.AdamW(model.parameters(), lr=st.lr, weight_decay=0.0)
    sched = torch.optim.lr_scheduler.OneCycleLR(opt, max_lr=st.lr, total_steps=max(st.steps, 1), pct_start=0.1)
    for _ in range(start_step):
        sched.step()
    t0 = time.process_time()
    plain_val = sum(evaluate(None, val)) / len(val)
    best_val = sum(evaluate(model, val)) / len(val)
    best_state, best_step, history = copy.deepcopy(model.state_dict()), start_step, [(start_step, None, best_val)]
    running = []
    for step in range(start_step + 1, st.steps + 1):
        idx = torch.randint(0, len(train), (st.batch,), generator=gen)
        loss = torch.stack([item_nmse(model(train[i].neurons, train[i].plain), train[i].target) for i in idx]).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        nn.utils.clip_grad_norm_(model.parameters(), 1.0)
        opt.step()
        sched.step()
        running.append(loss.item())
        if step % st.val_every == 0 or step == st.steps:
            v = sum(evaluate(model, val)) / len(val)
            history.append((step, sum(running) / len(running), v))
            running = []
            if v < best_val:
                best_val, best_step, best_state = v, step, copy.deepcopy(model.state_dict())
            if log:
                log(f"step {step}: train {history[-1][1]:.4f} val {v:.4f} (plain {plain_val:.4f}; best {best_val:.4f}"
                    f" @ {best_step})")
            if checkpoint:
                checkpoint(model, step, {"best_val": best_val, "best_step": best_step, "plain_val": plain_val})
    model.load_state_dict(best_state)
    model.eval()
    return {"best_val": best_val, "best_step": best_step, "plain_val": plain_val, "history": history,
            "cpu_s": time.process_time() - t0}


def save_predictor(path, model: TransformerFisherPredictor, card: dict | None = None) -> None:
    """Weights as safetensors with config and card (gmn.modelfile), atomic."""
    from .modelfile import save_module

    save_module(path, model, PREDICTOR_FORMAT, model.config.to_dict(),
                {"parameters": model.num_parameters(), **(card or {})})


def load_predictor(path) -> tuple[TransformerFisherPredictor, dict]:
    """(predictor in eval mode, card); ValueError with one line on a bad file. Never unpickles."""
    from .modelfile import load_module

    return load_module(path, PREDICTOR_FORMAT, "transformer Fisher predictor", ValueError,
                       lambda config: TransformerFisherPredictor(TransformerPredictorConfig.from_dict(config)))



# `python -m gmn curvature --gpt TEXTFILE` (docs/DESIGN.md §13)


def tensor_errors(pred: list[Tensor], target: list[Tensor]) -> list[float]:
    """‖F̂_t − F_t‖² / ‖F_t‖² of every tensor t (the terms `item_nmse` averages)."""
    return [((p - t).pow(2).sum() / t.pow(2).sum().clamp_min(1e-30)).item() for p, t in zip(pred, target, strict=True)]


def kind_errors(layout: TransformerLayout, pred: list[Tensor], target: list[Tensor]) -> dict[str, float]:
    """Mean normalised error per map kind (over its weights and biases in every block), and "total": the
    mean over all block tensors (= `item_nmse`)."""
    errs = tensor_errors(pred, target)
    kinds = [m for m, _, _ in _tensors(layout)]
    out = {m: sum(e for e, k in zip(errs, kinds, strict=True) if k == m) / kinds.count(m) for m in MAPS}
    return out | {"total": sum(errs) / len(errs)}


def compare_on_text(text: Tensor, config, *, steps: int, seed: int, predictor: TransformerFisherPredictor | None,
                    sequences: int = POINTS, reference: int = TARGET, lr: float = 3e-3, batch: int = 16) -> dict:
    """Train a gmn.transformer.GPT (`config`, seeded init) for `steps` Adam steps (lr, batch × SEQ bytes) on the
    first 90% of `text` (int64 bytes (n,)); on the held-out last 10%, take the gradient set of `sequences`
    random sequences and the reference Fisher over `reference` more (labels sampled from the model). Returns
    {"plain": kind_errors, "predictor": kind_errors | None, "train_loss": last batch loss, "cpu_s": ...}."""
    from .transformer import GPT, batches, lm_loss, split_text, windows

    t0 = time.process_time()
    train, val = split_text(text)
    if len(train) < 2 or len(val) < 2:
        raise ValueError(f"the text has {len(text)} bytes; it needs at least 20 (90% training, 10% held out)")
    torch.manual_seed(seed)
    model = GPT(config)
    model.reset_parameters(torch.Generator().manual_seed(seed))
    loss = float("nan")
    if steps > 0:
        opt = torch.optim.Adam(model.parameters(), lr=lr)
        it = batches(train, config.block, batch, torch.Generator().manual_seed(seed + 1))
        for _ in range(steps):
            x, y = next(it)
            step_loss = lm_loss(model(x), y)
            opt.zero_grad(set_to_none=True)
            step_loss.backward()
            opt.step()
            loss = step_loss.item()
    T = min(config.block, len(val) - 1)
    starts = torch.randint(0, len(val) - T, (sequences + reference,), generator=torch.Generator().manual_seed(seed + 2))
    x, _ = windows(val, config.block, starts)  # (E + M, T)
    item = make_item(model, x[:sequences], x[sequences:], seed + 3)
    layout = TransformerLayout.for_gpt(model)
    pred = None
    if predictor is not None:
        with torch.no_grad():
            pred = kind_errors(layout, predictor(item.neurons, item.plain), item.target)
    return {"plain": kind_errors(layout, item.plain, item.target), "predictor": pred, "train_loss": loss,
            "cpu_s": time.process_time() - t0}
