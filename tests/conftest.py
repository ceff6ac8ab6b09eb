import os

import pytest
import torch

torch.set_num_threads(max(1, min(2, os.cpu_count() or 1)))


def pytest_collection_modifyitems(config, items):
    if torch.cuda.is_available():
        return
    skip = pytest.mark.skip(reason="needs a CUDA GPU")
    for item in items:
        if "cuda" in item.keywords:
            item.add_marker(skip)


@pytest.fixture
def smoke_args():
    """Overrides that keep a GOPC smoke run to about a second."""
    return ["data.train_sequences=8", "data.val_sequences=4", "data.test_sequences=4", "train.batch_size=4"]


@pytest.fixture(scope="module")
def one_thread():
    """One torch thread for a module: on a shared 2-core machine two threads can spin-wait and run
    10-100x slower (use with ``pytestmark = pytest.mark.usefixtures("one_thread")``)."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="session")
def smoke_runs(tmp_path_factory):
    """A smoke PVM run (with training blind spots) and a smoke GOPC-1 run, trained once per session
    (probe tests read them; tests that write runs next to them must pass their own --out)."""
    from predvis.cli import main

    root = tmp_path_factory.mktemp("smoke_runs")
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["train", "pvm", "--profile", "smoke", "--out", str(root), "data.spot_p=0.5",
                     "data.spot_frames=5"]) == 0
        assert main(["train", "gopc1", "--profile", "smoke", "--out", str(root), "data.train_sequences=8",
                     "data.val_sequences=4", "data.test_sequences=4", "train.batch_size=4"]) == 0
    finally:
        torch.set_num_threads(before)
    return {"root": root, "pvm": next((root / "pvm").iterdir()), "gopc1": next((root / "gopc1").iterdir())}


@pytest.fixture(scope="session", autouse=True)
def private_cache_home(tmp_path_factory):
    """The session's own XDG_CACHE_HOME: tests (and the CLI they start) never write to the user's ~/.cache."""
    before = os.environ.get("XDG_CACHE_HOME")
    os.environ["XDG_CACHE_HOME"] = str(tmp_path_factory.mktemp("xdg_cache"))
    yield
    if before is None:
        os.environ.pop("XDG_CACHE_HOME", None)
    else:
        os.environ["XDG_CACHE_HOME"] = before
