"""Image transforms of the dreaming recipe. All images are (B, C, H, W) floats in [0, 1].

- :func:`jitter_offsets` / ``torch.roll``: random wrap-around shift, undone after the step
  (google/deepdream notebook, 2015).
- :func:`octave_sizes`: the octave pyramid (smallest first), resized with :func:`predvis.data.images.resize`.
- :func:`zoom`: centre crop by a fraction then resize back to the same size, the zoom-video
  transform (no empty borders, the centre stays put).
- :func:`gaussian_blur` (of the gradient) and :func:`total_variation` (a penalty): smoothing.
"""
from __future__ import annotations

import math

import torch
import torch.nn.functional as F

from predvis.errors import PredvisError


def jitter_offsets(jitter: int, generator: torch.Generator) -> tuple[int, int]:
    """A random (dy, dx) with each in [-jitter, jitter]; (0, 0) when jitter is 0."""
    if jitter <= 0:
        return 0, 0
    dy, dx = torch.randint(-jitter, jitter + 1, (2,), generator=generator).tolist()
    return int(dy), int(dx)


def roll(x: torch.Tensor, dy: int, dx: int) -> torch.Tensor:
    """Wrap-around shift of x (B, C, H, W) by dy rows and dx columns (a copy)."""
    if dy == 0 and dx == 0:
        return x.clone()
    return torch.roll(x, shifts=(dy, dx), dims=(2, 3))


def octave_sizes(size: tuple[int, int], octaves: int, scale: float, min_side: int = 8) -> list[tuple[int, int]]:
    """Sizes of the octave pyramid, smallest first, ending at ``size``.

    Level i (from the top) is size / scale**i; levels with a side under ``min_side`` are dropped.
    """
    h, w = size
    sizes = []
    for i in range(octaves):
        s = (max(1, round(h / scale ** i)), max(1, round(w / scale ** i)))
        if i > 0 and min(s) < min_side:
            break
        sizes.append(s)
    return sizes[::-1]


def zoom(x: torch.Tensor, amount: float) -> torch.Tensor:
    """Zoom in by cropping ``amount`` (0 <= amount < 1) off the size around the centre, then resize back.

    x: (B, C, H, W) -> (B, C, H, W). The crop keeps the parity of each side, so it is exactly
    centred; ``amount=0.05`` is the notebook's 1/0.95 = 1.053x per frame.
    """
    if not 0.0 <= amount < 1.0:
        raise PredvisError(f"zoom must be in [0, 1), got {amount}")
    h, w = x.shape[2:]
    ch = h - 2 * round(h * amount / 2)
    cw = w - 2 * round(w * amount / 2)
    if (ch, cw) == (h, w):
        return x.clone()
    top, left = (h - ch) // 2, (w - cw) // 2
    crop = x[:, :, top:top + ch, left:left + cw]
    return F.interpolate(crop, size=(h, w), mode="bilinear", align_corners=False)


def _gaussian_kernel(sigma: float, device, dtype) -> torch.Tensor:
    radius = max(1, int(math.ceil(2.5 * sigma)))
    t = torch.arange(-radius, radius + 1, device=device, dtype=dtype)
    k = torch.exp(-0.5 * (t / sigma) ** 2)
    return k / k.sum()


def gaussian_blur(x: torch.Tensor, sigma: float) -> torch.Tensor:
    """Separable Gaussian blur of x (B, C, H, W) with reflect padding; identity when sigma <= 0."""
    if sigma <= 0:
        return x
    k = _gaussian_kernel(sigma, x.device, x.dtype)
    r = k.numel() // 2
    c = x.shape[1]
    if min(x.shape[2:]) <= r:
        return x
    kh = k.view(1, 1, -1, 1).expand(c, 1, -1, 1)
    kw = k.view(1, 1, 1, -1).expand(c, 1, 1, -1)
    x = F.conv2d(F.pad(x, (0, 0, r, r), mode="reflect"), kh, groups=c)
    return F.conv2d(F.pad(x, (r, r, 0, 0), mode="reflect"), kw, groups=c)


def total_variation(x: torch.Tensor) -> torch.Tensor:
    """Mean absolute difference of neighbouring pixels of x (B, C, H, W): a smoothness penalty."""
    return (x[..., 1:, :] - x[..., :-1, :]).abs().mean() + (x[..., :, 1:] - x[..., :, :-1]).abs().mean()
