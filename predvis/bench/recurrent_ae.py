"""BLT-BLT training step, the first implementation beside the faster options (called by ``make bench``).

Each candidate is the real ``DepthInversionMethod.train_step`` of the quick profile (batch 32, 4
steps per half, chained) built with ``KEY=VALUE`` overrides from the same seed, on the same cycle
of cached batches, so every candidate takes the same optimisation path up to its arithmetic.
Steps are timed in interleaved rounds (``predvis.bench.time_side_by_side``); the losses of every
step of every candidate are kept and compared with those of the first implementation, step by
step: the largest relative difference is the "loss difference".

    python -m predvis.bench_recurrent_ae [--repeats N] [--threads T]
"""
from __future__ import annotations

import itertools
import os
import statistics

import torch

from predvis.bench.timing import time_side_by_side
from predvis.experiment import load_experiment
from predvis.backends.registry import get_method
from predvis.tables import markdown_table

BASELINE = "fp32, LRN through autograd (shifted adds)"
CANDIDATES = {
    BASELINE: ["model.lrn=shifted"],
    "fp32, fused LRN (model.lrn=fused)": ["model.lrn=fused"],
    "fused LRN + channels-last": ["model.lrn=fused", "train.channels_last=true"],
    "fused LRN + bf16 autocast": ["model.lrn=fused", "train.amp=bf16"],
    "fused LRN + bf16 + channels-last": ["model.lrn=fused", "train.amp=bf16", "train.channels_last=true"],
}


def _candidate(overrides: list[str], batch: int, cached: int = 4):
    """(step(), losses list): one training step on the next cached batch; losses grow per call."""
    cfg = load_experiment("depth_inversion", "quick",
                          [*overrides, f"train.batch_size={batch}", "device=cpu", "data.train_scenes=128"])
    torch.manual_seed(0)
    method = get_method(cfg.method)(cfg, torch.device("cpu"))
    method.train_mode(True)
    batches = itertools.cycle(list(itertools.islice(method.train_batches(0), cached)))
    losses: list[float] = []

    def step() -> None:
        losses.append(float(method.train_step(next(batches))["loss"]))

    return step, losses


def bench_recurrent_ae(batch: int = 32, repeats: int = 7, threads: int | None = None,
                       candidates: dict[str, list[str]] | None = None) -> dict:
    """{'threads', 'batch', 'ms': {name: median ms/step}, 'min_ms', 'speedup': {name: baseline median /
    median}, 'loss_rel_diff': {name: max over steps of |loss - baseline loss| / baseline loss}, 'steps'}."""
    before = torch.get_num_threads()
    candidates = candidates or CANDIDATES
    try:
        if threads:
            torch.set_num_threads(threads)
        built = {name: _candidate(over, batch) for name, over in candidates.items()}
        times = time_side_by_side({k: v[0] for k, v in built.items()}, repeats, torch.device("cpu"), warmup=1)
        med = {k: statistics.median(t) * 1e3 for k, t in times.items()}
        base_name = next(iter(candidates))
        base_losses = built[base_name][1]
        rel = {k: max(abs(a - b) / abs(b) for a, b in zip(losses, base_losses)) for k, (_, losses) in built.items()}
        return {"threads": torch.get_num_threads(), "batch": batch, "ms": med,
                "min_ms": {k: min(t) * 1e3 for k, t in times.items()},
                "speedup": {k: med[base_name] / v for k, v in med.items()}, "loss_rel_diff": rel,
                "steps": len(base_losses), "repeats": repeats, "final_loss": {k: v[1][-1] for k, v in built.items()}}
    finally:
        torch.set_num_threads(before)


def section(r: dict) -> str:
    """The ``make bench`` section, from the results of :func:`bench_recurrent_ae`."""
    repeats = r["repeats"]
    rows = [[name, r["min_ms"][name], r["ms"][name], 1e3 / r["ms"][name], r["speedup"][name],
             f"{100 * r['loss_rel_diff'][name]:.3f}%"] for name in r["ms"]]
    load = os.getloadavg()[0]
    return (f"## BLT-BLT autoencoder training step (depth inversion, quick profile)\n\nBatch {r['batch']}, "
            f"4 + 4 unrolled steps, Adam; {r['threads']} threads, load average {load:.1f} at the end; "
            f"{repeats} interleaved rounds after one warm-up step. Loss difference: the largest relative difference "
            f"of a candidate's training loss from the first row's over the {r['steps']} steps every candidate took "
            "from the same seed on the same batches.\n\n"
            + markdown_table(["step", "min ms", "median ms", "steps/s (median)", "x first row", "loss difference"], rows)
            + "\n")
