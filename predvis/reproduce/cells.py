"""Table cells for ``make reproduce-tables``: one small YAML file per cell (``experiments/cells/``).

A cell is one row of one or more tables: an experiment trained over seeds, then probed::

    tables: [gopc_prediction]      # table families it feeds (predvis.reproduce.tables.TABLES)
    row: GOPC-1                    # its row label there
    experiment: gopc1              # name in experiments/ or a YAML path
    seeds: [0, 1, 2]
    overrides: [train.threads=1]   # KEY=VALUE for every seed
    probes:                        # run after training, in this order
      - {probe: predict}
    profiles:                      # per collector profile (make reproduce-tables PROFILE=...)
      smoke: {seeds: [0, 1], overrides: [data.train_sequences=8]}
      full: {profile: full}

``profiles.<p>`` may set ``profile`` (the experiment profile; default: the collector's), ``seeds`` and
``probes`` (these replace), ``overrides`` (appended to the common ones) and ``study`` (merged key by key
into the cell's). ``kind: study`` cells run a whole study: ``study.name`` names the module
``predvis.studies.<name>`` and the other keys are its options (:mod:`predvis.reproduce.studies`);
``kind: placeholder`` cells only hold a ``note`` for a table that is not built yet. ``alone: true`` marks a
timing cell: with ``--workers N`` its jobs run first, one at a time with nothing beside them; ``minutes``
(the measured time of one job) lets the collector start the longest jobs first. Unknown keys are rejected
with the closest valid name, as in experiment files.

Several train cells may share runs: a cell whose experiment, profile, overrides and seed give the same
config as another cell's uses the same run directory and adds its own probes to it (the sleep cells
reuse the PVM and GOPC-1 runs this way).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from predvis.config import EXPERIMENTS_DIR, PROFILES, ConfigError, from_dict, read_yaml, suggest
from predvis.probes.registry import get_probe, probes

CELLS_DIR = EXPERIMENTS_DIR / "cells"
LONG_CELLS_DIR = CELLS_DIR / "long"   # the long profile's own cells (CPU, hours, in the background)


def cells_dir(collector_profile: str) -> Path:
    """The default cells folder of a collector profile."""
    return LONG_CELLS_DIR if collector_profile == "long" else CELLS_DIR
PROFILE_KEYS = ("profile", "seeds", "overrides", "probes", "study")



# --------------------------------------------------------------------------- cells

@dataclass
class Cell:
    """One cell file, resolved for one collector profile."""

    tables: list[str]
    row: str
    kind: Literal["train", "study", "placeholder"] = "train"
    experiment: str = ""
    profile: str = ""
    seeds: list[int] = field(default_factory=lambda: [0, 1, 2])
    overrides: list[str] = field(default_factory=list)
    probes: list[dict[str, Any]] = field(default_factory=list)
    study: dict[str, Any] = field(default_factory=dict)
    note: str = ""
    alone: bool = False                    # a timing cell: never side by side with other jobs (--workers)
    minutes: float = 0.0                   # measured minutes per job (one thread): with --workers, long jobs start first
    id: str = ""                           # the file stem (set by the loader)
    path: str = ""

    def validate(self) -> None:
        if not self.tables:
            raise ConfigError("tables: name at least one table")
        if self.kind == "placeholder":
            if not self.note:
                raise ConfigError("note: a placeholder cell says why the table is not built")
            return
        if self.minutes < 0:
            raise ConfigError(f"minutes: must be >= 0, got {self.minutes}")
        if self.kind == "train" and not self.experiment:
            raise ConfigError("experiment: required for a train cell")
        if not self.seeds:
            raise ConfigError("seeds: name at least one seed")
        if len(set(self.seeds)) != len(self.seeds):
            raise ConfigError(f"seeds: repeated seed in {self.seeds}")
        if self.profile and self.profile not in PROFILES:
            raise ConfigError(f"profile: must be smoke, quick, full or long, got '{self.profile}'{suggest(self.profile, PROFILES)}")
        if self.kind == "study" and sorted(self.seeds) != list(range(len(self.seeds))):
            raise ConfigError(f"seeds: a study trains seeds 0..n-1; got {self.seeds}")

    def probe_specs(self) -> list[tuple[str, Any]]:
        """[(kind, options dataclass)] in order."""
        out = []
        for i, raw in enumerate(self.probes):
            if not isinstance(raw, dict) or "probe" not in raw:
                raise ConfigError(f"probes[{i}]: expected a mapping with 'probe: {' | '.join(probes())}'")
            raw = dict(raw)
            kind = str(raw.pop("probe"))
            spec = get_probe(kind, f"probes[{i}].probe")
            out.append((kind, from_dict(spec.Options, raw, f"probes[{i}]")))
        return out

    def study_spec(self):
        """(study, options): :func:`predvis.reproduce.studies.study_spec` of ``study:``."""
        from predvis.reproduce.studies import study_spec

        return study_spec(self.study)


def resolve_cell(raw: dict, collector_profile: str, source: str) -> Cell:
    """Merge ``profiles.<collector_profile>`` into the file and check it."""
    raw = dict(raw)
    profiles = raw.pop("profiles", {}) or {}
    if not isinstance(profiles, dict):
        raise ConfigError(f"{source}: 'profiles' must map smoke / quick / full / long to settings")
    for name, section in profiles.items():
        if name not in PROFILES:
            raise ConfigError(f"{source}: unknown profile '{name}'{suggest(str(name), PROFILES)}")
        if not isinstance(section, dict):
            raise ConfigError(f"{source}: profiles.{name} must be a mapping")
        for key in section:
            if key not in PROFILE_KEYS:
                raise ConfigError(f"{source}: unknown key 'profiles.{name}.{key}'{suggest(str(key), PROFILE_KEYS)}")
    section = dict(profiles.get(collector_profile) or {})
    extra = section.pop("overrides", []) or []
    if not isinstance(extra, list):
        raise ConfigError(f"{source}: profiles.{collector_profile}.overrides must be a list of KEY=VALUE")
    study = section.pop("study", None)
    if study is not None and not isinstance(study, dict):
        raise ConfigError(f"{source}: profiles.{collector_profile}.study must be a mapping of study options")
    merged = {**raw, **section}
    merged["overrides"] = list(raw.get("overrides") or []) + list(extra)
    if study is not None:
        if not isinstance(raw.get("study") or {}, dict):
            raise ConfigError(f"{source}: study must be a mapping (name: and the study's options)")
        merged["study"] = {**(raw.get("study") or {}), **study}
    for key in ("id", "path"):
        if key in merged:
            raise ConfigError(f"{source}: '{key}' is set by the collector, not in the file")
    try:
        cell = from_dict(Cell, merged, "")
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    if not cell.profile:
        cell.profile = collector_profile
    try:
        if cell.kind == "train":
            cell.probe_specs()
        elif cell.kind == "study":
            cell.study_spec()
    except ConfigError as err:
        raise ConfigError(f"{source}: {err}") from None
    return cell


def load_cells(folder: Path, collector_profile: str, only: list[str] | None = None) -> list[Cell]:
    """Every ``*.yaml`` cell in ``folder`` (sorted by name), resolved for ``collector_profile``."""
    from predvis.reproduce.tables import TABLES

    folder = Path(folder)
    if not folder.is_dir():
        raise ConfigError(f"cells folder not found: {folder}")
    files = sorted(folder.glob("*.yaml"))
    if not files:
        raise ConfigError(f"no cell files (*.yaml) in {folder}")
    cells = []
    for path in files:
        cell = resolve_cell(read_yaml(path), collector_profile, str(path))
        cell.id, cell.path = path.stem, str(path)
        for table in cell.tables:
            if table not in TABLES:
                raise ConfigError(f"{path}: unknown table '{table}'{suggest(table, list(TABLES))}; "
                                  f"known: {', '.join(TABLES)}")
        cells.append(cell)
    if only:
        ids = [c.id for c in cells]
        for name in only:
            if name not in ids:
                raise ConfigError(f"--only: no cell '{name}'{suggest(name, ids)}; cells: {', '.join(ids)}")
        cells = [c for c in cells if c.id in only]
    return cells
