import os
import shutil
import tempfile
from pathlib import Path

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")
# The data home of the whole suite (inr.home): a per-session tmp folder, set before any test module is imported,
# so that no test (nor a subprocess, which inherits it) writes into ~/.cache or the checkout.
SESSION_HOME = Path(tempfile.mkdtemp(prefix="gmn-home-"))
os.environ["GMN_HOME"] = str(SESSION_HOME)

import pytest  # noqa: E402

from inr.zoo import build_zoo  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def gmn_home():
    """The suite's data home (removed at the end). A test that needs its own sets GMN_HOME with monkeypatch."""
    yield SESSION_HOME
    shutil.rmtree(SESSION_HOME, ignore_errors=True)


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """A zoo root with small MNIST-5k splits, zoo/mnist5k-{train,val,test} (48, 16, 16 INRs), built once per
    test run and shared by the gmn and app tests."""
    root = tmp_path_factory.mktemp("zoo")
    for split, n in (("train", 48), ("val", 16), ("test", 16)):
        build_zoo("mnist5k", split, root / f"mnist5k-{split}", steps=60, limit=n, shard_size=48, progress=False,
                  log=lambda *_: None)
    return root
