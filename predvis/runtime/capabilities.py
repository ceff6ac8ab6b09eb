"""Optional capabilities a backend's Method may offer, declared as Protocols.

Probes ask ``isinstance(method, Rollouts)``, never which backend they have. The stepping model's own
optional capabilities (:class:`~predvis.runtime.stepping.Unlearning`,
:class:`~predvis.runtime.stepping.HasFeedforwardView`) live beside the stepping protocol.
"""
from __future__ import annotations

from typing import Any, Protocol, runtime_checkable

import torch


@runtime_checkable
class Rollouts(Protocol):
    """The model's own rollout of whole sequences (GOPC-1 / VAE-1 roll their latents forward).

    ``rollouts(seqs, context)``: seqs (N, T, C, H, W) in [0, 1] -> {"recon": posterior reconstructions
    (N, T, C, H, W), "prior": frames >= context predicted from the first ``context`` (earlier frames are
    the reconstructions)}. Methods without it are rolled out through their stepping model.
    """

    def rollouts(self, seqs: torch.Tensor, context: int | None = None) -> dict[str, torch.Tensor]: ...


@runtime_checkable
class ValidationSequences(Protocol):
    """Validation sequences (N, T, C, H, W) in [0, 1]; predict's mean-frame baseline is their mean frame."""

    def validation_sequences(self) -> torch.Tensor: ...


@runtime_checkable
class LabelledTestImages(Protocol):
    """Held-out labelled images, for deepdream's attacks: ``labelled_test_images() -> (x (N, C, H, W), y (N,))``."""

    def labelled_test_images(self) -> tuple[torch.Tensor, torch.Tensor]: ...


@runtime_checkable
class SceneTestSets(Protocol):
    """Named test sets of static scenes (depth inversion): ``scene_test_set(name)`` -> a
    :class:`predvis.data.occluded_pairs.Scenes`; ``evaluate_scenes``-style probes read them."""

    def scene_test_set(self, name: str = "held_out") -> Any: ...
