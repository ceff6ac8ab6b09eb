"""The 16-variant depth-inversion study: train every encoder x decoder variant over seeds, then
write ``tables/depth_inversion.md`` (docs/depth_inversion.md).

    predvis study depth_inversion --profile quick --seeds 2

Every model is a normal run directory under ``--runs`` (runs/depth_inversion/...). The study folder
(``--runs``/depth_inversion_study/<stamp>_<profile>/) holds one JSON record per finished model
(``jobs/``, written by the job runner, :mod:`predvis.jobs`), the per-image test losses (``losses/*.npz``), copies of the figures, and the table, which
is rewritten after every model so a partial study still reports what has finished. ``--study DIR``
continues an interrupted study (finished models are skipped).

Jobs: the 16 variants on occluded scenes (``--seeds`` seeds); the additive control (``--additive``:
``corners`` = B-B, B-BLT, BLT-B, BLT-BLT; ``all``; ``none``); the unroll sweep (``--sweep``, default
1,2,8 besides the trained 4) for B-B and BLT-BLT on the first ``--sweep-seeds`` seeds; with ``--wide``
the parameter-matched feed-forward control (B-B with ``model.match=BLT``, tagged ``Bw-Bw``).
"""
from __future__ import annotations

import functools
import json
import shutil
import sys
import time
from itertools import product
from pathlib import Path
from typing import List, Optional

import numpy as np
import typer

from predvis.errors import PredvisError
from predvis.backends.registry import get_method
from predvis.jobs import options as jo
from predvis.run import atomic_write_text
from predvis.studies.depth_inversion_table import VARIANTS


EXPERIMENT = "depth_inversion"
CORNERS = (("B", "B"), ("B", "BLT"), ("BLT", "B"), ("BLT", "BLT"))
LONG_STEPS = (1, 2, 4, 8, 16)   # the trained-at-4 B-B / BLT-BLT models are also run for these


def plan(seeds: int, additive: str, sweep: list[int], sweep_seeds: int, variants: list[tuple[str, str]],
         trained_steps: int, wide: bool = False) -> list[dict]:
    jobs = []
    add = {"none": [], "corners": [v for v in CORNERS if v in variants], "all": variants}[additive]
    for seed in range(seeds):  # seed by seed, so an interrupted study has complete seeds
        for enc, dec in variants:
            jobs.append({"kind": "occluded", "enc": enc, "dec": dec, "steps": trained_steps, "seed": seed})
        if wide:  # B-B widened to the parameter count of BLT-BLT (model.match=BLT)
            jobs.append({"kind": "occluded", "enc": "Bw", "dec": "Bw", "steps": trained_steps, "seed": seed})
        for enc, dec in add:
            jobs.append({"kind": "additive", "enc": enc, "dec": dec, "steps": trained_steps, "seed": seed})
        if seed < sweep_seeds:
            for steps in sweep:
                if steps == trained_steps:
                    continue
                for enc, dec in (("B", "B"), ("BLT", "BLT")):
                    jobs.append({"kind": "occluded", "enc": enc, "dec": dec, "steps": steps, "seed": seed})
    for j in jobs:
        j["tag"] = f"{j['kind'][:3]}_{j['enc']}-{j['dec']}_T{j['steps']}_s{j['seed']}"
    return jobs


