"""The studies a ``kind: study`` cell can run, and how the collector drives each one.

A study is a module ``predvis.studies.<name>`` whose ``command`` (``predvis study <name>``) trains many
models through the job runner and keeps its own state in a *study folder* ``<runs>/<folder>/<stamp>_<profile>/``:
``study.json`` (what it plans), ``jobs/<tag>.json`` (one record per finished model) and its table. The
collector only uses that public surface: it runs the command with the cell's options, finds the study folder
whose ``study.json`` holds what the cell asks for (:meth:`Study.meta`; other keys of ``study.json`` are
ignored), continues a partial one with ``--study DIR``, and reads the study's table from the folder.

A cell names its study and the study's options::

    kind: study
    seeds: [0, 1, 2]                     # --seeds 3 (seeds 0..n-1)
    study: {name: depth_inversion, variants: all, sweep: "1,2,8"}

Each study has an options dataclass (unknown options are rejected with the closest valid name) and an
entry in ``STUDIES``.
"""
from __future__ import annotations

import importlib
import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal

from predvis.config import ConfigError, from_dict, suggest


# --------------------------------------------------------------------------- options

@dataclass
class DepthInversionOptions:
    """``predvis study depth_inversion`` (docs/depth_inversion.md)."""

    variants: str = "all"
    additive: Literal["corners", "all", "none"] = "corners"
    sweep: str = "1,2,8"
    sweep_seeds: int = 1
    wide: bool = False
    threads: int = 1


