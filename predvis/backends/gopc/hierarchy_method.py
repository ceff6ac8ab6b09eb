"""Training and evaluation of GOPC-2 (docs/models.md, "GOPC-2"): GOPC-1's method with the two-level
model; data, batches, noise, validation, rollouts and checkpoints are GopcMethod's."""
from __future__ import annotations

import torch

from predvis.backends.gopc.method import GopcMethod, TrainBatch
from predvis.backends.gopc.hierarchy import Gopc2Model, Gopc2ModelConfig
from predvis.backends.gopc.hierarchy_stepper import Gopc2Stepper
from predvis.runtime.amp import autocast
from predvis.backends.registry import register


@register("gopc2")
class Gopc2Method(GopcMethod):
    """GOPC-2 trained by Adam on whole sequences (double backward through both inner steps)."""

    ModelConfig = Gopc2ModelConfig

    def build_model(self, model_cfg) -> Gopc2Model:
        return Gopc2Model(model_cfg)

    def train_step(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        self.model.train()
        with autocast(self.cfg.train.amp, self.device):
            loss, runs, metrics = self.training_runs(batch)
        self.optimizer_step(loss, batch.weight)
        size = batch.size or batch.x.shape[0]
        transitions = self.observed_frames(size, batch.x.shape[1]) - size   # observed frames t >= 1
        return {
            **metrics,
            # over every sequence of the global batch, r^H after its last frame
            "hyper_norm": self.global_mean(sum(out.hyper[:, -1].detach().norm(dim=-1).sum() for out, _ in runs), size),
            # over the observed frames t >= 1 of the global batch (0 where r_t was predicted)
            "trans_err": self.global_mean(sum(out.trans_err[:, 1:o].detach().sum() for out, o in runs),
                                          transitions),
        }

    def stepper(self) -> Gopc2Stepper:
        return Gopc2Stepper(self.model, self.cfg.train.lr, self.optimizer)
