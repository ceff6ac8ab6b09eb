"""GOPC-1 (gradient-origin predictive coding) and its VAE-1 baseline.

Per frame t, GOPC-1 infers its latent with one gradient step from the origin z0 = 0:

    z_t = -grad_{z0} [ ||x_t - G(r0)||^2 + KL(q(r | z0) || p_t) ]      (per-sample sums)
    (mu_t, logvar_t) = P(z_t),   r_t = mu_t + exp(logvar_t / 2) * eps

where P is the posterior net, G the deconvolutional decoder and p_t = N(mu_p, exp(logvar_p))
the temporal prior computed by a stack of LSTM cells run over r_0 .. r_{t-1} (p_0 = N(0, I)).
At the origin r0 = mu(z0) (``origin_noise=False``, default) or a sample from q(r | z0).
VAE-1 replaces the gradient step by a convolutional encoder z_t = E(x_t).

Training loss per sequence: sum_t ||x_t - G(r_t)||^2 + kl_weight * KL(q(r_t | z_t) || p_t),
averaged over the batch and back-propagated through the inner gradient (double backward).

Three exact ways to compute the inner gradient (``inner``):
- ``reference``: per frame, autograd.grad(create_graph=True) through decoder and KL, literally.
- ``batched``: the decoder part of all B*T frames in one autograd.grad call (it does not depend
  on the prior); only the small KL part is sequential.
- ``jacobian`` (needs origin_noise=False): every sample shares the origin, so the decoder part is
  2 (G(mu0) - x)^T J with one Jacobian J = d G(mu(z)) / dz at z = 0, computed by forward-mode AD
  with z_dim tangents; the KL part goes through the posterior Jacobian M = dP/dz at 0 in closed
  form. The decoder's cost becomes independent of the batch size.
All three give the same latents and parameter gradients (tests check it).
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.func import jacfwd

from predvis.errors import ConfigError


@dataclass
class GopcModelConfig:
    """Architecture of GOPC-1 / VAE-1 (defaults: the full, thesis-sized model)."""

    kind: Literal["gopc1", "vae1"] = "gopc1"
    channels: int = 1
    image_size: int = 64
    z_dim: int = 320                 # gradient-origin vector (GOPC-1) / encoder output (VAE-1)
    r_dim: int = 256                 # latent r fed to the decoder and the prior
    post_hidden: int = 448           # hidden width of the posterior net P (0: a single linear map)
    prior_hidden: int = 320          # LSTM width of the prior
    prior_layers: int = 3            # stacked LSTM cells
    dec_channels: list[int] = field(default_factory=lambda: [36, 32, 16])   # at S/8, S/4, S/2
    enc_channels: list[int] = field(default_factory=lambda: [32, 32, 64, 64])  # VAE-1 stride-2 convs
    inner: Literal["jacobian", "batched", "reference"] = "jacobian"
    origin_noise: bool = False
    kl_weight: float = 1.0
    init_logvar: float = -4.0        # initial bias of the posterior's logvar outputs (sigma ~ 0.14)
    init_pixel: float = 0.1          # decoder output starts near this intensity (output bias = logit)

    def validate(self) -> None:
        for key in ("channels", "image_size", "z_dim", "r_dim", "prior_hidden", "prior_layers"):
            if getattr(self, key) <= 0:
                raise ConfigError(f"model.{key}: must be > 0, got {getattr(self, key)}")
        if self.post_hidden < 0:
            raise ConfigError(f"model.post_hidden: must be >= 0, got {self.post_hidden}")
        levels = len(self.dec_channels)
        if levels < 1 or self.image_size % (2 ** levels):
            raise ConfigError(
                f"model.image_size: {self.image_size} must be divisible by 2^{levels} (one per decoder level)"
            )
        if any(c <= 0 for c in self.dec_channels + self.enc_channels):
            raise ConfigError("model.dec_channels / enc_channels: every width must be > 0")
        if self.image_size % (2 ** len(self.enc_channels)):
            raise ConfigError(
                f"model.image_size: {self.image_size} must be divisible by 2^{len(self.enc_channels)} (encoder)"
            )
        if self.inner == "jacobian" and self.origin_noise:
            raise ConfigError("model.inner: 'jacobian' needs origin_noise=false; use 'batched' with origin noise")
        if self.kl_weight < 0:
            raise ConfigError(f"model.kl_weight: must be >= 0, got {self.kl_weight}")
        if not 0 < self.init_pixel < 1:
            raise ConfigError(f"model.init_pixel: must be in (0, 1), got {self.init_pixel}")


# --------------------------------------------------------------------------- building blocks

class Decoder(nn.Module):
    """G: r (N, r_dim) -> image (N, C, S, S) in (0, 1).

    Linear to (dec_channels[0], S/2^L, S/2^L), then L stride-2 4x4 transposed convolutions,
    ELU between (smooth, so the double backward sees a non-zero second derivative), sigmoid out.
    """

    def __init__(self, r_dim: int, channels: int, image_size: int, widths: list[int], init_pixel: float = 0.5):
        super().__init__()
        self.base = image_size // 2 ** len(widths)
        self.widths = list(widths)
        self.fc = nn.Linear(r_dim, widths[0] * self.base * self.base)
        layers: list[nn.Module] = []
        outs = list(widths[1:]) + [channels]
        for i, (cin, cout) in enumerate(zip(widths, outs)):
            layers.append(nn.ConvTranspose2d(cin, cout, 4, 2, 1))
            if i < len(widths) - 1:
                layers.append(nn.ELU())
        self.deconv = nn.Sequential(*layers)
        with torch.no_grad():
            layers[-1].bias.fill_(math.log(init_pixel / (1 - init_pixel)))

    def forward(self, r: torch.Tensor) -> torch.Tensor:
        h = F.elu(self.fc(r)).view(-1, self.widths[0], self.base, self.base)
        return torch.sigmoid(self.deconv(h))


class Encoder(nn.Module):
    """E (VAE-1): image (N, C, S, S) -> z (N, z_dim); stride-2 4x4 convolutions, ELU, linear."""

    def __init__(self, channels: int, image_size: int, widths: list[int], z_dim: int):
        super().__init__()
        layers: list[nn.Module] = []
        cin = channels
        for cout in widths:
            layers += [nn.Conv2d(cin, cout, 4, 2, 1), nn.ELU()]
            cin = cout
        self.conv = nn.Sequential(*layers)
        side = image_size // 2 ** len(widths)
        self.fc = nn.Linear(cin * side * side, z_dim)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc(self.conv(x).flatten(1))


class Posterior(nn.Module):
    """P: z (N, z_dim) -> (mu, logvar), each (N, r_dim). No normalisation layers (see docs)."""

    def __init__(self, z_dim: int, hidden: int, r_dim: int, init_logvar: float = 0.0):
        super().__init__()
        self.r_dim = r_dim
        if hidden:
            self.net = nn.Sequential(nn.Linear(z_dim, hidden), nn.ELU(), nn.Linear(hidden, 2 * r_dim))
        else:
            self.net = nn.Linear(z_dim, 2 * r_dim)
        last = self.net[-1] if hidden else self.net
        with torch.no_grad():
            last.bias[r_dim:].fill_(init_logvar)

    def forward(self, z: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        out = self.net(z)
        return out[..., : self.r_dim], out[..., self.r_dim:]


class Prior(nn.Module):
    """Temporal prior: stacked LSTM cells over past latents; p_t = N(mu_p, exp(logvar_p))."""

    def __init__(self, r_dim: int, hidden: int, layers: int):
        super().__init__()
        self.cells = nn.ModuleList(
            [nn.LSTMCell(r_dim if i == 0 else hidden, hidden) for i in range(layers)]
        )
        self.head = nn.Linear(hidden, 2 * r_dim)
        self.r_dim = r_dim
        self.hidden = hidden

    def init_state(self, batch: int, device, dtype=torch.float32) -> list[tuple[torch.Tensor, torch.Tensor]]:
        zero = torch.zeros(batch, self.hidden, device=device, dtype=dtype)
        return [(zero, zero) for _ in self.cells]

    def step(self, r: torch.Tensor, state):
        """Consume r_t (B, r_dim); return the new state and (mu_p, logvar_p) of p_{t+1}."""
        new_state = []
        h = r
        for cell, (hx, cx) in zip(self.cells, state):
            hx, cx = cell(h, (hx, cx))
            new_state.append((hx, cx))
            h = hx
        out = self.head(h)
        return new_state, (out[..., : self.r_dim], out[..., self.r_dim:])


def standard_normal(batch: int, r_dim: int, device, dtype=torch.float32) -> tuple[torch.Tensor, torch.Tensor]:
    zero = torch.zeros(batch, r_dim, device=device, dtype=dtype)
    return zero, zero


def gaussian_kl(mu: torch.Tensor, logvar: torch.Tensor, mu_p: torch.Tensor, logvar_p: torch.Tensor) -> torch.Tensor:
    """KL(N(mu, e^logvar) || N(mu_p, e^logvar_p)) summed over the last dim -> (...,)."""
    return 0.5 * (logvar_p - logvar + (logvar.exp() + (mu - mu_p) ** 2) / logvar_p.exp() - 1).sum(-1)


# --------------------------------------------------------------------------- the model

@dataclass
class SequenceOutput:
    """Result of running the model over a sequence x (B, T, C, H, W).

    recon: (B, T, C, H, W) decoder output G(r_t); sse: (B, T) squared error summed over pixels;
    kl: (B, T); latents: (B, T, r_dim) the r_t used; prior_mu: (B, T, r_dim) mean of p_t.
    """

    recon: torch.Tensor
    sse: torch.Tensor
    kl: torch.Tensor
    latents: torch.Tensor
    prior_mu: torch.Tensor

    def objective(self, kl_weight: float) -> torch.Tensor:
        """(B,) the per-sequence objective: squared error plus kl_weight times KL, summed over frames."""
        return (self.sse + kl_weight * self.kl).sum(1)

    def loss(self, kl_weight: float) -> torch.Tensor:
        """The training loss: :meth:`objective` averaged over the batch."""
        return self.objective(kl_weight).mean()


@dataclass
class RunContext:
    """The per-call constants of :meth:`GopcModel.run`'s loop over frames."""

    x: torch.Tensor                 # (B, T, C, H, W)
    sample: bool
    eps: torch.Tensor | None        # (B, T, r_dim) noise for r_t
    eps0: torch.Tensor | None       # (B, T, r_dim) noise at the origin
    observed: int                   # frames t < observed are inferred, later ones predicted
    z_fixed: torch.Tensor | None
    jac: tuple | None
    create_graph: bool


