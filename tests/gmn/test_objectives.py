import numpy as np
import torch

from gmn.objectives import FILTERS, filter_images, paint_target, random_paint, sample_points


def test_dilate_and_erode_of_a_known_image():
    img = torch.zeros(1, 7, 7, 1)
    img[0, 3, 3, 0] = 1.0
    d = filter_images(img, "dilate")[0, ..., 0]
    expected = torch.zeros(7, 7)
    expected[2:5, 2:5] = 1.0
    assert torch.equal(d, expected)  # a 3×3 square grows a point into a 3×3 block
    e = filter_images(d[None, ..., None], "erode")[0, ..., 0]
    assert torch.equal(e, img[0, ..., 0])  # and erosion shrinks it back
    assert torch.allclose(filter_images(img, "invert"), 1 - img)


def test_every_filter_keeps_shape_and_range():
    rng = torch.Generator().manual_seed(0)
    for c in (1, 3):
        img = torch.rand(2, 16, 16, c, generator=rng)
        for task in FILTERS:
            out = filter_images(img, task)
            assert out.shape == img.shape and out.min() >= 0 and out.max() <= 1, task
    blur = filter_images(img, "blur")
    assert blur.std() < img.std()  # blur smooths
    sharp = filter_images(img, "sharpen")
    assert (sharp - img).abs().mean() > 0.01


def test_paint_objective_is_masked_error():
    img = torch.rand(3, 8, 8, 3)
    mask = torch.zeros(3, 8, 8, 1)
    mask[:, 2:5, 2:5] = 1
    colour = torch.tensor([[1.0, 0.0, 0.0]] * 3)
    obj = paint_target(img, mask, colour, lam=0.5)
    f = torch.rand(3, 8, 8, 3)
    expected = (mask * (f - colour[:, None, None]).pow(2) + 0.5 * (1 - mask) * (f - img).pow(2)).mean(dim=(1, 2, 3))
    torch.testing.assert_close(obj.error(f), expected)


def test_random_paint_and_points():
    mask, colour = random_paint(50, 28, 28, 3, generator=np.random.default_rng(0))
    cover = mask.mean(dim=(1, 2, 3))
    assert mask.shape == (50, 28, 28, 1) and colour.shape == (50, 3)
    assert cover.min() > 0.005 and cover.max() < 0.9 and 0.05 < cover.mean() < 0.5
    idx = sample_points(50, 28, 28, 64, generator=torch.Generator().manual_seed(0), mask=mask)
    assert idx.shape == (50, 64)
    assert all(len(set(row.tolist())) == 64 for row in idx)  # no repeated point
    inside = torch.gather(mask.reshape(50, -1), 1, idx).mean(1)
    # half inside, as far as the mask has pixels
    n_in = mask.reshape(50, -1).sum(1)
    assert torch.allclose(inside, torch.minimum(n_in, torch.tensor(32.0)) / 64)
    plain = sample_points(4, 5, 5, 100, generator=torch.Generator().manual_seed(0))
    assert plain.shape == (4, 25)  # capped at the number of pixels
