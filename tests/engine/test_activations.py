"""Activations: values from their formulas, vectorised softmax backward, numerical safety."""

import math

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from numpy.testing import assert_allclose

import chainrule as cr


def test_relu_leaky_relu_linear_values():
    x = np.array([[-2.0, 0.0, 3.0]])
    assert_allclose(cr.ReLU().forward(x), [[0, 0, 3]])
    assert_allclose(cr.LeakyReLU(alpha=0.1).forward(x), [[-0.2, 0, 3]], rtol=1e-6)
    assert_allclose(cr.Linear().forward(x), x)


def test_sigmoid_and_tanh_match_their_formulas():
    x = np.array([[-3.0, -0.5, 0.0, 2.0]])
    assert_allclose(cr.Sigmoid(dtype=np.float64).forward(x), [[1 / (1 + math.exp(-v)) for v in x[0]]], rtol=1e-14)
    assert_allclose(cr.Tanh(dtype=np.float64).forward(x), [[math.tanh(v) for v in x[0]]], rtol=1e-14)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 2e-15), (np.float32, 3e-7)])  # two roundings at most
def test_sigmoid_keeps_the_digits_of_tiny_probabilities_as_scipys_expit_does(dtype, rtol):
    """A probability of 1e-200 stays 1e-200 (not 0, so its logarithm stays finite), down to the
    smallest normal number; above it the values are SciPy's `expit` to the last digits."""
    from scipy.special import expit

    tiny = np.finfo(dtype).tiny
    x = np.linspace(-math.log(1 / tiny), 40, 2001).astype(dtype).reshape(1, -1)
    output = cr.Sigmoid(dtype=dtype).forward(x)
    assert (output > 0).all() and output.dtype == dtype
    assert_allclose(output, expit(x), rtol=rtol)


def test_softmax_rows_are_probabilities():
    output = cr.Softmax(dtype=np.float64).forward([[1.0, 2.0, 3.0], [0.0, 0.0, 0.0]])
    e = np.exp([1.0, 2.0, 3.0])
    assert_allclose(output[0], e / e.sum(), rtol=1e-14)
    assert_allclose(output[1], [1 / 3] * 3, rtol=1e-14)


def test_softmax_and_sigmoid_survive_extreme_logits_without_warnings():
    logits = np.array([[1e4, -1e4, 0.0], [-3e38, 3e38, 1.0]], dtype=np.float32)
    probabilities = cr.Softmax().forward(logits)
    assert np.isfinite(probabilities).all()
    assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-6)
    assert_allclose(cr.Sigmoid().forward(logits), [[1, 0, 0.5], [0, 1, 0.7310586]], rtol=1e-6)


@given(st.integers(1, 6), st.integers(2, 6), st.integers(0, 2**32 - 1))
def test_softmax_backward_equals_the_per_sample_jacobian_product(n_samples, n_classes, seed):
    rng = np.random.default_rng(seed)
    softmax = cr.Softmax(dtype=np.float64)
    softmax.forward(rng.standard_normal((n_samples, n_classes)))
    dvalues = rng.standard_normal((n_samples, n_classes))
    jacobians = cr.Softmax.jacobian(softmax.output)
    looped = np.stack([jacobians[i] @ dvalues[i] for i in range(n_samples)])  # the textbook loop
    assert_allclose(softmax.backward(dvalues), looped, rtol=1e-12, atol=1e-15)


@given(st.integers(1, 8), st.integers(2, 6), st.integers(0, 2**32 - 1), st.booleans())
def test_fused_gradient_equals_crossentropy_then_softmax_backward(n_samples, n_classes, seed, one_hot):
    rng = np.random.default_rng(seed)
    # Standard-normal logits keep every probability far above the 1e-7 clip, where the two agree.
    logits = rng.standard_normal((n_samples, n_classes))
    labels = rng.integers(0, n_classes, n_samples)
    y_true = np.eye(n_classes)[labels] if one_hot else labels

    softmax, loss = cr.Softmax(dtype=np.float64), cr.CategoricalCrossentropy(dtype=np.float64)
    softmax.forward(logits)
    separate = softmax.backward(loss.backward(softmax.output, y_true))

    fused = cr.SoftmaxCategoricalCrossentropy(dtype=np.float64)
    fused.forward(logits, y_true)
    assert_allclose(fused.backward(fused.output, y_true), separate, rtol=0, atol=1e-10)


def test_predictions_of_classifier_outputs():
    assert_allclose(cr.Softmax().predictions(np.array([[0.1, 0.7, 0.2], [0.5, 0.2, 0.3]])), [1, 0])
    assert_allclose(cr.Sigmoid().predictions(np.array([[0.2], [0.8]])), [[0], [1]])


def test_leaky_relu_rejects_a_non_numeric_alpha():
    with pytest.raises(ValueError, match="alpha"):
        cr.LeakyReLU(alpha="big")


def test_jacobian_rejects_three_dimensional_input():
    with pytest.raises(ValueError, match="Softmax.jacobian"):
        cr.Softmax.jacobian(np.ones((2, 2, 2)))


def test_relu_outputs_positive_zero_for_negative_inputs():
    output = cr.ReLU().forward([[-3.0, -0.0, 2.0]])
    assert not np.signbit(output).any()


TORCH_ACTIVATIONS = {
    "relu": (cr.ReLU, lambda torch, x: torch.relu(x)),
    "leaky_relu": (lambda: cr.LeakyReLU(alpha=0.07), lambda torch, x: torch.nn.functional.leaky_relu(x, 0.07)),
    "sigmoid": (cr.Sigmoid, lambda torch, x: torch.sigmoid(x)),
    "tanh": (cr.Tanh, lambda torch, x: torch.tanh(x)),
    "softmax": (cr.Softmax, lambda torch, x: torch.softmax(x, dim=1)),
    "linear": (cr.Linear, lambda torch, x: x * 1),
    "exponential": (cr.Exponential, lambda torch, x: torch.exp(x)),
}


@pytest.mark.parametrize("name", TORCH_ACTIVATIONS)
def test_each_activation_equals_pytorch_autograd_in_float64(name):
    torch = pytest.importorskip("torch")  # the independent reference
    ours, theirs = TORCH_ACTIVATIONS[name]
    rng = np.random.default_rng(len(name))
    inputs, dvalues = 3 * rng.standard_normal((7, 5)), rng.standard_normal((7, 5))
    activation = ours()
    output = activation.forward(inputs).copy()
    activation.backward(dvalues)
    x = torch.from_numpy(inputs).requires_grad_(True)
    reference = theirs(torch, x)
    reference.backward(torch.from_numpy(dvalues))
    assert output.dtype == activation.dinputs.dtype == np.float64
    assert_allclose(output, reference.detach().numpy(), rtol=1e-13, atol=1e-15)
    assert_allclose(activation.dinputs, x.grad.numpy(), rtol=1e-12, atol=1e-15)
