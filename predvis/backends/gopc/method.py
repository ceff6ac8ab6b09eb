"""Training and evaluation of GOPC-1 and VAE-1 on Moving MNIST sequences."""
from __future__ import annotations

from dataclasses import dataclass
from functools import cached_property
from typing import Iterator

import numpy as np
import torch

from predvis.config import ConfigError, TrainConfig, at_least, positive
from predvis.data.mnist import MnistDigits, load_mnist, split_digits
from predvis.data.moving_mnist import MovingMnist, MovingMnistSpec, SequenceDataConfig, load_mnist_test_seq
from predvis.runtime.method import AdamMethod
from predvis.backends.gopc.model import GopcModel, GopcModelConfig
from predvis.backends.gopc.stepper import GopcStepper
from predvis.progress import progress
from predvis.runtime import distributed
from predvis.runtime.amp import autocast
from predvis.backends.registry import register


@dataclass
class TrainBatch:
    """This rank's part of a global batch: x (b, T, C, H, W), eps / eps0 (b, T, r_dim),
    weight = b / global batch size, and where the part sits in the global batch: its rows
    first .. first + b - 1 of ``size`` (None: the part is the whole batch)."""

    x: torch.Tensor
    eps: torch.Tensor
    eps0: torch.Tensor | None
    weight: float
    first: int = 0
    size: int | None = None


def hash_seed(*parts: int) -> int:
    """A 63-bit seed from integers (numpy's SeedSequence, stable across runs and platforms)."""
    return int(np.random.SeedSequence(list(parts)).generate_state(2, np.uint32).astype(np.uint64).dot([1 << 31, 1]))


@dataclass
class SequenceEvalConfig:
    """How predict evaluates: posterior reconstruction and prior prediction."""

    context: int = 5            # observed frames before the prior prediction
    batch_size: int = 100
    figures: int = 4            # test sequences drawn as grids and GIFs

    def validate(self) -> None:
        positive("eval.context", self.context)
        positive("eval.batch_size", self.batch_size)
        at_least("eval.figures", self.figures, 0)


@dataclass
class GopcTrainConfig(TrainConfig):
    epochs: int = 50
    batch_size: int = 50
    lr: float = 1e-3
    open_loop: float = 0.0      # fraction of each batch that sees eval.context frames and predicts the rest

    def validate(self) -> None:
        super().validate()
        if not 0 <= self.open_loop <= 1:
            raise ConfigError(f"train.open_loop: must be in [0, 1], got {self.open_loop}")


