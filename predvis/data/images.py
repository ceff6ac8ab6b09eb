"""Images as tensors: any array an image file gives -> (1, C, H, W) floats in [0, 1], and resizing."""
from __future__ import annotations

import numpy as np
import torch
import torch.nn.functional as F

from predvis.errors import PredvisError


def _to_float(array: np.ndarray) -> np.ndarray:
    if array.dtype == bool:
        return array.astype(np.float32)
    if np.issubdtype(array.dtype, np.integer):
        return array.astype(np.float32) / float(np.iinfo(array.dtype).max)
    return np.clip(array.astype(np.float32), 0.0, 1.0)


def to_tensor(array: np.ndarray, channels: int) -> torch.Tensor:
    """(H, W) or (H, W, 1|3|4) array -> (1, channels, H, W) float tensor in [0, 1]."""
    a = _to_float(np.asarray(array))
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3:
        raise PredvisError(f"an image must be (H, W) or (H, W, C), got shape {a.shape}")
    if a.shape[2] == 4:
        a = a[..., :3]
    if channels == 1 and a.shape[2] == 3:
        a = a @ np.array([0.299, 0.587, 0.114], dtype=np.float32)
        a = a[..., None]
    elif channels == 3 and a.shape[2] == 1:
        a = np.repeat(a, 3, axis=2)
    if a.shape[2] != channels:
        raise PredvisError(f"cannot turn a {a.shape[2]}-channel image into {channels} channels")
    return torch.from_numpy(np.ascontiguousarray(a.transpose(2, 0, 1)))[None]


def resize(x: torch.Tensor, size: tuple[int, int]) -> torch.Tensor:
    """Bilinear resize of x (B, C, H, W) to ``size`` = (h, w); antialiased when shrinking."""
    if tuple(x.shape[2:]) == tuple(size):
        return x
    shrink = size[0] < x.shape[2] or size[1] < x.shape[3]
    return F.interpolate(x, size=size, mode="bilinear", align_corners=False, antialias=shrink)


def fit_size(x: torch.Tensor, size: int) -> torch.Tensor:
    """Resize (1, C, H, W) so its longer side is ``size`` (aspect kept)."""
    h, w = x.shape[2:]
    scale = size / max(h, w)
    return resize(x, (max(1, round(h * scale)), max(1, round(w * scale)))).clamp(0.0, 1.0)
