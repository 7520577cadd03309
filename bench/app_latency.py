"""App figures for BENCHMARKS.md: edit latency (in-process and through gradio_client) and fit time at the
app's defaults.

    python -m bench.app_latency [--reps 30]
"""

from __future__ import annotations

import argparse
import os
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np  # noqa: E402
import torch  # noqa: E402

from bench.report import table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"


def pct(xs: list[float], q: float) -> float:
    return float(np.percentile(np.asarray(xs), q))


def editor_under_test():
    """The shipped default dilate editor if there is one, else an untrained one at the default size (same cost)."""
    from gmn.edit import list_editors
    from gmn.editors import Editor, EditorConfig, load_editor, save_editor

    shipped = list_editors()
    # the app's default for gray INRs first (`dilate`), then any other dilate editor
    for name, path in sorted(shipped.items(), key=lambda kv: kv[0] != "dilate"):
        editor, card = load_editor(path)
        if editor.config.task == "dilate" and editor.config.siren.layers == 2:
            return editor, f"shipped editor `{name}` ({editor.config.kind})"
    # saved and loaded, as the app does (a fresh module with unfitted normalisation hits denormal floats)
    with tempfile.TemporaryDirectory() as d:
        save_editor(Path(d) / "e.safetensors", Editor(EditorConfig(kind="ws+gmn", task="dilate")))
        editor, _ = load_editor(Path(d) / "e.safetensors")
    return editor, "untrained `ws+gmn` editor at the default `EditorConfig` size (no shipped editor yet)"


def in_process(editor, reps: int) -> dict:
    from gmn.edit import edit_inr
    from inr.files import load_inr
    from inr.siren import render

    inr = load_inr(EXAMPLES / "mnist-test-0.safetensors", allow_stack=False)
    core, total = [], []
    for i in range(reps + 3):
        t0 = time.perf_counter()
        res = edit_inr(inr.params, inr.arch, editor, points=64, size=28, seed=i)
        render(res.params, res.arch, 256)  # an OCE edit is wider than the INR it edits
        dt = time.perf_counter() - t0
        if i >= 3:  # warm-up
            core.append(res.seconds)
            total.append(dt)
    return {"core": core, "total": total}


def through_client(editor, reps: int, download: bool = True) -> list[float]:
    from gradio_client import Client, handle_file

    from app.ui import build
    from gmn.editors import save_editor

    with tempfile.TemporaryDirectory() as d:
        save_editor(Path(d) / "bench-dilate.safetensors", editor)
        demo = build(registry_dirs=[d], published_dir=Path(d) / "published", runs_dir=Path(d) / "runs")
        demo.queue(default_concurrency_limit=4).launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True)
        try:
            c = Client(demo.local_url, verbose=False, download_files=download)
            c.predict(handle_file(str(EXAMPLES / "mnist-test-0.safetensors")), 256, api_name="/load_inr")
            times = []
            for i in range(reps + 2):
                c.predict(128, api_name="/reset")
                t0 = time.perf_counter()
                c.predict("bench-dilate", 64, 1.0, 256, api_name="/edit")
                if i >= 2:
                    times.append(time.perf_counter() - t0)
        finally:
            demo.close()
    return times


def fit_times() -> list[list]:
    from app import handlers as H

    rows = []
    for name, what in (("mnist-test-0.png", "28×28 digit (gray)"), ("astronaut.png", "256×256 photo (colour tiles)")):
        for optimizer in H.FIT_OPTIMIZERS:
            t0 = time.perf_counter()
            st, _ = H.fit_image(str(EXAMPLES / name), optimizer=optimizer)
            dt = time.perf_counter() - t0
            h, w = st.grid.image_size
            rows.append([f"{what}: `{name}`", "→".join(map(str, st.arch.dims)) + f" × {st.grid.count}", f"{w}×{h}",
                         optimizer, st.fit.get("optimizer", "Adam"), st.fit.get("steps", H.DEFAULT_STEPS),
                         f"{st.psnr:.1f}", f"{dt:.2f}"])
    return rows


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(prog="python -m bench.app_latency")
    ap.add_argument("--reps", type=int, default=30)
    args = ap.parse_args(argv)
    torch.manual_seed(0)
    torch.set_flush_denormal(True)  # as app.ui.launch does
    threads0 = os.cpu_count() or 1  # every core (an OMP_NUM_THREADS=1 environment would hide the comparison)
    torch.set_num_threads(threads0)
    load0 = os.getloadavg()[0]
    editor, which = editor_under_test()
    ip2 = in_process(editor, max(10, args.reps // 3))
    torch.set_num_threads(1)  # as app.ui.launch does (GMN_APP_THREADS)
    ip = in_process(editor, args.reps)
    cl = through_client(editor, max(10, args.reps // 2))
    cl_urls = through_client(editor, max(10, args.reps // 2), download=False)
    fits = fit_times()
    load1 = os.getloadavg()[0]
    ms = lambda xs, q: f"{pct(xs, q) * 1e3:.0f}"
    body = [
        f"Editing the bundled 2→32→32→1 digit INR (`assets/examples/mnist-test-0.safetensors`) with the {which}, "
        f"B = 64 points, objective at 28², edited INR rendered at 256². {args.reps} timed runs after warm-up, "
        "one torch thread (the app's setting, `GMN_APP_THREADS`) unless stated.",
        "",
        table(["path", "what is timed", "p50 (ms)", "p95 (ms)", "goal p50"], [
            ["in-process", "decompose + editor forward", ms(ip["core"], 50), ms(ip["core"], 95), ""],
            ["in-process", "`edit_inr` (objective, decompose, editor, check) + render 256²", ms(ip["total"], 50),
             ms(ip["total"], 95), "≤ 50 ms"],
            [f"in-process, {threads0} thread{'s' if threads0 > 1 else ''}", "same", ms(ip2["total"], 50),
             ms(ip2["total"], 95), ""],
            ["`gradio_client`", "`/edit` round trip (edit + Adam baseline + 6 views as PNG), images downloaded",
             ms(cl, 50), ms(cl, 95), "≤ 300 ms"],
            ["`gradio_client`", "same, `download_files=False` (image URLs returned)", ms(cl_urls, 50),
             ms(cl_urls, 95), "≤ 300 ms"],
        ]),
        "",
        "Fit time at the app's defaults, by the one fitting recipe (`inr.tiles.plan_fit`): a digit is one "
        "2→32→32→1 SIREN by the zoo recipe; a photo is a grid of 32-px tile SIRENs (hidden 32, 2 sine layers, "
        "the longer side at 256) by the tile recipe (150 steps, lr 3e-3, stop at 40 dB). One row per choice of "
        "the Fit tab's Optimizer (\"used\": what fitted, after the app's fallbacks):",
        "",
        table(["upload", "SIREN", "grid", "optimizer", "used", "steps", "PSNR (dB)", "time (s)"], fits),
    ]
    if max(load0, load1) > 1:
        body += ["", f"Note: the machine was busy while this ran (load average {load0:.1f} → {load1:.1f} on "
                     f"{os.cpu_count()} cores, other jobs training), so these times are pessimistic."]
    write_section("app-latency", "App: edit latency and fit time", "\n".join(body),
                  command="python -m bench.app_latency")
    print("\n".join(body))


if __name__ == "__main__":
    main()
