"""The training loop shell shared by every gradient- or online-trained backend.

It owns epochs, the progress bar, the NaN guard, ``metrics/train.csv``, ``plots/loss.png`` (when
training stops, finished or not), checkpoints (``last.pt`` every epoch, ``best.pt`` on the best
``val_loss``) and exact resume. What a step does belongs to the Method.

Exact resume: batches are generated from (seed, epoch, index) and every RNG state is saved at
the end of each epoch, so N epochs straight and k epochs + ``--resume`` + N-k epochs give the
same weights on the CPU.
"""
from __future__ import annotations

import math
import os
import time
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn

from predvis import checkpoint, runlock
from predvis.train import resume_guards
from predvis.config import ExperimentConfig, dump_yaml
from predvis.errors import TrainingDiverged, interrupted
from predvis.experiment import build_method, describe, load_run_config
from predvis.figures.training import write_loss_plot
from predvis.progress import console, enabled as progress_enabled  # console: --quiet silences it
from predvis.runtime import distributed
from predvis.runtime.method import Method
from predvis.train import trackers
from predvis.run import (
    RunDir, atomic_torch_save, atomic_write_text, check_space, command_line, create_run_dir, environment, write_csv,
)


def train(cfg: ExperimentConfig, root: Path, overrides: dict, dry_run: bool = False) -> Path | None:
    """Build, then (unless ``dry_run``) train a new run; returns the run directory."""
    trackers.require(trackers.logger_of(cfg))
    if not dry_run:
        from predvis.run import check_writable

        check_writable(Path(root), "--runs")
    method, device = build_method(cfg)
    console.print(f"profile: {cfg.profile}   device: {device}   method: {cfg.method}")
    if dry_run:
        print(describe(cfg, method))
        return None
    for name, count in method.param_counts().items():
        console.print(f"params: {count:,} ({name})")
    check_space(Path(root), checkpoint.disk_needed(method), "its checkpoints and metrics", "--runs")
    world = distributed.world_size()
    env = environment(device, cfg.seed, world_size=world, extra={
        "profile": cfg.profile, "effective_batch": getattr(cfg.train, "batch_size", None),
        "per_rank_batch": -(-getattr(cfg.train, "batch_size", 0) // world)})
    path = None
    lock = None
    if distributed.is_main():
        config_text = dump_yaml(cfg.to_dict())
        path = str(create_run_dir(root, cfg.name, {
            "config.yaml": config_text,
            resume_guards.CONFIG_HASH: resume_guards.sha256_text(config_text) + "\n",
            "overrides.yaml": dump_yaml(overrides),
            "cmd.txt": command_line(),
            "env.json": _json(env),
            runlock.LOCK_NAME: runlock.lock_text(),  # held from the moment the run appears
        }).path)
        lock = runlock.adopt(Path(path))
    try:
        run = RunDir(Path(distributed.broadcast_text(path)))
        console.print(f"run directory: {run.path}" + (f"  (world size {world})" if world > 1 else ""))
        run_epochs(method, run, start_epoch=0, step=0, best=math.inf)
    finally:
        if lock is not None:
            lock.release()
    return run.path


def resume(run_path: Path, dry_run: bool = False, experiment: str | None = None, profile: str | None = None,
           force: bool = False) -> Path | None:
    """Continue a run from its ``last.pt`` into the same directory (appending metrics); ``dry_run``: load
    config and checkpoint, print them and where training would continue, write nothing (returns None).

    ``experiment`` and ``profile`` (as given on the command line) must be the run's own; a config.yaml
    edited since the run began is refused unless ``force`` (then recorded in ``resumes.json``). The run is
    locked (``.lock``) while it trains."""
    run = RunDir(Path(run_path))
    cfg = load_run_config(run.path)
    edited = resume_guards.check_resumable(run.path, cfg, experiment, profile, force)
    trackers.require(trackers.logger_of(cfg))
    if dry_run:
        return _resume(run, cfg, dry_run=True, edited=edited)
    # the process group does not exist yet: rank 0 of a torchrun launch is told by RANK
    lock = runlock.acquire(run.path) if int(os.environ.get("RANK", "0")) == 0 else None
    try:
        return _resume(run, cfg, dry_run=False, edited=edited)
    finally:
        if lock is not None:
            lock.release()


def _resume(run: RunDir, cfg: ExperimentConfig, dry_run: bool, edited: str | None) -> Path | None:
    method, _ = build_method(cfg)
    last = run.checkpoints / "last.pt"
    ckpt = checkpoint.load_checkpoint(last, method.device)
    checkpoint.restore(method, ckpt, last)
    epoch = int(ckpt["epoch"]) + 1
    rows = resume_guards.check_train_csv(run, epoch)
    if dry_run:
        print(describe(cfg, method))
        console.print(f"would resume {run.path} at epoch {epoch + 1} of {cfg.train.epochs}" if epoch < cfg.train.epochs
                      else f"run already finished {epoch} of {cfg.train.epochs} epochs; nothing to do")
        return None
    if epoch >= cfg.train.epochs:
        console.print(f"run already finished {epoch} of {cfg.train.epochs} epochs; nothing to do")
        write_loss_plot(run.path)
        return run.path
    check_space(run.path, checkpoint.disk_needed(method), "its checkpoints and metrics", "run")
    if edited is not None and distributed.is_main():
        resume_guards.record_forced_resume(run, edited)
        console.print(f"--force: training on with the edited {run.sub('config.yaml')} (recorded in resumes.json)")
    console.print(f"resuming {run.path} at epoch {epoch + 1} of {cfg.train.epochs}")
    run_epochs(method, run, start_epoch=epoch, step=int(ckpt["step"]), best=float(ckpt["best_val"]), rows=rows)
    return run.path


def _json(data: dict) -> str:
    import json

    return json.dumps(data, indent=2, sort_keys=True, default=str) + "\n"


def run_epochs(method: Method, run: RunDir, start_epoch: int, step: int, best: float,
               rows: list[dict] | None = None) -> None:
    """Train epochs start_epoch..epochs-1; an interruption leaves the run resumable from last.pt."""
    tracker = trackers.open_tracker(method.cfg, run.path) if distributed.is_main() else trackers.Tracker()
    ending = "failed"
    try:
        _run_epochs(method, run, start_epoch, step, best, tracker, rows or [])
        ending = "done"
    except KeyboardInterrupt:
        ending = "interrupted"
        last = run.checkpoints / "last.pt"
        if distributed.is_main():
            run.write_status("interrupted", resumable=last.exists())
        if not distributed.is_main():
            raise
        if last.exists():
            raise interrupted(f"run {run.path} can be resumed (predvis train --resume {run.path})") from None
        raise interrupted(f"run {run.path} had no finished epoch, so it cannot be resumed") from None
    finally:  # the curves so far, also when training stopped early
        tracker.close(ending)
        if distributed.is_main():
            write_loss_plot(run.path)


def _run_epochs(method: Method, run: RunDir, start_epoch: int, step: int, best: float,
                tracker: trackers.Tracker, rows: list[dict]) -> None:
    """``rows``: train.csv's rows of the epochs before ``start_epoch`` (checked by
    :func:`predvis.train.resume_guards.check_train_csv`)."""
    cfg = method.cfg
    epochs = cfg.train.epochs
    rows = list(rows)
    steps = method.steps_per_epoch()
    main = distributed.is_main()
    if main:
        run.write_status("running", epoch=start_epoch, epochs=epochs)
    check_every = getattr(cfg.train, "nan_check_every", 1)
    with Progress(
        TextColumn("[bold]epoch {task.fields[epoch]}/{task.fields[epochs]}"), BarColumn(),
        MofNCompleteColumn(), TextColumn("loss {task.fields[loss]}"), TimeElapsedColumn(),
        TimeRemainingColumn(), console=console, transient=True, disable=not (main and progress_enabled()),
    ) as progress:
        for epoch in range(start_epoch, epochs):
            task = progress.add_task("train", total=steps, epoch=epoch + 1, epochs=epochs, loss="-")
            sums: dict[str, torch.Tensor] = {}
            count = 0
            started = time.perf_counter()
            method.train_mode(True)
            for batch in method.train_batches(epoch):
                metrics = method.train_step(batch)
                step += 1
                count += 1
                if step % check_every == 0:
                    loss = distributed.all_average({"loss": metrics["loss"]})["loss"]
                    if not bool(torch.isfinite(loss)):
                        _diverged(run, epoch, step, float(loss))
                for key, value in metrics.items():
                    sums[key] = sums.get(key, 0.0) + value.detach().float()
                progress.update(task, advance=1, loss=f"{float(metrics['loss']):.4g}")
            sums = distributed.all_average(sums)
            if not all(bool(torch.isfinite(v)) for v in sums.values()):
                _diverged(run, epoch, step, float("nan"))
            method.end_epoch(epoch)
            seconds = time.perf_counter() - started
            progress.remove_task(task)
            method.train_mode(False)
            val = method.validate()
            row = {"epoch": epoch + 1, "step": step, "lr": method.learning_rate()}
            row.update({k: float(v) / max(count, 1) for k, v in sums.items()})
            row.update(val)
            row.update({"seconds": seconds, "batches_per_s": count / seconds if seconds else float("nan")})
            rows.append(row)
            score = val.get("val_loss", row["loss"])
            improved = score < best
            best = min(best, score) if math.isfinite(score) else best
            payload = checkpoint.payload(method, epoch, step, best)
            if main:
                write_csv(run.sub("metrics", "train.csv"), rows)
                atomic_torch_save(run.checkpoints / "last.pt", payload)
                if improved:
                    atomic_torch_save(run.checkpoints / "best.pt", payload)
                tracker.log_scalars(step, row)  # after the checkpoint: a resume never logs a step twice
                run.write_status("running" if epoch + 1 < epochs else "done", epoch=epoch + 1, epochs=epochs)
            distributed.barrier()
            if main and epoch + 1 == epochs:
                for name, text in method.final_tables().items():
                    atomic_write_text(run.sub("tables", name), text)
            remaining = (epochs - epoch - 1) * seconds
            shown = "  ".join(f"{k} {v:.4g}" for k, v in row.items() if k not in ("epoch", "step") and isinstance(v, float))
            console.print(f"epoch {epoch + 1}/{epochs}  {shown}  (~{remaining:.0f} s to go)")


def _diverged(run: RunDir, epoch: int, step: int, value: float) -> None:
    kept = run.checkpoints / "last.pt"
    if distributed.is_main():
        run.write_status("diverged", epoch=epoch, step=step)
    where = f"last good checkpoint kept: {kept}" if kept.exists() else "no epoch had finished, so no checkpoint"
    raise TrainingDiverged(f"training stopped: loss is {value} at epoch {epoch + 1}, step {step}; {where}")
