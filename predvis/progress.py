"""Progress bars and info lines on stderr (stdout stays clean for the paths that commands print).

Every command shares :data:`console`; ``predvis --quiet`` (:func:`set_quiet`) silences it and the bars,
so only the result path and errors (and warnings) remain.
"""
from __future__ import annotations

import contextlib
import os
from typing import Callable, Iterable, Iterator, TypeVar

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn, track

console = Console(stderr=True)
T = TypeVar("T")
_quiet = False


def set_quiet(quiet: bool) -> None:
    """Silence (or restore) info lines and progress bars for the rest of the command."""
    global _quiet
    _quiet = bool(quiet)
    console.quiet = _quiet


def is_quiet() -> bool:
    return _quiet


def info(message: str) -> None:
    """One info line on stderr, unless ``--quiet``."""
    console.print(message, markup=False, highlight=False, soft_wrap=True)


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterable[T]:
    """Iterate ``items`` under a transient rich progress bar (none under ``--quiet``, and none in the worker
    processes of :mod:`predvis.parallel`, which set ``PREDVIS_NO_PROGRESS``)."""
    if not enabled():
        return items
    return track(items, description=description, total=total, console=console, transient=True)


def enabled() -> bool:
    """False under ``--quiet`` and in the worker processes of :mod:`predvis.parallel` (``PREDVIS_NO_PROGRESS``
    set): bars of several processes on one terminal garble each other."""
    return not _quiet and not os.environ.get("PREDVIS_NO_PROGRESS")


@contextlib.contextmanager
def bar(description: str, total: int) -> Iterator[Callable[[int], None]]:
    """A transient progress bar of ``total`` units for a loop that is not one iterable (nested loops);
    yields ``advance(n=1)``. No bar under ``--quiet`` or in worker processes (``advance`` does nothing)."""
    if not enabled():
        yield lambda n=1: None
        return
    with Progress(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(),
                  TimeRemainingColumn(), console=console, transient=True) as shown:
        task = shown.add_task(description, total=total)
        yield lambda n=1: shown.update(task, advance=n)
