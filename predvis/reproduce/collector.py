"""The ``make reproduce-tables`` collector: run what is missing, resume what was interrupted, write tables.

A *job* is one seed of a train cell (or a whole study cell). Its run is found, not remembered: the
run directory under the collector's run root (``runs/reproduce/<profile>/`` by default) whose
``config.yaml`` equals the job's merged config (experiment + profile + overrides + seed). So:

- ``done``: that run's ``cell-done.json`` (written last, after every probe) lists the cell: never rerun;
- ``trained``: training finished, some probes did not (finished probes are kept in
  ``cell-probes.json`` and are not rerun). Cells whose jobs give the same config share the run: each
  adds its probes and its entry in ``cell-done.json`` (``cells``);
- ``training``: ``status.json`` says running and names a live process of this host (a run started in
  the background, or by another collector): left alone, its curve read as it grows;
- ``interrupted``: ``status.json`` says running or interrupted (no live process) and
  ``checkpoints/last.pt`` exists: continued in place with ``predvis train --resume``
  (``predvis.train.loop.resume``);
- ``diverged``: the loss went NaN; the same config would diverge again, so it is reported, not rerun
  (delete the run directory to try again);
- ``missing``: no such run (a run interrupted before its first checkpoint counts as missing);
- ``partial k/n``: a study folder with k of its n models finished (continued with ``--study``;
  the studies are driven through :mod:`predvis.reproduce.studies`).

Only one collector may work on a run root at a time (``.reproduce.lock`` holds its pid and host).
The jobs run through the job runner (:mod:`predvis.jobs`) with the launcher the command asks for:
local processes or SLURM jobs.
"""
from __future__ import annotations

import contextlib
import dataclasses
import json
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from predvis.config import saved_form
from predvis.errors import PredvisError
from predvis.parallel import sigterm_as_interrupt
from predvis.reproduce.cells import Cell
from predvis.reproduce.tables import TABLES, CellResult, Context, SeedResult

DONE_FILE = "cell-done.json"
PROBES_FILE = "cell-probes.json"
LOCK = ".reproduce.lock"
INVOCATIONS = "invocations.csv"   # one row per collector invocation that ran jobs: its wall time


@dataclass
class Job:
    cell: Cell
    seed: int | None = None
    name: str = ""                  # experiment name: runs go to <root>/<name>/
    overrides: list[str] = dataclasses.field(default_factory=list)
    config: dict | None = None      # the merged config the run must have (train jobs)
    study_meta: dict | None = None  # what study.json must hold (study jobs)

    @property
    def label(self) -> str:
        return self.cell.id if self.seed is None else f"{self.cell.id} seed {self.seed}"


@dataclass
class JobState:
    state: str
    path: Path | None = None
    detail: str = ""


# --------------------------------------------------------------------------- planning

def plan(cells: list[Cell]) -> list[Job]:
    """Every job of every cell, with its merged config checked (a bad cell stops here, nothing run)."""
    from predvis.config import ConfigError
    from predvis.experiment import load_experiment

    jobs = []
    for cell in cells:
        try:
            if cell.kind == "placeholder":
                jobs.append(Job(cell))
            elif cell.kind == "study":
                jobs.append(_study_job(cell))
            else:
                for seed in cell.seeds:
                    overrides = list(cell.overrides) + [f"seed={seed}"]
                    cfg = load_experiment(cell.experiment, cell.profile, overrides)
                    jobs.append(Job(cell, seed, cfg.name, overrides, saved_form(cfg.to_dict())))
        except ConfigError as err:
            raise ConfigError(f"cell {cell.id} ({cell.path}): {err}") from None
    return jobs


def _study_job(cell: Cell) -> Job:
    study, opts = cell.study_spec()
    meta = study.meta(cell, opts)
    return Job(cell, None, study.name, list(cell.overrides), None, saved_form(meta))


# --------------------------------------------------------------------------- state

