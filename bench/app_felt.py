"""Latency a person feels in the app (issue 30, item 3): from a click to the image shown, in a real browser
(Debian's /usr/bin/chromium driven by Playwright), median of `--reps` clicks each, with the shipped editors.

    python -m bench.app_felt [--reps 5] [--example astronaut] [--editor contrast] [--no-write]

Timed in the page (performance.now() from the click to the new image decoded in the panel "Step shown"):
an edit's preview, the equal-time Adam row and GradMetaNet's view after it (the follow-up), the refined
step (the background refine done), undo, redo,
and a history pick (that one from Playwright's click, so it includes the click's own few ms).
The machine's load (`uptime`) is written beside the table: on a shared 2-core machine the figures vary.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

CHROMIUM = "/usr/bin/chromium"
FLAGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
         "--disable-background-networking", "--disable-component-update", "--disable-sync"]

# click `btn`, then wait until the image in `sel` has a new, decoded source: milliseconds
CLICK_TO_IMAGE = """async ([btn, sel]) => {
  const img = () => document.querySelector(sel + ' img');
  const before = img() ? img().src : null;
  const t0 = performance.now();
  document.querySelector(btn).click();
  for (;;) {
    const i = img();
    if (i && i.src !== before && i.complete && i.naturalWidth > 0) return performance.now() - t0;
    await new Promise(r => setTimeout(r, 5));
  }
}"""
IMAGE_SRC = "(sel) => { const i = document.querySelector(sel + ' img'); return i ? i.src : null; }"
NEW_IMAGE = ("([sel, before]) => { const i = document.querySelector(sel + ' img');"
             " return i && i.src !== before && i.complete && i.naturalWidth > 0; }")


def load_average() -> str:
    """The 1, 5 and 15 minute load averages."""
    return " / ".join(Path("/proc/loadavg").read_text().split()[:3])


def serve():
    """The app with the shipped editors on a free port: (url, demo)."""
    import socket

    import torch

    from app.ui import MAX_FILE_SIZE, build

    torch.set_num_threads(1)  # as app.ui.launch does
    root = Path(tempfile.mkdtemp(prefix="gmn-felt-"))
    demo = build(published_dir=root / "published", runs_dir=root / "runs")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    demo.queue(default_concurrency_limit=4).launch(server_name="127.0.0.1", server_port=port, quiet=True,
                                                   prevent_thread_lock=True, max_file_size=MAX_FILE_SIZE)
    return f"http://127.0.0.1:{port}/", demo


def wait_info(page, text: str, present: bool = True, timeout: float = 300_000) -> None:
    op = "" if present else "!"
    page.wait_for_function(f"{op}document.querySelector('#info').innerText.includes({text!r})", timeout=timeout)


def measure(page, example: str, editor: str, reps: int) -> dict[str, list[float]]:
    """Per action, the click-to-image times (ms)."""
    out: dict[str, list[float]] = {k: [] for k in ("preview", "details", "refine", "undo", "redo", "history")}
    from app.sources import example_names

    page.get_by_role("tab", name="Bundled example").click()
    page.locator("#examples img").nth(example_names().index(example)).click()  # the gallery lists them sorted
    wait_info(page, "0 edit(s) applied")
    page.wait_for_function("!document.querySelector('#edit-btn').disabled")
    page.click("#editor-dd input")
    page.click(f"[role=option] >> text={editor}")
    for i in range(reps):
        out["preview"].append(page.evaluate(CLICK_TO_IMAGE, ["#edit-btn", "#edited"]))
        t0 = time.perf_counter()
        wait_info(page, f"{i + 1} edit(s) applied")
        wait_info(page, "computing…", present=False)
        out["details"].append(out["preview"][-1] + (time.perf_counter() - t0) * 1e3)
        wait_info(page, "Refine: refined")  # the step replaced by the refine (a next edit would queue behind it)
        out["refine"].append(out["preview"][-1] + (time.perf_counter() - t0) * 1e3)
        page.wait_for_timeout(300)  # let the canvas settle
        out["undo"].append(page.evaluate(CLICK_TO_IMAGE, ["#undo-btn", "#edited"]))
        wait_info(page, f"step {i} of {i + 1}")
        page.wait_for_timeout(300)
        out["redo"].append(page.evaluate(CLICK_TO_IMAGE, ["#redo-btn", "#edited"]))
        wait_info(page, f"step {i + 1} of {i + 1}")
        page.wait_for_timeout(300)
        # a history pick: the loaded INR, then back to the last step with redo (not timed)
        page.click("#history input")
        before = page.evaluate(IMAGE_SRC, "#edited")
        option = page.locator("[role=option]").first
        t0 = time.perf_counter()
        option.click()
        page.wait_for_function(NEW_IMAGE, arg=["#edited", before])
        out["history"].append((time.perf_counter() - t0) * 1e3)
        wait_info(page, f"step 0 of {i + 1}")
        page.wait_for_timeout(300)
        page.click("#history input")
        page.locator("[role=option]").last.click()
        wait_info(page, f"step {i + 1} of {i + 1}")
        page.wait_for_timeout(300)
    return out


GOALS = {"preview": "≤ 1,000 (idle machine)", "refine": "≤ 3,000", "undo": "≤ 300", "redo": "≤ 300",
         "history": "≤ 300"}
WHAT = {"preview": "Apply → the preview (step shown, target, change, points)",
        "details": "Apply → the equal-time Adam row and GradMetaNet's view (follow-up)",
        "refine": "Apply → the refined step shown (status ✓; background: Adam row, then the refine)",
        "undo": "Undo → the step before", "redo": "Redo → the step after",
        "history": "History pick → the loaded INR (Playwright click)"}


def main(argv=None) -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--reps", type=int, default=5)
    ap.add_argument("--example", default="astronaut")
    ap.add_argument("--editor", default="contrast")
    ap.add_argument("--no-write", action="store_true", help="print the table, leave BENCHMARKS.md alone")
    args = ap.parse_args(argv)
    from playwright.sync_api import sync_playwright

    from bench.report import table, write_section

    url, demo = serve()
    load0 = load_average()
    try:
        with sync_playwright() as p:
            browser = p.chromium.launch(executable_path=CHROMIUM, args=FLAGS, headless=True)
            page = browser.new_page(viewport={"width": 1400, "height": 1800})
            page.set_default_timeout(300_000)
            page.goto(url)
            page.wait_for_selector("#fit-btn")
            try:
                times = measure(page, args.example, args.editor, args.reps)
            except Exception:
                page.screenshot(path=str(Path(tempfile.gettempdir()) / "app_felt-failed.png"), full_page=True)
                print("the page at the failure:", page.inner_text("#info")[:500], page.inner_text("#alert"))
                raise
            browser.close()
    finally:
        demo.close()
    load1 = load_average()
    rows = [[WHAT[k], f"{statistics.median(v):.0f}", f"{min(v):.0f}–{max(v):.0f}", GOALS.get(k, "")]
            for k, v in times.items()]
    body = (f"Bundled example `{args.example}` (256×256 px, 9×9 colour tiles), shipped editor `{args.editor}`, "
            f"display 256, {args.reps} clicks of each, one torch thread per request. Milliseconds from the click "
            "to the new image decoded in the page (performance.now()). The machine was shared with other work: "
            f"load average {load0} before, {load1} after (`/proc/loadavg`, 1/5/15 min, 2 cores).\n\n"
            + table(["action", "median (ms)", "range (ms)", "goal (ms)"], rows))
    print(body)
    if not args.no_write:
        write_section("app-felt", "App: latency felt in the browser", body,
                      command=" ".join(["python -m bench.app_felt", *(sys.argv[1:] if argv is None else argv)]))


if __name__ == "__main__":
    main()
