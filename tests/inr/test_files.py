import json
import math

import pytest
import torch
from safetensors.torch import load_file, save_file

from inr.errors import InrFileError
from inr.files import load_inr, load_sirennet, save_inr, save_stack
from inr.siren import SirenArch, forward, init_params, to_sirennet


@pytest.fixture
def inr_file(tmp_path):
    arch = SirenArch(hidden=16, layers=3, dim_out=3)
    params = init_params(arch, 1, generator=torch.Generator().manual_seed(0))
    path = tmp_path / "a.safetensors"
    save_inr(path, params, arch, image_size=[32, 32], source="test", psnr=31.5)
    return path, params, arch


def test_save_load_bit_exact(inr_file):
    path, params, arch = inr_file
    inr = load_inr(path)
    assert inr.arch == arch
    assert all(torch.equal(a, b) for a, b in zip(inr.params, params))
    assert inr.meta["image_size"] == [32, 32] and inr.meta["psnr"] == 31.5 and inr.meta["source"] == "test"
    assert inr.meta["format"] == "gmn-inr"


def test_file_is_a_plain_sirennet_state_dict(inr_file):
    path, params, arch = inr_file
    from siren_pytorch import SirenNet

    net = SirenNet(2, 16, 3, 3, w0=30.0, w0_initial=30.0)
    net.load_state_dict(load_file(str(path)))
    x = torch.rand(7, 2)
    torch.testing.assert_close(net(x) + 0.5, forward(params, arch, x)[0])


def test_plain_sirennet_file_loads(tmp_path):
    from siren_pytorch import SirenNet

    net = SirenNet(2, 24, 1, 2, w0=30.0, w0_initial=30.0)
    save_file(net.state_dict(), str(tmp_path / "plain.safetensors"))
    inr = load_sirennet(tmp_path / "plain.safetensors")
    x = torch.rand(5, 2)
    torch.testing.assert_close(forward(inr.params, inr.arch, x)[0], net(x) + 0.5)
    assert all(torch.equal(a, b) for a, b in zip(to_sirennet(inr.params, inr.arch).state_dict().values(),
                                                   net.state_dict().values()))
    # strict loader refuses it with a hint
    with pytest.raises(InrFileError, match="no INR metadata"):
        load_inr(tmp_path / "plain.safetensors")


def test_stack_round_trip(tmp_path):
    arch = SirenArch()
    params = init_params(arch, 4)
    imgs = torch.rand(4, 28, 28, 1)
    save_stack(tmp_path / "s.safetensors", params, arch, {"images": imgs, "psnr": torch.arange(4.0)})
    inr = load_inr(tmp_path / "s.safetensors")
    assert inr.n == 4 and torch.equal(inr.tensors["images"], imgs)
    with pytest.raises(InrFileError, match="format"):
        load_inr(tmp_path / "s.safetensors", allow_stack=False)


def _write(tmp_path, tensors, meta):
    p = tmp_path / "bad.safetensors"
    save_file(tensors, str(p), metadata=meta)
    return p


def test_bad_files(tmp_path, inr_file):
    good, params, arch = inr_file
    sd = load_file(str(good))
    meta = {"format": "gmn-inr", "arch": json.dumps(arch.to_dict())}
    cases = []
    (tmp_path / "empty.safetensors").write_bytes(b"")
    cases.append((tmp_path / "empty.safetensors", "empty"))
    (tmp_path / "junk.safetensors").write_bytes(b"hello, not a tensor file at all")
    cases.append((tmp_path / "junk.safetensors", "not a valid safetensors"))
    torch.save(sd, tmp_path / "pickle.pt")
    cases.append((tmp_path / "pickle.pt", "pickled"))
    cases.append((tmp_path / "missing.safetensors", "cannot read"))
    trunc = tmp_path / "trunc.safetensors"
    trunc.write_bytes(good.read_bytes()[:200])
    cases.append((trunc, "not a valid safetensors"))
    for path, msg in cases:
        with pytest.raises(InrFileError, match=msg):
            load_inr(path)
    with pytest.raises(InrFileError, match="lacks 'arch'"):
        load_inr(_write(tmp_path, sd, {"format": "gmn-inr"}))
    with pytest.raises(InrFileError, match="malformed 'arch'"):
        load_inr(_write(tmp_path, sd, {"format": "gmn-inr", "arch": "{nope"}))
    with pytest.raises(InrFileError, match="format"):
        load_inr(_write(tmp_path, sd, {"format": "other", "arch": meta["arch"]}))
    wrong = dict(sd)
    wrong["layers.1.weight"] = torch.zeros(16, 15)
    with pytest.raises(InrFileError, match="shape"):
        load_inr(_write(tmp_path, wrong, meta))
    nan = dict(sd)
    nan["last_layer.bias"] = torch.tensor([0.0, math.nan, 0.0])
    with pytest.raises(InrFileError, match="NaN"):
        load_inr(_write(tmp_path, nan, meta))
    short = {k: v for k, v in sd.items() if k != "last_layer.bias"}
    with pytest.raises(InrFileError, match="lacks tensor"):
        load_inr(_write(tmp_path, short, meta))


def test_atomic_save_leaves_no_temp(tmp_path, inr_file):
    _, params, arch = inr_file
    save_inr(tmp_path / "x.safetensors", params, arch)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["a.safetensors", "x.safetensors"]


