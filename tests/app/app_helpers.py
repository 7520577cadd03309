"""Shared by the app tests (pytest puts tests/app on sys.path)."""

import socket
from pathlib import Path

import torch

from gmn.editors import Editor, EditorConfig
from inr.siren import SirenArch, init_params

PASSWORD = "test-password-123"
TINY = dict(hidden=16, interaction_layers=1, deepsets_layers=1, lowrank=4, theta_channels=4, ws_hidden=8, ws_layers=2)


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tiny_editor(task: str, kind: str = "ws+gmn", *, scale: float = 0.01, seed: int = 0, channels: int = 1) -> Editor:
    """A randomly initialised editor (untrained: its edits are arbitrary but finite and visible)."""
    torch.manual_seed(seed)
    arch = SirenArch(dim_out=channels)
    cfg = EditorConfig(kind=kind, task=task, arch=arch.to_dict(), points=32, edit_scale_init=scale, **TINY)
    ed = Editor(cfg)
    params = init_params(arch, 8, generator=torch.Generator().manual_seed(seed))
    x = torch.rand(8, 32, 2) * 2 - 1
    t = torch.rand(8, 32, channels)
    mask = (torch.rand(8, 32, 1) > 0.5).float() if task == "paint" else None
    ed.fit_norm(params, arch, x, t, mask)
    return ed.eval()


def upload(page, path: Path, field: str = "#image-upload", tries: int = 3) -> None:
    """Upload a file into the upload component `field` of the page and wait until it lists the file.

    The file's row is found by its `aria-label` (the file name), not by its text: Gradio lists the name as
    two spans, stem and extension, so the row's text is " name .png" and a text match on "name.png" never
    matches it (checked: count 0 after every upload). The old text match passed only when it caught some
    passing element (probably the upload's progress) with the whole name; under load it missed it and
    timed out with the name on screen, three times. Each try waits 60 s, leaves a screenshot
    (tests/app/artifacts) and sets the file again while the input is still there."""
    from playwright.sync_api import TimeoutError as PlaywrightTimeout

    listed = f'{field} [aria-label="{path.name}"]'
    artifacts = Path(__file__).resolve().parent / "artifacts"
    for i in range(tries):
        if page.locator(listed).count():
            return  # a slow earlier try got there
        if page.locator(f"{field} input[type=file]").count():
            page.set_input_files(f"{field} input[type=file]", str(path))
        try:
            page.wait_for_selector(listed, timeout=60_000)
            return
        except PlaywrightTimeout:
            artifacts.mkdir(exist_ok=True)
            page.screenshot(path=str(artifacts / f"0-upload-{field.strip('#')}-try-{i + 1}-failed.png"), full_page=True)
    raise AssertionError(f"{path.name} never showed as uploaded into {field} after {tries} tries")
