"""GOPC-2: hierarchical gradient-origin predictive coding (docs/models.md, "GOPC-2").

Lower level, exactly GOPC-1's inference (reused from predvis.backends.gopc.model): per frame t

    z_t = -grad_{z0} [ ||x_t - G(r0)||^2 + KL(q(r | z0) || p_t) ]   at z0 = 0
    (mu_t, logvar_t) = P(z_t),   r_t = mu_t + sigma_t eps_t

Higher level: a latent r^H (B, h_dim), starting at its origin 0 in every sequence, generates the
lower transition through a hypernetwork H:

    r_hat_t = V(r_{t-1}; H(r^H)) = A(r^H) r_{t-1} + b(r^H)          (then the output stabiliser)
    p_t = N(r_hat_t, exp(prior_logvar))                              (p_0 = N(0, I))

After each r_t (t >= 1), r^H takes one gradient step:

    r^H <- r^H - hyper_step * shape( grad_{r^H} [ ||r_t - r_hat_t||^2 + KL(q(r^H) || N(0, I)) ] )

(also after predicted frames, where r_t = r_hat_t, unless ``hyper_rollout`` is hold), with
q(r^H) = N(r^H, I) (only the mean is inferred, so the KL's gradient is r^H itself) and ``shape`` the
inner-gradient stabiliser (identity, per-sample norm clipping or normalisation). With
``hyper_linear`` > 0, b(r^H) has a linear part L r^H, so the step adds hyper_step * 2 L^T (r_t - r_hat_t):
r^H is a leaky integrator of the transition's errors (leak hyper_step, from the KL pull).
With ``hyper_dynamics`` > 0, r^H also moves between frames: r^H <- r^H + D([r^H, r_t]) after its inner
step, before it generates p_{t+1}.

Hypernetworks (``hyper``):
- ``full``: H emits every entry of A (r x r) and b (r) from r^H (A starts at the identity).
- ``mixture``: K learned bases (A_k, b_k); A = sum_k w_k A_k, b = sum_k w_k b_k with mixture weights
  w = H(r^H) from a small network (dynamic predictive coding, Jiang & Rao 2022/2024).

Training loss per sequence: sum_t ||x_t - G(r_t)||^2 + kl_weight KL(q(r_t) || p_t)
+ kl_weight KL(q(r^H_T) || N(0, I)), back-propagated through both inner gradient steps.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn

from predvis.errors import ConfigError
from predvis.backends.gopc.model import (
    Decoder, GopcModel, GopcModelConfig, Posterior, SequenceOutput, standard_normal,
)

STABILISERS = ("none", "sigmoid", "layernorm", "tanh", "clip", "normalise", "softmax", "spectral", "spectral_svd")


def parse_stabiliser(text: str) -> set[str]:
    """'clip+softmax' -> {'clip', 'softmax'}; 'none' -> set(); unknown names raise ConfigError."""
    names = {n.strip() for n in text.split("+") if n.strip()}
    bad = sorted(names - set(STABILISERS))
    if bad or not names:
        raise ConfigError(
            f"model.stabiliser: unknown '{'+'.join(bad) or text}'; join any of {', '.join(STABILISERS)} with '+'"
        )
    if len(names & {"sigmoid", "layernorm", "tanh"}) > 1:
        raise ConfigError("model.stabiliser: choose one of sigmoid, layernorm, tanh on the predicted vector")
    if {"spectral", "spectral_svd"} <= names:
        raise ConfigError("model.stabiliser: choose spectral or spectral_svd, not both")
    if {"clip", "normalise"} <= names:
        raise ConfigError("model.stabiliser: choose clip or normalise for the inner gradient, not both")
    return names - {"none"}


@dataclass
class Gopc2ModelConfig(GopcModelConfig):
    """GOPC-1's lower level plus the higher latent r^H. ``prior_hidden``, ``prior_layers`` and
    ``enc_channels`` are inherited but unused (there is no LSTM and no encoder)."""

    kind: Literal["gopc2"] = "gopc2"
    h_dim: int = 8                    # size of r^H
    hyper: Literal["mixture", "full"] = "mixture"
    mixture: int = 4                  # K transition bases (hyper=mixture)
    hyper_hidden: int = 32            # hidden width of the hypernetwork
    hyper_step: float = 0.3           # step size of the inner gradient step on r^H (< 1: r^H keeps a memory)
    hyper_clip: float = 1.0           # per-sample norm bound of that gradient (stabiliser clip)
    stabiliser: str = "clip+softmax+spectral+tanh"   # '+'-joined names from STABILISERS; 'none' = the thesis
    tanh_bound: float = 5.0           # stabiliser tanh: r_hat = c tanh(v / c), |r_hat| < c per dimension
    prior_logvar: float = 0.0         # initial log-variance of p_t around r_hat_t (learned, one per dim)
    basis_init: float = 0.01          # mixture bases start at I + basis_init * N(0, 1)
    offset_init: float = 0.0          # mixture offsets b_k start at offset_init * N(0, 1) (0: zeros)
    hyper_linear: float = 0.5         # > 0: b(r^H) gains a linear part L r^H, L (r, h) from hyper_linear * N(0, 1) / sqrt(h)
    hyper_rollout: Literal["infer", "hold"] = "infer"  # predicted frames: r^H keeps its inner step (infer) or is held
    hyper_slow: int = 0               # the last hyper_slow entries of r^H step by hyper_slow_step (a slower memory)
    hyper_slow_step: float = 0.05     # their inner step size (and so their leak)
    hyper_dynamics: int = 32          # > 0: r^H moves between frames, r^H + D([r^H, r_t]), D an MLP this wide

    def validate(self) -> None:
        super().validate()
        if self.hyper_dynamics < 0:
            raise ConfigError(f"model.hyper_dynamics: must be >= 0 (0: r^H does not move between frames), "
                              f"got {self.hyper_dynamics}")
        for key in ("h_dim", "mixture", "hyper_hidden"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"model.{key}: must be > 0, got {getattr(self, key)}")
        if self.hyper_step < 0 or self.hyper_slow_step < 0:
            raise ConfigError(f"model.hyper_step / hyper_slow_step: must be >= 0, got {self.hyper_step}, "
                              f"{self.hyper_slow_step}")
        if not 0 <= self.hyper_slow <= self.h_dim:
            raise ConfigError(f"model.hyper_slow: must be in [0, h_dim = {self.h_dim}], got {self.hyper_slow}")
        if self.basis_init < 0 or self.offset_init < 0 or self.hyper_linear < 0:
            raise ConfigError("model.basis_init / offset_init / hyper_linear: must be >= 0")
        if self.tanh_bound <= 0:
            raise ConfigError(f"model.tanh_bound: must be > 0, got {self.tanh_bound}")
        if self.hyper_clip <= 0:
            raise ConfigError(f"model.hyper_clip: must be > 0, got {self.hyper_clip}")
        if self.origin_noise:
            raise ConfigError("model.origin_noise: not supported by GOPC-2 (r0 = mu0)")
        parse_stabiliser(self.stabiliser)

    @property
    def stabilisers(self) -> set[str]:
        return parse_stabiliser(self.stabiliser)


@dataclass
class Gopc2Output(SequenceOutput):
    """SequenceOutput plus hyper: (B, T, h_dim) r^H after frame t; hyper_kl: (B,) KL of the last r^H;
    trans_err: (B, T) ||r_t - r_hat_t||^2 (0 at t = 0)."""

    hyper: torch.Tensor = None
    hyper_kl: torch.Tensor = None
    trans_err: torch.Tensor = None

    def objective(self, kl_weight: float) -> torch.Tensor:
        """(B,) the lower level's objective plus kl_weight times the KL of the last r^H."""
        return super().objective(kl_weight) + kl_weight * self.hyper_kl