# metadata that contradicts the tensors (issue 31): refused from the metadata and the tensor names alone,
# before anything is built from the claim


def _meta(arch: SirenArch, changes: dict | None = None) -> dict:
    meta = {"format": "gmn-inr", "version": "1", "arch": json.dumps(arch.to_dict()), "channels": str(arch.dim_out),
            "image_size": "[32, 32]"}
    meta.update(changes or {})
    return meta


@pytest.mark.parametrize("changes, msg", [
    ({"arch": json.dumps({**SirenArch(hidden=16, layers=3, dim_out=3).to_dict(), "layers": 10**9})},
     "says 1000000000 sine layers, the file holds 3"),
    ({"arch": json.dumps({**SirenArch(hidden=16, layers=3, dim_out=3).to_dict(), "layers": 10**7})},
     "says 10000000 sine layers"),
    ({"arch": '{"dim_in": 2, "hidden": Infinity, "layers": 3, "dim_out": 3}'}, "hidden must be a positive integer"),
    ({"arch": '{"dim_in": 2, "hidden": 16, "layers": 3, "dim_out": 3, "w0": NaN}'}, "w0 must be a finite number"),
    ({"arch": "[2, 16, 16, 16, 3]"}, "expected a JSON object"),
    ({"arch": json.dumps("[1,2,3]")}, "expected a JSON object"),
    ({"arch": json.dumps({**SirenArch(hidden=16, layers=3, dim_out=3).to_dict(), "layers": True})},
     "layers must be a positive integer"),
    ({"channels": "-1"}, "channels '-1'"),
    ({"channels": "NaN"}, "channels 'NaN'"),
    ({"channels": "7"}, "channels '7'"),
    ({"channels": "1"}, "its SIREN outputs 3"),
    ({"image_size": "[true, true]"}, "image_size"),
    ({"image_size": "[32.0, 32]"}, "image_size"),
    ({"image_size": "[NaN, 32]"}, "image_size"),
])
def test_metadata_contradicting_the_tensors_is_refused(tmp_path, inr_file, changes, msg):
    good, _, arch = inr_file
    path = _write(tmp_path, load_file(str(good)), _meta(arch, changes))
    with pytest.raises(InrFileError, match=msg) as e:
        load_inr(path)
    assert "\n" not in str(e.value) and "bad.safetensors" in str(e.value)


def test_seven_channel_siren_is_refused(tmp_path):
    arch = SirenArch(hidden=8, dim_out=7)
    tensors = {k: t[0] for k, t in zip(arch.param_names(), init_params(arch, 1))}
    with pytest.raises(InrFileError, match="1 .gray. or 3 .RGB. channels"):
        load_inr(_write(tmp_path, tensors, _meta(arch)))


def test_huge_layer_claim_builds_nothing(tmp_path, inr_file, monkeypatch):
    """A claim of 10⁹ layers is refused without listing its parameter names (which would hang)."""
    good, _, arch = inr_file
    built = []
    monkeypatch.setattr(SirenArch, "param_names", lambda self: built.append(self) or [])
    claim = json.dumps({**arch.to_dict(), "layers": 10**9})
    path = _write(tmp_path, load_file(str(good)), _meta(arch, {"arch": claim}))
    with pytest.raises(InrFileError, match="sine layers"):
        load_inr(path)
    assert built == []


def test_tiled_file_needs_its_image_size(tmp_path):
    from inr.files import save_tiled
    from inr.tiles import TileGrid

    arch = SirenArch(hidden=8, dim_out=3)
    grid = TileGrid((40, 40), 32, 4)
    save_tiled(tmp_path / "t.safetensors", init_params(arch, grid.count), arch, grid)
    tensors = load_file(str(tmp_path / "t.safetensors"))
    from safetensors import safe_open

    with safe_open(str(tmp_path / "t.safetensors"), framework="pt") as fh:
        meta = fh.metadata()
    assert load_inr(tmp_path / "t.safetensors").grid == grid
    no_size = {k: v for k, v in meta.items() if k != "image_size"}
    with pytest.raises(InrFileError, match="without 'image_size'"):
        load_inr(_write(tmp_path, tensors, no_size))
    with pytest.raises(InrFileError, match="differs from its grid"):
        load_inr(_write(tmp_path, tensors, {**meta, "image_size": "[48, 40]"}))


def test_fifo_is_refused_without_blocking(tmp_path):
    import os

    fifo = tmp_path / "pipe.safetensors"
    os.mkfifo(fifo)
    with pytest.raises(InrFileError, match="not a regular file"):
        load_inr(fifo)
    with pytest.raises(InrFileError, match="a folder"):
        load_inr(tmp_path)


def test_fuzz_findings_are_one_line_errors(tmp_path, inr_file):
    """Found by tests/inr/test_fuzz.py: a scalar where a weight belongs (IndexError) and an unknown arch key
    holding a newline (a two-line message)."""
    good, _, arch = inr_file
    sd = load_file(str(good))
    with pytest.raises(InrFileError, match="layers.0.weight has 0 dimensions, expected 2"):
        load_inr(_write(tmp_path, {**sd, "layers.0.weight": torch.tensor(0.0)}, _meta(arch)))
    with pytest.raises(InrFileError, match="unknown key") as e:
        load_inr(_write(tmp_path, sd, _meta(arch, {"arch": json.dumps({**arch.to_dict(), "\n": None})})))
    assert "\n" not in str(e.value)
