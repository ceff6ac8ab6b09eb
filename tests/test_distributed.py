"""Data-parallel training with torchrun: 2 CPU processes (gloo) match one process, same global batch."""
import os
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from predvis.checkpoint import load_checkpoint
from predvis.run import read_csv

ARGS = ["--profile", "smoke", "data.train_sequences=16", "data.val_sequences=4", "data.test_sequences=4",
        "train.batch_size=8", "train.epochs=2", "train.threads=1"]
# the other batch-trained backends, each on its smoke profile with an even global batch
OTHERS = {
    "classifier": ["--profile", "smoke", "train.batch_size=16", "train.threads=1"],
    "depth_inversion": ["--profile", "smoke", "data.train_scenes=32", "data.val_scenes=8", "data.test_scenes=8",
                        "train.batch_size=8", "eval.figures=1", "train.threads=1"],
    # open-loop training (train.open_loop 0.5, GOPC-2's default): rank 0 holds only observed-throughout
    # sequences, rank 1 only open-loop ones; metrics are still the global batch's
    "gopc2": ARGS + ["train.open_loop=0.5"],
}
TIMING = {"seconds", "batches_per_s"}


def _train(root: Path, nproc: int, experiment: str = "gopc1", args: list[str] = ARGS) -> Path:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    if nproc == 1:
        cmd = [sys.executable, "-m", "predvis", "train", experiment, "--out", str(root), *args]
    else:
        cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc_per_node={nproc}",
               "-m", "predvis", "train", experiment, "--out", str(root), *args]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    runs = list((root / experiment).iterdir())
    assert len(runs) == 1  # only rank 0 wrote a run directory
    assert done.stdout.strip().splitlines()[-1] == str(runs[0])
    return runs[0]


@pytest.mark.slow
def test_two_gloo_processes_match_one(tmp_path):
    one = _train(tmp_path / "one", 1)
    two = _train(tmp_path / "two", 2)
    a = load_checkpoint(one / "checkpoints" / "last.pt")["modules"]["model"]
    b = load_checkpoint(two / "checkpoints" / "last.pt")["modules"]["model"]
    for key in a:
        assert torch.allclose(a[key], b[key], rtol=1e-4, atol=1e-6), key
    env = (two / "env.json").read_text()
    assert '"world_size": 2' in env and '"effective_batch": 8' in env
    rows_one, rows_two = read_csv(one / "metrics" / "train.csv"), read_csv(two / "metrics" / "train.csv")
    assert list(rows_one[0]) == list(rows_two[0])
    for key in ("loss", "mse", "kl", "val_loss"):
        assert [float(r[key]) for r in rows_one] == pytest.approx([float(r[key]) for r in rows_two], rel=1e-4), key


@pytest.mark.slow
@pytest.mark.parametrize("experiment", sorted(OTHERS))
def test_other_batch_trained_backends_match_one_process(tmp_path, experiment):
    one = _train(tmp_path / "one", 1, experiment, OTHERS[experiment])
    two = _train(tmp_path / "two", 2, experiment, OTHERS[experiment])
    a = load_checkpoint(one / "checkpoints" / "last.pt")["modules"]
    b = load_checkpoint(two / "checkpoints" / "last.pt")["modules"]
    # atol 1e-5: float32 sums of two half-batch gradients round differently from one whole-batch sum; a
    # weight near 0 (an Adam step is ~1e-3) can then differ by ~2e-6 after the smoke schedule
    for name in a:
        for key in a[name]:
            assert torch.allclose(a[name][key], b[name][key], rtol=1e-4, atol=1e-5), (name, key)
    rows_one, rows_two = read_csv(one / "metrics" / "train.csv"), read_csv(two / "metrics" / "train.csv")
    assert list(rows_one[0]) == list(rows_two[0])
    for key in set(rows_one[0]) - TIMING:
        assert [float(r[key]) for r in rows_one] == pytest.approx([float(r[key]) for r in rows_two], rel=1e-4), key


@pytest.mark.slow
def test_resume_under_torchrun_locks_once(tmp_path):
    """Every rank resumes, rank 0 alone takes the run's .lock (the others must not find it held)."""
    run = _train(tmp_path, 1, args=[a for a in ARGS if a != "train.epochs=2"] + ["train.epochs=1"])
    env = {**os.environ, "OMP_NUM_THREADS": "1", "PYTHONUNBUFFERED": "1"}
    cmd = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2",
           "-m", "predvis", "train", "gopc1", "--resume", str(run)]
    done = subprocess.run(cmd, capture_output=True, text=True, env=env, timeout=300)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "in use by" not in done.stderr and not (run / ".lock").exists()
