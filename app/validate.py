"""Checks of every value a request brings (the raw HTTP API can send anything JSON holds, NaN included):
each failure is one readable `gr.Error` line."""

from __future__ import annotations

import math
import re

import gradio as gr

MAX_DISPLAY = 1024
NAME_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,47}$")


def error(e: Exception) -> gr.Error:
    """An exception as one gr.Error line."""
    return gr.Error(str(e).splitlines()[0] if str(e) else type(e).__name__)


def number(value, name: str, lo: float, hi: float, *, integer: bool = False, default=None):
    """`value` (a number or a numeric string) as a finite float (or int) in [lo, hi]; None/"" → default."""
    if value is None or (isinstance(value, str) and not value.strip()):
        if default is not None:
            return default
        raise gr.Error(f"{name} is missing")
    if isinstance(value, bool):
        raise gr.Error(f"{name} must be a number, got {value!r}")
    try:
        v = float(value)
    except (TypeError, ValueError):
        raise gr.Error(f"{name} must be a number, got {str(value)[:40]!r}") from None
    if not math.isfinite(v):
        raise gr.Error(f"{name} must be a finite number, got {value!r}")
    if integer:
        if v != round(v):
            raise gr.Error(f"{name} must be a whole number, got {v:g}")
        v = int(round(v))
    if not lo <= v <= hi:
        raise gr.Error(f"{name} must be between {lo:g} and {hi:g}, got {v:g}")
    return v


def display(size) -> int:
    """The display resolution (longer side): a finite number, clamped to 8–MAX_DISPLAY."""
    v = number(size, "display resolution", -math.inf, math.inf, default=256.0)
    return int(min(max(int(v), 8), MAX_DISPLAY))


def points(value) -> int:
    return number(value, "sampled points", 1, 512, integer=True, default=64)


def strength(value) -> float:
    return float(number(value, "strength", 0.0, 3.0, default=1.0))


def text(value, name: str) -> str:
    if value is not None and not isinstance(value, str):
        raise gr.Error(f"{name} must be text, got {type(value).__name__}")
    return value or ""


def name(value, what: str = "name") -> str:
    """A run or editor name: 1–48 letters, digits, '.', '_' or '-' (surrounding whitespace stripped)."""
    value = text(value, what).strip()
    if not NAME_RE.match(value) or ".." in value:
        raise gr.Error(f"{what} must be 1–48 characters of letters, digits, '.', '_' or '-'")
    return value
