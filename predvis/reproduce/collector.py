"""The ``make reproduce-tables`` collector: run what is missing, resume what was interrupted, write tables.

A *job* is one seed of a train cell (or a whole study cell). Its run is found, not remembered: the
run directory under the collector's run root (``runs/reproduce/<profile>/`` by default) whose
``config.yaml`` equals the job's merged config (experiment + profile + overrides + seed). So:

- ``done``: that run holds ``cell-done.json`` (written last, after every probe): never rerun;
- ``trained``: training finished, some probes did not (finished probes are kept in
  ``cell-probes.json`` and are not rerun);
- ``interrupted``: ``status.json`` says running or interrupted and ``checkpoints/last.pt`` exists:
  continued in place with ``predvis train --resume`` (``predvis.train.loop.resume``);
- ``diverged``: the loss went NaN; the same config would diverge again, so it is reported, not rerun
  (delete the run directory to try again);
- ``missing``: no such run (a run interrupted before its first checkpoint counts as missing);
- ``partial k/n``: a study folder with k of its n models finished (continued with ``--study``).

Only one collector may work on a run root at a time (``.reproduce.lock`` holds its pid).
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

from predvis.errors import PredvisError, TrainingDiverged
from predvis.reproduce.cells import Cell
from predvis.reproduce.tables import TABLES, CellResult, Context, SeedResult

DONE_FILE = "cell-done.json"
PROBES_FILE = "cell-probes.json"
LOCK = ".reproduce.lock"


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


def _normal(data: Any) -> Any:
    from predvis.config import dump_yaml

    return yaml.safe_load(dump_yaml(data))


# --------------------------------------------------------------------------- planning

def plan(cells: list[Cell]) -> list[Job]:
    """Every job of every cell, with its merged config checked (a bad cell stops here, nothing run)."""
    from predvis.config import ConfigError, load_experiment

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
                    jobs.append(Job(cell, seed, cfg.name, overrides, _normal(cfg.to_dict())))
        except ConfigError as err:
            raise ConfigError(f"cell {cell.id} ({cell.path}): {err}") from None
    return jobs


def _study_job(cell: Cell) -> Job:
    from predvis.config import load_experiment
    from predvis.studies import depth_inversion as study

    spec = cell.study_spec()
    base = load_experiment(study.EXPERIMENT, cell.profile, list(cell.overrides))
    sweep = [int(s) for s in spec.sweep.split(",") if s.strip()]
    jobs = study.plan(len(cell.seeds), spec.additive, sweep, spec.sweep_seeds, study.parse_variants(spec.variants),
                      base.model.steps, spec.wide)
    meta = {"profile": cell.profile, "seeds": len(cell.seeds), "overrides": list(cell.overrides), "jobs": jobs}
    return Job(cell, None, study.EXPERIMENT, list(cell.overrides), None, _normal(meta))


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
                    found.append((run, yaml.safe_load((run / "config.yaml").read_text())))
                except (OSError, yaml.YAMLError):
                    continue
            self._by_name[name] = found
        return self._by_name[name]

    def forget(self, name: str) -> None:
        self._by_name.pop(name, None)


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
    for run in matches:
        if (run / DONE_FILE).exists():
            return JobState("done", run)
    probes = len(job.cell.probes)
    for run in matches:
        if _status(run).get("state") == "done" and (run / "checkpoints" / "last.pt").exists():
            finished = len(_read_json(run / PROBES_FILE, []))
            return JobState("trained", run, f"probes {finished}/{probes} finished")
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


def study_folders(root: Path, job: Job) -> list[Path]:
    """Study folders under ``root`` whose study.json matches the job (oldest first)."""
    out = []
    for folder in sorted((Path(root) / f"{job.name}_study").glob("*")):
        meta = _read_json(folder / "study.json", None)
        if isinstance(meta, dict) and _normal(meta) == job.study_meta:
            out.append(folder)
    return out


def _study_state(job: Job, root: Path) -> JobState:
    folders = study_folders(root, job)
    for folder in folders:
        if (folder / DONE_FILE).exists():
            return JobState("done", folder)
    if folders:
        folder = max(folders, key=lambda f: len(list((f / "jobs").glob("*.json"))))
        k = len(list((folder / "jobs").glob("*.json")))
        return JobState("partial", folder, f"{k} of {len(job.study_meta['jobs'])} models finished")
    return JobState("missing", None, f"{len(job.study_meta['jobs'])} models")


# --------------------------------------------------------------------------- running

def _git() -> dict:
    from predvis.run import git_state

    return git_state()


def run_train_job(job: Job, state: JobState, root: Path) -> Path:
    """Train (or resume) the job's run, run its missing probes, then write the done file."""
    from predvis.config import load_experiment, parse_overrides
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
        if any(p["probe"] == kind and p["options"] == options for p in finished):
            continue
        out = run_probe(kind, opts, run, root, job.cell)
        finished.append({"probe": kind, "options": options, "out": os.path.relpath(out, run)})
        atomic_write_json(run / PROBES_FILE, finished)
    atomic_write_json(run / DONE_FILE, {
        "cell": job.cell.id, "seed": job.seed, "tables": job.cell.tables, "row": job.cell.row,
        "experiment": job.cell.experiment, "profile": job.cell.profile, "overrides": job.overrides,
        "probes": finished, **_params(run), "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": _git()})
    return run


