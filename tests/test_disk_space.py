"""A runs root without the disk space a run's checkpoints need is refused before any work, with the
estimate and what is free (issue: output locations checked up front)."""
import shutil
from collections import namedtuple

import pytest

from predvis import checkpoint
from predvis.cli import main
from predvis.experiment import build_method, load_experiment

Usage = namedtuple("Usage", "total used free")


def _tiny_disk(monkeypatch, free: int) -> None:
    real = shutil.disk_usage
    monkeypatch.setattr("predvis.run.shutil.disk_usage", lambda path: Usage(real(path).total, 0, free))


def test_checkpoint_estimate_counts_the_weights_and_adams_moments():
    cfg = load_experiment("gopc1", "smoke")
    method, _ = build_method(cfg)
    params = sum(p.numel() for p in method.model.parameters())
    buffers = sum(b.numel() for b in method.model.buffers())
    assert checkpoint.estimated_bytes(method) == 4 * (3 * params + buffers)
    assert checkpoint.disk_needed(method) == 3 * checkpoint.estimated_bytes(method) + 8 * 2**20


@pytest.mark.bad_input("refused")
def test_train_on_a_full_disk_is_one_line_and_writes_nothing(tmp_path, monkeypatch, capsys):
    _tiny_disk(monkeypatch, 1024)
    code = main(["train", "gopc1", "--profile", "smoke", "--runs", str(tmp_path / "runs")])
    err = capsys.readouterr().err.strip().splitlines()
    assert code == 2 and err[-1].startswith("error: --runs") and "MiB of disk" in err[-1] and "free" in err[-1]
    assert not (tmp_path / "runs").exists()


@pytest.mark.bad_input("refused")
def test_sleep_on_a_full_disk_is_refused_before_any_dream(smoke_runs, tmp_path, monkeypatch, capsys):
    _tiny_disk(monkeypatch, 1024)
    code = main(["sleep", str(smoke_runs["pvm"]), "--runs", str(tmp_path / "out"), "--cycles", "1"])
    err = capsys.readouterr().err
    assert code == 2 and "MiB of disk" in err
    assert " cycles, " not in err   # refused before the sleep began (its first line names the cycles)
    assert not (tmp_path / "out").exists()
