"""INR files: safetensors tensors plus a JSON metadata block. Loading never unpickles.

A single-INR file holds the `SirenNet` state-dict tensors under their own names
(`layers.0.weight`, ..., `last_layer.bias`), so `safetensors.torch.load_file` gives a
state dict that a plain `siren_pytorch.SirenNet` loads directly. Its metadata (all strings,
as safetensors requires) is:

    format       "gmn-inr" (stacks: "gmn-inr-stack"; tiled INRs: "gmn-inr-tiled"; both with a
                 leading axis N on every tensor)
    version      "1"
    arch         JSON of SirenArch: dim_in, hidden, layers, dim_out, w0, w0_initial
    coords       the coordinate convention (pixel centres on [-1,1]², (row, col))
    output       "net(x) + 0.5, values in [0,1]"
    image_size   JSON [H, W] of the image it was fitted to
    channels     "1" or "3"
    source       free text (file name, dataset and index, ...)
    psnr         PSNR in dB at image_size (stacks: tensor `psnr`)

Stacks (zoo shards) add tensors `images` (N, H, W, C) and `psnr` (N,).

A tiled INR (`inr.tiles`: a photo as R×C tile SIRENs) stores its tiles as one stack (row-major)
and adds `grid` (JSON of `TileGrid.to_dict`: image_size, tile, overlap, rows, cols); its
`image_size` is the grid's. Tile i alone is the plain `SirenNet` state dict `tile_state_dict(inr, i)`.
Every file's `image_size` must be two integers from 1 to `inr.tiles.MAX_SIDE`.
"""

from __future__ import annotations

import json
import math
import os
import re
import stat
from dataclasses import dataclass, field
from pathlib import Path

import torch
from torch import Tensor

from .checks import MAX_HIDDEN, MAX_LAYERS
from .errors import InrFileError
from .siren import Params, SirenArch, check_params, state_dict
from .tiles import MAX_SIDE, TileGrid, TileGridError

COORDS = "pixel centres on [-1,1]^2, last axis (row, col), row -1 at the top"
OUTPUT = "net(x) + 0.5, values in [0,1]"
MAX_FILE_BYTES = 2 << 30


@dataclass
class Inr:
    """Parameters (leading axis N), architecture and metadata of one INR or a stack."""

    params: Params
    arch: SirenArch
    meta: dict = field(default_factory=dict)
    tensors: dict[str, Tensor] = field(default_factory=dict)  # extra tensors of a stack
    grid: TileGrid | None = None  # where the SIRENs lie on the image (a 1×1 grid for one INR)

    @property
    def n(self) -> int:
        return self.params[0].shape[0]

    @property
    def image_size(self) -> tuple[int, int] | None:
        if self.grid is not None:
            return self.grid.image_size
        size = self.meta.get("image_size")
        return tuple(size) if size else None


def _atomic_save(tensors: dict[str, Tensor], meta: dict[str, str], path: Path) -> None:
    from safetensors.torch import save_file

    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, str(tmp), metadata=meta)
    os.chmod(tmp, 0o644)
    os.replace(tmp, path)


def _meta(arch: SirenArch, fmt: str, meta: dict) -> dict[str, str]:
    out = {"format": fmt, "version": "1", "arch": json.dumps(arch.to_dict()), "coords": COORDS, "output": OUTPUT}
    for k, v in meta.items():
        out[k] = v if isinstance(v, str) else json.dumps(v)
    return out


def save_inr(path: str | os.PathLike, params: Params, arch: SirenArch, **meta) -> None:
    """Save one INR (params with N = 1) atomically. Extra keyword metadata: image_size, channels,
    source, psnr, ... (non-strings are stored as JSON)."""
    n = check_params(params, arch)
    if n != 1:
        raise ValueError(f"save_inr saves one INR, got a stack of {n}; use save_stack")
    meta.setdefault("channels", arch.dim_out)
    tensors = {name: t[0].float() for name, t in zip(arch.param_names(), params)}
    _atomic_save(tensors, _meta(arch, "gmn-inr", meta), Path(path))


def save_tiled(path: str | os.PathLike, params: Params, arch: SirenArch, grid: TileGrid, **meta) -> None:
    """Save a tiled INR (params: N = grid.count tiles, row-major) atomically. A 1×1 grid is saved as a
    plain single-INR file, so old tools read it."""
    n = check_params(params, arch)
    if n != grid.count:
        raise ValueError(f"the grid has {grid.shape[0]}×{grid.shape[1]} = {grid.count} tiles, got {n} SIRENs")
    meta["image_size"] = list(grid.image_size)
    if grid.is_single:
        save_inr(path, params, arch, **meta)
        return
    meta.setdefault("channels", arch.dim_out)
    meta["grid"] = grid.to_dict()
    tensors = {name: t.float() for name, t in zip(arch.param_names(), params)}
    _atomic_save(tensors, _meta(arch, "gmn-inr-tiled", meta), Path(path))


