"""Dense and Dropout: the contract, dtypes, initialisation and every bad-input message."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr


def test_dense_initialisation_is_small_gaussian_weights_and_zero_biases():
    layer = cr.Dense(200, 50, seed=1)
    assert layer.weights.shape == (200, 50) and layer.weights.dtype == np.float32
    assert layer.biases.shape == (1, 50) and not layer.biases.any()
    assert layer.weights.std() == pytest.approx(0.01, rel=0.05)
    assert_allclose(cr.Dense(200, 50, seed=1).weights, layer.weights)


def test_forward_returns_and_keeps_the_output():
    layer = cr.Dense(2, 3, seed=0)
    output = layer.forward(np.ones((4, 2)))
    assert output is layer.output and output.shape == (4, 3)
    assert_allclose(output, np.ones((4, 2)) @ layer.weights + layer.biases, rtol=1e-6)


@pytest.mark.parametrize("n_inputs, n_neurons", [(2, 64), (64, 3)])  # biases added inside the product, and after
def test_dense_computes_the_textbook_forward_and_backward(n_inputs, n_neurons):
    rng = np.random.default_rng(0)
    layer = cr.Dense(n_inputs, n_neurons, dtype=np.float64, seed=0)
    layer.biases = rng.standard_normal((1, n_neurons))
    inputs, dvalues = rng.standard_normal((7, n_inputs)), rng.standard_normal((7, n_neurons))
    weights, biases = layer.weights.copy(), layer.biases.copy()
    assert_allclose(layer.forward(inputs), np.einsum("si,in->sn", inputs, weights) + biases, rtol=1e-12)
    assert_allclose(layer.backward(dvalues), np.einsum("sn,in->si", dvalues, weights), rtol=1e-12)
    assert_allclose(layer.dweights, np.einsum("si,sn->in", inputs, dvalues), rtol=1e-12)
    assert_allclose(layer.dbiases, [[sum(row[n] for row in dvalues) for n in range(n_neurons)]], rtol=1e-12)


def test_a_component_computes_in_its_own_dtype():
    assert cr.Dense(2, 2).forward(np.ones((1, 2), dtype=np.float64)).dtype == np.float32
    assert cr.Dense(2, 2, dtype=np.float64).forward(np.ones((1, 2), dtype=np.int32)).dtype == np.float64
    assert cr.Tanh(dtype=np.float64).forward(np.ones((1, 2), dtype=np.float32)).dtype == np.float64
    assert cr.ReLU().forward([[1, 2]]).dtype == np.float32


def test_assigned_weights_are_copied_and_converted():
    layer = cr.Dense(2, 1)
    source = np.array([[1.0], [2.0]])
    layer.weights = source
    source[0, 0] = 99
    assert layer.weights.dtype == np.float32 and layer.weights[0, 0] == 1


@pytest.mark.parametrize(
    ("call", "error", "message"),
    [
        (
            lambda: cr.Dense(3, 2).forward(np.ones((4, 5))),
            ValueError,
            r"Dense.forward: inputs must have 3 columns, got shape \(4, 5\)",
        ),
        (lambda: cr.Dense(3, 2).forward(np.ones(3)), ValueError, r"2-D array.*got shape \(3,\).*reshape"),
        (lambda: cr.Dense(3, 2).forward([[1, 2, np.nan]]), ValueError, "Dense.forward: inputs contains NaN or inf"),
        (lambda: cr.Dense(3, 2).forward([[1, 2, np.inf]]), ValueError, "NaN or inf"),
        (lambda: cr.Dense(1, 1).forward([[1e300]]), ValueError, "too large for float32"),
        (lambda: cr.Dense(3, 2).forward([["a", "b", "c"]]), TypeError, "Dense.forward: inputs must be numeric"),
        (lambda: cr.Dense(3, 2).forward([[1, 2], [3]]), ValueError, "not a rectangular array"),
        (lambda: cr.Dense(3, 2).backward(np.ones((1, 2))), ValueError, "Dense.backward called before forward"),
        (lambda: cr.ReLU().backward(np.ones((1, 2))), ValueError, "ReLU.backward called before forward"),
        (lambda: cr.Dense(0, 2), ValueError, "n_inputs must be a positive integer, got 0"),
        (lambda: cr.Dense(2, 2.5), ValueError, "n_neurons must be a positive integer"),
        (lambda: cr.Dense(2, 2, weight_regularizer_l2=-1), ValueError, "weight_regularizer_l2 must be"),
        (lambda: cr.Dense(2, 2, dtype=np.int32), TypeError, "Dense: dtype must be float32 or float64"),
        (
            lambda: cr.Dropout(1.0),
            ValueError,
            r"Dropout: rate \(the fraction dropped\) must be .* >= 0 and below 1, got 1.0",
        ),
    ],
)
def test_bad_input_names_the_component_and_the_problem(call, error, message):
    with pytest.raises(error, match=message):
        call()


def test_dvalues_must_match_the_last_output():
    layer = cr.Dense(3, 2)
    layer.forward(np.ones((4, 3)))
    with pytest.raises(ValueError, match=r"Dense.backward: dvalues .* must have shape \(4, 2\), got \(4, 3\)"):
        layer.backward(np.ones((4, 3)))


def test_assigning_weights_of_the_wrong_shape_fails_and_keeps_the_old_ones():
    layer = cr.Dense(3, 2, seed=0)
    before = layer.weights.copy()
    with pytest.raises(ValueError, match=r"weights \(n_inputs, n_neurons\) must have shape \(3, 2\), got \(2, 3\)"):
        layer.weights = np.ones((2, 3))
    assert_allclose(layer.weights, before)


def test_dropout_is_identity_at_inference():
    x = np.random.default_rng(0).standard_normal((5, 4))
    layer = cr.Dropout(0.5, seed=0)
    assert_allclose(layer.forward(x), x.astype(np.float32))
    assert_allclose(layer.backward(np.ones((5, 4))), np.ones((5, 4)))


def test_dropout_drops_the_rate_and_keeps_the_expected_activation():
    layer = cr.Dropout(0.3, dtype=np.float64, seed=0)
    output = layer.forward(np.ones((400, 500)), training=True)
    assert np.mean(output == 0) == pytest.approx(0.3, abs=0.005)
    assert_allclose(np.unique(output), [0.0, 1 / 0.7])
    assert output.mean() == pytest.approx(1.0, abs=0.01)


def test_dropout_masks_the_gradient_where_it_dropped_values():
    layer = cr.Dropout(0.5, seed=3)
    output = layer.forward(np.ones((10, 10)), training=True)
    dinputs = layer.backward(np.ones((10, 10)))
    assert_allclose(dinputs, output)  # same zeros, same 1 / (1 - rate) scale


def test_layers_describe_themselves():
    assert repr(cr.Dropout(0.25)) == "Dropout(rate=0.25)"
    assert cr.LeakyReLU(0.2).get_config() == {"alpha": 0.2}


def test_assigning_weights_of_the_wrong_shape_gives_the_right_shape():
    with pytest.raises(
        ValueError, match=r"Dense.weights: weights \(n_inputs, n_neurons\) must have shape \(3, 1\), got \(3,\)"
    ):
        cr.Dense(3, 1).weights = [-3.0, -1.0, 2.0]


def test_the_public_backward_assigns_fresh_gradients_as_the_books_does():
    layer = cr.Dense(2, 3, dtype=np.float64)
    layer.forward(np.ones((4, 2)))
    layer.backward(np.ones((4, 3)))
    kept = layer.dweights
    layer.backward(2 * np.ones((4, 3)))
    assert_allclose(kept, 4 * np.ones((2, 3)))
    assert layer.dweights is not kept


@pytest.mark.parametrize(
    "initializer, variance",
    [
        ("book", lambda n_in, n_out: 1e-4),
        ("he", lambda n_in, n_out: 2 / n_in),
        ("glorot", lambda n_in, n_out: 2 / (n_in + n_out)),
    ],
)
def test_initializers_draw_weights_of_their_variance(initializer, variance):
    layer = cr.Dense(400, 300, initializer=initializer, dtype=np.float64, seed=0)
    expected = variance(400, 300)
    assert abs(layer.weights.mean()) < 4 * np.sqrt(expected / layer.weights.size)
    assert layer.weights.var() == pytest.approx(expected, rel=0.02)  # 120,000 draws: within 1% of the variance
    assert not layer.biases.any()
    if initializer == "glorot":
        assert np.abs(layer.weights).max() <= np.sqrt(6 / 700)


def test_xavier_is_glorot_and_a_file_keeps_the_initializer(tmp_path):
    assert np.array_equal(
        cr.Dense(5, 4, initializer="xavier", seed=3).weights, cr.Dense(5, 4, initializer="glorot", seed=3).weights
    )
    assert cr.Dense(5, 4, initializer="he").get_config()["initializer"] == "he"
    assert "initializer" not in cr.Dense(5, 4).get_config()  # the book's default: files from before load
    with pytest.raises(
        ValueError, match=r"unknown initializer 'kaiming'; choose from \['book', 'glorot', 'he', 'xavier'\]"
    ):
        cr.Dense(5, 4, initializer="kaiming")


@pytest.mark.parametrize("penalties", [(0, 0, 0, 0), (1e-2, 0, 0, 0), (0, 5e-3, 0, 0), (2e-3, 1e-3, 3e-3, 4e-3)])
def test_dense_equals_pytorch_autograd_with_its_penalties_in_float64(penalties):
    """Forward, dinputs and the parameter gradients (with the L1/L2 terms' gradients added, as the
    book adds them in backward) against PyTorch differentiating sum(output * dvalues) + penalties."""
    torch = pytest.importorskip("torch")  # the independent reference
    weight_l1, weight_l2, bias_l1, bias_l2 = penalties
    rng = np.random.default_rng(7)
    layer = cr.Dense(
        5,
        4,
        weight_regularizer_l1=weight_l1,
        weight_regularizer_l2=weight_l2,
        bias_regularizer_l1=bias_l1,
        bias_regularizer_l2=bias_l2,
        dtype=np.float64,
        seed=3,
    )
    layer.biases[...] = rng.standard_normal((1, 4))
    inputs, dvalues = rng.standard_normal((6, 5)), rng.standard_normal((6, 4))
    output = layer.forward(inputs).copy()
    layer.backward(dvalues)

    x = torch.from_numpy(inputs).requires_grad_(True)
    weights = torch.from_numpy(layer.weights.copy()).requires_grad_(True)
    biases = torch.from_numpy(layer.biases.copy()).requires_grad_(True)
    reference = torch.nn.functional.linear(x, weights.T, biases)
    objective = (reference * torch.from_numpy(dvalues)).sum()
    objective = objective + weight_l1 * weights.abs().sum() + weight_l2 * (weights**2).sum()
    objective = objective + bias_l1 * biases.abs().sum() + bias_l2 * (biases**2).sum()
    objective.backward()
    assert_allclose(output, reference.detach().numpy(), rtol=1e-12, atol=1e-14)
    assert_allclose(layer.dinputs, x.grad.numpy(), rtol=1e-12, atol=1e-14)
    assert_allclose(layer.dweights, weights.grad.numpy(), rtol=1e-12, atol=1e-14)
    assert_allclose(layer.dbiases, biases.grad.numpy(), rtol=1e-12, atol=1e-14)
