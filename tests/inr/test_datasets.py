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


def test_mnist5k_aug_copies_train_digits_only():
    from inr.datasets import mnist5k_aug

    aug = mnist5k_aug("train", copies=1)
    real = mnist5k("train")
    assert aug.shape == real.shape and 0 <= aug.min() and aug.max() <= 1
    diff = (aug - real).abs().mean(dim=(1, 2, 3))
    assert (diff > 0.005).float().mean() > 0.95  # every copy is moved, rotated or warped
    # still the same digit: each copy is closer to its own source than to a random other digit
    other = real.roll(1, 0)
    assert ((aug - real).pow(2).mean(dim=(1, 2, 3)) < (aug - other).pow(2).mean(dim=(1, 2, 3))).float().mean() > 0.9
    assert torch.equal(mnist5k_aug("test"), mnist5k("test"))  # evaluation stays on the real digits
    with pytest.raises(ValueError, match="train split only"):
        mnist5k_aug("all")
