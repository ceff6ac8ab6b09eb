"""The tables ``make reproduce-tables`` writes, each number traceable to the file it was read from.

Every table family (``TABLES``) has a writer that receives the cells feeding it with their finished
seeds, and returns markdown files plus the per-seed values behind them. A value is read from one
file of a run directory (or, for the study, of its study folder) through a *field*:

- ``json:a/b/0``: a key path in a JSON file; ``json:rows[pixels]/3``: in a list of rows, the row whose
  leading text entries (joined by ``|``) are ``pixels``, then column 3;
- ``csv-last:col``: column ``col`` of the last row of a CSV (``metrics/train.csv``: the final epoch);
- ``csv-seqstd:predictor=prior:mse``: sample std over sequences of the per-sequence mean of ``mse``
  among the rows with ``predictor == prior`` (``predict/.../metrics/eval.csv``);
- ``csv-row:metric=<label>:<col>``: column ``col`` of the first row whose ``metric`` is ``<label>``
  (``tables/sleep.csv`` of a sleep run; the label may hold ``=`` and spaces, not ``:`` at its end);
- ``csv-step:<step>:<col>``: column ``col`` of the row whose ``step`` is ``<step>`` (``metrics/train.csv``:
  a point of a learning curve; the long profile's tables).

:func:`resolve` reads a field; ``values.csv`` lists every per-seed value with its source and field,
so any number can be checked against its run.
"""
from __future__ import annotations

import csv
import json
import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from predvis.compare.groups import stats
from predvis.reproduce.long_tables import write_depth_long, write_long_curves
from predvis.tables import fmt, markdown_table

# GOPC thesis reference values that are public (parameter counts; predvis/probes/predict.py)
THESIS_PARAMS = {"gopc1": 3_532_610, "vae1": 3_993_986}
THESIS_SPEED = {"gopc1": (206.0, 1.7), "vae1": (138.0, 2.5)}   # seconds per epoch, batches per second (GTX 1080 Ti)


# --------------------------------------------------------------------------- values

@dataclass
class Value:
    value: float
    source: Path
    field: str


def _walk(node: Any, path: str) -> Any:
    for part in [p for p in path.split("/") if p]:
        m = re.fullmatch(r"(.*)\[(.*)\]", part)
        if m:
            node = node[m.group(1)]
            key = m.group(2)
            node = next(r for r in node if "|".join(str(x) for x in r if isinstance(x, str)) == key)
        elif isinstance(node, list):
            node = node[int(part)]
        else:
            node = node[part]
    return node


def _csv_rows(path: Path) -> list[dict]:
    with open(path, newline="") as handle:
        return list(csv.DictReader(handle))


def resolve(source: Path, field: str) -> float:
    """The number ``field`` names in ``source`` (see the module docstring)."""
    kind, _, rest = field.partition(":")
    if kind == "json":
        return float(_walk(json.loads(Path(source).read_text()), rest))
    if kind == "csv-last":
        return float(_csv_rows(source)[-1][rest])
    if kind == "csv-seqstd":
        cond, col = rest.rsplit(":", 1)
        key, want = cond.split("=", 1)
        per: dict[str, list[float]] = {}
        for row in _csv_rows(source):
            if row[key] == want:
                per.setdefault(row["sequence"], []).append(float(row[col]))
        return stats([math.fsum(v) / len(v) for v in per.values()])[1]
    if kind == "csv-step":
        step, col = rest.split(":", 1)
        return float(next(row for row in _csv_rows(source) if row["step"] == step)[col])
    if kind == "csv-row":
        cond, col = rest.rsplit(":", 1)
        key, want = cond.split("=", 1)
        return float(next(row for row in _csv_rows(source) if row[key] == want)[col])
    raise ValueError(f"unknown field kind '{kind}' in {field!r}")


def read(source: Path, field: str) -> Value:
    return Value(resolve(source, field), Path(source), field)


# --------------------------------------------------------------------------- results of the cells

@dataclass
class SeedResult:
    """A finished seed of a train cell: its run directory and done file."""

    seed: int
    run: Path
    done: dict

    def probe(self, kind: str, **match: Any) -> Path | None:
        """Output folder of the first finished probe of ``kind`` whose options include ``match``."""
        for p in self.done.get("probes", []):
            if p["probe"] == kind and all(p["options"].get(k) == v for k, v in match.items()):
                return (self.run / p["out"]).resolve()
        return None

    def probes(self, kind: str) -> list[tuple[dict, Path]]:
        return [(p["options"], (self.run / p["out"]).resolve()) for p in self.done.get("probes", []) if p["probe"] == kind]

    @property
    def config(self) -> dict:
        import yaml

        return yaml.safe_load((self.run / "config.yaml").read_text())


