"""Run independent jobs side by side, each in its own process of one torch thread.

A study (16 depth-inversion models, the GOPC-2 stabilisers) or ``make reproduce-tables`` trains many small
models that share nothing but the CPU; on a machine with N cores, N single-threaded models at a time keep
every core busy (docs/reproduce.md). This is the ``local`` launcher of the job runner
(:class:`predvis.jobs.launchers.Local`). :func:`run_jobs` runs ``fn(item)`` for every item, in order when ``workers <= 1`` (in
this process), else in ``workers`` spawned processes, and hands each result back to ``on_result`` in the
parent as soon as it arrives, so the caller can rewrite its table after every model.

A :class:`~predvis.errors.PredvisError` raised by one job does not stop the others: it comes back as a
:class:`Failed` result (with the error's class name, so a caller can tell a diverged training from other
errors). Any other exception is a bug: no new job starts, and it is re-raised in the parent once the running
jobs are done. One process per job (not a pool) so that an interrupt stops exactly the running jobs and
nothing queued behind them. Progress bars are off in the workers (two bars on one terminal garble each
other).
"""
from __future__ import annotations

import contextlib
import multiprocessing
import os
import signal
import traceback
from dataclasses import dataclass
from multiprocessing.connection import wait
from typing import Any, Callable, Iterable

NO_PROGRESS = "PREDVIS_NO_PROGRESS"
STOP_SECONDS = 120   # after an interrupt, how long a job may take to save its checkpoint and stop


@dataclass
class Failed:
    """A job that stopped with a PredvisError (one line, as the CLI would print it), was interrupted
    (``kind`` KeyboardInterrupt) or whose process died."""
    item: Any
    kind: str      # the error's class name, e.g. "TrainingDiverged"
    message: str


@dataclass
class _Crash:
    item: Any
    text: str      # the worker's traceback


def _call(fn: Callable[[Any], Any], item: Any) -> Any:
    from predvis.errors import PredvisError

    try:
        return fn(item)
    except PredvisError as err:
        return Failed(item, type(err).__name__, str(err))


def _interrupt(signum, frame):
    raise KeyboardInterrupt


def _worker(fn: Callable[[Any], Any], item: Any, threads: int, conn) -> None:
    """One job in a spawned process: one torch thread, no progress bars; the result goes back on ``conn``.
    SIGINT and SIGTERM both stop it as Ctrl-C would (a process started in the background inherits an
    ignored SIGINT, and a cluster's scheduler sends SIGTERM before it kills a job)."""
    signal.signal(signal.SIGINT, signal.default_int_handler)
    signal.signal(signal.SIGTERM, _interrupt)
    os.environ[NO_PROGRESS] = "1"
    os.environ["OMP_NUM_THREADS"] = str(threads)
    try:
        import torch

        torch.set_num_threads(threads)
        result = _call(fn, item)
    except KeyboardInterrupt:
        result = Failed(item, "KeyboardInterrupt", "interrupted")
    except Exception:
        result = _Crash(item, traceback.format_exc())
    conn.send(result)
    conn.close()


def run_jobs(fn: Callable[[Any], Any], items: Iterable[Any], workers: int = 1,
             on_result: Callable[[Any, Any], None] | None = None, threads: int = 1) -> list[Any]:
    """``[fn(item) for item in items]`` (a :class:`Failed` where a job raised a PredvisError), with up to
    ``workers`` jobs at a time, each in its own spawned process of ``threads`` torch threads. ``fn`` must
    be a module-level function (or a ``functools.partial`` of one) and the items picklable.
    ``on_result(item, result)`` runs in this process after each job, in the order they finish.

    Ctrl-C (or any exception here) starts no new job, passes the interrupt on to the running ones (a
    training saves its checkpoint and marks its run interrupted, as on the command line), waits for them
    and re-raises; :func:`sigterm_as_interrupt` makes a SIGTERM to this process do the same. A job that
    crashed with another exception is re-raised here, with its traceback, once the running jobs are done."""
    items = list(items)
    results: list[Any] = [None] * len(items)
    if workers <= 1 or len(items) <= 1:
        for i, item in enumerate(items):
            results[i] = _call(fn, item)
            if on_result is not None:
                on_result(item, results[i])
        return results
    ctx = multiprocessing.get_context("spawn")
    running: dict[int, tuple[Any, Any]] = {}   # index -> (process, receiving end)
    crashes: list[_Crash] = []
    started = 0
    try:
        while started < len(items) or running:
            while started < len(items) and len(running) < workers and not crashes:
                recv, send = ctx.Pipe(duplex=False)
                proc = ctx.Process(target=_worker, args=(fn, items[started], threads, send))
                proc.start()
                send.close()
                running[started] = (proc, recv)
                started += 1
            if not running:
                break
            wait([conn for _, conn in running.values()] + [proc.sentinel for proc, _ in running.values()])
            for i, (proc, conn) in list(running.items()):
                if not (conn.poll() or not proc.is_alive()):
                    continue
                try:
                    result = conn.recv()
                except EOFError:   # died without a word: killed (out of memory?) or a segfault
                    proc.join()    # (a job may return None, so the failure is made here, with the exit code)
                    result = Failed(items[i], "died", f"the worker process died (exit code {proc.exitcode})")
                proc.join()
                del running[i]
                if isinstance(result, _Crash):
                    crashes.append(result)
                    result = Failed(items[i], "crash", result.text.strip().splitlines()[-1])
                results[i] = result
                if on_result is not None:
                    on_result(items[i], result)
    except BaseException:
        _stop(running)
        raise
    if crashes:
        raise RuntimeError(f"a job crashed ({crashes[0].item!r}):\n{crashes[0].text}")
    return results


def _stop(running: dict[int, tuple[Any, Any]]) -> None:
    """Interrupt the running jobs (as Ctrl-C would), give them time to save, then end them."""
    for proc, _ in running.values():
        if proc.is_alive():
            os.kill(proc.pid, signal.SIGTERM)   # the workers take it as Ctrl-C
    for proc, _ in running.values():
        proc.join(STOP_SECONDS)
        if proc.is_alive():
            proc.kill()
            proc.join()


@contextlib.contextmanager
def sigterm_as_interrupt():
    """Within the block, SIGTERM (``kill``, a cluster scheduler's time limit) raises KeyboardInterrupt, so a
    long collector stops as on Ctrl-C: running jobs interrupted and resumable, the time logged."""
    before = signal.signal(signal.SIGTERM, _interrupt)
    try:
        yield
    finally:
        signal.signal(signal.SIGTERM, before)
