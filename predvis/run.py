"""Run directories: layout, atomic writes, environment capture, checkpoints.

A run lives in ``<root>/<experiment>/<YYYYmmdd-HHMMSS>_<id>/``::

    config.yaml      merged config (defaults < file < profile < overrides)
    overrides.yaml   the KEY=VALUE overrides as given
    cmd.txt          the command line
    env.json         predvis / python / torch / CUDA versions, device, git commit and dirty flag, seed, world size
    status.json      running | done | diverged, with the last finished epoch
    metrics/         train.csv (one row per epoch), eval.csv ...
    checkpoints/     last.pt, best.pt (model, optimiser, scheduler, scaler, RNG states, epoch, step)
    plots/           loss.png (training curves)
    frames/ gifs/ tables/   made by the first file written there

Every file is written atomically (temp file in the same folder, then ``os.replace``). A run
directory is created with an exclusive ``mkdir`` and is never overwritten or deleted.
"""
from __future__ import annotations

import contextlib
import csv
import io
import json
import os
import platform
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterable

import torch

from predvis.allocator import allocator_state
from predvis.errors import PredvisError, RunError, interrupted

SUBDIRS = ("metrics", "checkpoints")  # frames/ gifs/ tables/ plots/ appear with their first file
DEFAULT_ROOT = Path("runs")
STAMP_FORMAT = "%Y-%m-%dT%H:%M:%S%z"   # env.json's "created"


# --------------------------------------------------------------------------- atomic writes

def current_umask() -> int:
    """The process umask, read without changing it where Linux tells it (/proc), else set and restored."""
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write ``data`` to a temporary file beside ``path``, then rename it over ``path``. The file gets the
    permissions a plain ``open`` would give (0666 less the umask; ``mkstemp`` alone makes it 0600)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        if hasattr(os, "fchmod"):  # POSIX
            os.fchmod(fd, 0o666 & ~current_umask())
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode())


def atomic_write_json(path: Path, data: Any) -> None:
    atomic_write_text(path, json.dumps(data, indent=2, sort_keys=True, default=str) + "\n")


def atomic_torch_save(path: Path, obj: Any) -> None:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    atomic_write_bytes(path, buffer.getvalue())


def csv_text(rows: list[dict]) -> str:
    """``rows`` as CSV text: the union of their keys in first-seen order, floats to 8 significant
    digits, missing cells empty ("" for no rows)."""
    buffer = io.StringIO()
    if rows:
        keys: list[str] = []
        for row in rows:
            keys.extend(k for k in row if k not in keys)
        writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
        writer.writeheader()
        for row in rows:
            writer.writerow({k: _fmt(row.get(k, "")) for k in keys})
    return buffer.getvalue()


def write_csv(path: Path, rows: list[dict]) -> None:
    """Write ``rows`` (dicts, keys in order) atomically as CSV (see :func:`csv_text`)."""
    atomic_write_text(path, csv_text(rows))


def _fmt(value: Any) -> Any:
    if isinstance(value, float):
        return f"{value:.8g}"
    return value


def read_csv(path: Path) -> list[dict]:
    if not Path(path).exists():
        return []
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


# --------------------------------------------------------------------------- environment

# what predvis itself writes into its repository (make reproduce-tables, make bench): changes there do not
# make the source tree dirty, or a collector would mark its own later runs +dirty by writing its tables
OUTPUT_PATHS = ("tables", "bench/results.md")


def git_state(root: Path | None = None) -> dict:
    """Commit and dirty flag (tracked files changed, outside :data:`OUTPUT_PATHS`) of the predvis source
    tree (or of the git tree at ``root``), or nulls outside git."""
    root = Path(__file__).resolve().parent.parent if root is None else Path(root)
    try:
        commit = subprocess.run(
            ["git", "rev-parse", "HEAD"], cwd=root, capture_output=True, text=True, timeout=10
        )
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
             *(f":(exclude){p}" for p in OUTPUT_PATHS)], cwd=root,
            capture_output=True, text=True, timeout=10,
        )
    except (OSError, subprocess.SubprocessError):
        return {"commit": None, "dirty": None}
    if commit.returncode != 0:
        return {"commit": None, "dirty": None}
    return {"commit": commit.stdout.strip(), "dirty": bool(dirty.stdout.strip())}