@dataclass
class CellResult:
    cell: Any                      # predvis.reproduce.cells.Cell
    seeds: list[SeedResult] = field(default_factory=list)
    study: Path | None = None      # study cells: the study folder, when finished
    state: str = "missing"         # summary of the cell's jobs for the index
    runs: list[tuple[int, Path]] = field(default_factory=list)   # (seed, run) of every seed with a run, in any state

    @property
    def complete(self) -> bool:
        return self.study is not None or len(self.seeds) == len(self.cell.seeds)


# link texts that stand for the target itself: replaced by its run id (other texts are kept before the id)
ID_LABELS = ("run", "probe output", "record", "sleep.md")


@dataclass
class Context:
    """Where the tables go and what they link to. Only files inside ``tables_dir`` are linked (they are
    committed with the tables); a run directory or a file in one is named by its *run id*, its path under
    ``runs_root`` (``gopc1/<stamp>_<id>``, ``gopc1/<stamp>_<id>/predict/<stamp>_<id>``), since run roots
    are not in git and a link there would be dead in a clone. Numbers are plain; ``values.csv`` gives
    each one's source file and field."""

    tables_dir: Path
    profile: str
    values: list[dict] = field(default_factory=list)
    runs_root: Path | None = None

    def run_id(self, target: Path) -> str:
        return run_id(target, self.runs_root)

    def link(self, target: Path, text: str) -> str:
        target, here = Path(target).resolve(), self.tables_dir.resolve()
        if target == here or here in target.parents:
            return f"[{text}]({os.path.relpath(target, here)})"
        rid = f"`{self.run_id(target)}`"
        return rid if text in ID_LABELS else f"{text} {rid}"

    def num(self, v: Value, table: str, row: str, quantity: str, seed: Any) -> str:
        """A per-seed number as text, recorded with its source file and field in values.csv."""
        self.values.append({"file": table, "row": row, "quantity": quantity, "seed": seed, "value": v.value,
                            "source": os.path.relpath(v.source, self.tables_dir.resolve()), "field": v.field})
        return fmt(int(v.value)) if float(v.value).is_integer() and abs(v.value) >= 1 else fmt(v.value)

    def runs(self, seeds: list[SeedResult]) -> str:
        return " ".join(self.link(s.run, f"s{s.seed}") for s in seeds) or "-"


def run_id(target: Path, runs_root: Path | None) -> str:
    """``target``'s path under ``runs_root`` (POSIX separators), or under the working directory when it is
    not below the run root, or the absolute path."""
    target = Path(target).resolve()
    for base in ([Path(runs_root).resolve()] if runs_root is not None else []) + [Path.cwd().resolve()]:
        if base in target.parents:
            return target.relative_to(base).as_posix()
    return target.as_posix()


def agg_text(values: list[Value]) -> str:
    mean, std, n = stats([v.value for v in values])
    if n == 0:
        return "-"
    return f"{fmt(mean)} ± {fmt(std)}" if n > 1 else fmt(mean)


def _seeds_note(results: list[CellResult]) -> list[str]:
    notes = []
    for r in results:
        if r.cell.kind == "train" and len(r.seeds) < len(r.cell.seeds):
            done = [s.seed for s in r.seeds]
            notes.append(f"- {r.cell.row}: {len(r.seeds)} of {len(r.cell.seeds)} seeds finished ({done}); "
                         "rerun `make reproduce-tables` to finish the rest.")
    return notes


def _test_set_notes(results: list[CellResult]) -> list[str]:
    """Flag rows of one table that were scored on different test sets (compare's test signature)."""
    from predvis.compare.groups import describe_diff, test_signature
    from predvis.compare.runs import RunRecord

    sigs = [(r.cell.row, test_signature(RunRecord(s.run, s.config))) for r in results for s in r.seeds[:1]]
    out = []
    for row, sig in sigs[1:]:
        if json.dumps(sig, sort_keys=True, default=str) != json.dumps(sigs[0][1], sort_keys=True, default=str):
            out.append(f"- **flag**: {row} was scored on another test set than {sigs[0][0]} "
                       f"({describe_diff(sigs[0][1], sig)}); the rows are not comparable.")
    return out


def _kind(seed: SeedResult) -> str:
    cfg = seed.config
    model = cfg.get("model") or {}
    return str(model.get("kind") or cfg.get("name"))


