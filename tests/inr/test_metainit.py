import pytest
import torch
from safetensors.torch import load_file

from inr.datasets import load_dataset
from inr.errors import InrError
from inr.fit import fit
from inr.metainit import MetaInitConfig, load_init, metatrain_init
from inr.siren import SirenArch


def _cfg(out, **kw):
    kw = {"dataset": "mnist5k", "limit": 200, "batch": 8, "inner_steps": 5, "outer_steps": 50, "minutes": None, **kw}
    return MetaInitConfig(out=str(out), **kw)


def test_a_killed_run_resumes_to_the_same_init(tmp_path):
    metatrain_init(_cfg(tmp_path / "a.safetensors"), log=lambda *_: None)

    def kill(*_):
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):  # killed right after the first resume state (step 25) was written
        metatrain_init(_cfg(tmp_path / "b.safetensors"), log=kill)
    assert not (tmp_path / "b.safetensors").exists()
    metatrain_init(_cfg(tmp_path / "b.safetensors"), log=lambda *_: None)
    a, b = load_file(str(tmp_path / "a.safetensors")), load_file(str(tmp_path / "b.safetensors"))
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)


def test_the_init_fits_unseen_digits_faster_at_its_horizon(tmp_path):
    out = tmp_path / "init.safetensors"
    metatrain_init(_cfg(out, outer_steps=150), log=lambda *_: None)
    arch = SirenArch(dim_out=1)
    val = load_dataset("mnist5k", "val")[:16]  # not among the 200 training digits
    meta = fit(val, arch, steps=5, lr=3e-3, init=load_init(out, 16, arch)).psnr
    rand = fit(val, arch, steps=5, lr=3e-3, seed=3).psnr
    assert meta.median() > rand.median() + 1.0, (meta.median(), rand.median())


def test_an_init_for_other_sirens_is_refused(tmp_path):
    out = tmp_path / "init.safetensors"
    metatrain_init(_cfg(out, outer_steps=2), log=lambda *_: None)
    with pytest.raises(InrError, match="2→32→32→1 SIRENs, not 2→32→32→3"):
        load_init(out, 4, SirenArch(dim_out=3))


def test_freeze_first_keeps_the_random_first_layer(tmp_path):
    from inr.siren import init_params

    out = tmp_path / "init.safetensors"
    metatrain_init(_cfg(out, outer_steps=3, freeze_first=True, seed=4), log=lambda *_: None)
    arch = SirenArch(dim_out=1)
    got, rand = load_init(out, 1, arch), init_params(arch, 1, generator=torch.Generator().manual_seed(4))
    assert torch.equal(got[0], rand[0]) and torch.equal(got[1], rand[1])
    assert not torch.equal(got[2], rand[2])  # the later layers moved


def test_cli_writes_an_init_file_and_refuses_a_bad_output(tmp_path, capsys):
    from inr.__main__ import main
    from inr.files import load_inr

    out = tmp_path / "init.safetensors"
    assert main(["metainit", "--dataset", "mnist5k", "--out", str(out), "--outer-steps", "2", "--limit", "20",
                 "--inner-steps", "2", "-q"]) == 0
    inr = load_inr(out)
    assert inr.meta["source"] == "reptile" and inr.n == 1
    assert main(["metainit", "--out", str(tmp_path / "missing" / "x.safetensors"), "--outer-steps", "1"]) == 2
    assert "does not exist" in capsys.readouterr().err
