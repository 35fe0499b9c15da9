"""The optional compiled kernels (extra `fast`) give the NumPy speed paths' numbers.

Each kernel is run beside the NumPy code it replaces (`kernels.ENABLED` switched off), in
float32 and float64; Adam agrees bit for bit (but that it stores subnormal moments as zero),
the rest to rounding, and a whole training run ends with the same weights.
"""

import numpy as np
import pytest
from numpy.testing import assert_allclose, assert_array_equal

import chainrule as cr
from chainrule.backend import kernels

pytestmark = pytest.mark.skipif(not kernels.ENABLED, reason="the compiled kernels need numba (extra 'fast')")
DTYPES = [np.float32, np.float64]


@pytest.fixture
def numpy_only(monkeypatch):
    """Run the block that follows on the NumPy speed paths."""

    def switch():
        monkeypatch.setattr(kernels, "ENABLED", False)

    return switch


def tolerance(dtype):
    return 2e-6 if dtype == np.float32 else 1e-14


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("size", [5, 8195], ids=["shorter-than-a-vector", "vectors-and-a-tail"])
def test_adam_stores_moments_that_decay_below_the_smallest_normal_float_as_zero(dtype, size):
    """A dead unit's moments, with a zero gradient: NumPy would keep subnormal values (slow in
    every later operation); the kernel stores zeros. The parameters get Adam's update as written."""
    tiny = np.finfo(dtype).tiny
    rng = np.random.default_rng(0)
    parameter = rng.standard_normal(size).astype(dtype)
    gradient = np.zeros(size, dtype)
    momentum, cache = np.full(size, tiny), np.full(size, tiny)  # the smallest normal float
    beta_1, beta_2, step, epsilon = dtype(0.9), dtype(0.999), dtype(0.01), dtype(1e-7)
    m, v = beta_1 * momentum + (1 - beta_1) * gradient, beta_2 * cache + (1 - beta_2) * gradient**2
    assert ((m > 0) & (m < tiny) & (v > 0) & (v < tiny)).all()  # subnormal, as NumPy stores them
    expected = parameter - step * (m / (np.sqrt(v) + epsilon))
    kernels.adam(parameter, gradient, momentum, cache, beta_1, beta_2, step, epsilon)
    assert_array_equal(momentum, 0)
    assert_array_equal(cache, 0)
    assert_array_equal(parameter, expected)


@pytest.mark.parametrize("dtype", DTYPES)
def test_adam_divides_by_zero_as_numpy_does(dtype):
    """epsilon=0 with an untouched parameter: 0 / (sqrt(0) + 0) is NaN in NumPy (IEEE), and the
    kernel gives the same NaN instead of raising ZeroDivisionError as plain Python would."""
    parameter, gradient = np.array([1.0, 2.0], dtype), np.array([0.0, 1.0], dtype)
    momentum, cache = np.zeros(2, dtype), np.zeros(2, dtype)
    m, v = dtype(1 - 0.9) * gradient, dtype(1 - 0.999) * (gradient * gradient)  # the moments start at zero
    with np.errstate(invalid="ignore"):
        expected = parameter - dtype(0.1) * (m / (np.sqrt(v) + dtype(0)))
    kernels.adam(parameter, gradient, momentum, cache, 0.9, 0.999, 0.1, 0.0)
    assert np.isnan(parameter[0])
    assert_array_equal(parameter, expected)


@pytest.mark.parametrize("dtype", DTYPES)
@pytest.mark.parametrize("epsilon_hat", [False, True])
@pytest.mark.parametrize("n_neurons", [1, 701], ids=["shorter-than-a-vector", "vectors-and-a-tail"])  # 4 n parameters
def test_adam_is_bit_identical(dtype, epsilon_hat, n_neurons, monkeypatch):
    rng = np.random.default_rng(0)
    gradients = rng.standard_normal((4, 3, n_neurons)).astype(dtype)

    def train():
        model = cr.Model(seed=0, dtype=dtype).add(cr.Dense(3, n_neurons)).add(cr.ReLU())
        model.compile(loss="mse", optimizer=cr.Adam(0.01, decay=0.1, epsilon_hat=epsilon_hat))
        store = model.parameter_store()
        for gradient in gradients:
            store.gradients[: gradient.size] = gradient.reshape(-1)
            model.optimizer.step(store)
        return store.values.copy()

    fused = train()
    monkeypatch.setattr(kernels, "ENABLED", False)
    assert_array_equal(fused, train())


@pytest.mark.parametrize("dtype", DTYPES)
def test_activation_and_loss_kernels_match_numpy(dtype, numpy_only):
    rng = np.random.default_rng(1)
    logits = (5 * rng.standard_normal((50, 7))).astype(dtype)
    logits[0] = [1e4, -1e4, 0, 0, 0, 0, 0]  # extreme values stay finite
    labels = rng.integers(0, 7, 50)
    relu, softmax, loss, fused = (
        cr.ReLU(),
        cr.Softmax(),
        cr.CategoricalCrossentropy(),
        cr.SoftmaxCategoricalCrossentropy(),
    )
    probabilities = softmax.forward_trusted(logits)
    compiled_results = [
        relu.forward_trusted(logits, True).copy(),  # a training pass: the kernel keeps the mask too
        relu.backward_trusted(np.ones_like(logits)).copy(),
        probabilities.copy(),
        loss.forward_trusted(probabilities, labels),
        softmax.predictions(probabilities),
        fused.backward_trusted(probabilities, labels).copy(),
    ]
    numpy_only()
    numpy_probabilities = softmax.forward_trusted(logits)
    numpy_results = [
        relu.forward_trusted(logits, True).copy(),  # a training pass: the kernel keeps the mask too
        relu.backward_trusted(np.ones_like(logits)).copy(),
        numpy_probabilities,
        loss.forward_trusted(numpy_probabilities, labels),
        softmax.predictions(numpy_probabilities),
        fused.backward_trusted(numpy_probabilities, labels),
    ]
    for mine, reference in zip(compiled_results, numpy_results, strict=True):
        assert mine.dtype == reference.dtype
        assert_allclose(mine, reference, rtol=tolerance(dtype), atol=tolerance(dtype))


def test_predictions_take_the_first_of_tied_classes():
    assert cr.Softmax().predictions(np.array([[0.2, 0.4, 0.4], [0.5, 0.5, 0.0]])).tolist() == [1, 0]


@pytest.mark.parametrize("dtype", DTYPES)
def test_a_training_run_ends_with_the_same_weights(dtype, numpy_only):
    X, y = cr.datasets.spiral_data(50, 3, seed=0)

    def train():
        model = cr.Model(seed=0, dtype=dtype).add(cr.Dense(2, 32)).add(cr.ReLU()).add(cr.Dense(32, 3))
        model.add(cr.Softmax()).compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.02))
        history = model.fit(X, y, epochs=30, batch_size=40, verbose=0)
        return model.get_weights(), history.history["loss"]

    (weights, losses) = train()
    numpy_only()
    (reference_weights, reference_losses) = train()
    loose = 1e-4 if dtype == np.float32 else 1e-10
    assert_allclose(losses, reference_losses, rtol=loose)
    for mine, reference in zip(weights, reference_weights, strict=True):
        assert_allclose(mine, reference, rtol=loose, atol=loose)
