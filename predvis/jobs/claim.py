"""Lock files that name their holder (pid and host), so a lock of a process that died is taken over.

A lock held on another host cannot be checked from here and counts as live (remove the file if its
process is gone).
"""
from __future__ import annotations

import contextlib
import json
import os
import socket
from pathlib import Path

from predvis.errors import PredvisError


def holder(path: Path) -> dict | None:
    """``{"pid": ..., "host": ...}`` of the lock at ``path``, or None when there is none. A file of a
    bare pid (written before locks named their host) is read as this host's."""
    try:
        text = Path(path).read_text().strip()
    except OSError:
        return None
    try:
        held = json.loads(text or "0")
    except ValueError:
        return {"pid": 0, "host": socket.gethostname()}
    if isinstance(held, int):
        return {"pid": held, "host": socket.gethostname()}
    return held if isinstance(held, dict) else {"pid": 0, "host": socket.gethostname()}


def alive(held: dict) -> bool:
    """Whether the holder may still be running (always True for another host's)."""
    if held.get("host") != socket.gethostname():
        return True
    pid = int(held.get("pid") or 0)
    if pid == os.getpid():
        return True
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def take(path: Path) -> bool:
    """Create the lock for this process; False if a live process holds it (a dead holder's is taken over)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    for _ in range(2):
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_WRONLY)
        except FileExistsError:
            held = holder(path)
            if held is not None and alive(held):
                return False
            path.unlink(missing_ok=True)
            continue
        with os.fdopen(fd, "w") as handle:
            handle.write(json.dumps({"pid": os.getpid(), "host": socket.gethostname()}))
        return True
    return False


def release(path: Path) -> None:
    """Remove the lock if this process holds it."""
    held = holder(path)
    if held is not None and int(held.get("pid") or 0) == os.getpid() and held.get("host") == socket.gethostname():
        Path(path).unlink(missing_ok=True)


@contextlib.contextmanager
def locked(path: Path, who: str):
    """Hold the lock at ``path`` for the block; a PredvisError naming the holder when ``who`` (e.g.
    'another collector') has it."""
    if not take(path):
        held = holder(path) or {}
        raise PredvisError(f"{who} (pid {held.get('pid')} on {held.get('host')}) is working on {Path(path).parent}; "
                           f"wait for it, or remove {path} if it is gone")
    try:
        yield
    finally:
        release(path)
