"""ONNX export (extra `onnx`): a trained Model as a float32 graph any ONNX runtime can run.

Dense becomes Gemm, each activation its ONNX operator, and Dropout is left out (it is the
identity at inference). Images stay channels-last as in chainrule; the operators ONNX defines on
channels-first images (Conv, pooling, BatchNormalization of images) are wrapped in Transposes.
The batch dimension is symbolic, so any batch size runs. The opset and
the IR version are written explicitly, because recent `onnx` releases default to versions that
deployed runtimes refuse.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, BinaryIO, Protocol

import numpy as np

from chainrule.engine.activations import Exponential, LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Tanh
from chainrule.engine.convolution import Conv2D
from chainrule.engine.embedding import Embedding
from chainrule.engine.layers import Dense, Dropout, Layer
from chainrule.engine.normalization import BatchNormalization, LayerNormalization
from chainrule.engine.pooling import AveragePool2D, GlobalAveragePool2D, MaxPool2D
from chainrule.engine.reshaping import Flatten, Reshape
from chainrule.engine.windows import SlidingWindows
from chainrule.files.atomic import atomic_write

# The oldest IR version that carries each opset (onnx's own table), so older runtimes load the file.
IR_VERSION_FOR_OPSET = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}
SIMPLE_OPERATORS: dict[type[Layer], str] = {ReLU: "Relu", Sigmoid: "Sigmoid", Tanh: "Tanh", Exponential: "Exp"}


class ExportedNetwork(Protocol):
    """What export reads of a model: its layers, and how a sample's shape changes through them."""

    layers: list[Layer]

    def sample_shapes(self, input_shape: tuple[int, ...], name: str, owner: str) -> list[tuple[int, ...]]: ...


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as error:
        raise ImportError("ONNX export needs the onnx package: pip install 'chainrule[onnx]'") from error
    return onnx


class GraphBuilder:
    """The nodes and initializers of the graph, built layer by layer."""

    def __init__(self, onnx: Any) -> None:
        self.helper, self.numpy_helper = onnx.helper, onnx.numpy_helper
        self.nodes: list[Any] = []
        self.initializers: list[Any] = []

    def constant(self, name: str, array: Any, dtype: Any = np.float32) -> str:
        self.initializers.append(self.numpy_helper.from_array(np.asarray(array).astype(dtype), name))
        return name

    def node(self, operator: str, inputs: list[str], output: str, **attributes: Any) -> str:
        self.nodes.append(self.helper.make_node(operator, inputs, [output], name=output, **attributes))
        return output

    def channels_first(self, operator: str, inputs: list[str], output: str, **attributes: Any) -> str:
        """`operator`, which ONNX defines on (n, channels, height, width), applied to chainrule's
        channels-last images: transposed in and back out (runtimes fold the pairs)."""
        inward = self.node("Transpose", inputs[:1], f"{output}.nchw", perm=[0, 3, 1, 2])
        result = self.node(operator, [inward, *inputs[1:]], f"{output}.result", **attributes)
        return self.node("Transpose", [result], output, perm=[0, 2, 3, 1])


def _window_attributes(windows: SlidingWindows, image_shape: tuple[int, ...]) -> dict[str, Any]:
    (top, bottom), (left, right) = windows.pads(*image_shape[:2])
    return {"kernel_shape": list(windows.kernel), "strides": list(windows.stride), "pads": [top, left, bottom, right]}


Head = Callable[["GraphBuilder", str, tuple[int, ...]], list[Any]]


def output_head(graph: GraphBuilder, current: str, shape: tuple[int, ...]) -> list[Any]:
    """The network's last values as the float32 output 'output'."""
    graph.node("Identity", [current], "output")
    return [graph.helper.make_tensor_value_info("output", _onnx().TensorProto.FLOAT, ["batch", *shape])]


def to_onnx(
    model: ExportedNetwork,
    *,
    opset: int = 17,
    input_shape: tuple[int, ...] | None = None,
    head: Head = output_head,
) -> Any:
    """Build the `onnx.ModelProto` for `model` (input 'input', output 'output', float32; int64
    indices into an Embedding). `input_shape` is one sample's shape, needed where the layers do
    not fix it (a network of images: `(height, width, channels)`); a network of rows reads its
    width from its first layer. `head` turns the last layer's values (their name and sample
    shape) into the graph's outputs, returning their descriptions: the scikit-learn estimators
    give labels and probabilities."""
    onnx = _onnx()
    if opset not in IR_VERSION_FOR_OPSET:
        raise ValueError(f"onnx.export: opset must be one of {sorted(IR_VERSION_FOR_OPSET)}, got {opset}")
    if not model.layers:
        raise ValueError("onnx.export: the model has no layers")
    first = model.layers[0]
    if input_shape is None:
        width = next((layer.input_width for layer in model.layers if layer.input_width is not None), None)
        if first.input_axes != Layer.input_axes or width is None:
            raise ValueError(
                "onnx.export: pass input_shape=, one sample's shape (such as (28, 28, 1) for images): "
                f"layer 0 ({type(first).__name__}) does not fix it"
            )
        input_shape = (width,)
    shapes = model.sample_shapes(tuple(input_shape), "input_shape", "onnx.export")

    graph = GraphBuilder(onnx)
    current, shape = "input", tuple(input_shape)
    for index, layer in enumerate(model.layers):
        current = _layer_nodes(graph, layer, index, current, shape, opset)
        shape = shapes[index]
    outputs = head(graph, current, shapes[-1])

    indices = isinstance(first, Embedding)
    input_type = onnx.TensorProto.INT64 if indices else onnx.TensorProto.FLOAT
    proto_graph = onnx.helper.make_graph(
        graph.nodes,
        "chainrule",
        [onnx.helper.make_tensor_value_info("input", input_type, ["batch", *input_shape])],
        outputs,
        graph.initializers,
    )
    proto = onnx.helper.make_model(
        proto_graph, opset_imports=[onnx.helper.make_opsetid("", opset)], producer_name="chainrule"
    )
    proto.ir_version = IR_VERSION_FOR_OPSET[opset]
    onnx.checker.check_model(proto, full_check=True)
    return proto


