"""Training of the Predictive Vision Model (PVM) online on video (docs/pvm.md).

PVM learns online, one frame per step, locally in every unit (predvis/backends/pvm/model.py); the
generic loop only drives it: a "batch" is the next frame of each of ``train.streams``
independent streams through the concatenated, looped training videos, and ``train_step`` is one
PVM step with learning on. Loss = mean |prediction - frame| in pixels (layer 0).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from functools import cached_property
from typing import Iterator

import torch

from predvis.config import ConfigError, TrainConfig
from predvis.data.photos import default_videos
from predvis.data.video import load_video
from predvis.progress import console
from predvis.runtime.method import Method
from predvis.backends.pvm.model import PRECISIONS, PVM, PVMSchedule, PVMState
from predvis.backends.registry import register


@dataclass
class PVMModelConfig:
    """The paper model by default (Piekniewski et al. 2016): 350 units, 20,362,873 weights."""

    layers: list[int] = field(default_factory=lambda: [16, 8, 4, 3, 2, 1])  # units per side, bottom first
    channels: int = 3
    patch: int = 5                  # layer-0 units read patch x patch x channels pixels
    hidden: int = 49                # state size per unit (7x7)
    lateral_radius: int = 2         # same-layer diamond, self included
    top_to_all: bool = True         # the top unit's state is feedback context for every unit
    two_steps: bool = False         # also predict t+2
    momentum: float = 0.5
    tau: float = 0.98               # leaky integral
    lr_initial: float = 2.0e-4
    lr_final: float = 1.0e-5
    layer_delay: int = 100_000      # layer l starts learning at l * layer_delay steps
    final_delay: int = 100_000      # ... and drops to lr_final final_delay steps later
    lateral_on: int = 700_000       # lateral context factor 0 -> 1 at this step
    feedback_on: int = 900_000      # feedback context factor 0 -> 1 at this step
    center: bool = False            # unit inputs shifted to mean ~0 (x - 0.5); the paper feeds [0, 1] values
    residual: bool = False          # predict the change: prediction = signal + 2 (MLP output - 0.5); paper: off
    fused_inputs: bool = True       # unit inputs written in place (false: concatenated; same values)
    plain_streams: bool = True      # several streams keep W1 and its momentum plain (false: the folded form; same values)
    group_layers: bool = True       # one stream: layers 1..L-1 run as one batch of units (false: layer by layer; same values)
    precision: str = "fp32"         # 'bf16': several streams multiply W1 in bfloat16 (fp32 weights; docs/pvm.md)

    def validate(self) -> None:
        for key in ("channels", "patch", "hidden"):
            if getattr(self, key) < 1:
                raise ConfigError(f"model.{key}: must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.momentum < 1:
            raise ConfigError(f"model.momentum: must be in [0, 1), got {self.momentum}")
        if not 0 < self.tau < 1:
            raise ConfigError(f"model.tau: must be in (0, 1), got {self.tau}")
        if self.lr_initial <= 0 or self.lr_final < 0:
            raise ConfigError(f"model.lr_initial / lr_final: must be > 0 and >= 0, got {self.lr_initial}, {self.lr_final}")
        for key in ("lateral_radius", "layer_delay", "final_delay", "lateral_on", "feedback_on"):
            if getattr(self, key) < 0:
                raise ConfigError(f"model.{key}: must be >= 0, got {getattr(self, key)}")
        if self.precision not in PRECISIONS:
            raise ConfigError(f"model.precision: must be one of {', '.join(PRECISIONS)}, got {self.precision!r}")

    def build(self, seed: int) -> PVM:
        sch = PVMSchedule(self.lr_initial, self.lr_final, self.layer_delay, self.final_delay,
                          self.lateral_on, self.feedback_on)
        return PVM(self.layers, self.channels, self.patch, self.hidden, self.lateral_radius,
                   self.top_to_all, self.two_steps, self.momentum, self.tau, sch, seed, center=self.center,
                   residual=self.residual, fused_inputs=self.fused_inputs, plain_streams=self.plain_streams,
                   group_layers=self.group_layers, precision=self.precision)


@dataclass
class PVMDataConfig:
    """Training and test video (docs/pvm.md#data)."""

    source: str = "photos"          # 'photos' (embedded scikit-image videos) or a video file / image folder
    test_source: str = ""           # video file / folder for testing; default: held-out photo videos
    videos: int = 6                 # photos: number of training videos
    frames: int = 2000              # photos: frames per training video
    test_videos: int = 4            # photos: held-out videos (other seeds)
    test_frames: int = 200          # frames per held-out sequence
    test_seed: int = 2024
    spot_p: float = 0.0             # training only: share of episodes with a grey square hidden in the input
    spot_frames: int = 50           # episode length (frames); spot side drawn in [1/4, 1/2] of the frame

    def validate(self) -> None:
        for key in ("videos", "frames", "test_videos", "test_frames"):
            if getattr(self, key) < 1:
                raise ConfigError(f"data.{key}: must be >= 1, got {getattr(self, key)}")
        if not 0 <= self.spot_p <= 1:
            raise ConfigError(f"data.spot_p: must be in [0, 1], got {self.spot_p}")
        if self.spot_frames < 1:
            raise ConfigError(f"data.spot_frames: must be >= 1, got {self.spot_frames}")
        if self.test_frames < 3:
            raise ConfigError(f"data.test_frames: must be >= 3, got {self.test_frames}")


@dataclass
class PVMTrainConfig(TrainConfig):
    epochs: int = 10
    steps: int = 10_000             # PVM steps (frames per stream) per epoch
    streams: int = 1                # independent video streams sharing the weights
    val_frames: int = 100           # frames of each held-out sequence scored at the end of an epoch

    def validate(self) -> None:
        super().validate()
        for key in ("steps", "streams", "val_frames"):
            if getattr(self, key) < 1:
                raise ConfigError(f"train.{key}: must be >= 1, got {getattr(self, key)}")


@dataclass
class PVMEvalConfig:
    sequences: int = 0              # probes use this many held-out sequences (0: all)

    def validate(self) -> None:
        if self.sequences < 0:
            raise ConfigError(f"eval.sequences: must be >= 0 (0: all), got {self.sequences}")


@register("pvm")
class PVMMethod(Method):
    """PVM trained online on video, one frame per step."""

    ModelConfig = PVMModelConfig
    DataConfig = PVMDataConfig
    TrainConfig = PVMTrainConfig
    EvalConfig = PVMEvalConfig

    @staticmethod
    def data_memory(cfg) -> list[tuple[str, int]]:
        """The held-out video frames and, for photo videos, the training videos (float32)."""
        d = cfg.data
        side = cfg.model.layers[0] * cfg.model.patch
        frame = cfg.model.channels * side * side * 4
        items = [(f"{d.test_videos:,} x {d.test_frames:,} held-out frames", d.test_videos * d.test_frames * frame)]
        if d.source == "photos":
            items.insert(0, (f"{d.videos:,} x {d.frames:,} training frames", d.videos * d.frames * frame))
        return items

    def __init__(self, cfg, device: torch.device):
        super().__init__(cfg, device)
        self.model = cfg.model.build(cfg.seed).to(device)
        # train.compile: several streams run the step's element-wise parts compiled (docs/pvm.md)
        self.model.compiled_tail = bool(cfg.train.compile)
        if cfg.train.compile and (cfg.train.streams == 1 or device.type != "cpu"):
            console.print("train.compile: this PVM step runs eager (the compiled tail needs train.streams > 1 "
                          "and the CPU)")
        self._compile_reported = 0.0
        self.size = self.model.frame_shape[1:]
        self.state: PVMState | None = None

    # ------------------------------------------------------------------ data
    @cached_property
    def train_video(self) -> torch.Tensor:
        """(T, C, H, W) all training videos concatenated (looped by the streams)."""
        d, c = self.cfg.data, self.cfg.model.channels
        if d.source == "photos":  # filled video by video: peak memory one copy plus one video
            out = torch.empty(d.videos * d.frames, c, *self.size)
            for i in range(d.videos):
                out[i * d.frames:(i + 1) * d.frames] = default_videos(self.cfg.seed, d.videos, d.frames, self.size, c,
                                                                      only=i)[0]
            return out
        return load_video(d.source, self.size, c)

    def test_sequences(self) -> torch.Tensor:
        """(N, T, C, H, W) held-out sequences of ``data.test_frames`` frames."""
        d, c = self.cfg.data, self.cfg.model.channels
        if d.test_source:
            v = load_video(d.test_source, self.size, c)
            n = max(1, v.shape[0] // d.test_frames)
            seqs = v[: n * d.test_frames].reshape(n, -1, *v.shape[1:]) if v.shape[0] >= d.test_frames else v[None]
        else:
            seqs = torch.stack(default_videos(d.test_seed, d.test_videos, d.test_frames, self.size, c))
        k = self.cfg.eval.sequences
        return seqs[:k] if k else seqs

    def steps_per_epoch(self) -> int:
        return self.cfg.train.steps

    def train_batches(self, epoch: int) -> Iterator[torch.Tensor]:
        video, t = self.train_video, self.cfg.train
        T = video.shape[0]
        offsets = torch.arange(t.streams) * (T // t.streams)
        for i in range(t.steps):
            idx = (offsets + epoch * t.steps + i) % T
            yield video[idx].to(self.device)

    # ------------------------------------------------------------------ training
    def param_counts(self) -> dict[str, int]:
        return {"pvm": sum(self.model.n_weights)}

    def state_modules(self):
        return {"pvm": self.model}

    def train_mode(self, training: bool) -> None:
        self.model.set_learning(training)

    def learning_rate(self) -> float:
        """Layer 0's scheduled rate at the next step (higher layers start ``layer_delay`` later)."""
        return self.model.schedule.lr(0, int(self.model.steps)) * self.model.lr_scale

    def spot_mask(self, step: int) -> torch.Tensor | None:
        """Training blind spot (H, W) bool for this step, or None: one random square per episode of
        ``data.spot_frames`` steps, in a share ``data.spot_p`` of episodes; a function of the step
        (deterministic, resumable)."""
        d = self.cfg.data
        if d.spot_p <= 0:
            return None
        episode = step // d.spot_frames
        g = torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + episode)
        if float(torch.rand((), generator=g)) >= d.spot_p:
            return None
        H, W = self.size
        side = int(torch.randint(min(H, W) // 4, min(H, W) // 2 + 1, (), generator=g))
        y0 = int(torch.randint(0, H - side + 1, (), generator=g))
        x0 = int(torch.randint(0, W - side + 1, (), generator=g))
        mask = torch.zeros(H, W, dtype=torch.bool)
        mask[y0:y0 + side, x0:x0 + side] = True
        return mask

    def train_step(self, frames: torch.Tensor) -> dict[str, torch.Tensor]:
        if self.state is None:
            self.state = self.model.init_state(frames.shape[0])
        mask = self.spot_mask(int(self.model.steps))
        if mask is not None:  # hide the spot (grey) in the input; learn to predict the whole frame
            shown = torch.where(mask.to(frames.device), torch.full_like(frames, 0.5), frames)
            out = self.model.step(shown, self.state, target=frames)
        else:
            out = self.model.step(frames, self.state)
        self.state = out.state
        if self.model.compile_seconds > self._compile_reported:  # the first steps compile, once per layer shape
            self._compile_reported = self.model.compile_seconds
            console.print(f"train.compile: PVM element-wise tail compiled, {self._compile_reported:.1f} s so far")
        errs = {k: v.mean() for k, v in out.layer_errors.items()}
        return {"loss": errs.get("L0", torch.zeros((), device=frames.device)), **errs}

    @torch.no_grad()
    def validate(self) -> dict[str, float]:
        seqs = self.test_sequences()[:, : self.cfg.train.val_frames + 1].to(self.device)
        learning = self.model.learning
        self.model.set_learning(False)
        state, pred, err = self.model.init_state(seqs.shape[0]), None, []
        for t in range(seqs.shape[1]):
            if pred is not None:
                err.append((pred - seqs[:, t]).abs().mean())
            o = self.model.step(seqs[:, t], state)
            state, pred = o.state, o.prediction
        self.model.set_learning(learning)
        copy_last = (seqs[:, 1:] - seqs[:, :-1]).abs().mean()
        return {"val_loss": float(torch.stack(err).mean()), "val_copy_last": float(copy_last)}

    def extra_state(self) -> dict:
        s = self.state
        if s is None:
            return {}
        return {"h_all": s.h_all, "prev": list(s.prev), "integ": list(s.integ),
                "caches": [[list(c) for c in cache] for cache in s.caches]}

    def load_extra_state(self, state: dict) -> None:
        if state:
            self.state = PVMState(state["h_all"].to(self.device), list(state["prev"]), list(state["integ"]),
                                  [[tuple(c) for c in cache] for cache in state["caches"]])

    def stepper(self) -> PVM:
        self.model.set_learning(False)
        return self.model
