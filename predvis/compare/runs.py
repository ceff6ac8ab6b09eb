"""Reading run directories for ``predvis compare``: find the runs, their configs and their metrics.

A run is a folder with a ``config.yaml`` (``predvis train`` runs, deepdream runs). Its metrics are

- ``metrics/train.csv``: the last row (final epoch) gives ``train.<column>``; every row gives the
  training curve ``train.<column>`` over epochs;
- other CSVs in ``metrics/`` (e.g. deepdream's ``adversarial.csv``) and, for each probe kind, the
  CSVs of the newest finished output folder ``<run>/<kind>/<stamp>_<id>/metrics/`` (finished = it
  has its ``summary.json``; a probe folder given on the command line is used instead):
  rows are grouped by their text columns (predictor, condition, attack, ...) and the numeric
  columns are averaged over the index columns (sequence, frame, step, ...), giving
  ``<prefix>.<group>....<column>`` (``predict.prior.mse``, ``lesion.intact.pixels.mean``,
  ``occlude.intact.error``, ``adversarial.PGD untargeted.eps 0.1.success rate``);
- a CSV with a ``horizon`` column (``predict/.../metrics/horizon.csv``) gives per-horizon curves
  ``<prefix>.horizon.<group>.<column>`` (horizon 0, the posterior reconstruction, is left out).
"""
from __future__ import annotations

import csv
import json
import math
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from predvis.errors import PredvisError

RUN_SUBDIRS = {"metrics", "checkpoints", "frames", "gifs", "tables", "plots"}
INDEX_COLUMNS = {"sequence", "frame", "step", "epoch", "image", "index", "t"}
OUTPUT_KINDS = {"compare", "reproduce"}      # folders written by compare itself: never read as runs
# probe summary.json keys that describe how a probe was run (not results): part of the test set
PROBE_SETTINGS = ("context", "sequences", "mode", "disabled", "freeze", "test_set", "images", "columns")
# keys of a summary.json's "settings" that name the source run or the figures drawn, not how it was probed
NOT_PROBE_SETTINGS = {"source", "checkpoint", "source_state", "figures"}


@dataclass
class RunRecord:
    """One run as compare sees it."""

    path: Path
    config: dict
    metrics: dict[str, float] = field(default_factory=dict)
    sources: dict[str, Path] = field(default_factory=dict)                 # metric -> file
    curves: dict[str, dict[float, float]] = field(default_factory=dict)    # train.* over epochs
    horizons: dict[str, dict[float, float]] = field(default_factory=dict)  # *.horizon.* over horizons
    probes: dict[str, Path] = field(default_factory=dict)                  # kind -> output folder used
    settings: dict[str, dict] = field(default_factory=dict)                # kind -> probe settings

    @property
    def experiment(self) -> str:
        """``name``, qualified by ``model.kind`` or ``mode`` where they add something."""
        name = str(self.config.get("name", self.path.parent.name))
        model = self.config.get("model") if isinstance(self.config.get("model"), dict) else {}
        extra = [str(v) for v in (model.get("kind"), self.config.get("mode")) if v not in (None, "", name)]
        return f"{name} ({', '.join(extra)})" if extra else name

    @property
    def seed(self) -> Any:
        return self.config.get("seed")


# --------------------------------------------------------------------------- finding runs

def _read_config(path: Path) -> dict:
    try:
        data = yaml.safe_load((path / "config.yaml").read_text())
    except (OSError, yaml.YAMLError) as err:
        raise PredvisError(f"{path}/config.yaml is unreadable ({type(err).__name__})") from None
    if not isinstance(data, dict):
        raise PredvisError(f"{path}/config.yaml does not hold a mapping")
    return data


def _is_output(config: dict) -> bool:
    return config.get("kind") in OUTPUT_KINDS


