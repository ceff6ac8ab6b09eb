"""PredNet behind the shared stepping interface (predvis.runtime.stepping).

``step(frame_t, state)`` runs the bottom-up half of time step t on the frame (Ahat_l(t) was made
from frames < t; E_l(t) compares it with A_l(t)) and then the top-down half of step t + 1, so the
returned prediction is Ahat_0(t + 1): the network's prediction of the *next* frame, made from
frames <= t. Chained steps compute exactly :meth:`PredNet.forward`'s time steps.

layer_errors: ``L0`` .. ``L{n-1}``, the mean of E_l over its units (both signs) per stream at this
step (docs/metrics.md, prednet_error); empty on the first step, where the prediction came from
the zero state. Internals for figures: ``R/Ll`` and ``E/Ll`` (channel means, (B, H_l, W_l)) and
``Ahat/L0`` (the prediction of this frame).

Unlearning (``predvis sleep``): one gradient-ascent step of the PredNet training loss on the
attractor clip (steps from ``burn_in`` on), at ``rate`` x the training rate, preconditioned and
bounded like the training Adam step (:class:`predvis.runtime.unlearning.GradientUnlearning`).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from predvis.backends.prednet.model import PATHWAYS, PredNet, PredNetState, prednet_loss
from predvis.runtime.stepping import StepOutput
from predvis.runtime.unlearning import GradientUnlearning


@dataclass
class StepperState:
    """R_l(t + 1) and c_l(t + 1) from the top-down pass already run for the next frame; ``first``:
    no frame has been read yet."""

    r: list[torch.Tensor]
    c: list[torch.Tensor]
    first: bool


class PredNetStepper(GradientUnlearning):
    pathways = PATHWAYS

    def __init__(self, model: PredNet, frame_shape: tuple[int, int, int], layer_weights: list[float],
                 learning_rate: float = 1e-3, optimizer: torch.optim.Optimizer | None = None):
        self.model = model.eval()
        self.frame_shape = tuple(frame_shape)
        self.layer_weights = torch.tensor(layer_weights, dtype=torch.float32)
        self.learning_rate = learning_rate
        self.optimizer = optimizer

    @property
    def disabled(self) -> set[str]:
        return self.model.disabled

    @disabled.setter
    def disabled(self, names: set[str]) -> None:
        self.model.disabled = set(names)

    @property
    def device(self) -> torch.device:
        return self.model.device

    def set_learning(self, enabled: bool) -> None:
        """PredNet does not learn online: nothing to switch."""

    def init_state(self, batch: int) -> StepperState:
        _, h, w = self.frame_shape
        r, c = self.model.top_down(self.model.zero_state(batch, h, w))
        return StepperState(r, c, True)

    @torch.no_grad()
    def step(self, frame: torch.Tensor, state: StepperState) -> StepOutput:
        return self.differentiable_step(frame, state)

    def differentiable_step(self, frame: torch.Tensor, state: StepperState) -> StepOutput:
        """:meth:`step` in the caller's autograd mode."""
        model = self.model
        ahat, e = model.bottom_up(frame, state.r)
        r, c = model.top_down(PredNetState(state.r, state.c, e))
        prediction = model.predict_layer(0, r[0])
        errors = {} if state.first else {f"L{l}": el.detach().flatten(1).mean(1) for l, el in enumerate(e)}
        internals = {"Ahat/L0": ahat[0].detach()}
        for l in range(model.n_layers):
            internals[f"R/L{l}"] = state.r[l].detach().mean(1)
            internals[f"E/L{l}"] = e[l].detach().mean(1)
        return StepOutput(prediction, StepperState(r, c, False), errors, internals)

    # unlearning ------------------------------------------------------------------------
    def unlearn_parameters(self):
        return self.model.parameters()

    def unlearn_step(self, clip: torch.Tensor, rate: float, burn_in: int) -> None:
        """One ascent step of the PredNet loss on ``clip`` (B, T, C, H, W), steps >= ``burn_in`` scored."""
        self.ascend(lambda: prednet_loss(self.model(clip)[1], self.layer_weights, first=burn_in).mean(), rate)
