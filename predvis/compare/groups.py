"""Grouping runs for ``predvis compare`` and aggregating over seeds.

Runs are grouped by experiment (config ``name``, qualified by ``model.kind`` / ``mode``) and by the
value of the ``--by`` key. Inside such a group, runs are averaged over seeds only when they agree on
everything else: the rest of the config (machine settings such as device and threads aside), the
test set (the data and eval settings that decide which sequences are scored, and the probe settings)
and the set of metrics. Runs that disagree are kept apart as separate groups and flagged, never
averaged together.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any

from predvis.compare.runs import RunRecord, config_value
from predvis.config import flat_config

# config keys that change how a run was executed, not what it computed
IGNORED = {"seed", "device", "profile", "threads", "train.threads", "train.nan_check_every",
           "eval.figures", "eval.batch_size", "model.source", "model.weights", "name"}
# data keys that only shape training (the test split is fixed by test_seed and the test sizes)
TRAINING_ONLY = {"train_sequences", "val_sequences", "train_scenes", "val_scenes", "fresh", "spot_p",
                 "spot_frames"}
TRAINING_ONLY_BY_METHOD = {"pvm": {"videos", "frames", "source"}}


def test_signature(record: RunRecord) -> dict[str, Any]:
    """The settings that decide which data a run's metrics were measured on (flat keys)."""
    flat = flat_config(record.config)
    method = record.config.get("method")
    if method is not None and isinstance(record.config.get("data"), dict):
        drop = TRAINING_ONLY | TRAINING_ONLY_BY_METHOD.get(str(method), set())
        sig = {k: v for k, v in flat.items()
               if (k.startswith("data.") and k[5:] not in drop)
               or (k.startswith("eval.") and k not in IGNORED)}
        sig["method"] = method
    else:  # not a trained run (deepdream): its own settings, seed included (it picks the test images)
        sig = {k: v for k, v in flat.items() if not k.startswith("model.") and (k == "seed" or k not in IGNORED)}
    for kind, settings in record.settings.items():
        for key, value in settings.items():
            sig[f"probe.{kind}.{key}"] = value
    return sig


def training_config(record: RunRecord, by: str | None, signature: dict) -> dict[str, Any]:
    """The config keys that are neither ignored, nor the --by key, nor part of the test set."""
    return {k: v for k, v in flat_config(record.config).items()
            if k not in IGNORED and k != by and k not in signature}


def _canon(data: Any) -> str:
    return json.dumps(data, sort_keys=True, default=str)


def describe_diff(a: dict, b: dict, limit: int = 3) -> str:
    """'k: x vs y, ...' for the keys where two flat mappings differ."""
    keys = sorted(k for k in set(a) | set(b) if _canon(a.get(k, "(unset)")) != _canon(b.get(k, "(unset)")))
    parts = [f"{k}: {a.get(k, '(unset)')} vs {b.get(k, '(unset)')}" for k in keys[:limit]]
    if len(keys) > limit:
        parts.append(f"+{len(keys) - limit} more")
    return ", ".join(parts)


def _families(names: set[str]) -> str:
    fam: dict[str, int] = {}
    for n in names:
        fam[n.split(".")[0]] = fam.get(n.split(".")[0], 0) + 1
    return ", ".join(f"{k}.* ({v})" for k, v in sorted(fam.items()))


def stats(values: list[float]) -> tuple[float, float, int]:
    """(mean, sample std (n - 1; NaN for one value), n)."""
    n = len(values)
    if n == 0:
        return math.nan, math.nan, 0
    mean = math.fsum(values) / n
    if n < 2:
        return mean, math.nan, n
    return mean, math.sqrt(math.fsum((v - mean) ** 2 for v in values) / (n - 1)), n


@dataclass
class Group:
    """Runs averaged together: same experiment, --by value, config, test set and metrics."""

    gid: str
    experiment: str
    by: Any
    runs: list[RunRecord]
    signature: dict
    config: dict
    metric_names: frozenset
    test_id: str = "T1"
    flags: list[str] = field(default_factory=list)

    @property
    def label(self) -> str:
        return self.experiment if self.by is None else f"{self.experiment} [{self.by}]"

    @property
    def seeds(self) -> list:
        return [r.seed for r in self.runs]

    def stats(self, metric: str) -> tuple[float, float, int]:
        return stats([r.metrics[metric] for r in self.runs if metric in r.metrics])

    def curve(self, name: str, horizon: bool = False) -> list[tuple[float, float, float, int]]:
        """[(x, mean, std, n)] over the runs that have the curve."""
        pool: dict[float, list[float]] = {}
        for r in self.runs:
            for x, y in (r.horizons if horizon else r.curves).get(name, {}).items():
                pool.setdefault(x, []).append(y)
        return [(x, *stats(ys)) for x, ys in sorted(pool.items())]

    def curve_names(self, horizon: bool = False) -> list[str]:
        names: list[str] = []
        for r in self.runs:
            names.extend(k for k in (r.horizons if horizon else r.curves) if k not in names)
        return names


