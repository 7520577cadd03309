import pytest

from inr.zoo import build_zoo


@pytest.fixture(scope="session")
def tiny_zoo(tmp_path_factory):
    """A zoo root with small MNIST-5k train (48) and val (16) splits: zoo/mnist5k-{train,val}."""
    root = tmp_path_factory.mktemp("zoo")
    for split, n in (("train", 48), ("val", 16), ("test", 16)):
        build_zoo(
            "mnist5k",
            split,
            root / f"mnist5k-{split}",
            steps=60,
            limit=n,
            shard_size=48,
            progress=False,
            log=lambda *_: None,
        )
    return root
