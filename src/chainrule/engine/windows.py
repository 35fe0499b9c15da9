"""Sliding windows over images: what convolution and pooling share.

Images are channels-last, `(n_samples, height, width, channels)`: each window, flattened, is
then one contiguous row of `kernel_height * kernel_width * channels` values, so a convolution is
one matrix product with no transpose, and a Dense layer after `Flatten` reads the same order
Keras and TensorFlow use. (ONNX export converts to channels-first at the edges.)

`view` gives every window at once as a strided view of the padded images, shape
`(n, out_height, out_width, kernel_height, kernel_width, channels)`, copying nothing, and `taps`
gives the same values a kernel tap at a time: tap (i, j) of every window is one strided slice
of the images, `(n, out_height, out_width, channels)`. `scatter` is the backward pass: each
tap's gradient added back where the tap read, overlapping windows summing, with a loop over the
few kernel taps and never over output positions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.backend.arrays import array_module, strided_view
from chainrule.engine.contract import StepBuffers
from chainrule.engine.validation import whole_number

IMAGE_AXES = ("n_samples", "height", "width", "channels")
# Below this many channels `im2col` lays its matrix out tap by tap: a window's values are then
# only a few pixels long, and copying them one window at a time ran 3-4x slower (28x28x1 images,
# 5x5 windows: 0.94 ms against 0.23) while at 6 channels and more it ran 2-5x faster.
FEW_CHANNELS = 4


def pair(value: Any, name: str, owner: str, *, minimum: int = 1) -> tuple[int, int]:
    """(vertical, horizontal) from one whole number or a pair of them."""
    values = tuple(value) if isinstance(value, (tuple, list)) else (value, value)
    if len(values) != 2:
        raise ValueError(f"{owner}: {name} must be a whole number or a pair of them, got {value!r}")
    return (
        whole_number(values[0], name, owner, minimum=minimum),
        whole_number(values[1], name, owner, minimum=minimum),
    )


def image_shape(input_shape: tuple[int, ...]) -> tuple[int, int, int]:
    """(height, width, channels) of one sample, or a ValueError (completing "inputs ...") when
    the samples are not images."""
    if len(input_shape) != 3:
        raise ValueError(f"must be images ({', '.join(IMAGE_AXES)}), a 4-D array")
    height, width, channels = input_shape
    return height, width, channels


class SlidingWindows:
    """Windows of `kernel_size` moved by `stride`, their taps `dilation` apart, over images
    padded by `padding`: "valid" (none), "same" (as TensorFlow: out = ceil(in / stride), the odd
    pixel of padding after), or a whole number of pixels on every side."""

    def __init__(self, kernel_size: Any, stride: Any, padding: Any, dilation: Any, owner: str) -> None:
        self.kernel = pair(kernel_size, "kernel_size", owner)
        self.stride = pair(stride, "stride", owner)
        self.dilation = pair(dilation, "dilation", owner)
        if padding not in ("valid", "same"):
            padding = whole_number(padding, 'padding ("valid", "same" or a whole number of pixels)', owner, minimum=0)
        self.padding = padding

    def pads(self, height: int, width: int) -> tuple[tuple[int, int], tuple[int, int]]:
        """((top, bottom), (left, right)) pixels of padding for images of this size."""
        return self._pad(height, 0), self._pad(width, 1)

    def span(self, axis: int) -> int:
        """Pixels one window covers along `axis` (0: down, 1: across), its dilated extent."""
        return self.dilation[axis] * (self.kernel[axis] - 1) + 1

    def _pad(self, size: int, axis: int) -> tuple[int, int]:
        if self.padding == "valid":
            return 0, 0
        if self.padding == "same":
            stride = self.stride[axis]
            total = max((-(-size // stride) - 1) * stride + self.span(axis) - size, 0)
            return total // 2, total - total // 2
        return self.padding, self.padding

    def output_size(self, height: int, width: int) -> tuple[int, int]:
        """(out_height, out_width) for images of this size, or a ValueError (completing
        "inputs ...") when a window does not fit in the padded image."""
        (top, bottom), (left, right) = self.pads(height, width)
        return self.positions(height + top + bottom, width + left + right)

    def positions(self, padded_height: int, padded_width: int) -> tuple[int, int]:
        """How many window positions fit down and across padded images of this size."""
        for axis, size in enumerate((padded_height, padded_width)):
            if size < self.span(axis):
                raise ValueError(
                    f"are too small: a {self.kernel[0]}x{self.kernel[1]} window spans {self.span(0)}x{self.span(1)} "
                    "pixels of the padded image"
                )
        down, across = (
            (size - self.span(axis)) // self.stride[axis] + 1 for axis, size in enumerate((padded_height, padded_width))
        )
        return down, across

    def pad(self, images: np.ndarray, fill: float = 0.0) -> np.ndarray:
        """The images with their padding (the images themselves when there is none)."""
        (top, bottom), (left, right) = self.pads(*images.shape[1:3])
        if not (top or bottom or left or right):
            return images
        return np.pad(images, ((0, 0), (top, bottom), (left, right), (0, 0)), constant_values=fill)

    def padded_shape(self, input_shape: tuple[int, ...]) -> tuple[int, int, int, int]:
        """The shape `pad` gives images of `input_shape` (n, height, width, channels)."""
        n, height, width, channels = input_shape
        (top, bottom), (left, right) = self.pads(height, width)
        return n, height + top + bottom, width + left + right, channels

    def interior(self, padded: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
        """The images inside `padded` (a view): where `pad` put them."""
        height, width = input_shape[1:3]
        (top, _), (left, _) = self.pads(height, width)
        return padded[:, top : top + height, left : left + width, :]

    def im2col(self, padded: np.ndarray, out: np.ndarray | None = None) -> np.ndarray:
        """Every window of the padded images as one row, `(n * out_h * out_w, kernel_h * kernel_w *
        channels)`: the one copy a convolution makes, into `out` if given (laid out as
        `columns_layout` says). The matrix is the same in either layout; only the copy's speed
        differs."""
        windows = self.view(padded)
        if out is None:
            shape, order = columns_layout(windows.shape)
            out = array_module(padded).empty(shape, padded.dtype, order=order)
        np.copyto(window_axes(out, windows.shape), windows)
        return out

    def pad_into(self, images: np.ndarray, buffers: StepBuffers, fill: float = 0.0) -> np.ndarray:
        """`pad`, into the step's array "padded" (its padding filled once), or the images themselves
        when there is no padding."""
        shape = self.padded_shape(images.shape)
        if shape == images.shape:
            return images
        padded = buffers.scratch("padded", shape, fill=fill)
        np.copyto(self.interior(padded, images.shape), images)
        return padded

    def view(self, padded: np.ndarray) -> np.ndarray:
        """Every window of the padded images, (n, out_h, out_w, kernel_h, kernel_w, channels), as
        a read-only strided view: a step of one output position moves `stride` pixels, a step
        of one kernel tap moves `dilation` pixels."""
        n, height, width, channels = padded.shape
        out_height, out_width = self.positions(height, width)
        sample, row, column, channel = padded.strides
        return strided_view(
            padded,
            (n, out_height, out_width, *self.kernel, channels),
            (
                sample,
                row * self.stride[0],
                column * self.stride[1],
                row * self.dilation[0],
                column * self.dilation[1],
                channel,
            ),
        )

    def taps(self, padded: np.ndarray) -> list[np.ndarray]:
        """Tap (i, j) of every window, `kernel_w * i + j` in the list: each a strided view of the
        padded images, `(n, out_h, out_w, channels)`."""
        out_height, out_width = self.positions(*padded.shape[1:3])
        return [
            padded[:, self.tap(i, out_height, 0), self.tap(j, out_width, 1), :]
            for i in range(self.kernel[0])
            for j in range(self.kernel[1])
        ]

    def scatter(self, dtaps: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
        """The backward pass of `taps` then `pad`: each tap's gradient, `dtaps[t]`
        `(n, out_h, out_w, channels)` for tap t as `taps` orders them, added to the pixels it
        read (overlapping windows add up), the padding's share dropped. Shape `input_shape`."""
        dpadded = array_module(dtaps).zeros(self.padded_shape(input_shape), dtaps.dtype)
        self.scatter_into(dtaps, dpadded)
        return self.interior(dpadded, input_shape)

    def scatter_into(self, dtaps: np.ndarray, dpadded: np.ndarray) -> None:
        """`scatter`, added into `dpadded` (padded images' gradients, zeros before)."""
        for dpixels, dtap in zip(self.taps(dpadded), dtaps, strict=True):
            dpixels += dtap

    def scatter_to_dinputs(self, dtaps: np.ndarray, buffers: StepBuffers) -> None:
        """`scatter` into the step's `dinputs` (through its array "dpadded" when there is padding)."""
        dinputs = buffers.dinputs
        shape = self.padded_shape(dinputs.shape)
        dpadded = dinputs if shape == dinputs.shape else buffers.scratch("dpadded", shape)
        dpadded.fill(0)
        self.scatter_into(dtaps, dpadded)
        if dpadded is not dinputs:
            np.copyto(dinputs, self.interior(dpadded, dinputs.shape))

    def window(self, position: int, axis: int) -> slice:
        """The padded pixels along `axis` that the window at output `position` reads."""
        first = position * self.stride[axis]
        return slice(first, first + self.span(axis), self.dilation[axis])

    def tap(self, offset: int, count: int, axis: int) -> slice:
        """The padded pixels along `axis` that kernel tap `offset` reads at the `count` positions."""
        first = offset * self.dilation[axis]
        return slice(first, first + self.stride[axis] * (count - 1) + 1, self.stride[axis])

    def output_shape(self, input_shape: tuple[int, ...], channels: int | None) -> tuple[int, int, int]:
        """One sample's output shape (out_h, out_w, channels) for one of `input_shape` (height,
        width, channels), `channels` required (None: any)."""
        height, width, found = image_shape(input_shape)
        if channels is not None and found != channels:
            raise ValueError(f"must have {channels} channels (the last axis)")
        return (*self.output_size(height, width), found)

    def get_config(self) -> dict[str, Any]:
        """The settings as constructor arguments."""
        return {
            "stride": list(self.stride),
            "padding": self.padding,
            "dilation": list(self.dilation),
        }


def columns_layout(windows_shape: tuple[int, ...]) -> tuple[tuple[int, int], str]:
    """The im2col matrix's shape for windows of `windows_shape` (n, out_h, out_w, kernel_h,
    kernel_w, channels), and its order: C (each window's values together), or with fewer than
    FEW_CHANNELS channels, F (each tap's values together)."""
    n, out_height, out_width, height, width, channels = windows_shape
    shape = (n * out_height * out_width, height * width * channels)
    return shape, "F" if channels < FEW_CHANNELS else "C"


def window_axes(columns: np.ndarray, windows_shape: tuple[int, ...]) -> np.ndarray:
    """An im2col matrix (C or F order) seen as `(n, out_h, out_w, kernel_h, kernel_w, channels)`:
    a view, so copying the windows into it fills the matrix."""
    if columns.flags.c_contiguous:
        return columns.reshape(windows_shape)
    return columns.T.reshape(*windows_shape[3:], *windows_shape[:3]).transpose(3, 4, 5, 0, 1, 2)
