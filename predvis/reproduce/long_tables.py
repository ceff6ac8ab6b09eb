"""Tables of the long profile (``make reproduce-tables PROFILE=long``): learning curves first.

The long runs train for hours in the background, so these writers read every seed's run in any state
(finished, still training, interrupted) through its ``metrics/train.csv`` and say how far each got.
Every table comes with figures of the held-out loss against steps and against training wall time
(``curves/*.png`` beside the tables), so a reader sees where the lines cross.

- ``depth_long.md``: the depth-inversion variants (B-B, B-BL, BL-B, BLT-BLT and the additive
  controls): held-out SSE at matched steps and at matched wall time, the step at which each reaches
  the target SSE, and the paired contrasts against B-B;
- ``long_curves.md``: PVM (one-step error against copy-last) and GOPC-1 / VAE-1 (prior MSE against
  the mean frame, and how many of the predicted horizons the prior beats it at).
"""
from __future__ import annotations

import math
from pathlib import Path

from predvis.compare.groups import stats
from predvis.reproduce.curves import Curve, at_step, at_wall, best, describe_progress, first_below, plot, progress, read_curve
from predvis.tables import fmt, markdown_table

DEPTH_METRIC = "held_out_sse"
DEPTH_TARGET = 30.0          # the stopping point for B-B (the DIAE poster's B-B: 24.7)
REFERENCE = "B-B"


def _curves(ctx, results) -> list[tuple[object, Curve, dict]]:
    out = []
    for res in results:
        for seed, run in sorted(res.runs, key=lambda t: t[0]):
            out.append((res, read_curve(run, res.cell.row, seed), progress(run)))
    return out


def _ms(values: list[float]) -> str:
    mean, std, n = stats([v for v in values if v is not None and math.isfinite(v)])
    if n == 0:
        return "-"
    return f"{fmt(mean)} ± {fmt(std)} (n={n})" if n > 1 else f"{fmt(mean)} (n=1)"


def _figures(ctx, curves: list[Curve], stem: str, metric: str, ylabel: str, title: str, **kw) -> list[str]:
    lines = []
    for x, word in (("step", "steps"), ("wall", "wall time")):
        path = plot(curves, metric, ctx.tables_dir / "curves" / f"{stem}_{word.replace(' ', '_')}.png", x=x,
                    ylabel=ylabel, title=f"{title} against {word}", **kw)
        if path is not None:
            lines.append(f"![{title} against {word}](curves/{path.name})")
    return lines


# --------------------------------------------------------------------------- depth inversion

