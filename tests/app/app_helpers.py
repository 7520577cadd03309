"""Shared by the app tests (pytest puts tests/app on sys.path)."""

import socket

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
