"""Data sets: the book's generated toy problems, and a reader for MNIST-style IDX files."""

from __future__ import annotations

import gzip
import io
import math
import zlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np

from chainrule.engine.layers import Dense
from chainrule.engine.validation import whole_number
from chainrule.files.archive import INFLATION, SMALL_MEMBER
from chainrule.training.distributed import shard_rows


def _counts(samples: int, classes: int, owner: str) -> None:
    whole_number(samples, "samples", owner)
    whole_number(classes, "classes", owner)


def spiral_data(
    samples: int, classes: int, *, seed: int | None = None, nnfs_compatible: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """`classes` interleaved spiral arms of `samples` points each, as in the nnfs package.

    For class c: r = linspace(0, 1), t = linspace(4c, 4(c + 1)) + 0.2 * noise, and the point is
    (r sin 2.5t, r cos 2.5t). Returns float32 features (n, 2) and int64 labels (n,). With
    `nnfs_compatible=True`, the very arrays nnfs returns after `nnfs.init()` (see `BookRandom`).
    """
    if nnfs_compatible:
        return BookRandom(0 if seed is None else seed).spiral_data(samples, classes)
    return _spiral(samples, classes, np.random.default_rng(seed).standard_normal, np.int64, "spiral_data")


def vertical_data(
    samples: int, classes: int, *, seed: int | None = None, nnfs_compatible: bool = False
) -> tuple[np.ndarray, np.ndarray]:
    """Vertical clusters: class c at (0.1 * noise + c / 3, 0.1 * noise + 0.5), as in nnfs. With
    `nnfs_compatible=True`, the very arrays nnfs returns after `nnfs.init()` (see `BookRandom`)."""
    if nnfs_compatible:
        return BookRandom(0 if seed is None else seed).vertical_data(samples, classes)
    return _vertical(samples, classes, np.random.default_rng(seed).standard_normal, np.int64, "vertical_data")


def _spiral(
    samples: int, classes: int, noise: Callable[[int], np.ndarray], label_dtype: type, owner: str
) -> tuple[np.ndarray, np.ndarray]:
    """The spiral formula, with standard normals drawn by `noise(n)`."""

    def arm(class_number: int) -> np.ndarray:
        radius = np.linspace(0.0, 1, samples)
        angle = np.linspace(class_number * 4, (class_number + 1) * 4, samples) + noise(samples) * 0.2
        return np.c_[radius * np.sin(angle * 2.5), radius * np.cos(angle * 2.5)]

    return _classes(samples, classes, arm, label_dtype, owner)


def _vertical(
    samples: int, classes: int, noise: Callable[[int], np.ndarray], label_dtype: type, owner: str
) -> tuple[np.ndarray, np.ndarray]:
    """The vertical-clusters formula, with standard normals drawn by `noise(n)`."""

    def cluster(class_number: int) -> np.ndarray:
        return np.c_[noise(samples) * 0.1 + class_number / 3, noise(samples) * 0.1 + 0.5]

    return _classes(samples, classes, cluster, label_dtype, owner)


def _classes(
    samples: int, classes: int, points: Callable[[int], np.ndarray], label_dtype: type, owner: str
) -> tuple[np.ndarray, np.ndarray]:
    """float32 features (samples * classes, 2), class by class from `points(class_number)` (called
    in class order, so the noise is drawn as nnfs draws it), and the class numbers as labels."""
    _counts(samples, classes, owner)
    features = np.zeros((samples * classes, 2), dtype=np.float32)
    labels: np.ndarray = np.zeros(samples * classes, dtype=label_dtype)
    for class_number in range(classes):
        rows = slice(samples * class_number, samples * (class_number + 1))
        features[rows] = points(class_number)
        labels[rows] = class_number
    return features, labels


def sine_data(samples: int = 1000, *, nnfs_compatible: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """x = arange(n) / n and y = sin(2 pi x), both float32 columns (n, 1), as in nnfs (float64
    with `nnfs_compatible=True`, as nnfs returns them)."""
    _counts(samples, 1, "sine_data")
    x = (np.arange(samples) / samples).reshape(-1, 1)
    y = np.sin(2 * np.pi * x).reshape(-1, 1)
    return (x, y) if nnfs_compatible else (x.astype(np.float32), y.astype(np.float32))


class BookRandom:
    """The book's random numbers: the stream `nnfs.init()` starts, drawn as the nnfs package draws
    them (NumPy's legacy generator seeded with 0, normals cast to float32), without touching
    NumPy's global random state. Draw in the book's order to reproduce its runs exactly:

        book = cr.datasets.BookRandom()
        X, y = book.spiral_data(100, 3)   # nnfs.datasets.spiral_data(100, 3) after nnfs.init()
        dense1 = book.dense(2, 3)         # the weights of the book's Layer_Dense(2, 3)
        dense2 = book.dense(3, 3)
    """

    def __init__(self, seed: int = 0) -> None:
        self.random = np.random.RandomState(whole_number(seed, "seed", "BookRandom", minimum=0))

    def randn(self, *shape: int) -> np.ndarray:
        """np.random.randn as nnfs.init() leaves it: float64 normals cast to float32."""
        return self.random.randn(*shape).astype(np.float32)

    def spiral_data(self, samples: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
        """nnfs's spiral data: float32 features, uint8 labels."""
        return _spiral(samples, classes, self.randn, np.uint8, "BookRandom.spiral_data")

    def vertical_data(self, samples: int, classes: int) -> tuple[np.ndarray, np.ndarray]:
        """nnfs's vertical data: float32 features, uint8 labels."""
        return _vertical(samples, classes, self.randn, np.uint8, "BookRandom.vertical_data")

    def dense(self, n_inputs: int, n_neurons: int, **settings: Any) -> Dense:
        """A float32 Dense layer with the book's initial weights, 0.01 * randn(n_inputs, n_neurons)."""
        layer = Dense(n_inputs, n_neurons, **settings)
        layer.weights = 0.01 * self.randn(n_inputs, n_neurons)
        return layer


IDX_FILES = {
    "train_images": "train-images-idx3-ubyte",
    "train_labels": "train-labels-idx1-ubyte",
    "test_images": "t10k-images-idx3-ubyte",
    "test_labels": "t10k-labels-idx1-ubyte",
}
IDX_UNSIGNED_BYTE = 0x08
MAX_IDX_VALUES = 1 << 30  # read_idx's default bound: 1 GiB of pixels


def _open_idx(path: Path) -> Any:
    return (gzip.open if path.suffix == ".gz" else open)(path, "rb")


def _header(stream: Any, path: Path) -> tuple[int, ...]:
    """Read an IDX header (magic 0x0000 08 nd, then nd big-endian sizes); return the shape."""
    magic = stream.read(4)
    if len(magic) < 4 or magic[0] != 0 or magic[1] != 0 or magic[2] != IDX_UNSIGNED_BYTE or magic[3] == 0:
        raise ValueError(f"read_idx: {path} is not an IDX file of unsigned bytes (bad magic number)")
    sizes = stream.read(4 * magic[3])
    if len(sizes) < 4 * magic[3]:
        raise ValueError(f"read_idx: {path} has a truncated header")
    return tuple(int(size) for size in np.frombuffer(sizes, dtype=">u4"))


def idx_shape(path: str | Path) -> tuple[int, ...]:
    """The shape an IDX file declares, from its header alone."""
    path = Path(path)
    try:
        with _open_idx(path) as stream:
            return _header(stream, path)
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"read_idx: cannot read {path}: {error}") from error


def read_idx(path: str | Path, *, max_values: int = MAX_IDX_VALUES, rows: slice | None = None) -> np.ndarray:
    """Read one IDX file of unsigned bytes (plain or .gz): magic 0x0000 08 nd, sizes, data.

    The header is read first and the data no further than the size it declares (at most
    `max_values`), so a compressed file cannot inflate beyond what it promises; and it may
    promise at most INFLATION times its compressed size, so a small file cannot fill gigabytes. `rows` (a slice
    with step 1) reads only those entries along the first axis: the rest is skipped, not held.
    """
    path = Path(path)
    try:
        with _open_idx(path) as stream:
            shape = _header(stream, path)
            count = math.prod(shape)
            if count > max_values:
                raise ValueError(f"read_idx: {path} declares shape {shape}, more than max_values={max_values} values")
            if path.suffix == ".gz" and count > max(SMALL_MEMBER, INFLATION * path.stat().st_size):
                raise ValueError(
                    f"read_idx: {path} declares shape {shape} from {path.stat().st_size} compressed bytes, more than "
                    f"{INFLATION} times its size (MNIST compresses about 5 times): decompress it first to read it"
                )
            start, stop, _ = (rows or slice(None)).indices(shape[0])
            entry = math.prod(shape[1:])
            stream.seek(start * entry, io.SEEK_CUR)
            wanted = max(stop - start, 0) * entry
            body = stream.read(wanted + (rows is None))  # one byte more than promised reveals trailing data
    except (OSError, EOFError, zlib.error) as error:
        raise ValueError(f"read_idx: cannot read {path}: {error}") from error
    if len(body) != wanted:
        held = f"{len(body)}" if len(body) < wanted else f"more than {count}"
        raise ValueError(f"read_idx: {path} holds {held} values, its header promises shape {shape}")
    return np.frombuffer(body, dtype=np.uint8).reshape((max(stop - start, 0), *shape[1:]))


def _find(folder: Path, stem: str) -> Path:
    for candidate in (folder / stem, folder / f"{stem}.gz"):
        if candidate.is_file():
            return candidate
    raise FileNotFoundError(f"load_mnist: {folder} has no {stem} or {stem}.gz (download the IDX files there)")


def load_mnist(
    path: str | Path, *, shard: tuple[int, int] | None = None, images: bool = False
) -> tuple[tuple[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray]]:
    """Load MNIST or Fashion-MNIST from the four IDX files in folder `path`.

    Returns ((X_train, y_train), (X_test, y_test)) with images flattened to float32 rows scaled
    to [-1, 1], as the book does, and int64 labels; `images=True` keeps each as a channels-last
    image (28, 28, 1) for Conv2D. `shard=(rank, size)` returns only part
    `rank` of `size` consecutive, near-equal parts of each split, reading no other rows: the
    rows of one process in a sharded distributed fit.
    """
    folder = Path(path)
    if not folder.is_dir():
        raise FileNotFoundError(f"load_mnist: {folder} is not a folder")
    if shard is not None:
        rank, size = shard
        whole_number(size, "shard size", "load_mnist")
        if isinstance(rank, bool) or not isinstance(rank, (int, np.integer)) or not 0 <= rank < size:
            raise ValueError(f"load_mnist: shard must be (rank, size) with 0 <= rank < size, got {shard!r}")

    arrays = {}
    for name, stem in IDX_FILES.items():
        file = _find(folder, stem)
        rows = None if shard is None else shard_rows(idx_shape(file)[0], *shard)
        arrays[name] = read_idx(file, rows=rows)

    def scaled(raw: np.ndarray) -> np.ndarray:
        shape = (len(raw), *raw.shape[1:], 1) if images else (len(raw), -1)
        return ((raw.reshape(shape).astype(np.float32) - 127.5) / 127.5).astype(np.float32)

    for split in ("train", "test"):
        if len(arrays[f"{split}_images"]) != len(arrays[f"{split}_labels"]):
            raise ValueError(f"load_mnist: {split} images and labels differ in count in {folder}")
    return (
        (scaled(arrays["train_images"]), arrays["train_labels"].astype(np.int64)),
        (scaled(arrays["test_images"]), arrays["test_labels"].astype(np.int64)),
    )


def load_digits(*, images: bool = False) -> tuple[np.ndarray, np.ndarray]:
    """scikit-learn's bundled 8x8 handwritten digits (1,797 of them, 10 classes; extra `sklearn`):
    float32 pixels scaled from 0-16 to [0, 1], as rows of 64 or, with `images=True`,
    channels-last images (8, 8, 1) for Conv2D; int64 labels."""
    try:
        from sklearn.datasets import load_digits as sklearn_digits
    except ImportError as error:
        raise ImportError("load_digits reads scikit-learn's copy: pip install 'chainrule[sklearn]'") from error
    digits = sklearn_digits()
    shape = (-1, 8, 8, 1) if images else (-1, 64)
    return (digits.data / 16.0).astype(np.float32).reshape(shape), digits.target.astype(np.int64)
