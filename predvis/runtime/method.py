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
from predvis.errors import ConfigError
from predvis.runtime.stepping import SteppingModel
from predvis.runtime import distributed
from predvis.runtime.amp import make_scaler


@dataclass
class EmptyConfig:
    """A section with no settings."""


class Method:
    """Base class; see predvis/backends/gopc/method.py for a complete example."""

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

    def scalers(self) -> dict[str, Any]:
        """Gradient scalers (fp16) saved in checkpoints beside the optimisers."""
        return {}

    @staticmethod
    def data_memory(cfg: ExperimentConfig) -> list[tuple[str, int]]:
        """(what, bytes) of the data tensors a run of ``cfg`` holds for its whole life, estimated before they
        are built (:mod:`predvis.memory`); [] when the size is not known before loading (image folders)."""
        return []

    @staticmethod
    def check_config(cfg: ExperimentConfig) -> None:
        """Checks across sections of a merged config (one section's own checks are its ``validate``)."""

    def learning_rate(self) -> float:
        """The rate the next step learns at, for ``metrics/train.csv``: the first optimiser's
        (nan for a method with no learning rate)."""
        for opt in self.optimizers().values():
            return float(opt.param_groups[0]["lr"])
        return float("nan")

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


class AdamMethod(Method):
    """A Method that trains one module ``self.model`` with Adam (``train.lr``, ``train.weight_decay``),
    an exponential LR decay per epoch (``train.lr_decay``), optional gradient clipping
    (``train.grad_clip``) and, for fp16, a grad scaler. Subclasses build ``self.model`` and then call
    :meth:`setup_optimizer`; their ``train_step`` computes a loss and calls :meth:`optimizer_step`.
    """

    checkpoint_name = "model"  # the key of the weights in checkpoints

    compiles = False  # whether train.compile applies (its training forward is self.model's forward)

    def setup_optimizer(self) -> None:
        t = self.cfg.train
        if t.channels_last:
            self.model.to(memory_format=torch.channels_last)
        self.forward = self.model
        if t.compile:
            if not self.compiles:
                raise ConfigError(
                    f"train.compile: method '{self.cfg.method}' cannot be compiled (its inner gradient needs "
                    "double backward / forward-mode AD, which torch.compile does not support); set train.compile=false"
                )
            self.forward = torch.compile(self.model)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=t.lr, weight_decay=t.weight_decay)
        self.scheduler = torch.optim.lr_scheduler.ExponentialLR(self.optimizer, gamma=t.lr_decay)
        self.scaler = make_scaler(t.amp, self.device)

    def to_device(self, batch: torch.Tensor, image: bool = True) -> torch.Tensor:
        """A host tensor to the training device: from pinned memory (``train.pin_memory``, CUDA),
        in NHWC layout for 4-d image batches (``train.channels_last``)."""
        t = self.cfg.train
        if t.pin_memory and self.device.type == "cuda":
            batch = batch.pin_memory().to(self.device, non_blocking=True)
        else:
            batch = batch.to(self.device)
        if image and t.channels_last and batch.dim() == 4:
            batch = batch.contiguous(memory_format=torch.channels_last)
        return batch

    def state_modules(self) -> dict[str, nn.Module]:
        return {self.checkpoint_name: self.model}

    def optimizers(self) -> dict[str, torch.optim.Optimizer]:
        return {"adam": self.optimizer}

    def schedulers(self) -> dict[str, Any]:
        return {"lr": self.scheduler}

    def scalers(self) -> dict[str, Any]:
        return {"scaler": self.scaler} if self.scaler is not None else {}

    def optimizer_step(self, loss: torch.Tensor, weight: float = 1.0) -> None:
        """Backward, average gradients across ranks (``weight`` = this rank's share of the global
        batch), clip, step."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.scaler is not None:
            self.scaler.scale(loss).backward()
            distributed.average_gradients(self.model.parameters(), weight)
            self.scaler.unscale_(self.optimizer)
        else:
            loss.backward()
            distributed.average_gradients(self.model.parameters(), weight)
        if self.cfg.train.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(self.model.parameters(), self.cfg.train.grad_clip)
        if self.scaler is not None:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
