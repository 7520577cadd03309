"""Every named endpoint through gradio_client against the app launched in-process: success and failure paths."""

import os
import time
import urllib.error
import urllib.request
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
import pytest
import torch
from app_helpers import PASSWORD
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from PIL import Image

from inr.files import load_inr, save_inr
from inr.siren import SirenArch, init_params

ROOT = Path(__file__).resolve().parents[2]
DIGIT_PNG = ROOT / "assets" / "examples" / "mnist-test-0.png"
DIGIT_INR = ROOT / "assets" / "examples" / "mnist-test-0.safetensors"
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")  # pandas deprecations inside gradio
ENDPOINTS = ["fit", "load_inr", "edit", "paint", "strength", "undo", "redo", "goto", "refine", "reset",
             "render",
             "download", "sensitivity",
             "list_editors", "admin_login", "admin_train", "admin_status", "admin_stop", "admin_evaluate",
             "admin_publish", "admin_delete", "admin_list"]


@pytest.fixture
def client(server):
    return Client(server[0], verbose=False)


def img(path) -> np.ndarray:
    return np.asarray(Image.open(path).convert("RGB"), dtype=np.int16)


def load(client, path=DIGIT_INR):
    return client.predict(handle_file(str(path)), 256, api_name="/load_inr")


def test_named_endpoints(client):
    api = client.view_api(print_info=False, return_format="dict")["named_endpoints"]
    for name in ENDPOINTS:
        assert f"/{name}" in api, name


def test_file_route_is_narrow(server, tmp_path):
    ckpt = Path(server[1].settings.runs_dir).parent / "secret.safetensors"
    ckpt.write_bytes(b"secret")
    for target in ("/etc/passwd", str(ckpt), str(ROOT / "pyproject.toml")):
        try:
            with urllib.request.urlopen(f"{server[0]}gradio_api/file={target}") as r:
                body, code = r.read(), r.status
        except urllib.error.HTTPError as e:
            body, code = b"", e.code
        assert code in (403, 404), (target, code)
        assert b"root:" not in body and b"secret" not in body


def test_fit_with_the_learned_optimizer(client, tmp_path, monkeypatch):
    import math

    from gmn.optim import LearnedOptimizer, LearnedOptimizerConfig, save_optimizer

    def fit(layers, path):
        monkeypatch.setenv("GMN_LEARNED_OPTIMIZER", str(path))  # the app runs in this process
        return client.predict(handle_file(str(DIGIT_PNG)), 16, layers, "auto", 20, "auto", 64, "fast (learned)",
                              api_name="/fit")[6]

    net = LearnedOptimizer(LearnedOptimizerConfig(points=8))
    save_optimizer(tmp_path / "ok.safetensors", net)
    assert "fitted with learned" in fit(2, tmp_path / "ok.safetensors")
    assert "fitted with Adam" in fit(3, tmp_path / "ok.safetensors")  # depth 4: not applicable, Adam
    with torch.no_grad():
        net.log_alpha.fill_(math.log(1e4))  # diverges: the app falls back to Adam
    save_optimizer(tmp_path / "bad.safetensors", net)
    assert "fitted with Adam" in fit(2, tmp_path / "bad.safetensors")


def test_fit_edit_strength_undo_reset_render_download(client):
    out = client.predict(handle_file(str(DIGIT_PNG)), 32, 2, "auto", 40, "auto", 128, api_name="/fit")
    original, _, edited, *_ , info, _canvas, _photo = out
    assert "one SIREN over 28×28 px" in info and "PSNR" in info and "fitted with Adam" in info
    assert img(original).shape == (128, 128, 3)
    out = client.predict("dilate", 32, 1.0, 128, api_name="/edit")
    assert "MSE to target" in out[6] and "test-time Adam" in out[6] and "computing" not in out[6]  # all at once
    assert np.abs(img(out[2]) - img(out[0])).max() > 0  # the edit changed the render
    assert out[1] is not None and out[4] is not None and out[5] is not None  # target, points, GMN view
    e1 = img(out[2])
    out = client.predict(0.0, 128, api_name="/strength")  # θ + 0·Δθ = the original
    assert np.abs(img(out[2]) - img(out[0])).max() <= 1
    out = client.predict(1.0, 128, api_name="/strength")
    assert np.abs(img(out[2]) - e1).max() <= 1
    out = client.predict("dilate", 32, 1.0, 128, api_name="/edit")  # a second edit of the shown step
    assert "2 edit(s)" in out[6]
    out = client.predict(128, api_name="/undo")
    assert "1 edit(s)" in out[6]
    r = client.predict(128, "edited", api_name="/render")
    assert np.abs(img(r) - e1).max() <= 1
    r = client.predict(512, "original", api_name="/render")
    assert img(r).shape == (512, 512, 3)
    inr_path, png_path = client.predict(128, api_name="/download")
    inr = load_inr(inr_path, allow_stack=False)
    assert inr.arch.hidden == 32 and inr.arch.layers == 2
    assert img(png_path).shape[:2] == (128, 128)
    out = client.predict(128, api_name="/reset")
    assert "0 edit(s)" in out[6] and np.abs(img(out[2]) - img(out[0])).max() == 0
    with pytest.raises(AppError, match="nothing to undo"):
        client.predict(128, api_name="/undo")


