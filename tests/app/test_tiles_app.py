"""A photo in the app is a grid of tile SIRENs: every endpoint on a tiled photo, through gradio_client, with
the shipped colour editors (assets/editors: `contrast`, `paint-color`), then the same in a real browser."""

import os
from pathlib import Path

import numpy as np
import pytest
import torch
from app_helpers import free_port, upload
from PIL import Image

ROOT = Path(__file__).resolve().parents[2]
SHIPPED = ROOT / "assets" / "editors"
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")


@pytest.fixture(scope="module")
def photo(tmp_path_factory) -> Path:
    """A 96×64 crop of a bundled photo (not square: the aspect ratio must be kept)."""
    import skimage.data as skd

    path = tmp_path_factory.mktemp("photo") / "coffee-crop.png"
    Image.fromarray(skd.coffee()[100:292:2, 200:328:2]).save(path)  # 96 rows × 64 columns
    return path


@pytest.fixture(scope="module")
def shipped_server(tmp_path_factory):
    from app.ui import MAX_FILE_SIZE, build

    torch.set_num_threads(1)
    root = tmp_path_factory.mktemp("tiles-app")
    demo = build(registry_dirs=[SHIPPED], published_dir=root / "published", runs_dir=root / "runs")
    port = free_port()
    demo.queue(default_concurrency_limit=4).launch(server_name="127.0.0.1", server_port=port,
                                                   prevent_thread_lock=True, max_file_size=MAX_FILE_SIZE, quiet=True)
    yield f"http://127.0.0.1:{port}/"
    demo.close()


def _img(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB")).astype(int)


def test_tiled_photo_through_the_api(shipped_server, photo, tmp_path):
    from gradio_client import Client, handle_file

    from inr.files import load_inr
    from inr.tiles import render_tiles

    c = Client(shipped_server, verbose=False)
    # image, hidden, layers, resolution, steps, channels, display
    out = c.predict(handle_file(str(photo)), 32, 2, "128", 30, "auto", 192, api_name="/fit")
    original, _, edited, _, _, _, info, _canvas, uploaded = out
    assert "3×5 tiles of 32² px" in info and "over 85×128 px" in info, info  # the aspect ratio is kept
    assert _img(original).shape == (192, 128, 3) and _img(uploaded).shape == (192, 128, 3)
    assert "fit PSNR" in info and "against the uploaded image, both at the working size 85×128" in info, info
    fitted_vs_photo = np.abs(_img(original) - _img(uploaded)).mean()
    assert fitted_vs_photo < 25, fitted_vs_photo  # the fit looks like the photo (30 steps)

    out = c.predict("contrast", 64, 1.0, 192, api_name="/edit")
    original, target, edited, *_ = out
    info = out[6]
    assert "MSE to target" in info and "contrast" in info
    before = float(info.split("| no edit | ")[1].split(" |")[0])
    after = float(info.split("**contrast** (strength 1) | **")[1].split("**")[0])
    assert after < before, info  # the shipped contrast editor moves the tiled photo toward its target
    assert np.abs(_img(edited) - _img(original)).max() > 10

    half = c.predict(0.5, 192, api_name="/strength")
    assert np.abs(_img(half[2]) - _img(original)).mean() < np.abs(_img(edited) - _img(original)).mean()

    # paint a blue band across the middle: only the tiles it touches change
    h, w = 192, 128
    layer = np.zeros((h, w, 4), np.uint8)
    layer[90:106, :, :] = (40, 60, 230, 255)
    comp = _img(half[2]).astype(np.uint8).copy()
    comp[90:106] = (40, 60, 230)
    Image.fromarray(layer).save(tmp_path / "layer.png")
    Image.fromarray(comp).save(tmp_path / "comp.png")
    comp_file, layer_file = handle_file(str(tmp_path / "comp.png")), handle_file(str(tmp_path / "layer.png"))
    value = {"background": comp_file, "layers": [layer_file], "composite": comp_file}
    out = c.predict(value, "paint-color", 64, 1.0, 192, api_name="/paint")
    painted = _img(out[2])
    assert "paint-color" in out[6]
    band_blue = painted[92:104, :, 2].mean() - painted[92:104, :, 0].mean()
    before_blue = _img(half[2])[92:104, :, 2].mean() - _img(half[2])[92:104, :, 0].mean()
    assert band_blue > before_blue + 5, (band_blue, before_blue)  # the band moved toward blue
    # far from the stroke (top rows: tiles the mask does not touch) nothing changed
    assert np.abs(painted[:40] - _img(half[2])[:40]).max() <= 1

    sens = c.predict(128, 5, 192, api_name="/sensitivity")
    assert "tiles" in sens[2] and _img(sens[1]).shape[0] > 0

    big = c.predict(512, "edited", api_name="/render")
    assert _img(big).shape == (512, 340, 3)  # longer side 512, aspect kept

    undone = c.predict(192, api_name="/undo")
    assert np.abs(_img(undone[2]) - _img(half[2])).max() <= 1

    inr_path, png_path = c.predict(192, api_name="/download")
    inr = load_inr(inr_path)
    assert inr.grid is not None and inr.grid.shape == (5, 3) and inr.grid.image_size == (128, 85)
    rendered = render_tiles(inr.params, inr.arch, inr.grid, (192, 128))[0].numpy() * 255
    assert np.abs(rendered - _img(undone[2])).max() <= 1.5  # the download is what the panel shows


CHROMIUM = "/usr/bin/chromium"


@pytest.mark.skipif(not os.path.exists(CHROMIUM), reason=f"{CHROMIUM} is missing (apt install chromium)")
def test_tiled_photo_in_the_browser(shipped_server, photo):
    """A person uploads a photo, fits it (tiles), applies the default edit (contrast for a colour photo)."""
    from playwright.sync_api import sync_playwright

    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    artifacts = Path(__file__).resolve().parent / "artifacts"
    artifacts.mkdir(exist_ok=True)
    with sync_playwright() as p:
        b = p.chromium.launch(executable_path=CHROMIUM, args=flags, headless=True)
        pg = b.new_page(viewport={"width": 1400, "height": 1800})
        pg.set_default_timeout(120_000)
        pg.goto(shipped_server)
        pg.wait_for_selector("#fit-btn")
        upload(pg, photo)
        pg.click("#fit-btn")
        pg.wait_for_selector("#info >> text=tiles of 32² px")
        pg.wait_for_function("document.querySelector('#editor-dd input').value === 'contrast'")
        pg.click("#edit-btn")
        pg.wait_for_selector("#info >> text=MSE to target")
        pg.screenshot(path=str(artifacts / "tiles-photo-edited.png"), full_page=True)
        text = pg.inner_text("#info")
        b.close()
    assert "contrast" in text and "3×4 tiles of 32² px" in text  # 96×64 px: kept as is (never upsampled), aspect kept
