"""One file format for everything gmn ships (editors, learned optimizers, Fisher predictors):
safetensors weights with {format, version, config, card} metadata and the card as JSON beside it,
written atomically; read back without unpickling, every problem a one-line error."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn

from inr.checks import strict_json

MAX_FILE_BYTES = 2 << 30
MAX_CONFIG_INT = 1 << 16  # widths and points: larger than any module here
MAX_CONFIG_COUNT = 64  # depths (layers, blocks, rounds, copies, heads): the meta build of 60,000 layers takes minutes
COUNT_WORDS = ("layers", "blocks", "depth", "rounds", "copies", "heads", "interactions")


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
        raise error(f"{path} is not a regular file" if path.exists() else f"no {what} file {path}")
    if path.stat().st_size > MAX_FILE_BYTES:
        raise error(f"{path.name} is {path.stat().st_size / 2**30:.1f} GiB, too large for a {what} file")
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
        config, card = strict_json(meta["config"]), json.loads(meta.get("card", "{}"))
    except (KeyError, ValueError, TypeError) as e:
        raise error(f"{path.name} has malformed {what} metadata: {e}") from None
    if not isinstance(config, dict) or not isinstance(card, dict):
        raise error(f"{path.name} has malformed {what} metadata: config and card must be JSON objects")
    big = large_integer(config)
    if big is not None:
        raise error(f"{path.name} has malformed {what} metadata: {big[0]} = {big[1]} is out of range "
                    f"(at most {big[2]:,})")
    return config, card, tensors


def large_integer(value, key: str = "config") -> tuple[str, int, int] | None:
    """(key, value, bound) of the first integer of a config (nested) beyond its bound: ±MAX_CONFIG_INT for a
    size, MAX_CONFIG_COUNT for a count of layers, blocks, heads, ...; None if all are in range."""
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = ((f"{key}[{i}]", v) for i, v in enumerate(value))
    else:
        bound = MAX_CONFIG_COUNT if any(w in key for w in COUNT_WORDS) else MAX_CONFIG_INT
        return (key, value, bound) if isinstance(value, int) and abs(value) > bound else None
    for k, v in items:
        found = large_integer(v, str(k))
        if found is not None:
            return found
    return None


def load_module(path: str | os.PathLike, fmt: str, what: str, error: type[Exception],
                build: Callable[[dict], nn.Module]) -> tuple[nn.Module, dict]:
    """(module in eval mode, card): `read_module`, then `build(config)` and its weights; a config or
    weights that do not fit give `error(one line)` too."""
    config, card, tensors = read_module(path, fmt, what, error)
    name = Path(path).name
    try:  # the config's module built on the meta device (no memory) must hold exactly the file's tensors
        with torch.device("meta"):
            shell = build(config)
        expected = {k: tuple(v.shape) for k, v in shell.state_dict().items()}
    except Exception:  # a config that cannot be built at all: the real build below names the reason
        expected = None
    if expected is not None:
        got = {k: tuple(v.shape) for k, v in tensors.items()}
        if got != expected:
            diff = sorted(set(got) ^ set(expected)) or [k for k in expected if got[k] != expected[k]]
            k = diff[0]
            raise error(f"{name} has a malformed {what} file: its config gives {k!r} shape "
                        f"{expected.get(k, 'none')}, the file holds {got.get(k, 'none')}")
    try:
        module = build(config)
        module.load_state_dict(tensors)
    except (KeyError, ValueError, TypeError, RuntimeError) as e:
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise error(f"{name} has a malformed {what} file: {reason}") from None
    return module.eval(), card