class RunIndex:
    """Configs of the runs under a root, read once."""

    def __init__(self, root: Path):
        self.root = Path(root)
        self._by_name: dict[str, list[tuple[Path, Any]]] = {}

    def runs(self, name: str) -> list[tuple[Path, Any]]:
        if name not in self._by_name:
            from predvis.run import iter_runs

            found = []
            for run in sorted(iter_runs(self.root, name)):
                try:
                    found.append((run, _as_merged(yaml.safe_load((run / "config.yaml").read_text()), run)))
                except (OSError, yaml.YAMLError):
                    continue
            self._by_name[name] = found
        return self._by_name[name]

    def forget(self, name: str) -> None:
        self._by_name.pop(name, None)


def _as_merged(saved: Any, run: Path) -> Any:
    """A run's saved config as a job's merged config would be today: keys added to the schema since the
    run was saved take their defaults (or the value it was trained with, ``predvis.experiment.ABSENT_IN_SAVED``), so a run saved before
    a new key with a default still matches its cell. A config that no longer loads stays as saved."""
    from predvis.experiment import config_from_saved

    try:
        return saved_form(config_from_saved(saved, str(run / "config.yaml")).to_dict())
    except (PredvisError, TypeError, ValueError, AttributeError):
        return saved


def _status(run: Path) -> dict:
    try:
        return json.loads((run / "status.json").read_text())
    except (OSError, ValueError):
        return {}


def job_state(job: Job, index: RunIndex) -> JobState:
    if job.cell.kind == "placeholder":
        return JobState("placeholder", None, job.cell.note)
    if job.cell.kind == "study":
        return _study_state(job, index.root)
    matches = [run for run, cfg in index.runs(job.name) if cfg == job.config]
    wanted = _wanted_probes(job.cell)
    for run in matches:
        done = cell_done(run, job.cell.id)
        if done is not None and len(_mine(done.get("probes") or [], wanted)) == len(wanted):
            return JobState("done", run)   # (a probe added to the cell since: 'trained', that probe runs)
    for run in matches:
        if _status(run).get("state") == "done" and (run / "checkpoints" / "last.pt").exists():
            finished = len(_mine(_read_json(run / PROBES_FILE, []), wanted))
            return JobState("trained", run, f"probes {finished}/{len(wanted)} finished")
    from predvis.reproduce.curves import training_pid

    live = [(r, training_pid(r)) for r in matches]
    live = [(r, pid) for r, pid in live if pid is not None]
    if live:
        run, pid = live[-1]
        total = (job.config.get("train") or {}).get("epochs", "?")
        return JobState("training", run, f"pid {pid}, {_epochs_done(run)} of {total} epochs; left alone")
    resumable = [(_epochs_done(r), r) for r in matches
                 if _status(r).get("state") in ("running", "interrupted") and (r / "checkpoints" / "last.pt").exists()]
    if resumable:
        epoch, run = max(resumable, key=lambda t: (t[0], t[1].name))
        total = (job.config.get("train") or {}).get("epochs", "?")
        return JobState("interrupted", run, f"{epoch} of {total} epochs, resumable")
    for run in matches:
        if _status(run).get("state") == "diverged":
            return JobState("diverged", run, "loss went NaN; delete the run directory to try again")
    return JobState("missing")


def _epochs_done(run: Path) -> int:
    from predvis.run import read_csv

    return len(read_csv(run / "metrics" / "train.csv"))


def _read_json(path: Path, default: Any) -> Any:
    try:
        return json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return default


def _wanted_probes(cell: Cell) -> list[dict]:
    return [{"probe": kind, "options": saved_form(dataclasses.asdict(opts))} for kind, opts in cell.probe_specs()]


def _mine(finished: list[dict], wanted: list[dict]) -> list[dict]:
    """The entries of ``cell-probes.json`` that are the cell's probes (in the cell's order)."""
    out = []
    for w in wanted:
        hit = next((p for p in finished if p.get("probe") == w["probe"] and saved_form(p.get("options")) == w["options"]), None)
        if hit is not None:
            out.append(hit)
    return out