def tile_state_dict(inr: Inr, index: int) -> dict[str, Tensor]:
    """Tile `index` (row-major) of a tiled INR as a plain `SirenNet` state dict."""
    if not 0 <= index < inr.n:
        raise IndexError(f"tile {index} of {inr.n}")
    return state_dict(inr.params, inr.arch, index)


def save_stack(path: str | os.PathLike, params: Params, arch: SirenArch, tensors: dict | None = None, **meta) -> None:
    """Save a stack of N INRs (and extra tensors such as images and psnr) atomically."""
    check_params(params, arch)
    out = {name: t.float() for name, t in zip(arch.param_names(), params)}
    out.update(tensors or {})
    _atomic_save(out, _meta(arch, "gmn-inr-stack", meta), Path(path))


def _read(path: Path) -> tuple[dict[str, Tensor], dict[str, str]]:
    from safetensors import safe_open

    name = path.name
    try:
        st = path.stat()
        if not stat.S_ISREG(st.st_mode):  # a FIFO would block the read; a folder or device is no INR file
            raise InrFileError(f"{name} is {'a folder' if stat.S_ISDIR(st.st_mode) else 'not a regular file'}")
        size = st.st_size
        with open(path, "rb") as fh:
            head = fh.read(16)
    except OSError as e:
        raise InrFileError(f"cannot read {name}: {e.strerror or e}") from None
    if size == 0:
        raise InrFileError(f"{name} is empty (0 bytes)")
    looks_safetensors = len(head) >= 9 and head[8:9] == b"{"
    pickled = head[:4] == b"PK\x03\x04" or (head[:1] == b"\x80" and head[1:2] in b"\x02\x03\x04\x05")
    if pickled and not looks_safetensors:
        raise InrFileError(f"{name} looks like a pickled PyTorch file; only safetensors INR files are accepted")
    if size > MAX_FILE_BYTES:
        raise InrFileError(f"{name} is {size / 2**30:.1f} GiB, too large for an INR file")
    try:
        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
            tensors = {k: fh.get_tensor(k) for k in fh.keys()}
    except Exception as e:  # safetensors raises its own error types for every malformed header
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InrFileError(f"{name} is not a valid safetensors file ({reason})") from None
    return tensors, meta


def load_inr(path: str | os.PathLike, *, allow_stack: bool = True) -> Inr:
    """Load and validate an INR file (single or stack). Raises InrFileError on any problem:
    not safetensors, pickled, missing or wrong metadata, wrong shapes, NaN/Inf weights."""
    path = Path(path)
    tensors, meta = _read(path)
    name = path.name
    fmt = meta.get("format")
    if fmt is None:
        raise InrFileError(
            f"{name} has no INR metadata (format/arch); for a plain SirenNet state dict use inr.files.load_sirennet"
        )
    if fmt not in ("gmn-inr", "gmn-inr-stack", "gmn-inr-tiled") or (fmt == "gmn-inr-stack" and not allow_stack):
        raise InrFileError(f"{name} has format {fmt!r}, expected 'gmn-inr' or 'gmn-inr-tiled'")
    if "arch" not in meta:
        raise InrFileError(f"{name} metadata lacks 'arch'")
    arch = _arch(meta["arch"], tensors, name)
    missing = [k for k in arch.param_names() if k not in tensors]
    if missing:
        raise InrFileError(f"{name} lacks tensor {missing[0]!r} for its {arch.depth}-layer architecture")
    stack = fmt in ("gmn-inr-stack", "gmn-inr-tiled")
    params = [tensors.pop(k).float() for k in arch.param_names()]
    if not stack:
        params = [t.unsqueeze(0) for t in params]
    for pname, t, shape in zip(arch.param_names(), params, arch.param_shapes()):
        if t.dim() != len(shape) + 1:  # (check_params reads the leading axis of each)
            raise InrFileError(f"{name}: tensor {pname} has {t.dim() - (0 if stack else 1)} dimensions, expected "
                               f"{len(shape) + (1 if stack else 0)}")
    try:
        check_params(params, arch)
    except ValueError as e:
        raise InrFileError(f"{name}: {e}") from None
    for pname, t in zip(arch.param_names(), params):
        if not torch.isfinite(t).all():
            raise InrFileError(f"{name} has NaN or Inf values in {pname}")
    parsed = {}
    for k, v in meta.items():
        try:
            parsed[k] = json.loads(v) if k in ("image_size", "channels", "psnr", "arch", "grid", "fit") else v
        except ValueError:
            parsed[k] = v
    if "channels" in parsed and (not _is_int(parsed["channels"]) or parsed["channels"] != arch.dim_out):
        raise InrFileError(f"{name} says channels {meta['channels']!r}, but its SIREN outputs {arch.dim_out}")
    grid = None
    size = parsed.get("image_size")
    if size is not None and not (isinstance(size, list) and len(size) == 2
                                 and all(_is_int(v) and 1 <= v <= MAX_SIDE for v in size)):
        raise InrFileError(f"{name} has image_size {_shown(meta.get('image_size'))}; expected [H, W], "
                           f"integers from 1 to {MAX_SIDE}")
    try:
        if fmt == "gmn-inr-tiled":
            g = parsed.get("grid")
            if not isinstance(g, dict) or not all(_is_int(g.get(k, 0)) for k in ("tile", "overlap", "rows", "cols")):
                raise InrFileError(f"{name} is a tiled INR without valid 'grid' metadata")
            if size is None:
                raise InrFileError(f"{name} is a tiled INR without 'image_size' metadata")
            grid = TileGrid.from_dict(g)
            if list(grid.image_size) != size:
                raise InrFileError(f"{name}: image_size {size} differs from its grid's {list(grid.image_size)}")
            if grid.count != params[0].shape[0]:
                raise InrFileError(f"{name}: the grid has {grid.shape[0]}×{grid.shape[1]} = {grid.count} tiles, "
                                   f"the file holds {params[0].shape[0]} SIRENs")
        elif fmt == "gmn-inr" and size is not None and size[0] == size[1]:
            grid = TileGrid.single((size[0], size[1]))
    except TileGridError as e:
        raise InrFileError(f"{name}: {e}") from None
    return Inr(params, arch, parsed, tensors, grid)


