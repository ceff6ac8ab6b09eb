"""Interleaved timing shared by the benchmarks: candidates are timed in rounds (A B C A B C ...) so
that machine noise hits them alike."""
from __future__ import annotations

import time
from typing import Callable

import torch


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def time_side_by_side(candidates: dict[str, Callable[[], None]], repeats: int, device: torch.device, warmup: int = 1) -> dict[str, list[float]]:
    """Seconds per call of each candidate, timed in interleaved rounds."""
    for fn in candidates.values():
        for _ in range(warmup):
            fn()
    _sync(device)
    times: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(repeats):
        for name, fn in candidates.items():
            _sync(device)
            start = time.perf_counter()
            fn()
            _sync(device)
            times[name].append(time.perf_counter() - start)
    return times
