"""Each CPU speed goal against this machine's measured peaks (the last section of ``make bench``).

A goal on a step's time can only be met if the work the step cannot avoid fits in that time at the
machine's peak rate: its floating-point operations at the peak of a large matrix product, or the bytes
it must read at the peak read bandwidth. This section measures those peaks here, counts each step's
work on the real code, and sets the rate each goal requires beside them:

- arithmetic: ``torch.utils.flop_counter.FlopCounterMode`` over one real step (matrix products and
  convolutions, forward and backward; element-wise work is not counted, so the count is a lower bound);
- bytes: the tensors a one-stream PVM step reads at least once (W1 in its folded form, the rank-1
  ring, W2 and its momentum) plus W2 and its momentum written back;
- peaks: a 2048 x 2048 matrix product in float32 and in bfloat16 (GFLOP/s, the best of a few
  calls) and the sum of a 400 MB float32 tensor (read GB/s), at 1 and 2 threads.

``required / peak`` above 100% means the goal cannot be met on this machine by any implementation of
that step; well below it, the gap is the implementation's. The measured rates come from the sections
above in the same run.
"""
from __future__ import annotations

import time
from typing import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode

from predvis.tables import markdown_table


PAPER = (16, 8, 4, 3, 2, 1)   # the PVM paper model's layers, as the PVM benchmark times them


def _best_seconds(fn: Callable[[], object], repeats: int) -> float:
    fn()
    best = float("inf")
    for _ in range(repeats):
        t0 = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t0)
    return best


