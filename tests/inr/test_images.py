import io

import numpy as np
import pytest
from PIL import Image

from inr.errors import ImageError
from inr.images import load_image, to_square


def _png(arr, mode=None) -> bytes:
    buf = io.BytesIO()
    Image.fromarray(arr, mode=mode).save(buf, format="PNG")
    return buf.getvalue()


def test_gray_and_colour(tmp_path):
    gray = (np.arange(12, dtype=np.uint8).reshape(3, 4) * 20)
    a = load_image(_png(gray))
    assert a.shape == (3, 4, 1) and a.dtype == np.float32 and abs(a.max() - 220 / 255) < 1e-6
    rgb = np.zeros((5, 6, 3), np.uint8)
    rgb[..., 0] = 255
    b = load_image(_png(rgb))
    assert b.shape == (5, 6, 3) and b[..., 0].min() == 1.0
    assert load_image(_png(rgb), channels=1).shape == (5, 6, 1)
    assert load_image(_png(gray), channels=3).shape == (3, 4, 3)
    rgba = np.zeros((2, 2, 4), np.uint8)  # fully transparent black → white
    assert load_image(_png(rgba)).min() == 1.0


def test_to_square_crop_and_stretch():
    img = np.random.default_rng(0).random((20, 40, 3)).astype(np.float32)
    crop = to_square(img, 20)
    assert crop.shape == (20, 20, 3)
    np.testing.assert_allclose(crop.numpy(), img[:, 10:30])
    st = to_square(img, 10, aspect="stretch")
    assert st.shape == (10, 10, 3) and 0 <= st.min() and st.max() <= 1
    with pytest.raises(ValueError):
        to_square(img, 10, aspect="zoom")


def test_bad_images(tmp_path):
    good = _png(np.zeros((64, 64), np.uint8))
    with pytest.raises(ImageError, match="empty"):
        load_image(b"")
    with pytest.raises(ImageError, match="not an image"):
        load_image(b"just some text, definitely not a PNG")
    with pytest.raises(ImageError, match="truncated"):
        load_image(good[: len(good) // 2])
    with pytest.raises(ImageError, match="cannot read"):
        load_image(tmp_path / "nope.png")


def test_decompression_bomb_refused():
    # a 8000×8000 1-bit PNG is tiny on disk but 64 megapixels
    buf = io.BytesIO()
    Image.new("1", (8000, 8000)).save(buf, format="PNG")
    assert len(buf.getvalue()) < 200_000
    with pytest.raises(ImageError, match="megapixels"):
        load_image(buf.getvalue())
    # and a lower limit applies to smaller images
    with pytest.raises(ImageError, match="megapixels"):
        load_image(_png(np.zeros((100, 100), np.uint8)), max_pixels=5000)