def find_runs(paths: list[Path]) -> list[tuple[Path, Path | None]]:
    """(run directory, pinned probe folder or None) for every path; folders are searched for runs."""
    found: dict[Path, Path | None] = {}
    for raw in paths:
        path = Path(raw)
        if not path.exists():
            raise PredvisError(f"not found: {path}")
        if not path.is_dir():
            raise PredvisError(f"{path} is a file; give run directories or folders that hold runs")
        if (path / "config.yaml").exists():
            if _is_output(_read_config(path)):
                raise PredvisError(f"{path} is a {_read_config(path)['kind']} output, not a run")
            found.setdefault(path.resolve(), None)
            continue
        run = path.parent.parent
        if (run / "config.yaml").exists() and path.parent.name not in RUN_SUBDIRS and (path / "metrics").is_dir():
            found[run.resolve()] = path.resolve()      # a probe output folder: use exactly this one
            continue
        inside = []
        for cfg in sorted(path.rglob("config.yaml")):
            folder = cfg.parent
            rel = folder.relative_to(path).parts
            if any(p.startswith(".") for p in rel):       # staging folders of unfinished runs
                continue
            if any((folder.parents[i] / "config.yaml").exists() for i in range(len(rel) - 1)):
                continue                                  # inside another run
            if _is_output(_read_config(folder)):
                continue
            inside.append(folder.resolve())
        if not inside:
            raise PredvisError(f"{path} is not a run directory (no config.yaml) and holds no runs")
        for folder in inside:
            found.setdefault(folder, None)
    return list(found.items())


# --------------------------------------------------------------------------- metrics

def _number(text: Any) -> float | None:
    if text is None or text == "":
        return None
    try:
        value = float(text)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(value) else value


def _parses(text: Any) -> bool:
    try:
        float(text)
    except (TypeError, ValueError):
        return False
    return True


def read_table(path: Path) -> tuple[list[str], list[dict]]:
    try:
        with open(path, newline="") as handle:
            reader = csv.DictReader(handle)
            rows = list(reader)
            return list(reader.fieldnames or []), rows
    except (OSError, csv.Error, UnicodeDecodeError) as err:
        raise PredvisError(f"{path} is not a readable CSV ({type(err).__name__})") from None


def _columns(header: list[str], rows: list[dict]) -> tuple[list[str], list[str], list[str]]:
    """(text group columns, numeric index columns, numeric value columns)."""
    groups, index, values = [], [], []
    for col in header:
        cells = [r.get(col) for r in rows if r.get(col) not in (None, "")]
        numeric = bool(cells) and all(_parses(c) for c in cells)
        if not numeric:
            groups.append(col)
        elif col in INDEX_COLUMNS or col == "horizon":
            index.append(col)
        else:
            values.append(col)
    return groups, index, values


def flatten_csv(path: Path, prefix: str) -> tuple[dict[str, float], dict[str, dict[float, float]]]:
    """Scalars averaged within each group, or (for a CSV with a horizon column) per-horizon curves."""
    header, rows = read_table(path)
    groups, index, values = _columns(header, rows)
    scalars: dict[str, list[float]] = {}
    curves: dict[str, dict[float, list[float]]] = {}
    by_horizon = "horizon" in index
    for row in rows:
        key = ".".join([prefix] + (["horizon"] if by_horizon else []) + [row.get(g) or "-" for g in groups])
        h = _number(row.get("horizon")) if by_horizon else None
        if by_horizon and (h is None or h <= 0):
            continue
        for col in values:
            v = _number(row.get(col))
            if v is None:
                continue
            if by_horizon:
                curves.setdefault(f"{key}.{col}", {}).setdefault(h, []).append(v)
            else:
                scalars.setdefault(f"{key}.{col}", []).append(v)
    mean = lambda xs: math.fsum(xs) / len(xs)  # noqa: E731
    return ({k: mean(v) for k, v in scalars.items()},
            {k: {h: mean(v) for h, v in sorted(c.items())} for k, c in curves.items()})


def _train_csv(record: RunRecord, path: Path) -> None:
    header, rows = read_table(path)
    if not rows:
        return
    _, _, values = _columns(header, rows)
    for col in values:
        if col in ("step",):
            continue
        last = _number(rows[-1].get(col))
        if last is not None:
            record.metrics[f"train.{col}"] = last
            record.sources[f"train.{col}"] = path
        curve = {}
        for i, row in enumerate(rows):
            x, y = _number(row.get("epoch")), _number(row.get(col))
            if y is not None:
                curve[x if x is not None else float(i + 1)] = y
        if curve:
            record.curves[f"train.{col}"] = curve