def write_depth_long(ctx, results) -> dict[str, str]:
    name = "depth_long.md"
    entries = _curves(ctx, results)
    with_points = [(r, c, p) for r, c, p in entries if c.has(DEPTH_METRIC)]
    text = [f"# Depth inversion: long CPU runs ({ctx.profile} profile)", "",
            "Each variant trained on font digits with fresh scenes every step (batch 32, Adam 1e-3, no decay), one "
            "thread, in the background (docs/scaling.md). **Held-out SSE**: summed squared error of the final "
            "output step per image, mean over the 1,000 held-out-pair test scenes (the pairs never seen in "
            "training), scored after every 500 steps (`held_out_sse` in the run's `metrics/train.csv`; "
            "docs/metrics.md). Wall time: the training time of the epochs (validation excluded) on a shared "
            f"2-core CPU, so its speed varies with the load. Target: held-out SSE <= {fmt(DEPTH_TARGET)} "
            "for B-B (the DIAE poster's B-B reaches 24.7).", ""]
    if not with_points:
        text += ["No run has finished its first 500 steps yet.", ""]
    rows = []
    for res, c, p in entries:
        last = c.points[-1].get(DEPTH_METRIC) if c.points else None
        b = best(c, DEPTH_METRIC)
        hit = first_below(c, DEPTH_METRIC, DEPTH_TARGET)
        rows.append([res.cell.row, c.seed, describe_progress(p), fmt(last) if last is not None else "-",
                     f"{fmt(b[DEPTH_METRIC])} at {b['step']:,}" if b else "-",
                     f"step {hit['step']:,} ({hit['wall'] / 3600:.2f} h)" if hit else "not yet",
                     f"{c.steps / c.wall:.2f}" if c.wall else "-", ctx.link(c.run, "run")])
        for pt in c.points:
            if DEPTH_METRIC in pt:
                ctx.values.append({"file": name, "row": res.cell.row, "quantity": f"held-out SSE at step {pt['step']}",
                                   "seed": c.seed, "value": pt[DEPTH_METRIC],
                                   "source": _rel(ctx, c.run / "metrics" / "train.csv"), "field": f"csv-step:{pt['step']}:{DEPTH_METRIC}"})
    text += ["## Progress of every run", "",
             markdown_table(["variant", "seed", "state", f"held-out SSE now", "best (step)",
                             f"first <= {fmt(DEPTH_TARGET)}", "steps / s", "run"], rows).rstrip(), ""]
    occluded = [(r, c) for r, c, _ in with_points if "additive" not in r.cell.row]
    if occluded:
        s_match = min(c.steps for _, c in occluded)
        w_match = min(c.wall for _, c in occluded)
        by_row: dict[str, list[Curve]] = {}
        for r, c, _ in with_points:
            by_row.setdefault(r.cell.row, []).append(c)
        table = [[row, len(cs), _ms([at_step(c, s_match, DEPTH_METRIC) for c in cs]),
                  _ms([at_wall(c, w_match, DEPTH_METRIC) for c in cs]),
                  f"{min(c.steps for c in cs):,}-{max(c.steps for c in cs):,}"] for row, cs in by_row.items()]
        text += ["## Matched steps and matched wall time", "",
                 f"Every occluded run has reached at least **{s_match:,} steps** and **{w_match / 3600:.2f} h** of "
                 "training; the values below are each run's held-out SSE at its last point at or before these "
                 "(mean ± std over seeds). The additive rows use the same points; their task is plain reconstruction "
                 "(no depth inversion), so they bound what the occluded variants can reach.", "",
                 markdown_table(["variant", "runs", f"held-out SSE at {s_match:,} steps",
                                 f"at {w_match / 3600:.2f} h", "steps reached"], table).rstrip(), ""]
        text += _contrasts(by_row)
    text += ["## Learning curves", ""]
    text += _figures(ctx, [c for _, c, _ in entries], "depth_long", DEPTH_METRIC, "held-out SSE (final step)",
                     "Depth inversion, held-out SSE", target=DEPTH_TARGET)
    text += [""]
    return {name: "\n".join(text)}


def _contrasts(by_row: dict[str, list[Curve]]) -> list[str]:
    """Paired by seed: variant minus B-B at the steps (and the wall time) both runs of the seed reached."""
    ref = {c.seed: c for c in by_row.get(REFERENCE, [])}
    if not ref:
        return []
    rows = []
    for row, cs in by_row.items():
        if row == REFERENCE:
            continue
        other_ref = ref
        if "additive" in row:   # the additive control pairs with its own occluded variant
            base = row.replace(" additive", "")
            other_ref = {c.seed: c for c in by_row.get(base, [])}
            label = f"{base} (occluded) - {row}"
        else:
            label = f"{row} - {REFERENCE}"
        d_step, d_wall, where = [], [], []
        for c in cs:
            r = other_ref.get(c.seed)
            if r is None:
                continue
            s, w = min(c.steps, r.steps), min(c.wall, r.wall)
            a, b = at_step(c, s, DEPTH_METRIC), at_step(r, s, DEPTH_METRIC)
            aw, bw = at_wall(c, w, DEPTH_METRIC), at_wall(r, w, DEPTH_METRIC)
            if a is not None and b is not None:
                d_step.append(-(a - b) if "additive" in row else a - b)
            if aw is not None and bw is not None:
                d_wall.append(-(aw - bw) if "additive" in row else aw - bw)
            where.append(f"s{c.seed}: {s:,} steps, {w / 3600:.2f} h")
        if not where:
            continue
        rows.append([label, _ms(d_step), _verdict(d_step, "additive" in row), _ms(d_wall),
                     _verdict(d_wall, "additive" in row), "; ".join(where)])
    if not rows:
        return []
    return ["## Contrasts (paired by seed)", "",
            "Difference in held-out SSE (negative: the first variant is better), each seed at the steps and at the "
            "wall time that both of its runs reached. For an additive row: occluded minus additive SSE of the same "
            "variant, the extra error that depth inversion costs.", "",
            markdown_table(["contrast", "at matched steps", "verdict", "at matched wall time", "verdict", "matched at"],
                           rows).rstrip(), ""]