def cell_done(run: Path, cell_id: str) -> dict | None:
    """The run's ``cell-done.json`` seen by one cell (its probes, finish time and commit), or None if
    the cell has not finished there. Files written before runs were shared name one cell (``cell``)."""
    done = _read_json(Path(run) / DONE_FILE, None)
    if not isinstance(done, dict):
        return None
    entry = (done.get("cells") or {}).get(cell_id)
    if entry is None:
        return {k: v for k, v in done.items() if k != "cells"} if done.get("cell") == cell_id else None
    return {**{k: v for k, v in done.items() if k != "cells"}, **entry}


def study_folders(root: Path, job: Job) -> list[Path]:
    """Study folders under ``root`` whose study.json holds what the job asks for (oldest first)."""
    study, _ = job.cell.study_spec()
    return [f for f in sorted((Path(root) / study.folder).glob("*")) if study.matches(f, job.study_meta)]


def _study_state(job: Job, root: Path) -> JobState:
    study, _ = job.cell.study_spec()
    folders = study_folders(root, job)
    for folder in folders:
        if (folder / DONE_FILE).exists():
            return JobState("done", folder)
    n = study.planned(job.study_meta)
    if folders:
        folder = max(folders, key=study.finished)
        return JobState("partial", folder, f"{study.finished(folder)} of {n} models finished")
    return JobState("missing", None, f"{n} models")


# --------------------------------------------------------------------------- running

def _git() -> dict:
    from predvis.run import git_state

    return git_state()


def run_train_job(job: Job, state: JobState, root: Path) -> Path:
    """Train (or resume) the job's run, run its missing probes, then write the done file."""
    from predvis.config import parse_overrides
    from predvis.experiment import load_experiment
    from predvis.run import RunDir, atomic_write_json
    from predvis.train import loop

    if state.state == "missing":
        cfg = load_experiment(job.cell.experiment, job.cell.profile, job.overrides)
        run = Path(loop.train(cfg, root, parse_overrides(job.overrides)))
    elif state.state == "interrupted":
        run = Path(loop.resume(state.path))
    else:
        run = Path(state.path)
    if RunDir(run).status().get("state") != "done":
        raise PredvisError(f"{run}: training did not finish ({RunDir(run).status().get('state')})")
    finished = _read_json(run / PROBES_FILE, [])
    for kind, opts in job.cell.probe_specs():
        options = dataclasses.asdict(opts)
        if _mine(finished, [{"probe": kind, "options": saved_form(options)}]):
            continue
        out = run_probe(kind, opts, run, root, job.cell)
        finished.append({"probe": kind, "options": options, "out": os.path.relpath(out, run)})
        atomic_write_json(run / PROBES_FILE, finished)
    entry = {"tables": job.cell.tables, "row": job.cell.row, "probes": _mine(finished, _wanted_probes(job.cell)),
             "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": _git()}
    done = _read_json(run / DONE_FILE, None)
    if not isinstance(done, dict):   # the first cell to finish on this run
        done = {"cell": job.cell.id, "seed": job.seed, "experiment": job.cell.experiment,
                "profile": job.cell.profile, "overrides": job.overrides, **_params(run), **entry}
    cells = done.setdefault("cells", {})
    if done.get("cell") and done["cell"] not in cells:   # a file from before runs were shared
        cells[done["cell"]] = {k: done[k] for k in ("tables", "row", "probes", "finished", "git") if k in done}
    cells[job.cell.id] = entry
    done["probes"] = finished   # every finished probe of the run, whichever cell asked for it
    atomic_write_json(run / DONE_FILE, done)
    return run


def _params(run: Path) -> dict:
    """Trainable parameter counts of the run's model (``method.param_counts()``)."""
    import torch

    from predvis.backends.registry import get_method
    from predvis.experiment import load_run_config

    cfg = load_run_config(run)
    cfg.device = "cpu"
    counts = get_method(cfg.method)(cfg, torch.device("cpu")).param_counts()
    total = sum(counts.values()) if cfg.method != "depth_inversion" else next(iter(counts.values()))
    return {"params": counts, "params_total": total}


