"""ParameterStore: a model's parameters laid out for an optimizer to update in as few passes as it can.

Layers that can keep their parameters in storage they are given (`Layer.bindable`, as Dense
does) get one segment of a flat buffer of values and one of a flat buffer of gradients, so an
optimizer updates all of them in a single pass per step. Every other layer's arrays stay where
the layer keeps them and are updated in place, array by array. Either way the layer's own
arrays change, so it sees every update, and nothing is copied behind its back.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from chainrule.backend.arrays import array_module
from chainrule.engine.layers import Layer


@dataclass(frozen=True)
class Segment:
    """Where one parameter of a bound layer lies in the flat buffers."""

    layer: Layer
    name: str
    rows: slice
    shape: tuple[int, ...]


class ParameterStore:
    """The trainable layers of a model: bound ones in flat buffers (`values`, `gradients`), the
    rest (`loose_layers`) in their own arrays."""

    def __init__(self, layers: Sequence[Layer]) -> None:
        self.layers = list(layers)
        bound = [layer for layer in self.layers if layer.bindable]
        self.loose_layers = [layer for layer in self.layers if not layer.bindable]
        dtypes = {array.dtype for layer in bound for array in layer.parameters().values()}
        if len(dtypes) > 1:
            raise TypeError(f"ParameterStore: the layers' parameters mix dtypes {sorted(d.name for d in dtypes)}")
        dtype = dtypes.pop() if dtypes else np.dtype(np.float32)
        total = sum(array.size for layer in bound for array in layer.parameters().values())
        modules = {array_module(array) for layer in bound for array in layer.parameters().values()}
        if len(modules) > 1:
            raise TypeError("ParameterStore: the layers' parameters lie on different devices")
        module = modules.pop() if modules else np
        self.values = module.empty(total, dtype=dtype)
        self.gradients = module.zeros(total, dtype=dtype)
        self.segments: list[Segment] = []
        offset = 0
        for layer in bound:  # a layer's parameters lie side by side: it gets one segment
            start = offset
            for name, array in layer.parameters().items():
                rows = slice(offset, offset + array.size)
                self.values[rows] = array.reshape(-1)
                self.segments.append(Segment(layer, name, rows, array.shape))
                offset += array.size
            layer.bind(self.values[start:offset], self.gradients[start:offset])

    def arrays(self) -> list[np.ndarray]:
        """Every parameter: the flat buffer, then the loose layers' arrays."""
        return [self.values, *(array for layer in self.loose_layers for array in layer.parameters().values())]

    def snapshot(self) -> list[np.ndarray]:
        """Copies of `arrays()`."""
        return [array.copy() for array in self.arrays()]

    def copy_into(self, snapshot: list[np.ndarray]) -> None:
        """Refresh an earlier `snapshot()` with the current values, without allocating."""
        for array, saved in zip(self.arrays(), snapshot, strict=True):
            np.copyto(saved, array)

    def restore(self, snapshot: list[np.ndarray]) -> None:
        """Put back what `snapshot` copied, in place."""
        for array, saved in zip(self.arrays(), snapshot, strict=True):
            np.copyto(array, saved)

    def holds(self, layers: Sequence[Layer]) -> bool:
        """Whether this store was built for exactly these layers (and they still use its buffers)."""
        if len(layers) != len(self.layers) or any(a is not b for a, b in zip(layers, self.layers, strict=True)):
            return False
        return all(
            np.may_share_memory(segment.layer.parameters()[segment.name], self.values) for segment in self.segments
        )
