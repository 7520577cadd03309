"""The checks at the edge of every command (`python -m inr`, `python -m gmn`): each bad value is refused
with one readable line before any work starts (the README's "Bad input" paragraph lists what is refused).

- argparse `type=` functions: `integer(lo, hi)`, `real(lo, hi)` (finite, in range), `device`, `THREADS`,
  `json_object`; argparse turns their `ArgumentTypeError` into `error: argument --x: ...` and exit 2.
- paths: `output_file` (a file that can be written, probed by creating and removing the very temporary
  name the atomic writers use, so nothing is left behind and nothing is started on an unwritable path),
  `output_dir` (a folder that exists and is writable, or can be created), `input_file` (an existing
  regular file: a FIFO would block the reader, a folder or a device is not an input).
- `strict_json`: JSON without NaN/Infinity (Python's json accepts them; every reader of metadata uses this).
"""

from __future__ import annotations

import argparse
import errno
import json
import math
import os
import stat
from pathlib import Path

from .errors import InrError

MAX_THREADS = 256  # torch segfaults creating 100,000 threads; no machine here has more cores than this
MAX_HIDDEN = 1024  # SIREN width: 100,000 allocates 40 GB; 1024 is 32x the editors' width
MAX_LAYERS = 16  # sine layers
MAX_STEPS = 100_000_000
MAX_POINTS = 4096  # sampled points of an edit or evaluation (the editors are trained on 32-64)
MAX_STRENGTH = 3.0  # edit strength, as the app's slider caps it


# argparse types


def integer(lo: int, hi: int):
    """An argparse type: an integer from lo to hi, else one readable line (argparse exits 2)."""
    def parse(text: str) -> int:
        try:
            v = int(text.strip())
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected an integer from {lo:,} to {hi:,}, got {text[:40]!r}") from None
        if not lo <= v <= hi:
            shown = f"{v:,}" if len(text) <= 24 else f"{text[:20]}..."
            raise argparse.ArgumentTypeError(f"expected an integer from {lo:,} to {hi:,}, got {shown}")
        return v

    parse.__name__ = "integer"
    return parse


def real(lo: float, hi: float, *, open_low: bool = False):
    """An argparse type: a finite number in [lo, hi] (or (lo, hi] with open_low), else one readable line."""
    span = f"{'(' if open_low else '['}{lo:g}, {hi:g}]"

    def parse(text: str) -> float:
        try:
            v = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected a number in {span}, got {text[:40]!r}") from None
        if not math.isfinite(v):
            raise argparse.ArgumentTypeError(f"expected a finite number in {span}, got {text[:40]!r}")
        if not (lo < v if open_low else lo <= v) or v > hi:
            raise argparse.ArgumentTypeError(f"expected a number in {span}, got {v:g}")
        return v

    parse.__name__ = "number"
    return parse


THREADS = integer(1, MAX_THREADS)


def device(text: str) -> str:
    """An argparse type: 'cpu', or 'cuda' / 'cuda:N' where this torch build sees that GPU."""
    import torch

    try:
        dev = torch.device(text)
    except (RuntimeError, ValueError):
        raise argparse.ArgumentTypeError(f"expected cpu or cuda[:N], got {text[:40]!r}") from None
    if dev.type == "cpu":
        return str(dev)
    if dev.type != "cuda":
        raise argparse.ArgumentTypeError(f"expected cpu or cuda[:N], got {text[:40]!r}")
    if not torch.cuda.is_available():
        raise argparse.ArgumentTypeError(f"{text} asked for, but this torch build sees no CUDA GPU; use --device cpu")
    if dev.index is not None and dev.index >= torch.cuda.device_count():
        raise argparse.ArgumentTypeError(f"{text} asked for, but only {torch.cuda.device_count()} GPU(s) are visible")
    return str(dev)


def nonempty(text: str) -> str:
    """An argparse type: a non-empty string (an empty --data or --model would silently mean the default)."""
    if not text.strip():
        raise argparse.ArgumentTypeError("expected a non-empty value")
    return text


def dataset_list(text: str) -> str:
    """An argparse type: comma-separated names of `inr.datasets.DATASETS` (returned as given)."""
    from .datasets import DATASETS

    names = text.split(",")
    bad = [n for n in names if n not in DATASETS]
    if bad:
        raise argparse.ArgumentTypeError(f"unknown dataset {bad[0][:40]!r}; choose from {', '.join(DATASETS)}")
    return text


def apply_types(parser: argparse.ArgumentParser, types: dict) -> None:
    """Give every option of `parser` whose dest is in `types` that argparse type: the bounds of all the
    commands in one table (a command's own option lists stay as they are)."""
    for action in parser._actions:  # argparse has no public accessor for its actions
        if action.dest in types and action.nargs in (None, "?") and action.const is None:
            action.type = types[action.dest]


def interrupted(e: BaseException) -> bool:
    """Whether `e` is Ctrl-C: a KeyboardInterrupt, or the SignalException that torch's elastic launcher (the
    zoo's worker processes) raises in its parent on SIGINT or SIGTERM."""
    return isinstance(e, KeyboardInterrupt) or type(e).__name__ == "SignalException"


def strict_json(text: str):
    """json.loads that refuses NaN and ±Infinity (ValueError), which Python's json would accept."""
    def refuse(const: str):
        raise ValueError(f"{const} is not a finite number")

    return json.loads(text, parse_constant=refuse)


