"""The 16-variant depth-inversion study: train every encoder x decoder variant over seeds, then
write ``tables/depth_inversion.md`` (docs/depth_inversion.md).

    python -m predvis.studies.depth_inversion --profile quick --seeds 2

Every model is a normal run directory under ``--out`` (runs/depth_inversion/...). The study folder
(``--out``/depth_inversion_study/<stamp>_<profile>/) holds one JSON record per finished model
(``jobs/``), the per-image test losses (``losses/*.npz``), copies of the figures, and the table, which
is rewritten after every model so a partial study still reports what has finished. ``--study DIR``
continues an interrupted study (finished models are skipped).

Jobs: the 16 variants on occluded scenes (``--seeds`` seeds); the additive control (``--additive``:
``corners`` = B-B, B-BLT, BLT-B, BLT-BLT; ``all``; ``none``); the unroll sweep (``--sweep``, default
1,2,8 besides the trained 4) for B-B and BLT-BLT on the first ``--sweep-seeds`` seeds; with ``--wide``
the parameter-matched feed-forward control (B-B with ``model.match=BLT``, tagged ``Bw-Bw``).
"""
from __future__ import annotations

import argparse
import functools
import json
import shutil
import sys
import time
from itertools import product
from pathlib import Path

import numpy as np

from predvis.errors import PredvisError
from predvis.backends.registry import get_method
from predvis.parallel import Failed, run_jobs
from predvis.run import atomic_write_text

VARIANTS: tuple[str, ...] = get_method("depth_inversion").VARIANTS  # encoder / decoder wirings

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
    """Train one model as a normal run, evaluate it on the test sets, save losses and figures."""
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
    (study / "jobs" / f"{job['tag']}.json").write_text(json.dumps(record, indent=2) + "\n")
    del method
    torch.set_num_threads(threads or torch.get_num_threads())
    return record


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(prog="python -m predvis.studies.depth_inversion", description=__doc__.split("\n\n")[0])
    ap.add_argument("--profile", default="quick", help="smoke | quick | full")
    ap.add_argument("--seeds", type=int, default=2)
    ap.add_argument("--out", type=Path, default=Path("runs"), help="root of run directories")
    ap.add_argument("--study", type=Path, default=None, help="continue this study folder")
    ap.add_argument("--variants", default="all", help="all, or a comma list like B-B,BLT-BLT")
    ap.add_argument("--additive", default="corners", help="corners | all | none")
    ap.add_argument("--sweep", default="1,2,8", help="unroll steps for B-B and BLT-BLT ('' for none)")
    ap.add_argument("--sweep-seeds", type=int, default=1)
    ap.add_argument("--wide", action="store_true", help="also train B-B widened to BLT-BLT's parameter count")
    ap.add_argument("--threads", type=int, default=1, help="torch threads per model (0: torch's default)")
    ap.add_argument("--workers", type=int, default=1, help="models trained at a time, each in its own process")
    ap.add_argument("--table-only", action="store_true", help="rewrite the table of --study and stop")
    ap.add_argument("overrides", nargs="*", help="KEY=VALUE passed to every model")
    args = ap.parse_args(argv)
    try:
        return _main(args)
    except PredvisError as err:
        print(f"error: {err}", file=sys.stderr)
        return err.exit_code


def parse_variants(text: str) -> list[tuple[str, str]]:
    if text == "all":
        return list(product(VARIANTS, VARIANTS))
    out = []
    for item in text.split(","):
        parts = item.strip().split("-")
        if len(parts) != 2:
            raise PredvisError(f"--variants: expected ENCODER-DECODER like BL-BLT, got '{item.strip()}'")
        out.append((get_method("depth_inversion").check_variant(parts[0], "--variants encoder"), get_method("depth_inversion").check_variant(parts[1], "--variants decoder")))
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


def _main(args) -> int:
    from predvis.config import PROFILES
    from predvis.experiment import load_experiment
    from predvis.studies.depth_inversion_table import write_table

    if args.profile not in PROFILES:
        raise PredvisError(f"--profile: must be smoke, quick or full, got '{args.profile}'")
    if args.seeds < 1:
        raise PredvisError(f"--seeds: must be >= 1, got {args.seeds}")
    if args.additive not in ("corners", "all", "none"):
        raise PredvisError(f"--additive: must be corners, all or none, got '{args.additive}'")
    try:
        sweep = [int(s) for s in args.sweep.split(",") if s.strip()]
    except ValueError:
        raise PredvisError(f"--sweep: expected comma-separated step counts, got '{args.sweep}'") from None
    if any(s < 1 for s in sweep):
        raise PredvisError(f"--sweep: unroll steps must be >= 1, got {sweep}")
    variants = parse_variants(args.variants)
    base = load_experiment(EXPERIMENT, args.profile, list(args.overrides))  # checks overrides once
    if args.study is not None:
        study = args.study
        if not (study / "study.json").exists():
            raise PredvisError(f"--study: {study} is not a depth-inversion study folder (no study.json)")
    else:
        stamp = time.strftime("%Y%m%d-%H%M%S")
        study = args.out / "depth_inversion_study" / f"{stamp}_{args.profile}"
    for sub in ("jobs", "losses", "figures", "tables"):
        (study / sub).mkdir(parents=True, exist_ok=True)
    if args.table_only:
        print(write_table(study))
        return 0
    jobs = plan(args.seeds, args.additive, sweep, args.sweep_seeds, variants, base.model.steps, args.wide)
    record_plan(study, args.profile, args.seeds, list(args.overrides), jobs)
    started = time.perf_counter()
    todo = [job for job in jobs if not (study / "jobs" / f"{job['tag']}.json").exists()]
    print(f"{len(todo)} of {len(jobs)} models to train, {max(1, args.workers)} at a time", file=sys.stderr, flush=True)

    count = len(jobs) - len(todo)

    def finished(job: dict, result) -> None:   # in this process, after each model
        nonlocal count
        count += 1
        note = f"failed: {result.message}" if isinstance(result, Failed) else "done"
        print(f"[{count}/{len(jobs)}] {job['tag']} {note}  ({time.perf_counter() - started:.0f} s so far)",
              file=sys.stderr, flush=True)
        write_table(study)

    job_fn = functools.partial(run_job, profile=args.profile, runs_root=args.out, study=study, threads=args.threads,
                               extra=list(args.overrides), trained_steps=base.model.steps)
    results = run_jobs(job_fn, todo, args.workers, finished, threads=max(args.threads, 1))
    failures = [r for r in results if isinstance(r, Failed)]
    table = write_table(study)
    if failures:
        raise PredvisError(f"{len(failures)} model(s) failed, first {failures[0].item['tag']}: {failures[0].message}")
    print(f"{len(jobs)} models in {time.perf_counter() - started:.0f} s", file=sys.stderr)
    print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
