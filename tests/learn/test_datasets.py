"""Data sets: the nnfs formulas, seeds, and the IDX reader on files written here."""

import gzip

import numpy as np
import pytest
from numpy.testing import assert_allclose

from chainrule.learn import datasets


def test_spiral_points_follow_the_formula():
    features, labels = datasets.spiral_data(100, 3, seed=0)
    assert features.shape == (300, 2) and features.dtype == np.float32
    assert labels.dtype == np.int64 and np.bincount(labels).tolist() == [100, 100, 100]
    radius = np.linalg.norm(features, axis=1)
    assert_allclose(radius[100:200], np.linspace(0, 1, 100), atol=1e-6)  # r = linspace(0, 1)
    rng = np.random.default_rng(0)
    rng.standard_normal(100)  # class 0's noise
    angle = np.linspace(4, 8, 100) + rng.standard_normal(100) * 0.2
    assert_allclose(features[100:200, 0], np.linspace(0, 1, 100) * np.sin(2.5 * angle), atol=1e-6)


def test_same_seed_same_data_other_seed_other_data():
    a, b, c = (datasets.spiral_data(10, 2, seed=s)[0] for s in (1, 1, 2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)


def test_vertical_clusters_sit_at_c_over_3():
    features, labels = datasets.vertical_data(500, 3, seed=0)
    for c in range(3):
        assert_allclose(features[labels == c].mean(axis=0), [c / 3, 0.5], atol=0.02)


def test_sine():
    x, y = datasets.sine_data(8)
    assert x.shape == y.shape == (8, 1)
    assert_allclose(y[:, 0], np.sin(2 * np.pi * np.arange(8) / 8), atol=1e-6)


def test_bad_counts():
    with pytest.raises(ValueError, match="spiral_data: samples must be a positive integer"):
        datasets.spiral_data(0, 3)


def write_idx(path, array, compress=False):
    header = bytes([0, 0, 8, array.ndim]) + np.array(array.shape, dtype=">u4").tobytes()
    data = header + array.astype(np.uint8).tobytes()
    with (gzip.open if compress else open)(path, "wb") as stream:
        stream.write(data)


def make_mnist(folder, compress=False):
    rng = np.random.default_rng(0)
    suffix = ".gz" if compress else ""
    images = {"train": rng.integers(0, 256, (6, 28, 28)), "t10k": rng.integers(0, 256, (4, 28, 28))}
    for prefix, array in images.items():
        write_idx(folder / f"{prefix}-images-idx3-ubyte{suffix}", array, compress)
        write_idx(folder / f"{prefix}-labels-idx1-ubyte{suffix}", np.arange(len(array)) % 10, compress)
    return images


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_reads_idx_files(tmp_path, compress):
    images = make_mnist(tmp_path, compress)
    (x_train, y_train), (x_test, y_test) = datasets.load_mnist(tmp_path)
    assert x_train.shape == (6, 784) and x_test.shape == (4, 784) and x_train.dtype == np.float32
    assert_allclose(x_train[2], (images["train"][2].ravel() - 127.5) / 127.5, rtol=1e-6)
    assert y_test.tolist() == [0, 1, 2, 3]


@pytest.mark.parametrize("compress", [False, True])
def test_load_mnist_shards_are_consecutive_parts_that_cover_every_row(tmp_path, compress):
    images = make_mnist(tmp_path, compress)
    parts = [datasets.load_mnist(tmp_path, shard=(rank, 4)) for rank in range(4)]
    assert [len(train[0]) for train, _ in parts] == [2, 2, 1, 1]  # 6 rows in 4 parts
    assert [len(test[0]) for _, test in parts] == [1, 1, 1, 1]
    train_rows = np.concatenate([train[0] for train, _ in parts])
    assert_allclose(train_rows, (images["train"].reshape(6, -1) - 127.5) / 127.5, rtol=1e-6)
    assert np.concatenate([test[1] for _, test in parts]).tolist() == [0, 1, 2, 3]
    with pytest.raises(ValueError, match=r"shard must be \(rank, size\) with 0 <= rank < size"):
        datasets.load_mnist(tmp_path, shard=(4, 4))


def test_load_mnist_names_the_missing_file(tmp_path):
    make_mnist(tmp_path)
    (tmp_path / "t10k-labels-idx1-ubyte").unlink()
    with pytest.raises(FileNotFoundError, match="t10k-labels-idx1-ubyte"):
        datasets.load_mnist(tmp_path)


def test_read_idx_rejects_a_truncated_file(tmp_path):
    path = tmp_path / "x-idx1-ubyte"
    write_idx(path, np.arange(10))
    path.write_bytes(path.read_bytes()[:-3])
    with pytest.raises(ValueError, match="holds 7 values"):
        datasets.read_idx(path)
    path.write_bytes(b"PK\x03\x04garbage")
    with pytest.raises(ValueError, match="bad magic number"):
        datasets.read_idx(path)


def test_a_small_compressed_file_cannot_declare_gigabytes(tmp_path):
    path = tmp_path / "train-images-idx3-ubyte.gz"
    with gzip.open(path, "wb") as stream:  # a true header, and that many zeros: they compress 1000 times
        stream.write(bytes([0, 0, 8, 3]) + np.array([2**14, 32, 32], ">u4").tobytes())
        stream.write(bytes(2**24))
    assert path.stat().st_size < 2**16
    with pytest.raises(ValueError, match=r"declares shape \(16384, 32, 32\) from \d+ compressed bytes, more than 32"):
        datasets.read_idx(path)


NNFS_RUN = """
import sys
import numpy as np
import nnfs
from nnfs.datasets import sine_data, spiral_data, vertical_data

nnfs.init()
X, y = spiral_data(100, 3)
weights1 = 0.01 * np.random.randn(2, 3)  # the book's Layer_Dense(2, 3), drawn next
weights2 = 0.01 * np.random.randn(3, 3)
nnfs.init()
X_vertical, y_vertical = vertical_data(100, 3)
X_sine, y_sine = sine_data()
np.savez(sys.argv[1], X=X, y=y, weights1=weights1, weights2=weights2, X_vertical=X_vertical,
         y_vertical=y_vertical, X_sine=X_sine, y_sine=y_sine)
"""


def test_book_data_and_weights_equal_the_nnfs_package_array_for_array(tmp_path):
    """nnfs patches NumPy globally, so it runs in a process of its own."""
    import subprocess
    import sys

    subprocess.run([sys.executable, "-c", NNFS_RUN, str(tmp_path / "nnfs.npz")], check=True, timeout=120)
    state = np.random.get_state()[1].copy()
    book = datasets.BookRandom()
    X, y = book.spiral_data(100, 3)
    weights1, weights2 = book.dense(2, 3).weights, book.dense(3, 3).weights
    X_vertical, y_vertical = datasets.vertical_data(100, 3, nnfs_compatible=True)
    X_sine, y_sine = datasets.sine_data(nnfs_compatible=True)
    ours = {
        "X": X,
        "y": y,
        "weights1": weights1,
        "weights2": weights2,
        "X_vertical": X_vertical,
        "y_vertical": y_vertical,
        "X_sine": X_sine,
        "y_sine": y_sine,
    }
    with np.load(tmp_path / "nnfs.npz") as theirs:
        for name, array in ours.items():
            assert array.dtype == theirs[name].dtype, name
            assert np.array_equal(array, theirs[name]), name
    assert np.array_equal(datasets.spiral_data(100, 3, nnfs_compatible=True)[0], ours["X"])
    assert np.array_equal(np.random.get_state()[1], state)  # NumPy's global state untouched


def test_the_digits_load_as_images_or_rows():
    pytest.importorskip("sklearn")
    images, labels = datasets.load_digits(images=True)
    rows, _ = datasets.load_digits()
    assert images.shape == (1797, 8, 8, 1) and rows.shape == (1797, 64)
    assert images.dtype == np.float32 and labels.dtype == np.int64
    assert images.min() == 0.0 and images.max() == 1.0
    assert_allclose(images.reshape(1797, 64), rows)
