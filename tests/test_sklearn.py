"""scikit-learn estimators: the official estimator checks, Pipeline and GridSearchCV on digits."""

import numpy as np
import pytest

sklearn = pytest.importorskip("sklearn", reason="the estimators are the optional extra 'sklearn'")
from sklearn.datasets import load_digits  # noqa: E402
from sklearn.model_selection import GridSearchCV, train_test_split  # noqa: E402
from sklearn.pipeline import make_pipeline  # noqa: E402
from sklearn.preprocessing import StandardScaler  # noqa: E402
from sklearn.utils.estimator_checks import parametrize_with_checks  # noqa: E402

from chainrule.sklearn import MLPClassifier, MLPRegressor  # noqa: E402

EXPECTED_FAILED_CHECKS: dict[str, str] = {}


@parametrize_with_checks(
    [
        MLPClassifier(hidden_layer_sizes=(32,), learning_rate_init=0.01, random_state=0),
        MLPRegressor(hidden_layer_sizes=(32,), learning_rate_init=0.01, random_state=0),
    ],
    expected_failed_checks=lambda estimator: EXPECTED_FAILED_CHECKS,
)
def test_scikit_learn_estimator_checks(estimator, check):
    check(estimator)


def test_grid_search_on_digits_reaches_95_percent():
    X, y = load_digits(return_X_y=True)
    X_train, X_test, y_train, y_test = train_test_split(X, y, test_size=0.25, random_state=0, stratify=y)
    pipeline = make_pipeline(
        StandardScaler(), MLPClassifier(max_iter=30, learning_rate_init=0.005, batch_size=32, random_state=0)
    )
    search = GridSearchCV(pipeline, {"mlpclassifier__hidden_layer_sizes": [(32,), (64,)]}, cv=3)
    search.fit(X_train, y_train)
    assert search.score(X_test, y_test) >= 0.95


def test_fitted_attributes_and_class_labels():
    rng = np.random.default_rng(0)
    X = rng.standard_normal((60, 3))
    y = np.where(X[:, 0] > 0, "yes", "no")
    classifier = MLPClassifier(hidden_layer_sizes=(8,), max_iter=50, learning_rate_init=0.05, random_state=1).fit(X, y)
    assert list(classifier.classes_) == ["no", "yes"] and classifier.n_features_in_ == 3
    assert len(classifier.loss_curve_) == classifier.n_iter_ == 50
    assert set(classifier.predict(X)) <= {"no", "yes"} and classifier.score(X, y) > 0.9
    np.testing.assert_allclose(classifier.predict_proba(X).sum(axis=1), 1, rtol=1e-6)


def test_same_random_state_same_model():
    X, y = load_digits(return_X_y=True)
    a, b = (MLPClassifier(hidden_layer_sizes=(16,), max_iter=3, random_state=5).fit(X, y) for _ in range(2))
    assert a.loss_curve_ == b.loss_curve_


def test_bad_settings_are_reported():
    X, y = np.ones((4, 2)), np.array([0, 1, 0, 1])
    with pytest.raises(ValueError, match="solver must be one of"):
        MLPClassifier(solver="lbfgs").fit(X, y)
    with pytest.raises(ValueError, match="activation must be one of"):
        MLPRegressor(activation="swish").fit(X, y)