# --------------------------------------------------------------------------- GOPC Tables 3.1 / 3.2

def write_gopc_prediction(ctx: Context, results: list[CellResult]) -> dict[str, str]:
    files = {}
    for name, kind, title in (("gopc_recon.md", "recon", "Table 3.1: posterior reconstruction (all frames)"),
                              ("gopc_prior.md", "prior", "Table 3.2: prior prediction (frames after the context)")):
        head = ["model", "params", "seeds", "MSE (mean ± std over seeds)", "std over sequences (mean over seeds)",
                "thesis params", "thesis MSE", "runs"]
        rows, per_seed = [], []
        baselines = ["mean_frame"] if kind == "recon" else ["copy_last", "mean_frame"]
        for res in results:
            mse, seq_std, params = [], [], []
            for s in res.seeds:
                out = s.probe("predict")
                if out is None:
                    continue
                m = read(out / "summary.json", f"json:{kind}_mse")
                sd = read(out / "metrics" / "eval.csv", f"csv-seqstd:predictor={kind}:mse")
                p = read(s.run / "cell-done.json", "json:params_total")
                mse.append(m), seq_std.append(sd), params.append(p)
                per_seed.append([res.cell.row, s.seed, ctx.num(p, name, res.cell.row, "params", s.seed),
                                 ctx.num(m, name, res.cell.row, "mse", s.seed),
                                 ctx.num(sd, name, res.cell.row, "std over sequences", s.seed), ctx.link(s.run, "run")])
            kinds = {_kind(s) for s in res.seeds}
            ref = THESIS_PARAMS.get(next(iter(kinds))) if len(kinds) == 1 else None
            count = fmt(int(params[0].value)) if params and len({p.value for p in params}) == 1 else agg_text(params)
            rows.append([res.cell.row, count, len(mse), agg_text(mse), agg_text(seq_std),
                         fmt(ref) if ref else "-", "not public" if ref else "-", ctx.runs(res.seeds)])
        first = next((r for r in results if r.seeds), None)
        for base in baselines if first else []:
            vals = []
            for s in first.seeds:
                out = s.probe("predict")
                if out is not None:
                    v = read(out / "summary.json", f"json:{base}_mse")
                    vals.append(v)
                    label = f"{base} (baseline)"
                    per_seed.append([label, s.seed, "-", ctx.num(v, name, label, "mse", s.seed), "-", ctx.link(s.run, "run")])
            label = {"copy_last": "copy last frame", "mean_frame": "mean frame"}[base]
            rows.append([f"{label} (baseline, on {first.cell.row}'s test runs)", "-", len(vals), agg_text(vals), "-",
                         "-", "-", ctx.runs(first.seeds)])
        text = [f"# {title}", "", f"GOPC thesis {title.split(':')[0]}, {ctx.profile} profile. MSE: per-pixel mean "
                "squared error on the [0, 1] scale, averaged over the scored frames and test sequences of a run "
                "(`predvis predict`, docs/metrics.md); mean ± std over seeds (sample std). The thesis MSE values are "
                "not public (only its parameter counts reached us).", "", markdown_table(head, rows).rstrip(), ""]
        text += _test_set_notes(results) + _seeds_note(results)
        text += ["", "## Per seed", "", markdown_table(["model", "seed", "params", "MSE", "std over sequences", "run"],
                                                       per_seed).rstrip(), ""]
        files[name] = "\n".join(text)
    return files


# --------------------------------------------------------------------------- GOPC Table 5.1 (speed)

