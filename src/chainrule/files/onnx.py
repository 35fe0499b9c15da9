"""ONNX export (extra `onnx`): a trained Model as a float32 graph any ONNX runtime can run.

Dense becomes Gemm, each activation its ONNX operator, and Dropout is left out (it is the
identity at inference). The batch dimension is symbolic, so any batch size runs. The opset and
the IR version are written explicitly, because recent `onnx` releases default to versions that
deployed runtimes refuse.
"""

from __future__ import annotations

import os
from typing import Any, BinaryIO, Protocol

import numpy as np

from chainrule.engine.activations import Exponential, LeakyReLU, Linear, ReLU, Sigmoid, Softmax, Tanh
from chainrule.engine.layers import Dense, Dropout, Layer
from chainrule.engine.normalization import BatchNormalization, LayerNormalization
from chainrule.files.atomic import atomic_write

# The oldest IR version that carries each opset (onnx's own table), so older runtimes load the file.
IR_VERSION_FOR_OPSET = {13: 7, 14: 7, 15: 8, 16: 8, 17: 8, 18: 8, 19: 9, 20: 9, 21: 10}
SIMPLE_OPERATORS: dict[type[Layer], str] = {ReLU: "Relu", Sigmoid: "Sigmoid", Tanh: "Tanh", Exponential: "Exp"}


class ExportedNetwork(Protocol):
    """What export reads of a model: its layers and the widths of its input and output."""

    layers: list[Layer]

    @property
    def input_width(self) -> int: ...

    @property
    def output_width(self) -> int: ...


def _onnx() -> Any:
    try:
        import onnx
    except ImportError as error:
        raise ImportError("ONNX export needs the onnx package: pip install 'chainrule[onnx]'") from error
    return onnx


def to_onnx(model: ExportedNetwork, *, opset: int = 17) -> Any:
    """Build the `onnx.ModelProto` for `model` (input 'input', output 'output', float32)."""
    onnx = _onnx()
    helper, numpy_helper = onnx.helper, onnx.numpy_helper
    if opset not in IR_VERSION_FOR_OPSET:
        raise ValueError(f"onnx.export: opset must be one of {sorted(IR_VERSION_FOR_OPSET)}, got {opset}")
    if not model.layers:
        raise ValueError("onnx.export: the model has no layers")
    input_width, output_width = model.input_width, model.output_width

    nodes, initializers = [], []
    current = "input"
    for index, layer in enumerate(model.layers):
        name = f"layer{index}"
        if isinstance(layer, (Dropout, Linear)):
            continue
        if isinstance(layer, Dense):
            initializers += [
                numpy_helper.from_array(layer.weights.astype(np.float32), f"{name}.weights"),
                numpy_helper.from_array(layer.biases.reshape(-1).astype(np.float32), f"{name}.biases"),
            ]
            node = helper.make_node("Gemm", [current, f"{name}.weights", f"{name}.biases"], [name], name=name)
        elif isinstance(layer, (BatchNormalization, LayerNormalization)):
            arrays = {**layer.parameters(), **layer.non_trainable()}
            initializers += [
                numpy_helper.from_array(array.reshape(-1).astype(np.float32), f"{name}.{key}")
                for key, array in arrays.items()
            ]
            inputs = [current, *(f"{name}.{key}" for key in arrays)]
            if isinstance(layer, BatchNormalization):  # inference: the running statistics
                node = helper.make_node("BatchNormalization", inputs, [name], name=name, epsilon=layer.epsilon)
            elif opset >= 17:
                node = helper.make_node("LayerNormalization", inputs, [name], name=name, axis=-1, epsilon=layer.epsilon)
            else:
                raise ValueError(
                    f"onnx.export: layer {index} (LayerNormalization) needs opset 17 or later, got {opset}"
                )
        elif isinstance(layer, LeakyReLU):
            node = helper.make_node("LeakyRelu", [current], [name], name=name, alpha=layer.alpha)
        elif isinstance(layer, Softmax):
            node = helper.make_node("Softmax", [current], [name], name=name, axis=1)
        elif type(layer) in SIMPLE_OPERATORS:
            node = helper.make_node(SIMPLE_OPERATORS[type(layer)], [current], [name], name=name)
        else:
            raise ValueError(f"onnx.export: layer {index} ({type(layer).__name__}) has no ONNX equivalent")
        nodes.append(node)
        current = name
    nodes.append(helper.make_node("Identity", [current], ["output"], name="output"))

    graph = helper.make_graph(
        nodes,
        "chainrule",
        [helper.make_tensor_value_info("input", onnx.TensorProto.FLOAT, ["batch", input_width])],
        [helper.make_tensor_value_info("output", onnx.TensorProto.FLOAT, ["batch", output_width])],
        initializers,
    )
    proto = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="chainrule")
    proto.ir_version = IR_VERSION_FOR_OPSET[opset]
    onnx.checker.check_model(proto, full_check=True)
    return proto


def export(model: ExportedNetwork, path: str | os.PathLike, *, opset: int = 17) -> None:
    """Write `model` as an ONNX file (atomically: a temporary file renamed into place)."""
    proto = to_onnx(model, opset=opset)

    def write(stream: BinaryIO) -> None:
        stream.write(proto.SerializeToString())

    atomic_write(path, write)
