"""The estimators' parameters are declared once: every constructor argument has its check, and
the checks accept scikit-learn's defaults and name what they refuse."""

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimators are the optional extra 'sklearn'")
from chainrule.sklearn import MLPClassifier, MLPRegressor
from chainrule.sklearn.parameters import PARAMETERS, check_parameters


def test_every_constructor_parameter_is_declared_and_nothing_else():
    names = set(MLPClassifier().get_params()) | set(MLPRegressor().get_params())
    assert names == set(PARAMETERS)


@pytest.mark.parametrize(
    "settings",
    [
        {"hidden_layer_sizes": 5},
        {"hidden_layer_sizes": [3, 4]},
        {"n_iter_no_change": np.inf},
        {"batch_size": 32},
        {"random_state": np.random.RandomState(0)},
        {"verbose": 2},
        {"class_weight": {0: 2.0}},
        {"dtype": "float32"},
        {"device": "cuda"},
    ],
)
def test_accepted_values(settings):
    check_parameters(MLPClassifier(**settings))


@pytest.mark.parametrize(
    "name, value, message",
    [
        ("momentum", 1.5, r"momentum must be a number in \[0, 1\], got 1.5"),
        ("shuffle", "yes", "shuffle must be True or False"),
        ("tol", float("nan"), "tol must be a number"),
        ("validation_fraction", 1, "validation_fraction must be a number in"),
        ("class_weight", "auto", "class_weight must be None, 'balanced' or a dict"),
        ("callbacks", [print], "callbacks must be a list of chainrule callbacks"),
        ("dtype", "float16", "dtype must be None, 'float32' or 'float64'"),
        ("device", "gpu", "device must be 'cpu', 'cuda' or a Device, got 'gpu'"),
    ],
)
def test_refused_values_name_the_parameter(name, value, message):
    with pytest.raises(ValueError, match=message):
        check_parameters(MLPClassifier(**{name: value}))
