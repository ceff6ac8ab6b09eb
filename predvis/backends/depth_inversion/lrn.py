"""Local response normalisation across channels, two implementations of the same maths.

``y = x * (k + alpha / size * W(x^2)) ** -beta`` with ``W`` the sum over a window of ``size``
channels centred on each channel (zero outside the channel range), as
``nn.LocalResponseNorm(size, alpha, beta, k)``.

- :class:`ShiftedLRN`: autograd through five shifted slice-adds of a padded copy (the first
  implementation; every slice, pad and add is a node of the autograd graph).
- :class:`FusedLRN`: one autograd node with its backward written out,
  ``dx = g * d^-b - (2 a b / n) * x * W(g * x * d^(-b-1))`` (``W`` is symmetric, so it is its own
  transpose), the window sums done in place without padding. Under bf16 autocast it computes in
  float32 (float64 input stays float64) and returns the input's dtype. Several times fewer kernels per call than the shifted one.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F


def window_sum(t: torch.Tensor, size: int) -> torch.Tensor:
    """Sum over a window of ``size`` channels (dim 1) centred as in ``nn.LocalResponseNorm``:
    channels ``c - size // 2 .. c + (size - 1) // 2``, zero outside the range. Same shape as ``t``."""
    out = t.clone()
    c = t.shape[1]
    for shift in range(1, size // 2 + 1):          # channels below c
        if shift < c:
            out[:, shift:] += t[:, :c - shift]
    for shift in range(1, (size - 1) // 2 + 1):    # channels above c
        if shift < c:
            out[:, :c - shift] += t[:, shift:]
    return out


class _FusedLRNFunction(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, size: int, alpha: float, beta: float, k: float) -> torch.Tensor:
        xf = x.to(torch.promote_types(x.dtype, torch.float32))
        d = window_sum(xf * xf, size).mul_(alpha / size).add_(k)
        scale = d.pow(-beta)
        ctx.save_for_backward(xf, d, scale)
        ctx.hyper = (size, alpha, beta)
        return (xf * scale).to(x.dtype)

    @staticmethod
    def backward(ctx, grad: torch.Tensor):
        xf, d, scale = ctx.saved_tensors
        size, alpha, beta = ctx.hyper
        g = grad.to(xf.dtype)
        # W is symmetric only for odd sizes; for even sizes its transpose mirrors the window
        inner = g * xf * scale / d
        if size % 2:
            spread = window_sum(inner, size)
        else:
            spread = window_sum(inner.flip(1), size).flip(1)
        dx = g * scale - (2 * alpha * beta / size) * xf * spread
        return dx.to(grad.dtype), None, None, None, None


class FusedLRN(nn.Module):
    """LRN with a hand-written backward (see the module doc). Parameter-free, and bounded:
    |out| < sqrt(size / alpha), so unrolled activity cannot grow without limit.
    Input (B, C, H, W) in any memory format; output of the input's dtype."""

    def __init__(self, size: int = 5, alpha: float = 1e-3, beta: float = 0.5, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return _FusedLRNFunction.apply(x, self.size, self.alpha, self.beta, self.k)


class ShiftedLRN(nn.Module):
    """LRN as five shifted adds of a channel-padded copy, differentiated by autograd.
    Input (B, C, H, W); output of the input's dtype (computed in it)."""

    def __init__(self, size: int = 5, alpha: float = 1e-3, beta: float = 0.5, k: float = 1.0):
        super().__init__()
        self.size, self.alpha, self.beta, self.k = size, alpha, beta, k

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        c = x.shape[1]
        sq = F.pad(x * x, (0, 0, 0, 0, self.size // 2, (self.size - 1) // 2))
        total = sq[:, 0:c]
        for i in range(1, self.size):
            total = total + sq[:, i:i + c]
        return x * (self.k + self.alpha / self.size * total).pow(-self.beta)