def _is_int(v) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _shown(text) -> str:
    text = repr(text)
    return text if len(text) <= 60 else text[:57] + "..."


ARCH_KEYS = ("dim_in", "hidden", "layers", "dim_out", "w0", "w0_initial")
_SINE_WEIGHT = re.compile(r"layers\.(\d+)\.weight")


def _arch(text: str, tensors: dict[str, Tensor], name: str) -> SirenArch:
    """The architecture the metadata claims, checked against the tensors before anything is built from it:
    a claim of 10⁹ layers is refused from the tensor count (building its 2·10⁹ names would hang)."""
    try:
        d = json.loads(text)
    except ValueError as e:
        raise InrFileError(f"{name} has malformed 'arch' metadata: {e}") from None
    if not isinstance(d, dict):
        raise InrFileError(f"{name} has malformed 'arch' metadata: expected a JSON object, got {_shown(d)}")
    unknown = [k for k in d if k not in ARCH_KEYS]
    if unknown:
        raise InrFileError(f"{name} has malformed 'arch' metadata: unknown key {_shown(unknown[0])}; "
                           f"known: {', '.join(ARCH_KEYS)}")
    for k in ("dim_in", "hidden", "layers", "dim_out"):
        if k in d and not (_is_int(d[k]) and d[k] >= 1):
            raise InrFileError(f"{name} has malformed 'arch' metadata: {k} must be a positive integer, "
                               f"got {_shown(d[k])}")
    for k in ("w0", "w0_initial"):
        if k in d and (isinstance(d[k], bool) or not isinstance(d[k], (int, float)) or not math.isfinite(d[k])):
            raise InrFileError(f"{name} has malformed 'arch' metadata: {k} must be a finite number, "
                               f"got {_shown(d[k])}")
    sine = sum(1 for k in tensors if _SINE_WEIGHT.fullmatch(k))
    layers = d.get("layers", SirenArch.layers)
    if layers != sine:
        raise InrFileError(f"{name}: its metadata says {_shown(layers)} sine layers, the file holds {sine}")
    if layers > MAX_LAYERS or d.get("hidden", SirenArch.hidden) > MAX_HIDDEN:
        raise InrFileError(f"{name}: SIRENs of more than {MAX_LAYERS} sine layers or width {MAX_HIDDEN} "
                           "are not supported")
    dim_out = d.get("dim_out", SirenArch.dim_out)
    if dim_out not in (1, 3):
        raise InrFileError(f"{name}: a SIREN image has 1 (gray) or 3 (RGB) channels, its metadata says {dim_out}")
    try:
        return SirenArch.from_dict(d)
    except (ValueError, TypeError, OverflowError) as e:
        raise InrFileError(f"{name} has malformed 'arch' metadata: {e}") from None


def load_sirennet(path: str | os.PathLike, *, w0: float = 30.0, w0_initial: float = 30.0) -> Inr:
    """Load a plain `SirenNet` state dict saved with safetensors (no metadata needed)."""
    from .siren import from_state_dict

    path = Path(path)
    tensors, _ = _read(path)
    try:
        params, arch = from_state_dict(tensors, w0=w0, w0_initial=w0_initial)
    except ValueError as e:
        raise InrFileError(f"{path.name}: {e}") from None
    return Inr(params, arch, {"source": path.name})
