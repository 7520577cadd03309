import pytest
import torch

from gmn.data import EditData
from gmn.editors import KINDS, Editor, EditorConfig, EditorError, apply_edit, load_editor, save_editor
from gmn.train import edit_loss
from inr.siren import SirenArch, init_params

SMALL = dict(hidden=16, interaction_layers=1, deepsets_layers=1, lowrank=4, theta_channels=4, ws_hidden=8,
             ws_layers=2, ng_edge=8, ng_node=8, ng_blocks=1, pp_dim=16, pp_blocks=1, pp_heads=2, mlp_hidden=32)


def _data(task, n=16, hidden=32, seed=0):
    arch = SirenArch(hidden=hidden)
    params = init_params(arch, n, generator=torch.Generator().manual_seed(seed))
    return EditData(params, arch, task)


@pytest.mark.parametrize("kind", KINDS)
def test_every_editor_trains_and_lowers_the_loss(kind):
    torch.manual_seed(0)
    data = _data("paint" if kind == "ws+probe+res" else "dilate")
    editor = Editor(EditorConfig(kind=kind, task=data.task, **SMALL))
    batch = data.batch(torch.arange(16), 32, seed=0)
    editor.fit_norm(batch.params, data.arch, batch.x, batch.target_pts, batch.mask_pts)
    opt = torch.optim.Adam(editor.parameters(), lr=3e-3)
    first = None
    for _ in range(25):
        loss = edit_loss(editor, batch, data.arch, data.grid).mean()
        first = first if first is not None else loss.item()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.9 * first, (kind, first, loss.item())


def test_invert_is_learned_to_near_zero_error(tiny_zoo):
    # invert is exactly reachable: negate the last layer (Δ = -2 W_L, -2 b_L)
    torch.manual_seed(0)
    data = EditData.from_zoo("mnist5k", "train", "invert", root=tiny_zoo, limit=8)
    editor = Editor(EditorConfig(kind="ws", task="invert"))  # the default WS editor
    batch = data.batch(torch.arange(8), 16, seed=0)
    editor.fit_norm(batch.params, data.arch, batch.x, batch.target_pts)
    start = edit_loss(editor, batch, data.arch, data.grid).mean().item()
    opt = torch.optim.Adam(editor.parameters(), lr=3e-3)
    for _ in range(400):
        loss = edit_loss(editor, batch, data.arch, data.grid).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    with torch.no_grad():
        final = edit_loss(editor, batch, data.arch, data.grid, clamp=True).mean().item()
    assert final < 0.01 * start, (start, final)


def test_checkpoint_round_trip(tmp_path):
    data = _data("dilate", n=4)
    editor = Editor(EditorConfig(kind="ws+gmn", **SMALL))
    b = data.batch(torch.arange(4), 16, seed=0)
    editor.fit_norm(b.params, data.arch, b.x, b.target_pts)
    save_editor(tmp_path / "e.safetensors", editor, {"metrics": {"val_mse": 0.1}})
    back, card = load_editor(tmp_path / "e.safetensors")
    assert card["metrics"]["val_mse"] == 0.1 and card["editor"] == "ws+gmn"
    assert (tmp_path / "e.json").exists()
    with torch.no_grad():
        a = editor.eval()(b.params, data.arch, b.x, b.target_pts)
        c = back(b.params, data.arch, b.x, b.target_pts)
    assert all(torch.equal(x, y) for x, y in zip(a, c))


def test_bad_editor_files(tmp_path):
    torch.save({"x": 1}, tmp_path / "p.safetensors")
    with pytest.raises(EditorError, match="not a valid editor"):
        load_editor(tmp_path / "p.safetensors")
    with pytest.raises(EditorError, match="no editor file"):
        load_editor(tmp_path / "missing.safetensors")
    with pytest.raises(EditorError, match="unknown editor kind"):
        EditorConfig(kind="transformer")


