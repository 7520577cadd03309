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


def sensitivity_points(value) -> int:
    """The sensitivity map's points: missing → 128 (the API's default), as `points` defaults for an edit."""
    return number(value, "points", 16, 1024, integer=True, default=128)


def top_percent(value) -> float:
    """The share of most sensitive weights shown: missing → 5 %."""
    return float(number(value, "most sensitive weights (%)", 0.5, 50, default=5.0))


def _endpoint(block_fn) -> str:
    name = getattr(block_fn, "api_name", None) or getattr(block_fn, "name", None) or "this endpoint"
    return f"/{name}" if isinstance(name, str) and not name.startswith("/") else str(name)


def guard_calls(demo: gr.Blocks) -> gr.Blocks:
    """Gradio's own checks of a call run before any handler (an argument count, a file argument that names a
    file never uploaded, a value its component cannot read); with show_error off their message is hidden and
    the caller gets a bare {"error": null}. This wraps those checks of `demo` so that each failure is one
    gr.Error line naming the endpoint and what to send. Returns `demo`."""
    check, preprocess = demo.validate_inputs, demo.preprocess_data

    def validate_inputs(block_fn, inputs):
        ports = [b for b in block_fn.inputs if not getattr(b, "skip_api", False)]
        if len(inputs) > len(block_fn.inputs) or len(inputs) < len(block_fn.inputs):
            raise gr.Error(f"{_endpoint(block_fn)} takes {len(ports)} argument(s), got {len(inputs)}")
        return check(block_fn, inputs)

    async def preprocess_data(block_fn, inputs, state, explicit_call=False):
        try:
            return await preprocess(block_fn, inputs, state, explicit_call)
        except gr.Error:
            raise
        except Exception as e:  # noqa: BLE001 - Gradio's checks raise many types; each becomes one line
            if type(e).__name__ == "InvalidPathError":
                raise gr.Error(f"{_endpoint(block_fn)}: a file argument must be a file uploaded first "
                               "(POST /gradio_api/upload, or gradio_client's handle_file)") from None
            first = (str(e).splitlines() or [type(e).__name__])[0][:160]
            raise gr.Error(f"{_endpoint(block_fn)}: an argument has the wrong form ({first})") from None

    demo.validate_inputs, demo.preprocess_data = validate_inputs, preprocess_data
    return demo
