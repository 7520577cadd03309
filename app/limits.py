"""What the server holds, and its caps (README "Reliability"): per-session render caches by count and bytes,
the number of live sessions and their idle expiry, and the files on disk (Gradio's cache, the app's PNGs and
downloads) pruned by age and total size."""

from __future__ import annotations

import os
import tempfile
import threading
import time
from collections import OrderedDict
from pathlib import Path

import torch

# memory
RENDER_ENTRIES = 6  # renders kept per session (LRU)
RENDER_BYTES = 48 * 2**20  # and their total size: a 1024² colour render is 12 MiB of float32
HISTORY_BYTES = 256 * 2**20  # a session's history (its steps' tensors); the oldest edit steps go first
MAX_SESSIONS = 64  # live sessions (Gradio drops the least recently used beyond this)
SESSION_TTL = 3600  # seconds a session's state is kept after its last request (gr.State time_to_live)

# disk
CACHE_SWEEP = 600  # seconds between sweeps
CACHE_AGE = 3600  # files older than this are deleted (a view's file is served once, when its event returns)
CACHE_BYTES = 1024 * 2**20  # and the oldest beyond this total, per folder swept


def nbytes(value) -> int:
    """Bytes held by the tensors in `value` (a tensor, or tuples / lists / dicts of them)."""
    if isinstance(value, torch.Tensor):
        return value.numel() * value.element_size()
    if isinstance(value, (list, tuple)):
        return sum(nbytes(v) for v in value)
    if isinstance(value, dict):
        return sum(nbytes(v) for v in value.values())
    return 0


def tensors_bytes(values) -> int:
    """Bytes of the distinct tensor storages reachable from `values` (dataclasses, lists, tuples, dicts): a
    step's edit shares its base with the step before it, counted once."""
    seen, total, stack = set(), 0, [values]
    while stack:
        v = stack.pop()
        if isinstance(v, torch.Tensor):
            key = (v.untyped_storage().data_ptr(), v.untyped_storage().nbytes())
            if key not in seen:
                seen.add(key)
                total += key[1]
        elif isinstance(v, (list, tuple)):
            stack.extend(v)
        elif isinstance(v, dict):
            stack.extend(v.values())
        elif hasattr(v, "__dataclass_fields__"):
            stack.extend(getattr(v, f) for f in v.__dataclass_fields__)
    return total


class RenderCache(OrderedDict):
    """A session's renders by (step, size): least recently used first, at most `entries` of them and `budget`
    bytes together (the newest is always kept, whatever its size). Reading an entry with `get` refreshes it."""

    def __init__(self, entries: int = RENDER_ENTRIES, budget: int = RENDER_BYTES):
        super().__init__()
        self.entries, self.budget = entries, budget

    def get(self, key, default=None):
        if key in self:
            self.move_to_end(key)
            return self[key]
        return default

    def __setitem__(self, key, value) -> None:
        super().__setitem__(key, value)
        self.move_to_end(key)
        while len(self) > 1 and (len(self) > self.entries or self.nbytes() > self.budget):
            self.popitem(last=False)

    def nbytes(self) -> int:
        return sum(nbytes(v) for v in self.values())

    def __reduce__(self):  # copies (gr.State deep-copies its default) keep the caps
        return (type(self), (self.entries, self.budget), None, None, iter(self.items()))


def gradio_cache() -> Path:
    """Gradio's file cache (uploads and every file an event returned), as Gradio names it."""
    return Path(os.environ.get("GRADIO_TEMP_DIR") or Path(tempfile.gettempdir()) / "gradio")


def app_files() -> Path:
    """The app's own PNGs and downloads (app.views.IMAGE_DIR, app.handlers.session_dir)."""
    return Path(tempfile.gettempdir()) / "gmn-app"


def prune_files(root: Path, max_age: float = CACHE_AGE, max_bytes: int = CACHE_BYTES,
                now: float | None = None) -> tuple[int, int]:
    """Delete the files under `root` last modified more than `max_age` seconds ago, then the oldest until the
    rest total at most `max_bytes`, then the folders left empty. Returns (files deleted, bytes kept)."""
    now = time.time() if now is None else now
    files = []
    for d, _, names in os.walk(root):
        for n in names:
            p = os.path.join(d, n)
            try:
                st = os.lstat(p)
            except OSError:
                continue
            files.append((st.st_mtime, st.st_size, p))
    files.sort()  # oldest first
    total, deleted = sum(f[1] for f in files), 0
    for mtime, size, p in files:
        if now - mtime <= max_age and total <= max_bytes:
            break
        try:
            os.remove(p)
            deleted += 1
            total -= size
        except OSError:
            pass
    for d, subs, names in os.walk(root, topdown=False):
        if d != str(root) and not subs and not names:
            try:
                os.rmdir(d)
            except OSError:
                pass
    return deleted, total


