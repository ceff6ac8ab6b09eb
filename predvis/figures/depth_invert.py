"""Depth-inversion figures: per scene, the input, the target (depth order swapped) and the output at
every unrolled step, each output tile captioned with its sse against the target (and the sse of
copying the input and of an all-grey output over those two columns, as baselines).

The still has one row per scene and one column per step; the GIF has one frame per step t with the
columns input / target / output at t. Inputs, targets and sigmoid outputs lie in 0..1 and are drawn
0 = black .. 1 = white.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from predvis.figures.canvas import Grid, Row, draw, rgb, same_size, scale_for, upscale
from predvis.viz import save_gif, save_png

NORMALISATION = "0..1 as black..white"


def _order(labels) -> str:
    """Digits in drawing order (back first) -> 'front to back: 7, 3'."""
    return "input front to back: " + ", ".join(str(int(d)) for d in reversed(list(labels)))


def _groups(first: int, steps: int, trained: int | None) -> list[tuple[int, int, str]]:
    if trained is None or trained >= steps:
        return [(first, first + steps - 1, "output at unrolled step t")]
    return [(first, first + trained - 1, f"output at step t (trained with {trained})"),
            (first + trained, first + steps - 1, "beyond the trained steps")]


def write_depth_invert(png: Path, gif: Path, inputs: torch.Tensor, targets: torch.Tensor, labels,
                       outputs: torch.Tensor, title: list[str], trained: int | None = None) -> None:
    """inputs, targets: (K, 1, S, S); labels: (K, k) digits in drawing order; outputs: (T, K, 1, S, S)
    sigmoid outputs at steps 1..T. Writes ``png`` (all steps) and ``gif`` (one frame per step)."""
    T, K = outputs.shape[:2]
    k = scale_for(*inputs.shape[-2:])
    sse = ((outputs - targets[None]) ** 2).flatten(2).sum(-1)   # (T, K)
    copy = ((inputs - targets) ** 2).flatten(1).sum(-1)          # (K,) the input copied as output
    grey = ((0.5 - targets) ** 2).flatten(1).sum(-1)             # (K,) an all-grey output

    def tile(image: torch.Tensor) -> np.ndarray:
        return upscale(rgb(image), k)

    def baselines(i: int) -> list[str]:
        return [f"copy: sse {float(copy[i]):.1f}", f"all grey: sse {float(grey[i]):.1f}"]

    def label(i: int) -> list[str]:
        return [f"scene {i + 1}", _order(labels[i]), NORMALISATION]

    rows = [Row(label(i), [tile(inputs[i]), tile(targets[i])] + [tile(outputs[t, i]) for t in range(T)],
                captions=baselines(i) + [f"sse {float(sse[t, i]):.1f}" for t in range(T)]) for i in range(K)]
    foot = ["target: the same scene with the depth order swapped (the hidden digit in front, completed)",
            "sse = sum over pixels of (output - target)^2; over the input: sse of copying the input, "
            "over the target: sse of an all-grey (0.5) output"]
    save_png(png, draw(Grid(rows, title=title, header=["input", "target"] + [f"t={t + 1}" for t in range(T)],
                            groups=_groups(2, T, trained), divider=2, footer=foot)))
    frames = []
    for t in range(T):
        rows = [Row(label(i), [tile(inputs[i]), tile(targets[i]), tile(outputs[t, i])],
                    captions=baselines(i) + [f"sse {float(sse[t, i]):.1f}"]) for i in range(K)]
        beyond = trained is not None and t >= trained
        frames.append(draw(Grid(rows, title=title + [f"unrolled step t={t + 1} of {T}"
                                                     + (f" (beyond the {trained} trained)" if beyond else "")],
                                header=["input", "target", f"output, t={t + 1}"], divider=2,
                                marked={2} if beyond else set(), footer=foot)))
    save_gif(gif, same_size(frames), fps=2)
