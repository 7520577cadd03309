import torch

from gmn.data import EditData
from gmn.evaluate import (
    errors_to,
    eval_set,
    mse_to,
    nearest_point_paint,
    no_edit,
    no_edit_errors,
    objective_floor,
    run_adam,
)
from gmn.objectives import filter_images
from inr.siren import render


def test_eval_batches_line_up_with_references(tiny_zoo):
    es = eval_set(EditData.from_zoo("mnist5k", "test", "dilate", root=tiny_zoo))
    pairs = es.batches(16, size=5)
    assert torch.equal(torch.cat([idx for idx, _ in pairs]), torch.arange(len(es.data)))
    for idx, b in pairs:  # each batch holds exactly the INRs its indices name
        assert all(torch.equal(p, q[idx]) for p, q in zip(b.params, es.data.params))
    # zero Adam steps is the identity: per-INR errors equal the no-edit errors, INR by INR
    zero = run_adam(es, points=16, steps=0, lr=1e-3)["per_inr"]
    torch.testing.assert_close(zero, mse_to(es.data.params, es.data.arch, es.reference))
    assert abs(zero.mean().item() - no_edit(es)) < 1e-7
    assert run_adam(es, points=None, steps=20, lr=3e-3)["mse"] < 0.5 * no_edit(es)  # the oracle improves


def test_filter_eval_reports_the_objective_beside_the_reference(tiny_zoo):
    """Filters are scored against the filter of the original image and against the objective every method is
    given (the filter of the INR's own render); they differ only by the fit's error."""
    data = EditData.from_zoo("mnist5k", "test", "dilate", root=tiny_zoo)
    es = eval_set(data)
    ne = no_edit_errors(es)
    own = filter_images(render(data.params, data.arch, data.side).clamp(0, 1), "dilate")
    direct = (data.renders.clamp(0, 1) - own).pow(2).mean(dim=(1, 2, 3)).mean().item()
    assert abs(ne["objective"] - direct) < 1e-6 and ne["objective"] > 0
    floor = objective_floor(es)
    assert abs(floor - (own - filter_images(data.images, "dilate")).pow(2).mean().item()) < 1e-6
    # with the renders as the originals (a perfect fit) the two metrics coincide and the floor is 0
    exact = eval_set(EditData(data.params, data.arch, "dilate"))
    e = no_edit_errors(exact)
    assert abs(e["mse"] - e["objective"]) < 1e-7 and objective_floor(exact) < 1e-12
    full = run_adam(es, points=None, steps=20, lr=3e-3)
    assert full["objective"] < 0.5 * ne["objective"]  # the oracle moves toward its objective


def test_paint_eval_is_seeded_and_split_inside_outside(tiny_zoo):
    data = EditData.from_zoo("mnist5k", "test", "paint", root=tiny_zoo)
    es, again = eval_set(data), eval_set(data)
    assert torch.equal(es.mask, again.mask) and torch.equal(es.reference, again.reference)  # same strokes every run
    assert not torch.equal(es.mask, eval_set(data, seed=1).mask)
    m = es.mask
    assert ((m == 0) | (m == 1)).all() and (m.sum(dim=(1, 2, 3)) > 0).all()
    # reference: the painted colour inside the mask, the INR's own render outside
    torch.testing.assert_close(es.reference * (1 - m), data.renders * (1 - m))
    e = errors_to(data.params, data.arch, es.reference, m)
    assert torch.all(e["outside"] == 0) and torch.all(e["inside"] > 0)  # no edit keeps the outside exactly
    n_in = m.sum(dim=(1, 2, 3))
    n = m[0].numel()
    torch.testing.assert_close(e["mse"], (e["inside"] * n_in + e["outside"] * (n - n_in)) / n)
    ne = no_edit_errors(es)
    assert abs(ne["mse"] - no_edit(es)) < 1e-7 and ne["outside"] == 0
    zero = run_adam(es, points=16, steps=0, lr=1e-3)
    assert abs(zero["inside"] - ne["inside"]) < 1e-7  # zero steps: the identity, split the same way
    full = run_adam(es, points=None, steps=30, lr=3e-3)
    assert full["mse"] < 0.5 * ne["mse"] and full["inside"] < ne["inside"]  # the oracle paints