def json_object(text: str) -> dict:
    """An argparse type: a JSON object (finite numbers only), e.g. '{"hidden": 64}'."""
    try:
        value = strict_json(text)
    except ValueError as e:
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"hidden\": 64}}' ({e})") from None
    if not isinstance(value, dict):
        raise argparse.ArgumentTypeError(f"expected a JSON object such as '{{\"hidden\": 64}}', "
                                         f"got {type(value).__name__}")
    return value


# paths


def _probe(folder: Path, name: str, flag: str, path: str) -> None:
    """Create and remove `folder/name`: the only reliable test that a file can be written there (as root,
    os.access says yes to read-only folders; /proc says yes and refuses)."""
    probe = folder / name
    try:
        fd = os.open(probe, os.O_CREAT | os.O_EXCL | os.O_WRONLY, 0o600)
    except FileExistsError:
        return  # a stale temporary of an earlier run: the folder is writable
    except OSError as e:
        if e.errno == errno.ENAMETOOLONG:
            raise InrError(f"{flag} {_short(path)}: file name too long ({len(Path(path).name)} characters)") from None
        raise InrError(f"{flag} {_short(path)}: cannot write in folder {_short(str(folder))} "
                       f"({e.strerror or e})") from None
    os.close(fd)
    os.unlink(probe)


def _short(text: str) -> str:
    return text if len(text) <= 80 else f"{text[:40]}...{text[-20:]}"


def _name_max(folder: Path) -> int:
    try:
        return os.pathconf(folder, "PC_NAME_MAX")
    except (OSError, ValueError):
        return 255


def _check_lengths(text: str, flag: str) -> None:
    """Refuse a path with a component or a total length the file system cannot hold (before any stat,
    which would raise its own 'File name too long')."""
    if len(os.fsencode(text)) > 4000:
        raise InrError(f"{flag} {_short(text)}: path too long ({len(text)} characters)")
    for part in Path(text).parts:
        if len(os.fsencode(part)) > 255:
            raise InrError(f"{flag} {_short(text)}: name too long ({len(part)} characters; at most 255)")


def output_file(path: str | os.PathLike, suffix: str = "", *, flag: str = "-o") -> Path:
    """Refuse an output file that cannot be written, before any work: empty, a folder (or a link to one),
    not a regular file, a missing or unwritable folder, a name too long for its temporary. Returns the Path."""
    text = os.fspath(path)
    if not text.strip():
        raise InrError(f"{flag} is empty; give a file name" + (f" ending in {suffix}" if suffix else ""))
    _check_lengths(text, flag)
    out = Path(text)
    hint = f"; give a file name ending in {suffix}" if suffix else ""
    if out.is_dir():
        raise InrError(f"{flag} {_short(text)} is a folder{hint}")
    if out.exists() and not out.is_file():
        raise InrError(f"{flag} {_short(text)} exists and is not a regular file")
    parent = out.parent
    if not parent.is_dir():
        what = "is not a folder" if parent.exists() else "does not exist"
        raise InrError(f"{flag} {_short(text)}: folder {_short(str(parent))} {what}")
    tmp = f".{out.name}.{os.getpid()}.tmp"  # the atomic writers' temporary (inr.files, gmn.modelfile)
    if len(os.fsencode(tmp)) > _name_max(parent):
        raise InrError(f"{flag} {_short(text)}: file name too long ({len(out.name)} characters; "
                       f"at most {_name_max(parent) - len(tmp) + len(out.name)})")
    _probe(parent, tmp, flag, text)
    return out


def output_dir(path: str | os.PathLike, *, flag: str = "--out") -> Path:
    """Refuse an output folder that cannot be used, before any work: empty, a file, a name too long,
    under a file, or in a folder where nothing can be written. Nothing is created. Returns the Path."""
    text = os.fspath(path)
    if not text.strip():
        raise InrError(f"{flag} is empty; give a folder")
    _check_lengths(text, flag)
    out = Path(text)
    if out.exists() and not out.is_dir():
        raise InrError(f"{flag} {_short(text)} is a file, not a folder")
    existing, missing = out, []
    while not existing.exists():
        missing.append(existing.name)
        if existing.parent == existing:
            break
        existing = existing.parent
    if not existing.is_dir():
        raise InrError(f"{flag} {_short(text)}: {_short(str(existing))} is not a folder")
    limit = _name_max(existing)
    for name in missing:
        if len(os.fsencode(name)) > limit - 24:  # room for the temporaries written inside
            raise InrError(f"{flag} {_short(text)}: folder name too long ({len(name)} characters)")
    _probe(existing, f".gmn-probe.{os.getpid()}.tmp", flag, text)
    return out


def input_file(path: str | os.PathLike, what: str = "file", *, flag: str = "") -> Path:
    """Refuse an input that is missing, empty-named or not a regular file (a FIFO would block, a folder or
    a device is not a file). Returns the Path."""
    text = os.fspath(path)
    where = f"{flag} " if flag else ""
    if not text.strip():
        raise InrError(f"{where}is empty; give a {what}")
    _check_lengths(text, flag or what)
    try:
        mode = os.stat(text).st_mode
    except OSError as e:
        raise InrError(f"{where}{_short(text)}: cannot read {what} ({e.strerror or e})") from None
    if not stat.S_ISREG(mode):
        kind = "a folder" if stat.S_ISDIR(mode) else "a FIFO" if stat.S_ISFIFO(mode) else "not a regular file"
        raise InrError(f"{where}{_short(text)} is {kind}; give a {what}")
    return Path(text)
