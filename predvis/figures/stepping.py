"""Figures of the stepping probes (dream, occlude, lesion): labelled frame grids and their GIFs.

Every panel type (input, prediction, |error|, each internal such as PVM's ``state/L0``) has one
normalisation for the whole figure and GIF, written under its row label: frames and values
that lie in [0, 1] are drawn 0 = black .. 1 = white; anything else is min-max normalised over
all the steps drawn (the range is written out). |error| is a colour map over 0..its largest
value in the figure, with a colour bar.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from predvis.figures.canvas import (RED, Grid, Row, draw, heat, outline, rgb, same_size, scale_for,
                                    upscale, upscale_mask)
from predvis.viz import save_gif, save_png

INTERNAL_TILE = 96   # internal tensors (states, latents) are drawn at least this long


# --------------------------------------------------------------------------- panels and scales

def as_image(t: torch.Tensor) -> torch.Tensor:
    """One panel tensor -> (C, H, W): images stay, (H, W) maps get a channel, vectors and other
    shapes are folded into a near-square (1, h, w) tile."""
    t = t.detach().float().cpu()
    if t.dim() == 3 and t.shape[0] in (1, 3):
        return t
    if t.dim() == 2:
        return t[None]
    flat = t.flatten()
    n = flat.numel()
    side = max(1, int(n ** 0.5))
    while n % side:
        side -= 1
    return flat.reshape(1, side, n // side)


@dataclass
class Scale:
    """How one panel type is drawn: values lo..hi -> black..white; ``note`` says so in the figure."""

    lo: float
    hi: float
    note: str


def scale_of(values: Sequence[torch.Tensor]) -> Scale:
    """[0, 1] if every value lies there, else min..max over all of them."""
    lo = min(float(v.min()) for v in values)
    hi = max(float(v.max()) for v in values)
    if lo >= 0 and hi <= 1:
        return Scale(0.0, 1.0, "0..1 as black..white")
    return Scale(lo, hi, f"min-max over steps: {lo:.3g}..{hi:.3g}")


def _tile(t: torch.Tensor, s: Scale, internal: bool = False) -> np.ndarray:
    """A frame at >= MIN_TILE on its shorter side; an internal map at >= INTERNAL_TILE on its longer
    side (a folded vector stays a thin strip)."""
    img = as_image(t)
    h, w = img.shape[1:]
    k = math.ceil(INTERNAL_TILE / max(h, w)) if internal else scale_for(h, w)
    return upscale(rgb(img, s.lo, s.hi), max(1, k))


def _heat_tile(t: torch.Tensor | None, vmax: float, shape: tuple[int, int]) -> np.ndarray | None:
    if t is None:
        return None
    return upscale(heat(t, vmax), scale_for(*shape))


def _label(name: str) -> str:
    """'state/L0' -> 'state L0'."""
    return name.replace("/", " ")


# --------------------------------------------------------------------------- dream

def settling_text(settled, steps: int) -> str:
    if settled is None:
        return f"no fixed point or cycle in {steps} dream steps"
    if settled.kind == "fixed point":
        return f"fixed point from dream step {settled.step}"
    return f"cycle of period {settled.period} from dream step {settled.step}"


def write_dream(out: Path, panels: list[dict[str, torch.Tensor | None]], prime: int, steps: int, settled,
                change: torch.Tensor, threshold: float, title: str, spot: torch.Tensor | None = None) -> list[str]:
    """panels[t]: 'input', 'prediction', 'error' (None at t = 0) and internals, for the first kept
    steps (t < prime: priming). spot: bool (H, W) dreamt region, outlined on the frame tiles.
    Writes frames/dream.png (chosen steps side by side), gifs/dream.gif (every kept step) and
    plots/dream_change.png; returns their paths."""
    if not panels:
        return []
    frame_hw = tuple(panels[0]["input"].shape[-2:])
    edge = None if spot is None else upscale_mask(spot, scale_for(*frame_hw))

    def framed(tile: np.ndarray | None) -> np.ndarray | None:
        return tile if tile is None or edge is None else outline(tile, edge)

    names = [k for k in panels[0] if k not in ("input", "prediction", "error")]
    scales = {k: scale_of([p[k] for p in panels]) for k in ["input", "prediction", *names]}
    errors = [p["error"] for p in panels if p["error"] is not None]
    vmax = max([float(e.mean(0).max()) for e in errors] + [1e-6])
    settle_at = None if settled is None else prime + settled.step
    done = settling_text(settled, steps)

    def step_name(t: int) -> str:
        return f"prime {t + 1}" if t < prime else f"step {t - prime}"

    # the still: input / prediction / |error| / each layer's state (all internals if no states)
    shown = [k for k in names if k.startswith("state/")] or names
    cols = _dream_columns(len(panels), prime, settle_at)
    rows = [
        Row(["input", "what the model read; " + scales["input"].note],
            [framed(_tile(panels[t]["input"], scales["input"])) for t in cols]),
        Row(["prediction", "of the next input; " + scales["prediction"].note],
            [framed(_tile(panels[t]["prediction"], scales["prediction"])) for t in cols]),
        Row(["|error|", "|input - previous prediction|"],
            [framed(_heat_tile(panels[t]["error"], vmax, frame_hw)) for t in cols], colour_bar=("magma", vmax)),
    ] + [Row([_label(k), scales[k].note], [_tile(panels[t][k], scales[k], internal=True) for t in cols])
         for k in shown]
    first_dream = next((j for j, t in enumerate(cols) if t >= prime), None)
    groups = []
    if first_dream is None or first_dream > 0:
        groups.append((0, (first_dream or len(cols)) - 1, "priming (real frames)"))
    if first_dream is not None:
        groups.append((first_dream, len(cols) - 1, "dreaming (own predictions fed back)"))
    marked = {j for j, t in enumerate(cols) if t == settle_at}
    foot = ["red column: where the dream settled" if marked else "",
            "red outline: the spot dreamt in; outside it the input stays real" if spot is not None else "",
            "the GIF gifs/dream.gif shows every step with all internals"]
    save_png(out / "frames" / "dream.png", draw(Grid(
        rows, title=[title, f"primed on {prime} frames, then {steps} dream steps; {done}"],
        header=[step_name(t) for t in cols], groups=groups, divider=first_dream or None, marked=marked,
        footer=[f for f in foot if f])))

    # the GIF: every kept step, all internals, one row per group
    frames = []
    groups_of: dict[str, list[str]] = {}
    for k in names:
        groups_of.setdefault(k.split("/")[0], []).append(k)
    for t, p in enumerate(panels):
        rows = [Row(["frame", f"input, prediction: {scales['input'].note}"],
                    [framed(_tile(p["input"], scales["input"])), framed(_tile(p["prediction"], scales["prediction"])),
                     framed(_heat_tile(p["error"], vmax, frame_hw))],
                    captions=["input", "prediction", "|error|"])]
        for group, keys in groups_of.items():
            notes = sorted({scales[k].note for k in keys})
            rows.append(Row([group, notes[0] if len(notes) == 1 else "own scale per layer (see dream.png)"],
                            [_tile(p[k], scales[k], internal=True) for k in keys],
                            captions=[k.split("/", 1)[1] if "/" in k else "" for k in keys]))
        where = "priming: real frame" if t < prime else "dreaming: input = own prediction"
        state = [f"settled: {done}"] if settle_at is not None and t >= settle_at else []
        frames.append(draw(Grid(rows, title=[title, f"{step_name(t)} ({where})"],
                                footer=state + [f"|error| colour scale 0..{vmax:.3g} (magma)"],
                                footer_colour=RED if state else None)))
    save_gif(out / "gifs" / "dream.gif", same_size(frames), fps=10)
    _change_plot(out / "plots" / "dream_change.png", change, threshold, settled, title)
    return ["frames/dream.png", "gifs/dream.gif", "plots/dream_change.png"]


def _dream_columns(kept: int, prime: int, settle_at: int | None, count: int = 8) -> list[int]:
    """The last priming step, ``count`` dream steps spread evenly and the settling step."""
    cols = {prime - 1} if prime else set()
    dreamt = kept - prime
    if dreamt > 0:
        cols |= {prime + round(i * (dreamt - 1) / max(count - 1, 1)) for i in range(min(count, dreamt))}
    if settle_at is not None and settle_at < kept:
        cols.add(settle_at)
    return sorted(c for c in cols if 0 <= c < kept)


def _change_plot(path: Path, change: torch.Tensor, threshold: float, settled, title: str) -> None:
    from predvis.figures.plots import pyplot, save_figure, use_log

    plt = pyplot()
    fig, ax = plt.subplots(figsize=(6.4, 3.0))
    c = change.double().numpy()
    steps = np.arange(len(c))
    ax.plot(steps, c, "-o" if len(c) < 30 else "-", ms=3, lw=1.2, label="change = mean |input_t - input_t-1|")
    ax.axhline(threshold, color="grey", ls=":", lw=1, label=f"threshold {threshold:g}")
    if settled is not None:
        ax.axvline(settled.step, color="tab:red", lw=1.2, label=settling_text(settled, len(c)))
    if use_log(list(c) + [threshold]):
        ax.set_yscale("log")
    ax.set_xlabel("dream step")
    ax.set_ylabel("change per step")
    ax.set_title(title, fontsize=9)
    ax.legend(fontsize=7)
    fig.tight_layout()
    save_figure(fig, path)


# --------------------------------------------------------------------------- occlude

def spread(n: int, count: int = 8, first: int = 0) -> list[int]:
    """Up to ``count`` indices spread evenly over first..n-1."""
    m = n - first
    if m <= 0:
        return []
    return sorted({first + round(i * (m - 1) / max(count - 1, 1)) for i in range(min(count, m))})


def write_occlude(out: Path, frames: dict[str, torch.Tensor], conditions: list[str], hidden: torch.Tensor,
                  title: str, mode: str) -> list[str]:
    """frames: 'true', 'shown' and one per condition, each (T, C, H, W): column t is frame t+1 and
    each condition's prediction of it. hidden: bool (H, W), outlined in red on every tile.
    Writes frames/occlude.png (chosen steps) and gifs/occlude.gif (every step)."""
    T, _, H, W = frames["true"].shape
    k = scale_for(H, W)
    edge = upscale_mask(hidden, k)
    names = ["true", "shown", *conditions]
    labels = {"true": ["true frame", "what is there"],
              "shown": ["shown", "input: hidden region grey"]}
    for c in conditions:
        labels[c] = [f"prediction, {c}", "the model's fill-in"]

    def tile(name: str, t: int) -> np.ndarray:
        return outline(upscale(rgb(frames[name][t]), k), edge)

    cols = spread(T)
    hidden_what = "the spot" if mode == "blindspot" else "everything outside the spot"
    head = [title, f"{mode}: {hidden_what} is hidden (grey in the input, its edge in red); "
                   "predictions are of the frame in their column"]
    rows = [Row(labels[n], [tile(n, t) for t in cols]) for n in names]
    save_png(out / "frames" / "occlude.png", draw(Grid(rows, title=head, header=[f"t={t + 2}" for t in cols])))
    gif = [draw(Grid([Row([f"t={t + 2} of {T + 1}"], [tile(n, t) for n in names],
                          captions=[labels[n][0] for n in names])], title=head[:1] + [head[1]]))
           for t in range(T)]
    save_gif(out / "gifs" / "occlude.gif", same_size(gif), fps=8)
    return ["frames/occlude.png", "gifs/occlude.gif"]


# --------------------------------------------------------------------------- lesion

def write_lesion(out: Path, true: torch.Tensor, intact: torch.Tensor, lesioned: torch.Tensor, label: str,
                 title: str) -> list[str]:
    """true (T, C, H, W) frames 1..T of one sequence, intact / lesioned (T, C, H, W) the predictions
    of them made one step before. Writes frames/lesion.png and gifs/lesion.gif."""
    T, _, H, W = true.shape
    k = scale_for(H, W)
    err_i, err_l = (intact - true).abs(), (lesioned - true).abs()
    vmax = max(float(err_i.mean(1).max()), float(err_l.mean(1).max()), 1e-6)
    mae_i, mae_l = float(err_i.mean()), float(err_l.mean())

    def rows(ts) -> list[Row]:
        return [
            Row(["true frame", "the frame predicted"], [upscale(rgb(true[t]), k) for t in ts]),
            Row(["intact", "prediction, all pathways on"], [upscale(rgb(intact[t]), k) for t in ts]),
            Row([f"no {label}", "prediction, lesioned"], [upscale(rgb(lesioned[t]), k) for t in ts]),
            Row(["|error| intact", f"mean {mae_i:.4g}"], [upscale(heat(err_i[t], vmax), k) for t in ts],
                colour_bar=("magma", vmax)),
            Row([f"|error| no {label}", f"mean {mae_l:.4g}"], [upscale(heat(err_l[t], vmax), k) for t in ts],
                colour_bar=("magma", vmax)),
        ]

    head = [title, f"intact vs {label} switched off, same frames; |error| on one colour scale"]
    cols = spread(T)
    save_png(out / "frames" / "lesion.png", draw(Grid(rows(cols), title=head, header=[f"t={t + 2}" for t in cols])))
    gif = [draw(Grid(rows([t]), title=head, header=[f"t={t + 2} of {T + 1}"])) for t in range(T)]
    save_gif(out / "gifs" / "lesion.gif", same_size(gif), fps=8)
    return ["frames/lesion.png", "gifs/lesion.gif"]