def test_any_width_same_depth_and_depth_mismatch_is_refused():
    editor = Editor(EditorConfig(kind="ws+gmn", **SMALL)).eval()
    for hidden in (16, 64):
        data = _data("dilate", n=2, hidden=hidden)
        b = data.batch(torch.arange(2), 16, seed=0)
        with torch.no_grad():
            d = editor(b.params, data.arch, b.x, b.target_pts)
        assert [t.shape for t in apply_edit(b.params, d)] == [t.shape for t in b.params]
    deep = SirenArch(layers=3)
    p = init_params(deep, 1)
    with pytest.raises(EditorError, match="INR has 4 weight layers .* expects 3"):
        editor(p, deep, torch.zeros(1, 4, 2), torch.zeros(1, 4, 1))
    mlp = Editor(EditorConfig(kind="mlp", **SMALL))
    with pytest.raises(EditorError, match="only edits width 32"):
        mlp.check(SirenArch(hidden=16))


def _paint_case(n: int, b: int, *, seed: int):
    """Width-8 SIRENs in float64 with a random paint objective at b points: (arch, generator, params, x, t, m)."""
    arch = SirenArch(hidden=8)
    g = torch.Generator().manual_seed(seed)
    params = init_params(arch, n, generator=g, dtype=torch.float64)
    x = torch.rand(n, b, 2, generator=g, dtype=torch.float64) * 2 - 1
    t = torch.rand(n, b, 1, generator=g, dtype=torch.float64)
    m = (torch.rand(n, b, 1, generator=g) > 0.5).double()
    return arch, g, params, x, t, m


def _random_editor(kind: str, arch: SirenArch, **config) -> Editor:
    """A float64 paint editor with random weights (an untrained one edits almost nothing)."""
    editor = Editor(EditorConfig(kind=kind, task="paint", arch=arch.to_dict(), **SMALL, **config)).double()
    with torch.no_grad():
        for p in editor.parameters():
            p.copy_(torch.randn_like(p) * 0.3)
    return editor


@pytest.mark.parametrize("kind", KINDS)
def test_editors_are_equivariant_and_point_invariant(kind):
    """Every editor kind (with its preconditioning) permutes Δθ with the hidden neurons and ignores
    point order; the flat MLP baseline must fail the neuron test."""
    from gmn.decompose import permute_params, random_perms

    arch, g, params, x, t, m = _paint_case(2, 12, seed=1)
    editor = _random_editor(kind, arch)
    with torch.no_grad():
        perms = random_perms(arch.dims, g)
        order = torch.randperm(12, generator=g)
        base = editor(params, arch, x, t, m)
        permuted = editor(permute_params(params, perms), arch, x[:, order], t[:, order], m[:, order])
    expected = permute_params(base, perms)
    same = all(torch.allclose(a, b, rtol=1e-8, atol=1e-10) for a, b in zip(permuted, expected))
    assert same == (kind != "mlp")


def test_merge_copies_is_the_mean_of_the_copies_outputs():
    """OCE: k edited SIRENs merged into one k× wider SIREN compute exactly the mean of their outputs."""
    from gmn.editors import edited_arch, edited_forward, merge_copies
    from inr.siren import forward

    arch = SirenArch(hidden=6, layers=3, dim_out=3)
    g = torch.Generator().manual_seed(0)
    params = init_params(arch, 2, generator=g, dtype=torch.float64)
    dtheta = [torch.randn(*t.shape, 4, generator=g, dtype=torch.float64) * 0.05 for t in params]
    x = torch.rand(2, 20, 2, generator=g, dtype=torch.float64) * 2 - 1
    copies = [forward([p + 0.7 * d[..., c] for p, d in zip(params, dtheta)], arch, x) for c in range(4)]
    mean = torch.stack(copies).mean(0)
    merged = apply_edit(params, dtheta, 0.7)
    wide = edited_arch(arch, dtheta)
    assert wide.hidden == 24 and [t.shape[1] for t in merged[:-2]] == [24] * 6
    torch.testing.assert_close(forward(merged, wide, x), mean, rtol=0, atol=1e-12)
    torch.testing.assert_close(edited_forward(params, dtheta, arch, x, 0.7), mean, rtol=0, atol=1e-12)
    one = merge_copies([p.unsqueeze(-1) for p in params])  # k = 1: the SIREN itself
    assert all(torch.equal(a, b) for a, b in zip(one, params))


