"""GOPC-2 behind the shared stepping interface.

One step reads x_t, infers r_t = mu_t (GOPC-1's gradient step at the origin with prior p_t), takes the
inner gradient step on r^H (from the second frame on), moves r^H by its dynamics D (``hyper_dynamics``),
and predicts the next frame as G(mean of p_{t+1}) = G(V(r_t; H(r^H))).

Pathways: ``prior`` off -> every p_t is N(0, I) (no temporal context, prediction G(0), r^H idle);
``hyper`` off -> r^H is held at its origin 0, so the transition is always V(.; H(0)).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from predvis.backends.gopc.model import standard_normal
from predvis.backends.gopc.hierarchy import Gopc2Model
from predvis.runtime.stepping import StepOutput
from predvis.runtime.unlearning import GradientUnlearning, settling_energy


@dataclass
class Gopc2State:
    hyper: torch.Tensor                      # r^H (B, h_dim) that generated p_t
    latent: torch.Tensor | None              # r_{t-1} (B, r_dim), None before the first frame
    prior: tuple[torch.Tensor, torch.Tensor]  # p_t
    last_prediction: torch.Tensor | None


class Gopc2Stepper(GradientUnlearning):
    pathways = ("prior", "hyper")

    def __init__(self, model: Gopc2Model, learning_rate: float = 1e-3, optimizer: torch.optim.Optimizer | None = None):
        self.model = model.eval()
        cfg = model.cfg
        self.frame_shape = (cfg.channels, cfg.image_size, cfg.image_size)
        self.disabled: set[str] = set()
        self.learning_rate = learning_rate  # the training rate; unlearning (predvis sleep) is a fraction of it
        self.optimizer = optimizer  # the training optimiser: its statistics precondition unlearning
        self._origin = None  # origin Jacobians and mixture bases, recomputed only when a weight changed
        self._bases = None
        self._cache_key = None

    @property
    def device(self) -> torch.device:
        return self.model.decoder.fc.weight.device

    @property
    def dtype(self) -> torch.dtype:
        return self.model.decoder.fc.weight.dtype

    def init_state(self, batch: int) -> Gopc2State:
        return Gopc2State(
            self.model.hyper_origin(batch, self.device, self.dtype), None,
            standard_normal(batch, self.model.cfg.r_dim, self.device, self.dtype), None,
        )

    def set_learning(self, enabled: bool) -> None:
        """GOPC-2 does not learn its weights online (r^H is inference, not learning)."""

    def _fixed_parts(self):
        """(origin Jacobians or None, mixture bases or None) in the caller's autograd mode."""
        model = self.model
        origin = model.origin_jacobians() if model.cfg.inner == "jacobian" else None
        return origin, model.transition.bases_now()

    @torch.no_grad()
    def step(self, frame: torch.Tensor, state: Gopc2State) -> StepOutput:
        key = tuple(p._version for p in self.model.parameters())  # optimiser steps bump versions
        if self._cache_key != key:
            origin, bases = self._fixed_parts()
            self._origin = None if origin is None else tuple(t.detach() for t in origin)
            self._bases = None if bases is None else bases.detach()
            self._cache_key = key
        return self._forward(frame, state, self._origin, self._bases)

    def differentiable_step(self, frame: torch.Tensor, state: Gopc2State) -> StepOutput:
        """:meth:`step` in the caller's autograd mode (differentiable in the weights)."""
        return self._forward(frame, state, *self._fixed_parts())

    def unlearn_parameters(self):
        return self.model.parameters()

    def differentiable_energy(self, clip: torch.Tensor, burn_in: int) -> torch.Tensor:
        """Settling energy with gradients (predvis sleep); fixed parts computed once per clip."""
        was_training = self.model.training
        self.model.train(True)  # inner gradients keep their graph
        try:
            origin, bases = self._fixed_parts()
            return settling_energy(lambda f, s: self._forward(f, s, origin, bases), self.init_state, clip, burn_in)
        finally:
            self.model.train(was_training)

    def _forward(self, frame: torch.Tensor, state: Gopc2State, origin, bases) -> StepOutput:
        model = self.model
        b = frame.shape[0]
        use_prior = "prior" not in self.disabled
        use_hyper = "hyper" not in self.disabled
        grad = torch.is_grad_enabled()
        prior = state.prior if use_prior else standard_normal(b, model.cfg.r_dim, self.device, self.dtype)
        mu, _ = model.infer_frame(frame, prior, origin)
        hyper = state.hyper if use_hyper else model.hyper_origin(b, self.device, self.dtype)
        errors = {}
        if state.last_prediction is not None:
            errors["pixel_mse"] = ((state.last_prediction - frame) ** 2).flatten(1).mean(1)
        if state.latent is not None:  # vs the prior mean used (0 when the prior is off)
            errors["latent"] = ((mu - prior[0]) ** 2).mean(1)
            if use_prior and use_hyper:
                hyper = model.hyper_step(hyper, state.latent, mu, create_graph=grad, bases=bases)
        inferred = hyper  # r^H after the inner step; with hyper_dynamics it then moves on to frame t + 1
        if use_prior:
            if use_hyper:
                hyper = model.propagate(hyper, mu)
            next_prior = model.next_prior(mu, hyper, bases)
        else:
            next_prior = standard_normal(b, model.cfg.r_dim, self.device, self.dtype)
        prediction = model.decoder(next_prior[0])
        with torch.no_grad():
            internals = {
                "reconstruction": model.decoder(mu),
                "latent": mu.detach(),
                "prior_mean": next_prior[0].detach(),
                "hyper": inferred.detach(),
            }
        return StepOutput(prediction, Gopc2State(hyper, mu, next_prior, prediction), errors, internals)
