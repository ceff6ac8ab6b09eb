"""What ``predvis compare`` writes: markdown and CSV tables, PNG plots, into a new run directory.

Everything is computed in memory first; the output folder ``<out>/compare/<stamp>_<id>/`` is then
created complete with its text files through :func:`predvis.run.create_run_dir` (never half-made,
never over another), the PNGs are added and ``status.json`` says ``done``.
"""
from __future__ import annotations

import io
import math
import os
import re
import time
from pathlib import Path
from typing import Any

from predvis.compare.groups import Group
from predvis.compare.runs import RunRecord
from predvis.run import csv_text
from predvis.tables import fmt, markdown_table

HEADLINE = ("train.val_loss", "train.loss", "predict.prior.mse", "predict.recon.mse", "occlude.intact.error",
            "lesion.lesioned.pixels.mean", "train.val_acc", "train.test_acc")


def mean_std_text(mean: float, std: float, n: int) -> str:
    if n == 0:
        return "-"
    return f"{fmt(mean)} ± {fmt(std)} ({n})" if n > 1 else f"{fmt(mean)} (1)"


def _num(value: float) -> Any:
    return "" if value is None or (isinstance(value, float) and math.isnan(value)) else value


def _family(metric: str) -> str:
    return metric.split(".")[0]


def _safe(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name).strip("_")


def _link(target: Path, start: Path) -> str:
    return os.path.relpath(target, start)


# --------------------------------------------------------------------------- tables

def build_tables(groups: list[Group], metrics: list[str], horizon_names: list[str], by: str | None,
                 out_hint: Path, inputs: list[str]) -> dict[str, str]:
    """name -> text of every table file (markdown and CSV), relative to the output folder."""
    runs = [r for g in groups for r in g.runs]
    tables_dir = out_hint / "tables"
    head = ["group", "experiment"] + ([f"`{by}`"] if by else []) + ["n", "seeds", "test set", "flags"]
    rows = []
    for g in groups:
        rows.append([g.gid, g.experiment] + ([str(g.by)] if by else [])
                    + [len(g.runs), ", ".join(str(s) for s in g.seeds), g.test_id, len(g.flags) or "-"])
    lines = [f"# Comparison of {len(runs)} runs in {len(groups)} groups", "",
             f"Inputs: {', '.join(f'`{i}`' for i in inputs)}. Grouped by experiment"
             + (f" and `{by}`" if by else "") + ". Cells: mean ± std over the runs of a group (sample std, "
             "n - 1) and (n); training metrics are the final epoch's. Runs whose config, test set or metrics "
             "differ are never averaged together: they form separate groups and are flagged below.", "",
             "## Groups", "", markdown_table(head, rows).rstrip(), "", "## Flags", ""]
    flagged = [(g, f) for g in groups for f in g.flags]
    lines += [f"- **{g.gid}** ({g.label}): {f}" for g, f in flagged] or ["none"]
    lines += [""]
    families: list[str] = []
    for m in metrics:
        if _family(m) not in families:
            families.append(_family(m))
    for fam in families:
        title = "training, final epoch" if fam == "train" else fam
        names = [m for m in metrics if _family(m) == fam]
        cols = [g for g in groups if any(m in g.metric_names for m in names)]
        head = ["metric"] + [f"{g.gid} {g.label}" for g in cols]
        body = [[m] + [mean_std_text(*g.stats(m)) for g in cols] for m in names]
        lines += [f"## {title}", "", markdown_table(head, body).rstrip(), ""]
    for name in horizon_names:
        xs = sorted({x for g in groups for x, *_ in g.curve(name, horizon=True)})
        if not xs:
            continue
        cols = [g for g in groups if g.curve(name, horizon=True)]
        per = {g.gid: {x: (m, s, n) for x, m, s, n in g.curve(name, horizon=True)} for g in cols}
        head = ["horizon"] + [f"{g.gid} {g.label}" for g in cols]
        body = [[f"{x:g}"] + [mean_std_text(*per[g.gid].get(x, (math.nan, math.nan, 0))) for g in cols] for x in xs]
        lines += [f"## per horizon: {name}", "", markdown_table(head, body).rstrip(), ""]
    lines += ["## Runs", ""]
    for g in groups:
        for r in g.runs:
            used = ", ".join(f"{k} `{v.name}`" for k, v in r.probes.items())
            lines.append(f"- {g.gid} seed {r.seed}: [{r.path.name}]({_link(r.path, tables_dir)})"
                         + (f" (probes: {used})" if used else ""))
    lines.append("")
    files = {"tables/compare.md": "\n".join(lines)}
    files["metrics/groups.csv"] = csv_text(
        [{"group": g.gid, "experiment": g.experiment, "by": "" if g.by is None else g.by, "n": len(g.runs),
          "seeds": " ".join(str(s) for s in g.seeds), "test_set": g.test_id, "flags": " | ".join(g.flags),
          "runs": " ".join(str(r.path) for r in g.runs)} for g in groups])
    files["metrics/summary.csv"] = csv_text(
        [{"group": g.gid, "experiment": g.experiment, "by": "" if g.by is None else g.by, "metric": m,
          "mean": _num(mu), "std": _num(sd), "n": n, "test_set": g.test_id, "flagged": int(bool(g.flags))}
         for g in groups for m in metrics for mu, sd, n in [g.stats(m)] if n])
    files["metrics/runs.csv"] = csv_text(
        [{"group": g.gid, "run": str(r.path), "seed": r.seed, **{m: r.metrics.get(m, "") for m in metrics}}
         for g in groups for r in g.runs])
    files["metrics/horizon.csv"] = csv_text(
        [{"group": g.gid, "curve": name, "horizon": x, "mean": _num(m), "std": _num(s), "n": n}
         for g in groups for name in horizon_names for x, m, s, n in g.curve(name, horizon=True)])
    files["metrics/curves.csv"] = csv_text(
        [{"group": g.gid, "curve": name, "epoch": x, "mean": _num(m), "std": _num(s), "n": n}
         for g in groups for name in g.curve_names() for x, m, s, n in g.curve(name)])
    return files


