"""Embedded default videos made from scikit-image's bundled photographs.

Each video is a slow camera move over one photograph -- a pan along a smooth path and a slow
zoom in and out -- with a shaded ball crossing the view on a straight line, again and again
at new heights and speeds. Everything is drawn from ``numpy.random.default_rng(seed)``, so a
seed gives the same frames on every machine. No download: the photographs ship with
scikit-image (astronaut, coffee, chelsea, rocket, immunohistochemistry).
"""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from predvis.errors import DataError

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry")


def load_photo(name: str) -> torch.Tensor:
    """A bundled photograph as (3, H, W) float32 in [0, 1]."""
    import skimage.data

    if name not in PHOTOS:
        raise DataError(f"unknown photo '{name}' (choose from {', '.join(PHOTOS)})")
    img = np.asarray(getattr(skimage.data, name)())[..., :3].astype(np.float32) / 255.0
    return torch.from_numpy(img).permute(2, 0, 1).contiguous()


def photo_video(seed: int, n_frames: int, size: tuple[int, int], channels: int = 3,
                photo: str | None = None) -> torch.Tensor:
    """A pan-and-zoom video with a ball crossing it -> (n_frames, channels, H, W) in [0, 1]."""
    if n_frames <= 0:
        raise DataError(f"n_frames must be > 0, got {n_frames}")
    rng = np.random.default_rng(seed)
    name = photo or PHOTOS[int(rng.integers(len(PHOTOS)))]
    img = load_photo(name)
    H, W = size
    t = np.arange(n_frames, dtype=np.float64)
    # camera: window half-size (in normalised photo coordinates) and centre
    aspect = img.shape[1] / img.shape[2]  # photo h / w
    base = rng.uniform(0.35, 0.5)
    zoom_period = rng.uniform(150, 300)
    scale = base * (1 + 0.2 * np.sin(2 * np.pi * t / zoom_period + rng.uniform(0, 2 * np.pi)))
    pan_period = rng.uniform(250, 500, size=2)
    phase = rng.uniform(0, 2 * np.pi, size=2)
    room = 1 - scale
    cx = room * 0.9 * np.sin(2 * np.pi * t / pan_period[0] + phase[0])
    cy = room * 0.9 * np.sin(2 * np.pi * t / pan_period[1] + phase[1])
    theta = torch.zeros(n_frames, 2, 3)
    sx = scale * min(1.0, aspect * W / H)  # keep pixels square
    sy = scale * min(1.0, H / (aspect * W))
    theta[:, 0, 0] = torch.from_numpy(sx)
    theta[:, 1, 1] = torch.from_numpy(sy)
    theta[:, 0, 2] = torch.from_numpy(cx)
    theta[:, 1, 2] = torch.from_numpy(cy)
    grid = F.affine_grid(theta, (n_frames, 3, H, W), align_corners=False)
    frames = torch.empty(n_frames, 3, H, W)
    for s in range(0, n_frames, 256):  # chunks keep memory small for long videos
        e = min(n_frames, s + 256)
        frames[s:e] = F.grid_sample(img.expand(e - s, -1, -1, -1), grid[s:e], mode="bilinear",
                                    padding_mode="reflection", align_corners=False)
    _draw_balls(frames, rng)
    frames = frames.clamp(0, 1)
    if channels == 1:
        frames = (0.2125 * frames[:, 0] + 0.7154 * frames[:, 1] + 0.0721 * frames[:, 2])[:, None]
    return frames.contiguous()


def _draw_balls(frames: torch.Tensor, rng: np.random.Generator) -> None:
    """Paint a shaded ball crossing the view, one crossing after another, in place."""
    T, _, H, W = frames.shape
    yy, xx = torch.meshgrid(torch.arange(H, dtype=torch.float32), torch.arange(W, dtype=torch.float32), indexing="ij")
    t = 0
    while t < T:
        dur = int(rng.integers(40, 100))
        r = float(rng.uniform(0.06, 0.12)) * min(H, W)
        colour = torch.tensor(rng.uniform(0.1, 1.0, size=3), dtype=torch.float32)
        left_to_right = rng.random() < 0.5
        y0, y1 = rng.uniform(0.2, 0.8, size=2) * H
        for k in range(dur):
            if t + k >= T:
                break
            a = k / max(dur - 1, 1)
            x = -r + a * (W + 2 * r)
            x = x if left_to_right else W - x
            y = y0 + a * (y1 - y0)
            d2 = ((xx - x) ** 2 + (yy - y) ** 2) / (r * r)
            alpha = (1 - d2).clamp(0, 1).sqrt().clamp(max=1) * 4
            alpha = alpha.clamp(0, 1)
            shade = (1.0 - 0.5 * (((xx - x + 0.4 * r) ** 2 + (yy - y + 0.4 * r) ** 2) / (r * r)).clamp(0, 1))
            ball = colour[:, None, None] * shade
            frames[t + k] = frames[t + k] * (1 - alpha) + ball * alpha
        t += dur + int(rng.integers(0, 30))


def default_videos(seed: int, n_videos: int, n_frames: int, size: tuple[int, int],
                   channels: int = 3, only: int | None = None) -> list[torch.Tensor]:
    """``n_videos`` photo videos, video ``i`` drawn with seed ``seed * 1000 + i`` over photo
    ``PHOTOS[(seed + i) % 5]``: five or more videos show every photograph, so held-out videos
    (another seed) are new camera paths and balls over photographs the model has seen.
    ``only=i``: just video ``i`` of that list (to fill a buffer one video at a time)."""
    which = range(n_videos) if only is None else [only]
    return [photo_video(seed * 1000 + i, n_frames, size, channels, photo=PHOTOS[(seed + i) % len(PHOTOS)])
            for i in which]
