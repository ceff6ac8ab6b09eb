"""predvis.jobs: one runner for reproduce and the studies: plan, claim, run, record, resume; the local
launcher and the SLURM one (through submitit's LocalExecutor: real subprocesses on this machine)."""
import json
import os
import socket
from pathlib import Path

import pytest

from predvis.errors import PredvisError
from predvis.jobs import claim
from predvis.jobs.launchers import Local, Slurm, launcher, minutes
from predvis.jobs.runner import Job, run
from predvis.parallel import Failed


def square(x: int) -> dict:
    """A smoke job: its record is the square, with the pid that computed it."""
    if x == 3:
        raise PredvisError("three is refused")
    return {"x": x, "square": x * x, "pid": os.getpid()}


def train_tiny(seed: int) -> dict:
    """A real training job at smoke size (one epoch of the depth-inversion B-B model)."""
    import tempfile

    from predvis.config import parse_overrides
    from predvis.experiment import load_experiment
    from predvis.train import loop

    overrides = ["data.train_scenes=16", "data.val_scenes=8", "data.test_scenes=8", "eval.batch_size=8",
                 "train.epochs=1", f"seed={seed}", "train.threads=1"]
    cfg = load_experiment("depth_inversion", "smoke", overrides)
    with tempfile.TemporaryDirectory() as out:
        path = loop.train(cfg, Path(out), parse_overrides(overrides))
        rows = (path / "metrics" / "train.csv").read_text().splitlines()
    return {"seed": seed, "epochs": len(rows) - 1, "last": rows[-1]}


def _jobs(folder: Path, xs) -> list[Job]:
    return [Job(f"x{x}", square, x, record=folder / f"x{x}.json", claim=folder / f"x{x}.claim") for x in xs]


@pytest.mark.parametrize("workers", [1, 2])
def test_local_runner_records_resumes_and_reports_failures(tmp_path, workers):
    outcomes = run(_jobs(tmp_path, range(5)), Local(workers))
    states = {o.job.name: o.state for o in outcomes}
    assert states == {"x0": "done", "x1": "done", "x2": "done", "x3": "failed", "x4": "done"}
    assert json.loads((tmp_path / "x4.json").read_text())["square"] == 16
    assert not (tmp_path / "x3.json").exists() and not list(tmp_path.glob("*.claim"))
    failed = next(o for o in outcomes if o.state == "failed")
    assert isinstance(failed.result, Failed) and failed.message == "three is refused"
    again = run(_jobs(tmp_path, range(5)), Local(workers))   # resume: only the failed one runs again
    assert {o.job.name: o.state for o in again} == {**{f"x{i}": "skipped" for i in (0, 1, 2, 4)}, "x3": "failed"}


def test_a_live_claim_is_left_alone_and_a_dead_one_taken_over(tmp_path):
    (tmp_path / "x1.claim").write_text(json.dumps({"pid": os.getppid(), "host": socket.gethostname()}))
    (tmp_path / "x2.claim").write_text(json.dumps({"pid": 2 ** 22 + 12345, "host": socket.gethostname()}))
    outcomes = {o.job.name: o.state for o in run(_jobs(tmp_path, (1, 2)), Local(1))}
    assert outcomes == {"x1": "claimed", "x2": "done"}
    assert (tmp_path / "x1.claim").exists() and not (tmp_path / "x1.json").exists()
    assert not (tmp_path / "x2.claim").exists()


def test_collector_lock_names_its_holder_and_refuses_a_second_one(tmp_path):
    lock = tmp_path / ".reproduce.lock"
    with claim.locked(lock, "another collector"):
        assert claim.holder(lock) == {"pid": os.getpid(), "host": socket.gethostname()}
        (tmp_path / "other.lock").write_text(json.dumps({"pid": 1, "host": "node-elsewhere"}))
        with pytest.raises(PredvisError, match="another collector .* on node-elsewhere"):
            with claim.locked(tmp_path / "other.lock", "another collector"):
                pass
    assert not lock.exists()


@pytest.fixture
def importable_here(monkeypatch):
    """submitit's job processes import this module's job functions by name: put tests/ on their path."""
    here = str(Path(__file__).resolve().parent)
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(p for p in (here, os.environ.get("PYTHONPATH", "")) if p))


