"""Labelled image grids drawn straight into pixels: tiles, row labels, captions, dividers, colour bars.

Used for every figure made of frames (PNG stills and each frame of a GIF). Tiles are placed at
integer nearest-neighbour upscales, so a model's pixels stay sharp and countable; text is drawn
with matplotlib's own font renderer (DejaVu Sans through FreeType) and colour maps are
matplotlib's. Drawing is plain numpy, so a frame costs milliseconds and is byte-for-byte
deterministic.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from functools import lru_cache

import numpy as np
import torch

MIN_TILE = 128          # a frame tile is drawn at least this many pixels on its shorter side
ERROR_CMAP = "magma"    # |error| colour map (black = 0)
GAP = 4                 # pixels between tiles
MARGIN = 10
WHITE = (255, 255, 255)
BLACK = (0, 0, 0)
GREY = (90, 90, 90)
RED = (214, 39, 40)


# --------------------------------------------------------------------------- tiles

def scale_for(h: int, w: int, min_side: int = MIN_TILE) -> int:
    """Integer upscale that brings the shorter side of an h x w image to at least ``min_side``."""
    return max(1, math.ceil(min_side / max(1, min(h, w))))


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    """Nearest-neighbour integer upscale of (H, W, 3) or (H, W)."""
    return image if factor == 1 else image.repeat(factor, 0).repeat(factor, 1)


def rgb(image: torch.Tensor | np.ndarray, lo: float = 0.0, hi: float = 1.0) -> np.ndarray:
    """(C, H, W) with C in {1, 3}, or (H, W) -> (H, W, 3) uint8, ``lo``..``hi`` mapped to black..white."""
    a = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image, np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))
    a = (a - lo) / max(hi - lo, 1e-12)
    a = (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)
    return np.repeat(a[..., None], 3, axis=2) if a.ndim == 2 else a


def heat(values: torch.Tensor | np.ndarray, vmax: float, cmap: str = ERROR_CMAP) -> np.ndarray:
    """(C, H, W) or (H, W) non-negative values -> (H, W, 3) uint8 in a colour map over 0..vmax
    (several channels: their mean)."""
    from matplotlib import colormaps

    a = values.detach().float().cpu().numpy() if isinstance(values, torch.Tensor) else np.asarray(values, np.float32)
    if a.ndim == 3:
        a = a.mean(0)
    colours = colormaps[cmap](np.clip(a / max(vmax, 1e-12), 0, 1))[..., :3]
    return (colours * 255 + 0.5).astype(np.uint8)


def outline(image: np.ndarray, mask: np.ndarray, colour=RED, width: int = 2) -> np.ndarray:
    """Draw the border of a bool (H, W) region (same size as ``image``) in ``colour``."""
    inner = mask.copy()
    for _ in range(width):
        shrunk = inner.copy()
        shrunk[1:] &= inner[:-1]
        shrunk[:-1] &= inner[1:]
        shrunk[:, 1:] &= inner[:, :-1]
        shrunk[:, :-1] &= inner[:, 1:]
        inner = shrunk
    out = image.copy()
    out[mask & ~inner] = colour
    return out


def upscale_mask(mask: torch.Tensor | np.ndarray, factor: int) -> np.ndarray:
    m = mask.cpu().numpy() if isinstance(mask, torch.Tensor) else np.asarray(mask)
    return m.astype(bool).repeat(factor, 0).repeat(factor, 1)


# --------------------------------------------------------------------------- text

@lru_cache(maxsize=4)
def _font_path(bold: bool) -> str:
    from matplotlib import font_manager

    return font_manager.findfont(font_manager.FontProperties(family="DejaVu Sans",
                                                             weight="bold" if bold else "normal"))


@lru_cache(maxsize=16)
def _font(size: int, bold: bool):
    from matplotlib.ft2font import FT2Font

    font = FT2Font(_font_path(bold))
    font.set_size(size, 72)
    return font


@lru_cache(maxsize=4096)
def _glyphs(text: str, size: int, bold: bool) -> tuple[np.ndarray, int]:
    """Coverage (h, w) float in [0, 1] of one line of text and its descent in pixels."""
    font = _font(size, bold)
    font.set_text(text, 0.0)
    font.draw_glyphs_to_bitmap(antialiased=True)
    image = np.asarray(font.get_image(), dtype=np.float32) / 255.0
    return image, int(round(font.get_descent() / 64))


def text_size(text: str, size: int = 11, bold: bool = False) -> tuple[int, int]:
    """(width, line height) in pixels."""
    image, _ = _glyphs(text, size, bold) if text else (np.zeros((0, 0)), 0)
    return image.shape[1], line_height(size)


def line_height(size: int) -> int:
    return int(round(size * 1.45))


# --------------------------------------------------------------------------- canvas

class Canvas:
    """A white (H, W, 3) uint8 image to draw on."""

    def __init__(self, height: int, width: int):
        self.pixels = np.full((height, width, 3), 255, np.uint8)

    def image(self, y: int, x: int, image: np.ndarray) -> None:
        """(h, w, 3) or grey (h, w) uint8 with its top left at (y, x)."""
        h, w = image.shape[:2]
        self.pixels[y:y + h, x:x + w] = image[..., None] if image.ndim == 2 else image

    def rect(self, y: int, x: int, h: int, w: int, colour, fill: bool = True, width: int = 2) -> None:
        if fill:
            self.pixels[max(y, 0):y + h, max(x, 0):x + w] = colour
            return
        for yy, xx, hh, ww in ((y, x, width, w), (y + h - width, x, width, w), (y, x, h, width), (y, x + w - width, h, width)):
            self.pixels[max(yy, 0):yy + hh, max(xx, 0):xx + ww] = colour

    def text(self, y: int, x: int, text: str, size: int = 11, colour=BLACK, bold: bool = False,
             align: str = "left") -> None:
        """One line whose box (``line_height(size)`` tall) starts at row ``y``; ``x`` is its left
        edge, centre or right edge by ``align``."""
        if not text:
            return
        glyphs, descent = _glyphs(text, size, bold)
        gh, gw = glyphs.shape
        x = {"left": x, "center": x - gw // 2, "right": x - gw}[align]
        baseline = y + int(round(size * 1.1))
        top = baseline + descent - gh
        y0, x0 = max(top, 0), max(x, 0)
        y1, x1 = min(top + gh, self.pixels.shape[0]), min(x + gw, self.pixels.shape[1])
        if y1 <= y0 or x1 <= x0:
            return
        a = glyphs[y0 - top:y1 - top, x0 - x:x1 - x, None]
        region = self.pixels[y0:y1, x0:x1].astype(np.float32)
        self.pixels[y0:y1, x0:x1] = (region * (1 - a) + np.asarray(colour, np.float32) * a + 0.5).astype(np.uint8)

    def lines(self, y: int, x: int, lines: list[str], size: int = 11, colour=BLACK, bold: bool = False) -> int:
        """Several lines from row ``y``; returns the row below the last."""
        for line in lines:
            self.text(y, x, line, size, colour, bold)
            y += line_height(size)
        return y


def colour_bar(height: int, vmax: float, cmap: str = ERROR_CMAP, bar_width: int = 14) -> np.ndarray:
    """A vertical colour bar image (height, ~50, 3): 0 at the bottom, ``vmax`` at the top, with ticks
    (what it measures is said in its row's label)."""
    from matplotlib import colormaps

    ticks = [f"{vmax:.3g}", f"{vmax / 2:.3g}", "0"]
    label_w = max(text_size(t, 9)[0] for t in ticks)
    width = bar_width + 6 + label_w + 4
    c = Canvas(height, width)
    ramp = colormaps[cmap](np.linspace(1, 0, max(height, 2)))[:, :3]
    c.pixels[:, :bar_width] = (ramp[:, None, :] * 255 + 0.5).astype(np.uint8)
    c.rect(0, 0, height, bar_width, BLACK, fill=False, width=1)
    for frac, t in zip((0.0, 0.5, 1.0), ticks):
        y = min(int(frac * (height - 1)), height - 1)
        c.rect(y, bar_width, 1, 4, BLACK)
        ty = min(max(y - line_height(9) // 2, 0), height - line_height(9))
        c.text(ty, bar_width + 6, t, 9)
    return c.pixels


# --------------------------------------------------------------------------- grid figures

@dataclass
class Row:
    """One row of a grid figure: a label (first line bold), tiles (None: empty cell), optional
    captions above each tile, an optional colour bar (cmap, vmax) at the right and ``boxed``: columns
    whose tile in this row alone is boxed in red (a per-row event, e.g. where this row's dream settled)."""

    label: list[str]
    tiles: list[np.ndarray | None]
    captions: list[str] = field(default_factory=list)
    colour_bar: tuple[str, float] | None = None
    boxed: set[int] = field(default_factory=set)


@dataclass
class Grid:
    """title: lines above; header: a caption per column above the first row; groups: (first column,
    last column, text) spans drawn above the header (e.g. context / forecast); divider: a red line
    before this column; marked: columns whose header is drawn in red and boxed; footer: lines below."""

    rows: list[Row]
    title: list[str] = field(default_factory=list)
    header: list[str] = field(default_factory=list)
    groups: list[tuple[int, int, str]] = field(default_factory=list)
    divider: int | None = None
    marked: set[int] = field(default_factory=set)
    footer: list[str] = field(default_factory=list)
    footer_colour: tuple[int, int, int] | None = None   # the first footer line in this colour
    gap: int = GAP   # pixels between tiles (wider keeps the red boxes of neighbouring tiles apart)


def draw(g: Grid) -> np.ndarray:
    """Render a Grid to (H, W, 3) uint8."""
    n_cols = max(len(r.tiles) for r in g.rows)
    col_w = [0] * n_cols
    for r in g.rows:
        for j, t in enumerate(r.tiles):
            if t is not None:
                col_w[j] = max(col_w[j], t.shape[1])
    for j, h in enumerate(g.header):
        col_w[j] = max(col_w[j], text_size(h, 10)[0] + 4) if j < n_cols else col_w[j]
    for r in g.rows:
        for j, caption in enumerate(r.captions[:n_cols]):
            col_w[j] = max(col_w[j], text_size(caption, 10)[0] + 4)
    cap_h = line_height(10)
    row_h = [max([t.shape[0] for t in r.tiles if t is not None] or [0]) + (cap_h if any(r.captions) else 0)
             for r in g.rows]
    label_w = max(max((text_size(line, 11 if i == 0 else 9, bold=i == 0)[0] for i, line in enumerate(r.label)),
                      default=0)
                  for r in g.rows) + 12
    bars = {i: colour_bar(row_h[i] - (cap_h if any(r.captions) else 0), r.colour_bar[1], r.colour_bar[0])
            for i, r in enumerate(g.rows) if r.colour_bar}
    bar_w = max((b.shape[1] for b in bars.values()), default=0)
    xs = [MARGIN + label_w]
    for j in range(1, n_cols):
        xs.append(xs[-1] + col_w[j - 1] + g.gap + (8 if g.divider == j else 0))
    grid_w = xs[-1] + col_w[-1]
    title_h = len(g.title) * line_height(12) + (6 if g.title else 0)
    group_h = line_height(10) if g.groups else 0
    header_h = line_height(10) if g.header else 0
    footer_h = len(g.footer) * line_height(10) + (6 if g.footer else 0)
    width = max(grid_w + (GAP + bar_w if bars else 0), max((text_size(t, 12, True)[0] for t in g.title), default=0)
                + 2 * MARGIN, max((text_size(t, 10)[0] for t in g.footer), default=0) + 2 * MARGIN) + MARGIN
    top = MARGIN + title_h + group_h + header_h
    height = top + sum(row_h) + g.gap * (len(g.rows) - 1) + footer_h + MARGIN
    c = Canvas(height, width)
    y = c.lines(MARGIN, MARGIN, g.title[:1], 12, bold=True)
    y = c.lines(y, MARGIN, g.title[1:], 12) + (6 if g.title else 0)
    for first, last, text in g.groups:
        x0, x1 = xs[first], xs[last] + col_w[last]
        c.rect(y + line_height(10) - 3, x0, 1, x1 - x0, GREY)
        c.text(y, (x0 + x1) // 2, text, 10, GREY, align="center")
    y += group_h
    for j, h in enumerate(g.header):
        colour = RED if j in g.marked else BLACK
        c.text(y, xs[j] + col_w[j] // 2, h, 10, colour, bold=j in g.marked, align="center")
    y += header_h
    for i, r in enumerate(g.rows):
        ty = y + (cap_h if any(r.captions) else 0)
        for k, line in enumerate(r.label):
            c.text(ty + k * line_height(11), MARGIN, line, 11 if k == 0 else 9, BLACK if k == 0 else GREY, bold=k == 0)
        for j, t in enumerate(r.tiles):
            if j < len(r.captions):
                c.text(y, xs[j] + col_w[j] // 2, r.captions[j], 10, align="center")
            if t is not None:
                c.image(ty, xs[j], t)
                if j in g.marked or j in r.boxed:
                    c.rect(ty - 2, xs[j] - 2, t.shape[0] + 4, t.shape[1] + 4, RED, fill=False)
        if i in bars:
            c.image(ty, grid_w + GAP, bars[i])
        y += row_h[i] + g.gap
    if g.divider is not None and 0 < g.divider < n_cols:
        x = xs[g.divider] - g.gap // 2 - 5
        c.rect(MARGIN + title_h, x, y - g.gap - MARGIN - title_h, 2, RED)
    y = c.lines(y - g.gap + 6, MARGIN, g.footer[:1], 10, g.footer_colour or GREY, bold=g.footer_colour is not None)
    c.lines(y, MARGIN, g.footer[1:], 10, GREY)
    return c.pixels


def same_size(frames: list[np.ndarray]) -> list[np.ndarray]:
    """Pad frames (white, bottom/right) to the largest height and width, as a GIF needs."""
    h = max(f.shape[0] for f in frames)
    w = max(f.shape[1] for f in frames)
    return [np.pad(f, ((0, h - f.shape[0]), (0, w - f.shape[1]), (0, 0)), constant_values=255) for f in frames]
