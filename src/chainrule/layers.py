"""Layers: the Layer contract, the fully connected Dense layer and inverted Dropout.

Every layer follows one contract. `forward(inputs)` computes `output` and keeps what the
backward pass needs. `backward(dvalues)` receives the gradient of the loss with respect to
`output` and applies the chain rule to set `dinputs` (and, where there are parameters,
`dweights` and `dbiases`).

The public methods validate their arguments; `_forward` and `_backward` hold the arithmetic and
trust their arguments, so a Model that has validated a data set once can skip the checks on
every step.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from typing import Any

import numpy as np

from chainrule._checks import float_array, float_dtype, require_columns, require_same_shape
from chainrule._reductions import column_sums


class Layer:
    """Base class: validation around `_forward`/`_backward`, and empty parameter lists."""

    def __init__(self, dtype: Any = np.float32) -> None:
        self.dtype = float_dtype(dtype, type(self).__name__)
        self.inputs: np.ndarray | None = None
        self.output: np.ndarray | None = None
        self.dinputs: np.ndarray | None = None

    def forward(self, inputs: Any, training: bool = False) -> np.ndarray:
        """Compute and keep `output` for a batch `inputs` of shape (n_samples, n_features)."""
        owner = f"{type(self).__name__}.forward"
        checked = float_array(inputs, self.dtype, "inputs", owner)
        self._check_input_columns(checked, owner)
        return self._forward(checked, training)

    def backward(self, dvalues: Any) -> np.ndarray:
        """Apply the chain rule to `dvalues` (dLoss/dOutput) and return `dinputs`."""
        owner = f"{type(self).__name__}.backward"
        if self.output is None:
            raise ValueError(f"{owner} called before forward: there is no output to differentiate")
        checked = float_array(dvalues, self.dtype, "dvalues", owner)
        require_same_shape(checked, self.output.shape, "dvalues (the gradient of the output)", owner)
        return self._backward(checked)

    def _check_input_columns(self, inputs: np.ndarray, owner: str) -> None:
        """Layers with a fixed input width override this."""

    def _forward(self, inputs: np.ndarray, training: bool) -> np.ndarray:
        raise NotImplementedError

    def _backward(self, dvalues: np.ndarray) -> np.ndarray:
        raise NotImplementedError

    def parameters(self) -> dict[str, np.ndarray]:
        """Trainable arrays by name; optimizers update them in place."""
        return {}

    def gradients(self) -> dict[str, np.ndarray]:
        """Gradients matching `parameters()`, set by the last `backward`."""
        return {}

    def regularization_penalty(self) -> float:
        """The L1/L2 penalty this layer adds to the loss."""
        return 0.0

    def adopt_rng(self, rng: np.random.Generator) -> None:
        """Draw randomness from a Model's seeded generator unless this layer has its own seed."""

    def bind(self, values: np.ndarray, gradients: np.ndarray) -> None:
        """Layers with parameters keep them in the given flat arrays from now on (see Dense.bind)."""

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        """Turn this layer's outputs into predictions (classes for classifiers)."""
        return outputs

    def get_config(self) -> dict[str, Any]:
        """Constructor arguments that rebuild this layer (weights excluded)."""
        return {"dtype": self.dtype.name}

    def __repr__(self) -> str:
        arguments = ", ".join(f"{key}={value!r}" for key, value in self.get_config().items())
        return f"{type(self).__name__}({arguments})"


def _positive_int(value: Any, name: str, owner: str) -> int:
    if isinstance(value, bool) or not isinstance(value, (int, np.integer)) or value < 1:
        raise ValueError(f"{owner}: {name} must be a positive integer, got {value!r}")
    return int(value)


def _non_negative(value: Any, name: str, owner: str) -> float:
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float, np.number))
        or not (np.isfinite(value) and value >= 0)
    ):
        raise ValueError(f"{owner}: {name} must be a finite number >= 0, got {value!r}")
    return float(value)


