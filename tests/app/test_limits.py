"""The app's edges and bounds (issue 31): API calls Gradio itself refuses answered in one line, the admin guard's
lock-outs, the session caches and the disk cache kept within their caps."""

import json
import urllib.request
from pathlib import Path

import gradio as gr
import pytest
import torch
from gradio_client import Client, handle_file
from gradio_client.exceptions import AppError
from safetensors.torch import load_file, save_file

ROOT = Path(__file__).resolve().parents[2]
DIGIT_INR = ROOT / "assets" / "examples" / "mnist-test-0.safetensors"
pytestmark = pytest.mark.filterwarnings("ignore:::gradio.queueing")


@pytest.fixture
def client(server):
    return Client(server[0], verbose=False)


def raw_call(url: str, endpoint: str, data: list) -> str:
    """POST /gradio_api/call/ENDPOINT with `data` as sent (no client-side checks), and the event stream's text."""
    req = urllib.request.Request(f"{url}gradio_api/call/{endpoint}", data=json.dumps({"data": data}).encode(),
                                 headers={"Content-Type": "application/json"})
    with urllib.request.urlopen(req, timeout=60) as r:
        event = json.loads(r.read())["event_id"]
    with urllib.request.urlopen(f"{url}gradio_api/call/{endpoint}/{event}", timeout=60) as r:
        return r.read().decode()


def error_line(stream: str) -> str | None:
    """The error message of an event stream ('event: error' then 'data: {...}' or 'data: null')."""
    lines = stream.splitlines()
    for i, line in enumerate(lines):
        if line.strip() == "event: error":
            data = json.loads(lines[i + 1].removeprefix("data:").strip())
            return str(data.get("error")) if isinstance(data, dict) else str(data)
    return None


def test_sensitivity_errors_unquoted_and_points_default(client):
    client.predict(handle_file(str(DIGIT_INR)), 64, api_name="/load_inr")
    with pytest.raises(AppError) as e:
        client.predict(1e9, 5, 64, api_name="/sensitivity")
    assert str(e.value) == "points must be between 16 and 1024, got 1e+09"  # not "'points …'"
    with pytest.raises(AppError) as e:
        client.predict(32, 80, 64, api_name="/sensitivity")
    assert not str(e.value).startswith("'") and "between 0.5 and 50" in str(e.value)
    # an empty value takes the default, as the sampled points of an edit do
    _, _, md = client.predict(None, None, 64, api_name="/sensitivity")
    assert "128" in md
    _, _, md = client.predict("", 5, 64, api_name="/sensitivity")
    assert "128" in md


def test_gradios_own_refusals_are_one_line(server):
    url = server[0]
    # a file argument naming a file never uploaded
    msg = error_line(raw_call(url, "load_inr", [{"path": "/tmp/never-uploaded.safetensors",
                                                 "meta": {"_type": "gradio.FileData"}}, 64]))
    assert msg not in (None, "None") and "/load_inr" in msg and "uploaded first" in msg, msg
    assert "\n" not in msg
    # too many arguments
    msg = error_line(raw_call(url, "undo", [128, 1, 2, 3]))
    assert msg == "/undo takes 1 argument(s), got 4", msg
    # and a well-formed call still works
    assert error_line(raw_call(url, "list_editors", [])) is None


def test_paint_refuses_a_filter_editor(client):
    client.predict(handle_file(str(DIGIT_INR)), 64, api_name="/load_inr")
    with pytest.raises(AppError, match=r"^'dilate' is not a paint editor \(paint editors: paint"):
        client.predict(None, "dilate", 32, 1.0, 64, api_name="/paint")  # refused before the stroke is read


def test_load_inr_with_infinite_hidden_is_one_line(client, tmp_path):
    tensors = load_file(str(DIGIT_INR))
    from safetensors import safe_open

    with safe_open(str(DIGIT_INR), framework="pt") as fh:
        meta = dict(fh.metadata())
    arch = json.loads(meta["arch"])
    arch["hidden"] = float("inf")
    meta["arch"] = json.dumps(arch)  # "hidden": Infinity
    assert "Infinity" in meta["arch"]
    bad = tmp_path / "inf.safetensors"
    save_file({k: v.contiguous() for k, v in tensors.items()}, str(bad), metadata=meta)
    with pytest.raises(AppError) as e:
        client.predict(handle_file(str(bad)), 64, api_name="/load_inr")
    assert "inf.safetensors" in str(e.value) and "hidden" in str(e.value) and "\n" not in str(e.value), str(e.value)
    assert torch.isfinite(tensors[next(iter(tensors))]).all()


