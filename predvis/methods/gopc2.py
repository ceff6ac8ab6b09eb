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
            out = self.model.run(batch.x, eps=batch.eps)
            loss = out.loss(self.cfg.model.kl_weight)
        self.optimizer_step(loss, batch.weight)
        pixels = batch.x[0, 0].numel()
        return {
            "loss": loss.detach(),
            "mse": out.sse.detach().mean() / pixels,
            "kl": out.kl.detach().mean(),
            "hyper_norm": out.hyper[:, -1].detach().norm(dim=-1).mean(),
            "trans_err": out.trans_err[:, 1:].detach().mean(),
        }

    @torch.no_grad()
    def latents(self, seqs: torch.Tensor, context: int | None = None) -> dict[str, torch.Tensor]:
        """Posterior means r_t (N, T, r_dim) and r^H after each frame (N, T, h_dim) for ``seqs``
        (all frames observed unless ``context``); used by the r^H probe of the stability study."""
        self.model.eval()
        r, h = [], []
        bs = self.cfg.eval.batch_size
        for start in range(0, len(seqs), bs):
            out = self.model.run(seqs[start:start + bs].to(self.device), sample=False, context=context)
            r.append(out.latents.float().cpu())
            h.append(out.hyper.float().cpu())
        return {"latent": torch.cat(r), "hyper": torch.cat(h)}

    def stepper(self) -> Gopc2Stepper:
        return Gopc2Stepper(self.model)
