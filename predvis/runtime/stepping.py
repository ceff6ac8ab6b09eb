"""The shared stepping interface that every predictive model offers to the probes.

A *stepping model* consumes one frame at a time and predicts the next one. Probes
(``predict``'s closed loop, ``dream``, ``lesion``, ``occlude``, ``sleep``) are written once
against this interface and never ask which backend they have.

Shapes: frames are ``(B, C, H, W)`` float tensors in ``[0, 1]`` on the model's device.
"""
from __future__ import annotations

import contextlib
from dataclasses import dataclass, field
from typing import Any, Iterator, Protocol, runtime_checkable

import torch

from predvis.errors import PredvisError


@dataclass
class StepOutput:
    """What one step returns.

    prediction: (B, C, H, W) in [0, 1], the model's prediction of the *next* input frame.
    state: opaque recurrent state to pass to the next ``step``.
    layer_errors: per-layer prediction error of *this* step, name -> (B,) tensor: how far the
        prediction made at the previous step was from what arrived now, in that layer's own
        units (layer 0 in pixels). Empty on the first step. Probes report these per layer.
    internals: name -> tensor for display (per-layer states, per-layer predictions); each is
        (B, ...) and is drawn as an image when it has 2 or 3 trailing dims, else as a tile.
    """

    prediction: torch.Tensor
    state: Any
    layer_errors: dict[str, torch.Tensor] = field(default_factory=dict)
    internals: dict[str, torch.Tensor] = field(default_factory=dict)


@runtime_checkable
class SteppingModel(Protocol):
    """A model that steps through frames and predicts the next one.

    pathways: names of the connections that can be switched off (PVM: ``feedback``,
        ``lateral``; GOPC-1 / VAE-1: ``prior``). ``disabled`` holds those switched off now.
    frame_shape: (C, H, W) of the frames it reads.
    """

    pathways: tuple[str, ...]
    frame_shape: tuple[int, int, int]
    disabled: set[str]

    def init_state(self, batch: int) -> Any:
        """A fresh recurrent state for ``batch`` independent streams."""

    def step(self, frame: torch.Tensor, state: Any) -> StepOutput:
        """Read ``frame`` (B, C, H, W) and predict the next frame."""

    def set_learning(self, enabled: bool) -> None:
        """Switch online learning on or off (models without online learning ignore it)."""


@runtime_checkable
class Unlearning(Protocol):
    """Optional: a stepping model that can *unlearn* an attractor (``predvis sleep``).

    ``unlearn_step(clip, rate, burn_in)``: one learning step of the model's own rule with the
    sign reversed, at ``rate`` times its own learning rate, on ``clip`` (B, T, C, H, W) = an
    attractor's frames repeated (:func:`predvis.runtime.unlearning.attractor_clip`). It must raise
    the settling energy of the clip (:func:`predvis.runtime.unlearning.settling_energy`).
    ``default_unlearn_rate``: the rate ``predvis sleep`` uses when none is given; the same rate is
    not the same strength for different learning rules (docs/probes.md, sleep).
    """

    default_unlearn_rate: float

    def unlearn_step(self, clip: torch.Tensor, rate: float, burn_in: int) -> None:
        """Unlearn the attractor in ``clip`` (changes the weights in place)."""


def check_pathways(model: SteppingModel, names: list[str] | set[str]) -> None:
    """Raise a one-line error if a pathway name is not one of the model's."""
    for name in names:
        if name not in model.pathways:
            have = ", ".join(model.pathways) or "none"
            raise PredvisError(
                f"pathway '{name}' does not exist in this model (its pathways: {have})"
            )


@contextlib.contextmanager
def pathways_disabled(model: SteppingModel, names: list[str] | set[str]) -> Iterator[SteppingModel]:
    """Temporarily switch off the named pathways (restored on exit)."""
    check_pathways(model, names)
    before = set(model.disabled)
    model.disabled = before | set(names)
    try:
        yield model
    finally:
        model.disabled = before


@dataclass
class FeedforwardView:
    """A stepping model seen as a feed-forward module, for deepdream.

    module: forward(x (B, C, H, W) in [0, 1]) -> activations, its layers hookable by name.
    default_layer: the layer a dream optimises when none is named.
    fixed_size: the only input side the model accepts (None: any).
    channels: the channels of the images it reads.
    note: how the view feeds the model (shown in captions), e.g. "static image settled 7 steps".
    """

    module: Any
    default_layer: str
    fixed_size: int | None
    channels: int
    note: str


@runtime_checkable
class HasFeedforwardView(Protocol):
    """Optional: a stepping module with no ``forward(image)`` that deepdream can still read."""

    def feedforward_view(self) -> FeedforwardView:
        """A differentiable feed-forward view of this (trained) model; its weights are read, never changed."""