def run_probe(kind: str, opts: Any, run: Path, root: Path, cell: Cell) -> Path:
    """Run one of a cell's probes on ``run`` through the probe registry; returns the folder it wrote."""
    from predvis.probes.registry import get_probe

    return get_probe(kind).run(run, opts, root, cell.profile)


def run_study_job(job: Job, state: JobState, root: Path, launcher) -> Path:
    """Run (``missing``) or continue (``partial``: ``--study DIR``) the cell's study through its command
    (``predvis study NAME``; its models run through ``launcher``), then write the done file into its folder once every planned model has
    a record."""
    from predvis.run import atomic_write_json

    from predvis.studies.command import invoke

    study, opts = job.cell.study_spec()
    args = launcher.argv() + study.argv(job.cell, opts, root)
    before = set(study_folders(root, job))
    if state.state == "partial":
        args = ["--study", str(state.path)] + args
    with contextlib.redirect_stdout(sys.stderr):   # the study prints its table; stdout stays for our summary
        code = invoke(study.name, args)
    if code != 0:
        raise PredvisError(f"the {job.name} study stopped with exit status {code}")
    folder = state.path if state.state == "partial" else next(iter(sorted(set(study_folders(root, job)) - before)), None)
    if folder is None:
        raise PredvisError(f"the {job.name} study finished but its folder was not found under {root}")
    k, n = study.finished(folder), study.planned(job.study_meta)
    if k < n:   # e.g. models claimed by another process working on the same folder
        raise PredvisError(f"the {job.name} study in {folder} returned with {k} of {n} models finished; "
                           "run the collector again to continue it")
    atomic_write_json(Path(folder) / DONE_FILE, {"cell": job.cell.id, "tables": job.cell.tables, "row": job.cell.row,
                                                 "profile": job.cell.profile, "study": job.study_meta,
                                                 "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": _git()})
    return Path(folder)


def _status_line(job: Job, state: JobState) -> str:
    """'gopc1 seed 0: interrupted (6 of 10 epochs, resumable)': what is about to happen to a job."""
    return f"{job.label}: {state.state}" + (f" ({state.detail})" if state.detail else "")


def _run_group(item: tuple[list[Job], Path]) -> list[str]:
    """In a worker process: the jobs that share one run (same merged config), one after another, so two
    processes never train the same run. Returns the failures, one line each."""
    jobs, root = item
    index, failures = RunIndex(root), []
    for job in jobs:
        state = job_state(job, index)
        if state.state in ("done", "training"):
            continue
        if state.state == "diverged":
            failures.append(f"{job.label}: diverged earlier ({state.path})")
            continue
        print(_status_line(job, state), file=sys.stderr, flush=True)
        try:
            run_train_job(job, state, root)
        except PredvisError as err:
            failures.append(f"{job.label}: {err}")
        index.forget(job.name)
    return failures


