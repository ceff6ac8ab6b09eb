"""Read any video file or folder of images through imageio, resized to a model's input.

``load_video(path, (H, W))`` returns frames ``(T, C, H, W)`` float32 in ``[0, 1]``. A folder is read
as its image files in name order. Frames are resized with cubic interpolation
(scikit-image, anti-aliased); grey frames are repeated to 3 channels, alpha is dropped, and
``channels=1`` converts to luminance. Unreadable input raises a one-line DataError.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from predvis.errors import DataError

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff", ".webp"}


def to_frame(img: np.ndarray, size: tuple[int, int], channels: int = 3) -> np.ndarray:
    """One image (H, W[, C]) of any dtype -> float32 (channels, size[0], size[1]) in [0, 1]."""
    from skimage.color import rgb2gray
    from skimage.transform import resize

    a = np.asarray(img)
    if a.dtype == np.uint8:
        a = a.astype(np.float32) / 255.0
    elif a.dtype == np.uint16:
        a = a.astype(np.float32) / 65535.0
    else:
        a = a.astype(np.float32)
        if a.max(initial=0.0) > 1.0:
            a = a / 255.0
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise DataError(f"expected an image of shape (H, W[, C]), got {a.shape}")
    a = a[..., :3] if a.shape[-1] >= 3 else np.repeat(a[..., :1], 3, axis=-1)
    if channels == 1:
        a = rgb2gray(a)[..., None]
    a = resize(a, (size[0], size[1], a.shape[-1]), order=3, anti_aliasing=True, mode="reflect")
    return np.clip(a, 0.0, 1.0).transpose(2, 0, 1).astype(np.float32)


def _read_frames(path: Path, max_frames: int | None):
    import imageio.v3 as iio

    if path.is_dir():
        files = sorted(p for p in path.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        if not files:
            raise DataError(f"no image files in folder {path}")
        for p in files[:max_frames]:
            yield iio.imread(p)
        return
    for i, frame in enumerate(iio.imiter(path)):
        if max_frames is not None and i >= max_frames:
            return
        yield frame


def load_video(path: str | Path, size: tuple[int, int], channels: int = 3,
               max_frames: int | None = None) -> torch.Tensor:
    """Frames of a video file or image folder -> (T, channels, H, W) float32 in [0, 1]."""
    path = Path(path)
    if not path.exists():
        raise DataError(f"video not found: {path}")
    try:
        frames = [to_frame(f, size, channels) for f in _read_frames(path, max_frames)]
    except DataError:
        raise
    except Exception as err:  # imageio raises many types for bad files
        reason = str(err).splitlines()[0] if str(err) else type(err).__name__
        raise DataError(f"cannot read video {path}: {reason}") from None
    if not frames:
        raise DataError(f"video {path} has no frames")
    return torch.from_numpy(np.stack(frames))
