"""sleep: find the attractors that dreams fall into and unlearn them; measure before vs after.

The PVM blog observes that closed-loop dreams settle into fixed frames and proposes that sleep
could remove them by learning with a negative sign at the fixed point. Hopfield, Feinstein & Palmer
(1983, Nature 304:158) showed that such "unlearning" at the states a network relaxes to from random
starts suppresses spurious memories; Crick & Mitchison (1983, Nature 304:111) proposed it as the
function of REM sleep. Here it is a hypothesis to measure, for every stepping model that offers an
unlearning step (:class:`predvis.models.stepping.Unlearning`).

One cycle: dream from noise, grey and static real (training) frames (``prime`` copies of the start,
then each prediction is the next input, learning frozen); find where each dream settles
(a fixed point or a cycle, :mod:`predvis.probes.attractors`); apply one unlearning step at every
attractor found (:mod:`predvis.models.unlearning`); then, with ``--wake``, a normal learning pass of
``wake_epochs`` of an epoch through the method's own ``train_step`` on real training data.

Before the first and after the last cycle the same evaluation starts (fixed seed; noise, grey and
held-out real frames) are dreamt by the model, and the held-out one-step prediction error is
measured (docs/probes.md, section sleep, defines every number). The result is a NEW run directory
``<out>/<name>-sleep/<stamp>_<id>/`` with the source's config, the slept checkpoint in the format
``train`` writes (so predict / dream / lesion / occlude accept it), ``sleep.yaml`` (the settings),
``tables/sleep.md`` + ``tables/sleep.csv``, metrics, frames and GIFs. It is assembled in a hidden
folder and renamed into place; the source run is only read.
"""
from __future__ import annotations

import copy
import hashlib
import itertools
import math
import os
import sys
import secrets
import shutil
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

from predvis.config import ConfigError, from_dict
from predvis.errors import PredvisError, TrainingDiverged
from predvis.models.stepping import Unlearning
from predvis.models.unlearning import attractor_clip, settling_energy
from predvis.probes import attractors as A
from predvis.probes.common import device_of
from predvis.probes.dream import Settling
from predvis.progress import enabled as progress_enabled

from predvis.progress import console  # the one stderr console: --quiet silences it
PREDICTION_LIMIT = 0.05  # held-out prediction error may grow by at most 5 %


