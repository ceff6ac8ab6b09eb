"""Config sections of PredNet (Lotter, Kreiman & Cox, ICLR 2017; docs/models.md#prednet).

Defaults are the published model (4 layers, stack sizes (channels, 48, 96, 192), 3x3 filters,
loss L_0, Adam 1e-3 dropped to 1e-4 at half of training, batch 4) at 64x64 grey frames.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from predvis.config import ConfigError, TrainConfig, at_least, positive
from predvis.data.moving_mnist import SequenceDataConfig


@dataclass
class PredNetModelConfig:
    """The network: ``stack[l]`` channels of A_l / Ahat_l (stack[0] = image channels), ``r_stack[l]``
    channels of the ConvLSTM R_l (empty: the same as ``stack``)."""

    stack: list[int] = field(default_factory=lambda: [1, 48, 96, 192])
    r_stack: list[int] = field(default_factory=list)
    a_filter: int = 3             # A_{l+1} = MaxPool2(ReLU(conv(E_l))) kernel
    ahat_filter: int = 3          # Ahat_l = ReLU(conv(R_l)) kernel
    r_filter: int = 3             # ConvLSTM gate kernel
    pixel_max: float = 1.0        # Ahat_0 is clipped here (SatLU); frames are in [0, pixel_max]
    layer_weights: list[float] = field(default_factory=lambda: [1.0, 0.0, 0.0, 0.0])  # L_0; L_all: [1, .1, .1, .1]
    # the loss averages the error units (l1, the paper's) or their squares (l2); on sparse Moving MNIST
    # frames l1 drives Ahat_0 to all-zero within tens of steps (docs/models.md#prednet)
    error_norm: Literal["l1", "l2"] = "l1"

    @property
    def channels(self) -> int:
        return self.stack[0]

    @property
    def layers(self) -> int:
        return len(self.stack)

    def recurrent_stack(self) -> list[int]:
        return list(self.r_stack) if self.r_stack else list(self.stack)

    def validate(self) -> None:
        if len(self.stack) < 1 or any(s < 1 for s in self.stack):
            raise ConfigError(f"model.stack: must be one or more channel counts >= 1, got {self.stack}")
        if self.r_stack and (len(self.r_stack) != len(self.stack) or any(s < 1 for s in self.r_stack)):
            raise ConfigError(f"model.r_stack: must be empty or {len(self.stack)} counts >= 1 (one per layer of "
                              f"model.stack), got {self.r_stack}")
        for key in ("a_filter", "ahat_filter", "r_filter"):
            k = getattr(self, key)
            if k < 1 or k % 2 == 0:
                raise ConfigError(f"model.{key}: must be an odd kernel size >= 1, got {k}")
        positive("model.pixel_max", self.pixel_max)
        if len(self.layer_weights) != len(self.stack):
            raise ConfigError(f"model.layer_weights: must have one weight per layer ({len(self.stack)}), "
                              f"got {self.layer_weights}")
        if any(w < 0 for w in self.layer_weights) or not any(w > 0 for w in self.layer_weights):
            raise ConfigError(f"model.layer_weights: must be >= 0 with at least one > 0, got {self.layer_weights}")


@dataclass
class PredNetDataConfig(SequenceDataConfig):
    """Moving MNIST clips (GOPC's data keys, docs/datasets.md) or clips cut from video.

    source: ``moving_mnist``; ``photos`` (the embedded scikit-image photo videos, as PVM's); or a
    video file / image folder, split in time by ``data.split`` into train / val / test stretches.
    Video clips are ``data.frames`` long; training clips start at random frames drawn from
    (seed, epoch, batch); val / test clips are the consecutive non-overlapping clips of their stretch
    (at most val_sequences / test_sequences of them).
    """

    frames: int = 10              # nt of the paper
    source: str = "moving_mnist"
    videos: int = 5               # photos: training videos
    video_frames: int = 600       # photos: frames per training video
    test_videos: int = 2          # photos: held-out videos (from test_seed); half of each for val, half for test

    def validate(self) -> None:
        super().validate()
        if not self.source:
            raise ConfigError("data.source: must be moving_mnist, photos or a video file / folder, got ''")
        for key in ("videos", "video_frames", "test_videos"):
            positive(f"data.{key}", getattr(self, key))
        if self.source == "photos" and self.video_frames < 2 * self.frames:
            raise ConfigError(f"data.video_frames: must hold a val and a test clip (>= 2 x data.frames = "
                              f"{2 * self.frames}), got {self.video_frames}")


@dataclass
class PredNetTrainConfig(TrainConfig):
    """Adam at ``lr``, multiplied by ``lr_drop`` once ``lr_drop_at`` of the epochs are done (the
    published 1e-3 -> 1e-4 after 75 of 150 epochs)."""

    epochs: int = 150
    batch_size: int = 4
    lr: float = 1e-3
    lr_drop: float = 0.1
    lr_drop_at: float = 0.5       # fraction of train.epochs after which the rate drops (1: never)

    def validate(self) -> None:
        super().validate()
        if not 0 < self.lr_drop <= 1:
            raise ConfigError(f"train.lr_drop: must be in (0, 1], got {self.lr_drop}")
        if not 0 < self.lr_drop_at <= 1:
            raise ConfigError(f"train.lr_drop_at: must be in (0, 1], got {self.lr_drop_at}")
        if self.lr_decay != 1.0:
            raise ConfigError(f"train.lr_decay: PredNet uses the step schedule train.lr_drop / train.lr_drop_at; "
                              f"leave lr_decay at 1.0, got {self.lr_decay}")

    def drop_epoch(self) -> int:
        """How many epochs run at the full rate."""
        return max(1, round(self.lr_drop_at * self.epochs))


@dataclass
class PredNetEvalConfig:
    """How predict evaluates: ``context`` real frames, then the model's own predictions fed back."""

    context: int = 5
    batch_size: int = 50
    figures: int = 4

    def validate(self) -> None:
        positive("eval.context", self.context)
        positive("eval.batch_size", self.batch_size)
        at_least("eval.figures", self.figures, 0)