@pytest.mark.parametrize("kind", ["ws", "ng+gmn"])
def test_oce_editor_trains_is_equivariant_and_refuses_other_kinds(kind):
    from gmn.decompose import permute_params, random_perms

    torch.manual_seed(0)
    data = _data("dilate", n=8)
    editor = Editor(EditorConfig(kind=kind, task="dilate", copies=3, **SMALL))
    batch = data.batch(torch.arange(8), 16, seed=0)
    editor.fit_norm(batch.params, data.arch, batch.x, batch.target_pts)
    d = editor(batch.params, data.arch, batch.x, batch.target_pts)
    assert [t.shape for t in d] == [(*p.shape, 3) for p in batch.params]
    with torch.no_grad():
        perms = random_perms(data.arch.dims, torch.Generator().manual_seed(1))
        moved = editor(permute_params(batch.params, perms), data.arch, batch.x, batch.target_pts)
    for a, b in zip(moved, permute_params(d, perms)):
        torch.testing.assert_close(a, b, rtol=1e-4, atol=1e-6)
    opt = torch.optim.Adam(editor.parameters(), lr=3e-3)
    first = edit_loss(editor, batch, data.arch, data.grid).mean().item()
    for _ in range(25):
        loss = edit_loss(editor, batch, data.arch, data.grid).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
    assert loss.item() < 0.9 * first
    with pytest.raises(EditorError, match="need a weight-space backbone"):
        EditorConfig(kind="gmn", copies=2)


def test_two_rounds_are_the_one_round_network_applied_twice():
    """rounds = 2 equals applying the same network once, recomputing the objective's gradients at the edited
    INR, and applying it again (same points); training reaches the first round through the second."""
    arch, _, params, x, t, m = _paint_case(3, 10, seed=2)
    one = _random_editor("ng+gmn", arch)
    two = Editor(EditorConfig(kind="ng+gmn", task="paint", arch=arch.to_dict(), rounds=2, **SMALL)).double()
    two.load_state_dict(one.state_dict())
    with torch.no_grad():
        d1 = one(params, arch, x, t, m)
        d2 = one(apply_edit(params, d1), arch, x, t, m)
        both = two(params, arch, x, t, m)
    assert max((a - b).abs().max().item() for a, b in zip(d1, d2)) > 1e-6  # the second round moves on
    for got, a, b in zip(both, d1, d2):
        torch.testing.assert_close(got, a + b, rtol=1e-10, atol=1e-12)
    # the gradient of a loss on the two-round edit differs from treating round one's edit as a constant
    w = next(p for n, p in two.named_parameters() if p.requires_grad)
    loss = sum(d.pow(2).sum() for d in two(params, arch, x, t, m))
    assert torch.autograd.grad(loss, w)[0].abs().sum() > 0
    with pytest.raises(EditorError, match="several rounds"):
        EditorConfig(kind="ng+gmn", rounds=2, copies=2)
    with pytest.raises(EditorError, match="several rounds"):
        EditorConfig(kind="ws", rounds=2)
    with pytest.raises(EditorError, match="at least 1"):
        EditorConfig(kind="gmn", rounds=0)


def test_the_registry_says_how_many_rounds_and_copies_an_editor_uses():
    from gmn.edit import describe_editor

    arch = SirenArch(hidden=32).to_dict()
    plain = describe_editor({"task": "paint", "config": {"kind": "ng+gmn", "arch": arch}})
    assert plain == "paint of gray images (digits, faces) (SIRENs 2→H→H→1, 2 sine layers, any width)"
    two = describe_editor({"task": "paint", "config": {"kind": "ng+gmn", "arch": arch, "rounds": 2, "widths": [32]}})
    assert two.endswith("width 32 only; 2 rounds: it reads the gradients again after each)")
    oce = describe_editor({"task": "dilate", "config": {"kind": "ng+gmn", "arch": arch, "copies": 4}})
    assert "4 averaged copies: the edited INR is 4× as wide" in oce


