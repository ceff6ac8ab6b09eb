"""Bad input and faults, case by case: each case is (argv, expected outcome, words of its one line).

Outcomes (the classes ``scripts/count_bad_input_cases.py`` tallies over the whole suite, with the
``bad_input`` marker):

* ``refused``: exit 2, one ``error:`` line naming the culprit, no traceback, nothing written;
* ``accepted``: an edge value that is valid does its work (exit 0);
* ``interrupted``: SIGTERM midway: exit 143, one ``interrupted:`` line, no half-written folder.

``{tmp}`` is a fresh folder, ``{file}`` a regular file in it, ``{empty}`` an empty runs root, ``{pvm}`` and
``{gopc1}`` the session's smoke runs.
"""
from pathlib import Path

import pytest

from predvis.cli import main

REFUSED = {
    "unknown profile": (["train", "gopc1", "--profile", "tiny", "--runs", "{tmp}/r"], "unknown profile 'tiny'"),
    "force without resume": (["train", "gopc1", "--force", "--runs", "{tmp}/r"], "--force only applies with --resume"),
    "runs and out disagree": (["train", "gopc1", "--runs", "{tmp}/a", "--out", "{tmp}/b"], "give it once"),
    "runs root is a file": (["train", "gopc1", "--profile", "smoke", "--runs", "{file}"], "is a file, not a folder"),
    "runs root below a file": (["train", "gopc1", "--profile", "smoke", "--runs", "{file}/below"], "is a file, not a folder"),
    "resume a missing run": (["train", "gopc1", "--resume", "{tmp}/nothing"], "run not found"),
    "resume a folder that is no run": (["train", "gopc1", "--resume", "{tmp}"], "is not a predvis run"),
    "resume with overrides": (["train", "gopc1", "--resume", "{gopc1}", "train.lr=1"], "drop the KEY=VALUE overrides"),
    "resume into another runs root": (["train", "gopc1", "--resume", "{gopc1}", "--runs", "{tmp}/r"], "drop --runs"),
    "resume another experiment": (["train", "vae1", "--resume", "{gopc1}"], "is a 'gopc1' run"),
    "resume another profile": (["train", "gopc1", "--resume", "{gopc1}", "--profile", "full"], "--profile smoke"),
    "device spelled wrong": (["train", "gopc1", "--profile", "smoke", "device=tpu", "--runs", "{tmp}/r"], "device: must be"),
    "frame too small for a digit": (["train", "gopc1", "--profile", "smoke", "data.size=12", "model.image_size=12",
                                     "--runs", "{tmp}/r"], "data.size: must be >= 28"),
    "one frame per sequence": (["train", "gopc1", "--profile", "smoke", "data.frames=1", "--runs", "{tmp}/r"], "data.frames"),
    "batch size a word": (["train", "gopc1", "--profile", "smoke", "train.batch_size=abc", "--runs", "{tmp}/r"],
                          "train.batch_size: must be an integer"),
    "name with a slash": (["train", "gopc1", "--profile", "smoke", "name=../x", "--runs", "{tmp}/r"], "plain folder name"),
    "override without =": (["train", "gopc1", "--profile", "smoke", "epochs", "--runs", "{tmp}/r"], "KEY=VALUE"),
    "data that cannot fit, dry run": (["train", "gopc1", "--profile", "smoke", "data.val_sequences=1000000000",
                                       "--dry-run", "--runs", "{tmp}/r"], "this run needs ~"),
    "predict a missing run": (["predict", "{tmp}/nothing"], "run not found"),
    "predict, no run to use": (["predict", "--runs", "{empty}"], "no finished run of a stepping model"),
    "dream, no run to use": (["dream", "--runs", "{empty}"], "no finished run of a stepping model"),
    "lesion, no run with the pathway": (["lesion", "--runs", "{empty}", "--disable", "feedback"], "with pathways feedback"),
    "depth-invert, no run to use": (["occlude", "--mode", "depth-invert", "--runs", "{empty}"], "scene test sets (depth_inversion)"),
    "sleep, no run to use": (["sleep", "--runs", "{empty}"], "can unlearn"),
    "predict limit -1": (["predict", "{pvm}", "--limit", "-1"], "--limit"),
    "predict context past the frames": (["predict", "{gopc1}", "--context", "99"], "--context: must be between 1 and"),
    "predict figures -1": (["predict", "{gopc1}", "--figures", "-1"], "--figures: must be >= 0"),
    "predict old and new form disagree": (["predict", "{gopc1}", "limit=1", "--limit", "2"], "disagree"),
    "predict unknown old-form option": (["predict", "{gopc1}", "frames=2"], "unknown option 'frames'"),
    "dream where not X,Y": (["dream", "{pvm}", "--spot", "--where", "1"], "--where"),
    "occlude unknown mode": (["occlude", "{pvm}", "--mode", "ring"], "--mode"),
    "lesion nothing to disable": (["lesion", "{pvm}", "--disable", ","], "--disable"),
    "lesion a pathway the model lacks": (["lesion", "{gopc1}", "--disable", "lateral"], "pathway 'lateral' does not exist"),
    "sleep zero cycles": (["sleep", "{pvm}", "--cycles", "0", "--runs", "{tmp}/r"], "--cycles: must be > 0"),
    "sleep zero dream steps": (["sleep", "{pvm}", "--dream-steps", "0", "--runs", "{tmp}/r"], "--dream-steps: must be > 0"),
    "sleep negative noise starts": (["sleep", "{pvm}", "noise=-1", "--runs", "{tmp}/r"], "noise"),
    "sleep into a file": (["sleep", "{pvm}", "--runs", "{file}"], "is a file, not a folder"),
    "deepdream unknown mode": (["deepdream", "--mode", "spin", "--runs", "{tmp}/r"], "mode"),
    "deepdream unknown profile": (["deepdream", "--profile", "huge", "--runs", "{tmp}/r"], "profile"),
    "compare a missing run": (["compare", "{tmp}/nothing", "--runs", "{tmp}/r"], "nothing"),
    "report a missing path": (["report", "{tmp}/nothing"], "nothing"),
}

