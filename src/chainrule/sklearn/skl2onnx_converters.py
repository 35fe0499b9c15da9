"""The estimators registered with skl2onnx (extra `sklearn-onnx`), so that `skl2onnx.to_onnx`
converts them, and the Pipelines around them, as it converts scikit-learn's own MLPs.

Each estimator's converter builds the graph `estimator.to_onnx()` gives (scikit-learn's outputs:
`label` and `probabilities`, or `variable`) and inlines it into skl2onnx's: every tensor renamed
into the converter's scope, the graph's input and outputs mapped onto the operator's. skl2onnx
then adds what it adds to any classifier (its ZipMap of probabilities, unless
`options={'zipmap': False}`).

`chainrule.sklearn` registers them as soon as skl2onnx is imported (a post-import hook), so
importing chainrule costs nothing while skl2onnx is not used.
"""

from __future__ import annotations

from typing import Any

from chainrule.sklearn.estimators import MLPClassifier, MLPRegressor

CLASSIFIER_OPTIONS = {"zipmap": [True, False, "columns"], "nocl": [True, False]}


def register() -> None:
    """Register both estimators' converters with skl2onnx."""
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (
        calculate_linear_classifier_output_shapes,
        calculate_linear_regressor_output_shapes,
    )

    update_registered_converter(
        MLPClassifier,
        "ChainruleMLPClassifier",
        calculate_linear_classifier_output_shapes,
        convert,
        options=CLASSIFIER_OPTIONS,
    )
    update_registered_converter(
        MLPRegressor, "ChainruleMLPRegressor", calculate_linear_regressor_output_shapes, convert
    )


def convert(scope: Any, operator: Any, container: Any) -> None:
    """Inline the estimator's own graph into skl2onnx's (its float32 input cast from the
    operator's input, whatever its float type)."""
    from onnx import TensorProto, helper

    estimator = operator.raw_operator
    if isinstance(estimator, MLPClassifier) and estimator.out_activation_ == "logistic" and estimator.n_outputs_ > 1:
        raise NotImplementedError(
            "skl2onnx: a multilabel MLPClassifier has no skl2onnx output shapes; use chainrule.onnx.export(estimator)"
        )
    graph = estimator.to_onnx(opset=min(container.target_opset, 17)).graph
    cast_input = scope.get_unique_variable_name("chainrule_input")
    names = {graph.input[0].name: cast_input}
    for output, variable in zip(graph.output, operator.outputs, strict=False):
        names[output.name] = variable.full_name
    cast = scope.get_unique_operator_name("Cast")
    container.add_node("Cast", [operator.inputs[0].full_name], [cast_input], to=TensorProto.FLOAT, name=cast)

    def renamed(name: str) -> str:
        if name not in names:
            names[name] = scope.get_unique_variable_name(f"chainrule_{name}")
        return names[name]

    for initializer in graph.initializer:
        tensor = TensorProto()
        tensor.CopyFrom(initializer)
        tensor.name = renamed(initializer.name)
        container.add_node("Constant", [], [tensor.name], value=tensor, name=scope.get_unique_operator_name("Constant"))
    for node in graph.node:
        attributes = {attribute.name: helper.get_attribute_value(attribute) for attribute in node.attribute}
        container.add_node(
            node.op_type,
            [renamed(name) for name in node.input],
            [renamed(name) for name in node.output],
            name=scope.get_unique_operator_name(node.op_type),
            **attributes,
        )
