"""Tables of the long profile (``make reproduce-tables PROFILE=long``): learning curves first.

The long runs train for hours in the background, so these writers read every seed's run in any state
(finished, still training, interrupted) through its ``metrics/train.csv`` and say how far each got.
Every table comes with figures of the held-out loss against steps and against training wall time
(``curves/*.png`` beside the tables), so a reader sees where the lines cross.

- ``depth_long.md``: the depth-inversion variants (B-B, B-BL, BL-B, BLT-BLT and the additive
  controls): held-out SSE at step marks, contrasts at step marks and at matched compute (each variant's
  CPU cost per step, :mod:`predvis.reproduce.step_cost`), the step at which each reaches
  the target SSE, and the paired contrasts against B-B;
- ``long_curves.md``: PVM (one-step error against copy-last) and GOPC-1 / VAE-1 (prior MSE against
  the mean frame, and how many of the predicted horizons the prior beats it at).
"""
from __future__ import annotations

import math
from pathlib import Path

from predvis.compare.groups import stats
from predvis.reproduce.curves import Curve, at_step, best, describe_progress, figure_lines, first_below, progress, read_curve
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
        rows.append([res.cell.row, c.seed, describe_progress(p), f"{last:.2f}" if last is not None else "-",
                     f"{b[DEPTH_METRIC]:.2f} at {b['step']:,}" if b else "-",
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
    costs = None
    if occluded:
        by_row: dict[str, list[Curve]] = {}
        cells = {}
        for r, c, _ in with_points:
            by_row.setdefault(r.cell.row, []).append(c)
            cells[r.cell.row] = r.cell
        marks = _milestones(max(c.steps for _, c in occluded), STEP_MARKS)
        table = [[row, len(cs)] + [_compact([at_step(c, m, DEPTH_METRIC) for c in cs if c.steps >= m]) for m in marks]
                 for row, cs in by_row.items()]
        text += ["## Held-out SSE at matched steps", "",
                 "Each run's held-out SSE at the given optimiser step, mean ± std over the seeds that reached it (their "
                 "number in brackets; '-': no run there yet). The additive rows train plain reconstruction (no depth "
                 "inversion), so they bound what the occluded variants can reach.", "",
                 markdown_table(["variant", "runs"] + [f"{m:,} steps" for m in marks], table).rstrip(), ""]
        costs = _costs(ctx, cells)
        text += _contrasts(by_row, costs)
    text += ["## Learning curves", ""]
    figure = dict(stem="depth_long", metric=DEPTH_METRIC, ylabel="held-out SSE (final step)",
                  title="Depth inversion, held-out SSE", target=DEPTH_TARGET)
    text += figure_lines(ctx.tables_dir, [c for _, c, _ in entries], **figure)
    if costs:
        seconds = costs["seconds"]
        timed = [Curve(c.run, c.label, c.seed, [{**p, "compute": p["step"] * seconds[r.cell.row]} for p in c.points])
                 for r, c, _ in entries if r.cell.row in seconds]
        text += figure_lines(ctx.tables_dir, timed, xs=("compute",), **figure)
    text += [""]
    return {name: "\n".join(text)}


STEP_MARKS = (1_000, 2_500, 5_000, 10_000, 20_000, 30_000, 40_000, 50_000, 60_000)
HOUR_MARKS = (0.05, 0.1, 0.25, 0.5, 1.0, 1.5, 2.0, 3.0, 4.0, 6.0, 8.0)


def _milestones(reached: float, marks: tuple) -> list:
    """The marks up to ``reached``, and ``reached`` itself when it lies more than 10 % past the last of them."""
    got = [m for m in marks if m <= reached]
    if not got or reached > 1.1 * got[-1]:
        got.append(round(reached, 2) if isinstance(reached, float) else reached)
    return got


def _short(v: float) -> str:
    return f"{v:.1f}" if abs(v) >= 1 else f"{v:.2f}"


def _compact(values: list[float | None]) -> str:
    vals = [v for v in values if v is not None and math.isfinite(v)]
    if not vals:
        return "-"
    mean, std, n = stats(vals)
    return f"{_short(mean)} ± {_short(std)} ({n})" if n > 1 else f"{_short(mean)} (1)"


def _costs(ctx, cells: dict) -> dict | None:
    """:func:`predvis.reproduce.step_cost.step_costs` of every variant (seconds per step on one thread,
    when and at what load measured), or None without a runs root."""
    if ctx.runs_root is None:
        return None
    from predvis.reproduce.step_cost import step_costs

    variants = {row: (cell.experiment, cell.profile or ctx.profile, list(cell.overrides)) for row, cell in cells.items()}
    return step_costs(ctx.runs_root, variants)


def _contrasts(by_row: dict[str, list[Curve]], costs: dict | None) -> list[str]:
    """Paired by seed, at step marks and (with ``costs``) at marks of compute: each variant minus B-B
    (an additive control: its occluded variant minus it)."""
    ref = {c.seed: c for c in by_row.get(REFERENCE, [])}
    if not ref:
        return []
    pairs = []   # (label, cost row, [(variant curve, reference curve)], the reference's row, additive)
    for row, cs in by_row.items():
        if row == REFERENCE:
            continue
        additive = "additive" in row
        base = row.replace(" additive", "") if additive else REFERENCE
        other = {c.seed: c for c in by_row.get(base, [])}
        paired = [(c, other[c.seed]) for c in cs if c.seed in other]
        if paired:
            label = f"{base} (occluded) - {row}" if additive else f"{row} - {REFERENCE}"
            pairs.append((label, row, paired, base, additive))
    if not pairs:
        return []

    def diff(a, b, additive):
        return None if a is None or b is None else (b - a if additive else a - b)

    reached = max(min(c.steps, r.steps) for _, _, paired, _, _ in pairs for c, r in paired)
    marks = _milestones(reached, STEP_MARKS)
    rows = []
    for label, row, paired, base, additive in pairs:
        cols, last, at = [], [], ""
        for m in marks:
            d = [x for c, r in paired if min(c.steps, r.steps) >= m
                 if (x := diff(at_step(c, m, DEPTH_METRIC), at_step(r, m, DEPTH_METRIC), additive)) is not None]
            cols.append(_compact(d))
            if d and len(d) == len(paired):
                last, at = d, f" (at {m:,} steps)"
        rows.append([label, len(paired)] + cols + [_verdict(last, additive) + at])
    text = ["## Contrasts (paired by seed)", "",
            "Difference in held-out SSE (negative: the first variant is better) at the same optimiser step, mean ± "
            "std over the seeds where both runs reached it (their number in brackets). For an additive row: occluded "
            "minus additive SSE of the same variant, the extra error that depth inversion costs. Verdict: at the "
            "last step that every seed of the contrast reached.", "",
            markdown_table(["contrast", "seeds"] + [f"{m:,} steps" for m in marks] + ["verdict"], rows).rstrip(), ""]
    if not costs or any(row not in costs["seconds"] for _, row, _, _, _ in pairs) or REFERENCE not in costs["seconds"]:
        return text
    when = f"measured {costs['measured']} at load average {costs['load']}"
    cost_text = ", ".join(f"{row} {1e3 * v:.0f} ms" for row, v in costs["seconds"].items())
    costs = costs["seconds"]
    hours = max(min(c.steps * costs[row], r.steps * costs[base]) for _, row, paired, base, _ in pairs
                for c, r in paired) / 3600
    hmarks = _milestones(hours, HOUR_MARKS)
    rows = []
    for label, row, paired, base, additive in pairs:
        cols, last, at = [], [], ""
        for h in hmarks:
            sv, sr = h * 3600 / costs[row], h * 3600 / costs[base]
            d = [x for c, r in paired if c.steps >= sv - 1 and r.steps >= sr - 1
                 if (x := diff(at_step(c, sv, DEPTH_METRIC), at_step(r, sr, DEPTH_METRIC), additive)) is not None]
            cols.append(_compact(d))
            if d and len(d) == len(paired):
                last, at = d, f" (at {h:g} h)"
        rows.append([label, len(paired)] + cols + [_verdict(last, additive) + at])
    text += ["## Contrasts at matched compute", "",
             "The same differences at equal compute instead of equal steps: each run at the step its variant reaches "
             "after the given hours of one CPU thread, from each variant's cost per training step (data generation "
             "included) measured side by side in one process on this machine (`step_costs.json` in the runs root, "
             f"{when}; CPU time per step: {cost_text}). This replaces the runs' own wall times, which the shared machine's "
             "load distorts by factors of 2 or more between runs of the same variant.", "",
             markdown_table(["contrast", "seeds"] + [f"{h:g} h" for h in hmarks] + ["verdict"], rows).rstrip(), ""]
    return text


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


BASELINE_NAMES = {"val_copy_last": "copy last frame (baseline)", "val_mean_frame_mse": "mean frame (baseline)"}


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
            extra = []
            if method == "gopc":
                extra = [f"{int(last['val_prior_horizons_beaten'])}; worst ratio "
                         f"{fmt(last.get('val_prior_worst_ratio', math.nan))}" if "val_prior_horizons_beaten" in last else "-"]
            if reached:
                verdict = f"step {reached['step']:,} ({reached['wall'] / 3600:.2f} h)"
            else:   # a finished run did not get there; a live or interrupted one may still
                verdict = f"not reached in {c.steps:,} steps" if p["state"] == "done" else "not yet"
            rows.append([res.cell.row, c.seed, describe_progress(p), fmt(last.get(metric, math.nan)) if last else "-",
                         fmt(last.get(base, math.nan)) if last and base else "-", *extra, verdict,
                         ctx.link(c.run, "run")])
        text += [f"## {', '.join(dict.fromkeys(r.cell.row for r, _, _ in entries))}", "",
                 markdown_table(["model", "seed", "state", f"{metric} now", f"{base} now" if base else "baseline",
                                 *(["horizons beaten"] if method == "gopc" else []), goal, "run"], rows).rstrip(), ""]
        text += figure_lines(ctx.tables_dir, [c for _, c, _ in entries], f"long_{method}", metric, ylabel,
                             f"{', '.join(dict.fromkeys(r.cell.row for r, _, _ in entries))}", baseline=base,
                             baseline_label=BASELINE_NAMES.get(base, f"{base} (baseline)"), log_y=method == "gopc")
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