def matmul_peak(dtype: torch.dtype, threads: int, n: int = 2048, repeats: int = 4) -> float:
    """GFLOP/s of an (n, n) x (n, n) product in ``dtype`` on ``threads`` threads: the best of ``repeats``."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        g = torch.Generator().manual_seed(0)
        a, b = torch.randn(n, n, generator=g).to(dtype), torch.randn(n, n, generator=g).to(dtype)
        return 2 * n ** 3 / _best_seconds(lambda: a @ b, repeats) / 1e9
    finally:
        torch.set_num_threads(before)


def read_bandwidth(threads: int, mbytes: int = 400, repeats: int = 4) -> float:
    """GB/s of summing a float32 tensor of ``mbytes`` MB (far above the caches) on ``threads`` threads."""
    before = torch.get_num_threads()
    try:
        torch.set_num_threads(threads)
        x = torch.ones(mbytes * 250_000)
        return x.numel() * 4 / _best_seconds(lambda: x.sum(), repeats) / 1e9
    finally:
        torch.set_num_threads(before)


def _product_flops(self_shape, a_shape, b_shape, *args, out_shape=None, **kwargs) -> int:
    """``self += a @ b`` (batched or not), from the shapes: 2 x (batch) x n x k x m."""
    batch = a_shape[0] if len(a_shape) == 3 else 1
    return 2 * batch * a_shape[-2] * a_shape[-1] * b_shape[-1]


# FlopCounterMode knows the out-of-place products; the PVM step accumulates in place
IN_PLACE = {torch.ops.aten.baddbmm_: _product_flops, torch.ops.aten.addmm_: _product_flops}


def count_flops(fn: Callable[[], object]) -> int:
    """Floating-point operations of one call of ``fn`` (products and convolutions, as counted by
    ``FlopCounterMode``, with the in-place ``baddbmm_`` and ``addmm_``: a multiply-add is 2)."""
    with FlopCounterMode(display=False, custom_mapping=IN_PLACE) as counter:
        fn()
    return int(counter.get_total_flops())


def blt_step_flops(batch: int = 32) -> int:
    """FLOPs of one BLT-BLT training step (quick profile, forward and backward) at ``batch``."""
    from predvis.bench.recurrent_ae import BASELINE, CANDIDATES, _candidate

    step, _ = _candidate(CANDIDATES[BASELINE], batch)
    step()  # the first step builds the optimiser state; count a steady one
    return count_flops(step)


def pvm_step_flops(streams: int = 64, layers: tuple[int, ...] = PAPER) -> int:
    """FLOPs of one learning step of the paper PVM with ``streams`` streams, every layer and pathway on."""
    from predvis.backends.pvm.model import PVM, PVMSchedule

    on = PVMSchedule(layer_delay=0, lateral_on=0, feedback_on=0)
    model = PVM(list(layers), schedule=on, seed=0)
    frames = torch.rand(2, streams, 3, layers[0] * 5, layers[0] * 5, generator=torch.Generator().manual_seed(0))
    state = model.init_state(streams)
    with torch.no_grad():
        for i in range(3):  # caches exist and every layer learns
            state = model.step(frames[i % 2], state).state
        return count_flops(lambda: model.step(frames[0], state))


def pvm_one_stream_bytes(layers: tuple[int, ...] = PAPER) -> int:
    """Bytes a one-stream learning step of the paper PVM must move at least: every layer's W1 (folded,
    ``v1``), the ring of pending rank-1 terms (``ra``, ``re``, full after 23 steps) and W2 and its
    momentum, each read once; W2 and its momentum written once."""
    from predvis.backends.pvm.model import PVM, PVMSchedule

    on = PVMSchedule(layer_delay=0, lateral_on=0, feedback_on=0)
    model = PVM(list(layers), schedule=on, seed=0)
    frame = torch.rand(1, 3, layers[0] * 5, layers[0] * 5, generator=torch.Generator().manual_seed(0))
    state = model.init_state(1)
    with torch.no_grad():
        for _ in range(30):  # the ring fills
            state = model.step(frame, state).state
    total = 0
    for l in range(model.n_layers):
        for name, times in (("v1", 1), ("ra", 1), ("re", 1), ("w2", 2), ("m2", 2)):
            t = getattr(model, f"{name}_{l}")
            total += times * t.numel() * t.element_size()
    return total


def measure_peaks(threads: tuple[int, ...] = (1, 2)) -> dict[int, dict[str, float]]:
    """{threads: {'fp32': GFLOP/s, 'bf16': GFLOP/s, 'read': GB/s}}."""
    return {t: {"fp32": matmul_peak(torch.float32, t), "bf16": matmul_peak(torch.bfloat16, t),
                "read": read_bandwidth(t)} for t in threads}


def roofline_rows(peaks: dict[int, dict[str, float]], threads: int, goals: list[dict]) -> list[list]:
    """Table rows, one per goal. Each goal: {'goal', 'work' (FLOP or bytes per step), 'unit' ('FLOP' or
    'B'), 'goal_steps_per_s', 'now_steps_per_s', 'now_label'}. FLOP goals are set against the float32
    and bfloat16 product peaks at ``threads``, byte goals against the read bandwidth."""
    p = peaks[threads]
    rows = []
    for g in goals:
        need = g["work"] * g["goal_steps_per_s"] / 1e9
        now = g["work"] * g["now_steps_per_s"] / 1e9
        if g["unit"] == "FLOP":
            work = f"{g['work'] / 1e9:.2f} GFLOP"
            need_s = f"{need:.0f} GFLOP/s"
            vs = f"{100 * need / p['fp32']:.0f}% of fp32, {100 * need / p['bf16']:.0f}% of bf16"
            now_s = f"{now:.0f} GFLOP/s ({100 * now / p['fp32']:.0f}% of fp32, {100 * now / p['bf16']:.0f}% of bf16)"
        else:
            work = f"{g['work'] / 1e6:.0f} MB"
            need_s = f"{need:.1f} GB/s"
            vs = f"{100 * need / p['read']:.0f}% of read"
            now_s = f"{now:.1f} GB/s ({100 * now / p['read']:.0f}% of read)"
        rows.append([g["goal"], work, need_s, vs, f"{g['now_label']}: {now_s}"])
    return rows


def section(blt: dict | None, pvm_one: dict | None, pvm_many: list[dict] | None, threads: int = 2) -> str:
    """The ``make bench`` section, from the results of the sections above (``bench_recurrent_ae``,
    ``bench_pvm``, ``bench_pvm_paths`` per thread count); a missing one leaves its goal out."""
    peaks = measure_peaks(tuple(sorted({1, threads})))
    goals = []
    if blt is not None:
        first = next(iter(blt["ms"]))
        best = min(blt["ms"], key=blt["ms"].get)
        goals.append({"goal": f"BLT-BLT training step, batch {blt['batch']}, 3x the first implementation "
                              f"({blt['ms'][first]:.0f} ms -> {blt['ms'][first] / 3:.0f} ms, {blt['threads']} threads)",
                      "work": blt_step_flops(blt["batch"]), "unit": "FLOP",
                      "goal_steps_per_s": 3e3 / blt["ms"][first], "now_steps_per_s": 1e3 / blt["ms"][best],
                      "now_label": f"best ({best}) {blt['ms'][best]:.0f} ms"})
    if pvm_many:
        run = max(pvm_many, key=lambda s: s["threads"])
        streams = run["streams"]
        name, fps = max(run["frames_per_s"].items(), key=lambda kv: kv[1])
        from predvis.bench.pvm import GOAL_FRAMES_PER_S

        model = "paper model" if run["layers"] == PAPER else f"layers {run['layers']}"
        goals.append({"goal": f"PVM {model}, {streams} streams, {GOAL_FRAMES_PER_S:,} frames/s "
                              f"({run['threads']} threads)",
                      "work": pvm_step_flops(streams, run["layers"]), "unit": "FLOP",
                      "goal_steps_per_s": GOAL_FRAMES_PER_S / streams, "now_steps_per_s": fps / streams,
                      "now_label": f"best ({name.split(': ')[-1]}) {fps:.0f} frames/s"})
    if pvm_one is not None:
        from predvis.bench.pvm import GOAL_STEPS_PER_S

        rate = max(pvm_one["by_threads"].values())
        model = "paper model" if pvm_one["layers"] == PAPER else f"layers {pvm_one['layers']}"
        goals.append({"goal": f"PVM {model}, one stream, {GOAL_STEPS_PER_S} steps/s",
                      "work": pvm_one_stream_bytes(pvm_one["layers"]), "unit": "B", "goal_steps_per_s": GOAL_STEPS_PER_S,
                      "now_steps_per_s": rate, "now_label": f"{rate:.0f} steps/s"})
    peak_rows = [[t, f"{p['fp32']:.0f}", f"{p['bf16']:.0f}", f"{p['read']:.1f}"] for t, p in peaks.items()]
    text = ("## Speed goals against this machine's peaks (roofline)\n\n"
            "Peaks measured now: a 2048 x 2048 matrix product (GFLOP/s, best of 4) and the sum of a 400 MB float32 "
            "tensor (read GB/s). Work per step counted on the real code (matrix products and convolutions by "
            "`FlopCounterMode`, element-wise work not counted; for one PVM stream the bytes it must read or write at "
            "least once). 'required / peak' above 100% means no implementation of that step meets the goal here.\n\n"
            + markdown_table(["threads", "fp32 GFLOP/s", "bf16 GFLOP/s", "read GB/s"], peak_rows)
            + "\n" + markdown_table(["goal", "work per step", "required", f"required / peak ({threads} threads)",
                                     "measured in this run"], roofline_rows(peaks, threads, goals)))
    return text
