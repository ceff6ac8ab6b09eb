"""Run independent jobs side by side in worker processes, one torch thread each.

A study (16 depth-inversion models, the GOPC-2 stabilisers) or ``make reproduce-tables`` trains many small
models that do not share anything but the CPU. Small models use one core badly, so on a machine with N
cores N single-threaded models at a time finish sooner than one model at a time with N threads (measured in
docs/reproduce.md). :func:`run_jobs` runs ``fn(item)`` for every item, in order when ``workers <= 1`` (in
this process), else in ``workers`` spawned processes, and hands each result back to ``on_result`` in the
parent as soon as it arrives, so the caller can rewrite its table after every model.

A :class:`~predvis.errors.PredvisError` raised by one job does not stop the others: it comes back as a
:class:`Failed` result (with the error's class name, so a caller can tell a diverged training from other
errors). Any other exception is a bug and is re-raised in the parent once the running jobs are done.
Progress bars are switched off in the workers (two transient bars on one terminal garble each other).
"""
from __future__ import annotations

import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait
from dataclasses import dataclass
from typing import Any, Callable, Iterable

NO_PROGRESS = "PREDVIS_NO_PROGRESS"


@dataclass
class Failed:
    """A job that stopped with a PredvisError (one line, as the CLI would print it)."""
    item: Any
    kind: str      # the error's class name, e.g. "TrainingDiverged"
    message: str


def _init_worker(threads: int) -> None:
    os.environ[NO_PROGRESS] = "1"
    os.environ["OMP_NUM_THREADS"] = str(threads)
    import torch

    torch.set_num_threads(threads)


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    from predvis.errors import PredvisError

    try:
        return fn(item)
    except PredvisError as err:
        return Failed(item, type(err).__name__, str(err))


def run_jobs(fn: Callable[[Any], Any], items: Iterable[Any], workers: int = 1,
             on_result: Callable[[Any, Any], None] | None = None, threads: int = 1) -> list[Any]:
    """``[fn(item) for item in items]`` (a :class:`Failed` where a job raised a PredvisError), with up to
    ``workers`` jobs at a time in spawned processes of ``threads`` torch threads each. ``fn`` must be a
    module-level function and the items picklable. ``on_result(item, result)`` runs in this process after
    each job, in the order they finish."""
    items = list(items)
    results: list[Any] = [None] * len(items)
    if workers <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            results[i] = _call(fn, item)
            if on_result is not None:
                on_result(item, results[i])
        return results
    ctx = multiprocessing.get_context("spawn")
    crash: BaseException | None = None
    with ProcessPoolExecutor(max_workers=min(workers, len(items)), mp_context=ctx,
                             initializer=_init_worker, initargs=(threads,)) as pool:
        pending: dict[Future, int] = {pool.submit(_call, fn, item): i for i, item in enumerate(items)}
        try:
            while pending:
                done, _ = wait(pending, return_when=FIRST_COMPLETED)
                for future in done:
                    i = pending.pop(future)
                    try:
                        results[i] = future.result()
                    except Exception as err:   # a bug in the job, or a worker killed (out of memory)
                        crash = crash or err
                        results[i] = Failed(items[i], type(err).__name__, f"{type(err).__name__}: {err}")
                    if on_result is not None:
                        on_result(items[i], results[i])
        except BaseException:
            for future in pending:
                future.cancel()
            raise
    if crash is not None and not _is_broken_pool(crash):
        raise crash
    return results


def _is_broken_pool(err: BaseException) -> bool:
    from concurrent.futures.process import BrokenProcessPool

    return isinstance(err, BrokenProcessPool)
