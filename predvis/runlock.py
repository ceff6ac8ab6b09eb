"""One writer per run: ``<run>/.lock`` names the process that trains into the run.

The lock file holds ``{"pid", "host", "since", "command"}`` and is created complete or not at all (its
text is written to a temporary file, then hard-linked to ``.lock``, which fails if ``.lock`` exists: the
same exclusive creation as ``O_EXCL``). A lock whose holder is a dead process on this host is stale and
taken over; a live holder, or one on another host, makes a second writer stop with one line naming it.
"""
from __future__ import annotations

import json
import os
import platform
import secrets
import time
from pathlib import Path

from predvis.errors import RunError

LOCK_NAME = ".lock"


def lock_text() -> str:
    """The lock file's text for this process."""
    from predvis.run import command_line

    return json.dumps({"pid": os.getpid(), "host": platform.node(),
                       "since": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
                       "command": command_line().strip()}, sort_keys=True) + "\n"


def holder(path: Path) -> dict:
    """What the lock file at ``path`` says ({} when it cannot be read)."""
    try:
        data = json.loads(Path(path).read_text())
    except (OSError, ValueError):
        return {}
    return data if isinstance(data, dict) else {}


def alive(pid: int) -> bool:
    """Whether a process ``pid`` exists on this host."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    return True


def is_stale(info: dict) -> bool:
    """A lock of a dead process on this host (a lock from another host is never judged from here)."""
    pid = info.get("pid")
    return info.get("host") == platform.node() and isinstance(pid, int) and pid > 0 and not alive(pid)


class RunLock:
    """``<run>/.lock`` held by this process; :meth:`release` removes it if it is still ours.

    Use :func:`acquire` for an existing run, or :func:`adopt` for a run created with the lock among its files.
    """

    def __init__(self, run: Path):
        self.path = Path(run) / LOCK_NAME

    def release(self) -> None:
        info = holder(self.path)
        if info.get("pid") == os.getpid() and info.get("host") == platform.node():
            self.path.unlink(missing_ok=True)

    def __enter__(self) -> "RunLock":
        return self

    def __exit__(self, *exc) -> bool:
        self.release()
        return False


def adopt(run: Path) -> RunLock:
    """The lock of a run this process has just created with :func:`lock_text` as its ``.lock``."""
    return RunLock(run)


def acquire(run: Path) -> RunLock:
    """Take ``<run>/.lock``; a live holder gives one line naming it (pid, host, since)."""
    lock = RunLock(run)
    for _ in range(20):
        tmp = lock.path.with_name(f"{LOCK_NAME}.{os.getpid()}.{secrets.token_hex(3)}.tmp")
        tmp.write_text(lock_text())
        try:
            os.link(tmp, lock.path)  # exclusive: fails if .lock exists
            return lock
        except FileExistsError:
            pass
        finally:
            tmp.unlink(missing_ok=True)
        info = holder(lock.path)
        if not info and lock.path.exists():
            raise RunError(f"run {run} is locked by {lock.path}, which cannot be read; if no predvis process "
                           f"writes into this run, delete {lock.path}")
        if info and not is_stale(info):
            raise RunError(f"run {run} is in use by pid {info.get('pid')} on {info.get('host')} since "
                           f"{info.get('since')} ({lock.path}); wait for it to finish, or stop it")
        # stale: move it aside under a unique name (only one taker wins the rename), then try again
        try:
            os.rename(lock.path, lock.path.with_name(f"{LOCK_NAME}.stale.{secrets.token_hex(3)}"))
        except FileNotFoundError:
            continue
        for old in Path(run).glob(f"{LOCK_NAME}.stale.*"):
            old.unlink(missing_ok=True)
    raise RunError(f"could not take the lock {lock.path}")
