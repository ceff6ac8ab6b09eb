"""Training of PredNet (Lotter, Kreiman & Cox, ICLR 2017) on clips by Adam (docs/models.md#prednet).

A batch is ``train.batch_size`` clips of ``data.frames`` frames drawn from (seed, epoch, batch)
(so a resumed run sees the same data); the loss is the paper's: the mean error units of each
layer weighted by ``model.layer_weights`` and over time by 0 for the first frame and 1/(T-1) after.
The rate drops by ``train.lr_drop`` after ``train.lr_drop_at`` of the epochs.
"""
from __future__ import annotations

from functools import cached_property
from typing import Iterator

import torch

from predvis.backends.prednet.config import (PredNetDataConfig, PredNetEvalConfig, PredNetModelConfig,
                                             PredNetTrainConfig)
from predvis.backends.prednet.data import clip_source
from predvis.backends.prednet.model import PredNet, prednet_loss
from predvis.backends.prednet.stepper import PredNetStepper
from predvis.backends.registry import register
from predvis.config import ConfigError
from predvis.runtime.method import AdamMethod
from predvis.progress import progress
from predvis.runtime.amp import autocast


@register("prednet")
class PredNetMethod(AdamMethod):
    """PredNet trained end to end by Adam on clips."""

    ModelConfig = PredNetModelConfig
    DataConfig = PredNetDataConfig
    TrainConfig = PredNetTrainConfig
    EvalConfig = PredNetEvalConfig

    @staticmethod
    def check_config(cfg) -> None:
        m, d = cfg.model, cfg.data
        scale = 2 ** (m.layers - 1)
        if d.size % scale:
            raise ConfigError(f"data.size: must be divisible by 2 ** (layers - 1) = {scale} for "
                              f"{m.layers} layers, got {d.size}")
        if d.source == "moving_mnist" and m.channels != 1:
            raise ConfigError(f"model.stack: Moving MNIST frames are grey, so stack[0] must be 1, got {m.stack}")
        if cfg.eval.context >= d.frames:
            raise ConfigError(f"eval.context: must be < data.frames ({d.frames}), got {cfg.eval.context}")

    def __init__(self, cfg, device: torch.device):
        super().__init__(cfg, device)
        m = cfg.model
        self.source = clip_source(cfg.data, m.channels)
        self.model = PredNet(m.stack, m.recurrent_stack(), m.a_filter, m.ahat_filter, m.r_filter,
                             m.pixel_max, m.error_norm, cfg.data.size).to(device)
        self.layer_weights = torch.tensor(m.layer_weights, dtype=torch.float32, device=device)
        self.setup_optimizer()
        self.scheduler = torch.optim.lr_scheduler.MultiStepLR(
            self.optimizer, milestones=[cfg.train.drop_epoch()], gamma=cfg.train.lr_drop)

    # ------------------------------------------------------------------ data
    @cached_property
    def val_set(self) -> torch.Tensor:
        return self.source.val()

    def validation_sequences(self) -> torch.Tensor:
        """Validation clips (N, T, C, H, W) in [0, 1] (predict's mean-frame baseline)."""
        return self.val_set

    def test_sequences(self) -> torch.Tensor:
        return self.source.test()

    def steps_per_epoch(self) -> int:
        return -(-self.cfg.data.train_sequences // self.cfg.train.batch_size)

    def train_batches(self, epoch: int) -> Iterator[torch.Tensor]:
        n, bs = self.cfg.data.train_sequences, self.cfg.train.batch_size
        for i in range(self.steps_per_epoch()):
            yield self.to_device(self.source.train_batch(min(bs, n - i * bs), [self.cfg.seed, epoch, i]), image=False)

    # ------------------------------------------------------------------ training
    def train_step(self, clips: torch.Tensor) -> dict[str, torch.Tensor]:
        with autocast(self.cfg.train.amp, self.device):
            preds, errors = self.forward(clips)
            loss = prednet_loss(errors.float(), self.layer_weights).mean()
        self.optimizer_step(loss)
        scored = errors[:, 1:].detach().float().mean(dim=(0, 1))
        out = {"loss": loss.detach(), "mse": (preds[:, 1:].detach().float() - clips[:, 1:]).square().mean()}
        out.update({f"E{l}": v for l, v in enumerate(scored)})
        return out

    @torch.no_grad()
    def evaluate(self, seqs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Per clip: ``loss`` (N,), next-frame ``mse`` (N,) of frames 1..T-1 and ``copy_last`` (N,)
        (the previous frame as the prediction)."""
        self.model.eval()
        loss, mse = [], []
        bs = self.cfg.eval.batch_size
        for s in progress(range(0, len(seqs), bs), "validating"):
            x = seqs[s:s + bs].to(self.device)
            with autocast(self.cfg.train.amp, self.device):
                preds, errors = self.model(x)
            loss.append(prednet_loss(errors.float(), self.layer_weights).cpu())
            mse.append((preds[:, 1:].float() - x[:, 1:]).square().flatten(1).mean(1).cpu())
        copy = (seqs[:, 1:] - seqs[:, :-1]).square().flatten(1).mean(1)
        return {"loss": torch.cat(loss), "mse": torch.cat(mse), "copy_last": copy}

    def validate(self) -> dict[str, float]:
        out = self.evaluate(self.val_set)
        return {"val_loss": out["loss"].mean().item(), "val_mse": out["mse"].mean().item(),
                "val_copy_last_mse": out["copy_last"].mean().item()}

    def stepper(self) -> PredNetStepper:
        shape = (self.cfg.model.channels, self.cfg.data.size, self.cfg.data.size)
        return PredNetStepper(self.model, shape, self.cfg.model.layer_weights, self.cfg.train.lr, self.optimizer)