@dataclass
class Gopc2StabilityOptions:
    """``predvis study gopc2_stability`` (docs/models.md, GOPC-2). The cell's seeds are the
    default GOPC-2's (``--seeds``); the study's own defaults are 5, 1, 1, 2 and every variant."""

    ref_seeds: int = 1        # GOPC-1 reference seeds (full schedule)
    short_seeds: int = 1      # seeds of each other stabiliser setting (shortened budget)
    short_epochs: int = 2     # epochs of the shortened budget
    variants: str = "all"     # all, or a comma list of the study's VARIANTS
    threads: int = 1

    def validate(self) -> None:
        for key in ("ref_seeds", "short_seeds"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")
        if self.short_epochs < 1:
            raise ConfigError(f"short_epochs: must be >= 1, got {self.short_epochs}")


# --------------------------------------------------------------------------- studies

class Study:
    """How the collector runs, finds and reads one study module."""

    name: str = ""            # predvis.studies.<name>
    folder: str = ""          # study folders: <runs>/<folder>/<stamp>_<profile>/
    table: str = ""           # the study's table, relative to its folder
    options: type = object

    @property
    def module(self):
        return importlib.import_module(f"predvis.studies.{self.name}")

    def meta(self, cell, opts) -> dict:
        """What the study folder's ``study.json`` must hold for this cell (checks the cell)."""
        raise NotImplementedError

    def argv(self, cell, opts, root: Path) -> list[str]:
        """Arguments of the study's command for a new study (``--study DIR`` is appended to continue one)."""
        raise NotImplementedError

    def planned(self, meta: dict) -> int:
        return len(meta["jobs"])

    def finished(self, folder: Path) -> int:
        return len(list((Path(folder) / "jobs").glob("*.json")))

    def records(self, folder: Path) -> list[Path]:
        """The per-model records of a study folder."""
        return sorted((Path(folder) / "jobs").glob("*.json"))

    def read_table(self, folder: Path) -> str:
        path = Path(folder) / self.table
        if not path.exists():   # written after every job; a folder without one gets it rewritten
            from predvis.studies.command import invoke

            invoke(self.name, ["--study", str(folder), "--table-only"])
        return path.read_text()

    def matches(self, folder: Path, meta: dict) -> bool:
        from predvis.config import saved_form

        try:
            saved = json.loads((Path(folder) / "study.json").read_text())
        except (OSError, ValueError):
            return False
        if not isinstance(saved, dict):
            return False
        return all(key in saved and saved_form(saved[key]) == saved_form(value) for key, value in meta.items())


class DepthInversion(Study):
    name, folder, table, options = ("depth_inversion", "depth_inversion_study", "tables/depth_inversion.md",
                                    DepthInversionOptions)

    def meta(self, cell, opts: DepthInversionOptions) -> dict:
        from predvis.experiment import load_experiment

        study = self.module
        base = load_experiment(study.EXPERIMENT, cell.profile, list(cell.overrides))
        sweep = [int(s) for s in opts.sweep.split(",") if s.strip()]
        jobs = study.plan(len(cell.seeds), opts.additive, sweep, opts.sweep_seeds, study.parse_variants(opts.variants),
                          base.model.steps, opts.wide)
        return {"profile": cell.profile, "seeds": len(cell.seeds), "overrides": list(cell.overrides), "jobs": jobs}

    def argv(self, cell, opts: DepthInversionOptions, root: Path) -> list[str]:
        return (["--profile", cell.profile, "--seeds", str(len(cell.seeds)), "--runs", str(root),
                 "--variants", opts.variants, "--additive", opts.additive, "--sweep", opts.sweep,
                 "--sweep-seeds", str(opts.sweep_seeds), "--threads", str(opts.threads)]
                + (["--wide"] if opts.wide else []) + list(cell.overrides))

    def read_table(self, folder: Path) -> str:
        from predvis.studies.depth_inversion_table import write_table

        return write_table(Path(folder))


class Gopc2Stability(Study):
    name, folder, table, options = ("gopc2_stability", "gopc2_study", "tables/gopc2_stability.md",
                                    Gopc2StabilityOptions)

    def variants(self, opts: Gopc2StabilityOptions) -> list[str]:
        known = list(self.module.VARIANTS)
        if opts.variants.strip() == "all":
            return known
        out = [v.strip() for v in opts.variants.split(",") if v.strip()]
        for v in out:
            if v not in known:
                raise ConfigError(f"study.variants: unknown '{v}'{suggest(v, known)}; known: all, {', '.join(known)}")
        return out

    def meta(self, cell, opts: Gopc2StabilityOptions) -> dict:
        from predvis.experiment import load_experiment

        for experiment in ("gopc2", "gopc1"):   # the study trains both with the cell's overrides
            load_experiment(experiment, cell.profile, list(cell.overrides))
        jobs = self.module.plan(len(cell.seeds), opts.ref_seeds, opts.short_seeds, self.variants(opts))
        return {"profile": cell.profile, "jobs": jobs, "short_epochs": opts.short_epochs, "extra": list(cell.overrides)}

    def argv(self, cell, opts: Gopc2StabilityOptions, root: Path) -> list[str]:
        # --out absolute: study.json keeps it, and --study continues from there whatever the working folder
        return ["--profile", cell.profile, "--seeds", str(len(cell.seeds)), "--ref-seeds", str(opts.ref_seeds),
                "--short-seeds", str(opts.short_seeds), "--short-epochs", str(opts.short_epochs),
                "--variants", ",".join(self.variants(opts)), "--runs", str(Path(root).resolve()),
                "--threads", str(opts.threads)] + list(cell.overrides)


STUDIES: dict[str, Study] = {s.name: s for s in (DepthInversion(), Gopc2Stability())}


def study_spec(raw: dict[str, Any]) -> tuple[Study, Any]:
    """(study, options) of a cell's ``study:`` mapping (``name`` picks the study)."""
    raw = dict(raw or {})
    if "name" not in raw:
        raise ConfigError(f"study.name: required, one of {', '.join(STUDIES)}")
    name = str(raw.pop("name"))
    if name not in STUDIES:
        raise ConfigError(f"study.name: unknown study '{name}'{suggest(name, list(STUDIES))}; known: {', '.join(STUDIES)}")
    study = STUDIES[name]
    return study, from_dict(study.options, raw, "study")
