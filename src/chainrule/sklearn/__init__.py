"""scikit-learn estimators (extra `sklearn`): `MLPClassifier` and `MLPRegressor`, drop-in
replacements for scikit-learn's, trained by chainrule. The fitted network is `model_`. Once
skl2onnx is imported (extra `sklearn-onnx`), `skl2onnx.to_onnx` converts them
(`chainrule.sklearn.skl2onnx_converters`)."""

import wrapt

from chainrule.sklearn.estimators import MLPClassifier, MLPRegressor


def _register_with_skl2onnx(skl2onnx: object) -> None:
    from chainrule.sklearn import skl2onnx_converters

    skl2onnx_converters.register()


wrapt.register_post_import_hook(_register_with_skl2onnx, "skl2onnx")

__all__ = ["MLPClassifier", "MLPRegressor"]
