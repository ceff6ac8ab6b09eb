"""Plan, claim, run, record and resume a list of jobs through a launcher, under one progress bar."""
from __future__ import annotations

import contextlib
import json
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from predvis.jobs import claim as claims
from predvis.parallel import Failed


@dataclass
class Job:
    """One unit of work: ``fn(item)`` (``fn`` module-level, ``item`` picklable), run in a process of its own.

    ``record``: where the JSON of ``fn``'s result goes when it finishes (written atomically by the runner);
    a job whose record exists is done. ``done``: another done-check, for jobs whose outputs say themselves
    whether they finished (e.g. a run directory's ``cell-done.json``). ``claim``: the lock file held while the
    job runs (pid and host of this runner), so two runners on one folder never run the same job."""

    name: str
    fn: Callable[[Any], Any]
    item: Any
    record: Path | None = None
    claim: Path | None = None
    done: Callable[[], bool] | None = field(default=None, repr=False)

    def is_done(self) -> bool:
        if self.record is not None and Path(self.record).exists():
            return True
        return bool(self.done is not None and self.done())


@dataclass
class Outcome:
    job: Job
    result: Any = None
    state: str = "done"      # done | failed | skipped (done before) | claimed (another live runner has it)

    @property
    def message(self) -> str:
        return self.result.message if isinstance(self.result, Failed) else ""


def plan(jobs: list[Job]) -> tuple[list[Job], list[Job]]:
    """(to run, done before)."""
    todo, done = [], []
    for job in jobs:
        (done if job.is_done() else todo).append(job)
    return todo, done


def run(jobs: list[Job], launcher, on_done: Callable[[Outcome], None] | None = None,
        title: str = "jobs") -> list[Outcome]:
    """Run the jobs that are not done through ``launcher``; ``on_done(outcome)`` runs in this process after
    each one (in the order they finish). Jobs another live runner has claimed are left to it. A result
    that is not JSON (or None) writes no record. Interrupts (Ctrl-C, SIGTERM) reach the running jobs, give
    back this runner's claims and re-raise; the next run resumes."""
    todo, done = plan(jobs)
    outcomes = [Outcome(job, None, "skipped") for job in done]
    mine: list[Job] = []
    for job in todo:
        if job.claim is None or claims.take(job.claim):
            mine.append(job)
        else:
            outcomes.append(Outcome(job, None, "claimed"))
    by_id = {id(job): job for job in mine}
    if jobs:
        from predvis.progress import console

        console.print(f"{title}: {len(mine)} of {len(jobs)} jobs to run, {max(1, launcher.workers)} at a time",
                      markup=False, highlight=False)
    if _OVERALL:   # a run inside an overall bar (a study run by the collector): its jobs join that bar
        bar = _OVERALL[-1]
        bar.grow(len(todo))
        for _ in range(len(todo) - len(mine)):
            bar.advance("", False, quiet=True)   # claimed by another runner: not this bar's to wait for
        shown = contextlib.nullcontext()
    else:
        bar = shown = _Bar(title, len(jobs), len(done))

    def finished(item: tuple[int, Any], result: Any) -> None:
        job = by_id[item[0]]
        failed = isinstance(result, Failed)
        if not failed and job.record is not None and result is not None:
            _write_record(Path(job.record), result)
        if job.claim is not None:
            claims.release(job.claim)
        outcome = Outcome(job, result, "failed" if failed else "done")
        outcomes.append(outcome)
        bar.advance(job.name, failed)
        if on_done is not None:
            on_done(outcome)

    try:
        with shown:
            launcher.run(_Call(by_id), [(id(job), job.item) for job in mine], finished)
    finally:
        for job in mine:
            if job.claim is not None:
                claims.release(job.claim)
    return outcomes


@dataclass
class _Call:
    """``fn(item)`` of the job an (id, item) pair names; picklable when the jobs' functions are."""

    fns: dict[int, Job]

    def __post_init__(self) -> None:
        self.fns = {key: job.fn for key, job in self.fns.items()}

    def __call__(self, pair: tuple[int, Any]) -> Any:
        key, item = pair
        return self.fns[key](item)


def _write_record(path: Path, result: Any) -> None:
    from predvis.run import atomic_write_text

    try:
        text = json.dumps(result, indent=2)
    except TypeError:
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    atomic_write_text(path, text + "\n")


_OVERALL: list["_Bar"] = []


@contextlib.contextmanager
def overall(title: str, total: int):
    """One progress bar for every :func:`run` in the block (``predvis reproduce``: its training jobs and
    the models of its studies). ``total``: the jobs known now (the studies' models still to train are
    reserved here; a nested run adds only what goes beyond)."""
    bar = _Bar(title, total, 0)
    bar.reserved = total
    with bar:
        _OVERALL.append(bar)
        try:
            yield bar
        finally:
            _OVERALL.pop()


class _Bar:
    """One rich progress bar over every job (done before counted as done), with the elapsed time and an
    ETA from the jobs finished in this run; a line per finished job when bars are off."""

    def __init__(self, title: str, total: int, done: int):
        self.title, self.total, self.done, self.failed = title, total, done, 0
        self.started = time.perf_counter()
        self.progress = None
        self.task = None
        self.reserved = 0   # jobs counted in ``total`` ahead of the runs that will plan them

    def grow(self, jobs: int) -> None:
        """A nested run plans ``jobs`` to run: taken from what was reserved, the rest added to the total."""
        taken = min(jobs, self.reserved)
        self.reserved -= taken
        self.total += jobs - taken
        if self.progress is not None:
            self.progress.update(self.task, total=self.total)

    def __enter__(self):
        from predvis.progress import console, enabled

        if enabled() and (self.total > self.done or self.reserved):
            from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
                TimeRemainingColumn

            self.progress = Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                     TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                     console=console, transient=False)
            self.progress.start()
            self.task = self.progress.add_task(self.title, total=self.total, completed=self.done)
        return self

    def advance(self, name: str, failed: bool, quiet: bool = False) -> None:
        from predvis.progress import console

        self.done += 1
        self.failed += failed
        if quiet:
            if self.progress is not None:
                self.progress.update(self.task, completed=self.done)
            return
        line = (f"[{self.done}/{self.total}] {name}: {'failed' if failed else 'finished'}  "
                f"({time.perf_counter() - self.started:.0f} s so far)")
        if self.progress is not None:
            self.progress.console.print(line, markup=False, highlight=False)
            self.progress.update(self.task, completed=self.done)
        else:
            console.print(line, markup=False, highlight=False)

    def __exit__(self, *exc) -> None:
        if self.progress is not None:
            self.progress.stop()
