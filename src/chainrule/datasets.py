"""`chainrule.datasets`, the documented path of `chainrule.learn.datasets`."""

from chainrule.learn.datasets import (
    BookRandom,
    idx_shape,
    load_digits,
    load_mnist,
    read_idx,
    sine_data,
    spiral_data,
    vertical_data,
)

__all__ = [
    "BookRandom",
    "idx_shape",
    "load_digits",
    "load_mnist",
    "read_idx",
    "sine_data",
    "spiral_data",
    "vertical_data",
]
