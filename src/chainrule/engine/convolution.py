"""Conv2D: a Dense layer applied to every window of an image, with its weights shared.

Each output pixel is one window of the (padded) input, flattened to a row of
`kernel_h * kernel_w * in_channels` values, times the weights reshaped to
`(kernel_h * kernel_w * in_channels, filters)`, plus the biases: Dense's forward, once per
window. Gathering every window's row into one matrix ("im2col") makes the whole layer one
matrix product, and the backward pass is then Dense's three lines on those rows; only `dinputs`
needs one more step, adding each row's gradient back to the pixels its window read (`scatter`).

`convolve_naive` and `convolve_naive_backward` below compute the same values with a loop over the
output positions, the definition as written in a textbook; the tests check one against the other.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.backend.arrays import array_module
from chainrule.backend.reductions import column_sums
from chainrule.engine.contract import StepBuffers
from chainrule.engine.layers import INITIALIZERS, DrawnWeights, Penalized
from chainrule.engine.validation import whole_number
from chainrule.engine.windows import IMAGE_AXES, SlidingWindows, columns_layout, pair


class Conv2D(Penalized, DrawnWeights):
    """A 2-D convolution (a cross-correlation, as in every deep-learning library) over
    channels-last images `(n_samples, height, width, in_channels)`, giving
    `(n_samples, out_height, out_width, filters)`.

    weights: `(kernel_h, kernel_w, in_channels, filters)`; biases: `(1, filters)`.
    `stride`, `padding` ("valid", "same" or a number of pixels) and `dilation` as in
    `SlidingWindows`. The weights are drawn with `initializer` ("he" by default: the book's
    `0.01 * randn` leaves a deep convolutional network's signal too small to learn from). L1 and
    L2 penalties on the weights and biases as Dense's.
    """

    last_pass = (*Penalized.last_pass, "columns")

    input_axes = IMAGE_AXES
    columns: np.ndarray  # set by forward: one row per output pixel, the window it read
    dweights: np.ndarray  # set by backward
    dbiases: np.ndarray

    def __init__(
        self,
        in_channels: int,
        filters: int,
        kernel_size: int | tuple[int, int],
        *,
        stride: int | tuple[int, int] = 1,
        padding: str | int = "valid",
        dilation: int | tuple[int, int] = 1,
        initializer: str = "he",
        weight_regularizer_l1: float = 0.0,
        weight_regularizer_l2: float = 0.0,
        bias_regularizer_l1: float = 0.0,
        bias_regularizer_l2: float = 0.0,
        dtype: Any = np.float32,
        seed: int | None = None,
    ) -> None:
        super().__init__(dtype)
        self.set_penalties(
            weight_regularizer_l1=weight_regularizer_l1,
            weight_regularizer_l2=weight_regularizer_l2,
            bias_regularizer_l1=bias_regularizer_l1,
            bias_regularizer_l2=bias_regularizer_l2,
        )
        if initializer not in INITIALIZERS:
            raise ValueError(f"Conv2D: unknown initializer {initializer!r}; choose from {sorted(INITIALIZERS)}")
        self.in_channels = whole_number(in_channels, "in_channels", "Conv2D")
        self.filters = whole_number(filters, "filters", "Conv2D")
        self.windows = SlidingWindows(kernel_size, stride, padding, dilation, "Conv2D")
        self.initializer = initializer
        self.seed = None if seed is None else whole_number(seed, "seed", "Conv2D", minimum=0)
        self.biases = np.zeros((1, self.filters), self.dtype)
        self.initialize(np.random.default_rng(seed))

    def draw_weights(self, rng: np.random.Generator) -> np.ndarray:
        """The initializer's weights, a window's values being a neuron's inputs."""
        height, width = self.windows.kernel
        fan_in, fan_out = height * width * self.in_channels, height * width * self.filters
        shape = (height, width, self.in_channels, self.filters)
        return INITIALIZERS[self.initializer](rng, shape, fan_in, fan_out).astype(self.dtype)

    # -- the passes -----------------------------------------------------------------------------

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        self.columns = self.windows.im2col(self.windows.pad(inputs))  # one row per window: the one copy
        output = self.columns @ self.weights.reshape(-1, self.filters)
        output += self.biases  # in place: a second array of every pixel's outputs cost half the product
        self.output = output.reshape(*self.windows_at(inputs.shape), self.filters)
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        self.parameter_gradients(dvalues)
        rows = dvalues.reshape(-1, self.filters)  # one row per output pixel, as `columns`
        # Dense's dinputs line, one kernel tap at a time: what each tap of every window receives
        dtaps = np.matmul(rows, self.tap_weights().copy())  # (taps, windows, in_channels); a copy runs faster
        dtaps = dtaps.reshape(-1, *dvalues.shape[:3], self.in_channels)
        self.dinputs = self.windows.scatter(dtaps, self.inputs.shape)
        return self.dinputs

    def parameter_gradients(self, dvalues: np.ndarray) -> None:
        """dweights and dbiases: Dense's two lines on the rows of `columns` (and the penalties'
        gradients); `backward`'s first step."""
        rows = dvalues.reshape(-1, self.filters)
        self.dweights = (self.columns.T @ rows).reshape(self.weights.shape)
        self.dbiases = column_sums(rows, array_module(rows).empty((1, self.filters), rows.dtype))
        self.add_penalty_gradients()

    # All a network's first layer needs: nothing reads its dinputs (a subclass that writes its own
    # backward gets Layer's, which runs that backward).
    backward_parameters = parameter_gradients

    def tap_weights(self) -> np.ndarray:
        """The weights as `(taps, filters, in_channels)`: for each kernel tap, the transpose of the
        matrix that takes a pixel's channels to the filters (a view)."""
        return self.weights.reshape(-1, self.in_channels, self.filters).transpose(0, 2, 1)

    def windows_at(self, input_shape: tuple[int, ...]) -> tuple[int, int, int]:
        """(n, out_h, out_w) for inputs of `input_shape`."""
        return input_shape[0], *self.windows.output_size(*input_shape[1:3])

    # -- the static form (a static training step's buffers; see Layer) -------------------------

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        """`forward`: the padding and im2col into the step's arrays, the product into `output`."""
        self.inputs = inputs
        padded = self.windows.pad_into(inputs, buffers)
        windows_shape = (*self.windows_at(inputs.shape), *self.windows.kernel, self.in_channels)
        shape, order = columns_layout(windows_shape)
        self.columns = self.windows.im2col(padded, buffers.scratch("columns", shape, order=order))
        output = buffers.output.reshape(-1, self.filters)
        buffers.matmul(self.columns, self.weights.reshape(-1, self.filters), output)
        np.add(output, self.biases, out=output)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        """`backward` into the step's arrays: dweights, dbiases (a product with ones) with the
        penalties' gradients, each tap's gradient, then `dinputs`."""
        rows = dvalues.reshape(-1, self.filters)
        self.dweights = buffers.scratch("dweights", self.weights.shape)
        self.dbiases = buffers.scratch("dbiases", self.biases.shape)
        buffers.matmul(self.columns.T, rows, self.dweights.reshape(-1, self.filters))
        buffers.column_sums(rows, self.dbiases)
        self.add_penalty_gradients(lambda name, gradient: buffers.scratch(f"penalty of {name}", gradient.shape))
        if buffers.first:
            return
        taps = self.windows.kernel[0] * self.windows.kernel[1]
        dtaps = buffers.scratch("dtaps", (taps, len(rows), self.in_channels))
        for dtap, weights in zip(dtaps, self.tap_weights(), strict=True):
            buffers.matmul(rows, weights, dtap)
        self.windows.scatter_to_dinputs(dtaps.reshape(taps, *dvalues.shape[:3], self.in_channels), buffers)

    # -- what the rest of chainrule reads --------------------------------------------------------

    def parameters(self) -> dict[str, np.ndarray]:
        return {"weights": self.weights, "biases": self.biases}

    def gradients(self) -> dict[str, np.ndarray]:
        return {"weights": self.dweights, "biases": self.dbiases}

    @property
    def input_width(self) -> int:
        """The channels the inputs must have (their last axis)."""
        return self.in_channels

    @property
    def output_width(self) -> int:
        return self.filters

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        out_height, out_width, _ = self.windows.output_shape(input_shape, self.in_channels)
        return out_height, out_width, self.filters

    def working_values(self, input_shape: tuple[int, ...]) -> int:
        out_height, out_width, _ = self.output_shape(input_shape)
        window = self.windows.kernel[0] * self.windows.kernel[1] * self.in_channels
        return out_height * out_width * (window + self.filters)  # the im2col rows and the output

    @classmethod
    def declared_parameters(cls, config: dict[str, Any]) -> int:
        in_channels, filters = (whole_number(config.get(key), key, "Conv2D") for key in ("in_channels", "filters"))
        height, width = pair(config.get("kernel_size"), "kernel_size", "Conv2D")
        return (height * width * in_channels + 1) * filters

    def get_config(self) -> dict[str, Any]:
        seed = {} if self.seed is None else {"seed": self.seed}
        return {
            "in_channels": self.in_channels,
            "filters": self.filters,
            "kernel_size": list(self.windows.kernel),
            **self.windows.get_config(),
            "initializer": self.initializer,
            **seed,
            **super().get_config(),
        }


def convolve_naive(inputs: np.ndarray, layer: Conv2D) -> np.ndarray:
    """`layer`'s output by the definition: for each output pixel (y, x), the window it reads
    times the weights, summed, plus the biases. A loop over positions: slow, and plain."""
    windows = layer.windows
    padded = windows.pad(inputs)
    out_height, out_width = windows.positions(*padded.shape[1:3])
    output = np.empty((len(inputs), out_height, out_width, layer.filters), np.result_type(inputs, layer.weights))
    for y in range(out_height):
        for x in range(out_width):
            window = padded[:, windows.window(y, 0), windows.window(x, 1), :]  # (n, kh, kw, c)
            output[:, y, x, :] = np.tensordot(window, layer.weights, axes=3) + layer.biases[0]
    return output


def convolve_naive_backward(
    inputs: np.ndarray, layer: Conv2D, dvalues: np.ndarray
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(dinputs, dweights, dbiases) by the definition: each output pixel's gradient times the
    window it read (to dweights) and times the weights (back to that window's pixels)."""
    windows = layer.windows
    padded = windows.pad(inputs)
    dpadded = np.zeros_like(padded, dtype=dvalues.dtype)
    dweights = np.zeros_like(layer.weights, dtype=dvalues.dtype)
    for y in range(dvalues.shape[1]):
        for x in range(dvalues.shape[2]):
            rows, columns = windows.window(y, 0), windows.window(x, 1)
            gradient = dvalues[:, y, x, :]  # (n, filters)
            dweights += np.tensordot(padded[:, rows, columns, :], gradient, axes=([0], [0]))
            dpadded[:, rows, columns, :] += np.tensordot(gradient, layer.weights, axes=([1], [3]))
    (top, _), (left, _) = windows.pads(*inputs.shape[1:3])
    dinputs = dpadded[:, top : top + inputs.shape[1], left : left + inputs.shape[2], :]
    return dinputs, dweights, dvalues.sum(axis=(0, 1, 2)).reshape(1, -1)
