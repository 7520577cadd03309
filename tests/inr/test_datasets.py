import pytest
import torch

from inr.datasets import lfw, load_dataset, mnist5k, patches


def test_mnist5k_split():
    tr, y = mnist5k("train", with_labels=True)
    va, te = mnist5k("val"), mnist5k("test")
    assert tr.shape == (4000, 28, 28, 1) and va.shape == (500, 28, 28, 1) and te.shape == (500, 28, 28, 1)
    assert 0 <= tr.min() and tr.max() <= 1
    assert len(torch.unique(y)) == 10  # shuffled: every class in train
    # fixed seed: the same split every time, and no image shared between splits
    assert torch.equal(mnist5k("test"), te)
    flat = lambda t: {bytes(x.numpy().tobytes()) for x in t}  # noqa: E731
    assert not flat(va) & flat(te)


def test_patches_and_lfw():
    tr, va, te = patches("train"), patches("val"), patches("test")
    assert tr.shape[1:] == (32, 32, 3) and len(tr) > 1500 and len(va) > 150 and len(te) > 150
    assert 0 <= tr.min() and tr.max() <= 1
    f = lfw("test")
    assert f.shape == (20, 25, 25, 1)


def test_unknown_names():
    with pytest.raises(ValueError, match="unknown dataset"):
        load_dataset("cifar")
    with pytest.raises(ValueError, match="unknown split"):
        mnist5k("dev")
