"""Many dreams at once, where they settle, and how many distinct attractors they reach.

Definitions (docs/probes.md, section sleep). A dream is primed with ``prime`` copies of a start
frame (noise, grey or a real frame); then each prediction is the next input for ``steps`` steps.
Settling is :func:`predvis.probes.dream.detect_settling` on the dreamt inputs (a fixed point, or a
cycle of period p >= 2). A settled dream's *attractor* is the p frames that repeat, taken at the
end of the detected stretch. Two attractors' distance is the smallest mean squared difference over
pixels and channels between any frame of one and any frame of the other (so a cycle met at another
phase is the same cycle); greedy clustering visits attractors in order and joins the first cluster
whose first member is within ``cluster_mse``, else founds a new cluster.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from predvis.probes.common import device_of, rollout
from predvis.probes.dream import Settling, detect_settling


@dataclass
class Starts:
    """frames: (B, C, H, W) start frames; kinds: per start 'noise' | 'grey' | 'real'."""

    frames: torch.Tensor
    kinds: list[str]


def make_starts(shape: tuple[int, int, int], noise: int, grey: int, real: torch.Tensor | None,
                gen: torch.Generator) -> Starts:
    """``noise`` uniform-noise frames (from ``gen``), ``grey`` uniform grey levels (i + 1) / (grey + 1),
    and the ``real`` frames (R, C, H, W) if given."""
    parts, kinds = [], []
    if noise:
        parts.append(torch.rand((noise, *shape), generator=gen))
        kinds += ["noise"] * noise
    if grey:
        levels = torch.arange(1, grey + 1, dtype=torch.float32) / (grey + 1)
        parts.append(levels.view(-1, 1, 1, 1).expand(grey, *shape).clone())
        kinds += ["grey"] * grey
    if real is not None and real.shape[0]:
        parts.append(real.float().cpu())
        kinds += ["real"] * real.shape[0]
    return Starts(torch.cat(parts), kinds)


@torch.no_grad()
def closed_loop(stepper, starts: torch.Tensor, prime: int, steps: int, batch: int = 64) -> torch.Tensor:
    """Dream from each start (B, C, H, W): ``prime`` copies of it, then ``steps`` predictions fed
    back. Returns the dreamt inputs (B, steps, C, H, W) on the CPU (learning must be off)."""
    dev = device_of(stepper)
    out = []
    for s in range(0, starts.shape[0], batch):
        x = starts[s:s + batch].to(dev)
        # ``prime`` steps on the start, then each prediction (clamped) is the next input
        fed = rollout(stepper, lambda t, pred: x if t < prime else pred.clamp(0, 1), prime + steps, x.shape[0])
        out.append(torch.stack([frame.float().cpu() for t, frame, _ in fed if t >= prime], 1))
    return torch.cat(out)


def settle_all(dreams: torch.Tensor, threshold: float, patience: int) -> list[Settling | None]:
    """detect_settling for every dream (B, N, C, H, W)."""
    return [detect_settling(d, threshold, patience) for d in dreams]


def attractor_frames(dream: torch.Tensor, settled: Settling, patience: int) -> torch.Tensor:
    """The p repeating frames (p, C, H, W) at the end of the detected stretch."""
    end = min(settled.step + patience - 1, dream.shape[0] - settled.period)
    return dream[end:end + settled.period]


def attractor_distance(a: torch.Tensor, b: torch.Tensor) -> float:
    """min over frames i of a, j of b of mean (a_i - b_j)^2."""
    fa, fb = a.flatten(1).double(), b.flatten(1).double()
    d = (fa[:, None] - fb[None]).square().mean(-1)
    return float(d.min())


def cluster(attractors: list[torch.Tensor], cluster_mse: float) -> list[int]:
    """Greedy clustering: a label per attractor (0, 1, ... in order of first appearance)."""
    reps: list[torch.Tensor] = []
    labels = []
    for a in attractors:
        for k, r in enumerate(reps):
            if attractor_distance(a, r) < cluster_mse:
                labels.append(k)
                break
        else:
            labels.append(len(reps))
            reps.append(a)
    return labels


def diversity(dreams: torch.Tensor) -> torch.Tensor:
    """(N,) per dream step: mean over pairs i < j of the mean over pixels and channels of
    |x_i - x_j| (B >= 2 dreams (B, N, C, H, W); NaN with fewer)."""
    B, N = dreams.shape[:2]
    if B < 2:
        return torch.full((N,), float("nan"))
    flat = dreams.flatten(2).transpose(0, 1).double()  # (N, B, D)
    d = torch.cdist(flat, flat, p=1) / flat.shape[-1]  # (N, B, B)
    iu = torch.triu_indices(B, B, 1)
    return d[:, iu[0], iu[1]].mean(1).float()


def buckets(n: int, k: int) -> list[tuple[int, int]]:
    """k consecutive [start, stop) ranges covering steps 0..n-1 as evenly as possible."""
    k = max(1, min(k, n))
    edges = [round(i * n / k) for i in range(k + 1)]
    return [(edges[i], edges[i + 1]) for i in range(k)]
