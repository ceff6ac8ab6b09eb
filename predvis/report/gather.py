"""What a report shows, read from disk: runs, their probe outputs, their files.

A *run* is a folder with a ``config.yaml`` (train, sleep, deepdream and compare outputs). Its probe
outputs are the folders ``<run>/<kind>/<YYYYmmdd-HHMMSS>_<id>/`` (predict, dream, lesion, occlude,
...). A folder of runs is searched for runs (not below a run). A *tables folder* holds markdown
tables and no runs (``tables/<profile>/`` of ``make reproduce-tables``).
"""
from __future__ import annotations

import json
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from predvis.errors import PredvisError

STAMPED = re.compile(r"\d{8}-\d{6}_[0-9a-f]+")
RUN_PARTS = {"metrics", "checkpoints", "frames", "gifs", "tables", "plots"}
IMAGE_SUFFIXES = (".png", ".gif", ".jpg", ".jpeg")
IMAGE_ORDER = ("plots", "gifs", "frames")   # image folders in the order a reader wants them
# settings files a run or probe output may hold besides config.yaml, shown with it
SETTINGS_FILES = ("overrides.yaml", "sleep.yaml", "study.json")


@dataclass
class Folder:
    """A run or one probe output of a run, with the files a report shows."""

    path: Path
    kind: str                                   # "run" or the probe kind (predict, dream, ...)
    config: str | None = None                   # config.yaml text
    settings: dict[str, str] = field(default_factory=dict)   # other settings files: name -> text
    cmd: str | None = None
    env: dict = field(default_factory=dict)
    status: dict = field(default_factory=dict)
    summary: dict | None = None                 # summary.json
    tables: list[Path] = field(default_factory=list)          # tables/*.md
    images: dict[str, list[Path]] = field(default_factory=dict)   # folder ("plots", "frames", ...) -> files
    data: list[Path] = field(default_factory=list)            # metrics/*.csv and other small result files
    children: list["Folder"] = field(default_factory=list)    # probe outputs
    sources: list[Path] = field(default_factory=list)         # runs this one was made from

    @property
    def name(self) -> str:
        """``<experiment>/<stamp>_<id>`` for a run, ``<kind>/<stamp>_<id>`` for a probe output."""
        return f"{self.path.parent.name}/{self.path.name}"

    @property
    def run_id(self) -> str:
        return self.path.name

    def config_dict(self) -> dict:
        try:
            data = yaml.safe_load(self.config or "")
        except yaml.YAMLError:
            return {}
        return data if isinstance(data, dict) else {}


def _read_text(path: Path) -> str | None:
    try:
        return path.read_text(errors="replace")
    except OSError:
        return None


def _read_json(path: Path):
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return None


def is_run(path: Path) -> bool:
    return (Path(path) / "config.yaml").is_file()


def read_folder(path: Path, kind: str = "run") -> Folder:
    """The run (or probe output) at ``path`` with its probe outputs."""
    path = Path(path)
    f = Folder(path, kind, config=_read_text(path / "config.yaml"), cmd=_read_text(path / "cmd.txt"))
    for name in SETTINGS_FILES:
        text = _read_text(path / name)
        if text is not None and text.strip() not in ("", "{}"):
            f.settings[name] = text
    f.env = _read_json(path / "env.json") or {}
    f.status = _read_json(path / "status.json") or {}
    f.summary = _read_json(path / "summary.json")
    f.tables = sorted((path / "tables").glob("*.md"))
    children_dirs = []
    for sub in sorted(p for p in path.iterdir() if p.is_dir() and not p.name.startswith(".")):
        if sub.name in RUN_PARTS:
            continue
        stamped = sorted(p for p in sub.iterdir() if p.is_dir() and STAMPED.fullmatch(p.name))
        if stamped and not is_run(sub):
            children_dirs += [(sub.name, p) for p in stamped]
    skip = {p for _, p in children_dirs} | {path / "checkpoints"}
    for file in sorted(_files(path, skip)):
        rel = file.relative_to(path)
        top = rel.parts[0] if len(rel.parts) > 1 else ""
        if file.suffix.lower() in IMAGE_SUFFIXES:
            f.images.setdefault(top, []).append(file)
        elif file.suffix in (".csv", ".json", ".yaml", ".txt", ".md") and file.stat().st_size > 0:
            if not (top == "tables" and file.suffix == ".md"):
                f.data.append(file)
    order = {k: i for i, k in enumerate(IMAGE_ORDER)}
    f.images = dict(sorted(f.images.items(), key=lambda kv: (order.get(kv[0], len(order)), kv[0])))
    f.children = [read_folder(p, kind) for kind, p in sorted(children_dirs, key=lambda kp: (kp[1].name, kp[0]))]
    f.sources = _sources(f)
    return f


