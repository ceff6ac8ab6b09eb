"""The sleep table: before / after / wake-only control, and the verdicts read from them."""
from __future__ import annotations

import math

import torch

from predvis.probes import attractors as A
from predvis.probes.sleep.cycles import CycleRow
from predvis.probes.sleep.measure import Evaluation
from predvis.probes.sleep.settings import PREDICTION_LIMIT, SleepSettings



def _mean(v) -> float:
    v = [float(x) for x in v]
    return sum(v) / len(v) if v else float("nan")


def _stats(ev: Evaluation, idx: list[int], steps: int) -> dict:
    """Numbers for the dreams ``idx`` of one evaluation."""
    sett = [ev.settled[i] for i in idx]
    found = [st for st in sett if st is not None]
    lab = [ev.labels[k] for k, o in enumerate(ev.owners) if o in idx]
    n = max(len(idx), 1)
    largest = max((lab.count(x) for x in set(lab)), default=0)
    return {
        "dreams": len(idx),
        "settled": len(found) / n,
        "fixed": sum(st.period == 1 for st in found) / n,
        "cycles": sum(st.period > 1 for st in found) / n,
        "settle_step": _mean(st.step for st in found),
        "length": _mean(st.step if st is not None else steps for st in sett),
        "attractors": len(set(lab)),
        "largest": largest / len(found) if found else float("nan"),
    }


def summarise(before: Evaluation, after: Evaluation, shifts: dict, kinds: list[str], steps: int,
              s: SleepSettings, control: Evaluation | None = None) -> dict:
    """Everything in the tables; 'control' entries only with a wake-only control."""
    all_idx = list(range(len(kinds)))
    spans = A.buckets(steps, s.buckets)
    evs = {"before": before, "after": after}
    if control is not None:
        evs["control"] = control
    out = {"phases": list(evs), "spans": spans,
           "all": {k: _stats(ev, all_idx, steps) for k, ev in evs.items()},
           "diversity": {k: [float(ev.div[a:b].mean()) for a, b in spans] for k, ev in evs.items()},
           "energy": {"before": _mean(before.energy.tolist()), **{k: _mean(v.tolist()) for k, v in shifts.items()}},
           "kinds": {}, "error": {}, "sequences": int(before.err_abs.shape[0])}
    for kind in ("noise", "grey", "real"):
        idx = [i for i, k in enumerate(kinds) if k == kind]
        if idx:
            out["kinds"][kind] = {k: _stats(ev, idx, steps) for k, ev in evs.items()}
    lengths = {k: torch.tensor([float(st.step if st is not None else steps) for st in ev.settled], dtype=torch.float64)
               for k, ev in evs.items()}
    out["paired"] = {}
    for k in [p for p in evs if p != "after"]:  # per start: sleep minus before / control
        d = lengths["after"] - lengths[k]
        se = float(d.std() / math.sqrt(len(d))) if len(d) > 1 else float("nan")
        out["paired"][k] = {"mean": float(d.mean()), "se": se}
    for name in ("sq", "abs"):
        e = {k: float(getattr(ev, f"err_{name}").mean()) for k, ev in evs.items()}
        for k in list(e):
            if k != "before":
                rel = e[k] / e["before"] - 1 if e["before"] > 0 else float("nan")
                e[f"{k}_relative"], e[f"{k}_pass"] = rel, bool(rel <= PREDICTION_LIMIT)
        out["error"][name] = e
    return out


def summary_rows(summary: dict, steps: int) -> tuple[list[str], list[list]]:
    """(header, rows) of the main table: metric, before, after sleep, change[, wake-only control]."""
    ph = summary["phases"]
    al, en, dv, er = summary["all"], summary["energy"], summary["diversity"], summary["error"]
    stat = lambda key: [al[p][key] for p in ph]  # noqa: E731
    rows = [
        [f"dreams settled within {steps} steps (fixed point or cycle), fraction", *stat("settled")],
        ["  settled on a fixed point, fraction", *stat("fixed")],
        ["  settled on a cycle (period >= 2), fraction", *stat("cycles")],
        ["mean steps to settle (settled dreams)", *stat("settle_step")],
        [f"mean dream length (steps before settling; {steps} if never)", *stat("length")],
        ["distinct attractors (clusters)", *stat("attractors")],
        ["largest attractor's share of settled dreams", *stat("largest")],
        ["settling energy at the attractors found before sleep", *[en.get(p, float("nan")) for p in ph]],
    ]
    for i, (lo, hi) in enumerate(summary["spans"]):
        rows.append([f"dream diversity, steps {lo + 1}-{hi}", *[dv[p][i] for p in ph]])
    rows.append(["held-out prediction error, mean squared", *[er["sq"][p] for p in ph]])
    rows.append(["held-out prediction error, mean abs", *[er["abs"][p] for p in ph]])
    diff = lambda x, y: y - x if isinstance(x, (int, float)) and isinstance(y, (int, float)) else float("nan")  # noqa: E731
    out = [row + [diff(row[1], row[2])] + ([diff(row[3], row[2])] if len(ph) > 2 else []) for row in rows]
    head = ["metric", "before", "after sleep"]
    if "control" in ph:
        head += ["wake only (control)", "sleep - before", "sleep - control"]
    else:
        head += ["sleep - before"]
    return head, out