def _layer_nodes(
    graph: GraphBuilder, layer: Layer, index: int, current: str, shape: tuple[int, ...], opset: int
) -> str:
    """Add `layer`'s nodes reading `current` (samples of `shape`); return its output's name."""
    name = f"layer{index}"
    if isinstance(layer, (Dropout, Linear)):
        return current
    if isinstance(layer, Dense):
        weights = graph.constant(f"{name}.weights", layer.weights)
        biases = graph.constant(f"{name}.biases", layer.biases.reshape(-1))
        return graph.node("Gemm", [current, weights, biases], name)
    if isinstance(layer, Conv2D):
        weights = graph.constant(f"{name}.weights", layer.weights.transpose(3, 2, 0, 1))  # (filters, channels, kh, kw)
        biases = graph.constant(f"{name}.biases", layer.biases.reshape(-1))
        attributes = _window_attributes(layer.windows, shape)
        return graph.channels_first(
            "Conv", [current, weights, biases], name, dilations=list(layer.windows.dilation), **attributes
        )
    if isinstance(layer, MaxPool2D):
        return graph.channels_first("MaxPool", [current], name, **_window_attributes(layer.windows, shape))
    if isinstance(layer, AveragePool2D):
        attributes = _window_attributes(layer.windows, shape)
        return graph.channels_first("AveragePool", [current], name, count_include_pad=1, **attributes)
    if isinstance(layer, GlobalAveragePool2D):
        pooled = graph.channels_first("GlobalAveragePool", [current], f"{name}.pooled")
        return graph.node("Flatten", [pooled], name, axis=1)
    if isinstance(layer, (Flatten, Reshape)):
        target = graph.constant(f"{name}.shape", [0, *layer.output_shape(shape)], np.int64)  # 0: the batch, as it is
        return graph.node("Reshape", [current, target], name)
    if isinstance(layer, Embedding):
        weights = graph.constant(f"{name}.weights", layer.weights)
        return graph.node("Gather", [weights, current], name, axis=0)
    if isinstance(layer, (BatchNormalization, LayerNormalization)):
        arrays = {**layer.parameters(), **layer.non_trainable()}
        inputs = [current, *(graph.constant(f"{name}.{key}", array.reshape(-1)) for key, array in arrays.items())]
        if isinstance(layer, BatchNormalization):  # inference: the running statistics, over the last axis
            if len(shape) == 3:
                return graph.channels_first("BatchNormalization", inputs, name, epsilon=layer.epsilon)
            return graph.node("BatchNormalization", inputs, name, epsilon=layer.epsilon)
        if opset < 17:
            raise ValueError(f"onnx.export: layer {index} (LayerNormalization) needs opset 17 or later, got {opset}")
        return graph.node("LayerNormalization", inputs, name, axis=-1, epsilon=layer.epsilon)
    if isinstance(layer, LeakyReLU):
        return graph.node("LeakyRelu", [current], name, alpha=layer.alpha)
    if isinstance(layer, Softmax):
        return graph.node("Softmax", [current], name, axis=1)
    if type(layer) in SIMPLE_OPERATORS:
        return graph.node(SIMPLE_OPERATORS[type(layer)], [current], name)
    raise ValueError(f"onnx.export: layer {index} ({type(layer).__name__}) has no ONNX equivalent")


def export(
    model: ExportedNetwork, path: str | os.PathLike, *, opset: int = 17, input_shape: tuple[int, ...] | None = None
) -> None:
    """Write `model` as an ONNX file (atomically: a temporary file renamed into place); see
    `to_onnx`. Anything that builds its own graph with a `to_onnx(opset=)` method is written
    through it (chainrule's scikit-learn estimators: labels and probabilities)."""
    own_graph = getattr(model, "to_onnx", None)
    proto = own_graph(opset=opset) if callable(own_graph) else to_onnx(model, opset=opset, input_shape=input_shape)

    def write(stream: BinaryIO) -> None:
        stream.write(proto.SerializeToString())

    atomic_write(path, write)