def _params(run: Path) -> dict:
    """Trainable parameter counts of the run's model (``method.param_counts()``)."""
    import torch

    from predvis.methods import get_method
    from predvis.train.loop import load_run_config

    cfg = load_run_config(run)
    cfg.device = "cpu"
    counts = get_method(cfg.method)(cfg, torch.device("cpu")).param_counts()
    total = sum(counts.values()) if cfg.method != "depth_inversion" else next(iter(counts.values()))
    return {"params": counts, "params_total": total}


def run_probe(kind: str, opts: Any, run: Path, root: Path, cell: Cell) -> Path:
    if kind == "predict":
        from predvis.probes.predict import predict

        return Path(predict(run, context=opts.context or None, limit=opts.limit or None,
                            figures=None if opts.figures < 0 else opts.figures))
    if kind == "lesion":
        from predvis.probes.lesion import run_lesion

        return Path(run_lesion(run, opts.disable, True, opts.limit or None))
    if kind == "occlude":
        from predvis.probes.occlude import run_occlude

        return Path(run_occlude(run, opts.mode, opts.size or None, None, "square", opts.limit or None))
    if kind == "attack":
        from predvis.config import parse_overrides
        from predvis.probes.deepdream.command import run_deepdream
        from predvis.probes.deepdream.settings import load_settings

        items = ["mode=attack", f"model.source={run}"] + list(opts.overrides)
        cfg = load_settings(opts.settings, opts.profile or cell.profile, items)
        return Path(run_deepdream(cfg, root, parse_overrides(items)))
    raise PredvisError(f"unknown probe '{kind}'")


def run_study_job(job: Job, state: JobState, root: Path) -> Path:
    from predvis.run import atomic_write_json
    from predvis.studies import depth_inversion as study

    spec = job.cell.study_spec()
    args = ["--profile", job.cell.profile, "--seeds", str(len(job.cell.seeds)), "--out", str(root),
            "--variants", spec.variants, "--additive", spec.additive, "--sweep", spec.sweep,
            "--sweep-seeds", str(spec.sweep_seeds), "--threads", str(spec.threads)]
    args += ["--wide"] if spec.wide else []
    before = set(study_folders(root, job))
    if state.state == "partial":
        args += ["--study", str(state.path)]
    with contextlib.redirect_stdout(sys.stderr):   # the study prints its table; stdout stays for our summary
        code = study.main(args + list(job.overrides))
    if code != 0:
        raise PredvisError(f"the {job.name} study stopped with exit status {code}")
    folder = state.path if state.state == "partial" else next(iter(sorted(set(study_folders(root, job)) - before)), None)
    if folder is None:
        raise PredvisError(f"the {job.name} study finished but its folder was not found under {root}")
    atomic_write_json(Path(folder) / DONE_FILE, {"cell": job.cell.id, "tables": job.cell.tables, "row": job.cell.row,
                                                 "profile": job.cell.profile, "study": job.study_meta,
                                                 "finished": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "git": _git()})
    return Path(folder)


# --------------------------------------------------------------------------- lock

@contextlib.contextmanager
def locked(root: Path):
    root.mkdir(parents=True, exist_ok=True)
    path = root / LOCK
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            try:
                pid = int(path.read_text().strip() or 0)
            except (OSError, ValueError):
                pid = 0
            if pid and _alive(pid):
                raise PredvisError(f"another collector (pid {pid}) is working on {root}; wait for it, "
                                   f"or remove {path} if it is gone") from None
            path.unlink(missing_ok=True)   # stale lock of a collector that died
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(str(os.getpid()))
        break
    else:
        raise PredvisError(f"could not take the lock {path}")
    try:
        yield
    finally:
        path.unlink(missing_ok=True)


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


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
        elif st.state == "done":
            res.seeds.append(SeedResult(job.seed, st.path, _read_json(st.path / DONE_FILE, {})))
    for res in by_cell.values():
        if res.cell.kind == "train":
            n, total = len(res.seeds), len(res.cell.seeds)
            res.state = "done" if n == total else f"{n} of {total} seeds done"
    return list(by_cell.values())