def _verdict(e: dict, label: str, phase: str) -> str:
    from predvis.tables import fmt

    rel = e[f"{phase}_relative"]
    return (f"{label} {fmt(e['before'])} -> {fmt(e[phase])} ({rel * 100:+.1f} %): "
            f"{'PASS' if e[f'{phase}_pass'] else 'FAIL'}")


def sleep_markdown(summary: dict, settings: dict, name: str, rows: list[CycleRow]) -> str:
    from predvis.tables import fmt, markdown_table

    steps = settings["dream_steps"]
    head, main = summary_rows(summary, steps)
    ph = summary["phases"]
    kinds = []
    for kind, v in summary["kinds"].items():
        kinds.append([kind, v["before"]["dreams"]] + [v[p][key] for key in ("settled", "length", "attractors")
                                                      for p in ph])
    err = summary["error"]
    b, a = summary["all"]["before"], summary["all"]["after"]
    cyc = [[r.cycle, r.dreams, r.settled, r.fixed_points, r.cycles_found, r.mean_settle_step, r.energy_before,
            r.energy_after, r.wake_steps, r.wake_loss] for r in rows if r.run == "sleep"]
    verdict = "; ".join(_verdict(err[k], lab, "after") for k, lab in (("sq", "mean squared"), ("abs", "mean abs")))
    answer = (f"Did sleep lengthen dreams? Mean dream length {fmt(b['length'])} -> {fmt(a['length'])} steps, "
              f"fraction settled {fmt(b['settled'])} -> {fmt(a['settled'])}, distinct attractors "
              f"{b['attractors']} -> {a['attractors']}")
    if "control" in ph:
        c = summary["all"]["control"]
        answer += (f"; with the same wake phases and no unlearning (control): length {fmt(c['length'])}, "
                   f"settled {fmt(c['settled'])}, attractors {c['attractors']}, held-out error "
                   + _verdict(err["sq"], "mean squared", "control"))
    pair = summary["paired"]
    answer += (". Per start (the same starts), dream length sleep - before: "
               f"{fmt(pair['before']['mean'])} +- {fmt(pair['before']['se'])} (mean +- standard error)")
    if "control" in pair:
        answer += f"; sleep - control: {fmt(pair['control']['mean'])} +- {fmt(pair['control']['se'])}"
    short = {"before": "before", "after": "sleep", "control": "control"}
    text = [
        f"# Sleep: unlearning the attractors of dreams ({name})",
        "",
        f"Source run `{settings['source']}`; {settings['cycles']} cycles, rate {settings['rate']} "
        f"(fraction of the model's own learning rate), wake {'on' if settings['wake'] else 'off'}"
        + (f" ({settings['wake_epochs']} epoch per cycle)" if settings["wake"] else "") + ". "
        f"Evaluation: the same {b['dreams']} starts before and after (seed {settings['seed']}: "
        f"{settings['eval_noise']} noise, {settings['grey']} grey, {settings['eval_real']} held-out real frames), "
        f"{settings['prime']} primed copies, {steps} dream steps; settling = change < {settings['threshold']} "
        f"for {settings['patience']} steps; held-out error over {summary['sequences']} sequences"
        + ("; control = the same wake phases from the same weights without unlearning" if "control" in ph else "")
        + " (definitions: docs/probes.md, section sleep).",
        "",
        markdown_table(head, main),
        f"Held-out prediction error may grow by at most {PREDICTION_LIMIT:.0%}: {verdict}.",
        "",
        answer + ".",
        "",
        "## By start kind",
        "",
        markdown_table(["start", "dreams"] + [f"{what} {short[p]}" for what in ("settled", "length", "attractors")
                                              for p in ph], kinds),
        "## Cycles",
        "",
        "Per cycle: dreams run, settled (fixed points / cycles), mean settling step, mean settling energy "
        "at the attractors right before and right after each one's unlearning step, wake steps and their mean loss.",
        "",
        markdown_table(["cycle", "dreams", "settled", "fixed points", "cycles", "mean settle step",
                        "energy before unlearning", "energy after", "wake steps", "wake loss"], cyc),
    ]
    return "\n".join(text)
