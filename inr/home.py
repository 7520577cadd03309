"""The data home: the one folder where zoos, training runs and caches live, outside the checkout.

    $GMN_HOME               (default ~/.cache/gmn-inr, the convention of torch hub and dataset libraries)
        zoo/NAME            fitted zoos (`python -m inr zoo`, built on first use by gmn.data)
        runs/NAME           training runs (`python -m gmn train`, the app's admin tab, bench scripts)
        cache/NAME          benchmark caches (fits and results that bench scripts reuse)
        editors/            editors published by the app's admin tab

Every default path of the project comes from here, read when it is used (not at import), so setting
GMN_HOME (the test suite does, per session) moves everything. An explicit `--out` always wins. A checkout
is laid anew between sessions; the data home is not, so hours of fitting and training survive
(docs/DESIGN.md, "Artifacts outside the checkout").
"""

from __future__ import annotations

import os
from collections.abc import Callable
from pathlib import Path

ENV = "GMN_HOME"
DEFAULT_HOME = Path("~") / ".cache" / "gmn-inr"


def data_home() -> Path:
    """The data home: $GMN_HOME if set (user-expanded, absolute), else ~/.cache/gmn-inr."""
    home = os.environ.get(ENV) or str(DEFAULT_HOME)
    return Path(home).expanduser().absolute()


def zoo_dir(name: str = "") -> Path:
    """A zoo folder (or, without a name, the zoo root) in the data home."""
    return data_home() / "zoo" / name if name else data_home() / "zoo"


def runs_dir(name: str = "") -> Path:
    """A run folder (or, without a name, the runs root) in the data home."""
    return data_home() / "runs" / name if name else data_home() / "runs"


def cache_dir(name: str = "") -> Path:
    """A cache folder (or, without a name, the cache root) in the data home."""
    return data_home() / "cache" / name if name else data_home() / "cache"


def editors_dir() -> Path:
    """Where the app's admin tab publishes editors (GMN_EDITORS_DIR overrides it there)."""
    return data_home() / "editors"


def in_home(path: str | os.PathLike) -> Path:
    """A path as given if it exists or is absolute; else the same relative path under the data home when it is
    there. Cards written before the data home name runs as `runs/...` relative to the checkout; the data home
    keeps that layout, so such a name still finds its files."""
    p = Path(path).expanduser()
    if p.is_absolute() or p.exists():
        return p
    return data_home() / p if (data_home() / p).exists() else p


def say_where(what: str, path: str | os.PathLike, log: Callable[[str], None] = print) -> None:
    """The one line a command prints before writing into a folder: `what: writing to PATH`."""
    log(f"{what}: writing to {Path(path).expanduser().absolute()}")
