"""The clips PredNet trains and is tested on: Moving MNIST (GOPC's generator) or video.

Every source gives float clips (N, T, C, H, W) in [0, 1]: ``train_batch(n, seeds)`` draws n
training clips from a list of ints (the same seeds give the same clips), ``val`` and ``test``
are fixed sets shared by all training seeds (``data.test_seed``).
"""
from __future__ import annotations

import numpy as np
import torch

from predvis.data.mnist import load_mnist, split_digits
from predvis.data.moving_mnist import MovingMnist, MovingMnistSpec, load_mnist_test_seq
from predvis.data.photos import default_videos
from predvis.data.video import load_video
from predvis.errors import DataError


class MovingMnistClips:
    """Smooth / bouncing Moving MNIST from disjoint train / val / test digit images (docs/datasets.md)."""

    def __init__(self, d):
        self.cfg = d
        digits = load_mnist(d.mnist)
        self.train_digits, self.val_digits, self.test_digits = split_digits(digits, tuple(d.split), d.split_seed)
        self.spec = MovingMnistSpec(d.dataset, d.frames, d.size, d.digits, tuple(d.amp), tuple(d.omega), d.step)
        self.train_source = MovingMnist(self.train_digits.images, self.spec)

    def train_batch(self, n: int, seeds: list[int]) -> torch.Tensor:
        return self.train_source.generate(n, seeds)[0]

    def _fixed(self, digits, n: int, stream: int) -> torch.Tensor:
        source = MovingMnist(digits.images, self.spec)
        return torch.cat([source.generate(min(500, n - s), [self.cfg.test_seed, stream, s])[0]
                          for s in range(0, n, 500)])  # chunked to bound memory

    def val(self) -> torch.Tensor:
        return self._fixed(self.val_digits, self.cfg.val_sequences, 1)

    def test(self) -> torch.Tensor:
        if self.cfg.test_file:
            return load_mnist_test_seq(self.cfg.test_file)[:, : self.cfg.frames]
        return self._fixed(self.test_digits, self.cfg.test_sequences, 2)


def cut_clips(video: torch.Tensor, frames: int, limit: int) -> torch.Tensor:
    """Consecutive non-overlapping clips of ``frames`` from video (T, C, H, W) -> (N, frames, C, H, W),
    at most ``limit`` of them."""
    n = min(video.shape[0] // frames, limit)
    return video[: n * frames].reshape(n, frames, *video.shape[1:])


class VideoClips:
    """Clips from video: the embedded photo videos (``source: photos``; held-out videos from
    ``test_seed``, the first half of each for validation, the second for test) or a video file /
    image folder split in time by ``data.split``."""

    def __init__(self, d, channels: int):
        self.cfg = d
        size = (d.size, d.size)
        if d.source == "photos":
            self.train_videos = default_videos(d.split_seed, d.videos, d.video_frames, size, channels)
            held = default_videos(d.test_seed, d.test_videos, d.video_frames, size, channels)
            half = d.video_frames // 2
            self._val = torch.cat([cut_clips(v[:half], d.frames, d.val_sequences) for v in held])
            self._test = torch.cat([cut_clips(v[half:], d.frames, d.test_sequences) for v in held])
        else:
            video = load_video(d.source, size, channels)
            T = video.shape[0]
            a = int(T * d.split[0] / sum(d.split))
            b = a + int(T * d.split[1] / sum(d.split))
            self.train_videos = [video[:a]]
            self._val, self._test = cut_clips(video[a:b], d.frames, d.val_sequences), cut_clips(video[b:], d.frames,
                                                                                               d.test_sequences)
        self._val, self._test = self._val[: d.val_sequences], self._test[: d.test_sequences]
        if any(v.shape[0] < d.frames for v in self.train_videos) or not len(self._val) or not len(self._test):
            raise DataError(f"data.source {d.source}: too few frames for train / val / test clips of "
                            f"data.frames={d.frames} (split {d.split})")

    def train_batch(self, n: int, seeds: list[int]) -> torch.Tensor:
        rng = np.random.default_rng(seeds)
        clips = []
        for _ in range(n):
            v = self.train_videos[int(rng.integers(len(self.train_videos)))]
            start = int(rng.integers(v.shape[0] - self.cfg.frames + 1))
            clips.append(v[start:start + self.cfg.frames])
        return torch.stack(clips)

    def val(self) -> torch.Tensor:
        return self._val

    def test(self) -> torch.Tensor:
        return self._test


def clip_source(d, channels: int) -> MovingMnistClips | VideoClips:
    if d.source == "moving_mnist":
        if channels != 1:
            raise DataError(f"model.stack[0]: Moving MNIST frames have 1 channel, got {channels}")
        return MovingMnistClips(d)
    return VideoClips(d, channels)
