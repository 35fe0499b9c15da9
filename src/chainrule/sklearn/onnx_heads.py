"""The outputs of an estimator's ONNX graph, as scikit-learn's converter (skl2onnx) names them.

A classifier gives `label` (the predicted class, in the dtype of `classes_`) and `probabilities`
(one column per class: two for a binary problem, whose network has one logistic output); a
multilabel classifier gives a 0/1 `label` per label and their probabilities. A regressor gives
`variable`, one column per output. `estimator.to_onnx()` builds the graph and
`chainrule.onnx.export(estimator, path)` writes it.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.files.onnx import GraphBuilder, Head

LABEL_TYPES = {"i": np.int64, "u": np.int64, "f": np.float64, "U": np.str_, "O": np.str_}


def classifier_head(classes: np.ndarray, multilabel: bool) -> Head:
    """`label` and `probabilities` from the network's Softmax (or logistic) outputs."""
    if classes.dtype.kind not in LABEL_TYPES:
        raise ValueError(f"onnx.export: classes of dtype {classes.dtype} have no ONNX tensor type")

    def head(graph: GraphBuilder, current: str, shape: tuple[int, ...]) -> list[Any]:
        width = shape[-1]
        if multilabel:
            graph.node("Identity", [current], "probabilities")
            graph.node("Greater", [current, graph.constant("half", 0.5)], "above")
            graph.node("Cast", ["above"], "label", to=_onnx_type(graph, np.int64))
            return [_value(graph, "label", np.int64, width), _value(graph, "probabilities", np.float32, width)]
        if width == 1:  # one logistic output: P(classes_[1]) = s, P(classes_[0]) = 1 - s
            graph.node("Sub", [graph.constant("one", np.ones((1, 1))), current], "complement")
            graph.node("Concat", ["complement", current], "probabilities", axis=1)
        else:
            graph.node("Identity", [current], "probabilities")
        graph.node("ArgMax", ["probabilities"], "index", axis=1, keepdims=0)  # the first on ties, as NumPy
        label_dtype = LABEL_TYPES[classes.dtype.kind]
        graph.constant("classes", classes.astype(label_dtype), dtype=object if label_dtype is np.str_ else label_dtype)
        graph.node("Gather", ["classes", "index"], "label", axis=0)
        return [_value(graph, "label", label_dtype), _value(graph, "probabilities", np.float32, len(classes))]

    return head


def regressor_head(graph: GraphBuilder, current: str, shape: tuple[int, ...]) -> list[Any]:
    """`variable`: the network's outputs, one column per target."""
    graph.node("Identity", [current], "variable")
    return [_value(graph, "variable", np.float32, shape[-1])]


def _onnx_type(graph: GraphBuilder, dtype: Any) -> int:
    return int(graph.helper.np_dtype_to_tensor_dtype(np.dtype(object if dtype is np.str_ else dtype)))


def _value(graph: GraphBuilder, name: str, dtype: Any, width: int | None = None) -> Any:
    """The description of output `name`: a batch of values, or of rows of `width`."""
    shape = ["batch"] if width is None else ["batch", width]
    return graph.helper.make_tensor_value_info(name, _onnx_type(graph, dtype), shape)
