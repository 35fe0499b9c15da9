"""Embedding: the lookup and the scattered gradient (repeated indices adding up) equal PyTorch's
nn.Embedding in float64, the weights' gradient agrees with central differences, and indices out
of range or not whole are refused."""

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
from chainrule.check.numeric import numerical_gradient

torch = pytest.importorskip("torch")

CASES = list(itertools.product([1, 5, 50], [1, 3, 8], [(4,), (3, 6), (2, 3, 4)]))[:24]


@pytest.mark.parametrize("n_embeddings, dimensions, index_shape", CASES)
def test_embedding_equals_pytorchs(n_embeddings, dimensions, index_shape):
    rng = np.random.default_rng(n_embeddings * 10 + dimensions)
    layer = cr.Embedding(n_embeddings, dimensions, dtype=np.float64, seed=0)
    indices = rng.integers(0, n_embeddings, index_shape)  # with repeats when the table is small
    output = layer.forward(indices)
    dvalues = rng.standard_normal(output.shape)
    layer.backward(dvalues)
    reference = torch.nn.Embedding(n_embeddings, dimensions, dtype=torch.float64)
    with torch.no_grad():
        reference.weight.copy_(torch.from_numpy(layer.weights))
    expected = reference(torch.from_numpy(indices))
    expected.backward(torch.from_numpy(dvalues))
    assert output.shape == (*index_shape, dimensions)
    assert_allclose(output, expected.detach().numpy(), rtol=1e-12)
    assert_allclose(layer.dweights, reference.weight.grad.numpy(), rtol=1e-12, atol=1e-15)
    assert not layer.dinputs.any()


def test_the_weights_gradient_agrees_with_central_differences():
    rng = np.random.default_rng(0)
    layer = cr.Embedding(6, 3, dtype=np.float64, seed=1)
    indices = np.array([[0, 2, 2], [5, 0, 2]])
    dvalues = rng.standard_normal((2, 3, 3))

    def loss():
        return float(np.sum(layer.forward(indices) * dvalues))

    numeric = numerical_gradient(loss, layer.weights, 1e-6)
    layer.forward(indices)
    layer.backward(dvalues)
    assert_allclose(layer.dweights, numeric, rtol=1e-6, atol=1e-9)


def test_an_embedding_trains_in_a_model_on_integer_inputs():
    rng = np.random.default_rng(0)
    X = rng.integers(0, 10, (200, 1))
    y = (X[:, 0] >= 5).astype(np.int64)  # the class is whether the token is in the upper half
    model = cr.Model(seed=0).add(cr.Embedding(10, 4)).add(cr.Flatten()).add(cr.Dense(4, 2)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(learning_rate=0.05), metrics="accuracy")
    history = model.fit(X, y, epochs=60, verbose=0)
    assert history.history["accuracy"][-1] == 1.0


@pytest.mark.parametrize(
    "indices, message",
    [
        (np.array([[0, 10]]), r"indices in \[0, 10\), got values from 0 to 10"),
        (np.array([[-1, 2]]), r"indices in \[0, 10\)"),
        (np.array([[0.5, 2.0]]), "whole-number indices"),
        (np.array([["a"]]), "numeric"),
    ],
)
def test_indices_out_of_range_or_not_whole_are_refused(indices, message):
    with pytest.raises((ValueError, TypeError), match=message):
        cr.Embedding(10, 2).forward(indices)
