"""Activation functions, each a Layer whose backward multiplies by its local derivative."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule._checks import float_array
from chainrule.layers import Layer


class ReLU(Layer):
    """max(0, x); the gradient passes where the input was positive and stops elsewhere."""

    def _forward(self, inputs: np.ndarray, training: bool) -> np.ndarray:
        self.inputs = inputs
        self.output = np.maximum(inputs, 0)
        return self.output

    def _backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = dvalues * (self.inputs > 0)
        return self.dinputs


class LeakyReLU(Layer):
    """x for x > 0, alpha * x otherwise, so negative inputs still pass a small gradient."""

    def __init__(self, alpha: float = 0.01, *, dtype: Any = np.float32) -> None:
        super().__init__(dtype)
        if isinstance(alpha, bool) or not isinstance(alpha, (int, float)) or not np.isfinite(alpha):
            raise ValueError(f"LeakyReLU: alpha must be a finite number, got {alpha!r}")
        self.alpha = float(alpha)

    def _forward(self, inputs: np.ndarray, training: bool) -> np.ndarray:
        self.inputs = inputs
        self.output = np.where(inputs > 0, inputs, self.dtype.type(self.alpha) * inputs)
        return self.output

    def _backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = np.where(self.inputs > 0, dvalues, self.dtype.type(self.alpha) * dvalues)
        return self.dinputs

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha, **super().get_config()}


class Sigmoid(Layer):
    """1 / (1 + e^-x), with derivative s * (1 - s); predictions threshold at 0.5."""

    def _forward(self, inputs: np.ndarray, training: bool) -> np.ndarray:
        self.inputs = inputs
        # 0.5 * (1 + tanh(x / 2)) is the logistic function without exp overflow for large |x|.
        half = self.dtype.type(0.5)
        self.output = half + half * np.tanh(half * inputs)
        return self.output

    def _backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = dvalues * (1 - self.output) * self.output
        return self.dinputs

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        return (outputs > 0.5).astype(np.int64)


class Tanh(Layer):
    """tanh(x), with derivative 1 - tanh(x)^2."""

    def _forward(self, inputs: np.ndarray, training: bool) -> np.ndarray:
        self.inputs = inputs
        self.output = np.tanh(inputs)
        return self.output

    def _backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = dvalues * (1 - self.output * self.output)
        return self.dinputs


class Linear(Layer):
    """The identity, for regression outputs; the gradient passes unchanged."""

    def _forward(self, inputs: np.ndarray, training: bool) -> np.ndarray:
        self.inputs = inputs
        self.output = inputs
        return self.output

    def _backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = dvalues
        return self.dinputs


class Softmax(Layer):
    """Normalised exponentials per row: probabilities over classes.

    The row maximum is subtracted before exponentiating (the result is unchanged, overflow is
    impossible). The backward pass multiplies each row's gradient by that row's Jacobian
    `diag(s) - s s^T` without building it: `s * (dvalues - sum(dvalues * s))`.
    """

    def _forward(self, inputs: np.ndarray, training: bool) -> np.ndarray:
        self.inputs = inputs
        with np.errstate(over="ignore"):  # x - max may overflow to -inf for |x| near the dtype's max; exp gives 0
            exponentials = np.exp(inputs - inputs.max(axis=1, keepdims=True))
        self.output = exponentials / exponentials.sum(axis=1, keepdims=True)
        return self.output

    def _backward(self, dvalues: np.ndarray) -> np.ndarray:
        probabilities = self.output
        self.dinputs = probabilities * (dvalues - (dvalues * probabilities).sum(axis=1, keepdims=True))
        return self.dinputs

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        return np.argmax(outputs, axis=1)

    @staticmethod
    def jacobian(probabilities: Any) -> np.ndarray:
        """The matrix d softmax_i / d input_j = s_i (delta_ij - s_j) of one output row (k,) or
        of each row of a batch (n, k) -> (n, k, k); what the vectorised backward avoids building."""
        checked = float_array(
            probabilities, np.float64, "probabilities", "Softmax.jacobian", ndim=np.ndim(probabilities)
        )
        if checked.ndim not in (1, 2):
            raise ValueError(f"Softmax.jacobian: expected shape (k,) or (n, k), got {checked.shape}")
        outer = checked[..., :, None] * checked[..., None, :]
        diagonal = checked[..., :, None] * np.eye(checked.shape[-1])
        return diagonal - outer


ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "sigmoid": Sigmoid,
    "tanh": Tanh,
    "linear": Linear,
    "softmax": Softmax,
}
