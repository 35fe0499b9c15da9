"""One builder for the usual network: Dense layers with an activation between them, the
command line's and the scikit-learn estimators' alike."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.engine.activations import ACTIVATIONS
from chainrule.engine.layers import Dense, Dropout, Layer
from chainrule.training.model import Model


def build_network(
    sizes: Sequence[int],
    *,
    activation: str,
    output: type[Layer],
    dropout: float = 0.0,
    weight_l1: float = 0.0,
    weight_l2: float = 0.0,
    bias_l1: float = 0.0,
    bias_l2: float = 0.0,
    regularize_output: bool = True,
    dtype: Any = np.float32,
    seed: int | None = None,
) -> Model:
    """`sizes` are the widths, inputs first: Dense -> `activation` (-> Dropout) for each hidden
    layer, then Dense -> `output`. The penalties apply to every Dense layer, or only to the
    hidden ones when `regularize_output` is False."""
    if activation not in ACTIVATIONS:
        raise ValueError(f"build_network: unknown activation {activation!r}; choose from {sorted(ACTIVATIONS)}")
    model = Model(seed=seed, dtype=dtype)
    pairs = list(zip(sizes, sizes[1:], strict=False))
    for index, (n_inputs, n_neurons) in enumerate(pairs):
        last = index == len(pairs) - 1
        penalties = not last or regularize_output
        model.add(
            Dense(
                n_inputs,
                n_neurons,
                weight_regularizer_l1=weight_l1 if penalties else 0.0,
                weight_regularizer_l2=weight_l2 if penalties else 0.0,
                bias_regularizer_l1=bias_l1 if penalties else 0.0,
                bias_regularizer_l2=bias_l2 if penalties else 0.0,
                dtype=dtype,
            )
        )
        if last:
            model.add(output())
            break
        model.add(ACTIVATIONS[activation]())
        if dropout:
            model.add(Dropout(dropout))
    return model


def training_bytes(sizes: Sequence[int], batch_rows: int, dtype: Any) -> int:
    """About the memory training the network of `sizes` takes: every parameter five times
    (values, gradients, two optimizer moments, scratch) and a batch's activations about four
    times over (outputs, masks, gradients) at every layer."""
    itemsize = np.dtype(dtype).itemsize
    parameters = sum((n_inputs + 1) * n_neurons for n_inputs, n_neurons in zip(sizes, sizes[1:], strict=False))
    return itemsize * (5 * parameters + 4 * batch_rows * sum(sizes))
