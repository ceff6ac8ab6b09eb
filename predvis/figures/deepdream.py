"""Captioned deepdream figures: the still's input and dream side by side, and a caption strip on
every frame of a zoom or video GIF (frame number, objective or scheduled layer, octaves x steps).

The raw frames (``frames/<mode>_NNNNNN.png``, the MP4) stay uncaptioned for further use; the
captions go on ``frames/side_by_side.png`` and the GIFs.
"""
from __future__ import annotations

import numpy as np

from predvis.figures.canvas import Grid, Row, draw, same_size, scale_for, upscale


def recipe_text(recipe) -> str:
    return (f"{recipe.octaves} octave{'s' if recipe.octaves != 1 else ''} (scale {recipe.octave_scale:g}) "
            f"x {recipe.steps} steps, step size {recipe.step_size:.3g}")


def side_by_side(start: np.ndarray, dreamed: np.ndarray, model: str, objective: str, recipe: str,
                 first: float, last: float) -> np.ndarray:
    """start, dreamed: (H, W, 3) uint8 of the same size -> the captioned pair."""
    k = scale_for(*start.shape[:2])
    return draw(Grid([Row(["", ""], [upscale(start, k), upscale(dreamed, k)], captions=["input", "dream"])],
                     title=[f"deepdream on {model}", f"objective {objective}; {recipe}"],
                     footer=[f"objective {first:.4g} at the first step, {last:.4g} at the last"]))


def captioned(frames: list[np.ndarray], captions: list[str], title: list[str]) -> list[np.ndarray]:
    """Each (H, W, 3) uint8 frame under ``title`` with its own caption line, all the same size."""
    out = []
    for frame, caption in zip(frames, captions):
        f = frame if frame.ndim == 3 else np.repeat(frame[..., None], 3, axis=2)
        k = scale_for(*f.shape[:2])
        out.append(draw(Grid([Row([], [upscale(f, k)])], title=title, footer=[caption])))
    return same_size(out)
