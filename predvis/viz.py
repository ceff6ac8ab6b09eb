"""Image and GIF writing (imageio, Pillow); labelled figures are drawn by predvis.figures."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import imageio.v3 as iio
import numpy as np
import torch

from predvis.run import atomic_write_bytes


def to_uint8(image: torch.Tensor | np.ndarray) -> np.ndarray:
    """(C, H, W) or (H, W) in [0, 1] -> (H, W) or (H, W, 3) uint8."""
    a = image.detach().float().cpu().numpy() if isinstance(image, torch.Tensor) else np.asarray(image, dtype=np.float32)
    if a.ndim == 3:
        a = a[0] if a.shape[0] == 1 else np.transpose(a, (1, 2, 0))
    return (np.clip(a, 0, 1) * 255 + 0.5).astype(np.uint8)


def save_png(path: Path, image: np.ndarray) -> None:
    buffer = io.BytesIO()
    iio.imwrite(buffer, image, extension=".png")
    atomic_write_bytes(path, buffer.getvalue())


def save_gif(path: Path, frames: Sequence[np.ndarray], fps: float = 5.0) -> None:
    """Frames (H, W) or (H, W, 3) uint8, all the same size, as a looping GIF.

    One 256-colour palette (median cut) is built from up to 8 frames spread over the clip and
    every frame is mapped to it without dithering: the same colour is the same in every frame,
    and a few hundred large frames take seconds, not minutes (per-frame palettes were ~50x slower).
    Median cut spends the palette on the colours that cover the frames, so smooth grey areas stay
    within a few levels (a fast octree left jumps of ~10 levels that read as speckle).
    """
    from PIL import Image

    rgb = [np.repeat(f[..., None], 3, axis=2) if f.ndim == 2 else np.ascontiguousarray(f[..., :3]) for f in frames]
    count = min(8, len(rgb))   # every frame of a short clip, 8 spread over a long one
    picks = sorted({round(i * (len(rgb) - 1) / max(count - 1, 1)) for i in range(count)})
    palette = Image.fromarray(np.concatenate([rgb[i] for i in picks])).quantize(
        256, method=Image.Quantize.MEDIANCUT, dither=Image.Dither.NONE)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in rgb]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=round(1000.0 / fps),
                   loop=0, optimize=False)
    atomic_write_bytes(path, buffer.getvalue())
