"""GOPC-1 / VAE-1 behind the shared stepping interface.

One step reads frame x_t, infers r_t = mu_t (posterior mean; GOPC-1 by the gradient step at the
origin with prior p_t, VAE-1 by its encoder), feeds r_t to the prior LSTM and predicts the next
frame as G(mean of p_{t+1}). The pathway ``prior`` switched off replaces every p_t by N(0, I),
so inference gets no temporal context and the prediction falls back to G(0).

Unlearning (``predvis sleep``): gradient ascent of the settling energy, preconditioned like Adam
(:class:`predvis.runtime.unlearning.GradientUnlearning`), through inference, prior and decoder.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from predvis.backends.gopc.model import GopcModel, standard_normal
from predvis.runtime.stepping import StepOutput
from predvis.runtime.unlearning import GradientUnlearning, settling_energy


@dataclass
class GopcState:
    lstm: Any
    prior: tuple[torch.Tensor, torch.Tensor]
    last_prediction: torch.Tensor | None


class GopcStepper(GradientUnlearning):
    pathways = ("prior",)

    def __init__(self, model: GopcModel, learning_rate: float = 1e-3, optimizer: torch.optim.Optimizer | None = None):
        self.model = model.eval()
        cfg = model.cfg
        self.frame_shape = (cfg.channels, cfg.image_size, cfg.image_size)
        self.disabled: set[str] = set()
        self.learning_rate = learning_rate  # the training rate; unlearning steps are a fraction of it
        self.optimizer = optimizer  # the training optimiser: its statistics precondition unlearning
        self._origin = None  # origin Jacobians, recomputed only when a weight changed
        self._origin_key = None

    @property
    def device(self) -> torch.device:
        return self.model.decoder.fc.weight.device

    def init_state(self, batch: int) -> GopcState:
        r_dim = self.model.cfg.r_dim
        return GopcState(
            self.model.prior.init_state(batch, self.device),
            standard_normal(batch, r_dim, self.device),
            None,
        )

    def set_learning(self, enabled: bool) -> None:
        """GOPC-1 / VAE-1 do not learn online: nothing to switch."""

    def _uses_origin(self) -> bool:
        return self.model.cfg.kind == "gopc1" and self.model.cfg.inner == "jacobian"

    def _cached_origin(self):
        """The origin Jacobians for fixed weights; recomputed when any parameter was written
        (in-place writes bump a tensor's version: optimiser steps, load_state_dict)."""
        if not self._uses_origin():
            return None
        key = tuple(p._version for p in self.model.parameters())
        if self._origin is None or key != self._origin_key:
            with torch.no_grad():
                self._origin = tuple(t.detach() for t in self.model.origin_jacobians())
            self._origin_key = key
        return self._origin

    @torch.no_grad()
    def step(self, frame: torch.Tensor, state: GopcState) -> StepOutput:
        return self._forward(frame, state, self._cached_origin())

    def differentiable_step(self, frame: torch.Tensor, state: GopcState) -> StepOutput:
        """:meth:`step` in the caller's autograd mode (differentiable in the weights)."""
        return self._forward(frame, state, self.model.origin_jacobians() if self._uses_origin() else None)

    def unlearn_parameters(self):
        return self.model.parameters()

    def differentiable_energy(self, clip: torch.Tensor, burn_in: int) -> torch.Tensor:
        """Settling energy with gradients; the origin Jacobians are computed once per clip."""
        model = self.model
        was_training = model.training
        model.train(True)  # inner gradients of the 'batched' / 'reference' modes keep their graph
        try:
            origin = model.origin_jacobians() if self._uses_origin() else None
            step = lambda f, s: self._forward(f, s, origin)  # noqa: E731
            return settling_energy(step, self.init_state, clip, burn_in)
        finally:
            model.train(was_training)

    def _forward(self, frame: torch.Tensor, state: GopcState, origin) -> StepOutput:
        model = self.model
        b = frame.shape[0]
        use_prior = "prior" not in self.disabled
        prior = state.prior if use_prior else standard_normal(b, model.cfg.r_dim, self.device)
        mu, _ = model.infer_frame(frame, prior, origin)
        if use_prior:
            lstm, next_prior = model.prior.step(mu, state.lstm)
        else:
            lstm, next_prior = state.lstm, standard_normal(b, model.cfg.r_dim, self.device)
        prediction = model.decoder(next_prior[0])
        errors = {}
        if state.last_prediction is not None:
            errors["pixel_mse"] = ((state.last_prediction - frame) ** 2).flatten(1).mean(1).detach()
        with torch.no_grad():
            internals = {"reconstruction": model.decoder(mu), "latent": mu.detach(),
                         "prior_mean": next_prior[0].detach()}
        return StepOutput(prediction, GopcState(lstm, next_prior, prediction), errors, internals)