def _run(todo: list[Job], root: Path, launcher, started: float, write) -> list[str]:
    """Every job to run through the job runner (:mod:`predvis.jobs`): first the timing cells (``alone``)
    one at a time, then the other training jobs, grouped by the run they share (one runner job per group,
    so two processes never train the same run), the longest first (the cells' ``minutes``), ``workers`` at a
    time; then each study, which runs its models through the same launcher. One progress bar with an ETA
    covers them all (the groups and the studies' models). Tables are rewritten after every group and
    every study."""
    from predvis.jobs.runner import Job as RunnerJob
    from predvis.jobs.runner import overall, run
    from predvis.progress import console

    groups: dict[str, list[Job]] = {}
    for job in todo:
        if job.cell.kind != "study":
            groups.setdefault(json.dumps(job.config, sort_keys=True), []).append(job)
    alone = [g for g in groups.values() if any(j.cell.alone for j in g)]
    side = [g for g in groups.values() if not any(j.cell.alone for j in g)]
    side.sort(key=lambda g: -sum(j.cell.minutes for j in g))   # longest first: the last jobs are short (stable)
    failures: list[str] = []

    def group_done(outcome) -> None:
        group = outcome.job.item[0]
        failures.extend([f"{group[0].label}: {outcome.message}"] if outcome.state == "failed" else outcome.result)
        write()

    def as_jobs(batch: list[list[Job]]) -> list:
        return [RunnerJob(", ".join(j.label for j in g), _run_group, (g, root)) for g in batch]

    studies = [j for j in todo if j.cell.kind == "study"]
    models = 0   # the studies' models still to train, for the one bar's total
    for job in studies:
        study, _ = job.cell.study_spec()
        state = _study_state(job, root)
        models += study.planned(job.study_meta) - (study.finished(state.path) if state.state == "partial" else 0)
    with overall("reproduce", len(alone) + len(side) + models):
        run(as_jobs(alone), launcher.one_at_a_time(), group_done, title="timing cells")   # nothing beside them
        run(as_jobs(side), launcher, group_done, title="training jobs")
        for job in studies:
            state = _study_state(job, root)
            console.print(f"{_status_line(job, state)}, {launcher.workers} models at a time  "
                          f"({time.perf_counter() - started:.0f} s so far)")
            try:
                run_study_job(job, state, root, launcher)
            except PredvisError as err:
                failures.append(f"{job.label}: {err}")
                console.print(f"error: {job.label}: {err}")
            write()
    return failures


# --------------------------------------------------------------------------- tables and index

def results(jobs: list[Job], index: RunIndex) -> list[CellResult]:
    by_cell: dict[str, CellResult] = {}
    for job in jobs:
        res = by_cell.setdefault(job.cell.id, CellResult(job.cell))
        st = job_state(job, index)
        if job.cell.kind == "placeholder":
            res.state = "placeholder"
        elif job.cell.kind == "study":
            res.state = st.state + (f" ({st.detail})" if st.detail and st.state != "done" else "")
            if st.state == "done":
                res.study = st.path
        else:
            if st.state == "done":
                res.seeds.append(SeedResult(job.seed, st.path, cell_done(st.path, job.cell.id) or {}))
            if st.path is not None:   # every seed's run in any state, for the learning curves
                res.runs.append((job.seed, st.path))
    for res in by_cell.values():
        if res.cell.kind == "train":
            n, total = len(res.seeds), len(res.cell.seeds)
            res.state = "done" if n == total else f"{n} of {total} seeds done"
            busy = sum(job_state(j, index).state == "training" for j in jobs if j.cell is res.cell)
            if busy:
                res.state += f", {busy} training now"
    return list(by_cell.values())


