"""predvis.parallel: jobs in worker processes give what the same jobs give one after another; a study
trained two models at a time equals the same study trained one at a time."""
import json

import numpy as np
import pytest

from predvis.errors import TrainingDiverged
from predvis.parallel import Failed, run_jobs


def square_or_fail(x: int):
    import os

    import torch

    if x == 3:
        raise TrainingDiverged("loss is nan at step 3")
    return x * x, torch.get_num_threads(), os.environ.get("PREDVIS_NO_PROGRESS")


def mark_and_wait(item):
    import time
    from pathlib import Path

    x, folder = item
    (Path(folder) / f"{x}.started").touch()
    if x == 0:
        return x
    try:
        time.sleep(60)
    except KeyboardInterrupt:
        (Path(folder) / f"{x}.stopped").touch()
        raise
    return x


def test_an_interrupt_stops_the_running_jobs_and_starts_no_other(tmp_path):
    import time

    def interrupt(item, result):   # once job 1 is inside its work (not still starting its process)
        for _ in range(200):
            if (tmp_path / "1.started").exists():
                break
            time.sleep(0.1)
        raise KeyboardInterrupt

    started = time.perf_counter()
    with pytest.raises(KeyboardInterrupt):
        run_jobs(mark_and_wait, [(x, str(tmp_path)) for x in range(4)], workers=2, on_result=interrupt)
    assert time.perf_counter() - started < 30
    assert sorted(p.name for p in tmp_path.iterdir()) == ["0.started", "1.started", "1.stopped"]


def test_workers_give_the_sequential_results_in_order_and_failures_as_values():
    seen = []
    two = run_jobs(square_or_fail, range(5), workers=2, on_result=lambda item, res: seen.append(item))
    one = run_jobs(square_or_fail, range(5), workers=1)
    assert [r[0] for r in two if not isinstance(r, Failed)] == [0, 1, 4, 16]
    assert isinstance(two[3], Failed) and two[3].kind == "TrainingDiverged" and "step 3" in two[3].message
    assert isinstance(one[3], Failed) and one[3].message == two[3].message
    assert sorted(seen) == list(range(5))
    assert all(r[1] == 1 and r[2] == "1" for r in two if not isinstance(r, Failed))   # one thread, no bars


@pytest.mark.usefixtures("one_thread")
def test_depth_inversion_study_two_workers_equals_one(tmp_path):
    from predvis.cli import main as cli

    study = lambda argv: cli(["study", "depth_inversion", *argv])  # noqa: E731

    small = ["data.train_scenes=32", "data.val_scenes=16", "data.test_scenes=16", "eval.batch_size=16"]
    folders = {}
    for workers in (1, 2):
        out = tmp_path / f"w{workers}"
        assert study(["--profile", "smoke", "--seeds", "1", "--out", str(out), "--variants", "B-B,BL-B",
                      "--additive", "none", "--sweep", "", "--workers", str(workers)] + small) == 0
        folders[workers] = next((out / "depth_inversion_study").iterdir())
    for tag in ("occ_B-B_T2_s0", "occ_BL-B_T2_s0"):
        a = np.load(folders[1] / "losses" / f"{tag}.npz")
        b = np.load(folders[2] / "losses" / f"{tag}.npz")
        assert np.array_equal(a["held_out_sse"], b["held_out_sse"])
        rec = json.loads((folders[2] / "jobs" / f"{tag}.json").read_text())
        assert rec["mean_sse"]["held_out"] == json.loads((folders[1] / "jobs" / f"{tag}.json").read_text())["mean_sse"]["held_out"]
    assert "2 finished models" in (folders[2] / "tables" / "depth_inversion.md").read_text()


def test_sigterm_stops_like_ctrl_c_and_the_old_handler_comes_back():
    import os
    import signal
    import time

    from predvis.parallel import sigterm_as_interrupt

    before = signal.getsignal(signal.SIGTERM)
    with pytest.raises(KeyboardInterrupt):
        with sigterm_as_interrupt():
            os.kill(os.getpid(), signal.SIGTERM)
            time.sleep(5)
    assert signal.getsignal(signal.SIGTERM) == before
