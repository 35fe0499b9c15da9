"""Sliding windows over images: what convolution and pooling share.

Images are channels-last, `(n_samples, height, width, channels)`: each window, flattened, is
then one contiguous row of `kernel_height * kernel_width * channels` values, so a convolution is
one matrix product with no transpose, and a Dense layer after `Flatten` reads the same order
Keras and TensorFlow use. (ONNX export converts to channels-first at the edges.)

`view` gives every window at once as a strided view of the padded images, shape
`(n, out_height, out_width, kernel_height, kernel_width, channels)`, copying nothing; `scatter`
is its backward pass: each window's gradient added back where the window read, overlapping
windows summing, with a loop over the few kernel offsets and never over output positions.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.engine.validation import whole_number

IMAGE_AXES = ("n_samples", "height", "width", "channels")


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

    def view(self, padded: np.ndarray) -> np.ndarray:
        """Every window of the padded images, (n, out_h, out_w, kernel_h, kernel_w, channels), as
        a read-only strided view: a step of one output position moves `stride` pixels, a step
        of one kernel tap moves `dilation` pixels."""
        n, height, width, channels = padded.shape
        out_height, out_width = self.positions(height, width)
        sample, row, column, channel = padded.strides
        return np.lib.stride_tricks.as_strided(
            padded,
            shape=(n, out_height, out_width, *self.kernel, channels),
            strides=(
                sample,
                row * self.stride[0],
                column * self.stride[1],
                row * self.dilation[0],
                column * self.dilation[1],
                channel,
            ),
            writeable=False,
        )

    def scatter(self, dwindows: np.ndarray, input_shape: tuple[int, ...]) -> np.ndarray:
        """The backward pass of `view` then `pad`: each window's gradient added to the pixels it
        read (overlapping windows add up), the padding's share dropped. Shape `input_shape`."""
        n, height, width, channels = input_shape
        (top, bottom), (left, right) = self.pads(height, width)
        out_height, out_width = dwindows.shape[1:3]
        dpadded = np.zeros((n, height + top + bottom, width + left + right, channels), dwindows.dtype)
        for i in range(self.kernel[0]):
            rows = self.taps(i, out_height, 0)
            for j in range(self.kernel[1]):
                dpadded[:, rows, self.taps(j, out_width, 1), :] += dwindows[:, :, :, i, j, :]
        return dpadded[:, top : top + height, left : left + width, :]

    def window(self, position: int, axis: int) -> slice:
        """The padded pixels along `axis` that the window at output `position` reads."""
        first = position * self.stride[axis]
        return slice(first, first + self.span(axis), self.dilation[axis])

    def taps(self, offset: int, count: int, axis: int) -> slice:
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