def test_paint(client, tmp_path):
    load(client)
    bg = np.zeros((256, 256, 4), np.uint8)
    bg[..., 3] = 255
    layer = np.zeros((256, 256, 4), np.uint8)
    layer[96:160, 96:160] = (255, 255, 255, 255)  # a white square stroke
    comp = bg.copy()
    comp[96:160, 96:160] = (255, 255, 255, 255)
    paths = {}
    for name, arr in (("bg", bg), ("layer", layer), ("comp", comp)):
        paths[name] = tmp_path / f"{name}.png"
        Image.fromarray(arr, "RGBA").save(paths[name])
    value = {"background": handle_file(str(paths["bg"])), "layers": [handle_file(str(paths["layer"]))],
             "composite": handle_file(str(paths["comp"])), "id": None}
    out = client.predict(value, "paint", 32, 1.0, 256, api_name="/paint")
    diff = np.abs(img(out[2]) - img(out[0])).mean(-1)
    assert diff[96:160, 96:160].mean() > 0
    empty = {**value, "layers": [handle_file(str(paths["bg"]))]}
    Image.fromarray(np.zeros((256, 256, 4), np.uint8), "RGBA").save(paths["bg"])
    with pytest.raises(AppError, match="paint a stroke"):
        client.predict(empty, "paint", 32, 1.0, 256, api_name="/paint")


def test_list_editors(client):
    rows = client.predict(api_name="/list_editors")
    names = {r["name"]: r for r in rows}
    assert {"dilate", "paint", "nan-dilate"} <= set(names)
    assert names["dilate"]["task"] == "dilate" and names["dilate"]["test_mse"] == 0.05


def test_bad_uploads(client, tmp_path):
    bad = {
        "notes.png": b"this is not an image at all",
        "empty.png": b"",
        "truncated.png": DIGIT_PNG.read_bytes()[:60],
    }
    for name, data in bad.items():
        (tmp_path / name).write_bytes(data)
        with pytest.raises(AppError) as e:
            client.predict(handle_file(str(tmp_path / name)), 32, 2, "auto", 10, "auto", 64, api_name="/fit")
        assert name in str(e.value) or "empty" in str(e.value), str(e.value)
    bomb = tmp_path / "bomb.png"
    Image.new("1", (8000, 7000)).save(bomb)  # 56 MP in a few kB
    with pytest.raises(AppError, match="megapixels|decompression"):
        client.predict(handle_file(str(bomb)), 32, 2, "auto", 10, "auto", 64, api_name="/fit")
    big = tmp_path / "big.png"
    Image.new("L", (2200, 2000), 128).save(big)  # 4.4 MP: downscaled with a notice, then fitted
    out = client.predict(handle_file(str(big)), 16, 2, "auto", 10, "auto", 64, api_name="/fit")
    assert "big.png" in out[6] and "tiles of 32² px" in out[6]  # a photo: fitted as tiles


def test_bad_inr_files_and_depth(client, tmp_path):
    pickled = tmp_path / "model.safetensors"
    torch.save({"w": torch.zeros(3)}, pickled)
    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(os.urandom(256))
    for path, match in ((pickled, "pickle"), (junk, "not a valid safetensors")):
        with pytest.raises(AppError, match=match):
            load(client, path)
    deep = tmp_path / "deep.safetensors"
    arch = SirenArch(layers=3)
    save_inr(deep, init_params(arch, 1, generator=torch.Generator().manual_seed(0)), arch, image_size=[28, 28])
    load(client, deep)
    with pytest.raises(AppError, match="expects 3"):
        client.predict("dilate", 32, 1.0, 64, api_name="/edit")
    out = load(client)  # the session stays usable
    out = client.predict("dilate", 32, 1.0, 64, api_name="/edit")
    assert "1 edit(s)" in out[6]


