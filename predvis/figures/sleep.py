"""sleep's figures: the same dream before sleep, after sleep (and after the wake-only control).

One PNG per figure dream: rows are the model states (before sleep, after sleep, wake only), columns
the start frame then dream steps spread over the dream plus each row's settling step; the tile
where a row's dream settled is boxed in red. The GIF shows every dream step, the states side by side,
each boxed once its dream has settled. Dreams are clamped to 0..1 by the dream loop, so every tile
is drawn 0 = black .. 1 = white.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from predvis.figures.canvas import RED, Grid, Row, draw, rgb, same_size, scale_for, upscale
from predvis.figures.stepping import settling_text, spread
from predvis.viz import save_gif, save_png

NORMALISATION = "0..1 as black..white"
GIF_STEPS = 300   # a GIF shows at most this many dream steps


def _columns(steps: int, settle_steps: list[int | None], count: int = 8) -> list[int]:
    """``count`` dream steps spread over 0..steps-1 and every row's settling step."""
    return sorted(set(spread(steps, count)) | {t for t in settle_steps if t is not None and t < steps})


def write_dream_pair(png: Path, gif: Path, start: torch.Tensor, dreams: dict[str, torch.Tensor],
                     settled: dict[str, object], title: list[str]) -> None:
    """start: (C, H, W) the start frame; dreams: row name -> (N, C, H, W) the dream from that start
    (dream step 0 = the first input the model made itself); settled: row name -> Settling or None.
    Writes ``png`` (chosen steps) and ``gif`` (every step up to GIF_STEPS)."""
    names = list(dreams)
    N = next(iter(dreams.values())).shape[0]
    k = scale_for(*start.shape[-2:])

    def tile(image: torch.Tensor) -> np.ndarray:
        return upscale(rgb(image), k)

    at = {n: None if settled[n] is None else settled[n].step for n in names}
    cols = _columns(N, list(at.values()))
    first = tile(start)
    rows = [Row([n, NORMALISATION, settling_text(settled[n], N)], [first] + [tile(dreams[n][t]) for t in cols],
                boxed={1 + j for j, t in enumerate(cols) if t == at[n]}) for n in names]
    foot = ["red box: the step where that row's dream settled (fixed point or cycle begins)"
            if any(r.boxed for r in rows) else "no row's dream settled within the steps shown",
            "dream step 0 is the first input the model made itself; every row starts from the same frame"]
    save_png(png, draw(Grid(rows, title=title, header=["start"] + [f"step {t}" for t in cols],
                            groups=[(1, len(cols), "dream (own predictions fed back)")], divider=1,
                            footer=foot, gap=12)))

    frames = []
    states = [f"{n}: {settling_text(settled[n], N)}" for n in names]
    for t in range(min(N, GIF_STEPS)):
        done = {1 + j for j, n in enumerate(names) if at[n] is not None and t >= at[n]}
        row = Row([f"dream step {t}", f"of {N}; {NORMALISATION}"], [first] + [tile(dreams[n][t]) for n in names],
                  captions=["start"] + names, boxed=done)
        frames.append(draw(Grid([row], title=title,
                                footer=["red box: that dream has settled by this step"] + states,
                                footer_colour=RED, gap=12)))
    save_gif(gif, same_size(frames), fps=10)