def test_password_guard_slows_guessers_but_never_locks_out_the_innocent(monkeypatch):
    """50 wrong passwords from 12 addresses: each guesser is slowed (its next failure locks it for global_lock),
    a client with no failures logs in at once; the per-client lock-out stays."""
    from app.admin import PasswordGuard, check_admin

    monkeypatch.setenv("GMN_ADMIN_PASSWORD", "right-password-7")
    now = [1000.0]
    g = PasswordGuard(free=5, window=600.0, global_free=50, global_lock=45.0, clock=lambda: now[0])
    fails = 0
    for i in range(50):  # 12 addresses, at most 5 each: none reaches its own lock-out before the 50th
        client = f"10.0.0.{i % 12}"
        with pytest.raises(gr.Error, match="wrong admin password"):
            check_admin("guess", client, g)
        fails += 1
        now[0] += 0.5
    assert fails == 50 and g.under_attack()
    check_admin("right-password-7", "192.168.1.9", g)  # never failed: not locked
    # the 50th guesser (10.0.0.1) is locked for global_lock; the right password waits too
    with pytest.raises(gr.Error, match=r"try again in 4[45] s"):
        check_admin("right-password-7", "10.0.0.1", g)
    # another guesser's next failure locks it for global_lock, not the 2 s of its own count
    with pytest.raises(gr.Error, match="wrong admin password"):
        check_admin("guess", "10.0.0.2", g)
    with pytest.raises(gr.Error, match="try again in 45 s"):
        check_admin("guess", "10.0.0.2", g)
    now[0] += 46
    check_admin("right-password-7", "10.0.0.2", g)  # the lock expired; success clears it
    # per client: 5 failures from one address lock it (2 s, doubling), others unaffected
    now[0] += 700  # the window passed: not under attack any more
    assert not g.under_attack()
    for _ in range(5):
        with pytest.raises(gr.Error, match="wrong admin password"):
            check_admin("guess", "10.9.9.9", g)
    with pytest.raises(gr.Error, match="try again in 2 s"):
        check_admin("right-password-7", "10.9.9.9", g)
    check_admin("right-password-7", "10.9.9.8", g)


def test_a_session_rendering_many_sizes_stays_under_its_cap():
    """12 display sizes of a 256-px colour INR (as the probe's 1024-px one at 12 sizes): the session's render cache
    keeps at most RENDER_ENTRIES renders and RENDER_BYTES bytes, the latest renders, each equal to a fresh one;
    a deep copy (gr.State's default per session) keeps the caps."""
    import copy

    from app import limits as L
    from app.session import Session
    from app.views import out_size, render
    from inr.siren import SirenArch, init_params
    from inr.tiles import TileGrid, render_tiles

    arch = SirenArch(hidden=8, dim_out=3)
    grid = TileGrid.for_image(256)
    params = init_params(arch, grid.count, generator=torch.Generator().manual_seed(3))
    st = Session.new(params, arch, grid, "test")
    cache = st.cache["renders"]
    cache.budget = 6 * 2**20  # a small budget: 256² renders are 0.75 MiB, 512² 3 MiB
    sizes = list(range(64, 64 + 12 * 40, 40))
    for d in sizes:
        render(st, st.params, out_size(st, d))
        assert len(cache) <= L.RENDER_ENTRIES and (len(cache) == 1 or cache.nbytes() <= cache.budget)
    last = out_size(st, sizes[-1])
    assert (id(st.params), last) in cache  # the newest is kept
    fresh = render_tiles(st.params, arch, grid, last)[0]
    assert torch.equal(render(st, st.params, last), fresh)
    twin = copy.deepcopy(Session())
    assert isinstance(twin.cache["renders"], L.RenderCache) and twin.cache["renders"].entries == L.RENDER_ENTRIES
    small = L.RenderCache(entries=2, budget=10**9)
    for k in "abc":
        small[k] = torch.zeros(4)
    small.get("b")
    small["d"] = torch.zeros(4)  # "b" was read last: "c" goes
    assert list(small) == ["b", "d"]


def test_an_expired_session_is_dropped(server):
    """The app's session state expires after SESSION_TTL idle seconds: Gradio's sweep calls the delete callback
    (which removes the session's download folder) and drops the Session; the live-session cap is set."""
    import datetime

    from gradio.state_holder import SessionState

    from app import handlers as H
    from app import limits as L
    from app.session import Session

    demo = server[1]
    st_block = next(b for b in demo.blocks.values() if isinstance(b, gr.State) and b.time_to_live == L.SESSION_TTL)
    holder = demo.state_holder
    ss: SessionState = holder["expiry-test"]
    sess = Session()
    sess.cache["dir"] = "expiry-test"
    H.session_dir("expiry-test").mkdir(parents=True, exist_ok=True)
    ss[st_block._id] = sess
    holder.delete_all_expired_state()
    assert st_block._id in ss.state_data  # fresh: kept
    ttl, _ = ss._state_ttl[st_block._id]
    ss._state_ttl[st_block._id] = (ttl, datetime.datetime.now() - datetime.timedelta(seconds=L.SESSION_TTL + 1))
    holder.delete_all_expired_state()
    assert st_block._id not in ss.state_data and not H.session_dir("expiry-test").exists()
    assert st_block.delete_callback is not None


