"""Normalisation layers: each feature (BatchNormalization) or each sample (LayerNormalization)
brought to mean 0 and variance 1, then scaled by `gamma` and shifted by `beta`, both learned.

Both compute, along their axis of `m` values,

    mean = sum(x) / m;  var = sum((x - mean)^2) / m;  x_hat = (x - mean) / sqrt(var + epsilon)
    output = gamma * x_hat + beta

and their backward pass is the compact form (CS231n's): with dx_hat = dvalues * gamma,

    dgamma = sum over samples of dvalues * x_hat;  dbeta = sum over samples of dvalues
    dinputs = (m * dx_hat - sum(dx_hat) - x_hat * sum(dx_hat * x_hat)) / (m * sqrt(var + epsilon))

where the two sums run along the normalised axis. The last line is the chain rule through the mean
and the variance folded into one expression: every x moves the mean and the variance, so each
input's gradient gathers the gradient of all m outputs that share its statistics.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.engine.contract import StepBuffers
from chainrule.engine.layers import Layer
from chainrule.engine.validation import finite_number, whole_number


def normalized_gradient(
    dx_hat: np.ndarray, x_hat: np.ndarray, inverse_std: np.ndarray, axis: int | tuple[int, ...]
) -> np.ndarray:
    """dinputs from dx_hat when the statistics came from the inputs along `axis` (see the module)."""
    m = x_hat.size // inverse_std.size
    sum_dx_hat = np.sum(dx_hat, axis=axis, keepdims=True)
    sum_dx_hat_x_hat = np.sum(dx_hat * x_hat, axis=axis, keepdims=True)
    return (m * dx_hat - sum_dx_hat - x_hat * sum_dx_hat_x_hat) * (inverse_std / m)


class Normalization(Layer):
    """What both normalisations share: `n_features` (the last axis: the features of a 2-D batch,
    the channels of images), `epsilon`, `gamma` (ones) and `beta` (zeros)."""

    last_pass = (*Layer.last_pass, "x_hat", "inverse_std", "dgamma", "dbeta")

    input_axes = None  # (n_samples, ..., n_features): rows, images, sequences

    dgamma: np.ndarray  # set by backward
    dbeta: np.ndarray
    x_hat: np.ndarray  # set by forward
    inverse_std: np.ndarray

    def __init__(self, n_features: int, *, epsilon: float, dtype: Any) -> None:
        super().__init__(dtype)
        owner = type(self).__name__
        self.n_features = whole_number(n_features, "n_features", owner)
        self.epsilon = finite_number(epsilon, "epsilon", owner, minimum=0)
        self.gamma = np.ones((1, self.n_features), self.dtype)
        self.beta = np.zeros((1, self.n_features), self.dtype)

    @property
    def input_width(self) -> int:
        return self.n_features

    @property
    def output_width(self) -> int:
        return self.n_features

    def parameters(self) -> dict[str, np.ndarray]:
        return {"gamma": self.gamma, "beta": self.beta}

    def gradients(self) -> dict[str, np.ndarray]:
        return {"gamma": self.dgamma, "beta": self.dbeta}

    def normalize(self, inputs: np.ndarray, mean: np.ndarray, variance: np.ndarray) -> np.ndarray:
        """x_hat = (inputs - mean) / sqrt(variance + epsilon), then output = gamma * x_hat + beta;
        x_hat and 1 / sqrt(variance + epsilon) are kept for the backward pass."""
        self.inverse_std = 1.0 / np.sqrt(variance + self.epsilon)
        self.x_hat = (inputs - mean) * self.inverse_std
        self.output = self.gamma * self.x_hat + self.beta
        return self.output

    def scale_and_shift_backward(self, dvalues: np.ndarray) -> np.ndarray:
        """dgamma and dbeta (sums over the samples, and the positions of images), and
        dx_hat = dvalues * gamma, returned."""
        positions = tuple(range(dvalues.ndim - 1))
        self.dgamma = np.sum(dvalues * self.x_hat, axis=positions).reshape(self.gamma.shape)
        self.dbeta = np.sum(dvalues, axis=positions).reshape(self.beta.shape)
        return dvalues * self.gamma

    # -- the static form's shared steps (a static training step's buffers; see Layer) ----------

    def statistics_into(self, rows: np.ndarray, axis: int, buffers: StepBuffers) -> tuple[np.ndarray, np.ndarray]:
        """The mean and (biased) variance of `rows` along `axis`, into the step's arrays; the
        centred values' squares pass through its array "x_hat" (overwritten by `normalize_into`)."""
        shape = tuple(1 if index == axis % rows.ndim else size for index, size in enumerate(rows.shape))
        mean, variance = buffers.scratch("mean", shape), buffers.scratch("variance", shape)
        squares = buffers.scratch("x_hat", rows.shape)
        np.mean(rows, axis=axis, keepdims=True, out=mean)
        np.subtract(rows, mean, out=squares)
        np.multiply(squares, squares, out=squares)
        np.mean(squares, axis=axis, keepdims=True, out=variance)
        return mean, variance

    def normalize_into(self, rows: np.ndarray, mean: np.ndarray, variance: np.ndarray, buffers: StepBuffers) -> None:
        """`normalize` on `rows` (the inputs as a matrix, features last) into the step's arrays."""
        self.inverse_std = buffers.scratch("inverse_std", mean.shape)
        np.add(variance, self.epsilon, out=self.inverse_std)
        np.sqrt(self.inverse_std, out=self.inverse_std)
        np.divide(1.0, self.inverse_std, out=self.inverse_std)
        self.x_hat = buffers.scratch("x_hat", rows.shape)
        np.subtract(rows, mean, out=self.x_hat)
        np.multiply(self.x_hat, self.inverse_std, out=self.x_hat)
        output = buffers.output.reshape(rows.shape)
        np.multiply(self.gamma, self.x_hat, out=output)
        np.add(output, self.beta, out=output)

    def scale_and_shift_backward_into(self, rows: np.ndarray, buffers: StepBuffers) -> np.ndarray:
        """`scale_and_shift_backward` on `rows` (dvalues as a matrix) into the step's arrays."""
        self.dgamma = buffers.scratch("dgamma", self.gamma.shape)
        self.dbeta = buffers.scratch("dbeta", self.beta.shape)
        product = buffers.scratch("product", rows.shape)
        np.multiply(rows, self.x_hat, out=product)
        np.sum(product, axis=0, keepdims=True, out=self.dgamma)
        np.sum(rows, axis=0, keepdims=True, out=self.dbeta)
        dx_hat = buffers.scratch("dx_hat", rows.shape)
        np.multiply(rows, self.gamma, out=dx_hat)
        return dx_hat

    def normalized_gradient_into(self, dx_hat: np.ndarray, axis: int, buffers: StepBuffers) -> None:
        """`normalized_gradient` along `axis` into the step's `dinputs` (its array "product" reused)."""
        m = self.x_hat.size // self.inverse_std.size
        sum_dx_hat = buffers.scratch("sum_dx_hat", self.inverse_std.shape)
        sum_dx_hat_x_hat = buffers.scratch("sum_dx_hat_x_hat", self.inverse_std.shape)
        product = buffers.scratch("product", dx_hat.shape)
        np.sum(dx_hat, axis=axis, keepdims=True, out=sum_dx_hat)
        np.multiply(dx_hat, self.x_hat, out=product)
        np.sum(product, axis=axis, keepdims=True, out=sum_dx_hat_x_hat)
        dinputs = buffers.dinputs.reshape(dx_hat.shape)
        np.multiply(dx_hat, m, out=dinputs)
        np.subtract(dinputs, sum_dx_hat, out=dinputs)
        np.multiply(self.x_hat, sum_dx_hat_x_hat, out=product)
        np.subtract(dinputs, product, out=dinputs)
        np.divide(self.inverse_std, m, out=sum_dx_hat)
        np.multiply(dinputs, sum_dx_hat, out=dinputs)

    @classmethod
    def declared_parameters(cls, config: dict[str, Any]) -> int:
        return 4 * whole_number(config.get("n_features"), "n_features", cls.__name__)  # with running statistics

    def get_config(self) -> dict[str, Any]:
        return {"n_features": self.n_features, "epsilon": self.epsilon, **super().get_config()}


