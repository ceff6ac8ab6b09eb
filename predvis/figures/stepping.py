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


def scale_of(values: Sequence[torch.Tensor], over: str = "steps") -> Scale:
    """[0, 1] if every value lies there, else min..max over all of them (``over`` names them in the
    note; values outside the range are drawn at its ends)."""
    lo = min(float(v.min()) for v in values)
    hi = max(float(v.max()) for v in values)
    if lo >= 0 and hi <= 1:
        return Scale(0.0, 1.0, "0..1 as black..white")
    return Scale(lo, hi, f"min-max over {over}: {lo:.3g}..{hi:.3g}")


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


class DreamFigures:
    """Draws a dream while it runs, in memory flat in the number of steps.

    Feed every step's panels (common.step_panels: 'input', 'prediction', 'error' (None at t = 0) and
    internals) with :meth:`wants` / :meth:`add`, then :meth:`finish`. Writes gifs/dream.gif, streamed
    to disk: every ``every``-th step (and the last), all internals; frames/dream.png: the last priming
    step, eight dream steps spread over the whole dream and the settling step side by side;
    plots/dream_change.png. The GIF's scales (and palette) are fixed by its first ``sample`` frames;
    the still's by its own columns. spot: bool (H, W) dreamt region, outlined on the frame tiles.
    """

    def __init__(self, out: Path, prime: int, steps: int, every: int, title: str,
                 spot: torch.Tensor | None = None, sample: int = 24, patience: int = 10, max_period: int = 50):
        self.out, self.prime, self.steps, self.every, self.title = Path(out), prime, steps, every, title
        self.total = prime + steps
        self.spot, self.sample = spot, sample
        self.columns = set(_dream_columns(self.total, prime, None))
        self.kept: dict[int, dict] = {}           # the still's columns
        self.recent: dict[int, dict] = {}         # the last dream steps: the settling step lies among them
        self.window = patience + max_period
        self.pending: list[tuple[int, dict, object]] = []   # GIF frames before the scales are fixed
        self.gif = None
        self.scales: dict | None = None
        self.vmax = 1e-6
        self.gif_frames = 0

    def wants(self, t: int) -> bool:
        """Whether step ``t``'s panels are needed (GIF frame, still column, or possible settling step)."""
        return self.in_gif(t) or t in self.columns or t >= self.prime

    def in_gif(self, t: int) -> bool:
        return t % self.every == 0 or t == self.total - 1

    def add(self, t: int, panels: dict, settled) -> None:
        """Step ``t``'s panels; ``settled``: the settling found so far (None: none yet)."""
        if t in self.columns:
            self.kept[t] = panels
        if t >= self.prime:
            self.recent[t] = panels
            self.recent.pop(t - self.window, None)
        if settled is not None and self.prime + settled.step not in self.kept:
            found = self.recent.get(self.prime + settled.step)
            if found is not None:
                self.kept = {k: v for k, v in self.kept.items() if k in self.columns}
                self.kept[self.prime + settled.step] = found
        if not self.in_gif(t):
            return
        if self.gif is None:
            self.pending.append((t, panels, settled))
            if len(self.pending) >= self.sample:
                self._start_gif()
        else:
            self._gif_frame(t, panels, settled)

    def _start_gif(self) -> None:
        from matplotlib import colormaps

        from predvis.viz import GifStream

        first = [p for _, p, _ in self.pending]
        self.names = [k for k in first[0] if k not in ("input", "prediction", "error")]
        self.scales = {k: scale_of([p[k] for p in first], f"the first {len(first)} GIF frames")
                       for k in ["input", "prediction", *self.names]}
        self.vmax = max([float(p["error"].mean(0).max()) for p in first if p["error"] is not None] + [1e-6])
        self.groups_of: dict[str, list[str]] = {}
        for k in self.names:
            self.groups_of.setdefault(k.split("/")[0], []).append(k)
        frames = [self._draw(t, p, st) for t, p, st in self.pending]
        ramp = np.linspace(0, 1, 256)
        colours = np.concatenate([(colormaps["magma"](ramp)[:, :3] * 255 + 0.5).astype(np.uint8),
                                  np.repeat((ramp * 255 + 0.5).astype(np.uint8)[:, None], 3, axis=1),
                                  np.array([RED], dtype=np.uint8)])
        self.gif = GifStream(self.out / "gifs" / "dream.gif", same_size(frames), fps=10, colours=colours)
        for f in frames:
            self.gif.add(f)
        self.gif_frames += len(frames)
        self.pending = []

    def _framed(self, tile: np.ndarray | None, frame_hw) -> np.ndarray | None:
        if tile is None or self.spot is None:
            return tile
        return outline(tile, upscale_mask(self.spot, scale_for(*frame_hw)))

    def _step_name(self, t: int) -> str:
        return f"prime {t + 1}" if t < self.prime else f"step {t - self.prime}"

    def _draw(self, t: int, p: dict, settled) -> np.ndarray:
        sc, hw = self.scales, tuple(p["input"].shape[-2:])
        rows = [Row(["frame", f"input, prediction: {sc['input'].note}"],
                    [self._framed(_tile(p["input"], sc["input"]), hw),
                     self._framed(_tile(p["prediction"], sc["prediction"]), hw),
                     self._framed(_heat_tile(p["error"], self.vmax, hw), hw)],
                    captions=["input", "prediction", "|error|"])]
        for group, keys in self.groups_of.items():
            notes = sorted({sc[k].note for k in keys})
            rows.append(Row([group, notes[0] if len(notes) == 1 else "own scale per layer (see dream.png)"],
                            [_tile(p[k], sc[k], internal=True) for k in keys],
                            captions=[k.split("/", 1)[1] if "/" in k else "" for k in keys]))
        where = "priming: real frame" if t < self.prime else "dreaming: input = own prediction"
        state = f"settled: {settling_text(settled, self.steps)}" if settled is not None else "settled: not so far"
        return draw(Grid(rows, title=[self.title, f"{self._step_name(t)} ({where})"],
                         footer=[state, f"|error| colour scale 0..{self.vmax:.3g} (magma)"],
                         footer_colour=RED if settled is not None else None))

    def _gif_frame(self, t: int, p: dict, settled) -> None:
        self.gif.add(self._draw(t, p, settled))
        self.gif_frames += 1

    def discard(self) -> None:
        if self.gif is not None:
            self.gif.discard()

    def finish(self, settled, change: torch.Tensor, threshold: float) -> list[str]:
        """Close the GIF and draw the still and the change plot; returns the paths written."""
        if self.gif is None and self.pending:
            self._start_gif()
        if self.gif is not None:
            self.gif.close()
        settle_at = None if settled is None else self.prime + settled.step
        cols = sorted(t for t in self.kept if t in self.columns or t == settle_at)
        panels = [self.kept[t] for t in cols]
        frame_hw = tuple(panels[0]["input"].shape[-2:])
        names = [k for k in panels[0] if k not in ("input", "prediction", "error")]
        scales = {k: scale_of([p[k] for p in panels], "the steps shown") for k in ["input", "prediction", *names]}
        vmax = max([float(p["error"].mean(0).max()) for p in panels if p["error"] is not None] + [1e-6])
        done = settling_text(settled, self.steps)
        shown = [k for k in names if k.startswith("state/")] or names
        rows = [
            Row(["input", "what the model read; " + scales["input"].note],
                [self._framed(_tile(p["input"], scales["input"]), frame_hw) for p in panels]),
            Row(["prediction", "of the next input; " + scales["prediction"].note],
                [self._framed(_tile(p["prediction"], scales["prediction"]), frame_hw) for p in panels]),
            Row(["|error|", "|input - previous prediction|"],
                [self._framed(_heat_tile(p["error"], vmax, frame_hw), frame_hw) for p in panels],
                colour_bar=("magma", vmax)),
        ] + [Row([_label(k), scales[k].note], [_tile(p[k], scales[k], internal=True) for p in panels])
             for k in shown]
        prime = self.prime
        first_dream = next((j for j, t in enumerate(cols) if t >= prime), None)
        groups = []
        if first_dream is None or first_dream > 0:
            groups.append((0, (first_dream or len(cols)) - 1, "priming (real frames)"))
        if first_dream is not None:
            groups.append((first_dream, len(cols) - 1, "dreaming (own predictions fed back)"))
        marked = {j for j, t in enumerate(cols) if t == settle_at}
        every = "every step" if self.every == 1 else f"one step in {self.every} (and the last)"
        foot = ["red column: where the dream settled" if marked else "",
                "red outline: the spot dreamt in; outside it the input stays real" if self.spot is not None else "",
                f"the GIF gifs/dream.gif shows {every} with all internals ({self.gif_frames} frames)"]
        save_png(self.out / "frames" / "dream.png", draw(Grid(
            rows, title=[self.title, f"primed on {prime} frames, then {self.steps} dream steps; {done}"],
            header=[self._step_name(t) for t in cols], groups=groups, divider=first_dream or None, marked=marked,
            footer=[f for f in foot if f])))
        _change_plot(self.out / "plots" / "dream_change.png", change, threshold, settled, self.title)
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