def test_nan_edit_is_refused(client):
    before = load(client)
    with pytest.raises(AppError, match="NaN or Inf"):
        client.predict("nan-dilate", 32, 1.0, 256, api_name="/edit")
    r = client.predict(256, "edited", api_name="/render")
    assert np.abs(img(r) - img(before[2])).max() == 0  # original kept
    with pytest.raises(AppError, match="unknown editor"):
        client.predict("no-such-editor", 32, 1.0, 64, api_name="/edit")


def test_edit_before_loading(server):
    c = Client(server[0], verbose=False)
    with pytest.raises(AppError, match="load an image"):
        c.predict("dilate", 32, 1.0, 64, api_name="/edit")


ADMIN = ["/admin_status", "/admin_stop", "/admin_list", "/admin_login"]


def test_admin_refused(client, server, monkeypatch):
    server[1].guard.reset()
    refused = "wrong admin password|too many wrong admin passwords"
    try:
        for pw in ("", "wrong"):
            for ep in ADMIN:
                with pytest.raises(AppError, match=refused):
                    client.predict(pw, api_name=ep)
            with pytest.raises(AppError, match=refused):
                client.predict(pw, "x", "y", api_name="/admin_publish")
            with pytest.raises(AppError, match=refused):
                client.predict(pw, "dilate", api_name="/admin_delete")
            with pytest.raises(AppError, match=refused):
                client.predict(pw, "r", "dilate", "mnist5k", "ws", "tiny", 1, 2, 8, 8, api_name="/admin_train")
            with pytest.raises(AppError, match=refused):
                client.predict(pw, "dilate", 8, api_name="/admin_evaluate")
        # repeated failures lock the client out, the right password included, until the lock expires
        with pytest.raises(AppError, match="too many wrong admin passwords: try again in"):
            client.predict(PASSWORD, api_name="/admin_status")
    finally:
        server[1].guard.reset()
    client.predict(PASSWORD, api_name="/admin_status")
    monkeypatch.delenv("GMN_ADMIN_PASSWORD")
    for ep in ADMIN:
        with pytest.raises(AppError, match="admin is disabled"):
            client.predict(PASSWORD, api_name=ep)


def wait_done(client, timeout=240):
    t0 = time.time()
    while time.time() - t0 < timeout:
        s = client.predict(PASSWORD, api_name="/admin_status")[0]
        if s["state"] not in ("running", "stopping"):
            return s
        time.sleep(0.5)
    raise AssertionError("training did not finish")


def test_admin_train_publish_evaluate_delete(client, server):
    # a long job: a second one is refused while it runs, and the stop button ends it
    s = client.predict(PASSWORD, "long-run", "dilate", "mnist5k", "ws", "tiny", 0, 100000, 16, 8,
                       api_name="/admin_train")
    assert s["state"] == "running"
    with pytest.raises(AppError, match="already running"):
        client.predict(PASSWORD, "other", "dilate", "mnist5k", "ws", "tiny", 0, 4, 16, 8, api_name="/admin_train")
    client.predict(PASSWORD, api_name="/admin_stop")
    assert wait_done(client)["state"] == "stopped"
    s = client.predict(PASSWORD, "api-run", "dilate", "mnist5k", "ws", "tiny", 0, 4, 16, 8, api_name="/admin_train")
    assert s["state"] in ("running", "done") and s["run"] == "api-run"
    s = wait_done(client)
    assert s["state"] == "done" and s["step"] == 4 and s["history"], s
    table = client.predict(PASSWORD, "api-run", 8, api_name="/admin_evaluate")  # a finished run, not published
    assert table["data"][1][0].startswith("run api-run")
    rows, *_ = client.predict(PASSWORD, "api-run", "api-dilate\n", api_name="/admin_publish")  # name stripped
    assert "api-dilate" in {r["name"] for r in rows}
    assert "api-dilate" in {r["name"] for r in client.predict(api_name="/list_editors")}
    load(client)
    out = client.predict("api-dilate", 32, 1.0, 64, api_name="/edit")  # published editors edit at once
    assert "api-dilate" in out[6]
    table = client.predict(PASSWORD, "api-dilate", 8, api_name="/admin_evaluate")
    methods = [r[0] for r in table["data"]]
    assert methods[0] == "no edit" and any("K=100" in m for m in methods)
    listing = client.predict(PASSWORD, api_name="/admin_list")
    assert "api-run" in {r["run"] for r in listing["runs"]}
    with pytest.raises(AppError, match="shipped"):
        client.predict(PASSWORD, "dilate", api_name="/admin_delete")
    with pytest.raises(AppError, match="no best.safetensors"):
        client.predict(PASSWORD, "no-run", "x", api_name="/admin_publish")
    with pytest.raises(AppError, match="must be"):
        client.predict(PASSWORD, "../etc", "x", api_name="/admin_publish")
    rows, _ = client.predict(PASSWORD, "api-dilate", api_name="/admin_delete")
    assert "api-dilate" not in {r["name"] for r in rows}


