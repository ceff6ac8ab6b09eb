"""Progress bars on stderr (stdout stays clean for the paths that commands print)."""
from __future__ import annotations

import os
from typing import Iterable, TypeVar

from rich.console import Console
from rich.progress import track

console = Console(stderr=True)
T = TypeVar("T")


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterable[T]:
    """Iterate ``items`` under a transient rich progress bar (none in the worker processes of
    :mod:`predvis.parallel`, which set ``PREDVIS_NO_PROGRESS``)."""
    if not enabled():
        return items
    return track(items, description=description, total=total, console=console, transient=True)


def enabled() -> bool:
    """False in the worker processes of :mod:`predvis.parallel` (``PREDVIS_NO_PROGRESS`` set): bars of
    several processes on one terminal garble each other."""
    return not os.environ.get("PREDVIS_NO_PROGRESS")
