"""Pooling: each window of each channel reduced to one value, its maximum or its mean.

Pooling has no parameters. Its backward pass sends each output's gradient back to the inputs
that made it: all of it to the window's maximum (MaxPool2D), or an equal share to every pixel of
the window (AveragePool2D). Windows that overlap (a stride smaller than the pool) add up.
"""

from __future__ import annotations

from typing import Any

import numpy as np

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

    def get_config(self) -> dict[str, Any]:
        settings = self.windows.get_config()
        del settings["dilation"]
        return {"pool_size": list(self.windows.kernel), **settings, **super().get_config()}


class MaxPool2D(Pool2D):
    """The maximum of each window. Padding counts as -inf, so it never wins.

    Ties: the whole gradient goes to the first maximum of the window, reading it row by row (as
    NumPy's argmax and PyTorch's max pooling choose), not split among the tied pixels. The
    maximum is not differentiable there; this is one valid choice of subgradient.
    """

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        windows = self.windows.view(self.windows.pad(inputs, fill=-np.inf))
        n, out_height, out_width, height, width, channels = windows.shape
        flat = windows.reshape(n, out_height, out_width, height * width, channels)
        self.argmax = np.argmax(flat, axis=3)  # the first maximum of each window, kept for backward
        self.output = np.take_along_axis(flat, self.argmax[:, :, :, None, :], axis=3)[:, :, :, 0, :]
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        height, width = self.windows.kernel
        dwindows = np.zeros((*dvalues.shape[:3], height * width, dvalues.shape[3]), dvalues.dtype)
        np.put_along_axis(dwindows, self.argmax[:, :, :, None, :], dvalues[:, :, :, None, :], axis=3)
        dwindows = dwindows.reshape(*dvalues.shape[:3], height, width, dvalues.shape[3])
        self.dinputs = self.windows.scatter(dwindows, self.inputs.shape)
        return self.dinputs


class AveragePool2D(Pool2D):
    """The mean of each window. Padding pixels count as zeros in the mean (PyTorch's default,
    `count_include_pad=True`), so every window divides by `pool_height * pool_width`."""

    def forward(self, inputs: np.ndarray, training: bool = False) -> np.ndarray:
        self.inputs = inputs
        windows = self.windows.view(self.windows.pad(inputs))
        self.output = windows.mean(axis=(3, 4))
        return self.output

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        height, width = self.windows.kernel
        share = dvalues / (height * width)
        dwindows = np.broadcast_to(share[:, :, :, None, None, :], (*dvalues.shape[:3], height, width, dvalues.shape[3]))
        self.dinputs = self.windows.scatter(dwindows, self.inputs.shape)
        return self.dinputs


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
