"""Unlearning at an attractor: one learning step of a model's own rule with its sign reversed.

Hopfield, Feinstein & Palmer 1983 ("Unlearning" has a stabilizing effect in collective memories,
Nature 304:158) relax a network from a random state and then weaken the state it settled in;
Crick & Mitchison 1983 (Nature 304:111) propose that REM sleep does this ("reverse learning");
the PVM blog proposes it for the fixed points that PVM's dreams fall into. Here (docs/probes.md,
section sleep):

*Settling energy* of an attractor ``A = (a_0, ..., a_{p-1})`` (``p = 1``: a fixed point; ``p >= 2``:
a cycle) for a stepping model: from a fresh state feed ``x_t = a_{t mod p}`` for ``t = 0 .. 2L - 1``;
``E = mean over t = L .. 2L - 1 of the mean over pixels and channels of (prediction made at t - 1
- x_t)^2``. The first ``L`` steps (``burn_in``) let the recurrent state settle. A dream that has
settled on ``A`` has driven this error to about zero; an *unlearning step* must raise it.

- Gradient-trained models (GOPC-1, VAE-1, GOPC-2) use :class:`GradientUnlearning`: one gradient-ascent
  step on E at ``rate`` times their training learning rate, preconditioned like their training
  optimiser (Adam's second moments, no first moment): a training step with the sign reversed.
- PVM learns locally and online inside ``step``; its unlearning runs ``L`` steps on the clip with its
  own rule and its scheduled rates multiplied by ``-rate`` (``PVM.unlearn_step``).
"""
from __future__ import annotations

from typing import Any, Callable, Iterable

import torch

StepFn = Callable[[torch.Tensor, Any], Any]


def attractor_clip(cycle: torch.Tensor, burn_in: int) -> torch.Tensor:
    """The frames that settling energy and unlearning feed: ``cycle`` (B, p, C, H, W) repeated to
    ``2 * burn_in`` steps (at least ``p + 1``) -> (B, T, C, H, W)."""
    p = cycle.shape[1]
    length = max(2 * burn_in, p + 1)
    reps = -(-length // p)
    return cycle.repeat(1, reps, 1, 1, 1)[:, :length]


def settling_energy(step: StepFn, init_state: Callable[[int], Any], clip: torch.Tensor,
                    burn_in: int) -> torch.Tensor:
    """E per stream (B,) for ``clip`` (B, T, C, H, W), in the caller's autograd mode.

    step: ``step(frame, state) -> StepOutput``; errors of the predictions made at steps
    ``burn_in - 1 .. T - 2`` against the frames they predict (at least the last one).
    """
    T = clip.shape[1]
    first = min(max(burn_in, 1), T - 1)
    state, pred, errs = init_state(clip.shape[0]), None, []
    for t in range(T):
        x = clip[:, t]
        if t >= first:
            errs.append((pred - x).square().flatten(1).mean(1))
        if t == T - 1:
            break
        out = step(x, state)
        state, pred = out.state, out.prediction
    return torch.stack(errs, 1).mean(1)


def scored_steps(length: int, burn_in: int) -> int:
    """How many prediction errors :func:`settling_energy` averages for a clip of ``length`` steps."""
    return length - min(max(burn_in, 1), length - 1)


class GradientUnlearning:
    """Mixin for steppers of models trained by gradient descent.

    The stepper provides ``init_state``, ``differentiable_step(frame, state)`` (``step`` in the
    caller's autograd mode), ``unlearn_parameters()``, ``learning_rate`` (the training rate) and
    ``optimizer`` (the training optimiser, or None); it may override :meth:`differentiable_energy`
    to share work across the steps of a clip.
    """

    # measured on quick GOPC-1 (docs/probes.md, sleep): 0.1 raised held-out error by 25 %,
    # 0.005 kept it within 1 % while still raising the settling energy at the attractors 51x
    default_unlearn_rate = 0.005

    learning_rate: float = 1e-3
    optimizer: torch.optim.Optimizer | None = None

    def unlearn_parameters(self) -> Iterable[torch.nn.Parameter]:
        raise NotImplementedError

    def differentiable_energy(self, clip: torch.Tensor, burn_in: int) -> torch.Tensor:
        return settling_energy(self.differentiable_step, self.init_state, clip, burn_in)

    def _preconditioners(self) -> dict[int, torch.Tensor]:
        """sqrt(v_hat) + eps per parameter (by id) from an Adam-style training optimiser's state."""
        out: dict[int, torch.Tensor] = {}
        opt = self.optimizer
        if opt is None:
            return out
        for group in opt.param_groups:
            beta2, eps = group.get("betas", (0.9, 0.999))[1], group.get("eps", 1e-8)
            for p in group["params"]:
                st = opt.state.get(p, {})
                if "exp_avg_sq" in st and "step" in st:
                    step = float(st["step"])
                    if step > 0:
                        out[id(p)] = (st["exp_avg_sq"] / (1 - beta2 ** step)).sqrt().add_(eps)
        return out

    def unlearn_step(self, clip: torch.Tensor, rate: float, burn_in: int) -> None:
        """One gradient-ascent step on the settling energy at ``rate * learning_rate``.

        The objective is E on the scale of the training loss (squared errors summed over pixels and
        over the scored steps, mean over streams); the step is preconditioned by the training
        optimiser's second moments (Adam's sqrt(v_hat) + eps, without its first moment) and bounded
        like an Adam step (each element moves at most ``rate * learning_rate``): about what one
        training step would do with the sign reversed. Parameters the optimiser has no statistics
        for (or no optimiser) take a plain gradient step.
        """
        scale = clip[0, 0].numel() * scored_steps(clip.shape[1], burn_in)
        self.ascend(lambda: self.differentiable_energy(clip, burn_in).mean() * scale, rate)

    def ascend(self, objective: Callable[[], torch.Tensor], rate: float) -> None:
        """One gradient-ascent step on the scalar ``objective()`` over ``unlearn_parameters``, preconditioned by
        the training optimiser's second moments and bounded like an Adam step, at ``rate * learning_rate``."""
        params = [p for p in self.unlearn_parameters() if p.requires_grad]
        with torch.enable_grad():
            grads = torch.autograd.grad(objective(), params, allow_unused=True)
        pre = self._preconditioners()
        lr = rate * self.learning_rate
        with torch.no_grad():
            for p, g in zip(params, grads):
                if g is not None:
                    d = pre.get(id(p))
                    p.add_(g if d is None else (g / d).clamp_(-1.0, 1.0), alpha=lr)