def run_job(job: dict, profile: str, runs_root: Path, study: Path, threads: int, extra: list[str],
            trained_steps: int = 4) -> dict:
    """Train one model as a normal run, evaluate it on the test sets, save losses and figures; returns
    the model's record (the runner writes it to ``jobs/<tag>.json``)."""
    import torch

    from predvis.config import parse_overrides
    from predvis.experiment import load_experiment
    from predvis.probes.depth_invert import evaluate_scenes, write_figures
    from predvis import experiment
    from predvis.train import loop

    wide = job["enc"] == "Bw"
    overrides = [f"model.encoder={job['enc'][:1] if wide else job['enc']}",
                 f"model.decoder={job['dec'][:1] if wide else job['dec']}", f"model.steps={job['steps']}",
                 f"data.kind={job['kind']}", f"seed={job['seed']}", f"train.threads={threads}"] + (["model.match=BLT"] if wide else []) + extra
    cfg = load_experiment(EXPERIMENT, profile, overrides)
    started = time.perf_counter()
    path = loop.train(cfg, runs_root, parse_overrides(overrides))
    seconds = time.perf_counter() - started
    _, method = experiment.load_trained(path)
    sets = ("held_out", "seen") if job["kind"] == "occluded" else ("held_out",)
    losses, summary = {}, {}
    keep = max(method.cfg.eval.figures, 1)
    for name in sets:
        res = evaluate_scenes(method, method.scene_test_set(name), keep=keep)
        losses[f"{name}_sse"] = res["sse"].numpy()       # (steps, N)
        losses[f"{name}_sharp"] = res["sharp"].numpy()   # (N,)
        summary[name] = float(res["sse"][-1].mean())
        if name == "held_out":
            png, gif = write_figures(path, "depth_invert_held_out", method.scene_test_set(name), res["outputs"],
                                     f"depth inversion: {job['tag']} on the held_out test set", job["steps"])
            for src in (png, gif):
                dst = study / "figures" / f"{job['tag']}{src.suffix}"
                dst.parent.mkdir(parents=True, exist_ok=True)
                shutil.copyfile(src, dst)
    if job["kind"] == "occluded" and job["steps"] == trained_steps and (job["enc"], job["dec"]) in (("B", "B"), ("BLT", "BLT")):
        for steps in LONG_STEPS:
            res = evaluate_scenes(method, method.scene_test_set("held_out"), steps=steps)
            losses[f"long{steps}_sse"] = res["sse"].numpy()
    np.savez_compressed(study / "losses" / f"{job['tag']}.npz", **losses)
    record = dict(job, run=str(path), seconds=seconds, params=sum(p.numel() for p in method.model.parameters()),
                  mean_sse=summary)
    del method
    torch.set_num_threads(threads or torch.get_num_threads())
    return record


def command(
    profile: str = typer.Option("quick", help="smoke | quick | full | long"),
    seeds: int = typer.Option(2, help="seeds of every variant"),
    runs: Path = typer.Option(Path("runs"), "--runs", help="root of run directories"),
    out: Optional[Path] = typer.Option(None, "--out", hidden=True, help="old name of --runs"),
    study: Optional[Path] = typer.Option(None, help="continue this study folder"),
    variants: str = typer.Option("all", help="all, or a comma list like B-B,BLT-BLT"),
    additive: str = typer.Option("corners", help="corners | all | none"),
    sweep: str = typer.Option("1,2,8", help="unroll steps for B-B and BLT-BLT ('' for none)"),
    sweep_seeds: int = typer.Option(1, help="seeds of the unroll sweep"),
    wide: bool = typer.Option(False, help="also train B-B widened to BLT-BLT's parameter count"),
    threads: int = typer.Option(1, help="torch threads per model (0: torch's default)"),
    table_only: bool = typer.Option(False, help="rewrite the table of --study and stop"),
    overrides: Optional[List[str]] = typer.Argument(None, help="KEY=VALUE passed to every model"),
    workers: int = jo.WORKERS, launcher: str = jo.LAUNCHER, slurm_partition: str = jo.PARTITION,
    slurm_gpus: int = jo.GPUS, slurm_cpus: int = jo.CPUS, slurm_time: str = jo.TIME, slurm_mem: int = jo.MEM,
) -> int:
    """The 16-variant depth-inversion study (docs/depth_inversion.md): every encoder x decoder variant over
    seeds, then tables/depth_inversion.md in the study folder."""
    out = runs if out is None else out
    run_with = jo.launcher_from(launcher, workers, out, slurm_partition, slurm_gpus, slurm_cpus, slurm_time,
                                slurm_mem, threads=max(threads, 1))
    return run_study(profile, seeds, out, study, variants, additive, sweep, sweep_seeds, wide, threads, table_only,
                     list(overrides or []), run_with)


