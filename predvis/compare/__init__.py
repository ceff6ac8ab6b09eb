"""``predvis compare RUN_OR_FOLDER... [--by KEY] [--metric NAME]``: runs side by side (docs/compare.md).

Reads any run directories (or folders holding runs, or a probe output folder such as
``<run>/predict/<stamp>_<id>``), groups them by experiment and an optional config key, averages
over seeds (mean, std, n) the final-epoch training metrics and the probe metrics (per-horizon
curves too), and writes markdown + CSV tables and PNG plots into a new run directory
``<out>/compare/<stamp>_<id>/``. Runs whose config, test set or metric set differ are flagged and
never averaged together. Bad input is one line and writes nothing.
"""
from __future__ import annotations

import fnmatch
from pathlib import Path

from predvis.compare.groups import Group, make_groups, stats
from predvis.compare.runs import RunRecord, find_runs, read_run
from predvis.config import flat_config
from predvis.errors import PredvisError


def _metric_order(records: list[RunRecord]) -> list[str]:
    names: list[str] = []
    for r in records:
        names.extend(k for k in r.metrics if k not in names)
    train = [n for n in names if n.startswith("train.")]
    return train + sorted(n for n in names if not n.startswith("train."))


def select_metrics(records: list[RunRecord], wanted: list[str] | None) -> tuple[list[str], list[str]]:
    """(scalar metrics, per-horizon curves) to report; unknown names are one-line errors."""
    from predvis.config import suggest

    scalars = _metric_order(records)
    horizons: list[str] = []
    for r in records:
        horizons.extend(k for k in r.horizons if k not in horizons)
    if not wanted:
        return scalars, horizons
    known = scalars + horizons
    if not known:
        raise PredvisError("--metric: the runs hold no metrics (train them, or run a probe, first)")
    picked: list[str] = []
    for name in wanted:
        if name in known:
            hits = [name]
        elif any(c in name for c in "*?"):   # '[' is literal: probe families are named kind[key=value]
            pattern = name.replace("[", "[[]")
            hits = [k for k in known if fnmatch.fnmatchcase(k, pattern)]
            if not hits:
                raise PredvisError(f"--metric '{name}' matches no metric of these runs; e.g. {', '.join(known[:4])}")
        else:
            raise PredvisError(f"--metric: no run has a metric '{name}'{suggest(name, known)} "
                               f"({len(known)} metrics, e.g. {', '.join(known[:3])})")
        picked.extend(h for h in hits if h not in picked)
    return [m for m in picked if m in scalars], [m for m in picked if m in horizons]


def check_by(records: list[RunRecord], by: str) -> None:
    from predvis.config import suggest

    keys: list[str] = []
    for r in records:
        keys.extend(k for k in flat_config(r.config) if k not in keys)
    prefixes = {".".join(k.split(".")[:i]) for k in keys for i in range(1, k.count(".") + 1)}
    if by in keys:
        return
    if by in prefixes:
        raise PredvisError(f"--by '{by}' is a section; name one key inside it, e.g. '{next(k for k in keys if k.startswith(by + '.'))}'")
    raise PredvisError(f"--by: no run has a config key '{by}'{suggest(by, keys)}")


def compare(paths: list[Path], by: str | None = None, metrics: list[str] | None = None,
            out: Path = Path("runs")) -> Path:
    """Compare runs; returns the new output run directory."""
    from predvis.compare.report import write_output
    from predvis.progress import progress

    from predvis.run import check_writable

    if not paths:
        raise PredvisError("give at least one run directory or folder of runs")
    check_writable(Path(out), "--runs")
    found = find_runs(list(paths))
    records = [read_run(run, pinned) for run, pinned in progress(found, "reading runs", total=len(found))]
    if by is not None:
        check_by(records, by)
    scalars, horizons = select_metrics(records, metrics)
    if not scalars and not horizons:
        raise PredvisError("the runs hold no metrics yet (no metrics/*.csv and no finished probe output)")
    groups = make_groups(records, by)
    return write_output(out, [str(p) for p in paths], by, metrics, groups, scalars, horizons)


__all__ = ["compare", "find_runs", "read_run", "make_groups", "select_metrics", "Group", "RunRecord", "stats"]
