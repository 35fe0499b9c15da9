"""skl2onnx converts the estimators, and Pipelines around them, as it converts scikit-learn's
MLPs: onnxruntime then gives what `predict` and `predict_proba` give."""

import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimators are the optional extra 'sklearn'")
skl2onnx = pytest.importorskip("skl2onnx", reason="skl2onnx is the optional extra 'sklearn-onnx'")
ort = pytest.importorskip("onnxruntime", reason="ONNX export is the optional extra 'onnx'")

from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402

from chainrule.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

RNG = np.random.default_rng(0)
X = (RNG.standard_normal((120, 5)) * [1, 10, 100, 0.1, 1]).astype(np.float32)
TARGETS = {
    "binary": (X[:, 0] > 0).astype(np.int64) * 5,  # one logistic output, two probability columns
    "multiclass": np.array(["cat", "dog", "eel"])[RNG.integers(0, 3, 120)],
}


def run(onnx_model):
    session = ort.InferenceSession(onnx_model.SerializeToString())
    return session.run(None, {session.get_inputs()[0].name: X})


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", list(TARGETS))
def test_a_pipeline_with_a_classifier_converts_to_its_labels_and_probabilities(kind):
    pipeline = make_pipeline(StandardScaler(), MLPClassifier(max_iter=50, random_state=0)).fit(X, TARGETS[kind])
    onnx_model = skl2onnx.to_onnx(pipeline, X[:1], options={MLPClassifier: {"zipmap": False}})
    labels, probabilities = run(onnx_model)
    np.testing.assert_array_equal(labels, pipeline.predict(X))
    np.testing.assert_allclose(probabilities, pipeline.predict_proba(X), atol=1e-5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_pipeline_with_a_regressor_converts_to_its_predictions():
    pipeline = make_pipeline(StandardScaler(), MLPRegressor(max_iter=50, random_state=0)).fit(X, X[:, 0] * 2)
    (predictions,) = run(skl2onnx.to_onnx(pipeline, X[:1]))
    np.testing.assert_allclose(predictions.ravel(), pipeline.predict(X), rtol=1e-4, atol=1e-4)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_the_default_zipmap_gives_a_dictionary_of_probabilities_per_row():
    classifier = MLPClassifier(max_iter=50, random_state=0).fit(X, TARGETS["multiclass"])
    labels, probabilities = run(skl2onnx.to_onnx(classifier, X[:1]))
    assert list(labels) == list(classifier.predict(X))
    assert probabilities[0].keys() == {"cat", "dog", "eel"}
    np.testing.assert_allclose(
        [[row[name] for name in ("cat", "dog", "eel")] for row in probabilities], classifier.predict_proba(X), atol=1e-5
    )


def test_importing_chainrule_does_not_import_skl2onnx_and_importing_skl2onnx_registers_the_estimators():
    script = (
        "import sys, numpy as np\n"
        "import chainrule.sklearn as cs\n"
        "assert 'skl2onnx' not in sys.modules\n"
        "import skl2onnx\n"
        "X = np.random.default_rng(0).standard_normal((20, 3)).astype(np.float32)\n"
        "model = cs.MLPRegressor(hidden_layer_sizes=(4,), max_iter=5, random_state=0).fit(X, X[:, 0])\n"
        "print(skl2onnx.to_onnx(model, X[:1]).graph.output[0].name)\n"
    )
    completed = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", script], capture_output=True, text=True, check=True, timeout=300
    )
    assert completed.stdout.strip() == "variable"


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
def test_a_multilabel_classifier_points_to_chainrules_own_export():
    classifier = MLPClassifier(max_iter=5, random_state=0).fit(X, (X[:, :2] > 0).astype(int))
    with pytest.raises(NotImplementedError, match=r"use chainrule.onnx.export\(estimator\)"):
        skl2onnx.to_onnx(classifier, X[:1])
