import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
import pytest
import torch
from app_helpers import PASSWORD, free_port, tiny_editor

from gmn.editors import save_editor


@pytest.fixture(scope="session")
def editors_dir(tmp_path_factory):
    """A 'shipped' registry folder with a tiny dilate editor and a tiny paint editor."""
    d = tmp_path_factory.mktemp("shipped")
    save_editor(d / "dilate.safetensors", tiny_editor("dilate"),
                {"data": {"dataset": "mnist5k", "train": "random init (test)"}, "metrics": {"test_mse": 0.05}})
    save_editor(d / "paint.safetensors", tiny_editor("paint"), {"data": {"dataset": "mnist5k", "train": "random"}})
    broken = tiny_editor("dilate", seed=1)
    with torch.no_grad():
        for p in broken.parameters():
            p.fill_(float("nan"))
    save_editor(d / "nan-dilate.safetensors", broken, {"data": {"dataset": "mnist5k", "train": "broken (test)"}})
    return d


@pytest.fixture(scope="session")
def server(editors_dir, tiny_zoo, tmp_path_factory):
    """The app launched in-process on a free port, admin enabled: yields (url, demo)."""
    from app.ui import MAX_FILE_SIZE, build

    torch.set_num_threads(1)  # as app.ui.launch does: two OpenMP threads crawl on a busy 2-core machine
    old = os.environ.get("GMN_ADMIN_PASSWORD")
    os.environ["GMN_ADMIN_PASSWORD"] = PASSWORD
    root = tmp_path_factory.mktemp("app")
    demo = build(registry_dirs=[editors_dir], published_dir=root / "published", zoo_root=tiny_zoo,
                 runs_dir=root / "runs")
    port = free_port()
    demo.queue(default_concurrency_limit=4).launch(server_name="127.0.0.1", server_port=port,
                                                   prevent_thread_lock=True, max_file_size=MAX_FILE_SIZE, quiet=True)
    yield f"http://127.0.0.1:{port}/", demo
    demo.jobs.stop()
    demo.jobs.wait(60)
    demo.close()
    if old is None:
        os.environ.pop("GMN_ADMIN_PASSWORD", None)
    else:
        os.environ["GMN_ADMIN_PASSWORD"] = old
