"""A small decoder-only GPT and character-level text data that every machine has (docs/DESIGN.md §7).

    model = GPT(GPTConfig(width=48, heads=4, layers=2))
    data = load_text(TEST_TEXTS[0])                    # (n,) int64 bytes 0..255
    train, val = split_text(data)                      # first 90% / last 10%
    x, y = next(batches(train, 64, 16, torch.Generator().manual_seed(0)))  # (16, 64) each
    logits = model(x)                                  # (16, 64, 256)

Every weight that multiplies activations is an `nn.Linear` (separate q, k, v and out projections,
the MLP's fc and proj, the head), so `gmn.capture` sees the whole model's gradient set as rank-1
terms. Vocabulary: the 256 byte values, so any file is a text. Initialisation as nanoGPT:
N(0, 0.02) weights, zero biases, LayerNorm at (1, 0).

Texts (fixed, documented, disjoint): `TRAIN_TEXTS` meta-train the learned optimizer,
`VAL_TEXTS` tune Adam's lr and select meta-training checkpoints, `TEST_TEXTS` are only used
by the benchmark. Names are "stdlib/<path>" (the system Python's standard library source under
/usr/lib/python3.X, else this interpreter's) or "licenses/<name>" (/usr/share/common-licenses).
"""

from __future__ import annotations

import glob
import math
import sysconfig
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import Tensor, nn

VOCAB = 256

TRAIN_TEXTS = (
    "stdlib/argparse.py", "stdlib/typing.py", "stdlib/inspect.py", "stdlib/dataclasses.py",
    "stdlib/difflib.py", "stdlib/statistics.py", "stdlib/http/client.py", "stdlib/email/message.py",
    "stdlib/textwrap.py", "licenses/GPL-3", "licenses/Apache-2.0", "licenses/MPL-2.0",
    "licenses/LGPL-2.1", "licenses/GFDL-1.3",
)
VAL_TEXTS = ("stdlib/calendar.py", "stdlib/fractions.py", "licenses/MPL-1.1")
TEST_TEXTS = ("stdlib/configparser.py", "stdlib/pathlib.py", "stdlib/shutil.py", "licenses/LGPL-2")


# config and model


@dataclass
class GPTConfig:
    """A decoder-only transformer: `layers` blocks of width `width` with `heads` heads."""

    width: int = 48
    heads: int = 4
    layers: int = 2
    block: int = 64  # context length (tokens)
    mlp_ratio: int = 4
    vocab: int = VOCAB

    def __post_init__(self) -> None:
        if self.width % self.heads:
            raise ValueError(f"width {self.width} is not divisible by heads {self.heads}")

    def to_dict(self) -> dict:
        return asdict(self)


class CausalSelfAttention(nn.Module):
    """Multi-head causal self-attention with separate q, k, v and out projections."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.heads = cfg.heads
        self.q = nn.Linear(cfg.width, cfg.width)
        self.k = nn.Linear(cfg.width, cfg.width)
        self.v = nn.Linear(cfg.width, cfg.width)
        self.out = nn.Linear(cfg.width, cfg.width)

    def forward(self, x: Tensor) -> Tensor:
        B, T, C = x.shape
        h = self.heads
        q, k, v = (lin(x).view(B, T, h, C // h).transpose(1, 2) for lin in (self.q, self.k, self.v))  # (B, h, T, c)
        y = F.scaled_dot_product_attention(q, k, v, is_causal=True)  # (B, h, T, c)
        return self.out(y.transpose(1, 2).reshape(B, T, C))


class MLP(nn.Module):
    """fc -> GELU -> proj."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.fc = nn.Linear(cfg.width, cfg.mlp_ratio * cfg.width)
        self.proj = nn.Linear(cfg.mlp_ratio * cfg.width, cfg.width)

    def forward(self, x: Tensor) -> Tensor:
        return self.proj(F.gelu(self.fc(x)))


