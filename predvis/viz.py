"""Image and GIF writing (imageio, Pillow); labelled figures are drawn by predvis.figures."""
from __future__ import annotations

import io
from pathlib import Path
from typing import Sequence

import imageio.v3 as iio
import numpy as np
import torch

from predvis.run import atomic_write_bytes, current_umask


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


def clip_palette(rgb: Sequence[np.ndarray], extra: np.ndarray | None = None):
    """One 256-colour median-cut palette (a PIL image) for a clip of (H, W, 3) uint8 frames of one width:
    built from every frame of a short clip or 8 spread over a long one, plus ``extra`` rows of colours."""
    from PIL import Image

    count = min(8, len(rgb))
    picks = sorted({round(i * (len(rgb) - 1) / max(count - 1, 1)) for i in range(count)})
    parts = [rgb[i] for i in picks] + ([extra] if extra is not None else [])
    return Image.fromarray(np.concatenate(parts)).quantize(256, method=Image.Quantize.MEDIANCUT,
                                                           dither=Image.Dither.NONE)


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
    palette = clip_palette(rgb)
    images = [Image.fromarray(f).quantize(palette=palette, dither=Image.Dither.NONE) for f in rgb]
    buffer = io.BytesIO()
    images[0].save(buffer, format="GIF", save_all=True, append_images=images[1:], duration=round(1000.0 / fps),
                   loop=0, optimize=False)
    atomic_write_bytes(path, buffer.getvalue())


class GifStream:
    """A looping GIF written frame by frame, so memory stays flat in the number of frames.

    The 256-colour palette is fixed up front (median cut, no dithering) from
    ``sample`` frames, white and ``colours`` (an (N, 3) uint8 list of colours later frames will use,
    e.g. a colour map's ramp); every frame is mapped to it, so a colour stays the same all through the
    clip. Every frame is padded (white) or cut to the size of the first sample frame. The file is
    written under a temporary name and renamed into place by :meth:`close`; :meth:`discard` drops it.
    """

    def __init__(self, path: Path, sample: Sequence[np.ndarray], fps: float = 5.0,
                 colours: np.ndarray | None = None):
        import os
        import tempfile

        from PIL import GifImagePlugin, Image

        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self.height, self.width = sample[0].shape[:2]
        self.duration = round(1000.0 / fps)
        rgb = [self._fit(f) for f in sample]
        strip = np.full((1, 3), 255, dtype=np.uint8)   # white, the padding, is always in the palette
        if colours is not None:
            strip = np.concatenate([strip, np.asarray(colours, dtype=np.uint8).reshape(-1, 3)])
        rows = -(-len(strip) // self.width)
        strip = np.concatenate([strip, np.repeat(strip[-1:], rows * self.width - len(strip), axis=0)])
        self._palette = clip_palette(rgb, strip.reshape(rows, self.width, 3))
        fd, tmp = tempfile.mkstemp(dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp")
        if hasattr(os, "fchmod"):  # the permissions a plain open() gives (mkstemp alone: 0600)
            os.fchmod(fd, 0o666 & ~current_umask())
        self._tmp = Path(tmp)
        self._file = os.fdopen(fd, "wb")
        self._gif = GifImagePlugin
        self.frames = 0

    def _fit(self, frame: np.ndarray) -> np.ndarray:
        f = np.repeat(frame[..., None], 3, axis=2) if frame.ndim == 2 else frame[..., :3]
        f = f[:self.height, :self.width]
        pad = ((0, self.height - f.shape[0]), (0, self.width - f.shape[1]), (0, 0))
        return np.ascontiguousarray(np.pad(f, pad, constant_values=255) if any(p[1] for p in pad) else f)

    def add(self, frame: np.ndarray) -> None:
        from PIL import Image

        im = Image.fromarray(self._fit(frame)).quantize(palette=self._palette, dither=Image.Dither.NONE)
        if self.frames == 0:
            header, _ = self._gif.getheader(im, info={"loop": 0, "optimize": False})
            for chunk in header:
                self._file.write(chunk)
        for chunk in self._gif.getdata(im, duration=self.duration, disposal=1):
            self._file.write(chunk)
        self.frames += 1

    def close(self) -> None:
        import os

        self._file.write(b";")  # GIF trailer
        self._file.flush()
        os.fsync(self._file.fileno())
        self._file.close()
        os.replace(self._tmp, self.path)

    def discard(self) -> None:
        self._file.close()
        self._tmp.unlink(missing_ok=True)