def write_gopc_speed(ctx: Context, results: list[CellResult]) -> dict[str, str]:
    name = "gopc_speed.md"
    head = ["model", "seeds", "batches per epoch", "seconds per epoch", "batches per second", "device",
            "thesis s/epoch", "thesis batch/s", "runs"]
    rows, per_seed, bps_by_kind = [], [], {}
    for res in results:
        secs, bps, batches, devices = [], [], set(), set()
        for s in res.seeds:
            train = s.run / "metrics" / "train.csv"
            t = read(train, "csv-last:seconds")
            b = read(train, "csv-last:batches_per_s")
            secs.append(t), bps.append(b)
            rows_csv = _csv_rows(train)
            steps = int(rows_csv[-1]["step"]) - (int(rows_csv[-2]["step"]) if len(rows_csv) > 1 else 0)
            batches.add(steps)
            env = json.loads((s.run / "env.json").read_text())
            devices.add(f"{env.get('device_name') or env.get('device')}, {env.get('threads')} threads")
            per_seed.append([res.cell.row, s.seed, steps, ctx.num(t, name, res.cell.row, "seconds per epoch", s.seed),
                             ctx.num(b, name, res.cell.row, "batches per second", s.seed), ctx.link(s.run, "run")])
        kinds = {_kind(s) for s in res.seeds}
        kind = next(iter(kinds)) if len(kinds) == 1 else ""
        if kind:
            bps_by_kind.setdefault(kind, {}).update({s.seed: b for s, b in zip(res.seeds, bps)})
        ref = THESIS_SPEED.get(kind)
        rows.append([res.cell.row, len(res.seeds), ", ".join(map(str, sorted(batches))) or "-", agg_text(secs),
                     agg_text(bps), "; ".join(sorted(devices)) or "-", fmt(ref[0]) if ref else "-",
                     fmt(ref[1]) if ref else "-", ctx.runs(res.seeds)])
    text = [f"# Table 5.1: training speed, GOPC-1 and VAE-1 ({ctx.profile} profile)", "",
            "Seconds per epoch and batches per second of the last training epoch (`metrics/train.csv`: steps only, "
            "batch generation included, validation excluded), mean ± std over seeds. The thesis measured full "
            "epochs on a GTX 1080 Ti; the epochs here may be shorter (batches per epoch column) and the machine "
            "differs, so only the ratio GOPC-1 / VAE-1 compares.", "", markdown_table(head, rows).rstrip(), ""]
    g, v = bps_by_kind.get("gopc1", {}), bps_by_kind.get("vae1", {})
    paired = sorted(set(g) & set(v))
    if paired:
        ratios = [v[s].value / g[s].value for s in paired]
        mean, std, n = stats(ratios)
        thesis = THESIS_SPEED["vae1"][1] / THESIS_SPEED["gopc1"][1]
        thesis_epoch = THESIS_SPEED["gopc1"][0] / THESIS_SPEED["vae1"][0]
        text += [markdown_table(["ratio", "this machine (mean ± std over seeds)", "seeds", "thesis"], [[
            "time per batch, GOPC-1 / VAE-1 (= VAE-1 batch/s / GOPC-1 batch/s, paired by seed)",
            f"{fmt(mean)} ± {fmt(std)}" if n > 1 else fmt(mean), ", ".join(map(str, paired)),
            f"{thesis:.2f} (2.5 / 1.7); per epoch {thesis_epoch:.2f} (206 / 138 s)"]]).rstrip(), ""]
    else:
        text += ["Ratio GOPC-1 / VAE-1: needs finished GOPC-1 and VAE-1 runs with a common seed.", ""]
    text += _seeds_note(results)
    text += ["", "## Per seed", "", markdown_table(["model", "seed", "batches in the epoch", "seconds per epoch",
                                                    "batches per second", "run"], per_seed).rstrip(), ""]
    return {name: "\n".join(text)}


# --------------------------------------------------------------------------- PVM lesion and blind spot

def _rows_table(ctx: Context, name: str, results: list[CellResult], probe: str, label_of: Callable[[dict], str],
                columns: list[tuple[int, str]], keys_of: Callable[[dict], list[str]]) -> tuple[list, list]:
    """Aggregate summary.json rows of ``probe`` outputs over seeds: one table row per (options, row key)."""
    rows, per_seed = [], []
    for res in results:
        groups: dict[tuple[str, str], dict[int, list[Value]]] = {}
        finished: dict[tuple[str, str], list[SeedResult]] = {}
        for s in res.seeds:
            for opts, out in s.probes(probe):
                summary = json.loads((out / "summary.json").read_text())
                for key in keys_of(summary):
                    k = (label_of(opts), key)
                    finished.setdefault(k, []).append(s)
                    cells = []
                    for col, title in columns:
                        v = read(out / "summary.json", f"json:rows[{key}]/{col}")
                        groups.setdefault(k, {}).setdefault(col, []).append(v)
                        cells.append(ctx.num(v, name, f"{res.cell.row} {k[0]} {key}", title, s.seed))
                    per_seed.append([res.cell.row, k[0], key, s.seed] + cells + [ctx.link(out, "probe output")])
        for k, cols in groups.items():
            rows.append([res.cell.row, k[0], k[1], len(finished[k])] + [agg_text(cols[c]) for c, _ in columns]
                        + [ctx.runs(finished[k])])
    return rows, per_seed