class Block(nn.Module):
    """Pre-norm transformer block: x + attn(ln(x)), then x + mlp(ln(x))."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.ln1 = nn.LayerNorm(cfg.width)
        self.attn = CausalSelfAttention(cfg)
        self.ln2 = nn.LayerNorm(cfg.width)
        self.mlp = MLP(cfg)

    def forward(self, x: Tensor) -> Tensor:
        x = x + self.attn(self.ln1(x))
        return x + self.mlp(self.ln2(x))


class GPT(nn.Module):
    """Token + position embedding, `layers` blocks, final LayerNorm, linear head to byte logits."""

    def __init__(self, cfg: GPTConfig):
        super().__init__()
        self.config = cfg
        self.tok = nn.Embedding(cfg.vocab, cfg.width)
        self.pos = nn.Embedding(cfg.block, cfg.width)
        self.blocks = nn.ModuleList([Block(cfg) for _ in range(cfg.layers)])
        self.ln = nn.LayerNorm(cfg.width)
        self.head = nn.Linear(cfg.width, cfg.vocab)
        self.reset_parameters()

    @torch.no_grad()
    def reset_parameters(self, generator: torch.Generator | None = None) -> None:
        """nanoGPT's initialisation, drawn from `generator` (reproducible per seed)."""
        for mod in self.modules():
            if isinstance(mod, (nn.Linear, nn.Embedding)):
                mod.weight.copy_(torch.randn(mod.weight.shape, generator=generator) * 0.02)
                if getattr(mod, "bias", None) is not None:
                    mod.bias.zero_()
            elif isinstance(mod, nn.LayerNorm):
                mod.weight.fill_(1.0)
                mod.bias.zero_()

    def forward(self, idx: Tensor) -> Tensor:
        """idx: (B, T) int64 bytes, T <= block. Returns logits (B, T, vocab)."""
        B, T = idx.shape
        if T > self.config.block:
            raise ValueError(f"sequence of {T} tokens is longer than the context of {self.config.block}")
        x = self.tok(idx) + self.pos(torch.arange(T, device=idx.device))  # (B, T, C)
        for blk in self.blocks:
            x = blk(x)
        return self.head(self.ln(x))  # (B, T, vocab)


def lm_loss(logits: Tensor, targets: Tensor) -> Tensor:
    """Mean next-byte cross-entropy (nats per token). logits (B, T, V), targets (B, T)."""
    return F.cross_entropy(logits.reshape(-1, logits.shape[-1]), targets.reshape(-1))


# data


def _roots() -> dict[str, Path]:
    system = sorted(glob.glob("/usr/lib/python3.[0-9]*"), key=lambda p: [int(s) for s in p.rsplit("python", 1)[1]
                                                                           .split(".") if s.isdigit()])
    stdlib = Path(system[-1]) if system else Path(sysconfig.get_paths()["stdlib"])
    return {"stdlib": stdlib, "licenses": Path("/usr/share/common-licenses")}


def text_path(name: str) -> Path:
    """Path of a named text ("stdlib/..." or "licenses/...") or of any file path given as is."""
    root, _, rest = name.partition("/")
    roots = _roots()
    return roots[root] / rest if root in roots and rest else Path(name)


def load_text(name: str | Path) -> Tensor:
    """The bytes of a text (a name from the lists above or a file path) as an int64 tensor (n,)."""
    path = text_path(str(name))
    if not path.is_file():
        raise FileNotFoundError(f"no text file {path}")
    raw = path.read_bytes()
    if len(raw) < 2:
        raise ValueError(f"{path} has {len(raw)} bytes; a text needs at least 2")
    return torch.frombuffer(bytearray(raw), dtype=torch.uint8).long()


def split_text(data: Tensor, val_fraction: float = 0.1) -> tuple[Tensor, Tensor]:
    """(train, val): the first 1 − val_fraction of the bytes and the rest (a contiguous held-out tail)."""
    cut = int(math.floor(len(data) * (1 - val_fraction)))
    return data[:cut], data[cut:]


def windows(data: Tensor, block: int, starts: Tensor) -> tuple[Tensor, Tensor]:
    """Inputs and next-byte targets at `starts` (B,): x, y (B, T) with T = min(block, len(data) − 1)."""
    T = min(block, len(data) - 1)
    offs = starts[:, None] + torch.arange(T)  # (B, T)
    return data[offs], data[offs + 1]


def batches(text: Tensor, block: int, batch: int, generator: torch.Generator | None = None
            ) -> Iterator[tuple[Tensor, Tensor]]:
    """Endless random minibatches of `batch` windows of `block` bytes: yields x, y (batch, T) int64."""
    T = min(block, len(text) - 1)
    if T < 1:
        raise ValueError(f"a text of {len(text)} bytes has no (input, target) pair")
    while True:
        starts = torch.randint(0, len(text) - T, (batch,), generator=generator)
        yield windows(text, block, starts)
