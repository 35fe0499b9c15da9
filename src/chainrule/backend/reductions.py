"""Row and column reductions, routed to the fastest NumPy primitive for the array's shape.

NumPy reduces along a short last axis with a slow per-row loop: for a (300, 3) batch of logits,
`x.max(axis=1)` takes several times longer than the exponentials. Sums become products with a
ones vector (BLAS), and maxima over a few columns become elementwise maxima of the columns.
"""

from __future__ import annotations

import numpy as np

from chainrule.backend.arrays import cached_ones

ELEMENTWISE_MAXIMA_COLUMNS = 16  # up to this many columns, a chain of elementwise maxima beats the axis reduction


def row_sums(values: np.ndarray) -> np.ndarray:
    """values.sum(axis=1, keepdims=True) of a 2-D array."""
    return (values @ cached_ones(values.shape[1], values.dtype, like=values))[:, None]


def column_sums(values: np.ndarray, out: np.ndarray) -> np.ndarray:
    """values.sum(axis=0, keepdims=True) of a 2-D array, written into `out` of shape (1, columns)."""
    np.matmul(cached_ones(values.shape[0], values.dtype, like=values), values, out=out[0])
    return out


def row_maxima(values: np.ndarray) -> np.ndarray:
    """values.max(axis=1, keepdims=True) of a 2-D array."""
    if values.shape[1] > ELEMENTWISE_MAXIMA_COLUMNS:
        return values.max(axis=1, keepdims=True)
    columns = values.T
    if len(columns) == 1:
        return columns[0].copy()[:, None]
    maxima = np.maximum(columns[0], columns[1])
    for column in columns[2:]:
        np.maximum(maxima, column, out=maxima)
    return maxima[:, None]