def _row_keys(summary: dict) -> list[str]:
    return ["|".join(str(x) for x in r if isinstance(x, str)) for r in summary.get("rows", [])]


def write_pvm(ctx: Context, results: list[CellResult]) -> dict[str, str]:
    files = {}
    cols = [(1, "intact"), (3, "lesioned"), (5, "lesioned / intact")]
    rows, per_seed = _rows_table(ctx, "pvm_lesion.md", results, "lesion", lambda o: f"no {o['disable']}", cols, _row_keys)
    text = [f"# PVM lesions ({ctx.profile} profile)", "",
            "`predvis lesion RUN --disable ...` on the held-out sequences, learning frozen: per-step prediction error "
            "(`pixels` = mean |prediction - next frame|; `L<i>` = layer i's own error), mean over steps and sequences "
            "of a run (docs/probes.md); cells: mean ± std over seeds.", "",
            markdown_table(["model", "lesion", "error", "seeds"] + [c for _, c in cols] + ["runs"], rows).rstrip(), ""]
    text += _seeds_note(results) + ["", "## Per seed", "", markdown_table(
        ["model", "lesion", "error", "seed"] + [c for _, c in cols] + ["source"], per_seed).rstrip(), ""]
    files["pvm_lesion.md"] = "\n".join(text)
    cols = [(1, "error"), (3, "grey baseline"), (4, "error / grey"), (5, "fill-in gain")]
    rows, per_seed = _rows_table(ctx, "pvm_occlude.md", results, "occlude", lambda o: o["mode"], cols, _row_keys)
    text = [f"# PVM blind-spot fill-in ({ctx.profile} profile)", "",
            "`predvis occlude RUN --mode blindspot`: a grey square hides part of every held-out frame; error = mean "
            "|prediction - true next frame| over the hidden pixels, for the intact model and with its context "
            "pathways switched off; grey = the same for a constant 0.5; gain = 1 - error / grey (docs/probes.md). "
            "Cells: mean ± std over seeds.", "",
            markdown_table(["model", "mode", "condition", "seeds"] + [c for _, c in cols] + ["runs"], rows).rstrip(), ""]
    text += _seeds_note(results) + ["", "## Per seed", "", markdown_table(
        ["model", "mode", "condition", "seed"] + [c for _, c in cols] + ["source"], per_seed).rstrip(), ""]
    files["pvm_occlude.md"] = "\n".join(text)
    return files


# --------------------------------------------------------------------------- deepdream adversarial

def write_adversarial(ctx: Context, results: list[CellResult]) -> dict[str, str]:
    name = "adversarial.md"
    cols = [(2, "clean acc"), (3, "success rate"), (4, "conf before"), (5, "conf after"), (6, "mean L-inf"), (7, "mean L2")]
    rows, per_seed = _rows_table(ctx, name, results, "attack", lambda o: o.get("profile") or "-", cols, _row_keys)
    rows = [[r[0], *r[2].split("|"), *r[3:]] for r in rows]
    per_seed = [[r[0], *r[2].split("|"), *r[3:]] for r in per_seed]
    text = [f"# Adversarial examples on the digit classifier ({ctx.profile} profile)", "",
            "`predvis deepdream mode=attack model.source=RUN` for each classifier seed, on the same held-out digits "
            "(the attack's own seed is fixed): PGD (L-inf) and patch attacks, untargeted and targeted "
            "(docs/deepdream.md). success rate: among digits classified correctly before, the fraction fooled. "
            "Cells: mean ± std over classifier seeds.", "",
            markdown_table(["model", "attack", "budget", "seeds"] + [c for _, c in cols] + ["runs"], rows).rstrip(), ""]
    text += _seeds_note(results) + ["", "## Per seed", "", markdown_table(
        ["model", "attack", "budget", "seed"] + [c for _, c in cols] + ["source"], per_seed).rstrip(), ""]
    return {name: "\n".join(text)}


# --------------------------------------------------------------------------- depth inversion (study)