def test_an_editor_with_lambda_03_reads_its_own_weighted_objective():
    """λ = 0.3 reaches what the editor reads: the output neurons' g is 2 w (f − t) with w = m + 0.3 (1 − m)
    (float64), the residual kind's r is w (f − t), and every round of a two-round editor reads that objective at
    the INR edited so far (`gradients_seen`, what the app's "what GradMetaNet sees" draws)."""
    from gmn.decompose import decompose_gradients, masked_mse
    from inr.siren import forward

    arch, _, params, x, t, m = _paint_case(2, 12, seed=4)
    w = m + 0.3 * (1 - m)
    f = forward(params, arch, x)  # (N, B, 1)
    for kind in ("ws+gmn", "ws+probe+res"):
        editor = _random_editor(kind, arch, lam=0.3)
        ns = editor.neurons(params, arch, x, t, m)
        if kind == "ws+gmn":
            torch.testing.assert_close(ns.g[..., -1:], 2 * w * (f - t), rtol=1e-10, atol=1e-12)
        else:
            torch.testing.assert_close(ns.feats[:, :, 0, -1:], w * (f - t), rtol=1e-10, atol=1e-12)
    two = _random_editor("ng+gmn", arch, lam=0.3, rounds=2)
    seen = two.gradients_seen(params, arch, x, t, m)
    with torch.no_grad():
        first = two._rounds(params, arch, x, t, m, 1)[0]
    assert len(seen) == 2 and seen[0].feats.dtype == torch.float64
    for s, at in zip(seen, (params, apply_edit(params, first))):
        ref = decompose_gradients(at, arch, x, objective=masked_mse(t, m, t, 0.3))
        torch.testing.assert_close(s.feats, ref.feats, rtol=1e-10, atol=1e-12)
    f1 = forward(apply_edit(params, first), arch, x)
    torch.testing.assert_close(seen[1].g[..., -1:], 2 * w * (f1 - t), rtol=1e-10, atol=1e-12)
    assert (seen[1].g - seen[0].g).abs().max() > 1e-6  # the second round reads the edited INR


def test_ws_gmn_fit_norm_is_one_fit_of_weights_and_theta_channels():
    """GradMetaNetWS.fit_norm (the one fit; Editor.fit_norm calls it) fits WS's input RMS of the Θ[f] channels
    GradMetaNet hands it, not only of the weights."""
    data = _data("dilate", n=6, hidden=16)
    b = data.batch(torch.arange(6), 16, seed=1)
    torch.manual_seed(0)
    editor = Editor(EditorConfig(kind="ws+gmn", arch=data.arch.to_dict(), **SMALL))
    editor.fit_norm(b.params, data.arch, b.x, b.target_pts)
    net = editor.net
    with torch.no_grad():
        extra = net.gmn(editor.neurons(b.params, data.arch, b.x, b.target_pts, None), b.params)
        inputs = net.ws.inputs(b.params, extra)
    for scale, t in zip(net.ws.in_scale, inputs):
        torch.testing.assert_close(scale, t.pow(2).flatten(0, -2).mean(0).sqrt().clamp_min(1e-8))
    assert (net.ws.in_scale[:, 1:] != 1).all()  # the Θ channels are fitted
    torch.manual_seed(0)
    again = Editor(EditorConfig(kind="ws+gmn", arch=data.arch.to_dict(), **SMALL))  # the same weights
    again.net.fit_norm(b.params, editor.neurons(b.params, data.arch, b.x, b.target_pts, None))
    for (name, u), v in zip(editor.state_dict().items(), again.state_dict().values()):
        if "scale" in name or "norm" in name:
            torch.testing.assert_close(u, v)


def test_configs_with_an_unknown_key_are_refused(tmp_path):
    """A card or file with a misspelled key would load with the default: refused in one line naming the key."""
    from gmn.modelfile import save_module
    from inr.siren import SirenArch

    with pytest.raises(EditorError, match=r"^unknown editor config key\(s\): lamda, roundz;"):
        EditorConfig.from_dict({"kind": "ws", "task": "paint", "lamda": 0.3, "roundz": 2})
    assert EditorConfig.from_dict({"kind": "ws", "task": "paint", "lam": 0.3}).lam == 0.3
    with pytest.raises(ValueError, match=r"^unknown SIREN architecture key\(s\): hiden;"):
        SirenArch.from_dict({"hiden": 64, "layers": 2})
    assert SirenArch.from_dict({"hidden": 64}).hidden == 64
    editor = Editor(EditorConfig(kind="ws", **SMALL))
    save_module(tmp_path / "typo.safetensors", editor, "gmn-editor", {**editor.config.to_dict(), "lamda": 0.3}, {})
    with pytest.raises(EditorError, match="lamda") as err:
        load_editor(tmp_path / "typo.safetensors")
    assert "\n" not in str(err.value)


