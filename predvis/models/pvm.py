"""The Predictive Vision Model (PVM) as batched tensors, one set of weights per layer.

Piekniewski, Laurent, Petre, Richert, Fisher, Hylton 2016, "Unsupervised learning from continuous
video in a scalable predictive recurrent network", arXiv:1607.06854. Written from the paper and
the notes in docs/pvm.md; no code from the released implementation.

A unit is a 3-layer MLP ``x -> h -> y`` with the rational sigmoid ``f(s) = 0.5 + s / (2 (1+|s|))``.
Its hidden vector ``h`` (``hidden`` values, 7x7 = 49 by default) is its state. Its input is

    x = [signal, 0.5 (signal - prev) + 0.5, leaky integral, 0.5 (signal - own prediction) + 0.5,
         lateral_factor * lateral states, feedback_factor * parent/top states, 1]

where the signal is a ``p x p x C`` frame patch in layer 0 and the four children's states above.
The output ``y`` predicts the unit's next signal (and the one after, with ``two_steps``).

All units of a layer run together: weights ``W1: (U, n_in + 1, hidden)``, ``W2: (U, hidden + 1,
out)``; inputs are gathered with one index per layer and multiplied with ``torch.bmm``. Units with
fewer context tiles than the layer's widest one have zero-padded slots whose weights are zero and
stay zero (their input is always zero). Learning is local: each unit backpropagates its own
squared error (0.5 * sum) through its own MLP by hand; nothing crosses units. Updates are
``M <- mu M + lr g;  W <- W + M`` in place. With ``B`` independent streams the gradient is the
mean over streams (weights are shared).

One ``step(frame)`` = (a) read the signals of this step (frame patches; children's states from the
previous step), (b) train the previous step's forward on them, (c) build features and context from
the previous states (synchronous / Jacobi update: every layer reads the same snapshot), (d) run
the forward that predicts the next signals.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
import torch.nn.functional as F

from predvis.errors import ConfigError
from predvis.models.pvm_wiring import FEEDBACK, LATERAL, build_wiring, count_weights, signal_size
from predvis.models.stepping import StepOutput


def rational_sigmoid(s: torch.Tensor) -> torch.Tensor:
    """f(s) = 0.5 + s / (2 (1 + |s|)), values in (0, 1)."""
    return 0.5 + s / (2.0 * (1.0 + s.abs()))


def rational_sigmoid_grad(s: torch.Tensor) -> torch.Tensor:
    """f'(s) = 1 / (2 (1 + |s|)^2)."""
    return 0.5 / (1.0 + s.abs()).square()


@dataclass
class PVMSchedule:
    """Developmental and learning-rate schedule, in learning steps.

    Layer ``l`` learns at ``lr_initial`` from step ``l * layer_delay``, then at ``lr_final`` from
    step ``final_delay + l * layer_delay``. The lateral (feedback) factor is 0 before
    ``lateral_on`` (``feedback_on``) and 1 from then on.
    """

    lr_initial: float = 2e-4
    lr_final: float = 1e-5
    layer_delay: int = 100_000
    final_delay: int = 100_000
    lateral_on: int = 700_000
    feedback_on: int = 900_000

    def lr(self, layer: int, step: int) -> float:
        start = layer * self.layer_delay
        if step < start:
            return 0.0
        return self.lr_initial if step < start + self.final_delay else self.lr_final


@dataclass
class PVMState:
    """Recurrent state of ``B`` streams.

    h_all: (N_units + 1, B, hidden) states of every unit, layers concatenated, last row zero.
    prev, integ: per layer (U, B, S) previous signal and leaky integral (None before step 1).
    caches: per forward (newest last, at most 2): per layer (x, h_aug, fp1, fp2, y) with
        x (U, B, n_in + 1), h_aug (U, B, hidden + 1), fp1 (U, B, hidden), fp2 / y (U, B, out).
    """

    h_all: torch.Tensor
    prev: list[torch.Tensor | None]
    integ: list[torch.Tensor | None]
    caches: list[list[tuple[torch.Tensor, ...]]] = field(default_factory=list)


