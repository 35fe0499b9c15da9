"""Activation functions, each a Layer whose backward multiplies by its local derivative.

They have no parameters, so they compute in the float dtype of the inputs they receive.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.backend import kernels
from chainrule.backend.reductions import row_maxima, row_sums
from chainrule.engine.contract import StepBuffers
from chainrule.engine.layers import Layer
from chainrule.engine.validation import finite_number, float_array


class Elementwise(Layer):
    """An activation applied to each value alone: it takes a batch of any shape (feature rows,
    images) and gives one of the same shape."""

    input_axes = None


class ReLU(Elementwise):
    """max(0, x); the gradient passes where the input was positive and stops elsewhere.

    `forward_trusted`/`backward_trusted` are the speed path `Model.fit` takes: a training pass
    keeps the 0/1 mask of positive inputs as floats, so the backward pass is one multiplication
    by it (about three times faster than np.maximum). Negative inputs then give -0, which equals
    0 in every later computation; the textbook `forward` gives +0. An inference pass (predict,
    evaluate) needs no mask and computes np.maximum alone.
    """

    last_pass = (*Elementwise.last_pass, "_positive")

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        self.output = np.maximum(inputs, 0)  # +0 also for an input of -0
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = dvalues.copy()
        self.dinputs[self.inputs <= 0] = 0
        return self.dinputs

    def forward_trusted(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        if not training:  # inference keeps no mask (a third of the layer's time on large batches)
            self._positive = None
            self.output = np.maximum(inputs, 0)
            return self.output
        if kernels.applies(inputs):  # both in one pass
            self.output, self._positive = kernels.relu(inputs)
            return self.output
        self._positive = np.greater(inputs, 0, out=np.empty_like(inputs))
        self.output = inputs * self._positive
        return self.output

    def backward_trusted(self, dvalues: np.ndarray) -> np.ndarray:
        # after an inference pass (a gradient check of inference mode) the mask comes from the inputs
        positive = np.greater(self.inputs, 0) if self._positive is None else self._positive
        self.dinputs = dvalues * positive
        return self.dinputs

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        self.inputs = inputs
        np.maximum(inputs, 0, out=buffers.output)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        """dvalues where the input was positive, 0 elsewhere: a product with the 0/1 mask."""
        np.greater(self.inputs, 0, out=buffers.dinputs)
        np.multiply(buffers.dinputs, dvalues, out=buffers.dinputs)


class LeakyReLU(Elementwise):
    """x for x > 0, alpha * x otherwise, so negative inputs still pass a small gradient."""

    last_pass = (*Elementwise.last_pass, "_slope")

    def __init__(self, alpha: float = 0.01, *, dtype: Any = None) -> None:
        super().__init__(dtype)
        self.alpha = finite_number(alpha, "alpha", "LeakyReLU")

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        # The local slope, 1 where x > 0 and alpha elsewhere, serves both passes.
        self._slope = np.greater(inputs, 0, out=np.empty_like(inputs))
        self._slope *= 1 - self.alpha
        self._slope += self.alpha
        self.output = inputs * self._slope
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = dvalues * self._slope
        return self.dinputs

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        self.inputs = inputs
        self._slope_into(buffers.output)
        np.multiply(inputs, buffers.output, out=buffers.output)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        self._slope_into(buffers.dinputs)
        np.multiply(dvalues, buffers.dinputs, out=buffers.dinputs)

    def _slope_into(self, out: np.ndarray) -> None:
        """The local slope of `forward`, 1 where x > 0 and alpha elsewhere, into `out`."""
        np.greater(self.inputs, 0, out=out)
        np.multiply(out, 1 - self.alpha, out=out)
        np.add(out, self.alpha, out=out)

    def get_config(self) -> dict[str, Any]:
        return {"alpha": self.alpha, **super().get_config()}


class Sigmoid(Elementwise):
    """1 / (1 + e^-x), with derivative s * (1 - s); predictions threshold at 0.5."""

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        with np.errstate(over="ignore"):  # e^-x overflows below x = -709 (float32: -88): 1 / inf is 0
            self.output = 1 / (1 + np.exp(-inputs))
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = dvalues * (1 - self.output) * self.output
        return self.dinputs

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        self.inputs, self.output = inputs, buffers.output
        np.negative(inputs, out=self.output)
        np.exp(self.output, out=self.output)
        np.add(self.output, 1, out=self.output)
        np.divide(1, self.output, out=self.output)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        np.subtract(1, self.output, out=buffers.dinputs)
        np.multiply(dvalues, buffers.dinputs, out=buffers.dinputs)
        np.multiply(buffers.dinputs, self.output, out=buffers.dinputs)

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        return (outputs > 0.5).astype(np.int64)


class Tanh(Elementwise):
    """tanh(x), with derivative 1 - tanh(x)^2."""

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        self.output = np.tanh(inputs)
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = dvalues * (1 - self.output * self.output)
        return self.dinputs

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        self.inputs, self.output = inputs, buffers.output
        np.tanh(inputs, out=self.output)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        np.multiply(self.output, self.output, out=buffers.dinputs)
        np.subtract(1, buffers.dinputs, out=buffers.dinputs)
        np.multiply(dvalues, buffers.dinputs, out=buffers.dinputs)


class Exponential(Elementwise):
    """e^x, with derivative e^x: a positive output, for counts and rates (with PoissonDeviance)."""

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        self.output = np.exp(inputs)
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = dvalues * self.output
        return self.dinputs

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        self.inputs, self.output = inputs, buffers.output
        np.exp(inputs, out=self.output)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        np.multiply(dvalues, self.output, out=buffers.dinputs)


class Linear(Elementwise):
    """The identity, for regression outputs; the gradient passes unchanged."""

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        self.output = inputs
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.dinputs = dvalues
        return self.dinputs

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        self.inputs = inputs
        np.copyto(buffers.output, inputs)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        np.copyto(buffers.dinputs, dvalues)


def softmax(inputs: np.ndarray) -> np.ndarray:
    """exp(x - max) / sum(exp(x - max)) per row."""
    if kernels.applies(inputs) and inputs.ndim == 2 and inputs.shape[1] <= kernels.ROW_KERNEL_COLUMNS:
        return kernels.softmax(inputs)  # one pass per row instead of five array operations
    exponentials = np.exp(inputs - row_maxima(inputs))
    exponentials /= row_sums(exponentials)
    return exponentials


class Softmax(Layer):
    """Normalised exponentials per row: probabilities over classes.

    The row maximum is subtracted before exponentiating (the result is unchanged, overflow is
    impossible). The backward pass multiplies each row's gradient by that row's Jacobian
    `diag(s) - s s^T` without building it: `s * (dvalues - sum(dvalues * s))`.
    """

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        with np.errstate(over="ignore"):  # x - max may overflow to -inf for |x| near the dtype's max; exp gives 0
            self.output = softmax(inputs)
        return self.output

    def forward_trusted(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        """`forward` inside a training run, which already silences floating-point warnings."""
        self.inputs = inputs
        self.output = softmax(inputs)
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        probabilities = self.output
        self.dinputs = probabilities * (dvalues - row_sums(dvalues * probabilities))
        return self.dinputs

    def predictions(self, outputs: np.ndarray) -> np.ndarray:
        if kernels.applies(outputs) and outputs.ndim == 2 and outputs.shape[1] <= kernels.ROW_KERNEL_COLUMNS:
            return kernels.row_argmax(outputs)  # NumPy's argmax loops slowly over short rows
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


# Every activation by name, for the CLI, the scikit-learn estimators and model files;
# "logistic", "identity" and "exp" are scikit-learn's names for Sigmoid, Linear and Exponential.
ACTIVATIONS: dict[str, type[Layer]] = {
    "relu": ReLU,
    "leaky_relu": LeakyReLU,
    "sigmoid": Sigmoid,
    "logistic": Sigmoid,
    "tanh": Tanh,
    "linear": Linear,
    "identity": Linear,
    "softmax": Softmax,
    "exp": Exponential,
}
