"""The Sensitivity view: its maps against autograd, and the /sensitivity endpoint through gradio_client."""

from pathlib import Path

import numpy as np
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from app.sensitivity import region_map, sensitivity, top_mask
from inr.siren import SirenArch, coordinate_grid, forward, init_params

ROOT = Path(__file__).resolve().parents[2]
DIGIT_INR = ROOT / "assets" / "examples" / "mnist-test-0.safetensors"
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")


def test_region_map_is_the_squared_gradient_of_the_chosen_weights():
    arch = SirenArch(hidden=8, dim_out=3)
    params = init_params(arch, 1, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    mask = [(torch.rand(t.shape, generator=torch.Generator().manual_seed(i)) > 0.5).double()
            for i, t in enumerate(params)]
    got = region_map(params, arch, mask, 4).flatten()
    x = coordinate_grid(4, 4, dtype=torch.float64)
    ps = [t.clone().requires_grad_(True) for t in params]
    want = torch.zeros(16, dtype=torch.float64)
    for b in range(16):
        f = forward(ps, arch, x[b : b + 1])[0, 0]
        for c in range(3):
            grads = torch.autograd.grad(f[c], ps, retain_graph=True)
            want[b] += sum((m * g.pow(2)).sum() for m, g in zip(mask, grads))
    torch.testing.assert_close(got, want)


def test_top_mask_and_images():
    arch = SirenArch()
    params = init_params(arch, 1, generator=torch.Generator().manual_seed(0))
    layers, region, md = sensitivity(params, arch, points=64, top=10, display=64)
    assert layers.dtype == np.uint8 and layers.ndim == 3 and region.shape[0] >= 64 and region.shape[2] == 3
    assert "layers.0.weight" in md and "| in top |" in md
    diag = [torch.arange(t.numel(), dtype=torch.float32).reshape(t.shape) for t in params]
    assert sum(int(m.sum()) for m in top_mask(diag, 100 * 7 / arch.num_params)) >= 7


def test_sensitivity_endpoint(server):
    client = Client(server[0], verbose=False)
    with pytest.raises(AppError, match="load an image"):
        client.predict(128, 5, 128, api_name="/sensitivity")
    client.predict(handle_file(str(DIGIT_INR)), 128, api_name="/load_inr")
    layers, region, md = client.predict(128, 5, 128, api_name="/sensitivity")
    region = np.asarray(Image.open(region).convert("RGB"))
    assert region.shape[0] >= 128 and region.shape[1] > 128 and region.std() > 0  # map + title + colour bar
    assert np.asarray(Image.open(layers)).shape[0] >= 32 * 8  # a 32-neuron layer at 8 px per cell
    assert "Fisher diagonal" in md and "last_layer.bias" in md
    with pytest.raises(AppError, match="points must be between 16 and 1024"):  # the handlers check every number
        client.predict(0, 5, 128, api_name="/sensitivity")