def write_depth_inversion(ctx: Context, results: list[CellResult]) -> dict[str, str]:
    from predvis.reproduce.studies import STUDIES

    name = "depth_inversion.md"
    text = [f"# Depth inversion: the 16-variant study and unroll sweep ({ctx.profile} profile)", ""]
    for res in results:
        if res.study is None:
            text += [f"{res.cell.row}: the study has not finished yet ({res.state}).", ""]
            continue
        study_text = STUDIES["depth_inversion"].read_table(res.study)
        text += [f"Written by `predvis study depth_inversion` into {ctx.link(res.study, 'its study folder')} "
                 "(the study's own table follows, unchanged). Every model is a run directory; the per-model "
                 "numbers below link to the study's record of each model and to its run.", "",
                 "\n".join("#" + line if line.startswith("#") else line for line in study_text.splitlines()),
                 "", "## Per model and seed (held-out SSE, final step)", ""]
        per = []
        for rec_path in sorted((res.study / "jobs").glob("*.json")):
            rec = json.loads(rec_path.read_text())
            v = read(rec_path, "json:mean_sse/held_out")
            per.append([rec["tag"], rec["seed"], ctx.num(v, name, rec["tag"], "held-out SSE", rec["seed"]),
                        ctx.link(Path(rec["run"]), "run")])
        text += [markdown_table(["model", "seed", "held-out SSE", "run"], per).rstrip(), ""]
        text += _study_curves(ctx, res.study)
    return {name: "\n".join(text)}


def _curve_figures(ctx: Context, groups: dict[str, list], metric: str, stem: str, ylabel: str, title: str,
                   **kw) -> list[str]:
    """Markdown image lines of ``metric`` against steps and against training wall time, one line per
    group (its seeds' mean curve), written to ``curves/<stem>_steps.png`` and ``_wall_time.png``."""
    from predvis.reproduce.curves import figure_lines, mean_curve

    curves = [mean_curve(cs, label) for label, cs in groups.items() if cs]
    return figure_lines(ctx.tables_dir, curves, stem, metric, ylabel, title, suffix=" (mean over seeds)", **kw)


def _study_curves(ctx: Context, study: Path) -> list[str]:
    """Figures of every occluded variant's validation SSE (mean over seeds) against steps and against
    training wall time, from the models' ``metrics/train.csv`` (the study scores its test sets only at the end)."""
    from predvis.reproduce.curves import read_curve

    groups: dict[str, list] = {}
    trained = None
    for rec_path in sorted((study / "jobs").glob("*.json")):
        rec = json.loads(rec_path.read_text())
        if rec.get("kind") != "occluded" or not (Path(rec["run"]) / "metrics" / "train.csv").exists():
            continue
        trained = trained or rec["steps"]
        if rec["steps"] == trained and rec["enc"] != "Bw":
            groups.setdefault(f"{rec['enc']}-{rec['dec']}", []).append(read_curve(Path(rec["run"]), seed=rec["seed"]))
    lines = _curve_figures(ctx, groups, "val_loss", "depth_inversion", "validation SSE (final step, seen pairs)",
                           "Depth inversion study: validation SSE")
    if not lines:
        return []
    return ["## Learning curves", "", "Validation SSE (`val_loss`: the validation scenes of seen pairs, final step; the "
            "study scores the held-out pairs only at the end) after every epoch, mean over the seeds of each occluded "
            "variant at its trained unroll, against optimiser steps and against training wall time (validation "
            "excluded; models ran two at a time on a shared CPU, so wall time also reflects the load).", ""] + lines + [""]


def _gopc2_curves(ctx: Context, records: list[Path]) -> list[str]:
    """Figures of every setting's validation prior MSE (mean over seeds) against steps and wall time."""
    from predvis.reproduce.curves import read_curve

    groups: dict[str, list] = {}
    for path in records:
        rec = json.loads(path.read_text())
        run = Path(rec["run"]) if rec.get("run") else None
        if run is not None and (run / "metrics" / "train.csv").exists():
            groups.setdefault(rec["label"], []).append(read_curve(run, seed=rec["seed"]))
    lines = _curve_figures(ctx, groups, "val_prior_mse", "gopc2_stability", "validation prior MSE",
                           "GOPC-2 stability: validation prior MSE", baseline="val_mean_frame_mse",
                           baseline_label="mean frame")
    if not lines:
        return []
    return ["## Learning curves", "", "Validation prior MSE (`val_prior_mse`: the model's own latents fed back after "
            "the context frames, on the validation sequences; docs/metrics.md) after every epoch, mean over the seeds "
            "of each setting at the steps all of them reached (a diverged seed ends its setting's line at its last "
            "finished epoch), against optimiser steps and training wall time; dashed grey: the mean-frame baseline.",
            ""] + lines + [""]


# --------------------------------------------------------------------------- GOPC-2 stability (study)

def _demote(text: str) -> str:
    return "\n".join("#" + line if line.startswith("#") else line for line in text.splitlines())