# the config: nested parts, the old flat layout, shipped cards

SHIPPED_EDITS = {  # Σ Δθ and Σ Δθ² of each shipped editor on the fixed INRs of `_fixed_edit`, recorded with the
    # flat-config code before the nesting (commit 4ddbefe; the full Δθ compared bit-identical at the change)
    "blur-gmn": (-1.1556794411107134, 0.022771697638500645),
    "blur": (2.866073321845761, 0.04395403601309159),
    "contrast": (0.10559227540085203, 0.060763491521813734),
    "dilate-inplace": (-0.18479643347711772, 0.16772887396219133),
    "dilate": (9.016741780659721, 0.631697739214906),
    "erode-inplace": (5.132173627946258, 0.10656724822222796),
    "erode": (24.106092210940176, 0.5218848177359603),
    "paint-1round": (-1.0128669312557008, 0.006601869212386881),
    "paint-color": (-0.7758987712250018, 0.7555720086255977),
    "paint": (-4.287437072263856, 0.08903137116927502),
    "sharpen": (1.1172760499950982, 0.011278975171385975),
}


def _fixed_edit(editor):
    """Δθ of `editor` on 2 fixed Gaussian SIRENs of its own architecture at 64 fixed points (masked for paint)."""
    from gmn.curvature import gaussian_sirens

    arch = editor.config.siren
    g = torch.Generator().manual_seed(1)
    params = gaussian_sirens(arch, 2, seed=3)
    x = torch.rand(2, 64, 2, generator=g) * 2 - 1
    t = torch.rand(2, 64, arch.dim_out, generator=g)
    m = (torch.rand(2, 64, 1, generator=g) > 0.5).float() if editor.config.task.startswith("paint") else None
    with torch.no_grad():
        return editor(params, arch, x, t, m)


@pytest.mark.parametrize("name", sorted(SHIPPED_EDITS))
def test_shipped_editors_load_from_their_flat_cards_and_edit_as_before(name):
    """Every shipped file (old flat config) loads; its nested config rebuilds the same editor, bit for bit."""
    import json
    from pathlib import Path

    path = Path(__file__).resolve().parents[2] / "assets" / "editors" / f"{name}.safetensors"
    editor, card = load_editor(path)
    flat = json.loads(path.with_suffix(".json").read_text())["config"]
    assert "ws_hidden" in flat and EditorConfig.from_dict(flat) == editor.config  # the card's flat layout
    nested = editor.config.to_dict()
    assert not set(nested) & {"hidden", "ws_hidden", "ng_edge", "pp_dim", "mlp_hidden", "theta_channels"}
    again = Editor(EditorConfig.from_dict(json.loads(json.dumps(nested)))).eval()
    again.load_state_dict(editor.state_dict())  # strict: the same modules and shapes
    before, after = _fixed_edit(editor), _fixed_edit(again)
    assert all(torch.equal(u, v) for u, v in zip(before, after))
    total, squares = SHIPPED_EDITS[name]
    assert sum(d.double().sum() for d in after).item() == pytest.approx(total, rel=1e-5, abs=1e-6)
    assert sum(d.double().pow(2).sum() for d in after).item() == pytest.approx(squares, rel=1e-5)


