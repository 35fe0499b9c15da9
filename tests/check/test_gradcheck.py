"""Every analytic gradient agrees with central differences (float64, relative error < 1e-6)."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import chainrule as cr
from chainrule.check.numeric import numerical_gradient

F64 = np.float64
TOLERANCE = 1e-6
batch_sizes = st.integers(1, 6)
widths = st.integers(1, 5)
neuron_widths = st.integers(1, 12)  # from 8 neurons on, a 1-input Dense adds its biases inside the product
seeds = st.integers(0, 2**32 - 1)


def assert_agrees(result: cr.GradcheckResult) -> None:
    assert result.errors, "the check compared nothing"
    assert result.passed, str(result)
    assert result.max_error < TOLERANCE


@given(batch_sizes, widths, neuron_widths, seeds)
def test_dense_inputs_weights_and_biases(n_samples, n_inputs, n_neurons, seed):
    rng = np.random.default_rng(seed)
    layer = cr.Dense(n_inputs, n_neurons, dtype=F64, seed=seed)
    layer.biases = rng.standard_normal((1, n_neurons))
    result = cr.gradcheck(layer, rng.standard_normal((n_samples, n_inputs)), seed=seed)
    assert set(result.errors) == {"inputs", "weights", "biases"}
    assert_agrees(result)


@given(batch_sizes, widths, neuron_widths, seeds, st.sampled_from(["l1", "l2", "both"]))
def test_dense_l1_and_l2_penalties(n_samples, n_inputs, n_neurons, seed, kind):
    rng = np.random.default_rng(seed)
    l1 = 0.3 if kind in ("l1", "both") else 0.0
    l2 = 0.2 if kind in ("l2", "both") else 0.0
    layer = cr.Dense(
        n_inputs,
        n_neurons,
        weight_regularizer_l1=l1,
        weight_regularizer_l2=l2,
        bias_regularizer_l1=l1,
        bias_regularizer_l2=l2,
        dtype=F64,
    )
    layer.weights = rng.standard_normal((n_inputs, n_neurons))
    layer.biases = rng.standard_normal((1, n_neurons))
    assert layer.regularization_penalty() > 0
    assert_agrees(cr.gradcheck(layer, rng.standard_normal((n_samples, n_inputs)), seed=seed))


ACTIVATIONS = [
    lambda: cr.ReLU(dtype=F64),
    lambda: cr.LeakyReLU(alpha=0.1, dtype=F64),
    lambda: cr.Sigmoid(dtype=F64),
    lambda: cr.Tanh(dtype=F64),
    lambda: cr.Softmax(dtype=F64),
    lambda: cr.Linear(dtype=F64),
    lambda: cr.Exponential(dtype=F64),
]
ACTIVATION_NAMES = ["relu", "leaky_relu", "sigmoid", "tanh", "softmax", "linear", "exponential"]


@pytest.mark.parametrize("make", ACTIVATIONS, ids=ACTIVATION_NAMES)
@given(n_samples=batch_sizes, n_features=widths, seed=seeds)
def test_activations(make, n_samples, n_features, seed):
    inputs = np.random.default_rng(seed).standard_normal((n_samples, n_features))
    assert_agrees(cr.gradcheck(make(), inputs, seed=seed))


@given(batch_sizes, widths, seeds)
def test_dropout_with_a_fixed_mask(n_samples, n_features, seed):
    inputs = np.random.default_rng(seed).standard_normal((n_samples, n_features))
    layer = cr.Dropout(0.4, dtype=F64, seed=seed)
    assert_agrees(cr.gradcheck(layer, inputs, training=True, seed=seed))


def probabilities(rng: np.random.Generator, n_samples: int, n_classes: int) -> np.ndarray:
    """Rows of probabilities, each at least 1 / (2 k): -log p has third derivative -2 / p^3, so
    central differences of a tiny p miss by more than the tolerance (p = 0.003: 4e-6 relative)."""
    softmax = cr.Softmax(dtype=F64).forward(rng.standard_normal((n_samples, n_classes)))
    return 0.5 * softmax + 0.5 / n_classes


@given(batch_sizes, st.integers(2, 5), seeds, st.booleans())
def test_categorical_crossentropy(n_samples, n_classes, seed, one_hot):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n_samples)
    y_true = np.eye(n_classes)[labels] if one_hot else labels
    loss = cr.CategoricalCrossentropy(dtype=F64)
    assert_agrees(cr.gradcheck(loss, probabilities(rng, n_samples, n_classes), y_true))


@given(batch_sizes, st.integers(2, 5), seeds, st.booleans())
def test_fused_softmax_crossentropy(n_samples, n_classes, seed, one_hot):
    rng = np.random.default_rng(seed)
    labels = rng.integers(0, n_classes, n_samples)
    y_true = np.eye(n_classes)[labels] if one_hot else labels
    fused = cr.SoftmaxCategoricalCrossentropy(dtype=F64)
    assert_agrees(cr.gradcheck(fused, rng.standard_normal((n_samples, n_classes)), y_true))


@given(batch_sizes, widths, seeds)
def test_binary_crossentropy(n_samples, n_outputs, seed):
    rng = np.random.default_rng(seed)
    y_pred = rng.uniform(0.05, 0.95, (n_samples, n_outputs))
    y_true = rng.integers(0, 2, (n_samples, n_outputs))
    assert_agrees(cr.gradcheck(cr.BinaryCrossentropy(dtype=F64), y_pred, y_true))


@given(batch_sizes, widths, seeds)
def test_fused_sigmoid_crossentropy(n_samples, n_outputs, seed):
    rng = np.random.default_rng(seed)
    y_true = rng.integers(0, 2, (n_samples, n_outputs))
    fused = cr.SigmoidBinaryCrossentropy(dtype=F64)
    assert_agrees(cr.gradcheck(fused, rng.standard_normal((n_samples, n_outputs)), y_true))


@given(batch_sizes, widths, seeds)
def test_poisson_deviance(n_samples, n_outputs, seed):
    rng = np.random.default_rng(seed)
    y_pred = rng.uniform(0.2, 3.0, (n_samples, n_outputs))
    y_true = rng.poisson(1.5, (n_samples, n_outputs))  # zeros included: y log(y / p) is 0 there
    assert_agrees(cr.gradcheck(cr.PoissonDeviance(dtype=F64), y_pred, y_true))


@pytest.mark.parametrize("loss_class", [cr.MeanSquaredError, cr.MeanAbsoluteError])
@given(n_samples=batch_sizes, n_outputs=widths, seed=seeds)
def test_regression_losses(loss_class, n_samples, n_outputs, seed):
    rng = np.random.default_rng(seed)
    y_pred, y_true = rng.standard_normal((2, n_samples, n_outputs))
    assert_agrees(cr.gradcheck(loss_class(dtype=F64), y_pred, y_true))


def test_a_wrong_gradient_is_caught():
    class BrokenTanh(cr.Tanh):
        def backward(self, dvalues):
            self.dinputs = dvalues * (1 - self.output)  # forgot to square
            return self.dinputs

    inputs = np.random.default_rng(0).standard_normal((4, 3))
    result = cr.gradcheck(BrokenTanh(dtype=F64), inputs)
    assert not result.passed
    assert "FAIL" in str(result)


def test_numerical_gradient_of_a_known_function():
    x = np.array([1.0, -2.0, 0.5])
    gradient = numerical_gradient(lambda: float((x**3).sum()), x, 1e-6)
    np.testing.assert_allclose(gradient, 3 * x**2, rtol=1e-8)
    np.testing.assert_array_equal(x, [1.0, -2.0, 0.5])  # restored


def test_gradcheck_requires_float64_components():
    with pytest.raises(TypeError, match="float64"):
        cr.gradcheck(cr.Dense(2, 2), np.ones((2, 2)))  # float32 parameters


def test_gradcheck_of_a_loss_requires_labels():
    with pytest.raises(ValueError, match="y_true"):
        cr.gradcheck(cr.MeanSquaredError(dtype=F64), np.ones((2, 2)))


def test_given_dvalues_must_match_the_output():
    with pytest.raises(ValueError, match=r"gradcheck: dvalues .* must have shape \(4, 2\), got \(4, 3\)"):
        cr.gradcheck(cr.Dense(3, 2, dtype=F64), np.ones((4, 3)), dvalues=np.ones((4, 3)))