class GopcModel(nn.Module):
    """GOPC-1 (``kind='gopc1'``) or VAE-1 (``kind='vae1'``) on frames (C, S, S) in [0, 1]."""

    def __init__(self, cfg: GopcModelConfig):
        super().__init__()
        self.cfg = cfg
        self.decoder = Decoder(cfg.r_dim, cfg.channels, cfg.image_size, cfg.dec_channels, cfg.init_pixel)
        self.posterior = Posterior(cfg.z_dim, cfg.post_hidden, cfg.r_dim, cfg.init_logvar)
        self.prior = Prior(cfg.r_dim, cfg.prior_hidden, cfg.prior_layers)
        self.encoder = (
            Encoder(cfg.channels, cfg.image_size, cfg.enc_channels, cfg.z_dim) if cfg.kind == "vae1" else None
        )
        self.use_prior = True  # the 'prior' pathway: off -> p_t = N(0, I) for every t

    # ----------------------------------------------------------------- inner gradient pieces

    def origin_jacobians(self) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
        """At z = 0: G(mu0) (P,), J = dG(mu(z))/dz (P, z_dim), mu0, logvar0 (r_dim,), M = dP/dz (2r, z_dim)."""
        z0 = torch.zeros(self.cfg.z_dim, device=self.decoder.fc.weight.device, dtype=self.decoder.fc.weight.dtype)

        def through_decoder(z: torch.Tensor) -> torch.Tensor:
            mu, _ = self.posterior(z[None])
            return self.decoder(mu).flatten()

        def posterior_flat(z: torch.Tensor) -> torch.Tensor:
            mu, logvar = self.posterior(z[None])
            return torch.cat([mu, logvar], -1)[0]

        with torch.enable_grad():
            jac_dec = jacfwd(through_decoder)(z0)
            jac_post = jacfwd(posterior_flat)(z0)
            mu0, logvar0 = self.posterior(z0[None])
            g0 = self.decoder(mu0).flatten()
        return g0, jac_dec, mu0[0], logvar0[0], jac_post

    def _kl_grad_origin(self, mu0, logvar0, jac_post, prior) -> torch.Tensor:
        """d KL(q(r|z0) || p) / d z0 at the origin, via the closed form and M: (B, z_dim)."""
        mu_p, logvar_p = prior
        inv_var = torch.exp(-logvar_p)
        g_mu = (mu0 - mu_p) * inv_var
        g_logvar = 0.5 * (logvar0.exp() * inv_var - 1)
        return torch.cat([g_mu, g_logvar], -1) @ jac_post

    def _origin_loss(self, x: torch.Tensor, z0: torch.Tensor, prior, eps0: torch.Tensor | None, with_decoder: bool = True, with_kl: bool = True) -> torch.Tensor:
        mu0, logvar0 = self.posterior(z0)
        loss = torch.zeros((), device=x.device)
        if with_decoder:
            r0 = mu0 if eps0 is None else mu0 + torch.exp(0.5 * logvar0) * eps0
            loss = loss + ((self.decoder(r0) - x) ** 2).sum()
        if with_kl:
            loss = loss + gaussian_kl(mu0, logvar0, *prior).sum()
        return loss

    # ----------------------------------------------------------------- running a sequence

    def run(
        self,
        x: torch.Tensor,
        sample: bool = True,
        eps: torch.Tensor | None = None,
        eps0: torch.Tensor | None = None,
        context: int | None = None,
        create_graph: bool | None = None,
    ) -> SequenceOutput:
        """Infer latents for x (B, T, C, H, W) and decode them.

        sample: draw r_t = mu_t + sigma_t * eps_t (training) or take mu_t (evaluation).
        eps: (B, T, r_dim) noise for r_t; eps0: (B, T, r_dim) noise at the origin (origin_noise).
        context: if given, frames t >= context are not observed: r_t = mean of p_t
            (prior prediction, the model's own latents fed back).
        """
        run = self.start_run(x, sample, eps, eps0, context, create_graph)
        b = x.shape[0]
        state = self.prior.init_state(b, x.device, x.dtype)
        prior = standard_normal(b, self.cfg.r_dim, x.device, x.dtype)
        latents, kls, prior_mus = [], [], []
        for t in range(x.shape[1]):
            prior_mus.append(prior[0])
            r, kl = self.observe(run, t, prior)
            latents.append(r)
            kls.append(kl)
            if self.use_prior:
                state, prior = self.prior.step(r, state)
        r_all, recon, sse = self.decode_sequence(latents, x)
        return SequenceOutput(recon, sse, torch.stack(kls, 1), r_all, torch.stack(prior_mus, 1))

    def start_run(self, x: torch.Tensor, sample: bool, eps, eps0, context, create_graph) -> "RunContext":
        """What :meth:`run` fixes before its loop over frames: the noise, the observed frames and
        the prior-independent parts of inference (shared by GOPC-1, VAE-1 and GOPC-2)."""
        cfg = self.cfg
        b, t_len = x.shape[:2]
        create_graph = self.training if create_graph is None else create_graph
        if sample and eps is None:
            eps = torch.randn(b, t_len, cfg.r_dim, device=x.device, dtype=x.dtype)
        if cfg.kind == "gopc1" and cfg.origin_noise and eps0 is None:
            eps0 = torch.randn(b, t_len, cfg.r_dim, device=x.device, dtype=x.dtype)
        observed = t_len if context is None else min(context, t_len)
        z_fixed, jac = self.origin_parts(x, observed, eps0, create_graph)
        return RunContext(x, sample, eps, eps0, observed, z_fixed, jac, create_graph)

    def observe(self, run: "RunContext", t: int, prior) -> tuple[torch.Tensor, torch.Tensor]:
        """(r_t (B, r_dim), KL_t (B,)) for frame t: inferred under ``prior`` if observed, else the
        prior's mean with zero KL (the model's own prediction fed back)."""
        if t >= run.observed:
            return prior[0], torch.zeros(prior[0].shape[0], device=prior[0].device, dtype=prior[0].dtype)
        z = self._infer_z(run.x[:, t], t, run.z_fixed, run.jac, prior, run.eps0, run.create_graph)
        mu, logvar = self.posterior(z)
        r = mu + torch.exp(0.5 * logvar) * run.eps[:, t] if run.sample else mu
        return r, gaussian_kl(mu, logvar, *prior)

    def decode_sequence(self, latents: list[torch.Tensor], x: torch.Tensor):
        """(r_all (B, T, r_dim), recon like x, sse (B, T)) from the per-frame latents."""
        r_all = torch.stack(latents, 1)
        recon = self.decoder(r_all.reshape(r_all.shape[0] * r_all.shape[1], -1)).view_as(x)
        return r_all, recon, ((recon - x) ** 2).flatten(2).sum(-1)

    def origin_parts(self, x: torch.Tensor, observed: int, eps0: torch.Tensor | None, create_graph: bool):
        """The parts of z_t that do not depend on the prior, for the first ``observed`` frames of x
        at once: (z_fixed (B, observed, z_dim) or None, origin Jacobians for ``_infer_z`` or None)."""
        cfg = self.cfg
        b = x.shape[0]
        flat = x[:, :observed].reshape(b * observed, *x.shape[2:])
        z_fixed = None
        jac = None
        if observed > 0:
            if cfg.kind == "vae1":
                z_fixed = self.encoder(flat).view(b, observed, -1)
            elif cfg.inner == "jacobian":
                g0, jac_dec, mu0, logvar0, jac_post = self.origin_jacobians()
                jac = (mu0, logvar0, jac_post)
                resid = (g0 - flat.flatten(1)) * 2
                z_fixed = -(resid @ jac_dec).view(b, observed, -1)
            elif cfg.inner == "batched":
                with torch.enable_grad():
                    z0 = torch.zeros(b * observed, cfg.z_dim, device=x.device, dtype=x.dtype, requires_grad=True)
                    e0 = None if eps0 is None else eps0[:, :observed].reshape(b * observed, -1)
                    loss = self._origin_loss(flat, z0, None, e0, with_kl=False)
                    (grad,) = torch.autograd.grad(loss, z0, create_graph=create_graph)
                z_fixed = -grad.view(b, observed, -1)
        return z_fixed, jac

    def _infer_z(self, x_t, t, z_fixed, jac, prior, eps0, create_graph) -> torch.Tensor:
        cfg = self.cfg
        if cfg.kind == "vae1":
            return z_fixed[:, t]
        if cfg.inner == "jacobian":
            return z_fixed[:, t] - self._kl_grad_origin(*jac, prior)
        b = x_t.shape[0]
        with torch.enable_grad():
            z0 = torch.zeros(b, cfg.z_dim, device=x_t.device, dtype=x_t.dtype, requires_grad=True)
            e0 = None if eps0 is None else eps0[:, t]
            if cfg.inner == "batched":
                loss = self._origin_loss(x_t, z0, prior, e0, with_decoder=False)
                (grad,) = torch.autograd.grad(loss, z0, create_graph=create_graph)
                return z_fixed[:, t] - grad
            loss = self._origin_loss(x_t, z0, prior, e0)  # reference: decoder and KL together
            (grad,) = torch.autograd.grad(loss, z0, create_graph=create_graph)
        return -grad

    def infer_frame(self, x_t: torch.Tensor, prior, origin: tuple | None = None) -> tuple[torch.Tensor, torch.Tensor]:
        """Posterior (mu, logvar) of one frame (B, C, H, W) given the prior (mu_p, logvar_p).

        origin: a cached ``origin_jacobians()`` (valid while the weights do not change).
        """
        cfg = self.cfg
        if cfg.kind == "vae1":
            z = self.encoder(x_t)
        elif cfg.inner == "jacobian":
            g0, jac_dec, mu0, logvar0, jac_post = origin if origin is not None else self.origin_jacobians()
            z = -((g0 - x_t.flatten(1)) * 2) @ jac_dec - self._kl_grad_origin(mu0, logvar0, jac_post, prior)
        else:
            with torch.enable_grad():
                z0 = torch.zeros(x_t.shape[0], cfg.z_dim, device=x_t.device, dtype=x_t.dtype, requires_grad=True)
                loss = self._origin_loss(x_t, z0, prior, None)
                (grad,) = torch.autograd.grad(loss, z0, create_graph=self.training)
            z = -grad
        return self.posterior(z)


def count_parameters(module: nn.Module) -> int:
    return sum(p.numel() for p in module.parameters() if p.requires_grad)