def write_gopc2_stability(ctx: Context, results: list[CellResult]) -> dict[str, str]:
    from predvis.reproduce.studies import STUDIES

    study = STUDIES["gopc2_stability"]
    name = "gopc2_stability.md"
    text = [f"# GOPC-2 stability: stabilisers, NaN rate, MSE, r^H probes ({ctx.profile} profile)", ""]
    for res in results:
        if res.study is None:
            text += [f"{res.cell.row}: the study has not finished yet ({res.state}).", ""]
            continue
        text += [f"Written by `predvis study gopc2_stability` into {ctx.link(res.study, 'its study folder')} "
                 f"({study.table} there; the study's own table follows, unchanged, its headings one level down). "
                 "Every model is a run directory; the per-model numbers below link to the study's record of each "
                 "model (`jobs/<tag>.json`) and to its run.", "", _demote(study.read_table(res.study)), "",
                 "## Per model and seed", ""]
        per = []
        for path in study.records(res.study):
            rec = json.loads(path.read_text())
            label, seed = rec["label"], rec["seed"]
            cells = []
            for key, title in (("recon_mse", "recon MSE"), ("prior_mse", "prior MSE"), ("nan_step", "NaN at step")):
                if rec.get(key) is None:
                    cells.append("-")
                else:
                    cells.append(ctx.num(read(path, f"json:{key}"), name, label, title, seed))
            run = ctx.link(Path(rec["run"]), "run") if rec.get("run") else "-"
            budget = f"{rec.get('budget_steps', '-')}{' (short)' if rec.get('short') else ''}"
            per.append([label, seed, budget, *cells, rec.get("evaluated") or "-", ctx.link(path, "record"), run])
        text += [markdown_table(["setting", "seed", "budget (steps)", "recon MSE", "prior MSE", "NaN at step",
                                 "evaluated", "record", "run"], per).rstrip(), ""]
        text += _gopc2_curves(ctx, study.records(res.study))
    return {name: "\n".join(text)}


# --------------------------------------------------------------------------- sleep (probe on PVM and GOPC-1)

SLEEP_LIMIT_ROW = "held-out prediction error, mean squared"


def _agg_finite(values: list[Value]) -> str:
    """mean ± std over the seeds whose value is a number (n/a ones left out, and said so)."""
    finite = [v for v in values if math.isfinite(v.value)]
    if not finite:
        return "n/a" if values else "-"
    out = agg_text(finite)
    return out if len(finite) == len(values) else f"{out} ({len(finite)} of {len(values)} seeds; others n/a)"


def _sleep_groups(res: CellResult) -> dict[str, list[tuple[SeedResult, Path]]]:
    """The cell's finished sleep runs grouped by their settings (sleep.yaml): {label: [(seed, sleep run)]}."""
    import yaml

    groups: dict[str, list[tuple[SeedResult, Path]]] = {}
    for s in res.seeds:
        for _, out in s.probes("sleep"):
            st = yaml.safe_load((out / "sleep.yaml").read_text()) or {}
            label = (f"{st.get('cycles')} cycle{'' if st.get('cycles') == 1 else 's'}, "
                     f"{st.get('dream_steps')} dream steps, rate {st.get('rate')}, "
                     f"wake {'on' if st.get('wake') else 'off'}")
            groups.setdefault(label, []).append((s, out))
    return groups


