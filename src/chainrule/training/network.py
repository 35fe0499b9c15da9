"""Builders of the usual networks: Dense layers with an activation between them (the command
line's and the scikit-learn estimators'), and a small convolutional network for images."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from chainrule.engine.activations import ACTIVATIONS, ReLU, Softmax
from chainrule.engine.convolution import Conv2D
from chainrule.engine.layers import Dense, Dropout, Layer
from chainrule.engine.pooling import MaxPool2D
from chainrule.engine.reshaping import Flatten
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


def build_cnn(
    image_shape: Sequence[int],
    n_classes: int,
    *,
    dropout: float = 0.3,
    dtype: Any = np.float32,
    seed: int | None = None,
) -> Model:
    """Two 3x3 convolutions ("same" padding, 32 then 64 filters), each with ReLU and 2x2 max
    pooling, then Flatten, Dropout and Dense to a Softmax over `n_classes`: a LeNet-like network
    for images of `image_shape` (height, width, channels) of at least 4x4 pixels."""
    height, width, channels = image_shape
    model = Model(seed=seed, dtype=dtype)
    model.add(Conv2D(channels, 32, 3, padding="same", dtype=dtype)).add(ReLU()).add(MaxPool2D(2))
    model.add(Conv2D(32, 64, 3, padding="same", dtype=dtype)).add(ReLU()).add(MaxPool2D(2))
    model.add(Flatten())
    if dropout:
        model.add(Dropout(dropout))
    model.add(Dense((height // 2 // 2) * (width // 2 // 2) * 64, n_classes, dtype=dtype)).add(Softmax())
    return model


def activation_bytes(model: Model, sample_shape: tuple[int, ...], batch_rows: int, dtype: Any) -> int:
    """About the memory a training step of `model` takes beyond its parameters: every layer's
    output four times over (outputs, masks, gradients) and each convolution's im2col rows twice
    (the rows and their gradient)."""
    itemsize, total = np.dtype(dtype).itemsize, 0
    for layer, shape in zip(model.layers, model.sample_shapes(sample_shape, "X", "training_bytes"), strict=True):
        total += 4 * int(np.prod(shape))
        if isinstance(layer, Conv2D):
            height, width = layer.windows.kernel
            total += 2 * int(np.prod(shape[:2])) * height * width * layer.in_channels
    return itemsize * batch_rows * total