@dataclass
class SleepSettings:
    """KEY=VALUE options of ``predvis sleep`` (besides --cycles, --dream-steps, --rate, --wake)."""

    prime: int = 5               # copies of the start frame before the loop closes
    noise: int = 8               # per cycle: uniform-noise starts (fresh each cycle)
    grey: int = 3                # grey starts at levels (i + 1) / (grey + 1) (cycles and evaluation)
    real: int = 6                # per cycle: static real starts, frames of the training data
    eval_noise: int = 12         # evaluation: noise starts (fixed seed, the same before and after)
    eval_real: int = 8           # evaluation: held-out real starts
    threshold: float = 1e-3      # settling: mean |x_t - x_{t-p}| below this ...
    patience: int = 10           # ... for this many consecutive steps
    burn_in: int = 10            # L: attractor clips are 2L steps, the first L without error / learning
    cluster_mse: float = 1e-3    # attractors closer than this (mean squared difference) are one
    wake_epochs: float = 0.05    # --wake: normal learning per cycle, in epochs of the method (>= 1 step)
    buckets: int = 4             # dream diversity is reported for this many equal stretches of steps
    limit: int = 0               # held-out sequences for the prediction error (0: all)
    figures: int = 3             # dreams drawn before / after (first of each start kind first)
    control: bool = True         # with --wake: also the same wake steps from the same weights, no unlearning
    seed: int = 0

    def validate(self) -> None:
        for key in ("prime", "patience", "burn_in", "buckets"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        for key in ("noise", "grey", "real", "eval_noise", "eval_real", "limit", "figures"):
            if getattr(self, key) < 0:
                raise ConfigError(f"{key}: must be >= 0, got {getattr(self, key)}")
        if self.noise + self.grey + self.real == 0:
            raise ConfigError("noise, grey, real: at least one dream start per cycle is needed")
        if self.eval_noise + self.grey + self.eval_real < 2:
            raise ConfigError("eval_noise, grey, eval_real: at least two evaluation starts are needed")
        for key in ("threshold", "cluster_mse"):
            if not getattr(self, key) > 0:
                raise ConfigError(f"{key}: must be > 0, got {getattr(self, key)}")
        if self.wake_epochs < 0:
            raise ConfigError(f"wake_epochs: must be >= 0, got {self.wake_epochs}")


def check_arguments(cycles: int, dream_steps: int, rate: float, patience: int) -> None:
    if cycles <= 0:
        raise PredvisError(f"--cycles: must be > 0, got {cycles}")
    if dream_steps <= 0:
        raise PredvisError(f"--dream-steps: must be > 0, got {dream_steps}")
    if dream_steps <= patience:
        raise PredvisError(f"--dream-steps: must be > patience ({patience}) to detect settling, got {dream_steps}")
    if not (rate > 0 and math.isfinite(rate)):
        raise PredvisError(f"--rate: must be > 0 (a fraction of the model's learning rate), got {rate}")


# --------------------------------------------------------------------------- measuring

@dataclass
class Evaluation:
    """Dreams from the evaluation starts and the held-out prediction error, for one model state.

    dreams: (B, N, C, H, W); settled: per dream; attractors / owners: the attractor of each settled
    dream and its dream index; labels: cluster per attractor; div: (N,) diversity per step;
    err_abs / err_sq: (S,) held-out one-step error per sequence (mean abs / mean squared)."""

    dreams: torch.Tensor
    settled: list[Settling | None]
    attractors: list[torch.Tensor]
    owners: list[int]
    labels: list[int]
    div: torch.Tensor
    err_abs: torch.Tensor
    err_sq: torch.Tensor
    energy: torch.Tensor = field(default_factory=lambda: torch.zeros(0))  # at these attractors


@torch.no_grad()
def heldout_error(stepper, seqs: torch.Tensor, batch: int = 64) -> tuple[torch.Tensor, torch.Tensor]:
    """Per held-out sequence (N, T, C, H, W): mean over steps t >= 1, pixels and channels of
    |prediction made at t-1 - frame t| and of its square (teacher forcing, learning off)."""
    dev = device_of(stepper)
    ab, sq = [], []
    for s in range(0, seqs.shape[0], batch):
        x = seqs[s:s + batch].to(dev)
        state, pred, ea, es = stepper.init_state(x.shape[0]), None, [], []
        for t in range(x.shape[1]):
            if pred is not None:
                d = (pred.float() - x[:, t].float()).flatten(1)
                ea.append(d.abs().mean(1).cpu())
                es.append(d.square().mean(1).cpu())
            o = stepper.step(x[:, t], state)
            state, pred = o.state, o.prediction.clamp(0, 1)
        ab.append(torch.stack(ea, 1).double().mean(1))
        sq.append(torch.stack(es, 1).double().mean(1))
    return torch.cat(ab), torch.cat(sq)


def energies(stepper, attractors: list[torch.Tensor], burn_in: int) -> torch.Tensor:
    """Settling energy (learning off) of each attractor (p, C, H, W) -> (K,)."""
    dev = device_of(stepper)
    out = []
    with torch.no_grad():
        for a in attractors:
            clip = attractor_clip(a[None].to(dev), burn_in)
            out.append(float(settling_energy(stepper.step, stepper.init_state, clip, burn_in)[0]))
    return torch.tensor(out, dtype=torch.float64)


def evaluate(stepper, starts: A.Starts, seqs: torch.Tensor, steps: int, s: SleepSettings) -> Evaluation:
    stepper.set_learning(False)
    dreams = A.closed_loop(stepper, starts.frames, s.prime, steps)
    settled = A.settle_all(dreams, s.threshold, s.patience)
    owners = [i for i, st in enumerate(settled) if st is not None]
    attractors = [A.attractor_frames(dreams[i], settled[i], s.patience) for i in owners]
    err_abs, err_sq = heldout_error(stepper, seqs)
    ev = Evaluation(dreams, settled, attractors, owners, A.cluster(attractors, s.cluster_mse),
                    A.diversity(dreams), err_abs, err_sq)
    ev.energy = energies(stepper, attractors, s.burn_in)
    return ev


# --------------------------------------------------------------------------- data

def _frames_of(batch, gen: torch.Generator) -> torch.Tensor | None:
    """Frames (M, C, H, W) from one training batch of any method: one per sequence (random time)
    for (B, T, C, H, W) batches, all of a (B, C, H, W) batch; None if the batch is not frames."""
    x = getattr(batch, "x", batch)
    if isinstance(x, (tuple, list)) and x:
        x = x[0]
    if not isinstance(x, torch.Tensor):
        return None
    x = x.detach().float().cpu()
    if x.dim() == 5:
        t = torch.randint(0, x.shape[1], (x.shape[0],), generator=gen)
        return x[torch.arange(x.shape[0]), t]
    return x if x.dim() == 4 else None


def training_frames(method, n: int, epoch: int, shape, gen: torch.Generator) -> torch.Tensor | None:
    """``n`` real frames spread over the method's training batches of ``epoch`` (None if its batches
    are not frames of the model's shape)."""
    if n == 0:
        return None
    steps = max(1, method.steps_per_epoch())
    got: list[torch.Tensor] = []
    stride = None
    for i, batch in enumerate(method.train_batches(epoch)):
        if stride is not None and i % stride:
            continue
        f = _frames_of(batch, gen)
        if f is None or tuple(f.shape[1:]) != tuple(shape):
            return None
        got.append(f)
        if stride is None:
            stride = max(1, steps // max(1, -(-n // max(1, f.shape[0]))))
        if sum(len(g) for g in got) >= n:
            break
    frames = torch.cat(got)
    pick = torch.randperm(frames.shape[0], generator=gen)[:n] if frames.shape[0] > n else torch.arange(frames.shape[0])
    return frames[pick.sort().values]


def heldout_frames(seqs: torch.Tensor, n: int) -> torch.Tensor:
    """n frames of the held-out sequences: sequence i mod S at time (7 * (i div S)) mod T."""
    S, T = seqs.shape[:2]
    return torch.stack([seqs[i % S, (7 * (i // S)) % T] for i in range(n)]) if n else seqs[:0, 0]


# --------------------------------------------------------------------------- the sleep loop

@dataclass
class CycleRow:
    run: str               # 'sleep' or 'control' (wake only)
    cycle: int
    dreams: int
    settled: int
    fixed_points: int
    cycles_found: int
    mean_settle_step: float
    energy_before: float   # mean settling energy at this cycle's attractors, before unlearning them
    energy_after: float    # ... right after each one's unlearning step
    wake_steps: int
    wake_loss: float


def _check_finite(method, where: str) -> None:
    for module in method.state_modules().values():
        for name, t in itertools.chain(module.named_parameters(), module.named_buffers()):
            if t.is_floating_point() and not bool(torch.isfinite(t).all()):
                raise TrainingDiverged(f"sleep stopped: weight '{name}' is NaN or inf {where}; "
                                       "lower --rate (nothing was written)")


def sleep_cycles(method, stepper, cycles: int, steps: int, rate: float, wake: bool, s: SleepSettings,
                 first_epoch: int, unlearn: bool = True) -> list[CycleRow]:
    """Run the cycles in place on ``method``'s model; one row per cycle. ``unlearn=False``: the
    wake phases alone (the control), on the same training batches."""
    shape = tuple(stepper.frame_shape)
    dev = device_of(stepper)
    rows = []
    wake_steps = max(1, round(s.wake_epochs * method.steps_per_epoch())) if wake and s.wake_epochs > 0 else 0
    label = "sleep cycle" if unlearn else "wake-only control"
    with Progress(TextColumn(f"[bold]{label} " + "{task.completed}/{task.total}"), BarColumn(), MofNCompleteColumn(),
                  TextColumn("{task.fields[info]}"), TimeElapsedColumn(), console=console, transient=True,
                  disable=not progress_enabled()) as bar:
        task = bar.add_task("sleep", total=cycles, info="")
        for c in range(cycles):
            gen = torch.Generator().manual_seed(s.seed * 100_003 + 7919 * (c + 1))
            epoch = first_epoch + c
            settled: list[Settling | None] = []
            if unlearn:
                real = training_frames(method, s.real, epoch, shape, gen)
                starts = A.make_starts(shape, s.noise, s.grey, real, gen)
                stepper.set_learning(False)
                dreams = A.closed_loop(stepper, starts.frames, s.prime, steps)
                settled = A.settle_all(dreams, s.threshold, s.patience)
            e0, e1 = [], []
            for i, st in enumerate(settled):
                if st is None:
                    continue
                clip = attractor_clip(A.attractor_frames(dreams[i], st, s.patience)[None].to(dev), s.burn_in)
                with torch.no_grad():
                    e0.append(float(settling_energy(stepper.step, stepper.init_state, clip, s.burn_in)[0]))
                stepper.unlearn_step(clip, rate, s.burn_in)
                stepper.set_learning(False)
                with torch.no_grad():
                    e1.append(float(settling_energy(stepper.step, stepper.init_state, clip, s.burn_in)[0]))
            _check_finite(method, f"after the unlearning of cycle {c + 1}")
            losses = []
            if wake_steps:
                method.train_mode(True)
                for batch in itertools.islice(method.train_batches(epoch), wake_steps):
                    losses.append(float(method.train_step(batch)["loss"]))
                method.train_mode(False)
                stepper.set_learning(False)
                _check_finite(method, f"after the wake phase of cycle {c + 1}")
            found = [st for st in settled if st is not None]
            mean = lambda v: sum(v) / len(v) if v else float("nan")  # noqa: E731
            rows.append(CycleRow("sleep" if unlearn else "control", c + 1, len(settled), len(found), sum(st.period == 1 for st in found),
                                 sum(st.period > 1 for st in found), mean([st.step for st in found]),
                                 mean(e0), mean(e1), len(losses), mean(losses)))
            info = (f"{len(found)}/{len(settled)} settled and unlearnt; energy {mean(e0):.2e} -> {mean(e1):.2e}"
                    if unlearn else f"wake loss {mean(losses):.4g}")
            bar.update(task, advance=1, info=info)
    return rows


# --------------------------------------------------------------------------- loading

def _snapshot(method) -> dict:
    """A deep copy of everything a wake phase changes (weights, optimisers, schedulers, stream state)."""
    return copy.deepcopy({
        "modules": {k: m.state_dict() for k, m in method.state_modules().items()},
        "optimizers": {k: o.state_dict() for k, o in method.optimizers().items()},
        "schedulers": {k: o.state_dict() for k, o in method.schedulers().items()},
        "extra": method.extra_state(),
    })


def _restore(method, snap: dict) -> None:
    snap = copy.deepcopy(snap)
    for k, m in method.state_modules().items():
        m.load_state_dict(snap["modules"][k])
    for k, o in method.optimizers().items():
        o.load_state_dict(snap["optimizers"][k])
    for k, o in method.schedulers().items():
        o.load_state_dict(snap["schedulers"][k])
    method.load_extra_state(snap["extra"])
    method.train_mode(False)


def load_for_sleep(run_path: Path):
    """(cfg, method, checkpoint, checkpoint path) of a run: best.pt (else last.pt), with the
    optimiser state (wake continues training exactly as train would)."""
    from predvis.run import load_checkpoint
    from predvis.train.loop import build_method, load_run_config, restore

    cfg = load_run_config(run_path)
    path = Path(run_path) / "checkpoints" / "best.pt"
    if not path.exists():
        path = Path(run_path) / "checkpoints" / "last.pt"
    method, _ = build_method(cfg)
    ckpt = load_checkpoint(path, method.device)
    restore(method, ckpt, path, with_training_state=True)
    method.train_mode(False)
    return cfg, method, ckpt, path


def run_sleep(run_path: Path, cycles: int = 5, dream_steps: int = 100, rate: float | None = None, wake: bool = True,
              options: dict | None = None, out: Path | None = None) -> Path:
    """Sleep a copy of ``run_path``'s model; write and return the new run directory.

    rate: None = the model's ``default_unlearn_rate``."""
    from predvis.train.loop import seed_everything

    s = from_dict(SleepSettings, dict(options or {}), "")
    check_arguments(cycles, dream_steps, 1.0 if rate is None else rate, s.patience)
    run_path = Path(run_path)
    from predvis.run import RunDir, check_writable

    check_writable(Path(out) if out is not None else run_path.parent.parent, "--runs")
    cfg, method, ckpt, ckpt_path = load_for_sleep(run_path)
    state = RunDir(run_path).status().get("state")
    if state == "running":
        print(f"warning: run {run_path} is still training; sleep uses checkpoints/{ckpt_path.name} "
              f"(epoch {int(ckpt.get('epoch', -1)) + 1}, step {int(ckpt.get('step', 0))})", file=sys.stderr)
    stepper = method.stepper()
    if stepper is None:
        raise PredvisError(f"run {run_path} is not a predictive stepping model ('{cfg.method}'); sleep needs one")
    if not isinstance(stepper, Unlearning):
        raise PredvisError(f"the {cfg.name} model of run {run_path} has no unlearning step "
                           "(predvis.models.stepping.Unlearning); sleep needs one")
    if rate is None:
        rate = float(stepper.default_unlearn_rate)
    seed_everything(s.seed)
    shape = tuple(stepper.frame_shape)
    seqs = method.test_sequences()
    if s.limit:
        seqs = seqs[: s.limit]
    eval_gen = torch.Generator().manual_seed(s.seed * 100_003 + 1)
    eval_starts = A.make_starts(shape, s.eval_noise, s.grey, heldout_frames(seqs, s.eval_real), eval_gen)

    console.print(f"sleep: {run_path} ({cfg.name}), {cycles} cycles, {dream_steps} dream steps, rate {rate}, "
                  f"wake {'on' if wake else 'off'}")
    from predvis.train.loop import checkpoint_payload

    before = evaluate(stepper, eval_starts, seqs, dream_steps, s)
    start = _snapshot(method)
    rows = sleep_cycles(method, stepper, cycles, dream_steps, rate, wake, s, first_epoch=cfg.train.epochs)
    after = evaluate(stepper, eval_starts, seqs, dream_steps, s)
    shifts = {"after": energies(stepper, before.attractors, s.burn_in)}  # before's attractors, slept model
    payload = copy.deepcopy(checkpoint_payload(method, int(ckpt.get("epoch", 0)), int(ckpt.get("step", 0)),
                                               float(ckpt.get("best_val", math.inf))))
    control, control_rows = None, []
    if wake and s.control:  # the same wake phases from the same weights, without unlearning
        _restore(method, start)
        control_rows = sleep_cycles(method, stepper, cycles, dream_steps, rate, wake, s,
                                    first_epoch=cfg.train.epochs, unlearn=False)
        control = evaluate(stepper, eval_starts, seqs, dream_steps, s)
        shifts["control"] = energies(stepper, before.attractors, s.burn_in)

    summary = summarise(before, after, shifts, eval_starts.kinds, dream_steps, s, control)
    settings = {"source": str(run_path), "source_checkpoint": str(ckpt_path),
                "source_epochs": int(ckpt.get("epoch", -1)) + 1, "source_step": int(ckpt.get("step", 0)),
                "source_state": state, "source_running": state == "running", "cycles": cycles,
                "dream_steps": dream_steps, "rate": rate, "wake": wake, **asdict(s)}
    text = sleep_markdown(summary, settings, cfg.name, rows)
    path = write_sleep_run(run_path, out, cfg, method, payload, settings, summary, text, rows + control_rows,
                           before, after, eval_starts, dream_steps, s, control)
    console.print(text, soft_wrap=True)
    return path


# --------------------------------------------------------------------------- tables

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


# --------------------------------------------------------------------------- writing

def _figure_dreams(kinds: list[str], n: int) -> list[int]:
    first = [kinds.index(k) for k in ("noise", "grey", "real") if k in kinds]
    rest = [i for i in range(len(kinds)) if i not in first]
    return (first + rest)[:n]


def _figures(folder: Path, evals: dict[str, Evaluation], starts: A.Starts, s: SleepSettings, settings: dict,
             name: str) -> None:
    """frames/dream_<k>_<kind>.png and gifs/dream_<k>_<kind>.gif: the same dream per model state."""
    from predvis.figures.sleep import write_dream_pair

    N = next(iter(evals.values())).dreams.shape[1]
    rows = {"before": "before sleep", "after": "after sleep", "control": "wake only (control)"}
    for k, i in enumerate(_figure_dreams(starts.kinds, s.figures)):
        tag = f"dream_{k}_{starts.kinds[i]}"
        title = [f"sleep of {name}: dream {k} from a {starts.kinds[i]} start",
                 f"{s.prime} copies of the start, then {N} dream steps; {settings['cycles']} sleep cycles at rate "
                 f"{settings['rate']:g}, wake {'on' if settings['wake'] else 'off'}; settled = change < "
                 f"{s.threshold:g} for {s.patience} steps"]
        write_dream_pair(folder / "frames" / f"{tag}.png", folder / "gifs" / f"{tag}.gif", starts.frames[i],
                         {rows[p]: ev.dreams[i] for p, ev in evals.items()},
                         {rows[p]: ev.settled[i] for p, ev in evals.items()}, title)


def _sha256(path: Path) -> str:
    return hashlib.sha256(Path(path).read_bytes()).hexdigest()


def write_sleep_run(run_path: Path, out: Path | None, cfg, method, payload: dict, settings: dict, summary: dict,
                    text: str, rows: list[CycleRow], before: Evaluation, after: Evaluation, starts: A.Starts,
                    steps: int, s: SleepSettings, control: Evaluation | None = None) -> Path:
    """Assemble the new run (checkpoint ``payload``: the slept model) in a hidden folder, then rename
    it into ``<out>/<name>-sleep/``."""
    import yaml

    from predvis.config import dump_yaml
    from predvis.run import (_stamp, atomic_torch_save, atomic_write_json, atomic_write_text, command_line,
                             environment, staging_dir, write_csv)
    root = Path(out) if out is not None else run_path.parent.parent
    parent = root / f"{cfg.name}-sleep"
    parent.mkdir(parents=True, exist_ok=True)
    staging = staging_dir(parent)
    try:
        for sub in ("metrics", "checkpoints", "frames", "gifs", "tables"):
            (staging / sub).mkdir()
        settings = dict(settings, source_sha256=_sha256(settings["source_checkpoint"]))
        header = (f"# predvis sleep of {run_path} (settings in sleep.yaml); the model config is the source's\n")
        atomic_write_text(staging / "config.yaml", header + dump_yaml(cfg.to_dict()))
        src_over = run_path / "overrides.yaml"
        atomic_write_text(staging / "overrides.yaml", src_over.read_text() if src_over.exists() else "{}\n")
        atomic_write_text(staging / "sleep.yaml", yaml.safe_dump(settings, sort_keys=False, default_flow_style=False))
        atomic_write_text(staging / "cmd.txt", command_line())
        atomic_write_json(staging / "env.json", environment(method.device, s.seed, extra={"sleep_of": str(run_path)}))
        if (run_path / "metrics" / "train.csv").exists():
            shutil.copyfile(run_path / "metrics" / "train.csv", staging / "metrics" / "train.csv")
        atomic_torch_save(staging / "checkpoints" / "last.pt", payload)
        atomic_torch_save(staging / "checkpoints" / "best.pt", payload)
        atomic_write_text(staging / "tables" / "sleep.md", text + "\n")
        head, table = summary_rows(summary, steps)
        write_csv(staging / "tables" / "sleep.csv", [dict(zip(head, r)) for r in table])
        write_csv(staging / "metrics" / "sleep_cycles.csv", [asdict(r) for r in rows])
        per = []
        evs = {"before": before, "after": after, **({"control": control} if control is not None else {})}
        for phase, ev in evs.items():
            lab = dict(zip(ev.owners, ev.labels))
            for i, st in enumerate(ev.settled):
                per.append({"phase": phase, "dream": i, "start": starts.kinds[i],
                            "settled": "" if st is None else st.kind, "step": "" if st is None else st.step,
                            "period": "" if st is None else st.period,
                            "length": steps if st is None else st.step, "attractor": lab.get(i, "")})
        write_csv(staging / "metrics" / "sleep_dreams.csv", per)
        write_csv(staging / "metrics" / "sleep_diversity.csv",
                  [{"step": t + 1, **{k: float(ev.div[t]) for k, ev in evs.items()}}
                   for t in range(before.div.shape[0])])
        _figures(staging, evs, starts, s, settings, cfg.name)
        atomic_write_json(staging / "summary.json", {"settings": settings, "summary": summary})
        atomic_write_json(staging / "status.json", {"state": "done", "epoch": int(payload["epoch"]) + 1,
                                                    "epochs": cfg.train.epochs, "sleep": True})
        for _ in range(100):
            final = parent / f"{_stamp()}_{secrets.token_hex(3)}"
            if final.exists():
                continue
            os.rename(staging, final)
            return final
        raise PredvisError(f"could not create a new run folder under {parent}")
    except BaseException:
        shutil.rmtree(staging, ignore_errors=True)
        raise
