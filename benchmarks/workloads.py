"""The benchmark workloads, defined once: data, network, optimizer and schedule."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

import chainrule as cr


@dataclass(frozen=True)
class Workload:
    name: str
    sizes: tuple[int, ...]  # layer widths, inputs first; ReLU between, softmax + cross-entropy at the end
    learning_rate: float
    decay: float
    batch_size: int | None  # None: the full batch
    epochs: int
    seed: int = 0
    # A convolutional network: images of `image` (height, width, channels), then for each
    # (in_channels, filters, kernel) a Conv2D with no padding, ReLU and 2x2 max pooling, then
    # Flatten and the Dense layers of `sizes`.
    image: tuple[int, int, int] | None = None
    convolutions: tuple[tuple[int, int, int], ...] = ()
    n_samples: int = 25_600

    def data(self) -> tuple[np.ndarray, np.ndarray]:
        """Features (float32; channels-last images for a convolutional network) and integer labels."""
        if self.name.startswith("spiral"):
            samples = 100 if self.name == "spiral-book" else 1000
            return cr.datasets.spiral_data(samples, 3, seed=self.seed)
        if self.image is not None:
            X, y = gaussian_clusters(self.n_samples, int(np.prod(self.image)), self.sizes[-1], seed=self.seed)
            return X.reshape(-1, *self.image), y
        return gaussian_clusters(self.n_samples, self.sizes[0], self.sizes[-1], seed=self.seed)

    def steps(self, n_samples: int) -> int:
        per_epoch = 1 if self.batch_size is None else -(-n_samples // self.batch_size)
        return per_epoch * self.epochs

    def matmul_flops_per_step(self, batch: int) -> int:
        """Multiply-adds x2 of forward (1 product per layer) and backward (2, the first layer 1)."""
        pairs = list(zip(self.sizes, self.sizes[1:], strict=False))
        forward = sum(2 * batch * a * b for a, b in pairs)
        return forward + 2 * forward - 2 * batch * pairs[0][0] * pairs[0][1]


def gaussian_clusters(n_samples: int, n_features: int, n_classes: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Points around random class centres: learnable, but not in one step."""
    rng = np.random.default_rng(seed)
    centres = 0.1 * rng.standard_normal((n_classes, n_features)).astype(np.float32)
    labels = rng.integers(0, n_classes, n_samples)
    features = centres[labels] + rng.standard_normal((n_samples, n_features), dtype=np.float32)
    return features.astype(np.float32), labels.astype(np.int64)


WORKLOADS = {
    workload.name: workload
    for workload in (
        Workload("spiral-book", (2, 64, 3), 0.05, 5e-7, None, 10_000),
        Workload("spiral-minibatch", (2, 64, 64, 3), 0.005, 0.0, 32, 20),
        Workload("mlp-medium", (784, 512, 512, 10), 0.001, 0.0, 128, 1),
        Workload("mlp-large", (784, 4096, 4096, 10), 0.001, 0.0, 4096, 3),
        # LeNet-5's shape on 28x28x1 images: 28 -> conv 5 -> 24 -> pool -> 12 -> conv 5 -> 8 -> pool -> 4
        Workload(
            "lenet",
            (4 * 4 * 16, 120, 84, 10),
            0.001,
            0.0,
            64,
            2,
            image=(28, 28, 1),
            convolutions=((1, 6, 5), (6, 16, 5)),
            n_samples=6_400,
        ),
    )
}
CPU_WORKLOADS = ["spiral-book", "spiral-minibatch", "mlp-medium", "lenet"]  # mlp-large takes seconds per step on a CPU
