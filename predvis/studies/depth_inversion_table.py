"""Build ``tables/depth_inversion.md`` from a study folder (records in jobs/, losses in losses/).

Definitions (docs/depth_inversion.md): a model's loss on a test set is the mean over its test
images of the final-step per-image SSE (sum over the 1,024 pixels of (sigmoid(output) - target)^2);
cells give mean and std of that over seeds. Contrasts are paired over the same test images: each
image's loss is averaged over seeds and over the variants of a group, then the two groups are
compared by a paired t-test and a Wilcoxon signed-rank test (scipy.stats).
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

# the four encoder / decoder wirings the study crosses (the backend checks each name when it builds a model);
# written here, not looked up, so importing the CLI does not load every backend
VARIANTS: tuple[str, ...] = ("B", "BL", "BT", "BLT")

RECURRENT = [(e, d) for e in VARIANTS for d in VARIANTS if (e, d) != ("B", "B")]
CONTRASTS = [
    ("recurrent (15 variants) vs feed-forward B-B", RECURRENT, [("B", "B")], "held_out"),
    ("BLT-BLT vs B-B", [("BLT", "BLT")], [("B", "B")], "held_out"),
    ("lateral only {B-BL, BL-B, BL-BL} vs top-down only {B-BT, BT-B, BT-BT}",
     [("B", "BL"), ("BL", "B"), ("BL", "BL")], [("B", "BT"), ("BT", "B"), ("BT", "BT")], "held_out"),
    ("decoder recurrence {B-BL, B-BT, B-BLT} vs encoder recurrence {BL-B, BT-B, BLT-B}",
     [("B", "BL"), ("B", "BT"), ("B", "BLT")], [("BL", "B"), ("BT", "B"), ("BLT", "B")], "held_out"),
    ("decoder BL vs decoder BLT (B-BL vs B-BLT)", [("B", "BL")], [("B", "BLT")], "held_out"),
    ("encoder recurrence added to a BLT decoder (BLT-BLT vs B-BLT)", [("BLT", "BLT")], [("B", "BLT")], "held_out"),
    ("seen pairs: recurrent (15) vs B-B", RECURRENT, [("B", "B")], "seen"),
    ("BLT-BLT vs parameter-matched wide B-B", [("BLT", "BLT")], [("Bw", "Bw")], "held_out"),
]


def _load(study: Path) -> tuple[list[dict], dict[str, dict]]:
    records = [json.loads(p.read_text()) for p in sorted((study / "jobs").glob("*.json"))]
    losses = {}
    for r in records:
        with np.load(study / "losses" / f"{r['tag']}.npz") as z:
            losses[r["tag"]] = {k: z[k] for k in z.files}
    return records, losses


def _pick(records, kind, steps):
    out: dict[tuple[str, str], list[dict]] = {}
    for r in records:
        if r["kind"] == kind and r["steps"] == steps:
            out.setdefault((r["enc"], r["dec"]), []).append(r)
    return out


def _per_image(groups, losses, variants, key) -> np.ndarray | None:
    """Per-image final-step loss averaged over seeds and over ``variants``; None if any is missing."""
    per = []
    for v in variants:
        runs = groups.get(v)
        if not runs or any(key not in losses[r["tag"]] for r in runs):
            return None
        per.append(np.mean([losses[r["tag"]][key][-1] if losses[r["tag"]][key].ndim == 2 else losses[r["tag"]][key]
                            for r in runs], 0))
    return np.mean(per, 0)


def _seed_means(groups, losses, variants, key) -> list[float]:
    """Per seed: the mean test loss of the group (variants averaged); seeds all variants share."""
    seeds = None
    for v in variants:
        s = {r["seed"] for r in groups.get(v, [])}
        seeds = s if seeds is None else seeds & s
    out = []
    for seed in sorted(seeds or []):
        vals = [float(losses[r["tag"]][key][-1].mean()) for v in variants for r in groups[v] if r["seed"] == seed]
        out.append(float(np.mean(vals)))
    return out


def _test(a: np.ndarray, b: np.ndarray) -> tuple[float, float, float]:
    from scipy import stats

    d = a - b
    if np.allclose(d, 0):
        return 0.0, 1.0, 1.0
    t = stats.ttest_rel(a, b)
    w = stats.wilcoxon(a, b)
    return float(t.statistic), float(t.pvalue), float(w.pvalue)


def _ms(values: list[float]) -> str:
    if not values:
        return "-"
    if len(values) == 1:
        return f"{values[0]:.2f}"
    return f"{np.mean(values):.2f} ± {np.std(values, ddof=1):.2f}"


def _p(p: float) -> str:
    if p < 1e-300:
        return "< 1e-300"
    return f"{p:.1e}" if p < 1e-3 else f"{p:.3f}"


def write_table(study: Path) -> str:
    from predvis.run import atomic_write_text

    study = Path(study)
    records, losses = _load(study)
    meta = json.loads((study / "study.json").read_text()) if (study / "study.json").exists() else {}
    steps = max([r["steps"] for r in records if r["kind"] == "occluded"] or [4], key=lambda s: sum(
        1 for r in records if r["kind"] == "occluded" and r["steps"] == s))
    grid = [(e, d) for e in VARIANTS for d in VARIANTS]
    seeds = sorted({r["seed"] for r in records})
    complete = [sd for sd in seeds if all(any(r["kind"] == "occluded" and r["steps"] == steps and r["seed"] == sd
                                              and (r["enc"], r["dec"]) == v for r in records) for v in grid)]
    ignored = [sd for sd in seeds if sd not in complete] if complete else []
    if ignored:  # compare like with like: only seeds with all 16 variants
        records = [r for r in records if r["seed"] in complete]
    occ, add = _pick(records, "occluded", steps), _pick(records, "additive", steps)
    n_test = len(next(iter(losses.values()))["held_out_sharp"]) if losses else 0
    lines = [f"# Depth inversion: 16 encoder x decoder variants ({meta.get('profile', '?')} profile)", "",
             f"Study folder `{study}`; {len(records)} finished models of {len(meta.get('jobs', [])) or '?'} planned. "
             "Loss = per-image SSE over the 1,024 pixels (sum of (sigmoid(output) - target)^2), final output step, "
             f"mean over {n_test:,} test scenes; cells: mean ± std over seeds (n = seeds finished). Per-pixel MSE = "
             "SSE / 1024. held-out: pairs never seen together in training; seen: trained pairs, new digit images; "
             "additive: the held-out scenes blended without occlusion, for models trained on additive scenes "
             "(target = input). sharp: final-output sharpness / target's (sum of squared pixel differences; "
             "1 = as sharp as the target). Bw-Bw: B-B widened to BLT-BLT's parameter count. See docs/depth_inversion.md.", ""]
    if ignored:
        lines += [f"Seeds with all 16 variants: {complete}; models of incomplete seeds {ignored} are left out.", ""]
    head = "| encoder | decoder | params | held-out SSE | held-out MSE | seen SSE | additive SSE | sharp (held-out) | n | train s |"
    lines += [head, "|" + "---|" * 10]
    for enc, dec in [(e, d) for e in VARIANTS for d in VARIANTS] + [("Bw", "Bw")]:
        runs = occ.get((enc, dec), [])
        adds = add.get((enc, dec), [])
        if not runs and not adds:
            continue
        ho = [float(losses[r["tag"]]["held_out_sse"][-1].mean()) for r in runs]
        se = [float(losses[r["tag"]]["seen_sse"][-1].mean()) for r in runs]
        ad = [float(losses[r["tag"]]["held_out_sse"][-1].mean()) for r in adds]
        sh = [float(losses[r["tag"]]["held_out_sharp"].mean()) for r in runs]
        params = (runs or adds)[0]["params"]
        secs = np.mean([r["seconds"] for r in runs]) if runs else float("nan")
        mse = f"{np.mean(ho) / 1024:.4f}" if ho else "-"
        lines.append(f"| {enc} | {dec} | {params:,} | {_ms(ho)} | {mse} | {_ms(se)} | {_ms(ad)} | {_ms(sh)} | "
                     f"{len(runs)} | {secs:.0f} |")
    # matrix view
    lines += ["", "Held-out SSE (mean over seeds), encoder rows x decoder columns:", "",
              "| enc \\ dec | " + " | ".join(VARIANTS) + " |", "|" + "---|" * (len(VARIANTS) + 1)]
    for enc in VARIANTS:
        cells = []
        for dec in VARIANTS:
            runs = occ.get((enc, dec), [])
            cells.append(f"{np.mean([losses[r['tag']]['held_out_sse'][-1].mean() for r in runs]):.2f}" if runs else "-")
        lines.append(f"| {enc} | " + " | ".join(cells) + " |")
    # contrasts
    lines += ["", "## Paired contrasts over the same test images", "",
              "Per image: loss averaged over seeds and over the group's variants; A - B < 0 means A is better. "
              "Seed-level: group means per seed (A; B).", "",
              "| contrast (A vs B) | test set | A mean | B mean | A - B | relative | t | p (t-test) | p (Wilcoxon) | per seed A; B |",
              "|" + "---|" * 10]
    for name, ga, gb, key in CONTRASTS:
        a = _per_image(occ, losses, ga, f"{key}_sse")
        b = _per_image(occ, losses, gb, f"{key}_sse")
        if a is None or b is None:
            planned = {(j["enc"], j["dec"]) for j in meta.get("jobs", []) if j.get("kind") == "occluded"}
            why = "not all models finished" if not meta.get("jobs") or set(ga + gb) <= planned else \
                "not in this study's plan"
            lines.append(f"| {name} | {key} | ({why}) |" + " |" * 7)
            continue
        t, p, pw = _test(a, b)
        sa = ", ".join(f"{v:.2f}" for v in _seed_means(occ, losses, ga, f"{key}_sse"))
        sb = ", ".join(f"{v:.2f}" for v in _seed_means(occ, losses, gb, f"{key}_sse"))
        lines.append(f"| {name} | {key} | {a.mean():.2f} | {b.mean():.2f} | {a.mean() - b.mean():+.2f} | "
                     f"{(a.mean() - b.mean()) / b.mean():+.1%} | {t:.2f} | {_p(p)} | {_p(pw)} | {sa}; {sb} |")
    # occluded vs additive gain
    rec = [v for v in add if v != ("B", "B") and v in occ]
    lines += ["", "## Gain of recurrence with and without occlusion", ""]
    if ("B", "B") in add and ("B", "B") in occ and rec:
        go = 1 - _per_image(occ, losses, rec, "held_out_sse") / np.maximum(_per_image(occ, losses, [("B", "B")], "held_out_sse"), 1e-9)
        ga_ = 1 - _per_image(add, losses, rec, "held_out_sse") / np.maximum(_per_image(add, losses, [("B", "B")], "held_out_sse"), 1e-9)
        t, p, pw = _test(go, ga_)
        names = ", ".join(f"{e}-{d}" for e, d in rec)
        lines += ["Relative gain per scene = 1 - loss(recurrent) / loss(B-B), recurrent = mean over "
                  f"{names}; occluded and additive test scenes hold the same digits at the same positions.", "",
                  "| gain occluded | gain additive | occluded - additive | t | p (t-test) | p (Wilcoxon) |",
                  "|---|---|---|---|---|---|",
                  f"| {go.mean():+.1%} | {ga_.mean():+.1%} | {go.mean() - ga_.mean():+.1%} | {t:.2f} | {_p(p)} | {_p(pw)} |"]
    else:
        lines.append("(needs B-B and at least one recurrent variant trained on both occluded and additive scenes)")
    # unroll sweep
    lines += ["", "## Unroll steps", "",
              "Trained with T steps (held-out SSE, mean ± std over the seeds that ran it):", "",
              "| model | " + " | ".join(f"T={s}" for s in (1, 2, 4, 8)) + " |", "|---|---|---|---|---|"]
    for v in (("B", "B"), ("BLT", "BLT")):
        cells = []
        for s in (1, 2, 4, 8):
            runs = _pick(records, "occluded", s).get(v, [])
            cells.append(_ms([float(losses[r["tag"]]["held_out_sse"][-1].mean()) for r in runs]))
        lines.append(f"| {v[0]}-{v[1]} | " + " | ".join(cells) + " |")
    lines += ["", f"Trained with T={steps}, run for more or fewer steps (held-out SSE at the last step; "
              "shared normalisation lets the model run past its training horizon):", "",
              "| model | " + " | ".join(f"{s} steps" for s in (1, 2, 4, 8, 16)) + " |", "|---|---|---|---|---|---|"]
    for v in (("B", "B"), ("BLT", "BLT")):
        runs = [r for r in occ.get(v, []) if "long1_sse" in losses[r["tag"]]]
        cells = [_ms([float(losses[r["tag"]][f"long{s}_sse"][-1].mean()) for r in runs]) for s in (1, 2, 4, 8, 16)]
        lines.append(f"| {v[0]}-{v[1]} | " + " | ".join(cells) + " |")
    lines += ["", "Figures (input, target, output at every step; PNG grid and GIF over steps): `figures/<model>.png|gif` "
              "in the study folder and `frames/`, `gifs/` of each run.", ""]
    text = "\n".join(lines)
    atomic_write_text(study / "tables" / "depth_inversion.md", text)
    return text
