"""The host allocator settings (predvis/allocator.py): a training step's freed activations are
reused instead of being page-faulted in again, and runs record what was set."""
import json
import platform
import subprocess
import sys
from pathlib import Path

import pytest

from predvis.cli import main

GLIBC = platform.system() == "Linux" and platform.libc_ver()[0] == "glibc"

CHILD = """
import resource, sys, torch
if sys.argv[1] == "tuned":
    from predvis.allocator import tune_cpu_allocator
    print(tune_cpu_allocator(), file=sys.stderr)
x = torch.ones(64, 1024, 1024 // 8)            # 32 MiB of activations, as a step allocates and frees them
for _ in range(3):
    (x * 2).sum()
before = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
for _ in range(200):            # many steps: a one-off heap growth under load is amortised, not counted per step
    (x * 2).sum()
print((resource.getrusage(resource.RUSAGE_SELF).ru_minflt - before) / 200)
"""


def faults_per_step(mode: str) -> float:
    out = subprocess.run([sys.executable, "-c", CHILD, mode], capture_output=True, text=True, check=True)
    return float(out.stdout.strip())


@pytest.mark.skipif(not GLIBC, reason="the thresholds are glibc's")
def test_tuned_allocator_reuses_freed_buffers_instead_of_faulting_pages_in():
    # best of three: the host's memory reclaim (DAMON here) can take back an idle heap page now and then
    default, tuned = faults_per_step("default"), min(faults_per_step("tuned") for _ in range(3))
    assert default > 4000          # 32 MiB mapped afresh each time: 8,192 pages of 4 KiB
    assert tuned < default / 20


def test_runs_record_the_allocator_setting(tmp_path, capsys, monkeypatch):
    assert main(["train", "gopc1", "--runs", str(tmp_path), "--profile", "smoke", "data.train_sequences=8",
                 "data.val_sequences=4", "data.test_sequences=4", "train.batch_size=4", "train.threads=1"]) == 0
    run = Path(capsys.readouterr().out.strip().splitlines()[-1])
    env = json.loads((run / "env.json").read_text())
    assert env["host_allocator"].startswith("glibc: mmap threshold" if GLIBC else "system")