def test_nearest_point_painter_is_exact_with_every_pixel_and_degrades_with_fewer(tiny_zoo):
    """The same-information painting baseline: with every pixel as a point it knows the mask and the colour, so
    it reproduces the reference exactly; with 16 points it misses part of the stroke."""
    es = eval_set(EditData.from_zoo("mnist5k", "test", "paint", root=tiny_zoo))
    side = es.data.side
    full = nearest_point_paint(es, points=side * side, alpha=1.0)
    assert full["mse"] < 1e-10 and full["inside"] < 1e-10 and full["outside"] < 1e-10
    few = nearest_point_paint(es, points=16, alpha=2.0)
    assert few["mse"] > 1e-4 and few["inside"] < no_edit_errors(es)["inside"]


def test_paint_summary_keeps_per_inr_inside_and_outside(tiny_zoo):
    """The per-INR inside and outside errors (for paired comparisons over seeds) average to the reported ones."""
    es = eval_set(EditData.from_zoo("mnist5k", "test", "paint", root=tiny_zoo), seed=3)
    r = run_adam(es, points=16, steps=2, lr=1e-3)
    for k in ("inside", "outside"):
        assert r[f"per_inr_{k}"].shape == (len(es.data),)
        assert abs(r[f"per_inr_{k}"].mean().item() - r[k]) < 1e-7


def test_paired_difference_clusters_by_inr():
    from bench.editors import paired_difference

    old = torch.tensor([[1.0, 2.0, 3.0], [1.0, 2.0, 3.0]])
    new = old + torch.tensor([[0.0, 1.0, 2.0], [2.0, 1.0, 0.0]])  # per-INR mean differences 1, 1, 1
    diff, se = paired_difference(new, old)
    assert abs(diff - 1.0) < 1e-7 and se < 1e-7  # every INR moved by the same mean: no spread between clusters
    new = old + torch.tensor([[0.0, 0.0, 3.0], [0.0, 0.0, 3.0]])  # INR means 0, 0, 3
    diff, se = paired_difference(new, old)
    assert abs(diff - 1.0) < 1e-7 and abs(se - 1.0) < 1e-6  # std of (0, 0, 3) is sqrt(3), / sqrt(3 INRs)


def test_editor_at_reads_shipped_names_files_and_git_revisions():
    from bench.editors import ROOT, _editor_at

    _, card, label = _editor_at("paint")
    assert card["task"] == "paint" and label == "`paint`"
    _, card2, _ = _editor_at(str(ROOT / "assets" / "editors" / "paint.safetensors"))
    assert card2 == card
    _, card3, label3 = _editor_at("HEAD:paint")  # the committed file (any clone has HEAD)
    assert card3["task"] == "paint" and "HEAD" in label3
    import pytest

    with pytest.raises(SystemExit, match="no assets/editors/nope"):
        _editor_at("HEAD:nope")


def _old_adam_on_points(params, arch, x, target, weight, *, steps, lr):
    """The hand-written loop `adam_loop` replaced (gmn.evaluate before issue 27), kept as the reference."""
    from inr.siren import forward

    p = [t.detach().clone().requires_grad_(True) for t in params]
    opt = torch.optim.Adam(p, lr=lr)
    for _ in range(steps):
        err = (weight * (forward(p, arch, x) - target).pow(2)).mean(dim=(1, 2)).sum()
        opt.zero_grad(set_to_none=True)
        err.backward()
        opt.step()
    return [t.detach() for t in p]


def _paint_points(n=3, b=24, c=3, dtype=torch.float64, seed=0):
    from inr.siren import SirenArch, init_params

    gen = torch.Generator().manual_seed(seed)
    arch = SirenArch(hidden=12, layers=2, dim_out=c)
    params = [t.to(dtype) for t in init_params(arch, n, generator=gen)]
    x = torch.rand(n, b, 2, generator=gen, dtype=dtype) * 2 - 1
    target = torch.rand(n, b, c, generator=gen, dtype=dtype)
    mask = (torch.rand(n, b, 1, generator=gen) > 0.5).to(dtype)
    return params, arch, x, target, mask


