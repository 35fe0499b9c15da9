"""Metrics: how often predictions are right, or how far off they are."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np


def categorical_accuracy(predictions: np.ndarray, y_true: np.ndarray) -> float:
    """Share of samples whose predicted class equals the label (indices or one-hot rows)."""
    labels = y_true if y_true.ndim == 1 else np.argmax(y_true, axis=1)
    return int(np.count_nonzero(predictions == labels)) / len(labels)


def binary_accuracy(predictions: np.ndarray, y_true: np.ndarray) -> float:
    """Share of outputs whose 0/1 prediction equals the target."""
    return float(np.mean(predictions == y_true))


def mean_absolute_error(predictions: np.ndarray, y_true: np.ndarray) -> float:
    """Mean |prediction - target| over all outputs, for regression."""
    return float(np.mean(np.abs(predictions - y_true)))


def binary_accuracy_into(predictions: np.ndarray, y_true: np.ndarray, out: np.ndarray) -> None:
    """1 where the prediction equals the target, else 0: `binary_accuracy` is their mean."""
    np.equal(predictions, y_true, out=out)


def absolute_errors_into(predictions: np.ndarray, y_true: np.ndarray, out: np.ndarray) -> None:
    """|prediction - target|: `mean_absolute_error` is their mean."""
    np.subtract(predictions, y_true, out=out)
    np.absolute(out, out=out)


Metric = Callable[[np.ndarray, np.ndarray], float]
# The static forms of the metrics that are a mean over every output, for a static training step:
# each writes the elementwise values with `out=`.
ELEMENTWISE_METRICS: dict[Metric, Callable[[np.ndarray, np.ndarray, np.ndarray], None]] = {
    binary_accuracy: binary_accuracy_into,
    mean_absolute_error: absolute_errors_into,
}
METRICS: dict[str, Metric] = {
    "categorical_accuracy": categorical_accuracy,
    "binary_accuracy": binary_accuracy,
    "mae": mean_absolute_error,
}
