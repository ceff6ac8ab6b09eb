"""Learning curves of runs in any state (finished, training, interrupted): held-out loss against
steps and against training wall time, read from ``metrics/train.csv`` as it grows.

A run's curve is one point per finished epoch: ``step`` (optimiser / PVM steps so far), ``wall``
(the sum of the epochs' ``seconds``: training time without validation, so a resumed run counts only
the time it trained) and every metric column. :func:`progress` says how far a run got and whether a
process is still training it; :func:`at_step`, :func:`at_wall` and :func:`first_below` read a curve
where runs are compared (matched steps, matched wall time, a target value); :func:`plot` draws one
figure per x axis.
"""
from __future__ import annotations

import json
import math
import os
import platform
from dataclasses import dataclass, field
from pathlib import Path


@dataclass
class Curve:
    """One run's curve: ``points`` = [{step, wall, <metric>: value, ...}] in epoch order."""

    run: Path
    label: str
    seed: int | None = None
    points: list[dict] = field(default_factory=list)

    def has(self, metric: str) -> bool:
        return any(_finite(p.get(metric)) for p in self.points)

    @property
    def steps(self) -> int:
        return int(self.points[-1]["step"]) if self.points else 0

    @property
    def wall(self) -> float:
        return float(self.points[-1]["wall"]) if self.points else 0.0


def _finite(value) -> bool:
    return isinstance(value, float) and math.isfinite(value)


def _number(text: str) -> float | None:
    try:
        return float(text)
    except (TypeError, ValueError):
        return None


def read_curve(run: Path, label: str = "", seed: int | None = None) -> Curve:
    """The curve of ``run`` from its ``metrics/train.csv`` (empty before the first epoch)."""
    from predvis.run import read_csv

    points, wall = [], 0.0
    for row in read_csv(Path(run) / "metrics" / "train.csv"):
        values = {k: _number(v) for k, v in row.items() if k is not None}
        wall += values.get("seconds") or 0.0
        point = {k: v for k, v in values.items() if v is not None}
        point["step"], point["wall"] = int(values.get("step") or 0), wall
        points.append(point)
    return Curve(Path(run), label or Path(run).name, seed, points)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except (PermissionError, OSError):
        return True
    return True


def training_pid(run: Path) -> int | None:
    """The pid of the process training ``run`` now (its status.json says running, written by a live
    process of this host), else None."""
    try:
        status = json.loads((Path(run) / "status.json").read_text())
    except (OSError, ValueError):
        return None
    pid = status.get("pid")
    if status.get("state") != "running" or not isinstance(pid, int) or status.get("host") != platform.node():
        return None
    return pid if pid != os.getpid() and _alive(pid) else None


def progress(run: Path) -> dict:
    """How far ``run`` got: state (done | training | interrupted | diverged | ...), pid, epochs done
    and planned, steps, training wall seconds."""
    try:
        status = json.loads((Path(run) / "status.json").read_text())
    except (OSError, ValueError):
        status = {}
    curve = read_curve(run)
    state = status.get("state", "missing")
    pid = training_pid(run)
    if state == "running" and pid is None:
        state = "interrupted"
    elif pid is not None:
        state = "training"
    return {"state": state, "pid": pid, "epochs": len(curve.points), "planned": status.get("epochs"),
            "steps": curve.steps, "wall": curve.wall}


def describe_progress(p: dict) -> str:
    """'training (pid 123): 14 of 120 epochs, 7,000 steps, 0.41 h' for a table."""
    state = f"training (pid {p['pid']})" if p["state"] == "training" else p["state"]
    planned = f" of {p['planned']}" if p.get("planned") else ""
    return f"{state}: {p['epochs']}{planned} epochs, {p['steps']:,} steps, {p['wall'] / 3600:.2f} h"


def at_step(curve: Curve, step: int, metric: str) -> float | None:
    """The metric at the last recorded point with step <= ``step`` (None if there is none)."""
    hits = [p for p in curve.points if p["step"] <= step and _finite(p.get(metric))]
    return hits[-1][metric] if hits else None


def at_wall(curve: Curve, seconds: float, metric: str) -> float | None:
    """The metric at the last recorded point trained for at most ``seconds``."""
    hits = [p for p in curve.points if p["wall"] <= seconds + 1e-9 and _finite(p.get(metric))]
    return hits[-1][metric] if hits else None


def first_below(curve: Curve, metric: str, threshold: float) -> dict | None:
    """The first point whose metric is <= ``threshold`` (None: not reached yet)."""
    return next((p for p in curve.points if _finite(p.get(metric)) and p[metric] <= threshold), None)