def _verdict(diffs: list[float], cost: bool) -> str:
    if not diffs:
        return "not measurable yet"
    if cost:
        return f"costs more than reconstruction in {sum(d > 0 for d in diffs)} of {len(diffs)} seeds"
    better = sum(d < 0 for d in diffs)
    if better == len(diffs):
        return f"beats B-B in all {len(diffs)} seed(s)"
    if better == 0:
        return f"does not beat B-B (0 of {len(diffs)} seeds)"
    return f"mixed: beats B-B in {better} of {len(diffs)} seeds"


# --------------------------------------------------------------------------- PVM, GOPC-1, VAE-1

# method -> (metric, baseline, y label, what "reached" means)
CURVES = {
    "pvm": ("val_loss", "val_copy_last", "one-step error, held-out (mean |prediction - frame|)",
            "one-step error <= copy-last"),
    "gopc": ("val_prior_mse", "val_mean_frame_mse", "prior MSE after the context, validation",
             "prior beats the mean frame at every horizon"),
}


def write_long_curves(ctx, results) -> dict[str, str]:
    name = "long_curves.md"
    text = [f"# Long CPU runs: learning curves of PVM, GOPC-1 and VAE-1 ({ctx.profile} profile)", "",
            "Each model trained in the background on one thread (docs/scaling.md), its validation scored after "
            "every epoch (`metrics/train.csv`). PVM: one-step error on the held-out videos (learning frozen) "
            "against the copy-last-frame baseline `val_copy_last`. GOPC-1 / VAE-1: prior MSE on the frames after "
            "the context against the mean-frame baseline, `val_prior_horizons_beaten` = the horizons at which "
            "the prior is below the mean frame, `val_prior_worst_ratio` = the largest prior / mean-frame ratio "
            "over horizons (docs/metrics.md). The probes (lesion, blind spot, predict) run when training has "
            "finished; their tables are beside this one.", ""]
    groups: dict[str, list] = {}
    for res, c, p in _curves(ctx, results):
        method = str(res.cell.experiment)
        groups.setdefault(_method_of(c) or method, []).append((res, c, p))
    if not groups:
        text += ["No run has started yet.", ""]
    for method, entries in groups.items():
        metric, base, ylabel, goal = CURVES.get(method, ("val_loss", None, "validation loss", "-"))
        rows = []
        for res, c, p in entries:
            last = c.points[-1] if c.points else {}
            reached = _reached(method, c)
            extra = ""
            if method == "gopc" and "val_prior_horizons_beaten" in last:
                extra = f"{int(last['val_prior_horizons_beaten'])}; worst ratio {fmt(last.get('val_prior_worst_ratio', math.nan))}"
            rows.append([res.cell.row, c.seed, describe_progress(p), fmt(last.get(metric, math.nan)) if last else "-",
                         fmt(last.get(base, math.nan)) if last and base else "-", extra or "-",
                         f"step {reached['step']:,} ({reached['wall'] / 3600:.2f} h)" if reached else "not yet",
                         ctx.link(c.run, "run")])
        text += [f"## {', '.join(dict.fromkeys(r.cell.row for r, _, _ in entries))}", "",
                 markdown_table(["model", "seed", "state", f"{metric} now", f"{base} now" if base else "baseline",
                                 "horizons beaten" if method == "gopc" else "-", goal, "run"], rows).rstrip(), ""]
        text += _figures(ctx, [c for _, c, _ in entries], f"long_{method}", metric, ylabel,
                         f"{', '.join(dict.fromkeys(r.cell.row for r, _, _ in entries))}", baseline=base,
                         baseline_label=f"{base} (baseline)", log_y=method == "gopc")
        text += [""]
    return {name: "\n".join(text)}


def _method_of(c: Curve) -> str | None:
    import yaml

    try:
        return str(yaml.safe_load((c.run / "config.yaml").read_text()).get("method"))
    except (OSError, AttributeError, yaml.YAMLError):
        return None


def _reached(method: str, c: Curve) -> dict | None:
    for p in c.points:
        if method == "pvm" and "val_loss" in p and "val_copy_last" in p and p["val_loss"] <= p["val_copy_last"]:
            return p
        if method == "gopc" and "val_prior_mse" in p and p.get("val_prior_worst_ratio", math.inf) < 1.0:
            return p
    return None


def _rel(ctx, path: Path) -> str:
    import os

    return os.path.relpath(Path(path).resolve(), ctx.tables_dir.resolve())
