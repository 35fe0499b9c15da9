"""Pooling: each window of each channel reduced to one value, its maximum or its mean.

Pooling has no parameters. Its backward pass sends each output's gradient back to the inputs
that made it: all of it to the window's maximum (MaxPool2D), or an equal share to every pixel of
the window (AveragePool2D). Windows that overlap (a stride smaller than the pool) add up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.backend.arrays import array_module
from chainrule.engine.contract import StepBuffers
from chainrule.engine.layers import Layer
from chainrule.engine.windows import IMAGE_AXES, SlidingWindows, image_shape


class Pool2D(Layer):
    """What both poolings share: the windows (`pool_size`, `stride` defaulting to the pool size,
    `padding`) over channels-last images, and the output shape."""

    input_axes = IMAGE_AXES

    def __init__(
        self,
        pool_size: int | tuple[int, int] = 2,
        *,
        stride: int | tuple[int, int] | None = None,
        padding: str | int = "valid",
        dtype: Any = None,
    ) -> None:
        super().__init__(dtype)
        name = type(self).__name__
        self.windows = SlidingWindows(pool_size, pool_size if stride is None else stride, padding, 1, name)
        if isinstance(self.windows.padding, int) and 2 * self.windows.padding > min(self.windows.kernel):
            raise ValueError(f"{name}: padding must be at most half the pool size, got {padding!r}")

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return self.windows.output_shape(input_shape, None)

    def tap_count(self) -> int:
        """The pixels in one window."""
        return self.windows.kernel[0] * self.windows.kernel[1]

    def get_config(self) -> dict[str, Any]:
        settings = self.windows.get_config()
        del settings["dilation"]
        return {"pool_size": list(self.windows.kernel), **settings, **super().get_config()}


class MaxPool2D(Pool2D):
    """The maximum of each window. Padding counts as -inf, so it never wins.

    The maximum is kept as a running maximum over the window's taps (each tap one strided slice of
    the images, so the loop is over the few taps, never over positions), with the index of the tap
    that holds it. Ties: the whole gradient goes to the first maximum of the window, reading it
    row by row (as NumPy's argmax and PyTorch's max pooling choose), not split among the tied
    pixels. The maximum is not differentiable there; this is one valid choice of subgradient.
    """

    last_pass = (*Pool2D.last_pass, "argmax")

    argmax: np.ndarray  # set by forward: which tap of each window holds its maximum

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        taps = self.windows.taps(self.windows.pad(inputs, fill=-np.inf))
        self.output = taps[0].copy()
        self.argmax = np.zeros_like(self.output, dtype=tap_index_dtype(len(taps)))
        self.running_maximum(taps, np.empty_like(self.output, dtype=bool), np.empty_like(self.argmax))
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        dtaps = array_module(dvalues).empty((self.tap_count(), *dvalues.shape), dvalues.dtype)
        self.route(dvalues, dtaps, np.empty_like(dvalues, dtype=bool))
        self.dinputs = self.windows.scatter(dtaps, self.inputs.shape)
        return self.dinputs

    def running_maximum(self, taps: list[np.ndarray], greater: np.ndarray, claimed: np.ndarray) -> None:
        """`output` (holding the first tap) becomes each window's maximum, `argmax` (zeros) its tap."""
        for index, tap in enumerate(taps[1:], start=1):
            np.greater(tap, self.output, out=greater)  # strictly greater: a tie keeps the first maximum
            # where(greater, index, argmax), as a maximum: every earlier tap's index is smaller
            np.multiply(greater, self.argmax.dtype.type(index), out=claimed)
            np.maximum(self.argmax, claimed, out=self.argmax)
            np.maximum(self.output, tap, out=self.output)

    def route(self, dvalues: np.ndarray, dtaps: np.ndarray, chosen: np.ndarray) -> None:
        """Each tap's gradient: the window's gradient where the tap held the maximum, else 0."""
        for index, dtap in enumerate(dtaps):
            np.equal(self.argmax, index, out=chosen)
            np.multiply(chosen, dvalues, out=dtap)

    # -- the static form (a static training step's buffers; see Layer) -------------------------

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        self.inputs = inputs
        taps = self.windows.taps(self.windows.pad_into(inputs, buffers, fill=-np.inf))
        self.output = buffers.output
        np.copyto(self.output, taps[0])
        self.argmax = buffers.scratch("argmax", self.output.shape, dtype=tap_index_dtype(len(taps)))
        self.argmax.fill(0)
        mask = buffers.scratch("mask", self.output.shape, dtype=bool)
        self.running_maximum(taps, mask, buffers.scratch("claimed", self.output.shape, dtype=self.argmax.dtype))

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        if buffers.first:
            return
        dtaps = buffers.scratch("dtaps", (self.tap_count(), *dvalues.shape))
        self.route(dvalues, dtaps, buffers.scratch("mask", dvalues.shape, dtype=bool))
        self.windows.scatter_to_dinputs(dtaps, buffers)


