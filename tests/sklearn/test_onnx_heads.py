"""An estimator's ONNX graph gives what its predict and predict_proba give, under scikit-learn's output names."""

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimators are the optional extra 'sklearn'")
ort = pytest.importorskip("onnxruntime", reason="ONNX export is the optional extra 'onnx'")

import chainrule as cr  # noqa: E402
from chainrule.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

RNG = np.random.default_rng(0)
X = RNG.standard_normal((80, 4)).astype(np.float32)
TARGETS = {
    "binary": (X[:, 0] > 0).astype(int) * 5,  # classes 0 and 5: one logistic output, two probability columns
    "multiclass": np.array(["cat", "dog", "eel"])[RNG.integers(0, 3, 80)],
    "multilabel": (X[:, :2] > 0).astype(int),
}


def run(estimator, path):
    cr.onnx.export(estimator, path)
    session = ort.InferenceSession(str(path))
    return dict(zip([output.name for output in session.get_outputs()], session.run(None, {"input": X}), strict=True))


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("kind", list(TARGETS))
def test_a_classifiers_graph_gives_its_labels_and_probabilities(tmp_path, kind):
    classifier = MLPClassifier(max_iter=50, random_state=0).fit(X, TARGETS[kind])
    outputs = run(classifier, tmp_path / "classifier.onnx")
    assert list(outputs) == ["label", "probabilities"]
    np.testing.assert_array_equal(outputs["label"], classifier.predict(X))
    np.testing.assert_allclose(outputs["probabilities"], classifier.predict_proba(X), atol=1e-5)


@pytest.mark.filterwarnings("ignore::sklearn.exceptions.ConvergenceWarning")
@pytest.mark.parametrize("targets", [X[:, 0] * 2, X[:, :2] - X[:, 2:]])
def test_a_regressors_graph_gives_its_predictions_as_variable(tmp_path, targets):
    regressor = MLPRegressor(max_iter=50, random_state=0).fit(X, targets)
    (variable,) = run(regressor, tmp_path / "regressor.onnx").values()
    np.testing.assert_allclose(variable, regressor.predict(X).reshape(len(X), -1), atol=1e-5)


def test_an_unfitted_estimator_is_not_exported(tmp_path):
    from sklearn.exceptions import NotFittedError

    with pytest.raises(NotFittedError):
        cr.onnx.export(MLPClassifier(), tmp_path / "never.onnx")
    assert not (tmp_path / "never.onnx").exists()
