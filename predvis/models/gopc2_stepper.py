"""GOPC-2 behind the shared stepping interface.

One step reads x_t, infers r_t = mu_t (GOPC-1's gradient step at the origin with prior p_t), takes the
inner gradient step on r^H (from the second frame on), and predicts the next frame as
G(mean of p_{t+1}) = G(V(r_t; H(r^H))).

Pathways: ``prior`` off -> every p_t is N(0, I) (no temporal context, prediction G(0), r^H idle);
``hyper`` off -> r^H is held at its origin 0, so the transition is always V(.; H(0)).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

from predvis.models.gopc import standard_normal
from predvis.models.gopc2 import Gopc2Model
from predvis.models.stepping import StepOutput


@dataclass
class Gopc2State:
    hyper: torch.Tensor                      # r^H (B, h_dim)
    latent: torch.Tensor | None              # r_{t-1} (B, r_dim), None before the first frame
    prior: tuple[torch.Tensor, torch.Tensor]  # p_t
    last_prediction: torch.Tensor | None


class Gopc2Stepper:
    pathways = ("prior", "hyper")

    def __init__(self, model: Gopc2Model):
        self.model = model.eval()
        cfg = model.cfg
        self.frame_shape = (cfg.channels, cfg.image_size, cfg.image_size)
        self.disabled: set[str] = set()
        self._origin = None  # origin Jacobians and mixture bases, computed once: the weights are fixed
        self._bases = None

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

    @torch.no_grad()
    def step(self, frame: torch.Tensor, state: Gopc2State) -> StepOutput:
        model = self.model
        b = frame.shape[0]
        use_prior = "prior" not in self.disabled
        use_hyper = "hyper" not in self.disabled
        if self._origin is None:
            if model.cfg.inner == "jacobian":
                self._origin = tuple(t.detach() for t in model.origin_jacobians())
            bases = model.transition.bases_now()
            self._bases = None if bases is None else bases.detach()
        prior = state.prior if use_prior else standard_normal(b, model.cfg.r_dim, self.device, self.dtype)
        mu, _ = model.infer_frame(frame, prior, self._origin)
        mu = mu.detach()
        hyper = state.hyper if use_hyper else model.hyper_origin(b, self.device, self.dtype)
        errors = {}
        if state.last_prediction is not None:
            errors["pixels"] = ((state.last_prediction - frame) ** 2).flatten(1).mean(1)
        if state.latent is not None:  # vs the prior mean used (0 when the prior is off)
            errors["latent"] = ((mu - prior[0]) ** 2).mean(1)
            if use_prior and use_hyper:
                hyper = model.hyper_step(hyper, state.latent, mu, create_graph=False, bases=self._bases)
        if use_prior:
            next_prior = tuple(v.detach() for v in model.next_prior(mu, hyper, self._bases))
        else:
            next_prior = standard_normal(b, model.cfg.r_dim, self.device, self.dtype)
        prediction = model.decoder(next_prior[0]).detach()
        internals = {
            "reconstruction": model.decoder(mu).detach(),
            "latent": mu,
            "prior_mean": next_prior[0],
            "hyper": hyper,
        }
        return StepOutput(prediction, Gopc2State(hyper, mu, next_prior, prediction), errors, internals)
