"""Frame metrics with exact definitions (docs/metrics.md repeats them).

All take predictions and targets of shape (N, T, C, H, W) with values on the [0, 1] scale and
return one value per sequence and frame, shape (N, T). Tables then average over sequences.

- ``mse_per_pixel``: mean over C*H*W of (pred - target)^2 (PredNet's convention).
- ``sse_per_frame``: sum over C*H*W of (pred - target)^2 (OpenSTL/PredRNN's "MSE per frame").
- ``psnr``: 10 log10(1 / mse_per_pixel), peak 1.0, predictions clipped to [0, 1] first; a
  perfect frame is capped at 100 dB so averages stay finite.
- ``ssim``: the structural similarity of scikit-image's ``structural_similarity`` defaults
  (7x7 uniform window, sample covariance, data_range 1.0, K1 0.01, K2 0.03, mean over the
  window positions that fit inside the frame) per frame and channel, predictions clipped to
  [0, 1], averaged over channels. Computed in torch; a test checks it against scikit-image.
"""
from __future__ import annotations

import torch

PSNR_CAP = 100.0


def mse_per_pixel(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred.float() - target.float()) ** 2).flatten(2).mean(-1)


def sse_per_frame(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    return ((pred.float() - target.float()) ** 2).flatten(2).sum(-1)


def psnr(pred: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    mse = mse_per_pixel(pred.clamp(0, 1), target)
    out = 10 * torch.log10(1.0 / mse.clamp_min(1e-30))
    return out.clamp(max=PSNR_CAP)


def ssim(pred: torch.Tensor, target: torch.Tensor, window: int = 7) -> torch.Tensor:
    n, steps, channels, h, w = pred.shape
    x = pred.clamp(0, 1).double().reshape(n * steps * channels, 1, h, w)
    y = target.double().reshape(n * steps * channels, 1, h, w)
    mean = lambda a: torch.nn.functional.avg_pool2d(a, window, stride=1)  # noqa: E731
    cov_norm = window * window / (window * window - 1)
    ux, uy = mean(x), mean(y)
    vx = cov_norm * (mean(x * x) - ux * ux)
    vy = cov_norm * (mean(y * y) - uy * uy)
    vxy = cov_norm * (mean(x * y) - ux * uy)
    c1, c2 = 0.01 ** 2, 0.03 ** 2
    s = ((2 * ux * uy + c1) * (2 * vxy + c2)) / ((ux * ux + uy * uy + c1) * (vx + vy + c2))
    return s.flatten(1).mean(1).view(n, steps, channels).mean(-1).float()


def frame_metrics(pred: torch.Tensor, target: torch.Tensor) -> dict[str, torch.Tensor]:
    """All metrics, each (N, T)."""
    return {
        "mse": mse_per_pixel(pred, target),
        "sse": sse_per_frame(pred, target),
        "psnr": psnr(pred, target),
        "ssim": ssim(pred, target),
    }
