"""One file format for everything gmn ships (editors, learned optimizers, Fisher predictors):
safetensors weights with {format, version, config, card} metadata and the card as JSON beside it,
written atomically; read back without unpickling, every problem a one-line error."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from torch import nn


def save_module(path: str | os.PathLike, module: nn.Module, fmt: str, config: dict, card: dict) -> None:
    """module's state dict -> path (metadata: format, config, card); card (+ config) -> path.json. Atomic."""
    from safetensors.torch import save_file

    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    meta = {"format": fmt, "version": "1", "config": json.dumps(config), "card": json.dumps(card)}
    tensors = {k: v.detach().cpu().contiguous() for k, v in module.state_dict().items()}
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file(tensors, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)
    card_path = path.with_suffix(".json")
    tmp = card_path.with_name(f".{card_path.name}.{os.getpid()}.tmp")
    tmp.write_text(json.dumps({"config": config, **card}, indent=2) + "\n")
    os.replace(tmp, card_path)


def read_module(path: str | os.PathLike, fmt: str, what: str, error: type[Exception]) -> tuple[dict, dict, dict]:
    """(config, card, tensors) of a file written by `save_module` with format `fmt`; `error(one line)`
    for anything else (`what` names the kind of file in the message)."""
    from safetensors import safe_open

    path = Path(path)
    if not path.is_file():
        raise error(f"no {what} file {path}")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as e:  # malformed header or not safetensors at all
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise error(f"{path.name} is not a valid {what} file ({reason})") from None
    if meta.get("format") != fmt:
        raise error(f"{path.name} is not a {what} file (format {meta.get('format')!r})")
    try:
        return json.loads(meta["config"]), json.loads(meta.get("card", "{}")), tensors
    except (KeyError, ValueError, TypeError) as e:
        raise error(f"{path.name} has malformed {what} metadata: {e}") from None


def load_module(path: str | os.PathLike, fmt: str, what: str, error: type[Exception],
                build: Callable[[dict], nn.Module]) -> tuple[nn.Module, dict]:
    """(module in eval mode, card): `read_module`, then `build(config)` and its weights; a config or
    weights that do not fit give `error(one line)` too."""
    config, card, tensors = read_module(path, fmt, what, error)
    try:
        module = build(config)
        module.load_state_dict(tensors)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise error(f"{Path(path).name} has a malformed {what} file: {reason}") from None
    return module.eval(), card
