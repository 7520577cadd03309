import os

os.environ.setdefault("GRADIO_ANALYTICS_ENABLED", "False")

import pytest  # noqa: E402

from inr.zoo import build_zoo  # noqa: E402


@pytest.fixture(scope="session", autouse=True)
def gmn_home(tmp_path_factory):
    """The data home of the whole suite: a per-session tmp folder, so no test writes into ~/.cache or the
    checkout (subprocesses inherit it). A test that needs its own sets GMN_HOME with monkeypatch."""
    home = tmp_path_factory.mktemp("gmn-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("GMN_HOME", str(home))
        yield home


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """A zoo root with small MNIST-5k splits, zoo/mnist5k-{train,val,test} (48, 16, 16 INRs), built once per
    test run and shared by the gmn and app tests."""
    root = tmp_path_factory.mktemp("zoo")
    for split, n in (("train", 48), ("val", 16), ("test", 16)):
        build_zoo("mnist5k", split, root / f"mnist5k-{split}", steps=60, limit=n, shard_size=48, progress=False,
                  log=lambda *_: None)
    return root