def _add_csv(record: RunRecord, path: Path, prefix: str) -> None:
    scalars, curves = flatten_csv(path, prefix)
    for k, v in scalars.items():
        record.metrics[k] = v
        record.sources[k] = path
    for k, c in curves.items():
        record.horizons[k] = c
        record.sources[k] = path


def _short(value: Any) -> str:
    return "+".join(map(str, value)) if isinstance(value, (list, tuple)) else str(value)


def probe_outputs(run: Path) -> dict[str, Path]:
    """name -> the newest finished output folder of each probe kind and settings in ``run``.

    The name is the probe kind, or ``kind[key=value]`` when the kind was run with several settings
    (``lesion[disabled=feedback]``, ``lesion[disabled=feedback+lateral]``). Newest = the latest
    ``summary.json`` (folder names only resolve to the second).
    """
    out = {}
    for kind in sorted(p for p in run.iterdir() if p.is_dir()):
        if kind.name in RUN_SUBDIRS or kind.name.startswith("."):
            continue
        done = [d for d in kind.iterdir() if d.is_dir() and not d.name.startswith(".")   # .partial: being written
                and (d / "summary.json").exists() and (d / "metrics").is_dir()]
        latest: dict[str, tuple[Path, dict]] = {}
        for d in sorted(done, key=lambda d: ((d / "summary.json").stat().st_mtime_ns, d.name)):
            settings = _settings(d)
            latest[json.dumps(settings, sort_keys=True, default=str)] = (d, settings)
        if len(latest) == 1:
            out[kind.name] = next(iter(latest.values()))[0]
            continue
        variants = [s for _, s in latest.values()]
        keys = sorted(k for k in set().union(*variants)
                      if len({json.dumps(s.get(k), sort_keys=True, default=str) for s in variants}) > 1)
        for d, settings in latest.values():
            out[f"{kind.name}[{';'.join(f'{k}={_short(settings.get(k))}' for k in keys)}]"] = d
    return out


def _settings(folder: Path) -> dict:
    try:
        summary = json.loads((folder / "summary.json").read_text())
    except (OSError, ValueError):
        return {}
    if not isinstance(summary, dict):
        return {}
    legacy = {k: summary[k] for k in PROBE_SETTINGS if k in summary}
    recorded = summary.get("settings")
    if not isinstance(recorded, dict):  # written before probes recorded every setting
        return legacy
    return {**legacy, **{k: v for k, v in recorded.items() if k not in NOT_PROBE_SETTINGS}}


def read_run(path: Path, pinned: Path | None = None) -> RunRecord:
    """The config, final metrics and curves of one run (``pinned``: use this probe folder)."""
    record = RunRecord(path, _read_config(path))
    metrics = path / "metrics"
    if metrics.is_dir():
        for csv_path in sorted(metrics.glob("*.csv")):
            if csv_path.stem == "train":
                _train_csv(record, csv_path)
            else:
                _add_csv(record, csv_path, csv_path.stem)
    outputs = probe_outputs(path)
    if pinned is not None:
        kind = pinned.parent.name
        outputs = {k: v for k, v in outputs.items() if k.split("[")[0] != kind}
        outputs[kind] = pinned
    for name, folder in sorted(outputs.items()):
        record.probes[name] = folder
        record.settings[name] = _settings(folder)
        kind = name.split("[")[0]
        for csv_path in sorted((folder / "metrics").glob("*.csv")):
            prefix = name if csv_path.stem in (kind, "eval", "horizon") else f"{name}.{csv_path.stem}"
            _add_csv(record, csv_path, prefix)
    return record


# --------------------------------------------------------------------------- configs

def config_value(config: dict, key: str) -> tuple[bool, Any]:
    node: Any = config
    for part in key.split("."):
        if not isinstance(node, dict) or part not in node:
            return False, None
        node = node[part]
    return True, node