class AveragePool2D(Pool2D):
    """The mean of each window: its taps added, divided by their count. Padding pixels count as
    zeros in the mean (PyTorch's default, `count_include_pad=True`), so every window divides by
    `pool_height * pool_width`."""

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        taps = self.windows.taps(self.windows.pad(inputs))
        self.output = taps[0].copy()
        self.mean_of(taps)
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        share = dvalues / self.tap_count()  # each pixel's share of its window's mean
        dtaps = np.broadcast_to(share, (self.tap_count(), *share.shape))
        self.dinputs = self.windows.scatter(dtaps, self.inputs.shape)
        return self.dinputs

    def mean_of(self, taps: list[np.ndarray]) -> None:
        """`output` (holding the first tap) becomes each window's mean."""
        for tap in taps[1:]:
            np.add(self.output, tap, out=self.output)
        np.divide(self.output, len(taps), out=self.output)

    # -- the static form (a static training step's buffers; see Layer) -------------------------

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        self.inputs = inputs
        taps = self.windows.taps(self.windows.pad_into(inputs, buffers))
        self.output = buffers.output
        np.copyto(self.output, taps[0])
        self.mean_of(taps)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        if buffers.first:
            return
        share = buffers.scratch("share", dvalues.shape)
        np.divide(dvalues, self.tap_count(), out=share)
        self.windows.scatter_to_dinputs(np.broadcast_to(share, (self.tap_count(), *share.shape)), buffers)


class GlobalAveragePool2D(Layer):
    """The mean of each channel over the whole image: `(n, height, width, channels)` to
    `(n, channels)`, so a Dense layer can follow whatever the image size."""

    input_axes = IMAGE_AXES

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        self.output = inputs.mean(axis=(1, 2))
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        n, height, width, channels = self.inputs.shape
        share = dvalues / (height * width)  # each pixel's share of its channel's mean
        self.dinputs = np.broadcast_to(share[:, None, None, :], self.inputs.shape).copy()
        return self.dinputs

    def output_shape(self, input_shape: tuple[int, ...]) -> tuple[int, ...]:
        return (image_shape(input_shape)[2],)

    # -- the static form (a static training step's buffers; see Layer) -------------------------

    def forward_into(self, inputs: np.ndarray, buffers: StepBuffers) -> None:
        self.inputs = inputs
        np.mean(inputs, axis=(1, 2), out=buffers.output)

    def backward_into(self, dvalues: np.ndarray, buffers: StepBuffers) -> None:
        if not buffers.first:
            height, width = self.inputs.shape[1:3]
            np.divide(dvalues[:, None, None, :], height * width, out=buffers.dinputs)


def tap_index_dtype(taps: int) -> np.dtype:
    """The smallest unsigned integer type that numbers `taps` taps."""
    return np.min_scalar_type(taps - 1)