def test_parallel_edits_during_training(server):
    url = server[0]
    admin = Client(url, verbose=False)
    admin.predict(PASSWORD, "busy-run", "dilate", "mnist5k", "ws", "tiny", 0, 30, 16, 8, api_name="/admin_train")

    def one(i):
        c = Client(url, verbose=False)
        load(c)
        return c.predict("dilate", 16, 1.0, 64, api_name="/edit")[6]

    try:
        with ThreadPoolExecutor(8) as pool:
            results = list(pool.map(one, range(8)))
        assert all("1 edit(s)" in r for r in results)
        assert server[1].jobs.status()["run"] == "busy-run"
    finally:
        admin.predict(PASSWORD, api_name="/admin_stop")
        wait_done(admin)


def post_raw(url, api_name, data, session_hash):
    """One call through the raw HTTP API (json with NaN allowed, as any HTTP client can send): the result stream."""
    import json

    body = json.dumps({"data": data, "session_hash": session_hash}).encode()
    req = urllib.request.Request(f"{url}gradio_api/call/{api_name}", data=body,
                                 headers={"Content-Type": "application/json"})
    event = json.loads(urllib.request.urlopen(req).read())["event_id"]
    return urllib.request.urlopen(f"{url}gradio_api/call/{api_name}/{event}").read().decode()


def test_numeric_inputs_are_checked(client, server):
    """NaN through the raw HTTP API and non-numeric values are refused with one line; the INR stays finite."""
    load(client)
    client.predict("dilate", 32, 1.0, 64, api_name="/edit")
    stream = post_raw(server[0], "strength", [float("nan"), 64], client.session_hash)
    assert "event: error" in stream and "strength must be a finite number" in stream
    stream = post_raw(server[0], "edit", ["dilate", float("inf"), 1.0, 64], client.session_hash)
    assert "sampled points must be a finite number" in stream
    for args, match in ((("dilate", "many", 1.0, 64), "sampled points must be a number"),
                        (("dilate", 32, 7.0, 64), "strength must be between 0 and 3"),
                        (("dilate", 32, 1.0, "big"), "display resolution must be a number")):
        with pytest.raises(AppError, match=match):
            client.predict(*args, api_name="/edit")
    with pytest.raises(AppError, match="history step must be between 0 and 1"):
        client.predict(5, 64, api_name="/goto")
    inr = load_inr(client.predict(64, api_name="/download")[0], allow_stack=False)
    assert all(torch.isfinite(t).all() for t in inr.params)
    out = client.predict(0.5, 64, api_name="/strength")
    assert "1 edit(s) applied" in out[6] and "strength 0.5" in out[6]


def test_overlapping_edits_of_one_session_are_refused_visibly(client):
    """12 /edit calls at once from one session: each either applies (in turn) or is refused with a clear line;
    the edit counter counts exactly the applied ones."""
    load(client, DIGIT_INR)
    jobs = [client.submit("dilate", 16, 1.0, 32, api_name="/edit") for _ in range(12)]
    ok, refused = 0, 0
    for j in jobs:
        try:
            j.result()
            ok += 1
        except AppError as e:
            assert "another request of this session is still running" in str(e), str(e)
            refused += 1
    assert ok + refused == 12 and ok >= 1
    out = client.predict(1.0, 32, api_name="/strength")
    assert f"{ok} edit(s) applied" in out[6], (ok, out[6][:300])


