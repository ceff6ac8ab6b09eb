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

- Gradient-trained models (GOPC-1, VAE-1, ...) use :class:`GradientUnlearning`: one step of Adam,
  their training optimiser, on ``-E`` at ``rate`` times their training learning rate.
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


class GradientUnlearning:
    """Mixin for steppers of models trained by gradient descent.

    The stepper provides ``init_state``, ``differentiable_step(frame, state)`` (``step`` in the
    caller's autograd mode), ``unlearn_parameters()`` and ``learning_rate`` (the training rate); it
    may override :meth:`differentiable_energy` to share work across the steps of a clip.
    """

    learning_rate: float = 1e-3
    _unlearn_optimizer: torch.optim.Optimizer | None = None

    def unlearn_parameters(self) -> Iterable[torch.nn.Parameter]:
        raise NotImplementedError

    def differentiable_energy(self, clip: torch.Tensor, burn_in: int) -> torch.Tensor:
        return settling_energy(self.differentiable_step, self.init_state, clip, burn_in)

    def unlearn_step(self, clip: torch.Tensor, rate: float, burn_in: int) -> None:
        """One Adam step on ``-mean E(clip)`` at ``rate * learning_rate`` (gradient ascent).

        The optimiser's moments persist across calls (a sleep run is one optimisation); gradients
        are cleared afterwards so they cannot leak into a later training step.
        """
        params = [p for p in self.unlearn_parameters() if p.requires_grad]
        lr = rate * self.learning_rate
        if self._unlearn_optimizer is None:
            self._unlearn_optimizer = torch.optim.Adam(params, lr=lr)
        for group in self._unlearn_optimizer.param_groups:
            group["lr"] = lr
        self._unlearn_optimizer.zero_grad(set_to_none=True)
        with torch.enable_grad():
            energy = self.differentiable_energy(clip, burn_in).mean()
            (-energy).backward()
        self._unlearn_optimizer.step()
        self._unlearn_optimizer.zero_grad(set_to_none=True)