# --------------------------------------------------------------------------- plots

def _pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def _png(fig) -> bytes:
    buf = io.BytesIO()
    fig.savefig(buf, format="png", dpi=90)
    _pyplot().close(fig)
    return buf.getvalue()


def _grid(plt, count: int, width: float = 4.2, height: float = 3.0):
    cols = min(count, 3)
    rows = -(-count // cols)
    fig, axes = plt.subplots(rows, cols, figsize=(width * cols, height * rows), squeeze=False)
    for ax in axes.flat[count:]:
        ax.set_visible(False)
    return fig, list(axes.flat)


def build_plots(groups: list[Group], metrics: list[str], horizon_names: list[str], chosen: bool) -> dict[str, bytes]:
    """plots/train_curves.png (training curves), plots/horizon.png (per-horizon error curves) and
    plots/bars.png (bar charts with error bars: mean ± std over seeds), one panel per metric."""
    plt = _pyplot()
    plots: dict[str, bytes] = {}
    curve_names = [c for c in ("train.loss", "train.val_loss") if any(c in g.curve_names() for g in groups)]
    if chosen:
        curve_names = [m for m in metrics if m.startswith("train.") and any(m in g.curve_names() for g in groups)][:9]
    if curve_names:
        fig, axes = _grid(plt, len(curve_names))
        for ax, name in zip(axes, curve_names):
            for g in groups:
                pts = g.curve(name)
                if not pts:
                    continue
                x, m = [p[0] for p in pts], [p[1] for p in pts]
                s = [0.0 if math.isnan(p[2]) else p[2] for p in pts]
                ax.plot(x, m, marker="o", ms=3, color=f"C{groups.index(g) % 10}", label=f"{g.gid} {g.label} (n={len(g.runs)})")
                ax.fill_between(x, [a - b for a, b in zip(m, s)], [a + b for a, b in zip(m, s)],
                                color=f"C{groups.index(g) % 10}", alpha=0.2)
            ax.set_xlabel("epoch")
            ax.set_title(name, fontsize=9)
            ax.legend(fontsize=6)
        fig.tight_layout()
        plots["plots/train_curves.png"] = _png(fig)
    by_column: dict[str, list[str]] = {}
    for name in horizon_names:
        by_column.setdefault(name.rsplit(".", 1)[-1], []).append(name)
    if by_column:
        fig, axes = _grid(plt, len(by_column), 4.6, 3.2)
        styles = ["-", "--", ":", "-."]
        for ax, (col, names) in zip(axes, by_column.items()):
            for gi, g in enumerate(groups):
                for ni, name in enumerate(names):
                    pts = g.curve(name, horizon=True)
                    if not pts:
                        continue
                    x, m = [p[0] for p in pts], [p[1] for p in pts]
                    s = [0.0 if math.isnan(p[2]) else p[2] for p in pts]
                    predictor = name.split(".horizon.", 1)[-1].rsplit(".", 1)[0]
                    ax.errorbar(x, m, yerr=s, ls=styles[ni % len(styles)], color=f"C{gi % 10}", capsize=2,
                                label=f"{g.gid} {predictor}")
            ax.set_xlabel("horizon (frames after the context)")
            ax.set_title(col, fontsize=9)
            ax.legend(fontsize=6, ncol=2)
        fig.tight_layout()
        plots["plots/horizon.png"] = _png(fig)
    bars = [m for m in (metrics[:12] if chosen else _default_bars(groups, metrics))
            if any(g.stats(m)[2] for g in groups)]
    if bars:
        fig, axes = _grid(plt, len(bars), max(3.5, 1.0 + 0.9 * len(groups)), 3.2)
        for ax, name in zip(axes, bars):
            vals = [g.stats(name) for g in groups]
            means = [0.0 if n == 0 else m for m, _, n in vals]
            errs = [0.0 if (n < 2 or math.isnan(s)) else s for _, s, n in vals]
            ax.bar(range(len(groups)), means, yerr=errs, capsize=4, color=[f"C{i % 10}" for i in range(len(groups))])
            ax.set_xticks(range(len(groups)))
            ax.set_xticklabels([f"{g.gid}\nn={n}" for g, (_, _, n) in zip(groups, vals)], fontsize=7)
            ax.set_title(name, fontsize=8)
        fig.suptitle("mean ± std over seeds; " + ", ".join(f"{g.gid} = {g.label}" for g in groups), fontsize=7)
        fig.tight_layout()
        plots["plots/bars.png"] = _png(fig)
    return plots


def _default_bars(groups: list[Group], metrics: list[str]) -> list[str]:
    common = [m for m in metrics if all(m in g.metric_names for g in groups)] or metrics
    picked = [m for m in HEADLINE if m in common]
    return (picked or common)[:4]


# --------------------------------------------------------------------------- output folder

def write_output(root: Path, inputs: list[str], by: str | None, chosen: list[str] | None, groups: list[Group],
                 metrics: list[str], horizon_names: list[str]) -> Path:
    """Compute tables and plots, then create the output run directory complete; returns it."""
    from predvis.config import dump_yaml
    from predvis.run import atomic_write_bytes, command_line, create_run_dir, git_state

    runs: list[RunRecord] = [r for g in groups for r in g.runs]
    # links are relative to <root>/compare/<stamp>_<id>/tables: every output folder sits at that depth
    hint = Path(root).resolve() / "compare" / "x"
    files = build_tables(groups, metrics, horizon_names, by, hint, inputs)
    plots = build_plots(groups, metrics, horizon_names, bool(chosen))
    config = {"name": "compare", "kind": "compare", "inputs": inputs, "by": by, "metrics": chosen or [],
              "runs": [str(r.path) for r in runs]}
    import json

    env = {"git": git_state(), "created": time.strftime("%Y-%m-%dT%H:%M:%S%z"), "runs": len(runs),
           "groups": len(groups)}
    files.update({"config.yaml": dump_yaml(config), "cmd.txt": command_line(),
                  "env.json": json.dumps(env, indent=2, sort_keys=True) + "\n"})
    run = create_run_dir(Path(root), "compare", files)
    for name, data in plots.items():
        atomic_write_bytes(run.path / name, data)
    run.write_status("done", runs=len(runs), groups=len(groups))
    return run.path


__all__ = ["build_tables", "build_plots", "write_output", "mean_std_text"]