def _files(root: Path, skip: set[Path]):
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        dirnames[:] = sorted(d for d in dirnames if here / d not in skip and not d.startswith("."))
        for name in filenames:
            if not name.startswith("."):
                yield here / name


def _sources(f: Folder) -> list[Path]:
    """Runs this one was made from: a sleep run's source, a deepdream run's classifier run, the runs
    a comparison read."""
    return sources(f.env, f.config_dict())


def sources(env: dict, cfg: dict) -> list[Path]:
    """The runs named as sources in a run's ``env.json`` (``sleep_of``) and ``config.yaml``
    (``model.source`` of deepdream, ``runs`` of compare), as absolute paths."""
    found: list[str] = []
    if env.get("sleep_of"):
        found.append(str(env["sleep_of"]))
    model = cfg.get("model") if isinstance(cfg.get("model"), dict) else {}
    if isinstance(model.get("source"), str) and "/" in model["source"]:
        found.append(model["source"])
    if isinstance(cfg.get("runs"), list):
        found += [str(r) for r in cfg["runs"]]
    out = []
    for text in found:
        p = Path(text)
        p = (p if p.is_absolute() else (Path.cwd() / p)).resolve()
        if p not in out:
            out.append(p)
    return out


def made_from(run: Path) -> list[Path]:
    """Runs beside ``run`` (under the same run root, ``<root>/<experiment>/<run>``) that were made from it:
    its sleep runs, deepdream runs on it, comparisons that read it."""
    run = Path(run).resolve()
    out = []
    for other in find_runs(run.parent.parent, depth=2):
        if other.resolve() == run:
            continue
        try:
            cfg = yaml.safe_load((other / "config.yaml").read_text())
        except (OSError, yaml.YAMLError):
            continue
        env = _read_json(other / "env.json") or {}
        if run in sources(env if isinstance(env, dict) else {}, cfg if isinstance(cfg, dict) else {}):
            out.append(other)
    return out


def find_runs(folder: Path, depth: int = 4) -> list[Path]:
    """Run directories under ``folder`` (not inside another run), up to ``depth`` levels down."""
    out: list[Path] = []

    def walk(p: Path, left: int) -> None:
        if is_run(p):
            out.append(p)
            return
        if left == 0:
            return
        try:
            subs = sorted(s for s in p.iterdir() if s.is_dir() and not s.name.startswith("."))
        except OSError:
            return
        for s in subs:
            walk(s, left - 1)

    walk(Path(folder), depth)
    return out


def what(path: Path) -> str:
    """'run', 'runs' or 'tables': what ``path`` holds; a one-line error when it is none of them."""
    path = Path(path)
    if not path.exists():
        raise PredvisError(f"report: {path} does not exist (give a run directory, a folder of runs, or a tables/<profile>/ folder)")
    if not path.is_dir():
        raise PredvisError(f"report: {path} is a file; give a run directory, a folder of runs, or a tables/<profile>/ folder")
    if is_run(path):
        return "run"
    if find_runs(path):
        return "runs"
    if any(path.glob("*.md")):
        return "tables"
    raise PredvisError(f"report: {path} holds no run (no config.yaml found below it) and no markdown tables")
