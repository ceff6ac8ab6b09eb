"""PVM speed benchmark: paper-size model, online learning, batch 1 (called by ``make bench``).

Measures steps/s of the batched model (predvis/backends/pvm/model.py) and of the per-unit reference loop
(:mod:`predvis.bench.pvm_reference`) on the same model, side by side in one process, and their ratio;
the batched model's per-layer and grouped one-stream paths (:data:`STEP_PATHS`) in interleaved blocks.

Every layer learns and every context pathway is on (the most expensive step). The batched path
is timed in blocks of steps; the headline is the median block (min and max are returned too),
for 1 and 2 intra-op threads unless ``threads`` is given; the headline thread count is the
faster one and the reference is timed with it. CPU time per step (``process_time``) is returned
alongside wall time: on a shared machine wall time also counts the time other jobs hold the core.
With 64 streams (:func:`bench_pvm_paths`) the previous and the current way of keeping W1, the
opt-in bf16 precision and the opt-in compiled element-wise tail (``train.compile``) are timed side by
side in one process, and their results compared.
"""
from __future__ import annotations

import os
import statistics
import time
from typing import Callable

import torch

from predvis.backends.pvm.model import PVM, PVMSchedule
from predvis.tables import markdown_table


def _reference_class():
    from predvis.bench.pvm_reference import ReferencePVM

    return ReferencePVM


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


def _weights(model: PVM) -> list[tuple[torch.Tensor, torch.Tensor]]:
    """Every layer's stored W1 (U, H, n) and W2 read as (U, out, H + 1): the predictive weights."""
    mats = []
    for l in range(model.n_layers):
        mats.append(getattr(model, f"v1_{l}"))
        mats.append(getattr(model, f"w2_{l}").transpose(1, 2))
    return mats


def floor_steps(model: PVM, batch: int = 1) -> dict[str, Callable[[int], None]]:
    """Several ``step(i)`` that each read every predictive weight of ``model`` exactly once and
    multiply it with ``batch`` input columns -- which any learning step must do at least once (its
    forward) -- and nothing else: no features, gathers, nonlinearities, momentum or updates.
    The weight-streaming floor is the fastest of them (each is a lower bound only if its kernel
    streams well, so one alone can sit below what the step itself reaches):

    - ``bmm``: one batched product per weight tensor, ``W (U, r, n) @ x (U, n, batch)``;
    - ``einsum``: the same products written as ``einsum('urn,unb->urb')``;
    - ``one matmul, fp32``: all weights copied once (before timing) into one (rows, 1024) matrix,
      one ``mm`` with (1024, batch) columns per step;
    - ``one matmul, bf16``: the same matrix in bfloat16 (half the bytes; a bound for a model
      that kept its weights in bf16, not for the float32 model).
    """
    mats = _weights(model)
    xs = [torch.rand(w.shape[0], w.shape[2], batch, dtype=w.dtype) for w in mats]
    flat = torch.cat([w.reshape(-1) for w in mats])
    cols = 1024
    big = torch.nn.functional.pad(flat, (0, -flat.numel() % cols)).view(-1, cols)
    big16 = big.to(torch.bfloat16)
    v = torch.rand(cols, batch)
    v16 = v.to(torch.bfloat16)

    def by_bmm(i: int) -> None:
        for w, x in zip(mats, xs):
            torch.bmm(w, x)

    def by_einsum(i: int) -> None:
        for w, x in zip(mats, xs):
            torch.einsum("urn,unb->urb", w, x)

    def by_matmul(i: int) -> None:
        torch.mm(big, v)

    def by_matmul16(i: int) -> None:
        torch.mm(big16, v16)

    steps = {"bmm": by_bmm, "einsum": by_einsum, "one matmul, fp32": by_matmul, "one matmul, bf16": by_matmul16}
    for fn in steps.values():  # warm-up
        for i in range(2):
            fn(i)
    return steps


