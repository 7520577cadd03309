"""Meta-learned initialisations for SIRENs (Reptile, Nichol et al. 2018; for INRs see Tancik et al.
2021, "Learned initializations for optimizing coordinate-based neural representations").

    python -m inr metainit --dataset tiles --out init.safetensors --minutes 3 --inner-steps 50 --outer-lr 0.05

One SIREN φ, shared by every image. Each outer step fits `batch` training images from φ for
`inner_steps` steps of Adam (the fitting recipe's optimizer and lr, so the inner loop is the fit a
user runs) and moves φ towards their mean result: φ ← φ + ε (mean θ_i − φ), ε decaying linearly
from `outer_lr` to 0 over the budget. The images of a batch are fitted together (stacked), so an
outer step costs one batched fit of `inner_steps` steps.

The result is saved as an ordinary one-INR file (`inr.files.save_inr`, metadata `source: reptile`
and the config), atomically, with a resume state next to it (`.state.safetensors`: φ, the step
and the elapsed CPU time), so a killed run continues where it stopped. The budget is process
CPU time (fair when other jobs share the machine) or a number of outer steps.

Whether it pays is measured, not assumed: `python -m bench.fitting` (BENCHMARKS.md, "Fitting
speed at practical targets") times fits from it against tuned Adam from SirenNet's random
initialisation, and checks that the shipped editors still edit the INRs it produces.
"""

from __future__ import annotations

import json
import os
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch

from .datasets import load_dataset
from .fit import fit
from .siren import Params, SirenArch, init_params

SAVE_EVERY = 25  # outer steps between resume states


@dataclass
class MetaInitConfig:
    out: str
    dataset: str = "tiles"
    hidden: int = 32
    layers: int = 2
    inner_steps: int = 20
    inner_lr: float = 3e-3  # the fitting recipes' Adam lr
    batch: int = 16
    outer_lr: float = 0.5
    outer_steps: int | None = None
    minutes: float | None = 10.0  # process CPU minutes
    seed: int = 0
    limit: int | None = None  # first `limit` training images (tests)
    # keep φ's first layer at SirenNet's random draw (the inner loops still train it): averaging the inner
    # fits shrinks it (std 0.29 → 0.10 in 2 CPU-min at outer lr 0.5), i.e. lowers the SIREN's frequencies
    freeze_first: bool = False

    def budget_progress(self, step: int, elapsed: float) -> float:
        """Fraction of the budget used (0..1): by outer steps if given, else by CPU time."""
        if self.outer_steps is not None:
            return step / max(self.outer_steps, 1)
        return elapsed / max((self.minutes or 0) * 60, 1e-9)


def _state_path(out: Path) -> Path:
    return out.with_name(out.stem + ".state.safetensors")


def _save(path: Path, phi: Params, arch: SirenArch, meta: dict) -> None:
    from safetensors.torch import save_file

    tensors = {name: t.detach().float().contiguous() for name, t in zip(arch.param_names(), phi)}
    tmp = path.with_name(f".{path.name}.tmp")
    save_file(tensors, str(tmp), metadata={k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()})
    os.replace(tmp, path)


def metatrain_init(cfg: MetaInitConfig, *, log=print) -> dict:
    """Run (or resume) Reptile; writes cfg.out (the init as an INR file) and returns a summary."""
    from .files import save_inr

    out = Path(cfg.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    images = load_dataset(cfg.dataset, "train")
    if cfg.limit is not None:
        images = images[: cfg.limit]
    arch = SirenArch(hidden=cfg.hidden, layers=cfg.layers, dim_out=images.shape[-1])
    phi = init_params(arch, 1, generator=torch.Generator().manual_seed(cfg.seed))
    step, elapsed, history = 0, 0.0, []
    state = _state_path(out)
    if state.exists():
        from safetensors import safe_open

        with safe_open(str(state), framework="pt") as fh:
            meta = fh.metadata()
            phi = [fh.get_tensor(name) for name in arch.param_names()]
        step, elapsed, history = int(meta["step"]), float(meta["elapsed"]), json.loads(meta["history"])
        log(f"resumed Reptile at outer step {step} ({elapsed / 60:.1f} CPU-min)")
    t_cpu = time.process_time()
    while cfg.budget_progress(step, elapsed) < 1.0:
        gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
        idx = torch.randint(len(images), (cfg.batch,), generator=gen)
        start = [t.expand(cfg.batch, *t.shape[1:]).clone() for t in phi]
        res = fit(images[idx], arch, steps=cfg.inner_steps, lr=cfg.inner_lr, init=start, seed=step)
        eps = cfg.outer_lr * (1.0 - cfg.budget_progress(step, elapsed))
        frozen = 2 if cfg.freeze_first else 0  # the first layer's weight and bias
        phi = [p if k < frozen else p + eps * (r.mean(0, keepdim=True) - p)
               for k, (p, r) in enumerate(zip(phi, res.params))]
        step += 1
        now = time.process_time()
        elapsed += now - t_cpu
        t_cpu = now
        if step % SAVE_EVERY == 0:
            history.append({"step": step, "elapsed": round(elapsed, 1), "inner_psnr": round(res.psnr.mean().item(), 3)})
            _save(state, phi, arch, {"step": str(step), "elapsed": str(elapsed), "history": json.dumps(history)})
            log(f"outer step {step}: {res.psnr.mean().item():.2f} dB after {cfg.inner_steps} inner steps, "
                f"{elapsed / 60:.1f} CPU-min")
    summary = {"outer_steps": step, "cpu_minutes": round(elapsed / 60, 2), "history": history,
               "config": asdict(cfg), "date": time.strftime("%Y-%m-%d")}
    save_inr(out, phi, arch, source="reptile", image_size=list(images.shape[1:3]), metainit=summary)
    _save(state, phi, arch, {"step": str(step), "elapsed": str(elapsed), "history": json.dumps(history)})
    return summary


def load_init(path: str | os.PathLike, n: int, arch: SirenArch) -> Params:
    """The init of an `inr metainit` file, repeated for n INRs of `arch` (which must match it)."""
    from .errors import InrError
    from .files import load_inr

    inr = load_inr(path, allow_stack=False)
    if (inr.arch.hidden, inr.arch.layers, inr.arch.dim_out) != (arch.hidden, arch.layers, arch.dim_out):
        raise InrError(f"{Path(path).name} initialises {'→'.join(map(str, inr.arch.dims))} SIRENs, "
                       f"not {'→'.join(map(str, arch.dims))}")
    return [t.expand(n, *t.shape[1:]).clone() for t in inr.params]
