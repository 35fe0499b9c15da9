"""`device=` on the estimators: a network trained on a GPU is the same network as on the CPU.

No GPU is needed: the stand-in device (`tests/strict_device.py`) refuses every NumPy array that
meets its arrays, as CuPy does, and computes with NumPy, so a fit on it must equal the CPU's
fit bit for bit when both take NumPy's paths (the compiled kernels round differently).
"""

import importlib.util

import numpy as np
import pytest

pytest.importorskip("sklearn", reason="the estimators are the optional extra 'sklearn'")
from sklearn.datasets import load_diabetes, load_digits
from sklearn.exceptions import ConvergenceWarning
from strict_device import STRICT, DeviceArray

from chainrule.backend import arrays
from chainrule.backend import kernels as compiled_kernels
from chainrule.sklearn import MLPClassifier, MLPRegressor

pytestmark = pytest.mark.filterwarnings("ignore", category=ConvergenceWarning)


@pytest.fixture(autouse=True)
def numpy_paths(monkeypatch):
    monkeypatch.setattr(compiled_kernels, "ENABLED", False)  # the CPU run takes NumPy's paths, as the device does


@pytest.fixture(scope="module")
def digits():
    X, y = load_digits(return_X_y=True)
    return X[:400] / 16, y[:400]


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"solver": "sgd", "learning_rate": "invscaling"},
        {"early_stopping": True},
        {"dropout": 0.2},
        {"class_weight": "balanced", "dtype": "float32"},
    ],
    ids=["adam", "sgd", "early stopping", "dropout", "balanced float32"],
)
def test_a_classifier_trained_on_the_device_equals_the_cpus(digits, settings):
    X, y = digits
    weights = np.where(np.arange(len(y)) % 3 == 0, 2.0, 1.0)
    estimators = [
        MLPClassifier(hidden_layer_sizes=(16,), max_iter=4, random_state=0, device=device, **settings)
        for device in ("cpu", STRICT)
    ]
    on_cpu, on_device = (estimator.fit(X, y, sample_weight=weights) for estimator in estimators)
    assert isinstance(on_device.model_.layers[0].weights, DeviceArray)
    assert on_device.loss_curve_ == on_cpu.loss_curve_
    assert on_device.validation_scores_ == on_cpu.validation_scores_
    np.testing.assert_array_equal(on_device.predict_proba(X), on_cpu.predict_proba(X))
    for fitted in (on_device.coefs_, on_device.intercepts_):
        assert all(type(array) is np.ndarray for array in fitted)  # what scikit-learn's users read
    for device_array, cpu_array in zip(on_device.coefs_, on_cpu.coefs_, strict=True):
        np.testing.assert_array_equal(device_array, cpu_array)


def test_a_regressor_goes_on_with_partial_fit_on_the_device_as_on_the_cpu():
    X, y = load_diabetes(return_X_y=True)
    X, y = X[:200] * 10, y[:200] / 100
    on_cpu, on_device = (
        MLPRegressor(hidden_layer_sizes=(8,), random_state=0, device=device) for device in ("cpu", STRICT)
    )
    for estimator in (on_cpu, on_device):
        for start in range(0, 200, 40):
            estimator.partial_fit(X[start : start + 40], y[start : start + 40])
    assert on_device.loss_curve_ == on_cpu.loss_curve_
    np.testing.assert_array_equal(on_device.predict(X), on_cpu.predict(X))


def test_a_new_device_between_calls_moves_the_network(digits):
    X, y = digits
    estimator = MLPClassifier(hidden_layer_sizes=(8,), max_iter=2, random_state=0, device=STRICT).fit(X, y)
    estimator.set_params(warm_start=True, device="cpu").fit(X, y)
    assert estimator.model_.device == arrays.CPU and type(estimator.model_.layers[0].weights) is np.ndarray


def test_lbfgs_on_a_device_is_refused_before_anything_is_fitted(digits):
    X, y = digits
    estimator = MLPClassifier(solver="lbfgs", device=STRICT)
    with pytest.raises(ValueError, match=r"solver='lbfgs' runs on the CPU \(SciPy's L-BFGS-B\)"):
        estimator.fit(X, y)
    assert not hasattr(estimator, "model_")


def test_cuda_without_a_gpu_is_one_clear_error(digits):
    if importlib.util.find_spec("cupy") is not None:
        pytest.skip("CuPy is installed here")
    X, y = digits
    with pytest.raises(RuntimeError, match="device='cuda' needs CuPy, which is not installed"):
        MLPClassifier(device="cuda").fit(X, y)