def floor_rates(model: PVM, batch: int, steps: int, block: int) -> dict[str, float]:
    """Median steps/s of each :func:`floor_steps` way, timed in interleaved blocks."""
    ways = floor_steps(model, batch)
    rates: dict[str, list[float]] = {k: [] for k in ways}
    for _ in range(max(1, steps // block)):
        for name, fn in ways.items():
            rates[name].extend(_time_blocks(fn, block, block)[0])
    return {k: statistics.median(r) for k, r in rates.items()}


# the one-stream paths bench_pvm times side by side: the earlier one first, the default last
STEP_PATHS = {"per-layer": {"group_layers": False}, "grouped upper layers": {"group_layers": True}}


def bench_pvm(steps: int = 69, ref_steps: int = 5, threads: int | None = None,
              layers: tuple[int, ...] = (16, 8, 4, 3, 2, 1), block: int = 23) -> dict:
    """Returns {'weights', 'threads', 'batched_steps_per_s', 'reference_steps_per_s', 'ratio', ...}.

    The batched step is timed for each of :data:`STEP_PATHS` (same seed), blocks of ``block`` steps
    alternating between them, at each thread count; the headline 'batched_*' figures are the
    default (last) path's. Extra keys: 'batched_min_steps_per_s', 'batched_max_steps_per_s' (blocks),
    'batched_cpu_steps_per_s' (steps per CPU second), 'by_threads' ({threads: median steps/s}),
    'paths' ({threads: {path: median steps/s}}), 'group_speedup' ({threads: grouped / per-layer}),
    'load' (1-minute load average at the end of the timing); 'floor_steps_per_s' (the fastest
    of :func:`floor_steps`'s ways to read every weight once per step and do nothing else, at the
    headline thread count; 'floor_ways' holds each way's rate, 'floor_way' the fastest), 'floor_efficiency' (batched / floor) and 'floor_ratio' (floor / reference:
    the speed-up over the per-unit loop of a step that only streamed the weights once).
    ``block`` defaults to the ring length of float32 momentum (23), so each block holds one flush.
    """
    before = torch.get_num_threads()
    on = PVMSchedule(layer_delay=0, lateral_on=0, feedback_on=0)  # every layer and context learning
    frames = torch.rand(8, 1, 3, layers[0] * 5, layers[0] * 5, generator=torch.Generator().manual_seed(0))
    results, paths = {}, {}
    try:
        for t in ([threads] if threads else [1, 2]):
            torch.set_num_threads(t)
            models = {k: PVM(list(layers), schedule=on, seed=0, **kw) for k, kw in STEP_PATHS.items()}
            fns = {k: _model_steps(m, frames) for k, m in models.items()}
            rates = {k: [] for k in fns}
            cpu = {k: 0.0 for k in fns}
            for _ in range(max(1, steps // block)):
                for k, fn in fns.items():
                    r, c = _time_blocks(fn, block, block)
                    rates[k] += r
                    cpu[k] += block / c
            paths[t] = {k: statistics.median(r) for k, r in rates.items()}
            r = rates[list(fns)[-1]]
            cpu_rate = max(1, steps // block) * block / cpu[list(fns)[-1]]
            results[t] = (statistics.median(r), min(r), max(r), cpu_rate)
            model = models[list(fns)[0]]  # the floor reads the per-layer (contiguous) weight tensors
        load = os.getloadavg()[0]
        best = max(results, key=lambda t: results[t][0])
        torch.set_num_threads(best)
        med, lo, hi, cpu = results[best]
        first, last = list(STEP_PATHS)[0], list(STEP_PATHS)[-1]
        out = {"weights": sum(model.n_weights), "layers": tuple(layers), "threads": best, "batched_steps_per_s": med,
               "batched_min_steps_per_s": lo, "batched_max_steps_per_s": hi, "batched_cpu_steps_per_s": cpu,
               "by_threads": {t: r[0] for t, r in results.items()}, "paths": paths,
               "group_speedup": {t: p[last] / p[first] for t, p in paths.items()}, "load": load}
        ways = floor_rates(model, 1, steps, block)
        floor = max(ways.values())
        out["floor_ways"] = ways
        out["floor_way"] = max(ways, key=ways.get)
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


# the W1 forms bench_pvm_paths times side by side: the earlier one first, then the default, then
# the opt-in paths (compared with the default: each difference is that path's tolerance)
PATHS = {"previous: folded W1 (v = W + cM, pending P)": {"plain_streams": False},
         "now: plain W1 and momentum (W += M)": {"plain_streams": True},
         "opt-in: precision bf16 (bf16 inputs and W1 products, fp32 W1 and momentum)": {"precision": "bf16"},
         "opt-in: train.compile (element-wise tail compiled, fp32)": {"compiled_tail": True},
         "opt-in: precision bf16 + train.compile": {"precision": "bf16", "compiled_tail": True}}
DEFAULT_PATH = list(PATHS)[1]
OPT_IN = list(PATHS)[2:]


def _difference(a: PVM, b: PVM, pa: torch.Tensor, pb: torch.Tensor) -> tuple[float, float]:
    """Largest difference of two models' predictions (pa, pb) and of their W1 and W2: absolute, and
    relative to the largest value of its tensor (predictions: the largest prediction)."""
    diff = float((pa - pb).abs().max())
    rel = diff / float(pa.abs().max())
    for l in range(a.n_layers):
        for wa, wb in zip(a.layer_weights(l), b.layer_weights(l)):
            d = float((wa - wb).abs().max())
            diff, rel = max(diff, d), max(rel, d / float(wa.abs().max()))
    return diff, rel


def bench_pvm_paths(streams: int = 64, steps: int = 12, block: int = 3, threads: int | None = None,
                    layers: tuple[int, ...] = (16, 8, 4, 3, 2, 1), paths: list[str] | None = None) -> dict:
    """The ways several streams can step (:data:`PATHS`: the previous and the current way to keep W1,
    the opt-in bf16 precision and compiled element-wise tail, and both) side by side: same seed, ``streams`` streams, every layer and
    pathway learning. ``paths``: the names of :data:`PATHS` to time (default all; the first and the
    default are always timed).

    Blocks of ``block`` steps alternate between the models. Returns {'streams', 'threads',
    'load' (1-minute load average at the end), 'frames_per_s': {path: median of the blocks} (frames =
    steps x streams), 'speedup' (now / previous), 'max_abs_diff' and 'max_rel_diff' (largest difference
    of the previous and the current form's predictions and W1, W2 after the timed steps, absolute and
    relative to the largest value of its tensor), 'diffs' ({path: (abs, rel)}, each path against the
    default :data:`DEFAULT_PATH` the same way), 'compile_seconds' ({compiled path: seconds its
    warm-up spent compiling}), 'floor_frames_per_s' (fastest way of :func:`floor_steps` at batch
    ``streams``), 'floor_ways'}.
    """
    before = torch.get_num_threads()
    on = PVMSchedule(layer_delay=0, lateral_on=0, feedback_on=0)
    side = layers[0] * 5
    frames = torch.rand(4, streams, 3, side, side, generator=torch.Generator().manual_seed(0))
    try:
        if threads:
            torch.set_num_threads(threads)
        names = [k for k in PATHS if paths is None or k in paths or k in (next(iter(PATHS)), DEFAULT_PATH)]
        models = {k: PVM(list(layers), schedule=on, seed=0, **PATHS[k]) for k in names}
        states = {k: m.init_state(streams) for k, m in models.items()}
        last = {}

        def stepper(name: str):
            def step(i: int) -> None:
                out = models[name].step(frames[i % len(frames)], states[name])
                states[name] = out.state
                last[name] = out.prediction
            return step

        fns = {k: stepper(k) for k in models}
        for fn in fns.values():  # warm-up: caches exist, every layer learns, compiled paths compiled
            for i in range(3):
                fn(i)
        compile_s = {k: m.compile_seconds for k, m in models.items() if m.compiled_tail}
        rates: dict[str, list[float]] = {k: [] for k in fns}
        for r in range(max(1, steps // block)):
            for name, fn in fns.items():
                rates[name].extend(_time_blocks(lambda i, fn=fn, r=r: fn(3 + r * block + i), block, block)[0])
        first, ref = list(PATHS)[0], DEFAULT_PATH
        diffs = {k: _difference(models[ref], models[k], last[ref], last[k]) for k in models}
        diff, rel = diffs[first]
        ways = floor_rates(models[ref], streams, steps, block)
        fps = {k: streams * statistics.median(r) for k, r in rates.items()}
        return {"streams": streams, "layers": tuple(layers), "threads": torch.get_num_threads(), "load": os.getloadavg()[0],
                "frames_per_s": fps, "speedup": fps[ref] / fps[first], "max_abs_diff": diff, "max_rel_diff": rel,
                "diffs": diffs, "compile_seconds": compile_s,
                "floor_frames_per_s": streams * max(ways.values()),
                "floor_ways": {k: streams * v for k, v in ways.items()}}
    finally:
        torch.set_num_threads(before)


GOAL_STEPS_PER_S = 120      # one stream, 2 cores, idle machine
GOAL_FRAMES_PER_S = 1000    # 64 streams, 2 cores, idle machine


def bench_pvm_results() -> tuple[dict, list[dict]]:
    """(one stream: :func:`bench_pvm`, 64 streams: [:func:`bench_pvm_paths` at 1 and 2 threads])."""
    return bench_pvm(), [bench_pvm_paths(streams=64, threads=t) for t in (1, 2)]


def bench_pvm_section(device: torch.device, results: tuple[dict, list[dict]] | None = None) -> str:
    """Paper-size PVM, online learning: batch 1 (batched path vs the per-unit reference loop, against the
    weight-streaming floor) and 64 streams (the previous and the current W1 form and the opt-in bf16
    precision, 1 and 2 threads), each against its goal; ``results`` from :func:`bench_pvm_results`."""
    if device.type != "cpu":
        return ("## PVM\n\nThe PVM benchmark measures the CPU only (its per-unit reference loop and weight-streaming "
                "floor are CPU bounds); on a GPU, time `predvis train pvm --profile full` (docs/scaling.md).\n")
    r, runs = results or bench_pvm_results()
    rows = [["batched (upper layers grouped, momentum folded into W1 with a rank-1 ring)", r["batched_steps_per_s"]]]
    if "reference_steps_per_s" in r:
        rows.append(["per-unit reference loop", r["reference_steps_per_s"]])
    for way, rate in r["floor_ways"].items():
        rows.append([f"floor way: {way} (every W1 and W2 read once, nothing else)", rate])
    by_t = ", ".join(f"{t} thread{'s' if t > 1 else ''}: {v:.1f}" for t, v in r["by_threads"].items())
    text = (f"## PVM paper model, online learning, batch 1\n\n{r['weights']:,} predictive weights, "
            f"{r['threads']} thread{'s' if r['threads'] > 1 else ''}, load average {os.getloadavg()[0]:.1f} (the machine's other work "
            "counts in wall time).\n\n" + markdown_table(["implementation", "steps/s"], rows))
    text += (f"\n- batched steps/s by threads: {by_t}; goal **{GOAL_STEPS_PER_S}** steps/s (2 cores, idle): "
             f"{'met' if max(r['by_threads'].values()) >= GOAL_STEPS_PER_S else 'not met'} here\n")
    text += (f"- floor = the fastest way ({r['floor_way']}): {r['floor_steps_per_s']:.0f} steps/s; the batched step "
             f"runs at **{100 * r['floor_efficiency']:.0f}%** of it\n")
    side = "; ".join(f"{t} thread{'s' if t > 1 else ''}: " + ", ".join(f"{k} {v:.1f}" for k, v in p.items())
                     + f" ({r['group_speedup'][t]:.2f}x)" for t, p in r["paths"].items())
    text += (f"- one-stream paths side by side (interleaved blocks, steps/s, load average {r['load']:.1f} "
             f"at the end): {side}\n")
    if "ratio" in r:
        text += f"- batched / per-unit: **{r['ratio']:.1f}x** (goal 20x)\n"
        text += f"- floor / per-unit: {r['floor_ratio']:.1f}x: the ratio of a step that only read its weights once\n"
    rows = []
    for s in runs:
        rows += [[s["threads"], k, f"{v:.0f}", f"{v / s['frames_per_s'][next(iter(PATHS))]:.2f}x"]
                 for k, v in s["frames_per_s"].items()]
        rows += [[s["threads"], f"floor way: {k}", f"{v:.0f}", ""] for k, v in s["floor_ways"].items()]
    best = {k: max(s["frames_per_s"][k] for s in runs) for k in PATHS}
    rel = max(s["max_rel_diff"] for s in runs)
    opt = "; ".join(f"{k.removeprefix('opt-in: ')} by at most {max(s['diffs'][k][0] for s in runs):.1g} "
                    f"({max(s['diffs'][k][1] for s in runs):.1g} of the largest value)" for k in OPT_IN)
    comp = ", ".join(f"{k.removeprefix('opt-in: ')} {max(s['compile_seconds'][k] for s in runs):.1f} s"
                     for k in runs[0]["compile_seconds"])
    text += (f"\n### 64 streams\n\nInterleaved blocks, same seed; frames/s = steps/s x 64; load average "
             f"{runs[-1]['load']:.1f}. After the timed steps the two fp32 forms' predictions and weights differ by at most "
             f"{max(s['max_abs_diff'] for s in runs):.1g} ({rel:.1g} of the largest weight: float rounding); "
             f"the opt-in paths differ from the default: {opt} (their tolerances, docs/pvm.md). "
             f"Compiling (in the warm-up, not timed; the larger of the 1- and 2-thread runs): {comp}.\n\n"
             + markdown_table(["threads", "implementation", "frames/s", "x previous"], rows)
             + f"\n- goal **{GOAL_FRAMES_PER_S:,}** frames/s (2 cores, idle), best here: "
             + "; ".join(f"{'default (fp32)' if k == DEFAULT_PATH else k.removeprefix('opt-in: ')} {best[k]:.0f}, "
                         f"{'met' if best[k] >= GOAL_FRAMES_PER_S else 'not met'}" for k in [DEFAULT_PATH] + OPT_IN)
             + "\n- opt-in / default by threads: " + "; ".join(
                 f"{k.removeprefix('opt-in: ')}: " + ", ".join(
                     f"{s['threads']}: {s['frames_per_s'][k] / s['frames_per_s'][DEFAULT_PATH]:.2f}x" for s in runs)
                 for k in OPT_IN) + "\n")
    return text