@pytest.mark.parametrize("kind", KINDS)
def test_flat_and_nested_configs_build_the_same_editor(kind):
    """The old flat keywords and the nested parts give one config; it has at most 12 fields and round-trips."""
    flat = EditorConfig(kind=kind, task="paint", lam=0.3, **SMALL)
    assert len(flat.__dataclass_fields__) <= 12
    nested = flat.to_dict()
    assert EditorConfig.from_dict(nested) == flat
    assert (nested["reader"] is None) == (kind in ("ws", "ng", "gmnpp", "mlp"))
    assert (nested["backbone"] is None) == (kind == "gmn")
    if nested["reader"]:
        assert nested["reader"]["hidden"] == nested["reader"]["decoder_hidden"] == 16
        assert nested["reader"]["out_channels"] == (4 if "+" in kind else 1)  # theta_channels
    size = {"ws": "hidden", "ng": "edge_dim", "gmnpp": "dim", "mlp": "hidden"}.get(kind.split("+")[0])
    if size:
        assert nested["backbone"][size] != EditorConfig(kind=kind).to_dict()["backbone"][size]
    if kind == "gmnpp":  # lowrank and weight_features are shared by the reader and GradMetaNet++
        assert (nested["backbone"]["lowrank"], nested["backbone"]["heads"]) == (4, 2)
    torch.manual_seed(0)
    a = Editor(flat)
    torch.manual_seed(0)
    b = Editor(EditorConfig.from_dict(nested))
    assert [(k, v.shape) for k, v in a.state_dict().items()] == [(k, v.shape) for k, v in b.state_dict().items()]
    assert all(torch.equal(u, v) for u, v in zip(a.state_dict().values(), b.state_dict().values()))


def test_nested_configs_refuse_unknown_derived_and_misplaced_parts():
    with pytest.raises(EditorError, match=r"^unknown backbone config key\(s\): edge_dim;"):
        EditorConfig.from_dict({"kind": "ws", "backbone": {"edge_dim": 8}})
    with pytest.raises(EditorError, match=r"^unknown backbone config key\(s\): out_channels;"):  # it is `copies`
        EditorConfig.from_dict({"kind": "ws", "backbone": {"out_channels": 3}})
    with pytest.raises(EditorError, match=r"^unknown reader config key\(s\): in_features;"):
        EditorConfig.from_dict({"kind": "ws+gmn", "reader": {"in_features": 3}})
    with pytest.raises(EditorError, match="has no GradMetaNet reader"):
        EditorConfig.from_dict({"kind": "ws", "reader": {"hidden": 8}})
    with pytest.raises(EditorError, match="is GradMetaNet alone"):
        EditorConfig.from_dict({"kind": "gmn", "backbone": {"hidden": 8}})
    with pytest.raises(EditorError, match="reader out_channels must be 1"):
        EditorConfig.from_dict({"kind": "gmn", "reader": {"out_channels": 4}})


def test_train_model_overrides_flat_and_nested_and_those_of_bench_run():
    """`gmn train --model JSON` builds EditorConfig(kind=--editor, **JSON): flat keys ({"copies": 4},
    {"hidden": 64}) and nested parts both work, and every --model of bench/run.py changes the editor it trains."""
    import json

    from bench.editors import KINDS as BENCH_KINDS
    from bench.run import LONG

    assert EditorConfig(kind="ws+gmn", **{"copies": 4}).copies == 4
    assert EditorConfig(kind="ws+gmn", **{"hidden": 64}).reader.decoder_hidden == 64
    nested = EditorConfig(kind="ng+gmn", **{"reader": {"hidden": 24}, "backbone": {"blocks": 2}, "rounds": 2})
    assert (nested.reader.hidden, nested.reader.lowrank, nested.backbone.blocks, nested.rounds) == (24, 8, 2, 2)
    assert EditorConfig.from_dict({"kind": "ng", "backbone": {"edge_dim": 4}}).backbone.edge_dim == 4
    checked = 0
    for cmd in LONG:
        if "--model" not in cmd:
            continue
        model = json.loads(cmd[cmd.index("--model") + 1])
        kinds = cmd[cmd.index("--kinds") + 1].split(",") if "--kinds" in cmd else BENCH_KINDS
        task = cmd[cmd.index("--task") + 1]
        for kind in kinds:
            cfg = EditorConfig.from_dict({"kind": kind, "task": task, **model})
            assert cfg != EditorConfig(kind=kind, task=task), (kind, model)
            checked += 1
    assert checked >= 10