@register("gopc")
class GopcMethod(AdamMethod):
    """GOPC-1 or VAE-1 (``model.kind``) trained by Adam on whole sequences."""

    ModelConfig = GopcModelConfig
    DataConfig = SequenceDataConfig
    TrainConfig = GopcTrainConfig
    EvalConfig = SequenceEvalConfig
    supports_distributed = True

    @staticmethod
    def check_config(cfg) -> None:
        if cfg.model.image_size != cfg.data.size:
            raise ConfigError(
                f"model.image_size ({cfg.model.image_size}) must equal data.size ({cfg.data.size})"
            )
        if cfg.eval.context >= cfg.data.frames:
            raise ConfigError(f"eval.context: must be < data.frames ({cfg.data.frames}), got {cfg.eval.context}")

    def __init__(self, cfg, device: torch.device):
        super().__init__(cfg, device)
        d = cfg.data
        digits = load_mnist(d.mnist)
        self.train_digits, self.val_digits, self.test_digits = split_digits(digits, tuple(d.split), d.split_seed)
        spec = MovingMnistSpec(d.dataset, d.frames, d.size, d.digits, tuple(d.amp), tuple(d.omega), d.step)
        self.spec = spec
        self.train_source = MovingMnist(self.train_digits.images, spec)
        self.model = self.build_model(cfg.model).to(device)
        self.setup_optimizer()

    def build_model(self, model_cfg) -> GopcModel:
        """The model trained by this method (GOPC-2 overrides it)."""
        return GopcModel(model_cfg)

    # ------------------------------------------------------------------ data
    def _fixed_set(self, digits: MnistDigits, n: int, stream: int, with_params: bool = False):
        """The fixed validation (stream 1) or test (stream 2) sequences; with_params also returns the
        generator's per-sequence trajectory parameters (N, D, 2, P) (see data/moving_mnist.py)."""
        source = MovingMnist(digits.images, self.spec)
        out, params = [], []
        for start in range(0, n, 500):  # chunked to bound memory
            seq, traj = source.generate(min(500, n - start), [self.cfg.data.test_seed, stream, start])
            out.append(seq)
            params.append(traj.params)
        return (torch.cat(out), np.concatenate(params)) if with_params else torch.cat(out)

    @cached_property
    def val_set(self) -> torch.Tensor:
        return self._fixed_set(self.val_digits, self.cfg.data.val_sequences, 1)

    @staticmethod
    def data_memory(cfg) -> list[tuple[str, int]]:
        """Validation and test sequences (N x T x 1 x H x W float32) and one training batch."""
        d = cfg.data
        frame = d.frames * d.size * d.size * 4
        batch = cfg.train.batch_size
        return [(f"{d.val_sequences:,} validation sequences", d.val_sequences * frame),
                (f"{d.test_sequences:,} test sequences", d.test_sequences * frame),
                (f"a training batch of {batch:,}", batch * frame)]

    def validation_sequences(self) -> torch.Tensor:
        """The validation sequences (N, T, C, H, W) in [0, 1] (predict's mean-frame baseline)."""
        return self.val_set

    def test_sequences(self) -> torch.Tensor:
        if self.cfg.data.test_file:
            return load_mnist_test_seq(self.cfg.data.test_file)[:, : self.cfg.data.frames]
        return self._fixed_set(self.test_digits, self.cfg.data.test_sequences, 2)

    def steps_per_epoch(self) -> int:
        return -(-self.cfg.data.train_sequences // self.cfg.train.batch_size)

    def train_batches(self, epoch: int) -> Iterator[TrainBatch]:
        """Batch i of epoch e: sequences and sampling noise drawn from (seed, e, i) for the whole
        global batch; each rank takes its shard, so any world size sees the same data."""
        n, bs = self.cfg.data.train_sequences, self.cfg.train.batch_size
        m = self.cfg.model
        for i in range(self.steps_per_epoch()):
            size = min(bs, n - i * bs)
            part = distributed.shard(size)
            seq, _ = self.train_source.generate(size, [self.cfg.seed, epoch, i], self.device, part)
            gen = torch.Generator().manual_seed(hash_seed(self.cfg.seed, epoch, i))
            noise_shape = (size, self.cfg.data.frames, m.r_dim)
            eps = torch.randn(noise_shape, generator=gen)[part].to(self.device)
            eps0 = torch.randn(noise_shape, generator=gen)[part].to(self.device) if m.origin_noise else None
            yield TrainBatch(seq, eps, eps0, (part.stop - part.start) / size, part.start, size)

    # ------------------------------------------------------------------ training
    def training_runs(self, batch: TrainBatch):
        """(loss, runs, metrics) of one training batch.

        The last n = round(open_loop B) sequences of the global batch of B (at least one when open_loop > 0)
        are run open-loop: eval.context frames observed, the rest predicted by the prior from its own latents
        and scored by their squared error (as in evaluation); the others are observed throughout. A rank runs
        the open-loop rows that fall in its part, so every world size trains the same sequences open-loop.
        loss: the per-sequence objective averaged over this part's b sequences. runs: [(output, observed
        frames)] for the observed-throughout and the open-loop sequences of this part (those it has).
        metrics: loss; mse and kl over every observed frame of the global batch; with open_loop > 0, open_mse
        over its predicted frames (each a part's sum through :meth:`global_mean`)."""
        b, frames, cfg = batch.x.shape[0], batch.x.shape[1], self.cfg
        size, c = batch.size or b, cfg.eval.context
        n_open = self.open_loop_rows(size)
        split = min(b, max(0, size - n_open - batch.first))   # this part's first open-loop row
        runs = []
        for part, context in ((slice(0, split), None), (slice(split, b), c)):
            if part.stop > part.start:
                eps0 = None if batch.eps0 is None else batch.eps0[part]
                out = self.model.run(batch.x[part], eps=batch.eps[part], eps0=eps0, context=context)
                runs.append((out, frames if context is None else context))
        loss = sum(out.loss(cfg.model.kl_weight) * out.sse.shape[0] for out, _ in runs) / b
        observed = self.observed_frames(size, frames)
        pixels = batch.x[0, 0].numel()
        metrics = {
            "loss": loss.detach(),
            "mse": self.global_mean(sum(out.sse[:, :o].detach().sum() for out, o in runs), observed * pixels),
            "kl": self.global_mean(sum(out.kl[:, :o].detach().sum() for out, o in runs), observed),
        }
        if n_open:
            predicted = sum(out.sse[:, o:].detach().sum() for out, o in runs if o < frames)
            metrics["open_mse"] = self.global_mean(predicted, n_open * (frames - c) * pixels)
        return loss, runs, metrics

    def open_loop_rows(self, size: int) -> int:
        """How many sequences of a global batch of ``size`` train open-loop (the last ones)."""
        f = self.cfg.train.open_loop
        return min(size, max(1, round(f * size))) if f > 0 else 0

    def observed_frames(self, size: int, frames: int) -> int:
        """Observed frames in a global batch of ``size`` sequences of ``frames``: all frames of the
        observed-throughout sequences, eval.context of each open-loop one."""
        n_open = self.open_loop_rows(size)
        return (size - n_open) * frames + n_open * self.cfg.eval.context

    @staticmethod
    def global_mean(total, count: int) -> torch.Tensor:
        """A part's sum ``total`` scaled so that its average over the ranks (the loop's all_average) is the
        mean over the ``count`` items of the global batch (0 from a part with none of them)."""
        return torch.as_tensor(total, dtype=torch.float32).detach() * distributed.world_size() / count

    def train_step(self, batch: TrainBatch) -> dict[str, torch.Tensor]:
        self.model.train()
        with autocast(self.cfg.train.amp, self.device):
            loss, _, metrics = self.training_runs(batch)
        self.optimizer_step(loss, batch.weight)
        return metrics

    @torch.no_grad()
    def rollouts(self, seqs: torch.Tensor, context: int | None = None) -> dict[str, torch.Tensor]:
        """Posterior reconstruction and prior prediction of ``seqs`` (N, T, C, H, W).

        Returns per-frame tensors (N, T, C, H, W): ``recon`` (posterior means decoded),
        ``prior`` (frames >= context from the prior's own rollout; earlier frames are the
        posterior reconstructions), and ``loss`` (N,) the training objective with posterior means.
        """
        self.model.eval()
        context = self.cfg.eval.context if context is None else context
        recon, prior, loss = [], [], []
        bs = self.cfg.eval.batch_size
        for start in progress(range(0, len(seqs), bs), "evaluating"):
            x = seqs[start:start + bs].to(self.device)
            with autocast(self.cfg.train.amp, self.device):
                post = self.model.run(x, sample=False)
                roll = self.model.run(x, sample=False, context=context)
            recon.append(post.recon.float().cpu())
            prior.append(roll.recon.float().cpu())
            loss.append(post.objective(self.cfg.model.kl_weight).float().cpu())
        return {"recon": torch.cat(recon), "prior": torch.cat(prior), "loss": torch.cat(loss)}

    def validate(self) -> dict[str, float]:
        seqs = self.val_set
        out = self.rollouts(seqs)
        c = self.cfg.eval.context
        dims = (0, 2, 3, 4)   # per horizon: mean over sequences and pixels
        prior_h = ((out["prior"][:, c:] - seqs[:, c:]) ** 2).mean(dim=dims)
        mean_h = ((seqs.mean(dim=(0, 1), keepdim=True) - seqs[:, c:]) ** 2).mean(dim=dims)
        return {
            "val_loss": out["loss"].mean().item(),
            "val_recon_mse": ((out["recon"] - seqs) ** 2).mean().item(),
            "val_prior_mse": prior_h.mean().item(),
            "val_copy_last_mse": ((seqs[:, c - 1:c] - seqs[:, c:]) ** 2).mean().item(),
            "val_mean_frame_mse": mean_h.mean().item(),
            # the learning curve of "the prior beats the mean frame at every horizon"
            "val_prior_horizons_beaten": float((prior_h < mean_h).sum()),
            "val_prior_worst_ratio": (prior_h / mean_h).max().item(),
        }

    def stepper(self) -> GopcStepper:
        return GopcStepper(self.model, self.cfg.train.lr, self.optimizer)
