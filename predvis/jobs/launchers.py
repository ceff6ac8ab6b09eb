"""Where the jobs run: :class:`Local` (processes on this machine) or :class:`Slurm` (submitit).

A launcher runs ``fn(item)`` for every item and hands each result to ``on_result(item, result)`` in this
process as it arrives; a job that raised a PredvisError comes back as a :class:`~predvis.parallel.Failed`.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Callable

from predvis.errors import PredvisError
from predvis.parallel import Failed, run_jobs

LAUNCHERS = ("local", "slurm")
POLL_SECONDS = 2.0


@dataclass(frozen=True)
class Local:
    """``workers`` jobs at a time, each in its own spawned process of ``threads`` torch threads (in this
    process, one after another, when ``workers`` is 1)."""

    workers: int = 1
    threads: int = 1

    def one_at_a_time(self) -> "Local":
        return replace(self, workers=1)

    def argv(self) -> list[str]:
        """The options that give this launcher to a nested command (a study run by the collector)."""
        return ["--workers", str(self.workers)]

    def run(self, fn: Callable[[Any], Any], items: list[Any], on_result: Callable[[Any, Any], None]) -> None:
        run_jobs(fn, items, self.workers, on_result, threads=self.threads)


def _in_job(fn: Callable[[Any], Any], item: Any, threads: int) -> Any:
    """One job inside its SLURM allocation: ``threads`` torch threads, no progress bars."""
    import os

    from predvis.parallel import NO_PROGRESS, _call

    os.environ[NO_PROGRESS] = "1"
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)
    return _call(fn, item)


def minutes(text: str) -> int:
    """SLURM's time format (MM, HH:MM:SS, D-HH:MM:SS, D-HH) in whole minutes."""
    m = re.fullmatch(r"(?:(\d+)-)?(\d+)(?::(\d+))?(?::(\d+))?", text.strip())
    if not m:
        raise PredvisError(f"--slurm-time: expected MINUTES, HH:MM:SS or D-HH:MM:SS, got '{text}'")
    days, a, b, c = (int(g) if g else None for g in m.groups())
    if days is not None:
        hours, mins, secs = a, b or 0, c or 0
    elif c is not None:
        hours, mins, secs = a, b, c
    elif b is not None:   # MM:SS as SLURM reads it
        hours, mins, secs = 0, a, b
    else:
        hours, mins, secs = 0, a, 0
    total = (days or 0) * 1440 + hours * 60 + mins + (1 if secs else 0)
    if total < 1:
        raise PredvisError(f"--slurm-time: must be at least one minute, got '{text}'")
    return total


@dataclass(frozen=True)
class Slurm:
    """One SLURM job per job through submitit, at most ``workers`` queued or running at a time (the job
    array's parallelism). ``folder`` holds submitit's logs and pickles (on a file system the nodes share,
    as the run root must be). ``cluster="local"`` runs the same path with submitit's LocalExecutor (real
    subprocesses on this machine; the tests use it)."""

    folder: Path
    workers: int = 1
    partition: str = ""
    gpus: int = 0
    cpus: int = 1
    time: str = "4:00:00"
    mem_gb: int = 0
    cluster: str = "slurm"

    def one_at_a_time(self) -> "Slurm":
        return replace(self, workers=1)

    def argv(self) -> list[str]:
        return (["--workers", str(self.workers), "--launcher", "slurm", "--slurm-gpus", str(self.gpus),
                 "--slurm-cpus", str(self.cpus), "--slurm-time", self.time, "--slurm-mem", str(self.mem_gb)]
                + (["--slurm-partition", self.partition] if self.partition else []))

    def executor(self):
        try:
            import submitit
        except ImportError:
            raise PredvisError("--launcher slurm needs submitit: pip install 'predvis[slurm]'") from None
        if self.cluster == "local":
            ex = submitit.LocalExecutor(folder=str(self.folder / "%j"))
            ex.update_parameters(timeout_min=minutes(self.time))
            return ex
        ex = submitit.AutoExecutor(folder=str(self.folder / "%j"), cluster="slurm")
        params: dict[str, Any] = {"timeout_min": minutes(self.time), "cpus_per_task": self.cpus,
                                  "gpus_per_node": self.gpus, "slurm_array_parallelism": max(1, self.workers)}
        if self.partition:
            params["slurm_partition"] = self.partition
        if self.mem_gb:
            params["mem_gb"] = self.mem_gb
        ex.update_parameters(**params)
        return ex

    def run(self, fn: Callable[[Any], Any], items: list[Any], on_result: Callable[[Any, Any], None]) -> None:
        """Submit every item, then hand results back as the jobs finish. Ctrl-C (or SIGTERM) cancels the
        jobs still queued or running (a training saves its checkpoint when SLURM signals it) and re-raises."""
        if not items:
            return
        ex = self.executor()
        pending: dict[int, Any] = {}
        try:
            if self.cluster == "local":   # LocalExecutor has no array parallelism: submit in waves
                queue = list(enumerate(items))
                while queue or pending:
                    while queue and len(pending) < max(1, self.workers):
                        i, item = queue.pop(0)
                        pending[i] = ex.submit(_in_job, fn, item, self.cpus)
                    self._collect(pending, items, on_result)
            else:
                with ex.batch():
                    submitted = [ex.submit(_in_job, fn, item, self.cpus) for item in items]
                pending = dict(enumerate(submitted))
                while pending:
                    self._collect(pending, items, on_result)
        except BaseException:
            for job in pending.values():
                job.cancel(check=False)
            raise

    @staticmethod
    def _collect(pending: dict[int, Any], items: list[Any], on_result) -> None:
        finished = [i for i, job in pending.items() if job.done()]
        if not finished:
            time.sleep(POLL_SECONDS)
            return
        for i in finished:
            job = pending.pop(i)
            try:
                result = job.result()
            except Exception as err:   # the job died, timed out or raised: one line, as a Failed
                result = Failed(items[i], "died", f"SLURM job {job.job_id}: {_last_line(str(err))} "
                                                  f"(log: {job.paths.stderr})")
            on_result(items[i], result)


def _last_line(text: str) -> str:
    """The last line of the traceback in submitit's error text (before its 'check full logs' lines)."""
    trace = text.split("You can check full logs")[0]
    lines = [ln.strip() for ln in trace.splitlines() if ln.strip() and not set(ln.strip()) <= set("-")]
    return lines[-1] if lines else "failed"


def launcher(name: str, workers: int = 1, threads: int = 1, folder: Path | None = None, partition: str = "",
             gpus: int = 0, cpus: int = 1, time_limit: str = "4:00:00", mem_gb: int = 0):
    """The launcher a command's options ask for (bad values: PredvisError)."""
    from predvis.config import suggest

    if name not in LAUNCHERS:
        raise PredvisError(f"--launcher: must be local or slurm, got '{name}'{suggest(name, list(LAUNCHERS))}")
    if workers < 1:
        raise PredvisError(f"--workers: must be >= 1, got {workers}")
    if name == "local":
        return Local(workers, threads)
    for flag, value in (("--slurm-gpus", gpus), ("--slurm-mem", mem_gb)):
        if value < 0:
            raise PredvisError(f"{flag}: must be >= 0, got {value}")
    if cpus < 1:
        raise PredvisError(f"--slurm-cpus: must be >= 1, got {cpus}")
    minutes(time_limit)
    return Slurm(Path(folder or ".submitit").resolve(), workers, partition, gpus, cpus, time_limit, mem_gb)
