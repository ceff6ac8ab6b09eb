"""The Method contract: one backend family, from config to trained weights.

A Method owns what differs between backends (data, models, loss, evaluation); the generic
training loop (predvis.train.loop) owns what does not (epochs, progress, checkpoints, NaN
guard, resume). Schemas of the config sections are the class attributes ``ModelConfig``,
``DataConfig``, ``TrainConfig`` and ``EvalConfig`` (dataclasses).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.nn as nn

from predvis.config import ExperimentConfig, TrainConfig
from predvis.models.stepping import SteppingModel


@dataclass
class EmptyConfig:
    """A section with no settings."""


class Method:
    """Base class; see predvis/methods/gopc.py for a complete example."""

    ModelConfig: type = EmptyConfig
    DataConfig: type = EmptyConfig
    TrainConfig: type = TrainConfig
    EvalConfig: type = EmptyConfig
    supports_distributed: bool = False  # shards batches and averages gradients under torchrun

    def __init__(self, cfg: ExperimentConfig, device: torch.device):
        self.cfg = cfg
        self.device = device

    # what the loop needs --------------------------------------------------------------
    def param_counts(self) -> dict[str, int]:
        return {
            name: sum(p.numel() for p in module.parameters() if p.requires_grad)
            for name, module in self.state_modules().items()
        }

    def state_modules(self) -> dict[str, nn.Module]:
        raise NotImplementedError

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {}

    def schedulers(self) -> dict[str, Any]:
        return {}

    def steps_per_epoch(self) -> int:
        raise NotImplementedError

    def train_batches(self, epoch: int) -> Iterable[Any]:
        raise NotImplementedError

    def train_step(self, batch: Any) -> dict[str, torch.Tensor]:
        raise NotImplementedError

    def end_epoch(self, epoch: int) -> None:
        """Called after the last step of an epoch (LR schedules and the like)."""
        for scheduler in self.schedulers().values():
            scheduler.step()

    def validate(self) -> dict[str, float]:
        return {}

    def final_tables(self) -> dict[str, str]:
        """Markdown tables (file name -> text) written to the run's tables/ after the last epoch."""
        return {}

    def train_mode(self, training: bool) -> None:
        for module in self.state_modules().values():
            module.train(training)

    def extra_state(self) -> dict:
        return {}

    def load_extra_state(self, state: dict) -> None:
        pass

    # what probes need ----------------------------------------------------------------
    def stepper(self) -> SteppingModel | None:
        return None

    def test_sequences(self) -> torch.Tensor:
        raise NotImplementedError(f"{type(self).__name__} has no test sequences")
