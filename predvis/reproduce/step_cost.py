"""What one training step of each long-profile variant costs, measured side by side in one process.

The long runs share a 2-core machine with other work, so their wall times measure the load as much as
the model. For "matched compute" comparisons the tables use instead each variant's cost per step on
one thread: the real ``train_step`` on live batches from ``train_batches`` (data generation
included), the variants' steps interleaved round by round so that machine noise hits them alike.
The figures are kept in ``<runs root>/step_costs.json`` (they describe this machine) and measured
again when a variant or its overrides change.
"""
from __future__ import annotations

import json
import os
import statistics
import time
from pathlib import Path

COSTS_FILE = "step_costs.json"


def measure(variants: dict[str, tuple[str, str, list[str]]], rounds: int = 3, steps: int = 4) -> dict[str, float]:
    """{label: median seconds per training step} at one thread; ``variants``: label -> (experiment,
    profile, overrides)."""
    import torch

    from predvis.allocator import tune_cpu_allocator
    from predvis.bench.train_options import step_timer

    tune_cpu_allocator()
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        cpu = torch.device("cpu")   # each stepper's first (warm-up) step runs as it is built
        steppers = {label: step_timer(*v, cpu, batches=None)[0] for label, v in variants.items()}
        times: dict[str, list[float]] = {label: [] for label in steppers}
        for _ in range(rounds):
            for label, step in steppers.items():
                start = time.process_time()           # CPU time: the other jobs' share of the core does not count
                for _ in range(steps):
                    step()
                times[label].append((time.process_time() - start) / steps)
        return {label: statistics.median(t) for label, t in times.items()}
    finally:
        torch.set_num_threads(before)


def step_costs(root: Path, variants: dict[str, tuple[str, str, list[str]]]) -> dict:
    """{'seconds': {label: s/step}, 'measured', 'load'}: read from ``root/step_costs.json`` when it holds
    every variant with the same settings, else measured now (all variants together) and saved."""
    path = Path(root) / COSTS_FILE
    want = {label: list(v) for label, v in variants.items()}
    try:
        saved = json.loads(path.read_text())
        if all(saved["variants"].get(k) == v for k, v in want.items()):
            return saved
    except (OSError, ValueError, KeyError, TypeError):
        pass
    seconds = measure(variants)
    saved = {"seconds": seconds, "variants": want, "measured": time.strftime("%Y-%m-%d %H:%M"),
             "load": round(os.getloadavg()[0], 1), "threads": 1}
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(saved, indent=1))
    os.replace(tmp, path)
    return saved
