"""scikit-learn estimators (extra `sklearn`): `MLPClassifier` and `MLPRegressor`, drop-in
replacements for scikit-learn's, trained by chainrule. The fitted network is `model_`."""

from chainrule.sklearn.estimators import MLPClassifier, MLPRegressor

__all__ = ["MLPClassifier", "MLPRegressor"]
