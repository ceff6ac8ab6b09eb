"""Progress bars on stderr (stdout stays clean for the paths that commands print)."""
from __future__ import annotations

from typing import Iterable, TypeVar

from rich.console import Console
from rich.progress import track

console = Console(stderr=True)
T = TypeVar("T")


def progress(items: Iterable[T], description: str, total: int | None = None) -> Iterable[T]:
    """Iterate ``items`` under a transient rich progress bar."""
    return track(items, description=description, total=total, console=console, transient=True)