def test_old_cache_files_are_pruned(tmp_path, server):
    """Files older than the age cap go, then the oldest beyond the size cap; young ones within it stay; the app
    asks Gradio to sweep its own files too."""
    import os
    import time

    from app import limits as L

    now = time.time()
    (tmp_path / "a").mkdir()
    old = tmp_path / "a" / "old.png"
    old.write_bytes(b"x" * 100)
    os.utime(old, (now - L.CACHE_AGE - 10, now - L.CACHE_AGE - 10))
    mid, new = tmp_path / "mid.png", tmp_path / "new.png"
    mid.write_bytes(b"y" * 600)
    os.utime(mid, (now - 60, now - 60))
    new.write_bytes(b"z" * 600)
    deleted, kept = L.prune_files(tmp_path, max_age=L.CACHE_AGE, max_bytes=10_000, now=now)
    assert (deleted, kept) == (1, 1200) and not old.exists() and not (tmp_path / "a").exists() and mid.exists()
    deleted, kept = L.prune_files(tmp_path, max_age=L.CACHE_AGE, max_bytes=1000, now=now)
    assert (deleted, kept) == (1, 600) and not mid.exists() and new.exists()  # the oldest beyond the size cap
    assert server[1].delete_cache == (L.CACHE_SWEEP, L.CACHE_AGE)


def test_heavy_calls_take_one_lane_and_light_ones_pass_beside_it():
    """With one heavy call running and two waiting, a light call runs at once and a fourth heavy one is refused
    in one line; the wrapped events keep their signatures (gr.Request injection reads them)."""
    import inspect
    import threading
    import time
    from types import SimpleNamespace

    from app import limits as L
    from app.session import Session
    from inr.siren import SirenArch, init_params
    from inr.tiles import TileGrid

    arch = SirenArch(hidden=8)
    big = Session.new(init_params(arch, TileGrid.for_image(512).count), arch, TileGrid.for_image(512), "big")
    small = Session.new(init_params(arch, 1), arch, 28, "small")
    assert L.is_heavy("edit", (big,)) and not L.is_heavy("edit", (small,)) and not L.is_heavy("edit", (Session(),))
    assert L.is_heavy("fit", (None, "x.png", 32, 2, "512")) and not L.is_heavy("fit", (None, "x.png", 32, 2, "auto"))
    assert not L.is_heavy("fit", (None, "x.png", 32, 2, 256))

    release, started = threading.Event(), []

    def work(st, display, request: gr.Request = None):
        started.append(st.source)
        if st.source == "big":
            release.wait(30)
        return st.source

    demo = SimpleNamespace(fns={0: SimpleNamespace(concurrency_id="edit", fn=work)})
    lane = L.HeavyLane(running=1, waiting=2)
    L.share_fairly(demo, lane=lane)
    fn = demo.fns[0].fn
    assert list(inspect.signature(fn).parameters) == ["st", "display", "request"]
    heavy = [threading.Thread(target=fn, args=(big, 256)) for _ in range(3)]
    for t in heavy:
        t.start()
    for _ in range(200):
        if lane._inside == 3:
            break
        time.sleep(0.01)
    assert lane._inside == 3 and started.count("big") == 1  # one running, two waiting
    assert fn(small, 256) == "small"  # the light call is not queued behind them
    with pytest.raises(gr.Error, match="busy with other large INRs"):
        fn(big, 256)
    release.set()
    for t in heavy:
        t.join(30)
    assert started.count("big") == 3 and lane._inside == 0


def test_history_is_capped_by_bytes(monkeypatch):
    """Edit steps of 1 MiB each under a 5 MiB history cap: the oldest edit steps go, the loaded INR (step 0)
    and the newest stay; a tensor shared by two steps is counted once."""
    from app import limits as L
    from app import session as S
    from inr.siren import SirenArch

    monkeypatch.setattr(S, "HISTORY_BYTES", 5 * 2**20)
    arch = SirenArch(hidden=8)
    st = S.Session.new([torch.zeros(2**18)], arch, 28, "x")  # 1 MiB
    for i in range(1, 9):
        st.push(S.Step([torch.full((2**18,), float(i))], f"edit {i}", i))
        assert L.tensors_bytes(st.steps) <= 5 * 2**20 and st.cursor == len(st.steps) - 1
    assert [s.edits for s in st.steps] == [0, 5, 6, 7, 8]
    shared = torch.zeros(2**18)
    assert L.tensors_bytes([shared, [shared, shared[:10]]]) == 2**20
