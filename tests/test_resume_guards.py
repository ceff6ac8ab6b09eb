"""Resume guards: another experiment or profile than the run's, an edited config.yaml (unless --force,
recorded), a run another process writes into (.lock), a damaged metrics/train.csv are each one ``error:``
line with exit 2 and nothing written; SIGTERM during training is handled like Ctrl-C (exit 143)."""
import json
import os
import platform
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import yaml

from predvis.cli import main

pytestmark = pytest.mark.usefixtures("one_thread")
SMOKE = ["--profile", "smoke", "data.train_sequences=8", "data.val_sequences=4", "data.test_sequences=4",
         "train.batch_size=4"]


@pytest.fixture
def run(tmp_path, capsys):
    """A finished one-epoch smoke GOPC-1 run of its own."""
    assert main(["train", "gopc1", "--out", str(tmp_path), *SMOKE]) == 0
    path = Path(capsys.readouterr().out.strip().splitlines()[-1])
    assert not (path / ".lock").exists()
    return path


def snapshot(folder: Path) -> dict:
    return {str(p.relative_to(folder)): (p.read_bytes() if p.is_file() else None, p.stat().st_mtime_ns)
            for p in sorted(folder.rglob("*"))}


def refused(capsys, argv, pattern, folder):
    before = snapshot(folder)
    capsys.readouterr()
    code = main([str(a) for a in argv])
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert re.search(pattern, lines[0]), lines[0]
    assert snapshot(folder) == before
    return lines[0]


def test_run_records_the_hash_of_its_config(run):
    import hashlib

    assert (run / "config.sha256").read_text().strip() == hashlib.sha256((run / "config.yaml").read_bytes()).hexdigest()


@pytest.mark.parametrize("argv, pattern", [
    (["train", "vae1"], r"is a 'gopc1' run \(method gopc\), not 'vae1'"),
    (["train", "pvm"], r"not 'pvm'"),
    (["train", "gopc1", "--profile", "quick"], r"--profile smoke.*drop --profile quick"),
    (["train", "gopc1", "--profile", "quick", "--dry-run"], r"--profile smoke"),
])
@pytest.mark.bad_input("refused")
def test_resume_refuses_another_experiment_or_profile(run, capsys, argv, pattern):
    refused(capsys, [*argv, "--resume", run], pattern, run.parent.parent)


@pytest.mark.bad_input("refused")
def test_force_without_resume_is_refused(tmp_path, capsys):
    refused(capsys, ["train", "gopc1", "--force", "--out", tmp_path, *SMOKE], r"--force only applies with --resume",
            tmp_path)


@pytest.mark.bad_input("refused")
def test_edited_config_is_refused_then_accepted_with_force_and_recorded(run, capsys):
    cfg = yaml.safe_load((run / "config.yaml").read_text())
    cfg["train"]["epochs"] += 1
    (run / "config.yaml").write_text(yaml.safe_dump(cfg, sort_keys=False))
    refused(capsys, ["train", "gopc1", "--resume", run], r"config\.yaml was edited since the run began.*--force", run)
    refused(capsys, ["train", "gopc1", "--resume", run, "--dry-run"], r"was edited", run)
    assert main(["train", "gopc1", "--resume", str(run), "--force"]) == 0
    entries = json.loads((run / "resumes.json").read_text())
    assert len(entries) == 1 and entries[0]["force"] is True
    assert entries[0]["began_with"] == (run / "config.sha256").read_text().strip() != entries[0]["config_sha256"]
    assert json.loads((run / "status.json").read_text())["epoch"] == 2
    assert not (run / ".lock").exists()


@pytest.mark.bad_input("refused")
def test_second_writer_is_told_who_holds_the_lock(run, capsys):
    holder = {"pid": os.getpid(), "host": platform.node(), "since": "2026-12-03T12:00:00+0000", "command": "x"}
    (run / ".lock").write_text(json.dumps(holder))
    line = refused(capsys, ["train", "gopc1", "--resume", run], r"in use by pid", run)
    assert f"pid {os.getpid()} on {platform.node()} since 2026-12-03T12:00:00+0000" in line


