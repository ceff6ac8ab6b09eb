"""Training and evaluation of GOPC-2 (docs/models.md, "GOPC-2"): GOPC-1's method with the two-level
model; data, batches, noise, validation, rollouts and checkpoints are GopcMethod's."""
from __future__ import annotations

import torch

from predvis.methods.gopc import GopcMethod, TrainBatch
from predvis.models.gopc2 import Gopc2Model, Gopc2ModelConfig
from predvis.models.gopc2_stepper import Gopc2Stepper
from predvis.train.amp import autocast


class Gopc2Method(GopcMethod):
    """GOPC-2 trained by Adam on whole sequences (double backward through both inner steps)."""

    ModelConfig = Gopc2ModelConfig

    def build_model(self, model_cfg) -> Gopc2Model:
        return Gopc2Model(model_cfg)

    def train_step(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        self.model.train()
        with autocast(self.cfg.train.amp, self.device):
            loss, out, metrics = self.training_runs(batch)
        self.optimizer_step(loss, batch.weight)
        return {
            **metrics,
            "hyper_norm": out.hyper[:, -1].detach().norm(dim=-1).mean(),
            "trans_err": out.trans_err[:, 1:].detach().mean(),
        }

    def stepper(self) -> Gopc2Stepper:
        return Gopc2Stepper(self.model, self.cfg.train.lr, self.optimizer)
