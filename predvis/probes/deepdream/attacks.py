"""Adversarial examples with the dreaming machinery: projected gradient steps in pixel space.

- :func:`pgd`: untargeted or targeted projected gradient descent with an L-inf budget ``eps``
  (Madry et al., "Towards Deep Learning Models Resistant to Adversarial Attacks", 2018):
  optional random start in the eps-ball, step ``alpha * sign(grad)``, then project onto the
  eps-ball around the original and onto [0, 1].
- :func:`patch_attack`: any pixel values inside a square mask, the original outside
  (in the spirit of Brown et al., "Adversarial Patch", 2017, per image rather than universal).
- :func:`attack_metrics`: clean accuracy, success rate, confidence before/after, L-inf and L2.

Images are (B, C, H, W) in [0, 1]; labels and targets are (B,) int64; the model returns
(B, K) logits. The projections hold *exactly* after every step: ``LinfBall`` clamps each pixel
to [max(x0 - eps, 0), min(x0 + eps, 1)] and ``Mask`` copies the original outside the mask.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from predvis.errors import PredvisError


class LinfBall:
    """Projection onto {x : x0 - eps <= x <= x0 + eps} intersected with [0, 1]."""

    def __init__(self, x0: torch.Tensor, eps: float):
        if eps < 0:
            raise PredvisError(f"eps must be >= 0, got {eps}")
        self.lo = (x0 - eps).clamp_(min=0.0)
        self.hi = (x0 + eps).clamp_(max=1.0)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.clamp(x, self.lo, self.hi)


class Mask:
    """Projection that keeps x inside ``mask`` (B or 1, 1, H, W bool) and x0 outside, then [0, 1]."""

    def __init__(self, x0: torch.Tensor, mask: torch.Tensor):
        self.x0 = x0
        self.mask = mask

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        return torch.where(self.mask, x.clamp(0.0, 1.0), self.x0)


def square_mask(shape: tuple[int, int, int, int], size: int, generator: torch.Generator,
                location: tuple[int, int] | None = None) -> torch.Tensor:
    """A (B, 1, H, W) bool mask with one ``size`` x ``size`` square per image.

    location: (top, left) for every image; None = random per image.
    """
    b, _, h, w = shape
    if size < 1:
        raise PredvisError(f"patch size must be >= 1, got {size}")
    if size > h or size > w:
        raise PredvisError(f"patch size {size} is larger than the image ({h}x{w})")
    mask = torch.zeros(b, 1, h, w, dtype=torch.bool)
    if location is not None:
        top, left = location
        if not (0 <= top <= h - size and 0 <= left <= w - size):
            raise PredvisError(f"patch at {location} of size {size} does not fit in the image ({h}x{w})")
        tops = torch.full((b,), top)
        lefts = torch.full((b,), left)
    else:
        tops = torch.randint(0, h - size + 1, (b,), generator=generator)
        lefts = torch.randint(0, w - size + 1, (b,), generator=generator)
    for i in range(b):
        t, l = int(tops[i]), int(lefts[i])
        mask[i, 0, t:t + size, l:l + size] = True
    return mask


def _check_logits(logits: torch.Tensor) -> None:
    if logits.dim() != 2:
        raise PredvisError(
            f"attacks need a classifier with (B, K) logits; this model outputs shape {tuple(logits.shape)}"
        )


def _loss_grad(model: nn.Module, x: torch.Tensor, labels: torch.Tensor, targeted: bool) -> torch.Tensor:
    """Gradient of the attack objective (to be ascended) with respect to x."""
    x = x.detach().requires_grad_(True)
    with torch.enable_grad():
        logits = model(x)
        _check_logits(logits)
        loss = F.cross_entropy(logits, labels, reduction="sum")
        if targeted:
            loss = -loss
        (grad,) = torch.autograd.grad(loss, x)
    return grad


def _prepare(model: nn.Module, steps: int, alpha: float) -> None:
    if model.training:
        raise PredvisError("the model is in training mode; call .eval() before attacking it")
    if steps < 1:
        raise PredvisError(f"steps must be >= 1, got {steps}")
    if alpha <= 0:
        raise PredvisError(f"alpha must be > 0, got {alpha}")


def pgd(model: nn.Module, x0: torch.Tensor, labels: torch.Tensor, eps: float, alpha: float, steps: int,
        generator: torch.Generator, target: torch.Tensor | None = None, random_start: bool = True,
        history: list[torch.Tensor] | None = None) -> torch.Tensor:
    """L-inf PGD. x0 (B, C, H, W) in [0, 1], labels (B,); target (B,) makes it targeted.

    Returns x_adv (B, C, H, W) with |x_adv - x0| <= eps and 0 <= x_adv <= 1 everywhere.
    history: if given, every iterate (after projection) is appended (for tests and plots).
    """
    _prepare(model, steps, alpha)
    project = LinfBall(x0, eps)
    x = x0.clone()
    if random_start and eps > 0:
        noise = torch.rand(x0.shape, generator=generator).to(x0) * 2 - 1
        x = project(x0 + eps * noise)
    return _sign_steps(model, x, labels if target is None else target, target is not None, project, alpha, steps, history)


def _sign_steps(model: nn.Module, x: torch.Tensor, goal: torch.Tensor, targeted: bool, project, alpha: float,
                steps: int, history: list[torch.Tensor] | None) -> torch.Tensor:
    """``steps`` projected sign-gradient steps of size ``alpha`` from ``x``."""
    for _ in range(steps):
        grad = _loss_grad(model, x, goal, targeted=targeted)
        x = project(x + alpha * grad.sign())
        if history is not None:
            history.append(x)
    return x


def patch_attack(model: nn.Module, x0: torch.Tensor, labels: torch.Tensor, mask: torch.Tensor, alpha: float,
                 steps: int, generator: torch.Generator, target: torch.Tensor | None = None,
                 history: list[torch.Tensor] | None = None) -> torch.Tensor:
    """Patch attack: pixels inside mask (B, 1, H, W) are free in [0, 1], outside they stay x0.

    The patch starts from uniform noise; sign-gradient steps of size ``alpha``.
    """
    _prepare(model, steps, alpha)
    mask = mask.to(x0.device)
    if mask.shape[0] not in (1, x0.shape[0]) or mask.shape[2:] != x0.shape[2:]:
        raise PredvisError(f"mask shape {tuple(mask.shape)} does not fit images {tuple(x0.shape)}")
    project = Mask(x0, mask)
    x = project(torch.rand(x0.shape, generator=generator).to(x0))
    return _sign_steps(model, x, labels if target is None else target, target is not None, project, alpha, steps, history)


@dataclass
class AttackMetrics:
    """Means over the attacked images (distances in [0, 1] pixel units, per image).

    clean_acc: accuracy on the originals. success: fraction of images whose adversarial
    prediction differs from the label (untargeted) or equals the target (targeted), among the
    images the model classified correctly. conf_before / conf_after: mean softmax
    probability of the predicted class on originals / adversarial images. linf, l2: mean
    per-image L-inf and L2 norm of the perturbation.
    """

    clean_acc: float
    success: float
    conf_before: float
    conf_after: float
    linf: float
    l2: float
    n: int


@torch.no_grad()
def attack_metrics(model: nn.Module, x0: torch.Tensor, x_adv: torch.Tensor, labels: torch.Tensor,
                   target: torch.Tensor | None = None) -> AttackMetrics:
    """Score an attack; see :class:`AttackMetrics`."""
    p0 = F.softmax(model(x0), dim=1)
    p1 = F.softmax(model(x_adv), dim=1)
    conf0, pred0 = p0.max(dim=1)
    conf1, pred1 = p1.max(dim=1)
    correct = pred0 == labels
    hit = pred1 != labels if target is None else pred1 == target
    n_correct = int(correct.sum())
    delta = (x_adv - x0).flatten(1)
    return AttackMetrics(
        clean_acc=float(correct.float().mean()),
        success=float((hit & correct).sum()) / max(n_correct, 1),
        conf_before=float(conf0.mean()),
        conf_after=float(conf1.mean()),
        linf=float(delta.abs().max(dim=1).values.mean()),
        l2=float(delta.norm(dim=1).mean()),
        n=int(x0.shape[0]),
    )