def write_tables(jobs: list[Job], index: RunIndex, tables_dir: Path, profile: str, command: str,
                 running: tuple[float, int] | None = None) -> list[Path]:
    """Write every table family fed by the cells, then ``README.md``; returns the files written.
    ``running``: (perf_counter at start, workers) of the invocation in progress, for the time line."""
    from predvis.run import atomic_write_text, write_csv

    tables_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(tables_dir, profile, runs_root=Path(index.root))
    cell_results = results(jobs, index)
    written, index_rows = [], []
    for key, spec in TABLES.items():
        feeding = [r for r in cell_results if key in r.cell.tables]
        if not feeding:
            continue
        placeholder = spec.writer is None or all(r.cell.kind == "placeholder" for r in feeding)
        if placeholder:
            notes = "; ".join(r.cell.note for r in feeding) or "not built yet"
            index_rows.append([spec.title, "-", f"**{notes}**", "-", "-", "-", "-"])
            continue
        live = [r for r in feeding if r.cell.kind != "placeholder"]
        files = spec.writer(ctx, live)
        for name, text in files.items():
            atomic_write_text(tables_dir / name, text)
            written.append(tables_dir / name)
        seeds = sorted({s for r in live for s in (r.cell.seeds if r.cell.kind != "placeholder" else [])})
        status = "; ".join(f"{r.cell.id}: {r.state}" for r in live)
        commits, dates = set(), []
        for r in live:
            for s in r.seeds:
                git = (s.done.get("git") or {})
                commits.add((git.get("commit") or "?")[:8] + ("+dirty" if git.get("dirty") else ""))
                dates.append(s.done.get("finished", ""))
            if r.study is not None:
                done = _read_json(r.study / DONE_FILE, {})
                git = done.get("git") or {}
                commits.add((git.get("commit") or "?")[:8] + ("+dirty" if git.get("dirty") else ""))
                dates.append(done.get("finished", ""))
        profiles = sorted({r.cell.profile for r in live})
        index_rows.append([spec.title, " ".join(f"[{n}]({n})" for n in files), status,
                           ", ".join(profiles), ", ".join(map(str, seeds)), ", ".join(sorted(commits)) or "-",
                           max(dates)[:10] if dates and max(dates) else "-"])
    write_csv(tables_dir / "values.csv", ctx.values)
    from predvis.tables import markdown_table

    text = [f"# Reproduced tables ({profile} profile)", "",
            f"Written by `{command}` on {time.strftime('%Y-%m-%d %H:%M')} at commit "
            f"{(_git().get('commit') or '?')[:8]}. `values.csv` lists every per-seed number of these tables with the "
            "file of the run directory it was read from and its field (docs/reproduce.md). Runs are named by their "
            f"run id, the path under the collector's run root (`{_shown_root(index.root)}`, not in git): "
            "`gopc1/<stamp>_<id>` is a run directory, `.../predict/<stamp>_<id>` one of its probe outputs. "
            f"Cells are in `experiments/cells/{'long/' if profile == 'long' else ''}`. `index.html` shows every table of this folder on one page.",
            "", markdown_table(["table", "files", "cells", "experiment profile", "seeds", "commit of the runs",
                                "finished"], index_rows).rstrip(), "",
            "Commits marked +dirty were run from a working tree with uncommitted changes.", ""]
    text += time_lines(index.root, running)
    atomic_write_text(tables_dir / "README.md", "\n".join(text))
    written.append(tables_dir / "README.md")
    from predvis.report import write_report

    written.append(write_report(tables_dir))   # index.html: every table of the folder on one page
    return written


def _shown_root(root: Path) -> str:
    """The run root as the README names it: relative to the working directory when below it."""
    from predvis.reproduce.tables import run_id

    return run_id(Path(root), None) + "/"


def time_lines(root: Path, running: tuple[float, int] | None = None) -> list[str]:
    """The collector's wall time on this run root: every invocation that ran jobs (``invocations.csv``),
    and the one in progress."""
    from predvis.run import read_csv
    from predvis.tables import markdown_table

    logged = sorted(read_csv(Path(root) / INVOCATIONS), key=lambda r: r["started"])
    rows = [[r["started"], _duration(float(r["seconds"])), r["workers"], r["jobs"], r["outcome"]] for r in logged]
    total = sum(float(r["seconds"]) for r in logged)
    if running is not None:
        seconds = time.perf_counter() - running[0]
        total += seconds
        rows.append([time.strftime("%Y-%m-%d %H:%M", time.localtime(time.time() - seconds)), _duration(seconds),
                     str(running[1]), "", "running"])
    if not rows:
        return []
    return ["## Time", "", f"Wall time of the collector on this run root: **{_duration(total)}** in "
            f"{len(rows)} invocation(s) (`{INVOCATIONS}` in the run root; finished jobs are never rerun, an "
            "interrupted training resumes from its last epoch).", "",
            markdown_table(["started", "wall time", "jobs at a time", "jobs to run", "outcome"], rows).rstrip(), ""]


def _duration(seconds: float) -> str:
    minutes = round(seconds / 60)
    return f"{minutes // 60} h {minutes % 60:02d} min" if minutes >= 60 else f"{seconds / 60:.1f} min"