def test_adam_loop_equals_the_old_loop_and_each_inr_alone():
    """The one test-time Adam loop on a fixed seed: the same steps as the hand-written loop it replaced, in float64
    with a paint weight at λ = 0.3; each INR of the stack takes the steps it takes alone; a time budget read
    from a fake clock stops after the step that crosses it."""
    from gmn.evaluate import adam_loop
    from gmn.objectives import pixel_weight

    params, arch, x, target, mask = _paint_points()
    w = pixel_weight(mask, 0.3, target)
    assert torch.allclose(w, mask + 0.3 * (1 - mask)) and w.dtype == torch.float64
    new, k = adam_loop(params, arch, x, target, w, steps=7, lr=2e-3)
    old = _old_adam_on_points(params, arch, x, target, w, steps=7, lr=2e-3)
    assert k == 7 and all(a.dtype == torch.float64 for a in new)
    for a, b, p in zip(new, old, params):
        torch.testing.assert_close(a, b, rtol=0, atol=1e-12)
        assert not torch.equal(a, p)  # it moved
    alone, _ = adam_loop([t[1:2] for t in params], arch, x[1:2], target[1:2], w[1:2], steps=7, lr=2e-3)
    for a, s in zip(new, alone):
        torch.testing.assert_close(a[1:2], s, rtol=0, atol=1e-12)
    seen = []
    last, _ = adam_loop(params, arch, x, target, w, steps=3, lr=2e-3, on_step=lambda k, p: seen.append((k, p)))
    assert [k for k, _ in seen] == [1, 2, 3] and all(torch.equal(a, b) for a, b in zip(seen[-1][1], last))
    ticks = iter(range(100))
    timed, k = adam_loop(params, arch, x, target, w, seconds=3.5, lr=2e-3, clock=lambda: float(next(ticks)))
    assert k == 4  # clock 0 at the start, then 1, 2, 3 (< 3.5: go on), 4 (stop) after each step
    four = adam_loop(params, arch, x, target, w, steps=4, lr=2e-3)[0]
    assert all(torch.equal(a, b) for a, b in zip(timed, four))
    assert adam_loop(params, arch, x, target, w, seconds=0.0, lr=2e-3)[1] == 1  # at least one step
    import pytest

    with pytest.raises(ValueError, match="exactly one of steps= and seconds="):
        adam_loop(params, arch, x, target, w, lr=1e-3)
    from gmn.evaluate import POINTS_LR, points_lr

    # the app's equal-time Adam: the lr tuned for the nearest K (in log K) of the benchmark's tuned ones
    assert [points_lr(k) for k in (1, 2, 5, 10, 20, 40, 100, 1000)] == [POINTS_LR[k] for k in (1, 1, 10, 10, 10, 100,
                                                                                                  100, 100)]


def test_an_editor_with_lambda_03_is_scored_and_its_adam_run_on_its_own_objective(tiny_zoo):
    """λ = 0.3 reaches the evaluation: the EvalSet `gmn eval` and the admin build carries the editor's λ, and
    the Adam baseline steps on w = m + 0.3(1 − m) at the points (not on λ = 1)."""
    from gmn.editors import Editor, EditorConfig
    from gmn.evaluate import adam_on_points, editor_eval_set
    from inr.siren import SirenArch

    editor = Editor(EditorConfig(kind="ws", task="paint", arch=SirenArch().to_dict(), lam=0.3, ws_hidden=4,
                                 ws_layers=1))
    es = editor_eval_set(editor, "mnist5k", "test", root=tiny_zoo, limit=6)
    m = es.mask
    assert es.objectives.lam == 0.3 and es.data.lam == 0.3
    torch.testing.assert_close(es.objectives.weight, m + 0.3 * (1 - m))
    r = run_adam(es, points=16, steps=3, lr=3e-3)
    ((idx, b),) = es.batches(16)
    arch = es.data.arch
    ref = adam_on_points(b.params, arch, b.x, b.target_pts, b.mask_pts + 0.3 * (1 - b.mask_pts), steps=3, lr=3e-3)
    torch.testing.assert_close(r["per_inr"], mse_to(ref, arch, es.reference[idx]))
    at_one = adam_on_points(b.params, arch, b.x, b.target_pts, torch.ones_like(b.mask_pts), steps=3, lr=3e-3)
    assert (r["per_inr"] - mse_to(at_one, arch, es.reference[idx])).abs().max() > 1e-7  # λ = 1 is another run


def test_inside_and_outside_errors_are_means_over_pixels_and_channels():
    """Colour paint: "inside" is the mean squared error over the mask's pixels and all three channels (the total
    MSE is their pixel-weighted mean), checked against a direct computation."""
    from gmn.evaluate import image_errors

    g = torch.Generator().manual_seed(0)
    img, ref = torch.rand(2, 6, 5, 3, generator=g), torch.rand(2, 6, 5, 3, generator=g)
    mask = torch.zeros(2, 6, 5, 1)
    mask[0, 1:4, 1:3] = 1
    mask[1, :2] = 1
    e = image_errors(img, ref, mask)
    sq = (img - ref).pow(2)
    for i in range(2):
        m = mask[i, ..., 0] > 0.5
        torch.testing.assert_close(e["inside"][i], sq[i][m].mean())
        torch.testing.assert_close(e["outside"][i], sq[i][~m].mean())
