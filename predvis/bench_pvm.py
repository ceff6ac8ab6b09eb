"""PVM speed benchmark: paper-size model, online learning, batch 1 (called by ``make bench``).

Measures steps/s of the batched model (predvis/models/pvm.py) and of the per-unit reference loop
(tests/pvm_reference.py) on the same model, side by side in one process, and their ratio.
"""
from __future__ import annotations

import importlib.util
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


def bench_pvm(steps: int = 60, ref_steps: int = 5, threads: int | None = None,
              layers: tuple[int, ...] = (16, 8, 4, 3, 2, 1)) -> dict:
    """Returns {'weights', 'threads', 'batched_steps_per_s', 'reference_steps_per_s', 'ratio'}."""
    if threads:
        torch.set_num_threads(threads)
    on = PVMSchedule(layer_delay=0, lateral_on=0, feedback_on=0)  # every layer and context learning
    model = PVM(list(layers), schedule=on, seed=0)
    frames = torch.rand(8, 1, *model.frame_shape, generator=torch.Generator().manual_seed(0))
    state = model.init_state(1)
    for i in range(3):  # warm-up: caches exist, every layer learns
        state = model.step(frames[i % 8], state).state
    t0 = time.perf_counter()
    for i in range(steps):
        state = model.step(frames[i % 8], state).state
    batched = steps / (time.perf_counter() - t0)
    out = {"weights": sum(model.n_weights), "threads": torch.get_num_threads(), "batched_steps_per_s": batched}
    Ref = _reference_class()
    if Ref is not None and ref_steps > 0:
        ref = Ref(model)
        for i in range(2):
            ref.step(frames[i][0])
        t0 = time.perf_counter()
        for i in range(ref_steps):
            ref.step(frames[i % 8][0])
        out["reference_steps_per_s"] = ref_steps / (time.perf_counter() - t0)
        out["ratio"] = batched / out["reference_steps_per_s"]
    return out


if __name__ == "__main__":
    import json

    print(json.dumps(bench_pvm(threads=1), indent=1))
