"""What a resume checks before it loads or writes anything (``predvis train EXP --resume RUN``).

The run must be of the experiment and profile named on the command line; its ``config.yaml`` must be the
one it began with (``config.sha256``, written when the run is created), unless ``--force`` accepts the
edit and :func:`record_forced_resume` notes it in ``resumes.json``; ``metrics/train.csv`` must hold, as
predvis wrote it, a row for every epoch the checkpoint holds. Each failure is one :class:`RunError` line.
"""
from __future__ import annotations

import csv
import hashlib
import json
import time
from pathlib import Path

from predvis.config import ExperimentConfig
from predvis.experiment import load_experiment
from predvis.errors import RunError
from predvis.progress import console
from predvis.run import RunDir, atomic_write_text, command_line

CONFIG_HASH = "config.sha256"  # sha256 of config.yaml as the run began


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode()).hexdigest()


def check_resumable(run: Path, cfg: ExperimentConfig, experiment: str | None, profile: str | None,
                    force: bool) -> str | None:
    """Refuse (one line) a resume that names another experiment or profile than the run's, or a
    ``config.yaml`` edited since the run began (unless ``force``). Returns the edited config's hash when
    ``force`` accepts one, else None. Writes nothing."""
    if profile is not None and profile != cfg.profile:
        raise RunError(f"run {run} was trained with --profile {cfg.profile}; --resume keeps it, so drop "
                       f"--profile {profile} (or train a new run with it)")
    if experiment is not None and experiment != cfg.name:
        named = load_experiment(experiment, cfg.profile)
        if (named.name, named.method) != (cfg.name, cfg.method):
            raise RunError(f"run {run} is a '{cfg.name}' run (method {cfg.method}), not '{named.name}' "
                           f"(method {named.method}); name its own experiment: predvis train {cfg.name} --resume {run}")
    saved = run / CONFIG_HASH
    if not saved.exists():  # a run made before the hash was kept: nothing to compare with
        return None
    now = sha256_text((run / "config.yaml").read_text())
    if now == saved.read_text().strip():
        return None
    if not force:
        raise RunError(f"{run / 'config.yaml'} was edited since the run began (its sha256 differs from "
                       f"{CONFIG_HASH}); the epochs so far used the old config. Resume with --force to train "
                       f"on with the edited one (recorded in resumes.json), or train a new run")
    return now


def check_train_csv(run: RunDir, finished: int) -> list[dict]:
    """The rows of ``metrics/train.csv`` for epochs 1..``finished`` (those the checkpoint holds); a file that
    cannot be read as predvis wrote it (a cut or garbled line, missing epochs) is one line naming it, never
    replaced. A missing file starts afresh with a note."""
    path = run.sub("metrics", "train.csv")
    if not path.exists():
        if finished:
            console.print(f"note: {path} is missing; it will hold epoch {finished + 1} on only")
        return []
    hint = (f"restore it, or move it aside to resume without the rows of epochs 1-{finished} "
            f"(the checkpoint is intact)")
    try:
        with open(path, newline="", encoding="utf-8") as handle:
            lines = list(csv.reader(handle))
    except (UnicodeDecodeError, csv.Error, OSError) as err:
        raise RunError(f"{path} is damaged ({type(err).__name__}); {hint}") from None
    if not lines or "epoch" not in lines[0]:
        raise RunError(f"{path} is damaged (no header with an 'epoch' column); {hint}")
    header = lines[0]
    rows = []
    for number, cells in enumerate(lines[1:], start=2):
        if len(cells) != len(header):
            raise RunError(f"{path} is damaged (line {number} has {len(cells)} of {len(header)} fields); {hint}")
        for key, cell in zip(header, cells):
            try:
                float(cell) if cell != "" else None
            except ValueError:
                raise RunError(f"{path} is damaged (line {number}: {key} is {cell[:20]!r}, not a number); "
                               f"{hint}") from None
        row = dict(zip(header, cells))
        if row["epoch"] != str(len(rows) + 1):
            raise RunError(f"{path} is damaged (line {number}: epoch {row['epoch'][:20]!r}, expected "
                           f"{len(rows) + 1}); {hint}")
        rows.append(row)
    if len(rows) < finished:
        raise RunError(f"{path} is damaged (rows for {len(rows)} epochs, the checkpoint has {finished}); {hint}")
    return rows[:finished]


def record_forced_resume(run: RunDir, config_hash: str) -> None:
    """Append to ``resumes.json`` that ``--force`` accepted an edited config.yaml."""
    path = run.sub("resumes.json")
    try:
        entries = json.loads(path.read_text()) if path.exists() else []
    except ValueError:
        raise RunError(f"{path} is damaged (not JSON); restore it or move it aside") from None
    entries.append({"time": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "force": True, "config_sha256": config_hash,
                    "began_with": run.sub(CONFIG_HASH).read_text().strip(), "command": command_line().strip()})
    atomic_write_text(path, json.dumps(entries, indent=2, sort_keys=True) + "\n")