def test_malformed_paint_values(client, tmp_path):
    load(client)
    text = tmp_path / "notes.png"
    text.write_text("not an image")
    trunc = tmp_path / "trunc.png"
    trunc.write_bytes(DIGIT_PNG.read_bytes()[:80])
    good = tmp_path / "layer.png"
    layer = np.zeros((64, 64, 4), np.uint8)
    layer[20:40, 20:40] = (255, 255, 255, 255)
    Image.fromarray(layer, "RGBA").save(good)
    cases = [
        ("just text", "image-editor value"),
        ({"background": None, "layers": "abc", "composite": None}, "layers must be a list"),
        ({"background": None, "layers": [handle_file(str(text))], "composite": None}, "not a readable image"),
        ({"background": None, "layers": [handle_file(str(trunc))], "composite": None}, "not a readable image"),
        ({"background": None, "layers": [], "composite": None}, "paint a stroke"),
        ({"background": None, "layers": ["/etc/passwd"], "composite": None}, "must be an image"),
    ]
    for value, match in cases:
        with pytest.raises(AppError, match=match):
            client.predict(value, "paint", 32, 1.0, 64, api_name="/paint")
    value = {"background": None, "layers": [handle_file(str(good))], "composite": None}  # composite not needed
    with pytest.raises(AppError, match="sampled points must be a number"):
        client.predict(value, "paint", "lots", 1.0, 64, api_name="/paint")
    out = client.predict(value, "paint", 32, 1.0, 64, api_name="/paint")
    assert "1 edit(s) applied" in out[6]


def test_inr_files_beyond_the_work_bounds_are_refused(client, tmp_path):
    from safetensors import safe_open
    from safetensors.torch import load_file, save_file

    from inr.files import save_tiled
    from inr.tiles import TileGrid

    arch = SirenArch()
    one = init_params(arch, 1, generator=torch.Generator().manual_seed(0))
    for size, match in (([4096, 4096], "working resolution of 4096×4096"), ([100000, 100000], "image_size"),
                        ([0, 0], "image_size")):
        p = tmp_path / f"size-{size[0]}.safetensors"
        save_inr(p, one, arch)
        with safe_open(str(p), framework="pt") as fh:
            meta = dict(fh.metadata())
        save_file(load_file(str(p)), str(p), metadata={**meta, "image_size": str(size)})
        with pytest.raises(AppError, match=match):
            load(client, p)
    small = SirenArch(hidden=4, layers=1)
    grid = TileGrid((1024, 1024), 8, 0)  # 128 × 128 tiles of 8 px
    p = tmp_path / "many-tiles.safetensors"
    save_tiled(p, init_params(small, grid.count, generator=torch.Generator().manual_seed(0)), small, grid)
    with pytest.raises(AppError, match="16384 SIREN.*at most 1600 tiles"):
        load(client, p)
    out = load(client)  # the session stays usable
    assert "0 edit(s)" in out[6]


def test_fit_rgba_says_what_was_done(client, tmp_path):
    rgba = np.zeros((24, 24, 4), np.uint8)
    rgba[4:20, 4:20] = (200, 30, 30, 255)  # an opaque square on a transparent background
    p = tmp_path / "logo.png"
    Image.fromarray(rgba, "RGBA").save(p)
    out = client.predict(handle_file(str(p)), 16, 2, "auto", 10, "auto", 64, api_name="/fit")
    assert "transparent pixels: composited on white" in out[6]


def test_refine_endpoint(client):
    """/refine: the shown step refined by Adam on its whole target, said in the info line; refused on step 0 and
    a second time."""
    load(client)
    with pytest.raises(AppError, match="apply an edit first"):
        client.predict(128, api_name="/refine")
    before = client.predict("dilate", 32, 1.0, 128, api_name="/edit")
    out = client.predict(128, api_name="/refine")
    assert "Refine**: refined: Adam" in out[6] and "1 edit(s) applied" in out[6]
    assert np.abs(img(out[2]) - img(before[2])).max() > 0  # the step shows the refined INR
    with pytest.raises(AppError, match="refined already"):
        client.predict(128, api_name="/refine")


def test_tiny_images_are_refused(client, tmp_path):
    """A 1×1 (or 5×40) PNG is refused below the documented minimum side instead of being 'fitted at 40 dB'."""
    from app.sources import MIN_SIDE

    for size in ((1, 1), (40, MIN_SIDE - 1)):
        p = tmp_path / f"tiny-{size[0]}x{size[1]}.png"
        Image.new("RGB", size, (200, 30, 30)).save(p)
        with pytest.raises(AppError, match=f"is {size[0]}×{size[1]} px; the app fits images of at least {MIN_SIDE} px"):
            client.predict(handle_file(str(p)), 16, 2, "auto", 10, "auto", 64, api_name="/fit")