def write_tables(jobs: list[Job], index: RunIndex, tables_dir: Path, profile: str, command: str) -> list[Path]:
    """Write every table family fed by the cells, then ``README.md``; returns the files written."""
    from predvis.run import atomic_write_text, write_csv

    tables_dir.mkdir(parents=True, exist_ok=True)
    ctx = Context(tables_dir, profile)
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
            f"{(_git().get('commit') or '?')[:8]}. Every number in these tables links to the file of the run "
            "directory it was read from; `values.csv` lists each per-seed value with its source file and field "
            "(docs/reproduce.md). Cells are in `experiments/cells/`; run directories in the collector's run root.",
            "", markdown_table(["table", "files", "cells", "experiment profile", "seeds", "commit of the runs",
                                "finished"], index_rows).rstrip(), "",
            "Commits marked +dirty were run from a working tree with uncommitted changes.", ""]
    atomic_write_text(tables_dir / "README.md", "\n".join(text))
    written.append(tables_dir / "README.md")
    return written


# --------------------------------------------------------------------------- the collector

def listing(jobs: list[Job], index: RunIndex) -> str:
    rows = []
    for job in jobs:
        st = job_state(job, index)
        where = os.path.relpath(st.path) if st.path is not None else ""
        rows.append((job.cell.id, "-" if job.seed is None else str(job.seed), job.cell.profile,
                     st.state, st.detail, where))
    widths = [max(len(r[i]) for r in rows + [("cell", "seed", "profile", "status", "detail", "run")]) for i in range(6)]
    line = lambda r: "  ".join(v.ljust(w) for v, w in zip(r, widths)).rstrip()  # noqa: E731
    out = [line(("cell", "seed", "profile", "status", "detail", "run"))] + [line(r) for r in rows]
    counts: dict[str, int] = {}
    for r in rows:
        counts[r[3]] = counts.get(r[3], 0) + 1
    out.append(f"{len(rows)} jobs: " + ", ".join(f"{n} {s}" for s, n in sorted(counts.items())))
    return "\n".join(out)


def collect(cells: list[Cell], root: Path, tables_dir: Path, profile: str, command: str,
            dry: bool = False) -> int:
    from predvis.progress import console

    jobs = plan(cells)
    index = RunIndex(root)
    if dry:
        print(listing(jobs, index))
        return 0
    failures: list[str] = []
    started = time.perf_counter()
    with locked(Path(root)):
        todo = [j for j in jobs if job_state(j, index).state not in ("done", "placeholder")]
        console.print(f"reproduce-tables ({profile}): {len(jobs)} jobs, {len(todo)} to run; runs in {root}")
        for i, job in enumerate(todo):
            state = job_state(job, index)
            if state.state == "diverged":
                failures.append(f"{job.label}: diverged earlier ({state.path})")
                continue
            console.print(f"[{i + 1}/{len(todo)}] {job.label}: {state.state}"
                          f"{' (' + state.detail + ')' if state.detail else ''}  "
                          f"({time.perf_counter() - started:.0f} s so far)")
            try:
                if job.cell.kind == "study":
                    run_study_job(job, state, Path(root))
                else:
                    run_train_job(job, state, Path(root))
            except TrainingDiverged as err:
                failures.append(f"{job.label}: {err}")
            except PredvisError as err:
                failures.append(f"{job.label}: {err}")
                console.print(f"error: {job.label}: {err}")
            index.forget(job.name)
            if i + 1 == len(todo) or todo[i + 1].cell.id != job.cell.id:
                write_tables(jobs, index, tables_dir, profile, command)
        written = write_tables(jobs, index, tables_dir, profile, command)
    console.print(f"reproduce-tables: {len(todo)} jobs run in {time.perf_counter() - started:.0f} s; "
                  f"{len(failures)} failed")
    for f in failures:
        print(f"failed: {f}", file=sys.stderr)
    print(tables_dir / "README.md" if written else tables_dir)
    return 1 if failures else 0