def environment(device: torch.device, seed: int, world_size: int = 1, extra: dict | None = None) -> dict:
    from predvis import __version__

    env = {
        "predvis": __version__,
        "python": platform.python_version(),
        "platform": platform.platform(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "cuda_available": torch.cuda.is_available(),
        "device": str(device),
        "device_name": torch.cuda.get_device_name(device) if device.type == "cuda" else platform.processor() or "cpu",
        "threads": torch.get_num_threads(),
        "host_allocator": allocator_state(),
        "seed": seed,
        "world_size": world_size,
        "git": git_state(),
        "created": time.strftime(STAMP_FORMAT),
    }
    env.update(extra or {})
    return env


# --------------------------------------------------------------------------- run directory

@dataclass
class RunDir:
    """A run directory on disk. Create new ones with :func:`create_run_dir`."""

    path: Path

    def __post_init__(self) -> None:
        self.path = Path(self.path)

    def sub(self, *parts: str) -> Path:
        return self.path.joinpath(*parts)

    @property
    def checkpoints(self) -> Path:
        return self.path / "checkpoints"

    def write_status(self, state: str, **info: Any) -> None:
        # pid and host: a collector can tell a run still training in another process from an interrupted one
        atomic_write_json(self.path / "status.json", {"state": state, **info, "pid": os.getpid(), "host": platform.node()})

    def status(self) -> dict:
        try:
            return json.loads((self.path / "status.json").read_text())
        except (OSError, ValueError):
            return {}

    def new_subdir(self, kind: str) -> Path:
        """A fresh ``<run>/<kind>/<stamp>_<id>/`` folder, never an existing one."""
        return create_unique_dir(self.path / kind)

    def staged_subdir(self, kind: str) -> "StagedDir":
        """A new ``<run>/<kind>/<stamp>_<id>/`` written complete or not at all (see :class:`StagedDir`)."""
        return StagedDir(self.path / kind)


class StagedDir:
    """A new folder ``parent/<stamp>_<id>/`` assembled under ``parent/.<stamp>_<id>.partial`` and renamed
    into place when the ``with`` block ends normally; ``path`` is where to write, ``final`` the folder
    after the block. On any exception the staging folder is removed (and the kind folder, if this made
    it and it is empty); Ctrl-C prints ``interrupted: <what> discarded`` and goes on as
    :class:`predvis.errors.Interrupted`, so no half-written output remains."""

    def __init__(self, parent: Path, what: str = "probe folder"):
        self.parent = Path(parent)
        self.what = what          # named in the interrupt message
        self.path: Path | None = None
        self.final: Path | None = None

    def __enter__(self) -> "StagedDir":
        check_writable(self.parent, "output folder")
        self._made_parent = not self.parent.exists()
        self.parent.mkdir(parents=True, exist_ok=True)
        for _ in range(100):
            name = f"{_stamp()}_{secrets.token_hex(3)}"
            staging = self.parent / f".{name}.partial"
            if (self.parent / name).exists():
                continue
            try:
                staging.mkdir()
            except FileExistsError:
                continue
            self.path = staging
            return self
        raise RunError(f"could not create a new folder under {self.parent}")

    def __exit__(self, exc_type, exc, tb) -> bool:
        assert self.path is not None
        if exc_type is None:
            name = self.path.name[1:-len(".partial")]
            for _ in range(100):
                final = self.parent / name
                if not final.exists():
                    os.rename(self.path, final)  # same folder: atomic
                    self.final = final
                    return False
                name = f"{_stamp()}_{secrets.token_hex(3)}"
            shutil.rmtree(self.path, ignore_errors=True)
            raise RunError(f"could not create a new folder under {self.parent}")
        shutil.rmtree(self.path, ignore_errors=True)
        if self._made_parent:  # the kind folder too, if this probe made it and nothing else is there
            with contextlib.suppress(OSError):
                self.parent.rmdir()
        if issubclass(exc_type, KeyboardInterrupt):
            raise interrupted(f"{self.what} discarded") from None
        return False


def check_space(path: Path, needed: int, purpose: str, flag: str) -> None:
    """One line before any work when the file system that will hold ``path`` has fewer than ``needed`` bytes
    free (the nearest existing folder above ``path`` tells which file system)."""
    probe = Path(path)
    while not probe.exists() and probe.parent != probe:
        probe = probe.parent
    try:
        free = shutil.disk_usage(probe).free
    except OSError:
        return  # a file system that cannot say: the atomic writes still never leave half a file
    if needed > free:
        raise PredvisError(f"{flag} {path}: {purpose} need about {needed / 2**20:,.1f} MiB of disk, "
                           f"only {free / 2**20:,.1f} MiB free there")


def check_writable(path: Path, what: str = "output folder") -> None:
    """One-line error, before any work, if ``path`` cannot become a writable folder: a file stands where
    it (or a folder above it) should be, or the nearest existing folder is not writable."""
    path = Path(path)
    probe = path
    while not probe.exists():
        if probe.is_symlink():  # a dangling link
            raise PredvisError(f"{what} {path}: {probe} is a broken link")
        if probe.parent == probe:
            break
        probe = probe.parent
    if probe.exists() and not probe.is_dir():
        raise PredvisError(f"{what} {path}: {probe} is a file, not a folder")
    if probe.exists() and not os.access(probe, os.W_OK | os.X_OK):
        raise PredvisError(f"{what} {path}: {probe} is not writable")


def _stamp() -> str:
    return time.strftime("%Y%m%d-%H%M%S")


def create_unique_dir(parent: Path) -> Path:
    """Create ``parent/<YYYYmmdd-HHMMSS>_<id>`` with an exclusive mkdir and return it."""
    parent.mkdir(parents=True, exist_ok=True)
    for _ in range(100):
        path = parent / f"{_stamp()}_{secrets.token_hex(3)}"
        try:
            path.mkdir()
        except FileExistsError:
            continue
        return path
    raise RunError(f"could not create a new folder under {parent}")


def create_run_dir(root: Path, experiment: str, files: dict[str, str]) -> RunDir:
    """Make a new run directory ``<root>/<experiment>/<stamp>_<id>/`` holding ``files`` (name -> text),
    complete or not at all: it is assembled in a staging folder and renamed into place
    (:class:`StagedDir`), so a reader never sees a run without its config."""
    with StagedDir(Path(root) / experiment, "run folder") as staged:
        for sub in SUBDIRS:
            (staged.path / sub).mkdir()
        for name, text in files.items():
            atomic_write_text(staged.path / name, text)
    return RunDir(staged.final)


def command_line() -> str:
    import shlex

    prog = Path(sys.argv[0]).name if sys.argv else "predvis"
    if prog in ("__main__.py", "-m"):
        prog = "python -m predvis"
    return " ".join([prog] + [shlex.quote(a) for a in sys.argv[1:]]) + "\n"


def iter_runs(root: Path, experiment: str | None = None) -> Iterable[Path]:
    root = Path(root)
    parents = [root / experiment] if experiment else [p for p in root.glob("*") if p.is_dir()]
    for parent in parents:
        for run in parent.glob("*_*"):
            if not run.name.startswith(".") and run.is_dir() and (run / "config.yaml").exists():  # not staging
                yield run


# settings that change how fast a run trains, not what it trains (compared apart by finished_run_like)
RUNTIME_KEYS: tuple[tuple[str, str], ...] = (("train", "threads"), ("train", "logger"))  # how, not what, it trains


def config_apart_from(config: dict, ignore: tuple[tuple[str, str], ...] = RUNTIME_KEYS) -> dict:
    """``config`` (a ``cfg.to_dict()`` or a saved ``config.yaml``) in its saved form without the ``ignore``
    keys: two runs of the same model compare equal."""
    from predvis.config import saved_form

    cfg = saved_form(config)
    for section, key in ignore:
        if isinstance(cfg.get(section), dict):
            cfg[section].pop(key, None)
    return cfg


def newest_run(root: Path, method: str | None = None) -> Path:
    """The most recently created finished-or-running run under ``root`` (optionally of a method)."""
    import yaml

    candidates = []
    for run in iter_runs(root):
        if method is not None:
            try:
                cfg = yaml.safe_load((run / "config.yaml").read_text())
            except (OSError, yaml.YAMLError):
                continue
            if not isinstance(cfg, dict) or cfg.get("method") != method:
                continue
        if not (run / "checkpoints" / "last.pt").exists():
            continue
        candidates.append(run)
    if not candidates:
        what = f"{method} " if method else ""
        raise RunError(f"no trained {what}run found under {root}/ (train one first, or name the run)")
    return max(candidates, key=lambda p: (p.name, p.stat().st_mtime))
