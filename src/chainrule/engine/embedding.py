"""Embedding: a table lookup, each integer index replaced by a learned row of `weights`.

The forward pass is `weights[indices]`. It is a Dense layer applied to one-hot rows, written
without building them: `onehot(indices) @ weights` picks those rows. So the backward pass is
Dense's `inputs.T @ dvalues` for that one-hot matrix: each row's gradient added to the row of
the index it came from, an index used twice getting both (`np.add.at` adds repeats; plain
`dweights[indices] += dvalues` would keep only one of them).
"""

from __future__ import annotations

import math
from typing import Any

import numpy as np

from chainrule.engine.contract import StepBuffers
from chainrule.engine.layers import DrawnWeights
from chainrule.engine.validation import numeric_array, whole_number


class Embedding(DrawnWeights):
    """`n_embeddings` learned vectors of `dimensions` values: integer inputs of any shape
    `(n_samples, ...)` in [0, n_embeddings) become `(n_samples, ..., dimensions)`.

    The indices are not differentiable: `dinputs` is zero, and an Embedding is the first layer of
    a network. Weights are drawn from a standard normal, as PyTorch's `nn.Embedding` does.
    """

    input_axes = None
    dweights: np.ndarray  # set by backward

    def __init__(self, n_embeddings: int, dimensions: int, *, dtype: Any = np.float32, seed: int | None = None) -> None:
        super().__init__(dtype)
        self.n_embeddings = whole_number(n_embeddings, "n_embeddings", "Embedding")
        self.dimensions = whole_number(dimensions, "dimensions", "Embedding")
        self.seed = None if seed is None else whole_number(seed, "seed", "Embedding", minimum=0)
        self.initialize(np.random.default_rng(seed))

    def draw_weights(self, rng: np.random.Generator) -> np.ndarray:
        """Standard normal weights."""
        return rng.standard_normal((self.n_embeddings, self.dimensions)).astype(self.dtype)

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        self.output = self.weights[inputs]
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dweights = np.zeros_like(self.weights)
        np.add.at(self.dweights, self.inputs.reshape(-1), dvalues.reshape(-1, self.dimensions))
        self.dinputs = np.zeros(self.inputs.shape, self.weights.dtype)  # indices have no gradient
        return self.dinputs

    # -- the static form (a static training step's buffers; see Layer) -------------------------

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        self.inputs = inputs
        np.take(self.weights, inputs, axis=0, out=buffers.output)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        self.dweights = buffers.scratch("dweights", self.weights.shape)
        self.dweights.fill(0)
        np.add.at(self.dweights, self.inputs.reshape(-1), dvalues.reshape(-1, self.dimensions))
        if not buffers.first:
            buffers.dinputs.fill(0)  # indices have no gradient

    def checked_inputs(self, values: Any, dtype: Any, name: str, owner: str) -> np.ndarray:
        """Whole-number indices in [0, n_embeddings), as int64 (floats holding whole numbers,
        such as a data set read as floats, are accepted)."""
        array = numeric_array(values, name, owner)
        if array.ndim < 1:
            raise ValueError(f"{owner}: {name} must be an array of indices (n_samples, ...), got a scalar")
        if array.dtype.kind == "f" and not (np.isfinite(array).all() and (array == np.round(array)).all()):
            raise ValueError(f"{owner}: {name} must hold whole-number indices, got non-integer values")
        indices = array.astype(np.int64)
        if indices.size and (indices.min() < 0 or indices.max() >= self.n_embeddings):
            raise ValueError(
                f"{owner}: {name} must hold indices in [0, {self.n_embeddings}), got values from "
                f"{indices.min()} to {indices.max()}"
            )
        return indices

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights}

    def gradients(self) -> dict[str, np.ndarray]:
        return {"weights": self.dweights}

    @property
    def input_width(self) -> None:
        return None

    @property
    def output_width(self) -> int:
        return self.dimensions

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (*input_shape, self.dimensions)

    @classmethod
    def declared_parameters(cls, config: dict[str, Any]) -> int:
        return math.prod(whole_number(config.get(key), key, "Embedding") for key in ("n_embeddings", "dimensions"))

    def get_config(self) -> dict[str, Any]:
        seed = {} if self.seed is None else {"seed": self.seed}
        return {"n_embeddings": self.n_embeddings, "dimensions": self.dimensions, **seed, **super().get_config()}