class BatchNormalization(Normalization):
    """Each feature normalised over the batch (Ioffe and Szegedy, 2015): after Dense, each of the
    `n_features` columns over the batch's rows (PyTorch's BatchNorm1d); after Conv2D, each of the
    `n_features` channels over the batch's samples and positions (BatchNorm2d).

    In training, the batch's own mean and (biased) variance are used, and the running averages
    move towards them: `running = (1 - momentum) * running + momentum * batch`, with the
    unbiased variance (n / (n - 1) times the batch's), as PyTorch's BatchNorm1d does (its
    `momentum=0.1` is this one). At inference the running averages are used, so one sample's
    output does not depend on the others. Under data parallelism each process keeps its own
    statistics, from its own batches, as PyTorch's default does.
    """

    def __init__(
        self, n_features: int, *, momentum: float = 0.1, epsilon: float = 1e-5, dtype: Any = np.float32
    ) -> None:
        super().__init__(n_features, epsilon=epsilon, dtype=dtype)
        self.momentum = finite_number(momentum, "momentum", "BatchNormalization", minimum=0, below=1)
        self.running_mean = np.zeros((1, self.n_features), self.dtype)
        self.running_var = np.ones((1, self.n_features), self.dtype)

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        self.training = training
        if training:
            positions = tuple(range(inputs.ndim - 1))  # every axis but the features'
            mean = np.mean(inputs, axis=positions).reshape(1, -1)
            variance = np.var(inputs, axis=positions).reshape(1, -1)
            self.update_running_statistics(mean, variance, inputs.size // self.n_features)
        else:
            mean, variance = self.running_mean, self.running_var
        return self.normalize(inputs, mean, variance)

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        dx_hat = self.scale_and_shift_backward(dvalues)
        if self.training:  # the statistics came from this batch: the chain rule goes through them
            positions = tuple(range(dvalues.ndim - 1))
            self.dinputs = normalized_gradient(dx_hat, self.x_hat, self.inverse_std, axis=positions)
        else:  # the running statistics are constants
            self.dinputs = dx_hat * self.inverse_std
        return self.dinputs

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        """`forward` in training (the step trains), over the inputs as rows of features."""
        self.inputs, self.training = inputs, True
        rows = inputs.reshape(-1, self.n_features)
        mean, variance = self.statistics_into(rows, 0, buffers)
        self.update_running_statistics(mean, variance, len(rows), buffers.scratch("moved", mean.shape))
        self.normalize_into(rows, mean, variance, buffers)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        dx_hat = self.scale_and_shift_backward_into(dvalues.reshape(-1, self.n_features), buffers)
        if not buffers.first:
            self.normalized_gradient_into(dx_hat, 0, buffers)

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        if len(input_shape) not in (1, 3):
            raise ValueError("must be (n_samples, n_features) or images (n_samples, height, width, channels)")
        return super().output_shape(input_shape)

    def update_running_statistics(
        self, mean: np.ndarray, variance: np.ndarray, n_samples: int, moved: np.ndarray | None = None
    ) -> None:
        """Move the running averages towards this batch's statistics (see the class), in place,
        working in `moved` (shaped like `mean`; a new array unless the caller keeps one)."""
        moved = np.empty_like(mean) if moved is None else moved
        unbiased_scale = n_samples / (n_samples - 1) if n_samples > 1 else 1.0
        for running, batch, scale in ((self.running_mean, mean, 1.0), (self.running_var, variance, unbiased_scale)):
            np.multiply(batch, scale, out=moved)
            np.multiply(moved, self.momentum, out=moved)  # momentum * batch
            np.multiply(running, 1 - self.momentum, out=running)  # (1 - momentum) * running
            np.add(running, moved, out=running)

    def non_trainable(self) -> dict[str, np.ndarray]:
        return {"running_mean": self.running_mean, "running_var": self.running_var}

    def get_config(self) -> dict[str, Any]:
        return {"momentum": self.momentum, **super().get_config()}


class LayerNormalization(Normalization):
    """Each sample normalised over its features, the last axis (Ba, Kiros and Hinton, 2016;
    PyTorch's LayerNorm(n_features)): the same in training and at inference, and independent of
    the batch. For images that is each position over its channels."""

    def __init__(self, n_features: int, *, epsilon: float = 1e-5, dtype: Any = np.float32) -> None:
        super().__init__(n_features, epsilon=epsilon, dtype=dtype)

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        mean = np.mean(inputs, axis=-1, keepdims=True)
        variance = np.var(inputs, axis=-1, keepdims=True)
        return self.normalize(inputs, mean, variance)

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        dx_hat = self.scale_and_shift_backward(dvalues)
        self.dinputs = normalized_gradient(dx_hat, self.x_hat, self.inverse_std, axis=-1)
        return self.dinputs

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        self.inputs = inputs
        rows = inputs.reshape(-1, self.n_features)
        self.normalize_into(rows, *self.statistics_into(rows, 1, buffers), buffers)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        dx_hat = self.scale_and_shift_backward_into(dvalues.reshape(-1, self.n_features), buffers)
        if not buffers.first:
            self.normalized_gradient_into(dx_hat, 1, buffers)
