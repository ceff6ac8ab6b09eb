import os

import pytest
import torch

from predvis.config import parse_overrides
from predvis.experiment import load_experiment
from predvis.errors import RunError, TrainingDiverged
from predvis.checkpoint import load_checkpoint
from predvis.run import atomic_write_text, create_run_dir, create_unique_dir
from predvis.train import loop

SMOKE = ["data.train_sequences=8", "data.val_sequences=4", "data.test_sequences=4", "train.batch_size=4"]


def weights(run):
    ckpt = load_checkpoint(run / "checkpoints" / "last.pt")
    return ckpt["modules"]["model"], ckpt["optimizers"]["adam"]["state"]


def test_resume_gives_identical_weights(tmp_path, monkeypatch):
    """2 epochs straight == 1 epoch, interruption, --resume, 1 more epoch (weights and Adam state)."""
    cfg = lambda: load_experiment("gopc1", "smoke", SMOKE + ["train.epochs=2"])  # noqa: E731
    straight = loop.train(cfg(), tmp_path / "a", {})

    from predvis.backends.gopc.method import GopcMethod

    original = GopcMethod.train_step
    calls = {"n": 0}

    def interrupted(self, batch):
        calls["n"] += 1
        if calls["n"] == 3:  # first step of the second epoch (2 steps per epoch)
            raise KeyboardInterrupt
        return original(self, batch)

    monkeypatch.setattr(GopcMethod, "train_step", interrupted)
    from predvis.errors import Interrupted

    with pytest.raises(Interrupted, match="can be resumed"):
        loop.train(cfg(), tmp_path / "b", {})
    monkeypatch.setattr(GopcMethod, "train_step", original)
    half = next((tmp_path / "b" / "gopc1").iterdir())
    assert '"interrupted"' in (half / "status.json").read_text()
    interrupted_plot = (half / "plots" / "loss.png").read_bytes()  # the one finished epoch
    assert loop.resume(half) == half
    assert (half / "plots" / "loss.png").read_bytes() != interrupted_plot  # redrawn with both epochs
    assert (straight / "plots" / "loss.png").exists()
    (wa, oa), (wb, ob) = weights(straight), weights(half)
    assert wa.keys() == wb.keys() and all(torch.equal(wa[k], wb[k]) for k in wa)
    for key in oa:
        assert all(torch.equal(oa[key][k], ob[key][k]) for k in oa[key])
    from predvis.run import read_csv

    rows_a, rows_b = read_csv(straight / "metrics" / "train.csv"), read_csv(half / "metrics" / "train.csv")
    assert len(rows_b) == 2
    for ra, rb in zip(rows_a, rows_b):
        assert (ra["epoch"], ra["loss"], ra["val_loss"]) == (rb["epoch"], rb["loss"], rb["val_loss"])
    assert '"done"' in (half / "status.json").read_text()


@pytest.mark.bad_input("stopped")
def test_nan_stops_cleanly_and_keeps_last_good_checkpoint(tmp_path, monkeypatch):
    cfg = load_experiment("gopc1", "smoke", SMOKE + ["train.epochs=3"])
    from predvis.backends.gopc.method import GopcMethod

    original = GopcMethod.train_step
    calls = {"n": 0}

    def poisoned(self, batch):
        calls["n"] += 1
        out = original(self, batch)
        if calls["n"] == 3:  # first step of epoch 2 (2 steps per epoch)
            out["loss"] = torch.tensor(float("inf"))
        return out

    monkeypatch.setattr(GopcMethod, "train_step", poisoned)
    with pytest.raises(TrainingDiverged, match=r"loss is inf at epoch 2, step 3; last good checkpoint kept"):
        loop.train(cfg, tmp_path, {})
    run = next((tmp_path / "gopc1").iterdir())
    assert load_checkpoint(run / "checkpoints" / "last.pt")["epoch"] == 0
    assert (run / "status.json").read_text().count("diverged") == 1


def test_run_directories_are_never_reused(tmp_path):
    a = create_run_dir(tmp_path, "x", {"config.yaml": "a: 1\n"})
    b = create_run_dir(tmp_path, "x", {"config.yaml": "a: 2\n"})
    assert a.path != b.path and (a.path / "config.yaml").read_text() == "a: 1\n"
    assert sorted(p.name for p in a.path.iterdir()) == sorted(
        ["checkpoints", "config.yaml", "metrics"])
    assert not [p for p in (tmp_path / "x").iterdir() if p.name.startswith(".")]
    assert create_unique_dir(tmp_path / "p") != create_unique_dir(tmp_path / "p")


@pytest.mark.bad_input("refused")
def test_truncated_checkpoint_is_one_clear_error(tmp_path):
    path = tmp_path / "last.pt"
    torch.save({"a": torch.zeros(1000)}, path)
    path.write_bytes(path.read_bytes()[:200])
    with pytest.raises(RunError, match="unreadable or truncated"):
        load_checkpoint(path)
    with pytest.raises(RunError, match="checkpoint not found"):
        load_checkpoint(tmp_path / "none.pt")


def test_atomic_write_leaves_no_temp_files(tmp_path):
    atomic_write_text(tmp_path / "f.txt", "hello")
    atomic_write_text(tmp_path / "f.txt", "again")
    assert os.listdir(tmp_path) == ["f.txt"] and (tmp_path / "f.txt").read_text() == "again"


def test_overrides_saved_in_run(tmp_path):
    run = loop.train(load_experiment("gopc1", "smoke", SMOKE), tmp_path, parse_overrides(SMOKE))
    assert "train_sequences: 8" in (run / "overrides.yaml").read_text()
    env = (run / "env.json").read_text()
    for key in ("torch", "cuda", "device_name", "git", "seed", "world_size"):
        assert f'"{key}"' in env


def test_git_state_ignores_what_predvis_writes_into_the_repository(tmp_path):
    """tables/ and bench/results.md are predvis' own outputs: a collector rewriting its tables must not
    mark its later runs +dirty; a changed source file does."""
    import subprocess

    from predvis.run import git_state

    def git(*args):
        subprocess.run(["git", *args], cwd=tmp_path, check=True, capture_output=True)

    (tmp_path / "tables").mkdir()
    (tmp_path / "bench").mkdir()
    for name in ("src.py", "tables/t.md", "bench/results.md"):
        (tmp_path / name).write_text("a\n")
    git("init", "-q")
    git("add", ".")
    git("-c", "user.name=t", "-c", "user.email=t@t", "commit", "-q", "-m", "init")
    clean = git_state(tmp_path)
    assert len(clean["commit"]) == 40 and clean["dirty"] is False
    (tmp_path / "tables" / "t.md").write_text("b\n")
    (tmp_path / "bench" / "results.md").write_text("b\n")
    assert git_state(tmp_path)["dirty"] is False
    (tmp_path / "src.py").write_text("b\n")
    assert git_state(tmp_path)["dirty"] is True