def parse_variants(text: str) -> list[tuple[str, str]]:
    if text == "all":
        return list(product(VARIANTS, VARIANTS))
    out = []
    for item in text.split(","):
        parts = item.strip().split("-")
        if len(parts) != 2:
            raise PredvisError(f"--variants: expected ENCODER-DECODER like BL-BLT, got '{item.strip()}'")
        check = get_method("depth_inversion").check_variant
        out.append((check(parts[0], "--variants encoder"), check(parts[1], "--variants decoder")))
    return out


def record_plan(study: Path, profile: str, seeds: int, overrides: list[str], jobs: list[dict]) -> None:
    """Write what the study trains to ``study.json``. A continued study (``--study``) must keep its
    profile and overrides (its models would otherwise not be comparable); its plan may grow or shrink
    (more seeds, a sweep), and ``study.json`` then records the plan of this invocation, finished models
    of the old one being kept in ``jobs/``."""
    path = study / "study.json"
    if path.exists():
        saved = json.loads(path.read_text())
        for key, value in (("profile", profile), ("overrides", overrides)):
            if saved.get(key) != value:
                raise PredvisError(f"--study: {study} was run with {key} {saved.get(key)!r}, not {value!r}; "
                                   "start a new study for other settings")
        if saved.get("seeds") == seeds and saved.get("jobs") == jobs:
            return
    atomic_write_text(path, json.dumps({"profile": profile, "seeds": seeds, "overrides": overrides, "jobs": jobs},
                                       indent=2))


def run_study(profile: str, seeds: int, out: Path, study: Path | None, variants: str, additive: str, sweep: str,
              sweep_seeds: int, wide: bool, threads: int, table_only: bool, overrides: list[str], launcher) -> int:
    """Plan the study, run its models through ``launcher`` (:mod:`predvis.jobs`), write its table."""
    from predvis.config import PROFILES
    from predvis.experiment import load_experiment
    from predvis.jobs.runner import Job, run
    from predvis.studies.depth_inversion_table import write_table

    if profile not in PROFILES:
        raise PredvisError(f"--profile: must be smoke, quick, full or long, got '{profile}'")
    if seeds < 1:
        raise PredvisError(f"--seeds: must be >= 1, got {seeds}")
    if additive not in ("corners", "all", "none"):
        raise PredvisError(f"--additive: must be corners, all or none, got '{additive}'")
    try:
        steps = [int(s) for s in sweep.split(",") if s.strip()]
    except ValueError:
        raise PredvisError(f"--sweep: expected comma-separated step counts, got '{sweep}'") from None
    if any(s < 1 for s in steps):
        raise PredvisError(f"--sweep: unroll steps must be >= 1, got {steps}")
    pairs = parse_variants(variants)
    base = load_experiment(EXPERIMENT, profile, list(overrides))  # checks overrides once
    if study is not None:
        if not (study / "study.json").exists():
            raise PredvisError(f"--study: {study} is not a depth-inversion study folder (no study.json)")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        study = out / "depth_inversion_study" / f"{stamp}_{profile}"
    for sub in ("jobs", "losses", "figures", "tables"):
        (study / sub).mkdir(parents=True, exist_ok=True)
    if table_only:
        print(write_table(study))
        return 0
    planned = plan(seeds, additive, steps, sweep_seeds, pairs, base.model.steps, wide)
    record_plan(study, profile, seeds, list(overrides), planned)
    started = time.perf_counter()
    job_fn = functools.partial(run_job, profile=profile, runs_root=out, study=study, threads=threads,
                               extra=list(overrides), trained_steps=base.model.steps)
    jobs = [Job(job["tag"], job_fn, job, record=study / "jobs" / f"{job['tag']}.json",
                claim=study / "jobs" / f"{job['tag']}.claim") for job in planned]
    outcomes = run(jobs, launcher, on_done=lambda _: write_table(study), title="depth-inversion study")
    failures = [o for o in outcomes if o.state == "failed"]
    table = write_table(study)
    if failures:
        raise PredvisError(f"{len(failures)} model(s) failed, first {failures[0].job.name}: {failures[0].message}")
    print(f"{len(planned)} models in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(table)
    return 0
