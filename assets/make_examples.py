"""Re-create the bundled example INRs in assets/examples (run: `make examples`, ~1 minute).

Each example is fitted by the one fitting recipe (`inr.tiles.plan_fit`, seed 0), exactly as the app
and `python -m inr fit` fit an upload: digits as one SIREN by the zoo recipe, photos as tiles of 32 px
at a 256-px working resolution (aspect kept; the gray camera photo as RGB tiles). Each INR file has
its source image at the working resolution as a PNG beside it. Sources: MNIST-5k test digits (CC BY-SA 3.0,
LeCun, Cortes, Burges) and scikit-image's bundled photos (public domain / CC0).
"""

from pathlib import Path

import numpy as np
import skimage.data as skd

from inr.datasets import mnist5k
from inr.files import save_tiled
from inr.images import save_png, to_size
from inr.siren import SirenArch
from inr.tiles import fit_photo, plan_fit

OUT = Path(__file__).resolve().parent / "examples"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    digits = mnist5k("test")
    for i in range(4):
        img = digits[i]
        grid, recipe = plan_fit(28, 28, 1)
        res = fit_photo(img, SirenArch(), grid, recipe, seed=0)
        name = f"mnist-test-{i}"
        save_tiled(OUT / f"{name}.safetensors", res.params, SirenArch(), grid,
                   source=f"MNIST-5k test digit {i} (CC BY-SA 3.0)", psnr=round(res.psnr, 3), fit=recipe.to_dict())
        save_png(img, OUT / f"{name}.png")
        print(name, grid.describe(), f"{res.psnr:.2f} dB")
    for name in ("camera", "astronaut", "coffee", "chelsea"):
        arr = getattr(skd, name)().astype(np.float32) / 255.0
        arr = np.repeat(arr[..., None], 3, -1) if arr.ndim == 2 else arr[..., :3]  # gray photos: RGB tiles
        grid, recipe = plan_fit(*arr.shape[:2], 3, size=256)  # the gallery's size (photos fit natively by default)
        img = to_size(arr, grid.image_size)
        arch = SirenArch(dim_out=3)
        res = fit_photo(img, arch, grid, recipe, seed=0)
        save_tiled(OUT / f"{name}.safetensors", res.params, arch, grid, source=f"scikit-image data.{name}()",
                   psnr=round(res.psnr, 3), fit=recipe.to_dict())
        save_png(img, OUT / f"{name}.png")
        print(name, grid.describe(), f"{res.psnr:.2f} dB")


if __name__ == "__main__":
    main()
