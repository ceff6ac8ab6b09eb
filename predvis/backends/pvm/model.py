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
import weakref
from collections.abc import Mapping
from dataclasses import dataclass, field

import torch
from torch import nn

from predvis.errors import ConfigError
from predvis.backends.pvm.wiring import FEEDBACK, LATERAL, build_wiring, count_weights, signal_size
from predvis.runtime.stepping import FeedforwardView, StepOutput


def rational_sigmoid_and_grad(s: torch.Tensor, out: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(f(s), f'(s)) of the rational sigmoid f(s) = 0.5 + s / (2 (1 + |s|)), values in (0, 1), and
    f'(s) = 1 / (2 (1 + |s|)^2), both from one r = 1 / (1 + |s|): f = 0.5 + 0.5 s r, f' = 0.5 r^2,
    each one multiply-add pass (f' = 0 + (0.5 r) r: 0.5 r is exact, so the bits of r^2 times 0.5).
    ``out``: where to write f (a tensor of s's shape, e.g. a view into a larger one)."""
    r = s.abs().add_(1.0).reciprocal_()
    f = torch.addcmul(s.new_tensor(0.5), s, r, value=0.5, out=out)
    return f, torch.addcmul(s.new_tensor(0.0), r, r, value=0.5)


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
    spare: per layer, the inputs x of the forward that last left ``caches`` (or None): a later
        no_grad step writes its inputs into them instead of allocating (at 64 streams x is 68 MB
        in layer 0, and a fresh one is paid for in page faults). So a cached x is overwritten two
        steps after it leaves ``caches``: a copy of a state that is stepped on its own must clone
        its cache tensors (:meth:`clone`), not share them.
    """

    h_all: torch.Tensor
    prev: list[torch.Tensor | None]
    integ: list[torch.Tensor | None]
    caches: list[list[tuple[torch.Tensor, ...]]] = field(default_factory=list)
    spare: list[torch.Tensor | None] = field(default_factory=list)
    spare_group: torch.Tensor | None = None  # the same for the grouped upper layers' inputs (PVM.group_layers)

    def clone(self) -> "PVMState":
        """An independent copy (every tensor cloned; no spare buffers shared)."""
        def c(t):
            return None if t is None else t.clone()
        return PVMState(self.h_all.clone(), [c(t) for t in self.prev], [c(t) for t in self.integ],
                        [[tuple(t.clone() for t in layer) for layer in cache] for cache in self.caches])


class _Cache(list):
    """One forward's per-layer (x, h_aug, fp1, fp2, y); ``group``: the grouped upper layers' tensors
    (x, h_aug, fp1, fp2, y) over all their units, of which the per-layer entries are views, or None."""

    group: tuple[torch.Tensor, ...] | None = None


# model.precision values: "fp32" (every product in the model's dtype) or "bf16" (see PVM._w1_lowp)
PRECISIONS = ("fp32", "bf16")

# per-layer buffers of the upper layers kept as views of one tensor per name (PVM._group_storage)
_GROUPED = ("v1", "ra", "re", "w2", "m2", "rstamp", "rpend", "clock")


class _Internals(Mapping):
    """Display tensors of one step, built only when read: signal/L<i>, state/L<i>, pred/L<i>."""

    def __init__(self, model: "PVM", signals, states, preds):
        self._m, self._sig, self._h, self._y = model, signals, states, preds

    def __iter__(self):
        for l in range(len(self._sig)):
            yield from (f"signal/L{l}", f"state/L{l}", f"pred/L{l}")

    def __len__(self) -> int:
        return 3 * len(self._sig)

    def __getitem__(self, key: str) -> torch.Tensor:
        kind, _, layer = key.partition("/L")
        if kind not in ("signal", "state", "pred") or not layer.isdigit() or int(layer) >= len(self._sig):
            raise KeyError(key)
        l = int(layer)
        if kind == "signal":
            return self._m._as_image(l, self._sig[l])
        if kind == "state":
            return self._m._as_image(l, self._h[l], states=True)
        return self._m._as_image(l, self._y[l][..., : self._m.sizes[l]])


def _tile_shape(n: int) -> tuple[int, int]:
    """A (rows, cols) tile for n values, as square as divisors allow."""
    r = int(math.isqrt(n))
    while n % r:
        r -= 1
    return r, n // r


class PVM(nn.Module):
    """Predictive Vision Model; implements :class:`predvis.runtime.stepping.SteppingModel`.

    layers: units per side of each layer, bottom first (paper: 16, 8, 4, 3, 2, 1).
    channels, patch: frames are (channels, layers[0] * patch, layers[0] * patch).
    hidden: state size per unit (49 = 7x7).
    """

    pathways = ("feedback", "lateral")
    # predvis sleep's default (docs/probes.md, sleep): PVM's error-driven steps are tiny at a fixed
    # point, so rate 0.1 did nothing measurable on quick PVM; 1.0 kept held-out error within 2 %
    default_unlearn_rate = 1.0

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
        center: bool = False,
        residual: bool = False,
        dtype: torch.dtype = torch.float32,
        fused_inputs: bool = True,
        plain_streams: bool = True,
        group_layers: bool = True,
        precision: str = "fp32",
        compiled_tail: bool = False,
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
        self.center, self.residual = bool(center), bool(residual)
        self.fused_inputs = bool(fused_inputs)  # no_grad steps write unit inputs in place (same values)
        # several streams keep W1 and its momentum plain (W, M); false: v = W + cM and a pending P (same values)
        self.plain_streams = bool(plain_streams)
        # one stream: layers 1..L-1 (same signal size) computed as one batch of units (same values)
        self.group_layers = bool(group_layers)
        if precision not in PRECISIONS:
            raise ConfigError(f"model.precision: must be one of {', '.join(PRECISIONS)}, got {precision!r}")
        # "bf16": with several streams, unit inputs and the two W1 products (forward x W1, gradient
        # d1^T x) in bfloat16 (fp32 accumulation), W1 and its momentum kept in float32 (_lowp)
        self.precision = precision
        self._lowp: dict[int, dict] = {}
        # several streams, no_grad: the step's element-wise parts torch.compile'd (tail.py; values to rounding)
        self.compiled_tail = bool(compiled_tail)
        self._tail = None
        self.frame_shape = (channels, layers[0] * patch, layers[0] * patch)
        self.disabled: set[str] = set()
        self.learning = True
        self.lr_scale = 1.0  # multiplies every scheduled rate; negative = unlearning (unlearn_step)
        self.wiring = build_wiring(self.sides, lateral_radius, top_to_all)
        self.n_weights = count_weights(self.wiring, patch, channels, hidden, two_steps)
        self.register_buffer("steps", torch.zeros((), dtype=torch.long))
        counts = [n * n for n in self.sides]
        self.offsets = [sum(counts[:l]) for l in range(len(counts))]
        self.n_units = sum(counts)
        self.sizes = [signal_size(l, patch, channels, hidden) for l in range(len(self.sides))]
        if not 0 <= momentum < 1:
            raise ConfigError(f"model.momentum: must be in [0, 1), got {momentum}")
        self._c = momentum / (1 - momentum)
        # momentum terms kept pending: mu^K below the dtype's epsilon (23 for mu 0.5 in float32)
        eps = torch.finfo(dtype).eps
        self.ring_terms = math.ceil(math.log(eps) / math.log(momentum)) if momentum > 0 else 0
        self.use_ring = 0 < self.ring_terms <= 64
        gen = torch.Generator().manual_seed(seed)
        for l, ctx in enumerate(self.wiring.context):
            self._build_layer(l, ctx, gen, dtype)
        self.group = list(range(1, len(self.sides))) if len(self.sides) >= 3 else []
        self._g: dict | None = None  # the group's tensors, built on first use (_group_storage)
        if self.group:
            self._build_group(dtype)

    # ------------------------------------------------------------------ construction
    def _build_layer(self, l: int, ctx: list, gen: torch.Generator, dtype: torch.dtype) -> None:
        U, H = len(ctx), self.hidden
        S = self.sizes[l]
        out = 2 * S if self.two_steps else S
        K = max(len(c) for c in ctx)
        n = 4 * S + K * H + 1
        pad = self.n_units  # index of the zero row of h_all
        idx = torch.full((U, K), pad, dtype=torch.long)
        kind = torch.zeros(U, K, dtype=torch.long)
        w1 = torch.zeros(U, n, H, dtype=dtype)
        for u, srcs in enumerate(ctx):
            for k, (src_l, src_u, k_kind) in enumerate(srcs):
                idx[u, k] = self.offsets[src_l] + src_u
                kind[u, k] = k_kind
            n_in = 4 * S + len(srcs) * H
            bound = 1.0 / math.sqrt(n_in)
            rows = list(range(4 * S + len(srcs) * H)) + [n - 1]
            w1[u, rows] = (torch.rand(len(rows), H, generator=gen, dtype=torch.float64) * 2 - 1).to(dtype) * bound
        w2 = ((torch.rand(U, H + 1, out, generator=gen, dtype=torch.float64) * 2 - 1) / math.sqrt(H)).to(dtype)
        R = self.ring_terms if self.use_ring else 0
        # W1 is stored transposed, with its pending momentum added: v1 = W1^T + c P (see _w1_forward)
        self.register_buffer(f"v1_{l}", w1.transpose(1, 2).contiguous())
        self.register_buffer(f"ra_{l}", torch.zeros(U, R, n, dtype=dtype))    # ring: inputs a_j
        self.register_buffer(f"re_{l}", torch.zeros(U, R, H, dtype=dtype))    # ring: lr_j * deltas d_j
        self.register_buffer(f"rstamp_{l}", torch.zeros(R, dtype=torch.long))  # clock of each slot (0: empty)
        self.register_buffer(f"rpend_{l}", torch.zeros(R, dtype=torch.bool))   # slot not yet added to v1
        self.register_buffer(f"p1_{l}", torch.zeros(0, dtype=dtype))          # dense pending (U, H, n), lazily
        self.register_buffer(f"pstamp_{l}", torch.zeros((), dtype=torch.long))
        self.register_buffer(f"clock_{l}", torch.zeros((), dtype=torch.long))  # W1 updates applied so far
        self.register_buffer(f"plain_{l}", torch.zeros((), dtype=torch.bool))  # v1 = W1^T, p1 = its momentum
        self.register_buffer(f"w2_{l}", w2)
        self.register_buffer(f"m2_{l}", torch.zeros_like(w2))
        self.register_buffer(f"ctx_kind_{l}", kind, persistent=False)
        for lat in (0, 1):  # one gather index per (lateral on, feedback on): switched-off slots read the zero row
            for fb in (0, 1):
                keep = ((kind == LATERAL) & bool(lat)) | ((kind == FEEDBACK) & bool(fb))
                self.register_buffer(f"ctx_idx_{l}_{lat}{fb}", torch.where(keep, idx, pad), persistent=False)
                half = (0.5 * keep.to(dtype))[:, None, :, None].expand(U, 1, K, H).reshape(U, 1, K * H)
                self.register_buffer(f"ctx_half_{l}_{lat}{fb}", half.contiguous(), persistent=False)
        if l > 0:
            kids = torch.tensor(self.wiring.children[l], dtype=torch.long) + self.offsets[l - 1]
            self.register_buffer(f"kids_{l}", kids, persistent=False)

    def _build_group(self, dtype: torch.dtype) -> None:
        """Index tensors of the upper-layer group: its units are those of layers 1..L-1 in order, each
        with the group's widest context (K slots) and input length n = 4 S + K hidden + 1. A unit of
        layer l keeps its own layout in the first n_l columns (features, its K_l slots, bias); the
        columns after are zero inputs with zero weights, so its W1^T is the view [:, :, :n_l]."""
        G, H, S = self.group, self.hidden, self.sizes[1]
        idx = {sel: [getattr(self, f"ctx_idx_{l}_{sel}") for l in G] for sel in ("00", "01", "10", "11")}
        K = max(t.shape[1] for t in idx["00"])
        self.group_K, self.group_n = K, 4 * S + K * H + 1
        for sel, ts in idx.items():
            pad = [torch.nn.functional.pad(t, (0, K - t.shape[1]), value=self.n_units) for t in ts]
            self.register_buffer(f"gctx_idx_{sel}", torch.cat(pad), persistent=False)
            half = [torch.nn.functional.pad(getattr(self, f"ctx_half_{l}_{sel}"), (0, (K - t.shape[1]) * H))
                    for l, t in zip(G, ts)]
            self.register_buffer(f"gctx_half_{sel}", torch.cat(half), persistent=False)
        self.register_buffer("gkids", torch.cat([getattr(self, f"kids_{l}") for l in G]), persistent=False)
        counts = [self.sides[l] ** 2 for l in G]
        self.group_bounds = [(sum(counts[:i]), sum(counts[: i + 1])) for i in range(len(G))]
        layer = torch.repeat_interleave(torch.arange(len(G)), torch.tensor(counts))
        self.register_buffer("gunit_layer", layer, persistent=False)
        n_l = torch.tensor([4 * S + t.shape[1] * H for t in idx["00"]])  # bias column of each layer
        self.register_buffer("gbias_col", n_l[layer].view(-1, 1, 1), persistent=False)
        avg = torch.zeros(len(G), len(layer), dtype=dtype)  # per-layer mean over units and values
        for i, (a, b) in enumerate(self.group_bounds):
            avg[i, a:b] = 1.0 / ((b - a) * S)
        self.register_buffer("gerr_avg", avg, persistent=False)

    def _group_storage(self) -> dict:
        """The group's tensors, of which the per-layer buffers ``<name>_<l>`` are views: v1 (Ug, H, n),
        ra (Ug, R, n), re (Ug, R, H), w2 / m2 (Ug, H + 1, out), rstamp / rpend (Lg, R), clock (Lg,).
        Rebuilt (values copied in) whenever a per-layer buffer is no longer such a view -- after
        construction, ``.to()``, or a load that assigns new tensors; ``load_state_dict`` copies into
        the views, so a checkpoint keeps the per-layer keys and shapes."""
        g = self._g
        if g is not None and all(self._buffers[k] is v for k, v in g["views"]):
            return g
        G, H = self.group, self.hidden
        per = {name: [self._buffers[f"{name}_{l}"] for l in G] for name in _GROUPED}
        v1 = per["v1"][0]
        Ug, R, n = self.group_bounds[-1][1], per["ra"][0].shape[1], self.group_n
        g = {"v1": v1.new_zeros(Ug, H, n), "ra": v1.new_zeros(Ug, R, n)}
        for name in ("v1", "ra"):
            for (a, b), t in zip(self.group_bounds, per[name]):
                g[name][a:b, :, : t.shape[2]] = t
        for name in ("re", "w2", "m2"):
            g[name] = torch.cat(per[name])
        for name in ("rstamp", "rpend", "clock"):
            g[name] = torch.stack(per[name])
        views = []
        for i, (l, (a, b)) in enumerate(zip(G, self.group_bounds)):
            for name in _GROUPED:
                t = per[name][i]
                if name in ("v1", "ra"):
                    view = g[name][a:b, :, : t.shape[2]]
                elif name in ("re", "w2", "m2"):
                    view = g[name][a:b]
                else:
                    view = g[name][i]
                self._buffers[f"{name}_{l}"] = view
                views.append((f"{name}_{l}", view))
        g["views"] = views
        self._g = g
        return g

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):
        for l in range(self.n_layers):
            old = f"{prefix}w1_{l}"
            if old in state_dict:  # checkpoint with dense W1 (U, n, H) and momentum M1: W1^T + c M1^T, pending M1^T
                w = state_dict.pop(old).transpose(1, 2)
                m = state_dict.pop(f"{prefix}m1_{l}").transpose(1, 2)
                state_dict[f"{prefix}v1_{l}"] = (w + self._c * m).contiguous()
                state_dict[f"{prefix}p1_{l}"] = m.contiguous() if self.momentum else torch.zeros(0, dtype=w.dtype)
                for name in ("ra", "re", "rstamp", "rpend"):
                    state_dict.setdefault(f"{prefix}{name}_{l}", torch.zeros_like(getattr(self, f"{name}_{l}")))
                one = torch.ones((), dtype=torch.long)
                state_dict.setdefault(f"{prefix}clock_{l}", one)
                state_dict.setdefault(f"{prefix}pstamp_{l}", one)
            state_dict.setdefault(f"{prefix}plain_{l}", torch.zeros((), dtype=torch.bool))  # saved before the plain form
            p = state_dict.get(f"{prefix}p1_{l}")
            mine = getattr(self, f"p1_{l}")
            if p is not None and p.shape != mine.shape:  # the dense pending buffer exists only once used
                self._buffers[f"p1_{l}"] = torch.zeros(p.shape, dtype=mine.dtype, device=mine.device)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _ring_sum(self, l: int, coef: torch.Tensor | None) -> torch.Tensor | None:
        """sum_j coef_j e_j a_j^T over the ring slots (U, hidden, n_in + 1)."""
        if coef is None:
            return None
        return torch.bmm((getattr(self, f"re_{l}") * coef.view(1, -1, 1)).transpose(1, 2), getattr(self, f"ra_{l}"))

    def momentum_w1(self, l: int) -> torch.Tensor:
        """The momentum M1 (U, n_in + 1, hidden) of layer ``l``, materialised (a new tensor)."""
        clock = int(getattr(self, f"clock_{l}"))
        m = self._ring_sum(l, self._ring_coef(l, clock, lag=False))
        beta = self._dense_coef(l, clock)
        if m is None:
            m = torch.zeros_like(getattr(self, f"v1_{l}"))
        if beta:
            m = m + getattr(self, f"p1_{l}") * beta
        return m.transpose(1, 2)

    def layer_weights(self, l: int) -> tuple[torch.Tensor, torch.Tensor]:
        """(W1 (U, n_in + 1, hidden), W2 (U, hidden + 1, out)) of layer ``l``.

        W1 is materialised from its stored form (a new tensor: writing to it changes nothing);
        W2 is the buffer itself.
        """
        w = getattr(self, f"v1_{l}").clone()
        if bool(getattr(self, f"plain_{l}")):  # v1 is W1^T itself
            return w.transpose(1, 2), getattr(self, f"w2_{l}")
        clock = int(getattr(self, f"clock_{l}"))
        ring = self._ring_sum(l, self._ring_coef(l, clock))
        if ring is not None:
            w.add_(ring)
        beta = self._dense_coef(l, clock)
        if beta:
            w.sub_(getattr(self, f"p1_{l}"), alpha=self._c * beta)
        return w.transpose(1, 2), getattr(self, f"w2_{l}")

    @property
    def n_layers(self) -> int:
        return len(self.sides)

    def signal_sizes(self) -> list[int]:
        return list(self.sizes)

    def _tail_for(self, B: int, units: int | None = None):
        """The compiled element-wise functions (:class:`CompiledTail`, built on first use) if this
        step uses them -- ``compiled_tail``, several streams, no_grad, on the CPU (the only device it
        was measured on), and (with ``units``) a layer of that many units large enough to pay
        (``CompiledTail.pays``) -- else None."""
        if not self.compiled_tail or B == 1 or torch.is_grad_enabled() or self.v1_0.device.type != "cpu":
            return None
        if self._tail is None:
            from predvis.backends.pvm.tail import CompiledTail

            self._tail = CompiledTail()
        return self._tail if units is None or self._tail.pays(units, B) else None

    @property
    def compile_seconds(self) -> float:
        """Seconds spent compiling the element-wise tail so far (0 without ``compiled_tail``)."""
        return self._tail.compile_seconds if self._tail is not None else 0.0

    # ------------------------------------------------------------------ stepping interface
    def set_learning(self, enabled: bool) -> None:
        self.learning = bool(enabled)

    def init_state(self, batch: int) -> PVMState:
        w = self.v1_0
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
        n, p, C = self.sides[0], self.patch, self.channels
        f = frame.to(self.v1_0.dtype).reshape(-1, C, n, p, n, p)
        return f.permute(2, 4, 0, 1, 3, 5).reshape(n * n, -1, C * p * p)  # (r, c, B, C, y, x): one copy

    def unpatch(self, sig: torch.Tensor) -> torch.Tensor:
        """layer-0 signals (U0, B, C * p * p) -> frame (B, C, H, W)."""
        C, H, W = self.frame_shape
        n, p = self.sides[0], self.patch
        return sig.reshape(n, n, -1, C, p, p).permute(2, 3, 0, 4, 1, 5).reshape(-1, C, H, W)

    @torch.no_grad()
    def step(self, frame: torch.Tensor, state: PVMState, target: torch.Tensor | None = None) -> StepOutput:
        """Read ``frame`` (B, C, H, W) in [0, 1]; return the prediction of the next frame.

        target: optional (B, C, H, W): what layer 0 learns to have predicted and what its error is
            measured against (default: ``frame``). Training with a partly hidden ``frame`` and the
            whole ``target`` teaches filling in; the error *feature* still uses the seen ``frame``.
        """
        return self.differentiable_step(frame, state, target)

    def differentiable_step(self, frame: torch.Tensor, state: PVMState,
                            target: torch.Tensor | None = None) -> StepOutput:
        """:meth:`step` in the caller's autograd mode: with learning off and gradients on, the
        prediction and the new states are differentiable functions of ``frame`` (deepdream's
        feed-forward view, :mod:`predvis.backends.pvm.view`). Online learning needs no_grad."""
        if self.learning and torch.is_grad_enabled():
            raise RuntimeError("PVM.differentiable_step: switch learning off (set_learning(False)) to take gradients")
        if target is not None and self.two_steps:
            raise ConfigError("PVM.step: a separate target is not supported with two_steps")
        h_all = state.h_all
        sizes = self.sizes
        B = frame.shape[0]
        g = self._group_ready(B)
        signals = [self.patches(frame)]
        flat = h_all.view(h_all.shape[0], -1)  # (N + 1, B * H): gathers are index_select on rows
        if g is not None:  # every upper layer's 4 children in one gather (one stream)
            sig_g = flat.index_select(0, self.gkids.view(-1)).view(-1, 1, 4 * self.hidden)
            signals += [sig_g[a:b] for a, b in self.group_bounds]
        else:
            for l in range(1, self.n_layers):
                kids = getattr(self, f"kids_{l}")  # (U, 4)
                gk = flat.index_select(0, kids.view(-1)).view(kids.shape[0], 4, B, -1)
                signals.append(gk.view(kids.shape[0], B, -1) if B == 1 else gk.transpose(1, 2).reshape(kids.shape[0], B, -1))
        targets = signals if target is None else [self.patches(target)] + signals[1:]
        layer_errors: dict[str, torch.Tensor] = {}
        errs: list[torch.Tensor | None] = [None] * self.n_layers
        d2s: list[torch.Tensor | None] = [None] * self.n_layers  # output deltas computed with the errors
        integs: list[torch.Tensor | None] = [None] * self.n_layers  # ... and the new leaky integrals
        err_g = None
        tail = self._tail_for(B)
        if state.caches:
            last = state.caches[-1]
            for l in [0] if g is not None else range(self.n_layers):
                y = last[l][4]
                if (tail is not None and tail.pays(y.shape[0], B) and not self.two_steps
                        and targets[l] is signals[l] and state.integ[l] is not None):
                    errs[l], d2s[l], layer_errors[f"L{l}"], integs[l] = tail.errors(
                        signals[l], y, last[l][3], self.residual, state.integ[l], self.tau)
                    continue
                errs[l] = signals[l] - y[..., : sizes[l]]
                e = errs[l] if targets[l] is signals[l] else targets[l] - y[..., : sizes[l]]
                layer_errors[f"L{l}"] = e.abs().mean(dim=(0, 2))
            if g is not None:
                S = sizes[1]
                gy = getattr(last, "group", None)
                y = gy[4][..., :S] if gy is not None else torch.cat([last[l][4][..., :S] for l in self.group])
                err_g = sig_g - y
                means = torch.mm(self.gerr_avg, err_g.abs().sum(dim=2))  # (Lg, B): per-layer mean |error|
                for i, l in enumerate(self.group):
                    layer_errors[f"L{l}"] = means[i]
        if self.learning:  # target - y is this step's error where the target is the signal
            self._learn(targets, state, g, [e if t is s else None for e, t, s in zip(errs, targets, signals)], d2s)
            self.steps += 1
        lat, fb = self.factors()
        sel = f"{int(lat)}{int(fb)}"
        new_caches, new_h, ys = _Cache(), [], []
        flat_x = None  # flat in the inputs' dtype where that differs (precision bf16)
        for l, sig in enumerate(signals if g is None else signals[:1]):
            prev = sig if state.prev[l] is None else state.prev[l]
            integ = integs[l]
            if integ is None:
                integ = sig if state.integ[l] is None else self.tau * state.integ[l] + (1 - self.tau) * sig
            if self.fused_inputs and not torch.is_grad_enabled():
                buf = state.spare[l] if l < len(state.spare) else None
                dtype = self._input_dtype(B, sig.dtype)
                if dtype != flat.dtype:  # the states rounded to the inputs' dtype once per step, not per layer
                    flat_x = flat_x if flat_x is not None and flat_x.dtype == dtype else flat.to(dtype)
                x = self._inputs_in_place(l, sig, prev, integ, errs[l], flat if dtype == flat.dtype else flat_x,
                                          sel, buf, dtype)
            else:
                x = self._inputs_cat(l, sig, prev, integ, errs[l], flat, sel)
            x, h, h_aug, fp1, fp2, y = self._unit_forward(x, sig, lambda x, l=l: self._w1_forward(l, x),
                                                          getattr(self, f"w2_{l}"))
            new_caches.append((x, h_aug, fp1, fp2, y))
            new_h.append(h)
            ys.append(y)
            state.prev[l], state.integ[l] = sig, integ
        if g is not None:
            G = self.group
            prev = sig_g if state.prev[G[0]] is None else torch.cat([state.prev[l] for l in G])
            integ = sig_g if state.integ[G[0]] is None else (
                self.tau * torch.cat([state.integ[l] for l in G]) + (1 - self.tau) * sig_g)
            x = self._inputs_in_place(None, sig_g, prev, integ, err_g, flat, sel, state.spare_group)
            coef = self._group_coef(g)
            group = self._unit_forward(x, sig_g, lambda x: self._group_w1_forward(g, x, coef), g["w2"])
            x, h, h_aug, fp1, fp2, y = group
            new_caches.group = (x, h_aug, fp1, fp2, y)
            for l, (a, b) in zip(G, self.group_bounds):
                n_l = getattr(self, f"v1_{l}").shape[2]
                new_caches.append((x[a:b, :, :n_l], h_aug[a:b], fp1[a:b], fp2[a:b], y[a:b]))
                ys.append(y[a:b])
                state.prev[l], state.integ[l] = sig_g[a:b], integ[a:b]
            new_h.append(h)
        zero = torch.zeros(1, B, self.hidden, dtype=h_all.dtype, device=h_all.device)
        state.h_all = torch.cat(new_h + [zero], dim=0)
        kept = state.caches + [new_caches]
        state.caches = kept[-2:]
        # the inputs of a forward no longer cached are written over by a later step (no_grad only)
        dropped = kept[0] if len(kept) > 2 and not torch.is_grad_enabled() else []
        state.spare = [None if c[0].requires_grad else c[0] for c in dropped]
        state.spare_group = getattr(dropped, "group", None) and dropped.group[0]
        prediction = self.unpatch(ys[0][..., : sizes[0]]).clamp(0, 1)
        if g is not None:
            new_h = [new_h[0]] + [new_h[1][a:b] for a, b in self.group_bounds]
        internals = _Internals(self, signals, new_h, ys)
        return StepOutput(prediction=prediction, state=state, layer_errors=layer_errors, internals=internals)

    def _inputs_cat(self, l: int, sig: torch.Tensor, prev: torch.Tensor, integ: torch.Tensor,
                    err: torch.Tensor | None, flat: torch.Tensor, sel: str) -> torch.Tensor:
        """The unit inputs x (U, B, n_in + 1) of layer ``l`` as one concatenation (differentiable)."""
        U, B, _ = sig.shape
        idx = getattr(self, f"ctx_idx_{l}_{sel}")  # (U, K); lesioned slots read the zero row
        ones = torch.ones(U, B, 1, dtype=sig.dtype, device=sig.device)
        err_feat = 0.5 * err + 0.5 if err is not None else torch.full_like(sig, 0.5)
        ctx = flat.index_select(0, idx.view(-1)).view(U, idx.shape[1], B, -1)
        ctx = (ctx if B == 1 else ctx.transpose(1, 2)).reshape(U, B, -1)
        if self.center:  # features and live context slots shifted by -0.5 (lesioned slots stay 0)
            return torch.cat([sig - 0.5, 0.5 * (sig - prev), integ - 0.5, err_feat - 0.5,
                              ctx - getattr(self, f"ctx_half_{l}_{sel}"), ones], dim=2)
        return torch.cat([sig, 0.5 * (sig - prev) + 0.5, integ, err_feat, ctx, ones], dim=2)

    def _unit_forward(self, x: torch.Tensor, sig: torch.Tensor, w1_forward, w2: torch.Tensor) -> tuple:
        """Units' MLPs on inputs x (U, B, n): (x, h, h_aug, fp1, fp2, y) with h (U, B, hidden) the new
        states and y (U, B, out) the predictions; ``w1_forward(x)`` = x W1 (U, B, hidden)."""
        U, B, _ = x.shape
        s = w1_forward(x)
        tail = self._tail_for(B, U)
        if tail is not None:  # the two nonlinearities as compiled loops (tail.py)
            h_aug, fp1 = tail.hidden(s)
            base = None if not self.residual else sig.repeat(1, 1, 2) if self.two_steps else sig
            y, fp2 = tail.output(torch.bmm(h_aug, w2), base)
            return x, h_aug[..., :-1], h_aug, fp1, fp2, y
        if torch.is_grad_enabled():
            h, fp1 = rational_sigmoid_and_grad(s)
            h_aug = torch.cat([h, torch.ones(U, B, 1, dtype=x.dtype, device=x.device)], dim=2)
        else:  # the states written straight into h_aug (no concatenation pass)
            h_aug = torch.empty(U, B, self.hidden + 1, dtype=s.dtype, device=s.device)
            h_aug[..., -1].fill_(1.0)
            h, fp1 = rational_sigmoid_and_grad(s, out=h_aug[..., :-1])
        y, fp2 = rational_sigmoid_and_grad(torch.bmm(h_aug, w2))
        if self.residual:  # the MLP output encodes the change: prediction = signal + 2 (y - 0.5)
            y = (y - 0.5).mul_(2.0).add_(sig.repeat(1, 1, 2) if self.two_steps else sig)
        return x, h, h_aug, fp1, fp2, y

    def _inputs_in_place(self, l: int | None, sig: torch.Tensor, prev: torch.Tensor, integ: torch.Tensor,
                         err: torch.Tensor | None, flat: torch.Tensor, sel: str,
                         buf: torch.Tensor | None = None, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The unit inputs x (U, B, n_in + 1) of layer ``l`` written straight into one new tensor:
        the same values as the concatenation in :meth:`_inputs_cat`, but the gathered
        context -- the largest part -- is written once instead of copied three times (gather,
        reorder, shift, concatenate). Needs no_grad (writes into slices). ``buf``: a tensor to
        write into if it has the right shape (every element is written). ``l`` None: the upper-layer
        group (:meth:`_build_group`), each unit's bias at its own layer's column. ``dtype``: of x
        (default the signals'); a lower one (bf16) gets each value rounded once from the signals' dtype."""
        U, B, S = sig.shape
        idx = getattr(self, f"ctx_idx_{l}_{sel}" if l is not None else f"gctx_idx_{sel}")
        K, H = idx.shape[1], self.hidden
        shape = (U, B, 4 * S + K * H + 1)
        dtype = dtype or sig.dtype
        if buf is not None and buf.shape == shape and buf.dtype == dtype and buf.device == sig.device:
            x = buf
        else:
            x = torch.empty(shape, dtype=dtype, device=sig.device)
        c = 0.5 if self.center else 0.0  # centred: features shifted by -0.5
        if dtype != sig.dtype:  # features computed in the signals' dtype, rounded once into x
            self._features_rounded(x, sig, prev, integ, err, c)
        else:
            self._features(x, sig, prev, integ, err, c)
        dest = x[..., 4 * S:4 * S + K * H].view(U, B, K, H)
        half = getattr(self, f"ctx_half_{l}_{sel}" if l is not None else f"gctx_half_{sel}").view(U, 1, K, H)
        if B == 1:  # one gather of every slot, then one copy into place (fewest calls)
            ctx = flat.index_select(0, idx.view(-1)).view(U, K, B, H).transpose(1, 2)  # (U, B, K, H), a view
            if self.center:  # live context slots shifted by -0.5 (lesioned slots stay 0)
                torch.sub(ctx, half, out=dest)
            else:
                dest.copy_(ctx)
        else:  # several streams: each slot gathered straight into place (no temporary, no second copy)
            states = flat.view(flat.shape[0], B, H).to(dtype)
            for k, col in enumerate(idx.t().contiguous()):
                torch.index_select(states, 0, col, out=dest[:, :, k])
            if self.center:
                dest.sub_(half.to(dtype))
        if l is None:  # a unit with fewer slots than the group's widest has its bias inside the padding
            x[..., -1].fill_(0.0)
            x.scatter_(2, self.gbias_col.expand(U, B, 1), 1.0)
        else:
            x[..., -1].fill_(1.0)
        return x

    @staticmethod
    def _features(x: torch.Tensor, sig: torch.Tensor, prev: torch.Tensor, integ: torch.Tensor,
                  err: torch.Tensor | None, c: float) -> None:
        """The four feature blocks of x (signal, change, integral, error; each minus ``c``) written in place."""
        S = sig.shape[2]
        torch.sub(sig, c, out=x[..., :S])
        half = sig.new_tensor(0.5 - c)
        d = torch.sub(sig, prev, out=x[..., S:2 * S])
        torch.add(half, d, alpha=0.5, out=d)  # 0.5 d + (0.5 - c): 0.5 d is exact, one rounding as before
        torch.sub(integ, c, out=x[..., 2 * S:3 * S])
        if err is None:
            x[..., 3 * S:4 * S].fill_(0.5 - c)
        else:
            e = torch.add(sig.new_tensor(0.5), err, alpha=0.5, out=x[..., 3 * S:4 * S])
            if c:
                e.sub_(c)

    @staticmethod
    def _features_rounded(x: torch.Tensor, sig: torch.Tensor, prev: torch.Tensor, integ: torch.Tensor,
                          err: torch.Tensor | None, c: float) -> None:
        """:meth:`_features` into an x of a lower dtype: each block computed in the signals' dtype and
        rounded once on the copy into x."""
        S = sig.shape[2]
        half = sig.new_tensor(0.5 - c)  # 0.5 d + half in one multiply-add (0.5 d is exact), as in _features
        x[..., :S].copy_(sig - c if c else sig)
        d = torch.sub(sig, prev)
        x[..., S:2 * S].copy_(torch.add(half, d, alpha=0.5, out=d))
        x[..., 2 * S:3 * S].copy_(integ - c if c else integ)
        if err is None:
            x[..., 3 * S:4 * S].fill_(0.5 - c)
        else:
            x[..., 3 * S:4 * S].copy_(torch.add(half, err, alpha=0.5))

    def _input_dtype(self, B: int, dtype: torch.dtype) -> torch.dtype:
        """dtype of the unit inputs x of a no_grad step with ``B`` streams: bfloat16 with
        ``precision`` bf16 and several streams (:meth:`_w1_lowp`), else the model's ``dtype``."""
        return torch.bfloat16 if self.precision == "bf16" and B > 1 else dtype

    # ------------------------------------------------------------------ W1: stored weights, lazy updates
    # Momentum (M_t = mu M_{t-1} + lr_t g_t, W_t = W_{t-1} + M_t) is kept as v = W + c M with
    # c = mu / (1 - mu), which takes a plain step: v_t = v_{t-1} + lr_t g_t / (1 - mu). With one
    # stream g_j = d_j a_j^T (delta times input), and the last K steps' (a_j, e_j = lr_j d_j) sit
    # in a ring, where K is the smallest with mu^K below the dtype's epsilon (23 for mu 0.5 in
    # float32); older momentum terms are dropped. The ring also holds the steps not yet added to v
    # ("pending", at most K): they are added all at once (one rank-K product) when the ring wraps.
    # So W1_t = v + sum_j (pending_j / (1 - mu) - c mu^age_j) e_j a_j^T, and x W1 costs one read
    # of v plus K dot products per unit -- instead of reading and writing W and M every step
    # (the step is memory-bound, reference/pvm.md section 9).
    # Several streams ("plain" form, plain_<l> true): the gradient has rank B, so there is no ring;
    # v1 holds W1^T itself and p1 the momentum M (times mu^age, see _dense_coef): the forward reads
    # W once, the update is one product into M (M <- mu M + lr g) and one pass W += M. The form
    # changes when the number of streams does (_to_plain, _to_folded: one pass each). With
    # plain_streams false several streams keep the folded form instead: v updated by its own
    # product and a dense pending P beside it (W1 = v - c mu^age P), two products per update and
    # two reads per forward.

    def _ring_coef(self, l: int, clock: int, lag: bool = True) -> torch.Tensor | None:
        """Per ring slot (R,): pending / (1 - mu) - c mu^age (lag) or mu^age (the momentum alone);
        zero for empty slots; None if the ring is empty."""
        if not self.use_ring:
            return None
        stamps = getattr(self, f"rstamp_{l}").tolist()
        if not any(stamps):
            return None
        if lag:
            coef = self._lag_coefs(stamps, getattr(self, f"rpend_{l}").tolist(), clock)
        else:
            coef = [self.momentum ** (clock - j) if j else 0.0 for j in stamps]
        v1 = getattr(self, f"v1_{l}")
        return torch.tensor(coef, dtype=v1.dtype, device=v1.device)

    def _lag_coefs(self, stamps: list[int], pend: list[bool], clock: int) -> list[float]:
        """Per ring slot: pending / (1 - mu) - c mu^age, 0 for an empty slot (stamp 0)."""
        mu, c = self.momentum, self._c
        return [(p / (1 - mu) - c * mu ** (clock - j)) if j else 0.0 for j, p in zip(stamps, pend)]

    @staticmethod
    def _ring_product(s_t: torch.Tensor, ra: torch.Tensor, re: torch.Tensor, xt: torch.Tensor,
                      coef: torch.Tensor) -> torch.Tensor:
        """s_t (U, B, H) plus the ring's share of x W1: sum_j coef_j (a_j . x) e_j, with ra (U, R, n),
        re (U, R, H), xt (U, n, B) and coef broadcastable to (U, R, 1)."""
        dots = torch.bmm(ra, xt).mul_(coef)  # (U, R, B)
        return torch.baddbmm(s_t, dots.transpose(1, 2), re)

    @staticmethod
    def _add_pending(v1: torch.Tensor, ra: torch.Tensor, re: torch.Tensor, coef: torch.Tensor) -> None:
        """v1 += (re * coef)^T ra: the ring's pending steps into v1 in one batched rank-R product."""
        v1.baddbmm_((re * coef).transpose(1, 2), ra)

    def _dense_coef(self, l: int, clock: int) -> float:
        """mu^age of the dense pending momentum, 0 if absent or expired."""
        ps = int(getattr(self, f"pstamp_{l}"))
        if ps == 0 or getattr(self, f"p1_{l}").numel() == 0 or clock - ps >= self.ring_terms:
            return 0.0
        return self.momentum ** (clock - ps)

    def _w1_forward(self, l: int, x: torch.Tensor) -> torch.Tensor:
        """x (U, B, n_in + 1) -> x W1 (U, B, hidden)."""
        xt = x.transpose(1, 2)
        if x.dtype != getattr(self, f"v1_{l}").dtype:  # bf16 inputs: the plain form's low-precision copy
            if not bool(getattr(self, f"plain_{l}")):
                self._to_plain(l)
            return torch.bmm(self._w1_lowp(l)["w"], xt).transpose(1, 2).to(getattr(self, f"v1_{l}").dtype)
        s = torch.bmm(getattr(self, f"v1_{l}"), xt)  # (U, H, B)
        if self.momentum and not bool(getattr(self, f"plain_{l}")):
            clock = int(getattr(self, f"clock_{l}"))
            beta = self._dense_coef(l, clock)
            if beta:
                s.baddbmm_(getattr(self, f"p1_{l}"), xt, alpha=-self._c * beta)
            coef = self._ring_coef(l, clock)
            if coef is not None:
                return self._ring_product(s.transpose(1, 2), getattr(self, f"ra_{l}"), getattr(self, f"re_{l}"), xt,
                                          coef.view(1, -1, 1))
        return s.transpose(1, 2)

    def _w1_lowp(self, l: int) -> dict:
        """Layer ``l``'s precision-bf16 tensors: w, W1^T in bfloat16 (U, H, n), rounded from v1
        whenever v1 changed since (checked by tensor identity and version counter, so any in-place
        write -- an update, a form change, a load -- is seen); g16 / g (U, H, n): scratch for the
        gradient product (bfloat16) and its copy in v1's dtype. v1 must hold W1^T (plain form)."""
        v1 = getattr(self, f"v1_{l}")
        c = self._lowp.get(l)
        if c is None or c["src"]() is not v1:
            c = self._lowp[l] = {"src": weakref.ref(v1), "version": -1,
                                 "w": torch.empty(v1.shape, dtype=torch.bfloat16, device=v1.device)}
        if c["version"] != v1._version:
            c["w"].copy_(v1)
            c["version"] = v1._version
        return c

    def _dense_momentum(self, l: int) -> torch.Tensor:
        """Layer ``l``'s dense pending momentum p1 (W1's shape), allocated as zeros on first use."""
        p = getattr(self, f"p1_{l}")
        if p.numel() == 0:
            p = self._buffers[f"p1_{l}"] = torch.zeros_like(getattr(self, f"v1_{l}"))
        return p

    def _w1_update_lowp(self, l: int, x: torch.Tensor, d1: torch.Tensor, lr: float, clock: int) -> None:
        """The plain form's update with x (U, B, n) in bfloat16: the gradient lr/B d1^T x as one
        bfloat16 product (fp32 accumulation, rounded to bfloat16), then in v1's dtype
        M <- mu^age M + g and W += M; the bfloat16 copy of W follows on its next use (:meth:`_w1_lowp`
        sees v1's new version), or in the same pass when the update runs compiled."""
        v1 = getattr(self, f"v1_{l}")
        c = self._w1_lowp(l)
        if "g16" not in c:
            c["g16"] = torch.empty(v1.shape, dtype=torch.bfloat16, device=v1.device)
        d = (d1 * (lr / x.shape[1])).to(torch.bfloat16)
        torch.bmm(d.transpose(1, 2), x, out=c["g16"])
        tail = self._tail_for(x.shape[1], x.shape[0])
        if tail is not None and self.momentum:  # the four passes below as one compiled loop (tail.py)
            p = self._dense_momentum(l)
            tail.lowp_update(c["g16"], p, v1, c["w"], self._dense_coef(l, clock))
            getattr(self, f"pstamp_{l}").fill_(clock)
            c["version"] = v1._version
            return
        if "g" not in c:
            c["g"] = torch.empty_like(v1)
        g = c["g"].copy_(c["g16"])
        if self.momentum:
            p = self._dense_momentum(l)
            torch.add(g, p, alpha=self._dense_coef(l, clock), out=p)
            getattr(self, f"pstamp_{l}").fill_(clock)
            v1.add_(p)
        else:
            v1.add_(g)

    def _flush(self, l: int) -> None:
        """Add the ring's pending steps to v1 (one batched rank-R product)."""
        pend = getattr(self, f"rpend_{l}")
        v1 = getattr(self, f"v1_{l}")
        coef = pend.to(v1.dtype).view(1, -1, 1) / (1 - self.momentum)
        self._add_pending(v1, getattr(self, f"ra_{l}"), getattr(self, f"re_{l}"), coef)
        pend.zero_()

    def _to_plain(self, l: int) -> None:
        """Folded form -> plain form: v1 <- W1^T, p1 <- the momentum (stamped now), ring emptied."""
        w, _ = self.layer_weights(l)
        m = self.momentum_w1(l)
        getattr(self, f"v1_{l}").copy_(w.transpose(1, 2))
        if self.momentum:
            self._buffers[f"p1_{l}"] = m.transpose(1, 2).contiguous()
            getattr(self, f"pstamp_{l}").copy_(getattr(self, f"clock_{l}"))
        getattr(self, f"rstamp_{l}").zero_()
        getattr(self, f"rpend_{l}").zero_()
        getattr(self, f"plain_{l}").fill_(True)

    def _to_folded(self, l: int) -> None:
        """Plain form -> folded form: v1 <- W1^T + c M; p1 stays as the dense pending momentum."""
        beta = self._dense_coef(l, int(getattr(self, f"clock_{l}")))
        if beta:
            getattr(self, f"v1_{l}").add_(getattr(self, f"p1_{l}"), alpha=self._c * beta)
        getattr(self, f"plain_{l}").fill_(False)

    def _w1_update(self, l: int, x: torch.Tensor, d1: torch.Tensor, lr: float) -> None:
        """One momentum step of W1 with gradient mean_b d1_b x_b^T (x (U, B, n), d1 (U, B, H))."""
        v1, mu = getattr(self, f"v1_{l}"), self.momentum
        clock_t = getattr(self, f"clock_{l}")
        clock = int(clock_t) + 1
        B = x.shape[1]
        plain = bool(getattr(self, f"plain_{l}"))
        if B == 1 and self.use_ring:
            if plain:
                self._to_folded(l)
            slot = (clock - 1) % self.ring_terms  # written ring_terms updates ago: momentum expired
            pend = getattr(self, f"rpend_{l}")
            if bool(pend[slot]):  # not yet in v1: add all pending steps now
                self._flush(l)
            getattr(self, f"ra_{l}")[:, slot].copy_(x[:, 0])
            torch.mul(d1[:, 0], lr, out=getattr(self, f"re_{l}")[:, slot])
            getattr(self, f"rstamp_{l}")[slot] = clock
            pend[slot] = True
        elif self.plain_streams or x.dtype != v1.dtype:
            if not plain:
                self._to_plain(l)
            if x.dtype != v1.dtype:
                self._w1_update_lowp(l, x, d1, lr, clock)
            elif mu:  # M <- mu^age M + lr g (one product), W += M (one pass)
                p = self._dense_momentum(l)
                p.baddbmm_(d1.transpose(1, 2), x, beta=self._dense_coef(l, clock), alpha=lr / B)
                getattr(self, f"pstamp_{l}").fill_(clock)
                v1.add_(p)
            else:
                v1.baddbmm_(d1.transpose(1, 2), x, alpha=lr / B)
        else:
            if plain:
                self._to_folded(l)
            if B == 1:
                v1.addcmul_(d1.transpose(1, 2), x, value=lr / (1 - mu))
            else:
                v1.baddbmm_(d1.transpose(1, 2), x, alpha=lr / ((1 - mu) * B))
            if mu:
                beta = self._dense_coef(l, clock)
                p = self._dense_momentum(l)
                p.baddbmm_(d1.transpose(1, 2), x, beta=beta, alpha=lr / B)
                getattr(self, f"pstamp_{l}").fill_(clock)
        clock_t.fill_(clock)

    # ------------------------------------------------------------------ the upper-layer group
    # Layers 1..L-1 all read 4 child states (same signal size) from the same snapshot, so one
    # stream computes them as one batch of units (:meth:`_build_group`): one gather, one product
    # per weight tensor, one learning update instead of one per layer -- fewer, larger tensor
    # operations for the same values (the step's small operations cost ~2 ms of ~8 at batch 1).
    # Their W1 rings share one clock while the group learns, each layer at its own rate; a layer
    # not learning yet joins at rate 0 (its weights do not change) as long as it holds no momentum.
    # Steps that cannot be grouped learn layer by layer on the same storage, and the next group
    # update re-bases the clocks.

    def _group_ready(self, B: int) -> dict | None:
        """The group's tensors if this step runs the upper layers as one group, else None: one
        stream, ring form, no_grad, inputs in place, no layer holding W1 plain or a live dense
        pending momentum (both only right after several streams)."""
        if (not self.group or not self.group_layers or B != 1 or not self.use_ring or not self.fused_inputs
                or torch.is_grad_enabled()):
            return None
        g = self._group_storage()
        for l, c in zip(self.group, g["clock"].tolist()):
            if bool(getattr(self, f"plain_{l}")) or self._dense_coef(l, c):
                return None
        return g

    def _group_coef(self, g: dict) -> torch.Tensor | None:
        """The ring coefficients of :meth:`_ring_coef` for every group unit: (1, R, 1) when every
        layer's ring is in the same state, else (Ug, R, 1); None if every ring is empty."""
        stamps, pend, clocks = g["rstamp"].tolist(), g["rpend"].tolist(), g["clock"].tolist()
        if not any(any(st) for st in stamps):
            return None
        rows, last = [], None
        for key in zip(stamps, pend, clocks):
            if key != last:
                row = self._lag_coefs(*key)
                last = key
            rows.append(row)
        v1 = g["v1"]
        if all(r is rows[0] for r in rows):
            return torch.tensor(rows[0], dtype=v1.dtype, device=v1.device).view(1, -1, 1)
        return torch.tensor(rows, dtype=v1.dtype, device=v1.device)[self.gunit_layer].unsqueeze(2)

    def _group_w1_forward(self, g: dict, x: torch.Tensor, coef: torch.Tensor | None) -> torch.Tensor:
        """x (Ug, 1, n) -> x W1 (Ug, 1, hidden) for the group (as :meth:`_w1_forward`)."""
        xt = x.transpose(1, 2)
        s = torch.bmm(g["v1"], xt)  # (Ug, H, 1)
        if coef is None:
            return s.transpose(1, 2)
        return self._ring_product(s.transpose(1, 2), g["ra"], g["re"], xt, coef)

    def _group_flush(self, g: dict) -> None:
        """Add every group layer's pending ring steps to v1 (as :meth:`_flush`)."""
        pend = g["rpend"]
        coef = (pend.to(g["v1"].dtype) / (1 - self.momentum))[self.gunit_layer].unsqueeze(2)
        self._add_pending(g["v1"], g["ra"], g["re"], coef)
        pend.zero_()

    def _group_rebase(self, g: dict, clocks: list[int]) -> None:
        """Give every group layer the largest clock: stamps shifted by the same amount (ages, so
        every coefficient, unchanged) and ring slots rolled to match (slot = (stamp - 1) mod R)."""
        C = max(clocks)
        for i, (l, ck, (a, b)) in enumerate(zip(self.group, clocks, self.group_bounds)):
            s = C - ck
            if not s:
                continue
            st = g["rstamp"][i]
            st.copy_(torch.roll(torch.where(st > 0, st + s, st), s))
            g["rpend"][i].copy_(torch.roll(g["rpend"][i], s))
            for name in ("ra", "re"):
                g[name][a:b] = torch.roll(g[name][a:b], s, dims=1)
            ps = getattr(self, f"pstamp_{l}")
            if int(ps):
                ps.add_(s)
        g["clock"].fill_(C)

    def _learn_group(self, g: dict, cache: tuple[torch.Tensor, ...], target: torch.Tensor, lrs: list[float]) -> None:
        """One learning step of every group layer, the i-th at rate ``lrs[i]`` (as :meth:`_learn_layer`,
        one stream). A layer at rate 0 holds no momentum (see :meth:`_learn`): its W2 momentum stays
        zero and its ring slot is written but left unstamped (empty), so its weights do not change."""
        x, h_aug, fp1, fp2, y = cache
        d2 = (target - y) * fp2
        if self.residual:
            d2.mul_(0.5)
        w2, m2 = g["w2"], g["m2"]
        d1 = torch.bmm(d2, w2[:, : self.hidden].transpose(1, 2)) * fp1
        if all(r == lrs[0] for r in lrs):
            lr = lrs[0]
            m2.mul_(self.momentum).addcmul_(h_aug.transpose(1, 2), d2, value=lr)
        else:  # per-unit rates
            lr = torch.tensor(lrs, dtype=x.dtype, device=x.device)[self.gunit_layer].view(-1, 1, 1)
            m2.mul_(self.momentum).addcmul_(h_aug.transpose(1, 2), d2 * lr)
            lr = lr[:, 0]
        w2.add_(m2)
        clocks = g["clock"].tolist()
        if min(clocks) != max(clocks):
            self._group_rebase(g, clocks)
        clock = max(clocks) + 1
        slot = (clock - 1) % self.ring_terms
        pend = g["rpend"]
        if bool(pend[:, slot].any()):
            self._group_flush(g)
        g["ra"][:, slot].copy_(x[:, 0])
        torch.mul(d1[:, 0], lr, out=g["re"][:, slot])
        if all(lrs):
            g["rstamp"][:, slot] = clock
            pend[:, slot] = True
        else:
            rows = torch.tensor([i for i, r in enumerate(lrs) if r], device=pend.device)
            g["rstamp"][rows, slot] = clock
            pend[rows, slot] = True
        g["clock"].fill_(clock)

    # ------------------------------------------------------------------ learning
    def _learn(self, signals: list[torch.Tensor], state: PVMState, g: dict | None = None,
               errs: list[torch.Tensor | None] | None = None, d2s: list[torch.Tensor | None] | None = None) -> None:
        """Train the forward whose targets are all known now, in place, unit by unit (batched).
        ``g``: the group's tensors when this step runs the upper layers as one group; ``errs``: per
        layer, signal - the last forward's prediction where already computed (else None); ``d2s``:
        per layer, the output delta where already computed (else None)."""
        if self.two_steps:
            if len(state.caches) < 2:
                return
            cache = state.caches[-2]  # made two steps ago: predicted [previous, this] signal
        else:
            if not state.caches:
                return
            cache = state.caches[-1]
        step = int(self.steps)
        lrs = [self.schedule.lr(l, step) * self.lr_scale for l in range(self.n_layers)]
        group = g is not None and getattr(cache, "group", None) is not None and any(lrs[l] for l in self.group)
        if group:  # a layer not learning now joins at rate 0 only if it holds no momentum to keep frozen
            stamps = g["rstamp"].tolist()
            group = not any(any(stamps[i]) or int(getattr(self, f"pstamp_{l}"))
                            for i, l in enumerate(self.group) if lrs[l] == 0.0)
        for l, sig in enumerate(signals[:1] if group else signals):
            if lrs[l] == 0.0:  # layer not switched on yet: its momentum is still zero
                continue
            target = torch.cat([state.prev[l], sig], dim=2) if self.two_steps else sig
            diff = errs[l] if errs and not self.two_steps else None
            self._learn_layer(l, cache[l], target, lrs[l], diff, d2s[l] if d2s and not self.two_steps else None)
        if group:
            sig = torch.cat(signals[1:])
            target = torch.cat([torch.cat([state.prev[l] for l in self.group]), sig], dim=2) if self.two_steps else sig
            self._learn_group(g, cache.group, target, [lrs[l] for l in self.group])

    def _learn_layer(self, l: int, cache: tuple[torch.Tensor, ...], target: torch.Tensor, lr: float,
                     diff: torch.Tensor | None = None, d2: torch.Tensor | None = None) -> None:
        """One learning step of layer ``l`` from its cached forward (x, h_aug, fp1, fp2, y);
        ``diff``: target - y, ``d2``: the output delta, if already computed."""
        x, h_aug, fp1, fp2, y = cache
        mu = self.momentum
        w2, m2 = getattr(self, f"w2_{l}"), getattr(self, f"m2_{l}")
        B = target.shape[1]
        if d2 is None:
            d2 = (target - y if diff is None else diff) * fp2  # (U, B, out)
            if self.residual:  # d(prediction)/d(MLP output) = 2; the MLP's own target is 0.5 (target - signal) + 0.5
                d2.mul_(0.5)
        d1 = torch.bmm(d2, w2[:, : self.hidden].transpose(1, 2)).mul_(fp1)  # (U, B, H), before W2 changes
        if B == 1:  # rank-1 update: broadcasting multiply-add, no temporary
            m2.mul_(mu).addcmul_(h_aug.transpose(1, 2), d2, value=lr)
        else:
            m2.baddbmm_(h_aug.transpose(1, 2), d2, beta=mu, alpha=lr / B)
        w2.add_(m2)
        self._w1_update(l, x, d1, lr)

    # ------------------------------------------------------------------ unlearning (predvis sleep)
    @torch.no_grad()
    def clear_momentum(self) -> None:
        """Set every momentum term to zero; the weights W1, W2 stay exactly what they are now."""
        for l in range(self.n_layers):
            w1, _ = self.layer_weights(l)
            getattr(self, f"v1_{l}").copy_(w1.transpose(1, 2))
            for name in ("ra", "re", "rstamp", "rpend"):
                getattr(self, f"{name}_{l}").zero_()
            getattr(self, f"pstamp_{l}").zero_()
            getattr(self, f"m2_{l}").zero_()

    @torch.no_grad()
    def unlearn_step(self, clip: torch.Tensor, rate: float, burn_in: int) -> None:
        """Unlearn the attractor in ``clip`` (B, T, C, H, W) (docs/probes.md, sleep): from a fresh
        state, ``burn_in`` steps without learning, then the rest of the clip with PVM's own local
        rule at its scheduled rates times ``-rate``. Momentum is zero before and after (the step is
        a sum of its own gradient terms); the developmental clock does not advance."""
        learning, scale, steps = self.learning, self.lr_scale, self.steps.clone()
        self.clear_momentum()
        state = self.init_state(clip.shape[0])
        try:
            self.lr_scale = -float(rate)
            for t in range(clip.shape[1]):
                self.learning = t >= max(burn_in, 1)  # step t trains the prediction of frame t
                state = self.step(clip[:, t], state).state
        finally:
            self.learning, self.lr_scale = learning, scale
            self.steps.copy_(steps)
            self.clear_momentum()

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

    def feedforward_view(self) -> FeedforwardView:
        """This PVM shown one static image until it settles (:class:`predvis.backends.pvm.view.PVMFeedforward`)."""
        from predvis.backends.pvm.view import PVMFeedforward

        view = PVMFeedforward(self).eval()
        return FeedforwardView(view, f"state{(self.n_layers - 1) // 2}", self.frame_shape[1], self.frame_shape[0],
                               f"static image settled {view.settle} steps")