def _tile_shape(n: int) -> tuple[int, int]:
    """A (rows, cols) tile for n values, as square as divisors allow."""
    r = int(math.isqrt(n))
    while n % r:
        r -= 1
    return r, n // r


class PVM(nn.Module):
    """Predictive Vision Model; implements :class:`predvis.models.stepping.SteppingModel`.

    layers: units per side of each layer, bottom first (paper: 16, 8, 4, 3, 2, 1).
    channels, patch: frames are (channels, layers[0] * patch, layers[0] * patch).
    hidden: state size per unit (49 = 7x7).
    """

    pathways = ("feedback", "lateral")

    def __init__(
        self,
        layers: list[int],
        channels: int = 3,
        patch: int = 5,
        hidden: int = 49,
        lateral_radius: int = 2,
        top_to_all: bool = True,
        two_steps: bool = False,
        momentum: float = 0.5,
        tau: float = 0.98,
        schedule: PVMSchedule | None = None,
        seed: int = 0,
        dtype: torch.dtype = torch.float32,
    ):
        super().__init__()
        for name, v in (("channels", channels), ("patch", patch), ("hidden", hidden)):
            if v < 1:
                raise ConfigError(f"model.{name}: must be >= 1, got {v}")
        if lateral_radius < 0:
            raise ConfigError(f"model.lateral_radius: must be >= 0, got {lateral_radius}")
        self.sides = list(layers)
        self.channels, self.patch, self.hidden = channels, patch, hidden
        self.two_steps, self.momentum, self.tau = two_steps, momentum, tau
        self.schedule = schedule or PVMSchedule()
        self.frame_shape = (channels, layers[0] * patch, layers[0] * patch)
        self.disabled: set[str] = set()
        self.learning = True
        self.wiring = build_wiring(self.sides, lateral_radius, top_to_all)
        self.n_weights = count_weights(self.wiring, patch, channels, hidden, two_steps)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        counts = [n * n for n in self.sides]
        self.offsets = [sum(counts[:l]) for l in range(len(counts))]
        self.n_units = sum(counts)
        gen = torch.Generator().manual_seed(seed)
        for l, ctx in enumerate(self.wiring.context):
            self._build_layer(l, ctx, gen, dtype)

    # ------------------------------------------------------------------ construction
    def _build_layer(self, l: int, ctx: list, gen: torch.Generator, dtype: torch.dtype) -> None:
        U, H = len(ctx), self.hidden
        S = signal_size(l, self.patch, self.channels, H)
        out = 2 * S if self.two_steps else S
        K = max(len(c) for c in ctx)
        pad = self.n_units  # index of the zero row of h_all
        idx = torch.full((U, K), pad, dtype=torch.long)
        kind = torch.zeros(U, K, dtype=torch.long)
        w1 = torch.zeros(U, 4 * S + K * H + 1, H, dtype=dtype)
        for u, srcs in enumerate(ctx):
            for k, (src_l, src_u, k_kind) in enumerate(srcs):
                idx[u, k] = self.offsets[src_l] + src_u
                kind[u, k] = k_kind
            n_in = 4 * S + len(srcs) * H
            bound = 1.0 / math.sqrt(n_in)
            rows = list(range(4 * S + len(srcs) * H)) + [4 * S + K * H]
            w1[u, rows] = (torch.rand(len(rows), H, generator=gen, dtype=torch.float64) * 2 - 1).to(dtype) * bound
        w2 = ((torch.rand(U, H + 1, out, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(H)).to(dtype)
        self.register_buffer(f"w1_{l}", w1)
        self.register_buffer(f"m1_{l}", torch.zeros_like(w1))
        self.register_buffer(f"w2_{l}", w2)
        self.register_buffer(f"m2_{l}", torch.zeros_like(w2))
        self.register_buffer(f"ctx_idx_{l}", idx, persistent=False)
        self.register_buffer(f"ctx_kind_{l}", kind, persistent=False)
        if l > 0:
            kids = torch.tensor(self.wiring.children[l], dtype=torch.long) + self.offsets[l - 1]
            self.register_buffer(f"kids_{l}", kids, persistent=False)

    def layer_weights(self, l: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(W1 (U, n_in + 1, hidden), W2 (U, hidden + 1, out)) of layer ``l``."""
        return getattr(self, f"w1_{l}"), getattr(self, f"w2_{l}")

    @property
    def n_layers(self) -> int:
        return len(self.sides)

    def signal_sizes(self) -> list[int]:
        return [signal_size(l, self.patch, self.channels, self.hidden) for l in range(self.n_layers)]

    # ------------------------------------------------------------------ stepping interface
    def set_learning(self, enabled: bool) -> None:
        self.learning = bool(enabled)

    def init_state(self, batch: int) -> PVMState:
        w = self.w1_0
        h_all = torch.full((self.n_units + 1, batch, self.hidden), 0.5, dtype=w.dtype, device=w.device)
        h_all[-1] = 0
        L = self.n_layers
        return PVMState(h_all=h_all, prev=[None] * L, integ=[None] * L, caches=[])

    def factors(self) -> tuple[float, float]:
        """(lateral, feedback) context factors now: schedule times lesion switch."""
        step = int(self.steps)
        lat = float(step >= self.schedule.lateral_on and "lateral" not in self.disabled)
        fb = float(step >= self.schedule.feedback_on and "feedback" not in self.disabled)
        return lat, fb

    def patches(self, frame: torch.Tensor) -> torch.Tensor:
        """frame (B, C, H, W) -> layer-0 signals (U0, B, C * p * p)."""
        if tuple(frame.shape[1:]) != self.frame_shape:
            raise ConfigError(f"PVM expects frames of shape {self.frame_shape}, got {tuple(frame.shape[1:])}")
        return F.unfold(frame.to(self.w1_0.dtype), self.patch, stride=self.patch).permute(2, 0, 1)

    def unpatch(self, sig: torch.Tensor) -> torch.Tensor:
        """layer-0 signals (U0, B, C * p * p) -> frame (B, C, H, W)."""
        _, H, W = self.frame_shape
        return F.fold(sig.permute(1, 2, 0), (H, W), self.patch, stride=self.patch)

    @torch.no_grad()
    def step(self, frame: torch.Tensor, state: PVMState) -> StepOutput:
        """Read ``frame`` (B, C, H, W) in [0, 1]; return the prediction of the next frame."""
        h_all = state.h_all
        sizes = self.signal_sizes()
        signals = [self.patches(frame)]
        for l in range(1, self.n_layers):
            kids = getattr(self, f"kids_{l}")  # (U, 4)
            g = h_all[kids]  # (U, 4, B, H)
            signals.append(g.permute(0, 2, 1, 3).reshape(g.shape[0], g.shape[2], -1))
        layer_errors: dict[str, torch.Tensor] = {}
        errs: list[torch.Tensor | None] = [None] * self.n_layers
        if state.caches:
            for l, sig in enumerate(signals):
                y = state.caches[-1][l][4]
                errs[l] = sig - y[..., : sizes[l]]
                layer_errors[f"L{l}"] = errs[l].abs().mean(dim=(0, 2))
        if self.learning:
            self._learn(signals, state)
            self.steps += 1
        lat, fb = self.factors()
        new_caches, new_h, internals = [], [], {}
        for l, sig in enumerate(signals):
            prev = sig if state.prev[l] is None else state.prev[l]
            integ = sig if state.integ[l] is None else self.tau * state.integ[l] + (1 - self.tau) * sig
            err_feat = 0.5 * errs[l] + 0.5 if errs[l] is not None else torch.full_like(sig, 0.5)
            idx, kind = getattr(self, f"ctx_idx_{l}"), getattr(self, f"ctx_kind_{l}")
            fac = (kind == LATERAL).to(sig.dtype) * lat + (kind == FEEDBACK).to(sig.dtype) * fb  # (U, K)
            ctx = h_all[idx] * fac[:, :, None, None]  # (U, K, B, H); zero where lesioned
            U, B = sig.shape[0], sig.shape[1]
            ones = torch.ones(U, B, 1, dtype=sig.dtype, device=sig.device)
            x = torch.cat([sig, 0.5 * (sig - prev) + 0.5, integ, err_feat,
                           ctx.permute(0, 2, 1, 3).reshape(U, B, -1), ones], dim=2)
            w1, w2 = self.layer_weights(l)
            s1 = torch.bmm(x, w1)
            h = rational_sigmoid(s1)
            h_aug = torch.cat([h, ones], dim=2)
            s2 = torch.bmm(h_aug, w2)
            y = rational_sigmoid(s2)
            new_caches.append((x, h_aug, rational_sigmoid_grad(s1), rational_sigmoid_grad(s2), y))
            new_h.append(h)
            state.prev[l], state.integ[l] = sig, integ
            internals[f"signal/L{l}"] = self._as_image(l, sig)
            internals[f"state/L{l}"] = self._as_image(l, h, states=True)
            internals[f"pred/L{l}"] = self._as_image(l, y[..., : sizes[l]])
        B = frame.shape[0]
        zero = torch.zeros(1, B, self.hidden, dtype=h_all.dtype, device=h_all.device)
        state.h_all = torch.cat(new_h + [zero], dim=0)
        state.caches = (state.caches + [new_caches])[-2:]
        prediction = self.unpatch(new_caches[0][4][..., : sizes[0]]).clamp(0, 1)
        return StepOutput(prediction=prediction, state=state, layer_errors=layer_errors, internals=internals)

    # ------------------------------------------------------------------ learning
    def _learn(self, signals: list[torch.Tensor], state: PVMState) -> None:
        """Train the forward whose targets are all known now, in place, unit by unit (batched)."""
        sizes = self.signal_sizes()
        if self.two_steps:
            if len(state.caches) < 2:
                return
            cache = state.caches[-2]  # made two steps ago: predicted [previous, this] signal
        else:
            if not state.caches:
                return
            cache = state.caches[-1]
        step = int(self.steps)
        mu = self.momentum
        for l, sig in enumerate(signals):
            lr = self.schedule.lr(l, step)
            x, h_aug, fp1, fp2, y = cache[l]
            target = torch.cat([state.prev[l], sig], dim=2) if self.two_steps else sig
            w1, w2 = self.layer_weights(l)
            m1, m2 = getattr(self, f"m1_{l}"), getattr(self, f"m2_{l}")
            if lr == 0.0:  # layer not switched on yet: its momentum is still zero
                continue
            B = sig.shape[1]
            d2 = (target - y) * fp2  # (U, B, out)
            d1 = torch.bmm(d2, w2[:, : self.hidden].transpose(1, 2)) * fp1  # (U, B, H)
            for w, m, a, d in ((w2, m2, h_aug, d2), (w1, m1, x, d1)):
                if B == 1:  # rank-1 update: broadcasting multiply-add, no temporary
                    m.mul_(mu).addcmul_(a.transpose(1, 2), d, value=lr)
                else:
                    m.baddbmm_(a.transpose(1, 2), d, beta=mu, alpha=lr / B)
                w.add_(m)

    # ------------------------------------------------------------------ display
    def _as_image(self, l: int, v: torch.Tensor, states: bool = False) -> torch.Tensor:
        """Per-unit vectors (U, B, n) -> (B, C, H, W) frame (layer-0 signal) or (B, H, W) mosaic."""
        n = self.sides[l]
        if l == 0 and not states:
            return self.unpatch(v).clamp(0, 1)
        U, B, m = v.shape
        if states:
            r, c = _tile_shape(m)
            t = v.reshape(n, n, B, r, c)
        else:  # four child states, 2x2
            r, c = _tile_shape(self.hidden)
            t = v.reshape(n, n, B, 2, 2, r, c).permute(0, 1, 2, 3, 5, 4, 6).reshape(n, n, B, 2 * r, 2 * c)
            r, c = 2 * r, 2 * c
        return t.permute(2, 0, 3, 1, 4).reshape(B, n * r, n * c)

    def extra_repr(self) -> str:
        return f"layers={self.sides}, hidden={self.hidden}, weights={sum(self.n_weights):,}"