@pytest.mark.usefixtures("importable_here")
def test_slurm_path_through_submitit_local_executor(tmp_path):
    """The SLURM launcher's code path with submitit's LocalExecutor: every job a real subprocess, records
    written by the runner, a PredvisError coming back as a failure, and a rerun that runs nothing."""
    pytest.importorskip("submitit")
    slurm = Slurm(tmp_path / ".submitit", workers=2, time="5", cluster="local")
    outcomes = run(_jobs(tmp_path, range(4)), slurm)
    states = {o.job.name: o.state for o in outcomes}
    assert states == {"x0": "done", "x1": "done", "x2": "done", "x3": "failed"}
    pids = {json.loads((tmp_path / f"x{x}.json").read_text())["pid"] for x in range(3)}
    assert os.getpid() not in pids and len(pids) == 3
    assert list((tmp_path / ".submitit").iterdir())   # submitit's logs and pickles
    again = run(_jobs(tmp_path, range(3)), slurm)
    assert {o.state for o in again} == {"skipped"}
    broken = run([Job("x3", square, 3)], slurm)   # the PredvisError's line comes back
    assert broken[0].state == "failed" and broken[0].message == "three is refused"


@pytest.mark.usefixtures("importable_here")
def test_slurm_path_trains_a_smoke_model_like_the_local_one(tmp_path):
    """A real training through submitit's LocalExecutor gives the numbers of the same job run locally."""
    pytest.importorskip("submitit")
    job = lambda folder: [Job("train", train_tiny, 0, record=folder / "train.json")]  # noqa: E731
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    run(job(tmp_path / "a"), Local(1))
    run(job(tmp_path / "b"), Slurm(tmp_path / ".submitit", workers=1, time="10", cluster="local"))
    a, b = (json.loads((tmp_path / d / "train.json").read_text()) for d in "ab")
    assert a["epochs"] == 1
    assert a["last"].split(",")[:8] == b["last"].split(",")[:8]   # epoch .. val_mse; not the timings


def test_launcher_options_are_checked_in_one_line():
    assert minutes("4:00:00") == 240 and minutes("90") == 90 and minutes("1-02:00:00") == 1560
    with pytest.raises(PredvisError, match="--slurm-time"):
        minutes("four hours")
    with pytest.raises(PredvisError, match="did you mean 'slurm'"):
        launcher("slurn")
    assert launcher("local", workers=3) == Local(3, 1)
    got = launcher("slurm", workers=4, folder=Path("/tmp/x"), partition="gpu", gpus=1, cpus=8, time_limit="2:00:00")
    assert got.argv() == ["--workers", "4", "--launcher", "slurm", "--slurm-gpus", "1", "--slurm-cpus", "8",
                          "--slurm-time", "2:00:00", "--slurm-mem", "0", "--slurm-partition", "gpu"]


def test_nested_runs_share_one_overall_bar(tmp_path):
    """predvis reproduce's one bar: a run inside ``overall`` (a study's models) counts on the outer bar;
    jobs reserved ahead are not counted twice, and jobs beyond the reservation are added."""
    from predvis.jobs.runner import _OVERALL, overall

    with overall("all", 3) as bar:
        run(_jobs(tmp_path / "a", (0, 1)), Local(1))
        assert (bar.total, bar.done, bar.reserved) == (3, 2, 1)
        run(_jobs(tmp_path / "b", (4, 5)), Local(1))   # one beyond the reservation
        assert (bar.total, bar.done, bar.reserved) == (4, 4, 0)
    assert not _OVERALL


@pytest.mark.parametrize("argv, text", [
    (["reproduce", "--profile", "smok"], "did you mean 'smoke'"),
    (["reproduce", "--launcher", "slurn"], "did you mean 'slurm'"),
    (["reproduce", "--launcher", "slurm", "--slurm-time", "soon"], "--slurm-time"),
    (["reproduce", "--workers", "0"], "--workers: must be >= 1"),
    (["study", "depth_inversion", "--seeds", "0"], "--seeds: must be >= 1"),
    (["study", "gopc2_stability", "--variants", "thesis,tesis"], "unknown 'tesis'"),
    (["bench", "--size", "huge"], "--size: must be quick or full"),
])
def test_commands_refuse_bad_input_in_one_line(argv, text, tmp_path, capsys, monkeypatch):
    from predvis.cli import main

    monkeypatch.chdir(tmp_path)
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("error:") and text in err and len(err.splitlines()) == 1
    assert not any(tmp_path.iterdir())   # nothing written