def make_groups(records: list[RunRecord], by: str | None) -> list[Group]:
    """Partition runs into groups and flag every reason two groups were kept apart."""
    buckets: dict[tuple, list[tuple[RunRecord, dict, dict]]] = {}
    for r in records:
        by_value = None
        if by is not None:
            has, value = config_value(r.config, by)
            by_value = value if has else "(unset)"
        sig = test_signature(r)
        buckets.setdefault((r.experiment, _canon(by_value)), []).append((r, sig, training_config(r, by, sig)))
    splits: list[list[Group]] = []
    for (experiment, by_canon), members in sorted(buckets.items(), key=lambda kv: (kv[0][0], kv[0][1])):
        parts: dict[tuple, Group] = {}
        for r, sig, rest in members:
            key = (_canon(rest), _canon(sig), frozenset(r.metrics))
            if key not in parts:
                parts[key] = Group("", experiment, None if by is None else json.loads(by_canon), [], sig, rest,
                                   frozenset(r.metrics))
            parts[key].runs.append(r)
        split = sorted(parts.values(), key=lambda g: -len(g.runs))
        for g in split:
            g.runs.sort(key=lambda r: (str(r.seed), str(r.path)))
        splits.append(split)
    groups = [g for split in splits for g in split]
    for i, g in enumerate(groups):
        g.gid = f"G{i + 1}"
    for split in splits:
        if len(split) > 1:
            _flag_split(split)
    _assign_test_sets(groups)
    for g in groups:
        seen: dict[str, int] = {}
        for s in g.seeds:
            seen[str(s)] = seen.get(str(s), 0) + 1
        dup = [f"seed {s} x{n}" for s, n in seen.items() if n > 1]
        if dup:
            g.flags.append(f"repeated seeds ({', '.join(dup)}): averaged as separate samples")
    return groups


def _flag_split(split: list[Group]) -> None:
    first = split[0]
    for g in split[1:]:
        reasons = []
        probe_a, data_a = _split_probe(first.signature)
        probe_b, data_b = _split_probe(g.signature)
        if _canon(probe_a) != _canon(probe_b):
            reasons.append(f"probe settings differ ({describe_diff(probe_a, probe_b)})")
        if _canon(data_a) != _canon(data_b):
            reasons.append(f"test set differs ({describe_diff(data_a, data_b)})")
        if _canon(g.config) != _canon(first.config):
            reasons.append(f"config differs ({describe_diff(first.config, g.config)}; compare with --by KEY)")
        if g.metric_names != first.metric_names:
            lacks, extra = first.metric_names - g.metric_names, g.metric_names - first.metric_names
            what = []
            if lacks:
                what.append(f"lacks {_families(set(lacks))}")
            if extra:
                what.append(f"has extra {_families(set(extra))}")
            reasons.append(f"metrics differ ({'; '.join(what)})")
        note = "; ".join(reasons)
        g.flags.append(f"not averaged with {first.gid}: {note}")
        first.flags.append(f"not averaged with {g.gid} (see there)")


def _split_probe(signature: dict) -> tuple[dict, dict]:
    """(the probe settings ``probe.<kind>.<key>``, the rest) of a test signature."""
    probe = {k: v for k, v in signature.items() if k.startswith("probe.")}
    return probe, {k: v for k, v in signature.items() if k not in probe}


def _family(g: Group) -> str:
    cfg = g.runs[0].config
    return str(cfg.get("method") or cfg.get("name"))


def _assign_test_sets(groups: list[Group]) -> None:
    """T1, T2, ... per distinct test set; groups of one method on different test sets are flagged."""
    ids: dict[str, str] = {}
    for g in groups:
        g.test_id = ids.setdefault(_canon(g.signature), f"T{len(ids) + 1}")
    first: dict[str, Group] = {}
    for g in groups:
        ref = first.setdefault(_family(g), g)
        if ref.test_id != g.test_id:
            g.flags.append(f"test set {g.test_id} differs from {ref.test_id} of {ref.gid} "
                           f"({describe_diff(ref.signature, g.signature)}): not comparable with {ref.gid}")