_PRUNER: threading.Thread | None = None


def start_pruner(roots: list[Path] | None = None, every: float = CACHE_SWEEP) -> None:
    """Prune `roots` (Gradio's cache and the app's files) now and every `every` seconds, in one daemon thread
    per process (files left by earlier runs of the server included)."""
    global _PRUNER
    if _PRUNER is not None and _PRUNER.is_alive():
        return
    roots = roots or [gradio_cache(), app_files()]

    def sweep():
        while True:
            for r in roots:
                if r.is_dir():
                    prune_files(r)
            time.sleep(every)

    _PRUNER = threading.Thread(target=sweep, name="gmn-cache-pruner", daemon=True)
    _PRUNER.start()


# fairness: large INRs go one at a time, beside the small ones (docs/DESIGN.md §14 has the concurrency groups)
EDIT_WORKERS = 6  # the "edit" concurrency group (edits, loads, renders, undo, ...)
FIT_WORKERS = 3  # the "fit" group
HEAVY_SIDE = 256  # an INR (or a fit's working resolution) longer than this on a side is heavy work
HEAVY_RUNNING = 1  # heavy requests running at once, server-wide (each is one intra-op thread)
HEAVY_WAITING = 2  # heavy requests waiting for it; a further one is refused at once (it would hold a worker)
HEAVY_BUSY = ("the server is busy with other large INRs (over {side} px a side): try again in a minute, or work at "
              "{side} px or less")


class HeavyLane:
    """At most `running` heavy requests at a time and `waiting` queued for them; the rest refused (gr.Error)."""

    def __init__(self, running: int = HEAVY_RUNNING, waiting: int = HEAVY_WAITING):
        self.running, self.waiting = running, waiting
        self.slots = threading.Semaphore(running)
        self._inside = 0  # running + waiting
        self._lock = threading.Lock()

    def __enter__(self):
        import gradio as gr

        with self._lock:
            if self._inside >= self.running + self.waiting:
                raise gr.Error(HEAVY_BUSY.format(side=HEAVY_SIDE))
            self._inside += 1
        self.slots.acquire()
        return self

    def __exit__(self, *exc):
        self.slots.release()
        with self._lock:
            self._inside -= 1
        return False


LANE = HeavyLane()


def is_heavy(group: str | None, args: tuple) -> bool:
    """Whether a call of the "fit" or "edit" concurrency group is heavy work: a fit at a working resolution over
    HEAVY_SIDE (its 5th argument; "auto" works at 256 px at most), or any request on a loaded INR over it."""
    if group == "fit":
        res = args[4] if len(args) > 4 else None
        try:
            return res not in (None, "", "auto") and float(res) > HEAVY_SIDE
        except (TypeError, ValueError):
            return False  # refused by the fit's own check
    st = args[0] if args else None
    grid = getattr(st, "grid", None)
    return grid is not None and bool(getattr(st, "steps", None)) and max(grid.image_size) > HEAVY_SIDE


def share_fairly(demo, groups: tuple[str, ...] = ("fit", "edit"), lane: HeavyLane | None = None):
    """Route the heavy calls of `demo`'s events in `groups` through one HeavyLane (the light ones pass beside
    it), so that a client working on 1024-px INRs holds one worker and one core, not every worker of its
    group. Returns `demo`."""
    import functools
    import inspect

    lane = lane or LANE
    for block_fn in demo.fns.values():
        group, fn = getattr(block_fn, "concurrency_id", None), block_fn.fn
        if group not in groups or fn is None or inspect.isgeneratorfunction(fn) or inspect.iscoroutinefunction(fn):
            continue

        def gated(*args, _fn=fn, _group=group, **kwargs):
            if not is_heavy(_group, args):
                return _fn(*args, **kwargs)
            with lane:
                return _fn(*args, **kwargs)

        block_fn.fn = functools.wraps(fn)(gated)
    return demo