ACCEPTED = {
    "dry run through the old --out name": ["train", "gopc1", "--profile", "smoke", "--dry-run", "--out", "{tmp}/r"],
    "predict at the smallest settings": ["predict", "{gopc1}", "--limit", "1", "--figures", "1", "--context", "1"],
    "dream of one step after one frame": ["dream", "{pvm}", "--steps", "1", "--prime", "1"],
    "occlude with a one-pixel spot": ["occlude", "{pvm}", "--size", "1", "--limit", "1"],
    "predict without figures": ["predict", "{gopc1}", "--limit", "1", "--figures", "0"],
    "lesion of one sequence": ["lesion", "{pvm}", "--disable", "feedback", "--limit", "1"],
}


def tree(*roots: Path) -> dict:
    return {str(p): (p.stat().st_size if p.is_file() else -1) for root in roots for p in root.rglob("*")}


@pytest.fixture
def places(smoke_runs, tmp_path):
    (tmp_path / "file").write_text("a file where a folder should be\n")
    (tmp_path / "empty").mkdir()
    return {"tmp": str(tmp_path), "file": str(tmp_path / "file"), "empty": str(tmp_path / "empty"),
            "pvm": str(smoke_runs["pvm"]), "gopc1": str(smoke_runs["gopc1"])}


def _argv(argv: list[str], places: dict) -> list[str]:
    return [a.format(**places) for a in argv]


@pytest.mark.bad_input("refused")
@pytest.mark.parametrize("case", list(REFUSED))
def test_refused(case, places, smoke_runs, tmp_path, capsys):
    argv, words = REFUSED[case]
    before = tree(tmp_path, smoke_runs["root"])
    capsys.readouterr()
    code = main(_argv(argv, places))
    out, err = capsys.readouterr()
    lines = [line for line in err.splitlines() if line.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and "Traceback" not in err, err
    assert words in lines[0], lines[0]
    assert out == ""
    assert tree(tmp_path, smoke_runs["root"]) == before


@pytest.mark.bad_input("accepted")
@pytest.mark.parametrize("case", list(ACCEPTED))
def test_accepted(case, places, capsys):
    code = main(_argv(ACCEPTED[case], places))
    out, err = capsys.readouterr()
    assert code == 0, err
    assert "Traceback" not in err and out.strip()


@pytest.mark.bad_input("interrupted")
def test_sigterm_in_a_probe_discards_its_folder(smoke_runs, tmp_path):
    import os
    import shutil
    import signal
    import subprocess
    import sys
    import time

    run = tmp_path / "pvm" / "r1"
    shutil.copytree(smoke_runs["pvm"], run, ignore=shutil.ignore_patterns("dream", "lesion", "occlude", "predict"))
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1]), "OMP_NUM_THREADS": "1"}
    proc = subprocess.Popen([sys.executable, "-m", "predvis", "dream", str(run), "--steps", "10000000"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    deadline = time.monotonic() + 240
    while not list(run.glob("dream/.*.partial/*")):  # the staging folder has its first file
        assert proc.poll() is None and time.monotonic() < deadline, proc.communicate()
        time.sleep(0.2)
    proc.send_signal(signal.SIGTERM)
    out, err = proc.communicate(timeout=120)
    assert proc.returncode == 143, err
    assert "interrupted: probe folder discarded" in err and "Traceback" not in err and out == ""
    assert not (run / "dream").exists()
