"""Fairness figures for BENCHMARKS.md (issue 31): a bystander's edit latency through gradio_client (a digit INR,
the shipped `dilate` editor, display 256) alone, and while another client runs the heaviest allowed work: fits
at the largest working resolution (a 1024-px photo, 37×37 tiles) and `contrast` edits of the fitted INR, in a
loop (the heavy lane of app.limits serves it one request at a time beside the light ones).

    python -m bench.app_fairness [--edits 10] [--fit-steps 20] [--heavy-clients 1 4]
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import numpy as np  # noqa: E402

from bench.report import table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
EXAMPLES = ROOT / "assets" / "examples"


def p95(xs: list[float]) -> float:
    return float(np.percentile(np.asarray(xs), 95))


def bystander(url: str, edits: int) -> list[float]:
    """Seconds per /edit of a 28-px digit INR (after one warm-up edit; each undone, untimed)."""
    from gradio_client import Client, handle_file

    c = Client(url, verbose=False, download_files=False)
    c.predict(handle_file(str(EXAMPLES / "mnist-test-0.safetensors")), 256, api_name="/load_inr")
    times = []
    for i in range(edits + 1):
        t0 = time.perf_counter()
        c.predict("dilate", 64, 1.0, 256, api_name="/edit")
        if i:  # the first is a warm-up
            times.append(time.perf_counter() - t0)
        c.predict(256, api_name="/undo")  # an OCE edit is not edited again: each edit starts from the digit
    return times


def heavy_client(url: str, photo: Path, steps: int, stop: threading.Event, log: list) -> None:
    """Fit `photo` at 1024 px, then contrast edits of it, until `stop` (each request's seconds in `log`)."""
    from gradio_client import Client, handle_file

    c = Client(url, verbose=False, download_files=False)
    while not stop.is_set():
        try:
            t0 = time.perf_counter()
            c.predict(handle_file(str(photo)), 32, 2, "1024", steps, "colour", 1024, "Adam", api_name="/fit")
            log.append(("fit 1024 px", time.perf_counter() - t0))
            for _ in range(3):
                if stop.is_set():
                    return
                t0 = time.perf_counter()
                c.predict("contrast", 64, 1.0, 1024, api_name="/edit")
                log.append(("contrast edit 1024 px", time.perf_counter() - t0))
                c.predict(1024, api_name="/undo")
        except Exception as e:  # noqa: BLE001 - the server closing under it ends the loop
            log.append((f"error: {str(e).splitlines()[0][:80]}", 0.0))
            return


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.app_fairness")
    ap.add_argument("--edits", type=int, default=10, help="bystander edits per phase")
    ap.add_argument("--fit-steps", type=int, default=20, help="steps of the heavy clients' 1024-px fits")
    ap.add_argument("--heavy-clients", type=int, nargs="+", default=[1, 4], help="heavy clients per phase")
    args = ap.parse_args(argv)
    import torch
    from PIL import Image

    from app import limits as L
    from app.ui import MAX_FILE_SIZE, build

    torch.set_num_threads(1)  # as app.ui.launch does
    torch.set_flush_denormal(True)
    with tempfile.TemporaryDirectory() as d:
        photo = Path(d) / "astronaut-1024.png"
        Image.open(EXAMPLES / "astronaut.png").convert("RGB").resize((1024, 1024), Image.LANCZOS).save(photo)
        demo = build(published_dir=Path(d) / "published", runs_dir=Path(d) / "runs")
        demo.queue(default_concurrency_limit=4).launch(prevent_thread_lock=True, server_name="127.0.0.1", quiet=True,
                                                       max_file_size=MAX_FILE_SIZE, show_error=False)
        try:
            rows, notes, ratios = [], [], []
            load0 = os.getloadavg()[0]
            alone = bystander(demo.local_url, args.edits)
            rows.append(["alone", f"{np.median(alone):.2f}", f"{p95(alone):.2f}", "—", f"{load0:.1f}"])
            for phase, n in enumerate(args.heavy_clients):
                stop, logs = threading.Event(), [[] for _ in range(n)]
                threads = [threading.Thread(target=heavy_client, args=(demo.local_url, photo, args.fit_steps, stop,
                                                                       logs[i]), daemon=True) for i in range(n)]
                for t in threads:
                    t.start()
                time.sleep(5.0)  # the heavy fits under way
                busy = bystander(demo.local_url, args.edits)
                load1 = os.getloadavg()[0]
                running = sum(t.is_alive() for t in threads)
                stop.set()
                ratios.append(p95(busy) / p95(alone))
                rows.append([f"while {n} client(s) fit and edit 1024-px INRs", f"{np.median(busy):.2f}",
                             f"{p95(busy):.2f}", f"{ratios[-1]:.2f}×", f"{load1:.1f}"])
                done = [f"{k} {s:.1f} s" if s else k for log in logs for k, s in log]
                notes.append(f"{n} heavy client(s): {running} still working at the end; their requests finished "
                             f"meanwhile: {'; '.join(done) or 'none (each fit outlasted the measurement)'}")
                if phase < len(args.heavy_clients) - 1:
                    for t in threads:
                        t.join(600)  # the next phase starts from an idle server
                print(rows[-1], flush=True)
        finally:
            demo.close()
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    body = (f"A bystander's `/edit` (28-px digit, shipped `dilate`, display 256; {args.edits} edits per phase, "
            f"through gradio_client), alone and while other clients run the heaviest allowed work: fits of a "
            f"1024-px photo at working resolution 1024 (37×37 tiles, {args.fit_steps} steps) and `contrast` edits "
            f"of it at display 1024, in a loop. Heavy requests (INRs over {L.HEAVY_SIDE} px a side) take one lane "
            f"({L.HEAVY_RUNNING} running, {L.HEAVY_WAITING} waiting, more refused); light ones run beside it "
            f"(edit group {L.EDIT_WORKERS} workers, fit group {L.FIT_WORKERS}).\n\n"
            + table(["bystander", "median (s)", "p95 (s)", "p95 / alone", "1-min load"], rows)
            + "\n\nGoal: p95 ≤ 2× alone. " + ". ".join(notes)
            + f".\n\nThe machine is shared (other jobs running; timings are noisy): `{uptime}`.")
    write_section("app_fairness", "App fairness: a bystander's edit while another client runs heavy work", body)
    print(body)
    return 0


if __name__ == "__main__":
    code = main()
    # the heavy clients' last fits may still run in the in-process server's worker threads (inside torch):
    # interpreter shutdown would abort on them, so the script ends here once its section is written
    sys.stdout.flush()
    os._exit(code)