class Dense(Layer):
    """A fully connected layer: `output = inputs @ weights + biases`.

    Weights are stored (n_inputs, n_neurons) so the forward pass needs no transpose, and the
    backward pass is the textbook's three lines: `dweights = inputs.T @ dvalues`,
    `dbiases = sum(dvalues, axis=0)`, `dinputs = dvalues @ weights.T`.
    """

    def __init__(
        self,
        n_inputs: int,
        n_neurons: int,
        *,
        weight_regularizer_l1: float = 0.0,
        weight_regularizer_l2: float = 0.0,
        bias_regularizer_l1: float = 0.0,
        bias_regularizer_l2: float = 0.0,
        dtype: Any = np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__(dtype)
        self.n_inputs = _positive_int(n_inputs, "n_inputs", "Dense")
        self.n_neurons = _positive_int(n_neurons, "n_neurons", "Dense")
        self.weight_regularizer_l1 = _non_negative(weight_regularizer_l1, "weight_regularizer_l1", "Dense")
        self.weight_regularizer_l2 = _non_negative(weight_regularizer_l2, "weight_regularizer_l2", "Dense")
        self.bias_regularizer_l1 = _non_negative(bias_regularizer_l1, "bias_regularizer_l1", "Dense")
        self.bias_regularizer_l2 = _non_negative(bias_regularizer_l2, "bias_regularizer_l2", "Dense")
        self.seed = seed
        self._weights_assigned = False
        self.initialize(np.random.default_rng(seed))

    def initialize(self, rng: np.random.Generator) -> None:
        """Draw weights as 0.01 * standard normal and set biases to zero."""
        weights = 0.01 * rng.standard_normal((self.n_inputs, self.n_neurons))
        if not hasattr(self, "_stacked"):
            shape = (self.n_inputs + 1, self.n_neurons)
            self._use_storage(np.empty(shape, self.dtype), np.zeros(shape, self.dtype))
        self._weights[...] = weights  # in place: a Model may hold this storage as part of its buffer
        self._biases[...] = 0

    def _use_storage(self, stacked: np.ndarray, dstacked: np.ndarray) -> None:
        """Keep weights and biases as one (n_inputs + 1, n_neurons) array, biases in the last row.

        Stacked this way, `[inputs, 1] @ stacked` is `inputs @ weights + biases` in one product
        (see `_folds_bias`).
        """
        self._stacked, self._dstacked = stacked, dstacked
        self._weights, self._biases = stacked[:-1], stacked[-1:]
        self.dweights, self.dbiases = dstacked[:-1], dstacked[-1:]
        self._with_ones: np.ndarray | None = None

    def adopt_rng(self, rng: np.random.Generator) -> None:
        if self.seed is None and not self._weights_assigned:
            self.initialize(rng)

    @property
    def weights(self) -> np.ndarray:
        """Weights, shape (n_inputs, n_neurons)."""
        return self._weights

    @weights.setter
    def weights(self, values: Any) -> None:
        checked = float_array(values, self.dtype, "weights", "Dense.weights")
        require_same_shape(checked, (self.n_inputs, self.n_neurons), "weights", "Dense.weights")
        self._weights[...] = checked  # in place: a Model may hold this array as a view of its parameter buffer
        self._weights_assigned = True

    @property
    def biases(self) -> np.ndarray:
        """Biases, shape (1, n_neurons)."""
        return self._biases

    @biases.setter
    def biases(self, values: Any) -> None:
        checked = float_array(values, self.dtype, "biases", "Dense.biases")
        require_same_shape(checked, (1, self.n_neurons), "biases", "Dense.biases")
        self._biases[...] = checked
        self._weights_assigned = True

    def _check_input_columns(self, inputs: np.ndarray, owner: str) -> None:
        require_columns(inputs, self.n_inputs, "inputs", owner)

    @property
    def _folds_bias(self) -> bool:
        """Whether to add the biases inside the product, with inputs extended by a column of ones.

        Adding a (1, n_neurons) row to every output row is a slow broadcast. With few inputs per
        neuron, copying the inputs next to a ones column costs far less (the book's 2-64 spiral
        layer: 17 us instead of 22), with the same values up to rounding.
        """
        return 4 * (self.n_inputs + 1) <= self.n_neurons

    def _forward(self, inputs: np.ndarray, training: bool) -> np.ndarray:
        self.inputs = inputs
        if self._folds_bias:
            with_ones = self._with_ones
            if with_ones is None or with_ones.shape[0] != len(inputs):
                with_ones = self._with_ones = np.ones((len(inputs), self.n_inputs + 1), self.dtype)
            with_ones[:, :-1] = inputs
            self.output = with_ones @ self._stacked
        else:
            self.output = inputs @ self._weights
            self.output += self._biases
        return self.output

    def _backward(self, dvalues: np.ndarray) -> np.ndarray:
        self._parameter_gradients(dvalues)
        self.dinputs = dvalues @ self._weights.T
        return self.dinputs

    def _parameter_gradients(self, dvalues: np.ndarray) -> None:
        """dweights = inputs.T @ dvalues and dbiases = sum(dvalues), plus the penalties' gradients.

        The arrays are written in place (a Model packs them into one buffer so its optimizer
        updates every parameter in a single pass). The first layer of a network needs only
        these, not `dinputs`.
        """
        np.matmul(self.inputs.T, dvalues, out=self.dweights)
        column_sums(dvalues, out=self.dbiases)  # sum over samples, as a product with ones (faster)
        _add_penalty_gradient(self.dweights, self._weights, self.weight_regularizer_l1, self.weight_regularizer_l2)
        _add_penalty_gradient(self.dbiases, self._biases, self.bias_regularizer_l1, self.bias_regularizer_l2)

    def __getstate__(self) -> dict[str, Any]:
        # Pickle stores each array on its own, so views would come back as copies: keep only the
        # stacked storage and rebuild the views from it.
        state = self.__dict__.copy()
        for view in ("_weights", "_biases", "dweights", "dbiases", "_with_ones"):
            del state[view]
        return state

    def __setstate__(self, state: dict[str, Any]) -> None:
        self.__dict__.update(state)
        self._use_storage(self._stacked, self._dstacked)

    def bind(self, values: np.ndarray, gradients: np.ndarray) -> None:
        """Keep weights and biases (and their gradients) in the given flat segments of a Model's
        buffers, in `parameters()` order: weights row by row, then biases."""
        shape = self._stacked.shape
        self._use_storage(values.reshape(shape), gradients.reshape(shape))

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weights": self._weights, "biases": self._biases}

    def gradients(self) -> dict[str, np.ndarray]:
        return {"weights": self.dweights, "biases": self.dbiases}

    def regularization_penalty(self) -> float:
        return _penalty(self._weights, self.weight_regularizer_l1, self.weight_regularizer_l2) + _penalty(
            self._biases, self.bias_regularizer_l1, self.bias_regularizer_l2
        )

    def get_config(self) -> dict[str, Any]:
        return {
            "n_inputs": self.n_inputs,
            "n_neurons": self.n_neurons,
            "weight_regularizer_l1": self.weight_regularizer_l1,
            "weight_regularizer_l2": self.weight_regularizer_l2,
            "bias_regularizer_l1": self.bias_regularizer_l1,
            "bias_regularizer_l2": self.bias_regularizer_l2,
            **super().get_config(),
        }


def _penalty(values: np.ndarray, l1: float, l2: float) -> float:
    """l1 * sum|v| + l2 * sum v^2."""
    total = 0.0
    if l1:
        total += l1 * float(np.abs(values).sum())
    if l2:
        total += l2 * float((values * values).sum())
    return total


def _add_penalty_gradient(gradient: np.ndarray, values: np.ndarray, l1: float, l2: float) -> None:
    """Add d(penalty)/d(values) = l1 * sign(v) + 2 * l2 * v to `gradient` in place."""
    if l1:
        gradient += l1 * np.sign(values)
    if l2:
        gradient += (2 * l2) * values


class Dropout(Layer):
    """Inverted dropout: in training, zero a `rate` fraction of values and scale the rest.

    Scaling the kept values by 1 / (1 - rate) keeps each activation's expected value, so the
    layer is the identity at inference and nothing needs rescaling after training.
    """

    def __init__(self, rate: float, *, dtype: Any = np.float32, seed: int | None = None) -> None:
        super().__init__(dtype)
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not 0 <= rate < 1:
            raise ValueError(f"Dropout: rate is the fraction dropped and must be in [0, 1), got {rate!r}")
        self.rate = float(rate)
        self.seed = seed
        self.rng = np.random.default_rng(seed)
        self.mask: np.ndarray | None = None
        self._mask_frozen = False

    def adopt_rng(self, rng: np.random.Generator) -> None:
        if self.seed is None:
            self.rng = rng

    @contextlib.contextmanager
    def frozen_mask(self) -> Iterator[None]:
        """Reuse the current mask in training forwards, so a gradient check sees one function."""
        self._mask_frozen = True
        try:
            yield
        finally:
            self._mask_frozen = False

    def _forward(self, inputs: np.ndarray, training: bool) -> np.ndarray:
        self.inputs = inputs
        if not training or self.rate == 0.0:
            self.mask = None
            self.output = inputs
            return self.output
        if not (self._mask_frozen and self.mask is not None and self.mask.shape == inputs.shape):
            keep = 1.0 - self.rate
            self.mask = (self.rng.random(inputs.shape, dtype=self.dtype) < keep) * self.dtype.type(1.0 / keep)
        self.output = inputs * self.mask
        return self.output

    def _backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = dvalues if self.mask is None else dvalues * self.mask
        return self.dinputs

    def get_config(self) -> dict[str, Any]:
        return {"rate": self.rate, **super().get_config()}