def best(curve: Curve, metric: str) -> dict | None:
    pts = [p for p in curve.points if _finite(p.get(metric))]
    return min(pts, key=lambda p: p[metric]) if pts else None


def mean_curve(curves: list[Curve], label: str) -> Curve:
    """The mean over ``curves`` (seeds of one variant) at the steps all of them reached: every metric and
    the wall time averaged point by point."""
    if not curves:
        return Curve(Path("."), label)
    n = min(len(c.points) for c in curves)
    points = []
    for i in range(n):
        pts = [c.points[i] for c in curves]
        keys = set.intersection(*(set(p) for p in pts))
        points.append({k: math.fsum(p[k] for p in pts) / len(pts) for k in keys})
        points[-1]["step"] = int(pts[0]["step"])
    return Curve(curves[0].run, label, None, points)


def plot(curves: list[Curve], metric: str, path: Path, x: str = "step", ylabel: str = "", title: str = "",
         baseline: str | None = None, baseline_label: str = "", target: float | None = None, log_y: bool = False) -> Path | None:
    """One line per curve (colour per label, line style per seed) of ``metric`` against ``x``
    (``step``, or ``wall`` / ``compute`` in seconds, drawn in hours); ``baseline``: a metric of the first curve drawn dashed grey;
    ``target``: a horizontal dotted line. Written atomically; None when no curve has the metric."""
    drawn = [c for c in curves if c.has(metric)]
    if not drawn:
        return None
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    labels = list(dict.fromkeys(c.label for c in drawn))
    cmap = plt.get_cmap("tab10" if len(labels) <= 10 else "tab20")
    colours = {lab: cmap(i % cmap.N) for i, lab in enumerate(labels)}
    styles = ["-", "--", ":", "-."]
    seeds = sorted({c.seed for c in drawn if c.seed is not None})
    fig, ax = plt.subplots(figsize=(7, 4.2), dpi=110)
    scale = 3600.0 if x in ("wall", "compute") else 1.0
    for c in drawn:
        pts = [p for p in c.points if _finite(p.get(metric))]
        style = styles[seeds.index(c.seed) % len(styles)] if c.seed in seeds else "-"
        name = c.label + (f" s{c.seed}" if c.seed is not None and len(seeds) > 1 else "")
        # markers where a line has few points (a short run's one or two epochs would otherwise not show)
        ax.plot([p[x] / scale for p in pts], [p[metric] for p in pts], style, color=colours[c.label], label=name, lw=1.4,
                marker="o" if len(pts) <= 3 else None, ms=4)
    if baseline:
        ref = next((c for c in drawn if c.has(baseline)), None)
        if ref is not None:
            pts = [p for p in ref.points if _finite(p.get(baseline))]
            ax.plot([p[x] / scale for p in pts], [p[baseline] for p in pts], "--", color="grey", lw=1,
                    label=baseline_label or baseline, marker="_" if len(pts) <= 3 else None, ms=10)
    if target is not None:
        ax.axhline(target, color="black", ls=":", lw=0.8, label=f"target {target:g}")
    if log_y:
        ax.set_yscale("log")
    if x == "step" and max((p[x] for c in drawn for p in c.points), default=0) >= 10_000:
        from matplotlib.ticker import FuncFormatter

        ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: f"{v / 1000:g}k"))  # 600k, not 600000
    ax.set_xlabel({"step": "training steps", "wall": "training wall time (h, validation excluded)",
                   "compute": "compute (h of one CPU thread: steps x measured cost per step)"}[x])
    ax.set_ylabel(ylabel or metric)
    ax.set_title(title, fontsize=10)
    ax.grid(alpha=0.3)
    ax.legend(fontsize=7, ncol=2)
    fig.tight_layout()
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, path)
    return path


AXIS_WORDS = {"step": "steps", "wall": "wall time", "compute": "compute"}


def figure_lines(tables_dir: Path, curves: list[Curve], stem: str, metric: str, ylabel: str, title: str,
                 xs: tuple[str, ...] = ("step", "wall"), suffix: str = "", **kw) -> list[str]:
    """:func:`plot` of ``metric`` against each of ``xs`` into ``tables_dir/curves/<stem>_<steps|wall_time|compute>.png``
    (titled "<title> against <x><suffix>"); the markdown image line of each figure written."""
    lines = []
    for x in xs:
        word = AXIS_WORDS[x]
        path = plot(curves, metric, Path(tables_dir) / "curves" / f"{stem}_{word.replace(' ', '_')}.png", x=x,
                    ylabel=ylabel, title=f"{title} against {word}{suffix}", **kw)
        if path is not None:
            lines.append(f"![{title} against {word}](curves/{path.name})")
    return lines
