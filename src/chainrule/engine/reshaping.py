"""Layers that only rearrange values: Flatten and Reshape. Their backward pass gives each
gradient back the shape of the inputs; no value changes."""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chainrule.engine.contract import StepBuffers
from chainrule.engine.layers import Layer
from chainrule.engine.validation import whole_number


class Rearrange(Layer):
    """Each sample reshaped (in C order, the batch axis kept) to what `output_shape` says."""

    input_axes = None

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        self.output = inputs.reshape(len(inputs), *self.output_shape(inputs.shape[1:]))
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = dvalues.reshape(self.inputs.shape)
        return self.dinputs

    # -- the static form (a static training step's buffers; see Layer): a copy each way --------

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        self.inputs = inputs
        np.copyto(buffers.output, inputs.reshape(buffers.output.shape))

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        if not buffers.first:
            np.copyto(buffers.dinputs, dvalues.reshape(buffers.dinputs.shape))


class Flatten(Rearrange):
    """Each sample as one row, `(n, height, width, channels)` to `(n, height * width * channels)`,
    so a Dense layer can follow a convolution."""

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (math.prod(input_shape),)


class Reshape(Rearrange):
    """Each sample reshaped to `target_shape`: `(n, 128)` to `(n, 4, 4, 8)` with `Reshape((4, 4, 8))`."""

    def __init__(self, target_shape: tuple[int, ...] | list[int], *, dtype: Any = None) -> None:
        super().__init__(dtype)
        if not isinstance(target_shape, (tuple, list)) or not target_shape:
            raise ValueError(f"Reshape: target_shape must be a tuple of sizes, got {target_shape!r}")
        self.target_shape = tuple(whole_number(size, "target_shape", "Reshape") for size in target_shape)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if math.prod(input_shape) != math.prod(self.target_shape):
            raise ValueError(f"must hold {math.prod(self.target_shape)} values per sample for {self.target_shape}")
        return self.target_shape

    def get_config(self) -> dict[str, Any]:
        return {"target_shape": list(self.target_shape), **super().get_config()}
