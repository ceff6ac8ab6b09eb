"""Recurrent autoencoders for depth inversion: B, BL, BT and BLT encoders and decoders.

Architecture (docs/depth_inversion.md; after the DIAE code described in
/work/shared/reference/recurrence.md, written anew):

- Encoder, input (B, 1, S, S) with S = 32: three 4x4 stride-2 convolutions of ``channels`` (32)
  maps (S/2, S/4, S/8), flatten, two hidden fully connected layers of ``hidden`` (256) units and a
  linear map to the ``code`` (24) dimensional code.
- Decoder, the mirror: code -> FC ``hidden`` -> FC ``hidden`` -> FC to ``channels`` x S/8 x S/8 ->
  two 4x4 stride-2 transposed convolutions (``channels`` maps) -> one 4x4 stride-2 transposed
  convolution to one logit map (S x S); the image is ``sigmoid`` of it.
- Recurrence lives on the three convolutional maps of each half (encoder: S/2, S/4, S/8; decoder:
  S/8, S/4, S/2). ``L`` (lateral): a bias-free 3x3 convolution of the map's own state at the
  previous step. ``T`` (top-down): the state of the *next* map in the processing order at the
  previous step, brought to this map's size (encoder: 4x4 stride-2 transposed convolution from the
  smaller map; decoder: 4x4 stride-2 convolution from the larger map). The last map of each half
  gets no top-down input (the FC layers are not fed back). Terms add before the normalisation:
  ``h_l(t) = relu(norm(B(h_{l-1}(t)) + L(h_l(t-1)) + T(h_{l+1}(t-1))))``.
- Unrolling: a *sweep* per step (layer l at step t reads layer l-1 of the same step). At t = 0
  there is no previous state, so every variant computes its feed-forward (B) pass. The input
  image (encoder) or code (decoder) is re-injected at every step. ``chained`` (default, as in the
  DIAE code): the encoder runs ``steps`` steps, its final code goes to the decoder, which runs
  ``steps`` steps; outputs are the decoder's steps. ``joint``: one encoder step and one decoder step
  per step, the decoder reading the encoder's current code.
- Normalisation is one module per layer, shared by all steps (``lrn``: local response norm as in
  the DIAE code, parameter-free, computed by ``lrn``: ``fused`` or ``shifted``, predvis/backends/depth_inversion/lrn.py;
  ``group``: GroupNorm with shared affine parameters; ``none``), so a
  model runs past the number of steps it was trained with.
- Lesions: ``disabled`` may hold ``lateral`` and/or ``topdown``; a disabled pathway contributes
  nothing at any step. With both off, every step equals step 0: the feed-forward computation.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

import torch
import torch.nn as nn
import torch.nn.functional as F

from predvis.config import ConfigError, positive
from predvis.backends.depth_inversion.lrn import FusedLRN, ShiftedLRN

VARIANTS = ("B", "BL", "BT", "BLT")


def check_variant(name: str, where: str) -> str:
    if name not in VARIANTS:
        from predvis.config import suggest

        raise ConfigError(f"{where}: unknown variant '{name}'{suggest(name, VARIANTS)}; use one of B, BL, BT, BLT")
    return name


@dataclass
class RecurrentAEConfig:
    """Model section of experiments/depth_inversion.yaml."""

    encoder: str = "BLT"          # B | BL | BT | BLT
    decoder: str = "BLT"          # B | BL | BT | BLT
    steps: int = 4                # unrolled steps (per half when chained)
    unroll: Literal["chained", "joint"] = "chained"
    channels: int = 32            # maps of every conv layer
    hidden: int = 256             # units of the two hidden FC layers
    code: int = 24                # code dimension
    norm: Literal["lrn", "group", "none"] = "lrn"
    lrn: Literal["fused", "shifted"] = "fused"   # norm=lrn: one node with a written-out backward, or autograd through shifted adds (same maths)
    image_size: int = 32
    match: str = ""               # '' or a variant: widen B halves' channels to that variant's parameter count

    def validate(self) -> None:
        check_variant(self.encoder, "model.encoder")
        check_variant(self.decoder, "model.decoder")
        if self.match:
            check_variant(self.match, "model.match")
        if self.steps < 1:
            raise ConfigError(f"model.steps: must be >= 1 (T < 1 unrolls nothing), got {self.steps}")
        for key in ("channels", "hidden", "code"):
            positive(f"model.{key}", getattr(self, key))
        if self.image_size < 16 or self.image_size % 8:
            raise ConfigError(f"model.image_size: must be a multiple of 8 and >= 16, got {self.image_size}")

    @property
    def name(self) -> str:
        return f"{self.encoder}-{self.decoder}"


# kept under its first name: saved code and docs refer to ChannelLRN
ChannelLRN = ShiftedLRN


def _norm(kind: str, channels: int, lrn: str = "fused") -> nn.Module:
    if kind == "lrn":
        return FusedLRN() if lrn == "fused" else ShiftedLRN()
    if kind == "group":
        return nn.GroupNorm(min(8, channels), channels)
    return nn.Identity()


class RecurrentHalf(nn.Module):
    """One half (encoder or decoder) with its three recurrent conv maps.

    ``forward_step(x, prev)`` -> (out, states): ``x`` the re-injected input (image (B, 1, S, S) for
    the encoder, code (B, code) for the decoder), ``prev`` the three map states of the previous step
    (or None), ``out`` the code (encoder) or the logit image (decoder).
    """

    def __init__(self, role: str, variant: str, cfg: RecurrentAEConfig, channels: int):
        super().__init__()
        self.role, self.variant = role, variant
        self.lateral_on = "L" in variant
        self.topdown_on = "T" in variant
        c, h, s = channels, cfg.hidden, cfg.image_size
        self.small = s // 8
        self.channels = c
        if role == "encoder":
            self.bottom = nn.ModuleList([nn.Conv2d(1, c, 4, 2, 1), nn.Conv2d(c, c, 4, 2, 1), nn.Conv2d(c, c, 4, 2, 1)])
            self.fc = nn.ModuleList([nn.Linear(c * self.small ** 2, h), nn.Linear(h, h), nn.Linear(h, cfg.code)])
            # top-down into map l from map l+1 (smaller): transposed conv up
            make_td = lambda: nn.ConvTranspose2d(c, c, 4, 2, 1)  # noqa: E731
        else:
            self.fc = nn.ModuleList([nn.Linear(cfg.code, h), nn.Linear(h, h), nn.Linear(h, c * self.small ** 2)])
            self.bottom = nn.ModuleList([nn.ConvTranspose2d(c, c, 4, 2, 1), nn.ConvTranspose2d(c, c, 4, 2, 1)])
            self.out = nn.ConvTranspose2d(c, 1, 4, 2, 1)
            # top-down into map l from map l+1 (larger): strided conv down
            make_td = lambda: nn.Conv2d(c, c, 4, 2, 1)  # noqa: E731
        self.norms = nn.ModuleList([_norm(cfg.norm, c, cfg.lrn) for _ in range(3)])
        self.lateral = nn.ModuleList([nn.Conv2d(c, c, 3, 1, 1, bias=False) for _ in range(3)]) if self.lateral_on else None
        self.topdown = nn.ModuleList([make_td() for _ in range(2)]) if self.topdown_on else None
        self.disabled: set[str] = set()
        for m in self.modules():  # Kaiming-normal for Linear / Conv2d as in the DIAE code
            if isinstance(m, (nn.Linear, nn.Conv2d)):
                nn.init.kaiming_normal_(m.weight, nonlinearity="relu")
                if m.bias is not None:
                    nn.init.zeros_(m.bias)

    @property
    def recurrent(self) -> bool:
        return (self.lateral_on and "lateral" not in self.disabled) or (self.topdown_on and "topdown" not in self.disabled)

    def _map(self, i: int, drive: torch.Tensor, prev) -> torch.Tensor:
        if prev is not None:
            if self.lateral_on and "lateral" not in self.disabled:
                drive = drive + self.lateral[i](prev[i])
            if self.topdown_on and "topdown" not in self.disabled and i < 2:
                drive = drive + self.topdown[i](prev[i + 1])
        return F.relu(self.norms[i](drive))

    def input_drive(self, x: torch.Tensor) -> torch.Tensor:
        """The bottom-up drive of the first map from the re-injected input alone (the same at every
        step for the same input): encoder ``bottom[0](image)``, decoder the FC stack of the code."""
        if self.role == "encoder":
            return self.bottom[0](x)
        a = F.relu(self.fc[0](x))
        a = F.relu(self.fc[1](a))
        return self.fc[2](a).view(-1, self.channels, self.small, self.small)

    def forward_step(self, x: torch.Tensor, prev=None, drive: torch.Tensor | None = None):
        """``drive``: ``input_drive(x)`` if already computed for this input (computed here if None)."""
        states = []
        drive = self.input_drive(x) if drive is None else drive
        if self.role == "encoder":
            a = drive
            for i in range(3):
                a = self._map(i, a if i == 0 else self.bottom[i](a), prev)
                states.append(a)
            a = a.flatten(1)
            a = F.relu(self.fc[0](a))
            a = F.relu(self.fc[1](a))
            return self.fc[2](a), states
        a = self._map(0, drive, prev)
        states.append(a)
        for i in range(2):
            a = self._map(i + 1, self.bottom[i](a), prev)
            states.append(a)
        return self.out(a), states


def half_params(role: str, variant: str, cfg: RecurrentAEConfig, channels: int | None = None) -> int:
    """Parameters (weights + biases) of one half, counted from the layer shapes without building it."""
    c, h, z = channels or cfg.channels, cfg.hidden, cfg.code
    flat = c * (cfg.image_size // 8) ** 2
    conv = 16 * c * c + c                                   # a 4x4 c -> c (transposed) convolution
    if role == "encoder":
        n = (16 * c + c) + 2 * conv + (flat * h + h) + (h * h + h) + (h * z + z)
    else:
        n = (z * h + h) + (h * h + h) + (h * flat + flat) + 2 * conv + (16 * c + 1)
    n += 3 * 9 * c * c if "L" in variant else 0
    n += 2 * conv if "T" in variant else 0
    n += 3 * 2 * c if cfg.norm == "group" else 0
    return n


def matched_channels(role: str, target: str, cfg: RecurrentAEConfig) -> int:
    """Channels of a B half whose parameter count is nearest that of a ``target`` half."""
    goal = half_params(role, target, cfg)
    best = min(range(cfg.channels, 4 * cfg.channels + 1), key=lambda c: abs(half_params(role, "B", cfg, c) - goal))
    return best


class RecurrentAE(nn.Module):
    """Encoder + decoder; ``forward(x, steps)`` -> logits at every output step (steps, B, 1, S, S)."""

    pathway_names = ("lateral", "topdown")

    def __init__(self, cfg: RecurrentAEConfig):
        super().__init__()
        self.cfg = cfg
        ch = {}
        for role, variant in (("encoder", cfg.encoder), ("decoder", cfg.decoder)):
            ch[role] = matched_channels(role, cfg.match, cfg) if cfg.match and variant == "B" else cfg.channels
        self.encoder = RecurrentHalf("encoder", cfg.encoder, cfg, ch["encoder"])
        self.decoder = RecurrentHalf("decoder", cfg.decoder, cfg, ch["decoder"])

    # lesions ------------------------------------------------------------------
    @property
    def pathways(self) -> tuple[str, ...]:
        have = []
        if self.encoder.lateral_on or self.decoder.lateral_on:
            have.append("lateral")
        if self.encoder.topdown_on or self.decoder.topdown_on:
            have.append("topdown")
        return tuple(have)

    @property
    def disabled(self) -> set[str]:
        return set(self.encoder.disabled)

    @disabled.setter
    def disabled(self, names) -> None:
        self.encoder.disabled = set(names)
        self.decoder.disabled = set(names)

    # running ------------------------------------------------------------------
    def encode(self, x: torch.Tensor, steps: int) -> list[torch.Tensor]:
        """Codes after each of ``steps`` encoder steps (a feed-forward half is computed once)."""
        drive = self.encoder.input_drive(x)  # the image is re-injected unchanged: its drive is too
        code, states = self.encoder.forward_step(x, drive=drive)
        codes = [code]
        for _ in range(steps - 1):
            if not self.encoder.recurrent:
                codes.append(code)
                continue
            code, states = self.encoder.forward_step(x, states, drive)
            codes.append(code)
        return codes

    def forward(self, x: torch.Tensor, steps: int | None = None) -> torch.Tensor:
        """x (B, 1, S, S) in [0, 1] -> logits (steps, B, 1, S, S), one image per output step."""
        steps = self.cfg.steps if steps is None else steps
        if steps < 1:
            raise ConfigError(f"steps: must be >= 1, got {steps}")
        if self.cfg.unroll == "chained":
            code = self.encode(x, steps)[-1]
            codes = [code] * steps
        else:
            codes = self.encode(x, steps)
        outs, states, drive = [], None, None
        for t in range(steps):
            same = t > 0 and codes[t] is codes[t - 1]
            if same and not self.decoder.recurrent:
                outs.append(outs[-1])
                continue
            if not same:  # chained: one code for every decoder step, so one drive
                drive = self.decoder.input_drive(codes[t])
            out, states = self.decoder.forward_step(codes[t], states, drive)
            outs.append(out)
        return torch.stack(outs)


def sse_per_image(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Summed squared error over the pixels of each image: (..., B, 1, S, S) -> (..., B)."""
    return ((torch.sigmoid(logits) - target) ** 2).flatten(-3).sum(-1)
