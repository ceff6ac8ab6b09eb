"""Host allocator benchmark: training steps with glibc's own settings against the tuned thresholds of
:mod:`predvis.allocator`, each candidate in child processes of its own.

The allocator is a process-wide setting, and glibc's default mmap threshold adapts to what a process
has freed, so the default cannot be restored inside a process that has changed it: every candidate
runs in a fresh child (``python -m predvis.bench.allocator --child``) that builds the real
``Method.train_step``, warms up, and times ``steps`` steps; children of the candidates alternate
(A B C A B C ...) so machine noise hits them alike. Reported per candidate: median wall and CPU ms
per step over the rounds, and minor page faults per step.

    python -m predvis.bench.allocator [--threads T] [--rounds R] [--steps N]
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import time
from dataclasses import dataclass

from predvis.tables import markdown_table


@dataclass(frozen=True)
class Candidate:
    label: str
    experiment: str
    profile: str
    overrides: tuple[str, ...]
    tuned: bool


DEPTH = ("model.encoder=BLT", "model.decoder=BLT", "train.batch_size=32", "data.train_scenes=128")
BEST = ("model.lrn=fused", "train.amp=bf16", "train.channels_last=true")
CANDIDATES = (
    Candidate("BLT-BLT: first implementation (fp32, LRN by shifted adds), glibc default", "depth_inversion", "quick",
              (*DEPTH, "model.lrn=shifted"), False),
    Candidate("BLT-BLT: fused LRN + bf16 + channels-last, glibc default", "depth_inversion", "quick", (*DEPTH, *BEST), False),
    Candidate("BLT-BLT: fused LRN + bf16 + channels-last, tuned allocator", "depth_inversion", "quick", (*DEPTH, *BEST), True),
    Candidate("GOPC-1 quick, glibc default", "gopc1", "quick", ("data.train_sequences=64",), False),
    Candidate("GOPC-1 quick, tuned allocator", "gopc1", "quick", ("data.train_sequences=64",), True),
)


def child(experiment: str, profile: str, overrides: list[str], steps: int, threads: int, tuned: bool) -> dict:
    """Runs in the child process: times ``steps`` training steps after two warm-up steps."""
    import torch

    if tuned:
        from predvis.allocator import tune_cpu_allocator

        tune_cpu_allocator()
    torch.set_num_threads(threads)
    from predvis.bench.train_options import step_timer

    losses: list[float] = []
    step, _ = step_timer(experiment, profile, overrides, torch.device("cpu"), losses=losses)
    step()
    faults = resource.getrusage(resource.RUSAGE_SELF).ru_minflt
    wall, cpu = time.perf_counter(), time.process_time()
    for _ in range(steps):
        step()
    return {"wall_ms": (time.perf_counter() - wall) / steps * 1e3, "cpu_ms": (time.process_time() - cpu) / steps * 1e3,
            "faults_per_step": (resource.getrusage(resource.RUSAGE_SELF).ru_minflt - faults) / steps, "losses": losses}


def _run_child(c: Candidate, steps: int, threads: int) -> dict:
    cmd = [sys.executable, "-m", "predvis.bench.allocator", "--child", "--experiment", c.experiment, "--profile",
           c.profile, "--steps", str(steps), "--threads", str(threads), *(["--tuned"] if c.tuned else []),
           "--", *c.overrides]
    env = {**os.environ, "PREDVIS_NO_PROGRESS": "1"}
    env.pop("PREDVIS_SYSTEM_MALLOC", None)
    out = subprocess.run(cmd, capture_output=True, text=True, env=env, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def bench_allocator(threads: int = 1, rounds: int = 3, steps: int = 6,
                    candidates: tuple[Candidate, ...] = CANDIDATES) -> dict:
    """{label: {'wall_ms', 'cpu_ms', 'faults_per_step'} (medians over ``rounds`` children), 'same_losses':
    True/False/None -- the training losses of every child equal, bit for bit, those of the candidate with
    the same experiment and overrides and the other allocator setting (None: no such candidate)}."""
    runs: dict[str, list[dict]] = {c.label: [] for c in candidates}
    for _ in range(rounds):
        for c in candidates:
            runs[c.label].append(_run_child(c, steps, threads))
    out = {label: {k: statistics.median(r[k] for r in rs) for k in ("wall_ms", "cpu_ms", "faults_per_step")}
           for label, rs in runs.items()}
    for c in candidates:
        twin = next((o for o in candidates if (o.experiment, o.profile, o.overrides) == (c.experiment, c.profile,
                     c.overrides) and o.tuned != c.tuned), None)
        out[c.label]["same_losses"] = None if twin is None else all(
            r["losses"] == t["losses"] for r in runs[c.label] for t in runs[twin.label])
    return out


def section(threads: int = 1, rounds: int = 3, steps: int = 6) -> str:
    """The ``make bench`` section: every candidate against the first row of its model."""
    r = bench_allocator(threads, rounds, steps)
    rows, base = [], {}
    for c in CANDIDATES:
        v = r[c.label]
        first = base.setdefault(c.experiment, v)
        same = {True: "identical", False: "DIFFERENT", None: "-"}[v["same_losses"]]
        rows.append([c.label, v["wall_ms"], v["cpu_ms"], first["wall_ms"] / v["wall_ms"], round(v["faults_per_step"]), same])
    load = os.getloadavg()[0]
    return (f"## Host allocator (glibc thresholds) and the BLT-BLT step against its first implementation\n\n"
            f"Each row is a fresh child process per round ({rounds} rounds, rows alternating), {steps} training "
            f"steps after warm-up, {threads} thread(s), load average {load:.1f} at the end; 'x first row' compares "
            "wall-clock medians with the first row of the same model. Tuned: mmap and trim thresholds raised "
            "(predvis/allocator.py), as `predvis train` and every probe set them. Last column: every "
            "child's training losses against those of the same step under the other allocator setting.\n\n"
            + markdown_table(["step", "wall ms", "CPU ms", "x first row", "page faults / step",
                              "losses vs the other allocator"], rows) + "\n")


def main(argv: list[str] | None = None) -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--child", action="store_true")
    p.add_argument("--experiment", default="depth_inversion")
    p.add_argument("--profile", default="quick")
    p.add_argument("--steps", type=int, default=6)
    p.add_argument("--threads", type=int, default=1)
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--tuned", action="store_true")
    p.add_argument("overrides", nargs="*")
    a = p.parse_args(argv)
    if a.child:
        print(json.dumps(child(a.experiment, a.profile, a.overrides, a.steps, a.threads, a.tuned)))
    else:
        print(section(a.threads, a.rounds, a.steps))


if __name__ == "__main__":
    main()
