"""GOPC-1 / VAE-1 behind the shared stepping interface.

One step reads frame x_t, infers r_t = mu_t (posterior mean; GOPC-1 by the gradient step at the
origin with prior p_t, VAE-1 by its encoder), feeds r_t to the prior LSTM and predicts the next
frame as G(mean of p_{t+1}). The pathway ``prior`` switched off replaces every p_t by N(0, I),
so inference gets no temporal context and the prediction falls back to G(0).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from predvis.models.gopc import GopcModel, standard_normal
from predvis.models.stepping import StepOutput


@dataclass
class GopcState:
    lstm: Any
    prior: tuple[torch.Tensor, torch.Tensor]
    last_prediction: torch.Tensor | None


class GopcStepper:
    pathways = ("prior",)

    def __init__(self, model: GopcModel):
        self.model = model.eval()
        cfg = model.cfg
        self.frame_shape = (cfg.channels, cfg.image_size, cfg.image_size)
        self.disabled: set[str] = set()
        self._origin = None  # origin Jacobians, computed once: the weights are fixed here

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

    @torch.no_grad()
    def step(self, frame: torch.Tensor, state: GopcState) -> StepOutput:
        model = self.model
        b = frame.shape[0]
        use_prior = "prior" not in self.disabled
        prior = state.prior if use_prior else standard_normal(b, model.cfg.r_dim, self.device)
        if self._origin is None and model.cfg.kind == "gopc1" and model.cfg.inner == "jacobian":
            self._origin = tuple(t.detach() for t in model.origin_jacobians())
        mu, _ = model.infer_frame(frame, prior, self._origin)
        mu = mu.detach()
        if use_prior:
            lstm, next_prior = model.prior.step(mu, state.lstm)
        else:
            lstm, next_prior = state.lstm, standard_normal(b, model.cfg.r_dim, self.device)
        prediction = model.decoder(next_prior[0]).detach()
        errors = {}
        if state.last_prediction is not None:
            errors["pixels"] = ((state.last_prediction - frame) ** 2).flatten(1).mean(1)
        internals = {
            "reconstruction": model.decoder(mu).detach(),
            "latent": mu,
            "prior_mean": next_prior[0].detach(),
        }
        return StepOutput(prediction, GopcState(lstm, next_prior, prediction), errors, internals)
