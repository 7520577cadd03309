"""The edit tab's "what GradMetaNet sees" (app.views.gmn_inputs / gmn_view): the gradients of the editor's own
objective (masked and λ-weighted for paint) at the shown tile, in every round the editor ran (issue 27)."""

import torch
from app_helpers import TINY

from app import editing
from app.registry import Settings
from app.sources import load_example
from app.views import gmn_inputs, gmn_view
from gmn.decompose import decompose_gradients, masked_mse
from gmn.editors import Editor, EditorConfig, load_editor, save_editor
from inr.siren import SirenArch, forward, init_params, select


def _paint_editor(rounds: int) -> Editor:
    """A random gray paint editor with λ = 0.3 that reads gradients, `rounds` rounds."""
    torch.manual_seed(rounds)
    arch = SirenArch()
    ed = Editor(EditorConfig(kind="ws+gmn", task="paint", arch=arch.to_dict(), lam=0.3, rounds=rounds,
                             edit_scale_init=0.05, **TINY))
    params = init_params(arch, 8, generator=torch.Generator().manual_seed(0))
    x = torch.rand(8, 16, 2) * 2 - 1
    ed.fit_norm(params, arch, x, torch.rand(8, 16, 1), (torch.rand(8, 16, 1) > 0.5).float())
    return ed.eval()


def test_gmn_view_shows_the_editors_own_objective_in_every_round(tmp_path):
    for r in (1, 2):
        save_editor(tmp_path / f"paint{r}.safetensors", _paint_editor(r), {"data": {"dataset": "mnist5k"}})
    settings = Settings(registry_dirs=[tmp_path], published_dir=tmp_path / "none", runs_dir=tmp_path / "runs")
    session = load_example("mnist-test-0")
    h, w = session.grid.image_size
    mask = torch.zeros(h, w, 1)
    mask[4:14, 6:20] = 1
    images = {}
    for r in (1, 2):
        step = editing.run_edit(settings, session, f"paint{r}", 16, 1.0, mask=mask, paint=torch.tensor([1.0]))
        e, arch = step.edit, session.arch
        seen = gmn_inputs(e, arch)
        assert len(seen) == r
        editor = load_editor(tmp_path / f"paint{r}.safetensors")[0]
        tile = select(e.base, e.tile)
        k = int((e.tiles == e.tile).nonzero()[0, 0])
        m = (e.weight[k : k + 1] > 0.65).float()  # w = m + 0.3 (1 − m): 1 inside the stroke, 0.3 outside
        ref = editor.gradients_seen(tile, arch, e.tile_x[None], e.tile_target[None], m)
        for got, want in zip(seen, ref, strict=True):
            torch.testing.assert_close(got.feats, want.feats)
        # the first round is the masked, λ = 0.3 objective at the INR before the edit, not a plain MSE
        own = masked_mse(e.tile_target[None], m, e.tile_target[None], 0.3)
        torch.testing.assert_close(seen[0].feats, decompose_gradients(tile, arch, e.tile_x[None], objective=own).feats)
        f = forward(tile, arch, e.tile_x[None])
        torch.testing.assert_close(seen[0].g[..., -1:], 2 * (m + 0.3 * (1 - m)) * (f - e.tile_target[None]))
        if r == 2:  # the second round reads the INR after the first round's edit
            assert (seen[1].feats - seen[0].feats).abs().max() > 1e-6
        images[r] = gmn_view(e, arch)
        assert images[r].ndim == 3 and images[r].dtype.name == "uint8"
    assert images[2].shape[0] > images[1].shape[0]  # one panel per round