@pytest.mark.bad_input("refused")
def test_lock_of_another_host_is_not_taken_over(run, capsys):
    (run / ".lock").write_text(json.dumps({"pid": 1, "host": "elsewhere.example", "since": "then"}))
    refused(capsys, ["train", "gopc1", "--resume", run], r"in use by pid 1 on elsewhere\.example", run)


@pytest.mark.bad_input("accepted")
def test_stale_lock_of_a_dead_process_is_taken_over(run, capsys):
    child = subprocess.Popen([sys.executable, "-c", "pass"])
    child.wait()
    (run / ".lock").write_text(json.dumps({"pid": child.pid, "host": platform.node(), "since": "then"}))
    assert main(["train", "gopc1", "--resume", str(run)]) == 0, capsys.readouterr().err
    assert not (run / ".lock").exists() and not list(run.glob(".lock*"))


def _set_cell(text: str, column: int, value: str) -> str:
    """``text`` (CSV) with the first data row's ``column`` set to ``value``."""
    lines = text.split("\n")
    cells = lines[1].split(",")
    cells[column] = value
    return "\n".join([lines[0], ",".join(cells), *lines[2:]])


DAMAGE = {
    "truncated last line": lambda text: text[: text.rindex(",")],
    "garbage line": lambda text: text + "\x00garbage;;\n",
    "cut header": lambda text: "epo" + text[text.index("\n"):],
    "word in a number": lambda text: _set_cell(text, 1, "x"),
    "not UTF-8": lambda text: text + "\udcff",
    "rows missing": lambda text: text.split("\n")[0] + "\n",
}


@pytest.mark.bad_input("refused")
@pytest.mark.parametrize("case", list(DAMAGE))
def test_damaged_train_csv_is_one_line_naming_it(run, capsys, case):
    path = run / "metrics" / "train.csv"
    path.write_bytes(DAMAGE[case](path.read_text()).encode("utf-8", "surrogateescape"))
    for extra in ([], ["--dry-run"]):
        refused(capsys, ["train", "gopc1", "--resume", run, *extra], r"metrics/train\.csv is damaged", run)


@pytest.mark.bad_input("accepted")
def test_missing_train_csv_is_said_not_silent(run, capsys):
    (run / "metrics" / "train.csv").unlink()
    assert main(["train", "gopc1", "--resume", str(run)]) == 0
    assert "train.csv is missing" in capsys.readouterr().err


@pytest.mark.bad_input("interrupted")
def test_sigterm_during_training_marks_the_run_interrupted(tmp_path):
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])}
    proc = subprocess.Popen([sys.executable, "-m", "predvis", "train", "gopc1", "--out", str(tmp_path), *SMOKE,
                             "train.epochs=500"], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while not list(tmp_path.glob("gopc1/*/checkpoints/last.pt")):
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    run = next((tmp_path / "gopc1").iterdir())
    assert proc.returncode == 143, err
    assert f"interrupted: run {run} can be resumed" in err and "Traceback" not in err
    assert json.loads((run / "status.json").read_text())["state"] == "interrupted"
    assert (run / "checkpoints" / "last.pt").exists() and not (run / ".lock").exists()


@pytest.mark.bad_input("accepted")
def test_resume_needs_no_experiment_name(run, capsys):
    capsys.readouterr()
    assert main(["train", "--resume", str(run), "--dry-run"]) == 0, capsys.readouterr().err


@pytest.mark.bad_input("refused")
def test_train_without_experiment_or_resume_is_refused(tmp_path, capsys):
    refused(capsys, ["train", "--runs", tmp_path], r"name an experiment .* or continue a run with --resume RUN", tmp_path)
