"""predict's figures: one sample's frames as rows ground truth / prior prediction / |error| / posterior.

Columns are frames 1..T; a red line and the spans above the numbers separate the observed
context from the forecast (the model's own predictions fed back). |error| = |prior - truth|
(mean over channels) in a colour map over 0..the sample's largest forecast error, with its bar.
"""
from __future__ import annotations

from pathlib import Path

import torch

from predvis.figures.canvas import Grid, Row, draw, heat, rgb, same_size, scale_for, upscale
from predvis.viz import save_gif, save_png


def _rows(truth, prior, recon, error, frames, k, vmax, notes, channels) -> list[Row]:
    err_note = "|prior - truth|" + (", mean of channels" if channels > 1 else "")
    return [
        Row(["ground truth", "test frames"], [upscale(rgb(truth[t]), k) for t in frames]),
        Row(["prior prediction", notes[0]], [upscale(rgb(prior[t]), k) for t in frames]),
        Row(["|error|", err_note], [upscale(heat(error[t], vmax), k) for t in frames], colour_bar=("magma", vmax)),
        Row(["posterior", notes[1]], [upscale(rgb(recon[t]), k) for t in frames]),
    ]


def write_sample(png: Path, gif: Path, truth: torch.Tensor, prior: torch.Tensor, recon: torch.Tensor,
                 context: int, title: str, notes: tuple[str, str]) -> None:
    """truth, prior, recon: (T, C, H, W) in [0, 1] of one sample -> ``png`` (all frames) and ``gif``
    (one frame at a time, same rows and labels). notes: the second line of the prior and the
    posterior row labels (what those rows hold for this kind of model)."""
    T, C, H, W = truth.shape
    error = (prior - truth).abs()
    forecast_mse = float(((prior[context:] - truth[context:]) ** 2).mean())
    vmax = max(float(error[context:].mean(1).max()), 1e-6)
    k = scale_for(H, W)
    head = [title, f"{context} context frames, then {T - context} forecast frames; forecast MSE {forecast_mse:.4g}"]
    groups = [(0, context - 1, "context (observed)"), (context, T - 1, "forecast (own predictions fed back)")]
    still = Grid(_rows(truth, prior, recon, error, range(T), k, vmax, notes, C), title=head,
                 header=[f"t={t + 1}" for t in range(T)], groups=groups, divider=context)
    save_png(png, draw(still))
    frames = []
    for t in range(T):
        phase = "context (observed)" if t < context else "forecast"
        g = Grid(_rows(truth, prior, recon, error, [t], k, vmax, notes, C), title=[title],
                 header=[f"t={t + 1} of {T}"], groups=[(0, 0, phase)], marked={0} if t >= context else set())
        frames.append(draw(g))
    save_gif(gif, same_size(frames), fps=4)
