"""Server memory figures for BENCHMARKS.md (issue 31): the app's resident memory while 20 gradio_client
sessions each load the largest allowed INR (a 768×1024 photo, working size 1024 on the longer side, 28×37
tiles of 32 px), apply `contrast` edits and render it at a few display sizes; compared with the cap the
limits of app/limits.py imply (README "Reliability: what the server bounds").

The server runs as a subprocess (`python -m app`, as a user starts it), so its RSS is the server's alone,
read from /proc/PID/status (VmRSS now, VmHWM the peak). The INR is fitted once with `python -m inr fit` and
cached under $GMN_HOME/cache/app-memory.

    python -m bench.app_memory [--sessions 20] [--edits 2] [--sizes 256 512 1024] [--fit-steps 20]
    python -m bench.app_memory --cli-render [--render-sizes 1024 2048 4096]

`--cli-render` writes its own section instead: the peak memory of `python -m inr render` of a small valid INR
and of the largest one at each `--render-sizes` (the file does not set it; the command's --size does).
"""

from __future__ import annotations

import argparse
import os
import socket
import subprocess
import sys
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

from bench.report import table, write_section  # noqa: E402

ROOT = Path(__file__).resolve().parent.parent
MiB = 2**20


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def status_kib(pid: int, key: str) -> int:
    """A /proc/PID/status field in KiB (VmRSS: resident now, VmHWM: the peak resident)."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith(key + ":"):
            return int(line.split()[1])
    raise KeyError(key)


def rss_mib(pid: int) -> tuple[float, float]:
    """(resident MiB now, peak resident MiB) of process `pid`."""
    return status_kib(pid, "VmRSS") / 1024, status_kib(pid, "VmHWM") / 1024


def largest_inr(steps: int) -> Path:
    """The largest INR the app takes (working size 1024 on the longer side): a 768×1024 photo fitted as tiles,
    built once with `python -m inr fit` and cached under $GMN_HOME/cache/app-memory."""
    from PIL import Image

    from inr.home import cache_dir

    d = cache_dir("app-memory")
    d.mkdir(parents=True, exist_ok=True)
    out = d / f"photo-1024x768-{steps}steps.safetensors"
    if out.exists():
        return out
    photo = d / "photo-1024x768.png"
    if not photo.exists():
        tmp = d / f".photo-{os.getpid()}.png"
        img = Image.open(ROOT / "assets" / "examples" / "chelsea.png").convert("RGB")
        img.resize((1024, 768), Image.LANCZOS).save(tmp)
        os.replace(tmp, photo)
    subprocess.run([sys.executable, "-m", "inr", "fit", str(photo), "--size", "1024", "--steps", str(steps),
                    "--threads", "1", "-q", "-o", str(out)], check=True, cwd=ROOT)
    return out


def start_server(port: int, log: Path) -> subprocess.Popen:
    """`python -m app` on 127.0.0.1:`port` (one intra-op thread, as launched by default), once it answers."""
    env = dict(os.environ, GMN_APP_THREADS="1", OMP_NUM_THREADS="1", GRADIO_ANALYTICS_ENABLED="False")
    proc = subprocess.Popen([sys.executable, "-m", "app", "--host", "127.0.0.1", "--port", str(port)], cwd=ROOT,
                            env=env, stdout=log.open("w"), stderr=subprocess.STDOUT)
    t0 = time.time()
    while time.time() - t0 < 180:
        if proc.poll() is not None:
            raise SystemExit(f"error: the app exited ({proc.returncode}); see {log}")
        try:
            urllib.request.urlopen(f"http://127.0.0.1:{port}/", timeout=2)
            return proc
        except OSError:
            time.sleep(1.0)
    proc.kill()
    raise SystemExit(f"error: the app did not answer within 180 s; see {log}")


def session(url: str, inr: Path, edits: int, sizes: list[int]) -> tuple[int, list[str]]:
    """One client: /load_inr of `inr`, then `edits` contrast edits at the largest display size, then /render
    of the edited INR at each of `sizes`. Returns (requests done, errors)."""
    from gradio_client import Client, handle_file

    c = Client(url, verbose=False, download_files=False)
    done, errors = 0, []
    calls = [((handle_file(str(inr)), sizes[0]), "/load_inr")]
    calls += [(("contrast", 64, 1.0, sizes[-1]), "/edit")] * edits
    calls += [((s, "edited"), "/render") for s in sizes]
    for call_args, name in calls:
        try:
            c.predict(*call_args, api_name=name)
            done += 1
        except Exception as e:  # noqa: BLE001 - a refusal is a figure here, not a crash of the bench
            errors.append(f"{name}: {str(e).splitlines()[0][:100] if str(e) else type(e).__name__}")
    return done, errors


# `inr render` in a child: its RSS after the imports and a 16-px warm-up render, then the peak above it
RENDER_CHILD = r"""
import sys, torch
from inr.__main__ import main
torch.set_num_threads(1)
def kib(key):
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1])
main(["render", sys.argv[1], "-o", sys.argv[2], "--size", "16"])
base = kib("VmRSS")
open("/proc/self/clear_refs", "w").write("5")  # resets VmHWM
main(["render", sys.argv[1], "-o", sys.argv[2], "--size", sys.argv[3]])
print("peak", base, kib("VmHWM") - base)
"""


def render_peaks(files: dict[str, Path], sizes: list[int]) -> list[list]:
    """Rows (file, size, baseline MiB, peak MiB above it) of `python -m inr render FILE --size S`."""
    import tempfile

    rows = []
    env = dict(os.environ, OMP_NUM_THREADS="1")
    with tempfile.TemporaryDirectory() as d:
        for name, path in files.items():
            for size in sizes:
                out = subprocess.run([sys.executable, "-c", RENDER_CHILD, str(path), str(Path(d) / "out.png"),
                                      str(size)], capture_output=True, text=True, cwd=ROOT, env=env)
                last = (out.stdout.strip().splitlines() or [""])[-1].split()
                if out.returncode != 0 or not last or last[0] != "peak":
                    rows.append([name, size, "—", f"failed: {out.stderr.strip().splitlines()[-1:]}"])
                else:
                    rows.append([name, size, f"{int(last[1]) / 1024:.0f}", f"{int(last[2]) / 1024:.0f}"])
                print(rows[-1], flush=True)
    return rows


def cli_render(sizes: list[int], fit_steps: int) -> int:
    """Write the `cli_render_memory` section: render_peaks of an 8-px digit and of the largest INR."""
    import tempfile

    import torch

    from inr.files import save_inr
    from inr.siren import SirenArch, init_params

    with tempfile.TemporaryDirectory() as d:
        small = Path(d) / "digit-8px.safetensors"
        arch = SirenArch(hidden=8)
        save_inr(small, init_params(arch, 1, generator=torch.Generator().manual_seed(0)), arch, image_size=[8, 8])
        rows = render_peaks({f"8-px SIREN 2→8→8→1 ({small.stat().st_size:,} B)": small,
                             "768×1024 photo, 28×37 tiles (4.9 MiB)": largest_inr(fit_steps)}, sizes)
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    body = ("Peak resident memory of one `python -m inr render FILE -o OUT.png --size S` (one thread) above the "
            "process's RSS after its imports and a 16-px warm-up render (/proc/self/status VmHWM, reset through "
            "/proc/self/clear_refs). The size comes from the command's `--size` (at most 4096), not from the "
            "file: `inr.tiles.render_tiles` evaluates the SIRENs in chunks, but `TileGrid.layout` builds the "
            "index, local coordinates and blend weights of every output pixel at once (int64 and float64, "
            "several tensors of H·W), so memory grows as H·W whatever the file.\n\n"
            + table(["file", "--size", "RSS before (MiB)", "peak above it (MiB)"], rows)
            + f"\n\nThe machine is shared; memory figures do not depend on the load: `{uptime}`.")
    write_section("cli_render_memory", "`inr render` memory against --size", body)
    print(body)
    return 0


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m bench.app_memory")
    ap.add_argument("--sessions", type=int, default=20)
    ap.add_argument("--edits", type=int, default=2, help="contrast edits per session")
    ap.add_argument("--sizes", type=int, nargs="+", default=[256, 512, 1024], help="display sizes rendered")
    ap.add_argument("--fit-steps", type=int, default=20, help="steps of the cached INR's fit (its size is fixed)")
    ap.add_argument("--cli-render", action="store_true", help="measure `inr render` instead (its own section)")
    ap.add_argument("--render-sizes", type=int, nargs="+", default=[1024, 2048, 4096])
    args = ap.parse_args(argv)
    if args.cli_render:
        if not all(1 <= s <= 4096 for s in args.render_sizes):
            print("error: --render-sizes from 1 to 4096", file=sys.stderr)
            return 2
        return cli_render(args.render_sizes, args.fit_steps)
    if args.sessions < 1 or args.edits < 0 or not all(1 <= s <= 1024 for s in args.sizes):
        print("error: --sessions ≥ 1, --edits ≥ 0 and display sizes from 1 to 1024", file=sys.stderr)
        return 2
    from app import limits as L
    from inr.files import load_inr

    inr = largest_inr(args.fit_steps)
    held = load_inr(inr)
    n_params = sum(p.numel() for p in held.params)
    grid = held.grid
    port = free_port()
    log = Path(os.environ.get("TMPDIR", "/tmp")) / f"app-memory-{port}.log"
    proc = start_server(port, log)
    url = f"http://127.0.0.1:{port}/"
    rows, errors, after = [], [], []
    try:
        idle, _ = rss_mib(proc.pid)
        print(f"idle server: {idle:.0f} MiB", flush=True)
        t_all = time.perf_counter()
        for i in range(args.sessions):
            t0 = time.perf_counter()
            done, errs = session(url, inr, args.edits, args.sizes)
            now, peak = rss_mib(proc.pid)
            errors += [f"session {i + 1}: {e}" for e in errs]
            after.append(now)
            rows.append([i + 1, done, f"{time.perf_counter() - t0:.1f}", f"{now:.0f}", f"{peak:.0f}"])
            print(rows[-1], errs, flush=True)
        wall = time.perf_counter() - t_all
        time.sleep(2.0)
        end, peak = rss_mib(proc.pid)
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
    per_session = (end - idle) / args.sessions
    # the first session also pays one-time costs (editor loaded, torch's and glibc's arenas grown)
    marginal = (end - after[0]) / (args.sessions - 1) if args.sessions > 1 else float("nan")
    per_cap = (L.RENDER_BYTES + L.HISTORY_BYTES) / MiB
    cap = L.MAX_SESSIONS * per_cap
    held_cap = args.sessions * per_cap
    uptime = subprocess.run(["uptime"], capture_output=True, text=True).stdout.strip()
    shown = rows if len(rows) <= 6 else rows[:3] + [["…"] * 5] + rows[-3:]
    body = (
        f"{args.sessions} gradio_client sessions, one after another, against `python -m app` (a subprocess, one "
        f"intra-op thread): each uploads the largest INR the app takes through `/load_inr` (a 768×1024 photo "
        f"fitted at working size 1024 on the longer side: {grid.shape[0]}×{grid.shape[1]} tiles of 32 px, "
        f"{n_params:,} SIREN parameters, {inr.stat().st_size / MiB:.1f} MiB file), applies {args.edits} "
        f"`contrast` edit(s) at display {args.sizes[-1]}, then `/render`s the edited INR at display "
        f"{', '.join(map(str, args.sizes))}. The server's RSS (/proc/PID/status VmRSS; VmHWM for the peak) "
        f"after each session:\n\n"
        + table(["session", "requests done", "seconds", "RSS after (MiB)", "peak RSS so far (MiB)"], shown)
        + f"\n\n- Idle server {idle:.0f} MiB; after {args.sessions} sessions {end:.0f} MiB; peak {peak:.0f} MiB; "
        f"{per_session:.1f} MiB per session held ((end − idle) / sessions), {after[0] - idle:.0f} MiB after the "
        f"first (one-time costs included: the editor loaded, allocator arenas grown) and {marginal:.1f} MiB per "
        f"further session ((end − after session 1) / {args.sessions - 1}); {wall:.0f} s in all.\n"
        f"- The documented caps (app/limits.py, README \"Reliability\"): per session renders ≤ "
        f"{L.RENDER_BYTES // MiB} MiB and history ≤ {L.HISTORY_BYTES // MiB} MiB, so ≤ {per_cap:.0f} MiB of "
        f"tensors; at most {L.MAX_SESSIONS} live sessions: worst case {L.MAX_SESSIONS} × {per_cap:.0f} MiB = "
        f"{cap / 1024:.1f} GiB above the idle server (its own models and Gradio not counted). For "
        f"{args.sessions} sessions the cap is {held_cap / 1024:.2f} GiB above idle: measured "
        f"{end - idle:.0f} MiB held, peak {peak - idle:.0f} MiB above idle, "
        f"{'within' if peak - idle <= held_cap else 'OVER'} it "
        f"({(peak - idle) / held_cap:.0%} of the {args.sessions}-session cap, "
        f"{(peak - idle) / cap:.0%} of the {L.MAX_SESSIONS}-session worst case).\n"
        f"- Refused or failed requests: {len(errors)}"
        + (": " + "; ".join(errors[:5]) if errors else "") + ".\n"
        f"\nThe machine is shared (other jobs running; timings are noisy, memory figures are not): `{uptime}`."
    )
    write_section("app_memory", "App memory: 20 sessions on the largest allowed INR", body)
    print(body)
    return 0


if __name__ == "__main__":
    sys.exit(main())
