"""PVM speed benchmark: paper-size model, online learning, batch 1 (called by ``make bench``).

Measures steps/s of the batched model (predvis/models/pvm.py) and of the per-unit reference loop
(tests/pvm_reference.py) on the same model, side by side in one process, and their ratio.

Every layer learns and every context pathway is on (the most expensive step). The batched path
is timed in blocks of steps; the headline is the median block (min and max are returned too),
for 1 and 2 intra-op threads unless ``threads`` is given; the headline thread count is the
faster one and the reference is timed with it. CPU time per step (``process_time``) is returned
alongside wall time: on a shared machine wall time also counts the time other jobs hold the core.
"""
from __future__ import annotations

import importlib.util
import statistics
import time
from pathlib import Path

import torch

from predvis.models.pvm import PVM, PVMSchedule


def _reference_class():
    path = Path(__file__).resolve().parent.parent / "tests" / "pvm_reference.py"
    if not path.exists():
        return None
    spec = importlib.util.spec_from_file_location("pvm_reference", path)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod.ReferencePVM


def _time_blocks(step, steps: int, block: int) -> tuple[list[float], float]:
    """(steps/s of each block of ``block`` calls ``step(i)``, CPU steps/s over all ``steps`` calls)."""
    rates, cpu, done = [], 0.0, 0
    while done < steps:
        n = min(block, steps - done)
        c0, t0 = time.process_time(), time.perf_counter()
        for i in range(done, done + n):
            step(i)
        rates.append(n / (time.perf_counter() - t0))
        cpu += time.process_time() - c0
        done += n
    return rates, steps / cpu if cpu > 0 else float("nan")


def _model_steps(model: PVM, frames: torch.Tensor):
    """``step(i)``: one learning step of ``model`` on ``frames[i % len]``, after a warm-up (caches exist,
    every layer learns)."""
    state = [model.init_state(1)]
    for i in range(3):
        state[0] = model.step(frames[i % len(frames)], state[0]).state

    def step(i: int) -> None:
        state[0] = model.step(frames[i % len(frames)], state[0]).state
    return step


def _floor_step(model: PVM):
    """``step(i)`` of the weight-streaming floor: one batched matrix-vector product through every
    layer's W1 and W2 at batch 1, i.e. one read of every predictive weight -- which any learning step
    must do at least once (its forward) -- and nothing else: no features, gathers, nonlinearities,
    momentum or updates."""
    mats = []
    for l in range(model.n_layers):
        v1, w2 = getattr(model, f"v1_{l}"), getattr(model, f"w2_{l}")  # (U, H, n), (U, H + 1, out)
        mats.append((v1, torch.rand(v1.shape[0], v1.shape[2], 1, dtype=v1.dtype)))
        mats.append((w2.transpose(1, 2), torch.rand(w2.shape[0], w2.shape[1], 1, dtype=w2.dtype)))

    def step(i: int) -> None:
        for w, x in mats:
            torch.bmm(w, x)
    for i in range(3):  # warm-up
        step(i)
    return step


def bench_pvm(steps: int = 69, ref_steps: int = 5, threads: int | None = None,
              layers: tuple[int, ...] = (16, 8, 4, 3, 2, 1), block: int = 23) -> dict:
    """Returns {'weights', 'threads', 'batched_steps_per_s', 'reference_steps_per_s', 'ratio', ...}.

    Extra keys: 'batched_min_steps_per_s', 'batched_max_steps_per_s' (blocks), 'batched_cpu_steps_per_s'
    (steps per CPU second), 'by_threads' ({threads: median steps/s}); 'floor_steps_per_s' (one
    matrix-vector read of every weight per step and nothing else, :func:`_floor_step`, at the
    headline thread count), 'floor_efficiency' (batched / floor) and 'floor_ratio' (floor / reference:
    the speed-up over the per-unit loop of a step that only streamed the weights once).
    ``block`` defaults to the ring length of float32 momentum (23), so each block holds one flush.
    """
    before = torch.get_num_threads()
    on = PVMSchedule(layer_delay=0, lateral_on=0, feedback_on=0)  # every layer and context learning
    frames = torch.rand(8, 1, 3, layers[0] * 5, layers[0] * 5, generator=torch.Generator().manual_seed(0))
    results = {}
    try:
        for t in ([threads] if threads else [1, 2]):
            torch.set_num_threads(t)
            model = PVM(list(layers), schedule=on, seed=0)
            rates, cpu = _time_blocks(_model_steps(model, frames), steps, block)
            results[t] = (statistics.median(rates), min(rates), max(rates), cpu)
        best = max(results, key=lambda t: results[t][0])
        torch.set_num_threads(best)
        med, lo, hi, cpu = results[best]
        out = {"weights": sum(model.n_weights), "threads": best, "batched_steps_per_s": med,
               "batched_min_steps_per_s": lo, "batched_max_steps_per_s": hi, "batched_cpu_steps_per_s": cpu,
               "by_threads": {t: r[0] for t, r in results.items()}}
        floor = statistics.median(_time_blocks(_floor_step(model), steps, block)[0])
        out["floor_steps_per_s"] = floor
        out["floor_efficiency"] = med / floor
        Ref = _reference_class()
        if Ref is not None and ref_steps > 0:
            ref = Ref(PVM(list(layers), schedule=on, seed=0))
            for i in range(2):
                ref.step(frames[i][0])
            t0 = time.perf_counter()
            for i in range(ref_steps):
                ref.step(frames[i % 8][0])
            out["reference_steps_per_s"] = ref_steps / (time.perf_counter() - t0)
            out["ratio"] = med / out["reference_steps_per_s"]
            out["floor_ratio"] = floor / out["reference_steps_per_s"]
    finally:
        torch.set_num_threads(before)
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(bench_pvm(), indent=1))
