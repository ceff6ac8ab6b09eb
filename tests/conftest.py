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


def pytest_terminal_summary(terminalreporter):
    """One line when the browser tests were skipped for want of a browser."""
    import shutil

    if shutil.which("chromium") or shutil.which("chromium-browser"):
        return
    if any("test_report_browser" in str(getattr(r, "nodeid", "")) for r in terminalreporter.stats.get("skipped", [])):
        terminalreporter.write_line("browser tests skipped: no chromium on this machine (apt-get install chromium)")


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


@pytest.fixture(scope="session")
def report_runs(smoke_runs, tmp_path_factory):
    """Copies of the smoke PVM and GOPC-1 runs in a folder of their own, the PVM one with a predict and a
    dream output and a sleep run made from it (what ``predvis report`` is tried on; the shared smoke runs
    stay untouched)."""
    import shutil

    from predvis.cli import main

    root = tmp_path_factory.mktemp("report_runs")
    pvm = root / "pvm" / smoke_runs["pvm"].name
    gopc1 = root / "gopc1" / smoke_runs["gopc1"].name
    # the trained runs alone: other tests add probe outputs to the shared smoke runs
    probes = shutil.ignore_patterns("predict", "dream", "lesion", "occlude", "depth_invert", "report.html")
    shutil.copytree(smoke_runs["pvm"], pvm, ignore=probes)
    shutil.copytree(smoke_runs["gopc1"], gopc1, ignore=probes)
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        assert main(["predict", str(pvm)]) == 0
        assert main(["dream", str(pvm), "--steps", "12"]) == 0
        assert main(["sleep", str(pvm), "noise=2", "grey=1", "real=2", "eval_noise=2", "eval_real=2",
                     "--cycles", "1", "--dream-steps", "12", "--out", str(root)]) == 0
    finally:
        torch.set_num_threads(before)
    (slept,) = (root / "pvm-sleep").iterdir()
    return {"root": root, "pvm": pvm, "gopc1": gopc1, "slept": slept}