def write_sleep(ctx: Context, results: list[CellResult]) -> dict[str, str]:
    from predvis.probes.sleep import PREDICTION_LIMIT

    name = "sleep.md"
    text = [f"# Sleep: dreams and prediction before / after unlearning ({ctx.profile} profile)", "",
            "`predvis sleep RUN` on every seed's run of each model: dreams from the same evaluation starts before "
            "and after the sleep cycles (unlearning at the attractors the dreams settle into, then wake learning), "
            "the held-out one-step prediction error and, with wake on, a wake-only control from the same weights "
            "(docs/probes.md, section sleep, defines every metric). Each seed writes a new run holding "
            "`tables/sleep.md` and its CSV twin `tables/sleep.csv`; the cells below are mean ± std over seeds "
            "(sample std) of the numbers of those tables, and each per-seed number links to the `sleep.csv` it "
            "was read from.", ""]
    appendix = []
    for res in results:
        groups = _sleep_groups(res)
        if not groups:
            text += [f"## {res.cell.row}", "", f"No finished sleep runs yet ({res.state}).", ""]
        for label, entries in groups.items():
            columns: list[str] = []
            metrics: list[str] = []
            values: dict[tuple[str, str], list[Value]] = {}
            per_seed = []
            for s, out in entries:
                source = out / "tables" / "sleep.csv"
                rows = _csv_rows(source)
                columns += [c for c in (rows[0] if rows else {}) if c != "metric" and c not in columns]
                for row in rows:
                    metric = row["metric"]
                    metrics += [] if metric in metrics else [metric]
                    cells = []
                    for col in columns:
                        if row.get(col) in ("", None):
                            cells.append("-")
                            continue
                        v = read(source, f"csv-row:metric={metric}:{col}")
                        values.setdefault((metric, col), []).append(v)
                        cells.append(ctx.num(v, name, f"{res.cell.row} {metric.strip()}", col, s.seed))
                    per_seed.append([s.seed, metric.strip(), *cells, ctx.link(out / "tables" / "sleep.md", "sleep.md")])
            width = 3 + len(columns)
            per_seed = [r[:-1] + ["-"] * (width - len(r)) + r[-1:] for r in per_seed]
            seeds = [s for s, _ in entries]
            text += [f"## {res.cell.row}: {label}", "",
                     f"Seeds {', '.join(str(s.seed) for s in seeds)}; source runs {ctx.runs(seeds)}; sleep runs "
                     + " ".join(ctx.link(out, f"s{s.seed}") for s, out in entries) + ".", "",
                     markdown_table(["metric", "seeds"] + columns, [
                         [m.strip(), max(len(values.get((m, c), [])) for c in columns)]
                         + [_agg_finite(values.get((m, c), [])) for c in columns] for m in metrics]).rstrip(), ""]
            for phase, col in (("sleep", "after sleep"), ("the wake-only control", "wake only (control)")):
                before, after = values.get((SLEEP_LIMIT_ROW, "before"), []), values.get((SLEEP_LIMIT_ROW, col), [])
                if not before or len(before) != len(after):
                    continue
                rel = [a.value / b.value - 1 for a, b in zip(after, before) if b.value > 0]
                mean, std, n = stats(rel)
                ok = sum(r <= PREDICTION_LIMIT for r in rel)
                text += [f"Held-out prediction error (mean squared) after {phase} / before - 1: "
                         f"{fmt(mean * 100)} %{f' ± {fmt(std * 100)} %' if n > 1 else ''} (over {n} seeds); at most "
                         f"+{PREDICTION_LIMIT:.0%} (PASS in the runs' `sleep.md`) in {ok} of {n} seeds.", ""]
            appendix += [f"### {res.cell.row}: {label}", "",
                         markdown_table(["seed", "metric"] + columns + ["table"], per_seed).rstrip(), ""]
    text += _seeds_note(results)
    if appendix:
        text += ["", "## Per seed", ""] + appendix
    return {name: "\n".join(text)}



# --------------------------------------------------------------------------- registry

@dataclass
class TableSpec:
    title: str
    files: list[str]
    writer: Callable[[Context, list[CellResult]], dict[str, str]] | None   # None: not built yet


TABLES: dict[str, TableSpec] = {
    "gopc_prediction": TableSpec("GOPC thesis Tables 3.1 (posterior reconstruction) and 3.2 (prior prediction)",
                                 ["gopc_recon.md", "gopc_prior.md"], write_gopc_prediction),
    "gopc_speed": TableSpec("GOPC thesis Table 5.1 (speed: seconds per epoch, batches per second)",
                            ["gopc_speed.md"], write_gopc_speed),
    "pvm": TableSpec("PVM lesions and blind-spot fill-in", ["pvm_lesion.md", "pvm_occlude.md"], write_pvm),
    "depth_inversion": TableSpec("Depth inversion: 16 variants, controls, unroll sweep", ["depth_inversion.md"],
                                 write_depth_inversion),
    "adversarial": TableSpec("Deepdream: adversarial examples on the digit classifier", ["adversarial.md"],
                             write_adversarial),
    "gopc2_stability": TableSpec("GOPC-2 stability (per stabiliser: NaN rate, final MSE; r^H probes)",
                                 ["gopc2_stability.md"], write_gopc2_stability),
    "sleep": TableSpec("Sleep: dreams and prediction before / after unlearning", ["sleep.md"], write_sleep),
    "depth_long": TableSpec("Depth inversion, long CPU runs: held-out SSE against steps and wall time",
                            ["depth_long.md"], write_depth_long),
    "long_curves": TableSpec("PVM, GOPC-1, VAE-1, long CPU runs: learning curves against their baselines",
                             ["long_curves.md"], write_long_curves),
}