class Transition(nn.Module):
    """V(r; H(r^H)) = A(r^H) r + b(r^H), followed by the output stabiliser (sigmoid / layernorm)."""

    def __init__(self, cfg: Gopc2ModelConfig):
        super().__init__()
        self.cfg = cfg
        self.stab = cfg.stabilisers
        r, h, k = cfg.r_dim, cfg.h_dim, cfg.mixture
        if cfg.hyper == "full":
            self.net = nn.Sequential(nn.Linear(h, cfg.hyper_hidden), nn.ELU(), nn.Linear(cfg.hyper_hidden, r * r + r))
            with torch.no_grad():  # A starts at the identity, b at 0; r^H moves them a little
                self.net[-1].weight.mul_(0.1)
                self.net[-1].bias.zero_()
                self.net[-1].bias[: r * r].copy_(torch.eye(r).flatten())
        else:
            self.net = nn.Sequential(nn.Linear(h, cfg.hyper_hidden), nn.ELU(), nn.Linear(cfg.hyper_hidden, k))
            self.bases = nn.Parameter(torch.eye(r).expand(k, r, r) + cfg.basis_init * torch.randn(k, r, r))
            offsets = cfg.offset_init * torch.randn(k, r) if cfg.offset_init else torch.zeros(k, r)
            self.offsets = nn.Parameter(offsets)
            if "softmax" not in self.stab:
                with torch.no_grad():  # raw weights start summing to about 1, like the softmax
                    self.net[-1].bias.fill_(1.0 / k)
        self.norm = nn.LayerNorm(r) if "layernorm" in self.stab else None
        # linear read-out of r^H into the offset: the r^H gradient then holds L^T (r_t - r_hat_t), so
        # with hyper_step < 1 r^H integrates the transition's errors (a learned velocity-like state)
        self.linear = (nn.Parameter(cfg.hyper_linear * torch.randn(r, h) / h ** 0.5)
                       if cfg.hyper_linear > 0 else None)

    def bases_now(self) -> torch.Tensor | None:
        """Mixture bases, each divided by max(1, its spectral norm) with the stabiliser spectral;
        computed once per sequence (the weights do not change within one)."""
        if self.cfg.hyper != "mixture":
            return None
        if "spectral_svd" in self.stab:  # differentiates through the SVD: NaN when singular values coincide
            sigma = torch.linalg.matrix_norm(self.bases, ord=2)
        elif "spectral" in self.stab:  # sigma = u^T A v with the top singular vectors held fixed: the
            with torch.no_grad():      # same value, gradient u v^T, finite even for A ~ I
                u, _, vh = torch.linalg.svd(self.bases)
            sigma = torch.einsum("ki,kij,kj->k", u[..., 0], self.bases, vh[..., 0, :])
        else:
            return self.bases
        return self.bases / torch.clamp(sigma, min=1.0)[:, None, None]

    def weights(self, h: torch.Tensor) -> torch.Tensor:
        """Mixture weights (B, K)."""
        logits = self.net(h)
        return torch.softmax(logits, -1) if "softmax" in self.stab else logits

    def generated(self, h: torch.Tensor, bases: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """A (B, r, r) and b (B, r) for r^H (B, h_dim)."""
        r = self.cfg.r_dim
        if self.cfg.hyper == "full":
            out = self.net(h)
            a = out[:, : r * r].view(-1, r, r)
            if self.stab & {"spectral", "spectral_svd"}:  # Frobenius >= spectral norm: bounds the map by 1
                a = a / torch.clamp(torch.linalg.matrix_norm(a) / r ** 0.5, min=1.0)[:, None, None]
            b = out[:, r * r:]
        else:
            w = self.weights(h)
            bases = self.bases_now() if bases is None else bases
            a, b = torch.einsum("bk,kij->bij", w, bases), w @ self.offsets
        return a, b if self.linear is None else b + h @ self.linear.T

    def forward(self, r: torch.Tensor, h: torch.Tensor, bases: torch.Tensor | None = None) -> torch.Tensor:
        a, b = self.generated(h, bases)
        out = torch.bmm(a, r.unsqueeze(-1)).squeeze(-1) + b
        if "sigmoid" in self.stab:
            return torch.sigmoid(out)
        if "tanh" in self.stab:  # near the identity for |v| << c; cuts the inference loop's growth
            c = self.cfg.tanh_bound
            return c * torch.tanh(out / c)
        if self.norm is not None:
            return self.norm(out)
        return out


class HyperDynamics(nn.Module):
    """D: r^H's own motion between frames, r^H' = r^H + D([r^H, r_t]) (B, h_dim), an MLP whose last layer
    starts at zero (so a new model's r^H does not move until training teaches it to)."""

    def __init__(self, cfg: Gopc2ModelConfig):
        super().__init__()
        self.net = nn.Sequential(nn.Linear(cfg.h_dim + cfg.r_dim, cfg.hyper_dynamics), nn.Tanh(),
                                 nn.Linear(cfg.hyper_dynamics, cfg.h_dim))
        with torch.no_grad():
            self.net[-1].weight.zero_()
            self.net[-1].bias.zero_()

    def forward(self, h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        return h + self.net(torch.cat([h, r], -1))


class Gopc2Model(GopcModel):
    """GOPC-2 on frames (C, S, S) in [0, 1]. Reuses GopcModel's decoder, posterior and gradient-origin
    inference of r_t; replaces its LSTM prior by the transition V generated from r^H."""

    def __init__(self, cfg: Gopc2ModelConfig):
        nn.Module.__init__(self)  # GopcModel's parts minus the LSTM prior and the encoder
        self.cfg = cfg
        self.decoder = Decoder(cfg.r_dim, cfg.channels, cfg.image_size, cfg.dec_channels, cfg.init_pixel)
        self.posterior = Posterior(cfg.z_dim, cfg.post_hidden, cfg.r_dim, cfg.init_logvar)
        self.transition = Transition(cfg)
        self.dynamics = HyperDynamics(cfg) if cfg.hyper_dynamics else None
        self.prior_logvar = nn.Parameter(torch.full((cfg.r_dim,), float(cfg.prior_logvar)))
        self.encoder = None
        self.prior = None
        self.use_prior = True   # pathway 'prior': off -> p_t = N(0, I), no transition
        self.use_hyper = True   # pathway 'hyper': off -> r^H held at its origin 0

    # ----------------------------------------------------------------- the higher level
    def hyper_origin(self, batch: int, device, dtype=torch.float32) -> torch.Tensor:
        return torch.zeros(batch, self.cfg.h_dim, device=device, dtype=dtype)

    def hyper_energy(self, h: torch.Tensor, r_prev: torch.Tensor, r: torch.Tensor, bases=None) -> torch.Tensor:
        """Per-sample ||r_t - V(r_{t-1}; H(r^H))||^2 + KL(N(r^H, I) || N(0, I)) -> (B,)."""
        err = ((r - self.transition(r_prev, h, bases)) ** 2).sum(-1)
        return err + 0.5 * (h ** 2).sum(-1)

    def hyper_grad(self, h: torch.Tensor, r_prev: torch.Tensor, r: torch.Tensor, create_graph: bool,
                   bases=None) -> torch.Tensor:
        """grad_{r^H} of the summed hyper energy (per sample, since samples are independent), the partial
        derivative with r_{t-1} and r_t held: r_t was inferred from a prior that r^H generated, so when r^H
        is part of a graph (training) a new node (a clone) is differentiated, not r^H itself, whose
        derivative would also run through r_t's inference."""
        with torch.enable_grad():
            h = h.clone() if h.requires_grad else h.detach().requires_grad_(True)
            energy = self.hyper_energy(h, r_prev, r, bases).sum()
            (grad,) = torch.autograd.grad(energy, h, create_graph=create_graph)
        return grad

    def hyper_step(self, h: torch.Tensor, r_prev: torch.Tensor, r: torch.Tensor, create_graph: bool,
                   bases=None) -> torch.Tensor:
        """One inner step on r^H after r_t has been inferred (the gradient shaped by the stabiliser)."""
        grad = self.hyper_grad(h, r_prev, r, create_graph, bases)
        stab = self.cfg.stabilisers
        if "clip" in stab or "normalise" in stab:
            norm = torch.sqrt((grad ** 2).sum(-1, keepdim=True) + 1e-12)
            c = self.cfg.hyper_clip
            grad = grad * (c / torch.clamp(norm, min=c) if "clip" in stab else 1.0 / norm)
        new = h - self.step_sizes(h) * grad
        return new if create_graph else new.detach()

    def step_sizes(self, h: torch.Tensor) -> float | torch.Tensor:
        """The inner step size on r^H: hyper_step, or with hyper_slow > 0 an (h_dim,) vector whose last
        hyper_slow entries are hyper_slow_step."""
        cfg = self.cfg
        if not cfg.hyper_slow:
            return cfg.hyper_step
        steps = torch.full((cfg.h_dim,), cfg.hyper_step, device=h.device, dtype=h.dtype)
        steps[cfg.h_dim - cfg.hyper_slow:] = cfg.hyper_slow_step
        return steps

    def propagate(self, h: torch.Tensor, r: torch.Tensor) -> torch.Tensor:
        """r^H carried to the next frame: unchanged, or r^H + D([r^H, r_t]) with ``hyper_dynamics``."""
        return h if self.dynamics is None else self.dynamics(h, r)

    def next_prior(self, r: torch.Tensor, h: torch.Tensor, bases=None) -> tuple[torch.Tensor, torch.Tensor]:
        mu = self.transition(r, h, bases)
        return mu, self.prior_logvar.expand_as(mu)

    # ----------------------------------------------------------------- running a sequence
    def run(
        self,
        x: torch.Tensor,
        sample: bool = True,
        eps: torch.Tensor | None = None,
        eps0: torch.Tensor | None = None,
        context: int | None = None,
        create_graph: bool | None = None,
    ) -> Gopc2Output:
        """As GopcModel.run; frames t >= context take r_t = mean of p_t. After such a frame r^H takes
        its inner step as after an observed one (``hyper_rollout`` infer: the prediction error is 0,
        so only the KL pull acts, and with ``hyper_step`` < 1 r^H decays towards its origin) or is
        held unchanged (hold). With ``hyper_dynamics`` r^H then moves to r^H + D([r^H, r_t]) before it
        generates p_{t+1} (and that is where the next inner step starts); ``hyper`` holds r^H after the
        inner step."""
        run = self.start_run(x, sample, eps, None, context, create_graph)
        b, device, dtype = x.shape[0], x.device, x.dtype
        bases = self.transition.bases_now()
        h = self.hyper_origin(b, device, dtype)
        prior = standard_normal(b, self.cfg.r_dim, device, dtype)
        r_prev = None
        zero = torch.zeros(b, device=device, dtype=dtype)
        latents, kls, prior_mus, hypers, errs = [], [], [], [], []
        for t in range(x.shape[1]):
            prior_mus.append(prior[0])
            r, kl = self.observe(run, t, prior)
            kls.append(kl)
            observed = t < run.observed
            if observed and r_prev is not None and self.use_prior:
                errs.append(((r - prior[0]) ** 2).sum(-1))
            else:
                errs.append(zero)
            if (r_prev is not None and self.use_prior and self.use_hyper
                    and (observed or self.cfg.hyper_rollout == "infer")):
                h = self.hyper_step(h, r_prev, r, run.create_graph, bases)
            latents.append(r)
            hypers.append(h)
            if self.use_prior:
                if self.use_hyper:
                    h = self.propagate(h, r)
                prior = self.next_prior(r, h, bases)
            r_prev = r
        r_all, recon, sse = self.decode_sequence(latents, x)
        hyper_kl = 0.5 * (hypers[-1] ** 2).sum(-1)
        return Gopc2Output(recon, sse, torch.stack(kls, 1), r_all, torch.stack(prior_mus, 1),
                           torch.stack(hypers, 1), hyper_kl, torch.stack(errs, 1))
