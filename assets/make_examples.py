"""Re-create the bundled example INRs in assets/examples (run: `make examples`, ~1 minute).

Each example is fitted with the project's own `inr.fit` (seed 0) and saved as an INR file
with its source image as a PNG beside it. Sources: MNIST-5k test digits (CC BY-SA 3.0,
LeCun, Cortes, Burges) and scikit-image's bundled photos (public domain / CC0).
"""

from pathlib import Path

import numpy as np
import skimage.data as skd

from inr.datasets import mnist5k
from inr.files import save_inr
from inr.fit import fit
from inr.images import save_png, to_square
from inr.siren import SirenArch
from inr.zoo import ZOO_LR, ZOO_STEPS

OUT = Path(__file__).resolve().parent / "examples"


def main() -> None:
    OUT.mkdir(exist_ok=True)
    digits = mnist5k("test")
    for i in range(4):
        img = digits[i]
        res = fit(img, SirenArch(), steps=ZOO_STEPS, lr=ZOO_LR, seed=0)
        name = f"mnist-test-{i}"
        save_inr(OUT / f"{name}.safetensors", res.params, SirenArch(), image_size=[28, 28],
                 source=f"MNIST-5k test digit {i} (CC BY-SA 3.0)", psnr=round(res.psnr.item(), 3))
        save_png(img, OUT / f"{name}.png")
        print(name, f"{res.psnr.item():.2f} dB")
    for name in ("camera", "astronaut", "coffee", "chelsea"):
        arr = getattr(skd, name)().astype(np.float32) / 255.0
        arr = arr[..., None] if arr.ndim == 2 else arr[..., :3]
        img = to_square(arr, 64)
        arch = SirenArch(dim_out=img.shape[-1])
        res = fit(img, arch, steps=500, seed=0)
        save_inr(OUT / f"{name}.safetensors", res.params, arch, image_size=[64, 64],
                 source=f"scikit-image data.{name}()", psnr=round(res.psnr.item(), 3))
        save_png(img, OUT / f"{name}.png")
        print(name, f"{res.psnr.item():.2f} dB")


if __name__ == "__main__":
    main()
