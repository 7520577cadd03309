"""The editors the app offers: gmn's registry (`gmn.edit`: shipped editors in `assets/editors`, name = file
stem, later folders override earlier ones) plus the folder the admin publishes into, with each editor's card
and the filter of which editors fit the loaded INR."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr

from gmn.edit import REGISTRY_DIRS, describe_editor
from gmn.editors import KIND_WORDS, Editor, EditorError, load_editor
from inr import home

from .validate import error


@dataclass
class Settings:
    """Where the app finds editors, publishes them, trains them and reads training data."""

    registry_dirs: list[Path] = field(default_factory=lambda: list(REGISTRY_DIRS))  # shipped (read-only)
    # published editors, training runs and zoos default to the data home ($GMN_HOME, inr.home), read when the
    # settings are made, never the checkout
    published_dir: Path = field(default_factory=lambda: Path(os.environ.get("GMN_EDITORS_DIR") or home.editors_dir()))
    runs_dir: Path = field(default_factory=lambda: home.runs_dir("app"))
    zoo_root: Path | None = None  # None: gmn.data's default, the data home's zoo root

    @property
    def dirs(self) -> list[Path]:
        """Registry folders in gmn's order: shipped first, then published (which override by name)."""
        return [*map(Path, self.registry_dirs), Path(self.published_dir)]


def registry(settings: Settings) -> dict[str, Path]:
    """Name → editor file, by the rule of `gmn.edit.list_editors` over `settings.dirs`."""
    out: dict[str, Path] = {}
    for d in settings.dirs:
        if d.is_dir():
            for p in sorted(d.glob("*.safetensors")):
                out[p.stem] = p
    return out


def read_card(path: Path) -> dict:
    """An editor's card (from the JSON beside it, else the file's metadata); {} when unreadable."""
    j = path.with_suffix(".json")
    try:
        if j.exists():
            card = json.loads(j.read_text())
            return card if isinstance(card, dict) else {}
        from safetensors import safe_open

        with safe_open(str(path), framework="pt") as fh:
            meta = fh.metadata() or {}
        return {**json.loads(meta.get("card", "{}")), "config": json.loads(meta.get("config", "{}"))}
    except (OSError, ValueError, TypeError):
        return {}


def list_editors(settings: Settings) -> list[dict]:
    """One row per editor: name, task, kind, training data, val/test MSE, size, where from."""
    rows = []
    published = Path(settings.published_dir).resolve()
    for name, path in registry(settings).items():
        card = read_card(path)
        cfg = card.get("config", {}) if isinstance(card.get("config"), dict) else {}
        arch = cfg.get("arch", {}) if isinstance(cfg.get("arch"), dict) else {}
        metrics = card.get("metrics", {}) if isinstance(card.get("metrics"), dict) else {}
        data = card.get("data", {})
        rows.append({
            "name": name,
            "task": card.get("task", cfg.get("task", "?")),
            "editor": card.get("editor", cfg.get("kind", "?")),
            "data": data.get("train", "?") if isinstance(data, dict) else str(data),
            "test_mse": metrics.get("test_mse"),
            "val_mse": metrics.get("val_mse"),
            "parameters": card.get("parameters"),
            "siren": f"{arch.get('layers', '?')} sine layers, {arch.get('dim_out', '?')} channel(s)",
            "what": describe_editor(card),
            "layers": arch.get("layers"),
            "channels": arch.get("dim_out"),
            "widths": cfg.get("widths"),  # hidden widths it was validated on (None: any)
            "published": path.resolve().parent == published,
        })
    return rows


def card_markdown(settings: Settings, name: str | None) -> str:
    rows = {r["name"]: r for r in list_editors(settings)}
    if not name or name not in rows:
        return "no editor selected" if rows else "no editors installed yet: train and publish one in the admin tab"
    r = rows[name]

    def f(v):
        return f"{v:.3g}" if isinstance(v, float) else ("—" if v is None else str(v))

    reads = KIND_WORDS.get(r["editor"], f"an editor of kind {r['editor']!r}")
    return (f"**{name}**: {r['what']}. It is {reads}. Trained on {r['data']}; test MSE {f(r['test_mse'])}, "
            f"val MSE {f(r['val_mse'])}; {f(r['parameters'])} parameters (`{r['editor']}`)"
            f"{' · published' if r['published'] else ''}.")


def _fits(row: dict, arch) -> bool:
    """Whether an editor can edit INRs of `arch`: its depth and channels, and a width it was validated on."""
    widths = row.get("widths")
    return (row["layers"], row["channels"]) == (arch.layers, arch.dim_out) and (not widths or arch.hidden in widths)


def filter_editors_for(settings: Settings, session) -> tuple[list[str], str | None]:
    """(names, default) of the filter editors (never paint editors) that can edit the session's INR (its depth,
    channels and width), the default being `contrast` for colour INRs and `dilate` for gray ones where installed.
    With no INR loaded yet: every filter editor, `dilate` first."""
    rows = [r for r in list_editors(settings) if r["task"] != "paint"]
    arch = getattr(session, "arch", None)
    if arch is not None:
        rows = [r for r in rows if _fits(r, arch)]
        prefer = "contrast" if arch.dim_out == 3 else "dilate"
    else:
        prefer = "dilate"
    names = sorted((r["name"] for r in rows), key=lambda n: (n != prefer, n))
    return names, (names[0] if names else None)


def paint_editor_for(settings: Settings, arch, chosen: str | None = None) -> str:
    """The chosen paint editor, else one made for this INR's depth, channels and width (the shipped default for
    its channels, `paint` or `paint-color`, before the others), else the first."""
    rows = [r for r in list_editors(settings) if r["task"] == "paint"]
    if chosen in [r["name"] for r in rows]:
        return chosen
    if chosen is not None and chosen != "":  # a named editor that is not a paint editor is refused, not replaced
        names = ", ".join(r["name"] for r in rows) or "none installed"
        raise gr.Error(f"{str(chosen)[:48]!r} is not a paint editor (paint editors: {names}; or none for the default)")
    if not rows:
        raise gr.Error("no paint editor installed: train and publish one in the admin tab")
    prefer = "paint-color" if arch.dim_out == 3 else "paint"
    fits = sorted((r["name"] for r in rows if _fits(r, arch)), key=lambda n: n != prefer)  # stable otherwise
    # none validated for this width: the one of the right depth and channels, whose edit says why it refuses
    shape = [r["name"] for r in rows if (r["layers"], r["channels"]) == (arch.layers, arch.dim_out)]
    return (fits or shape or [rows[0]["name"]])[0]


_EDITOR_CACHE: dict[tuple[str, float], tuple[Editor, dict]] = {}


def load_cached(path: Path) -> Editor:
    key = (str(path), path.stat().st_mtime)
    if key not in _EDITOR_CACHE:
        try:
            _EDITOR_CACHE[key] = load_editor(path)
        except EditorError as e:
            raise error(e) from None
    return _EDITOR_CACHE[key][0]


def get_editor(settings: Settings, name) -> Editor:
    reg = registry(settings)
    if not isinstance(name, str) or name not in reg:
        known = ", ".join(reg) or "none installed"
        raise gr.Error(f"unknown editor {name!r} (known: {known})")
    return load_cached(reg[name])