def _log_invocation(root: Path, started_wall: float, seconds: float, workers: int, jobs: int, outcome: str) -> None:
    from predvis.run import read_csv, write_csv

    path = Path(root) / INVOCATIONS
    rows = read_csv(path) + [{"started": time.strftime("%Y-%m-%d %H:%M", time.localtime(started_wall)),
                              "seconds": f"{seconds:.1f}", "workers": workers, "jobs": jobs, "outcome": outcome}]
    write_csv(path, rows)


# --------------------------------------------------------------------------- the collector

def listing(jobs: list[Job], index: RunIndex) -> str:
    rows = []
    first: dict[str, str] = {}   # config -> the first job that trains it (later cells share its run)
    for job in jobs:
        st = job_state(job, index)
        where = os.path.relpath(st.path) if st.path is not None else ""
        detail = st.detail
        if job.config is not None:
            key = json.dumps([job.name, job.config], sort_keys=True, default=str)
            if key in first and st.state in ("missing", "interrupted"):
                detail = f"{detail + '; ' if detail else ''}shares the run of {first[key]}"
            first.setdefault(key, job.label)
        rows.append((job.cell.id, "-" if job.seed is None else str(job.seed), job.cell.profile,
                     st.state, detail, where))
    widths = [max(len(r[i]) for r in rows + [("cell", "seed", "profile", "status", "detail", "run")]) for i in range(6)]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(("cell", "seed", "profile", "status", "detail", "run"))] + [line(r) for r in rows]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[3]] = counts.get(r[3], 0) + 1
    out.append(f"{len(rows)} jobs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return "\n".join(out)


def collect(cells: list[Cell], root: Path, tables_dir: Path, profile: str, command: str,
            dry: bool = False, launcher=None, tables_only: bool = False) -> int:
    """Run what is missing through ``launcher`` (:mod:`predvis.jobs.launchers`; default: one local job at a
    time) and write the tables; ``dry``: list the jobs; ``tables_only``: only write the tables of what the
    runs have reached so far (no lock taken, nothing trained or probed; runs still training elsewhere are
    read as they are)."""
    from predvis.jobs.claim import locked
    from predvis.jobs.launchers import Local
    from predvis.progress import console

    launcher = launcher if launcher is not None else Local()
    workers = launcher.workers

    jobs = plan(cells)
    index = RunIndex(root)
    if dry:
        print(listing(jobs, index))
        return 0
    if tables_only:
        written = write_tables(jobs, index, tables_dir, profile, command)
        console.print(f"reproduce-tables ({profile}): tables only, from the runs in {root}")
        print(tables_dir / "README.md" if written else tables_dir)
        return 0
    failures: list[str] = []
    started, started_wall = time.perf_counter(), time.time()
    Path(root).mkdir(parents=True, exist_ok=True)
    with locked(Path(root) / LOCK, "another collector"), sigterm_as_interrupt():
        todo = [j for j in jobs if job_state(j, index).state not in ("done", "placeholder", "training")]
        console.print(f"reproduce-tables ({profile}): {len(jobs)} jobs, {len(todo)} to run, "
                      f"{max(1, workers)} at a time; runs in {root}")
        running = (started, max(1, workers))
        outcome = "interrupted"
        try:
            failures = _run(todo, Path(root), launcher, started,
                            lambda: write_tables(jobs, RunIndex(root), tables_dir, profile, command, running))
            outcome = f"{len(failures)} failed" if failures else "finished"
        finally:   # also after Ctrl-C: the time spent counts, and the tables show what finished
            if todo:
                _log_invocation(root, started_wall, time.perf_counter() - started, max(1, workers), len(todo), outcome)
            written = write_tables(jobs, RunIndex(root), tables_dir, profile, command)
    console.print(f"reproduce-tables: {len(todo)} jobs run in {time.perf_counter() - started:.0f} s; "
                  f"{len(failures)} failed")
    for f in failures:
        print(f"failed: {f}", file=sys.stderr)
    print(tables_dir / "README.md" if written else tables_dir)
    return 1 if failures else 0
