"""The reference values of the seed notebooks, reproduced exactly (float64) through the public API."""

import numpy as np
from numpy.testing import assert_allclose

import chainrule as cr

EXACT = {"rtol": 0, "atol": 1e-12}

# The layer example: 4 inputs, 3 neurons; the notebooks write W as 3 rows of 4 and transpose it.
W_BY_NEURON = np.array([[0.2, 0.8, -0.5, 1], [0.5, -0.91, 0.26, -0.5], [-0.26, -0.27, 0.17, 0.87]])
X = np.array([[1, 2, 3, 2.5], [2, 5, -1, 2], [-1.5, 2.7, 3.3, -0.8]])
DVALUES_123 = np.array([[1.0, 1, 1], [2, 2, 2], [3, 3, 3]])


def seed_layer() -> cr.Dense:
    layer = cr.Dense(4, 3, dtype=np.float64)
    layer.weights = W_BY_NEURON.T
    return layer


def neuron() -> tuple[cr.Dense, cr.ReLU]:
    """The seed neuron; only the Dense layer is told float64, ReLU follows the data."""
    dense = cr.Dense(3, 1, dtype=np.float64)
    dense.weights = [[-3.0], [-1.0], [2.0]]
    dense.biases = [[1.0]]
    return dense, cr.ReLU()


def test_neuron_forward_is_relu_of_the_weighted_sum():
    dense, relu = neuron()
    x = np.array([[1.0, -2.0, 3.0]])
    assert_allclose(x[0] * dense.weights[:, 0], [-3, 2, 6], **EXACT)
    assert_allclose(dense.forward(x), [[6.0]], **EXACT)
    assert_allclose(relu.forward(dense.output), [[6.0]], **EXACT)


def test_neuron_backward_gives_the_chain_rule_gradients():
    dense, relu = neuron()
    relu.forward(dense.forward([[1.0, -2.0, 3.0]]))
    dense.backward(relu.backward([[1.0]]))
    assert_allclose(dense.dinputs, [[-3, -1, 2]], **EXACT)
    assert_allclose(dense.dweights, [[1], [-2], [3]], **EXACT)
    assert_allclose(dense.dbiases, [[1]], **EXACT)


def test_one_gradient_step_lowers_the_neuron_output_to_5_985():
    dense, relu = neuron()
    x = [[1.0, -2.0, 3.0]]
    relu.forward(dense.forward(x))
    dense.backward(relu.backward([[1.0]]))
    dense.weights += -0.001 * dense.dweights
    dense.biases += -0.001 * dense.dbiases
    assert_allclose(dense.weights[:, 0], [-3.001, -0.998, 1.997], **EXACT)
    assert_allclose(dense.biases, [[0.999]], **EXACT)
    output = relu.forward(dense.forward(x))
    assert output.dtype == np.float64
    assert_allclose(output, [[5.985]], **EXACT)


def test_layer_dinputs_for_one_sample():
    layer = seed_layer()
    layer.forward(np.zeros((1, 4)))
    assert_allclose(layer.backward([[1.0, 1, 1]]), [[0.44, -0.38, -0.07, 1.37]], **EXACT)


def test_layer_dinputs_scale_with_the_batch_of_dvalues():
    layer = seed_layer()
    layer.forward(np.zeros((3, 4)))
    row = np.array([0.44, -0.38, -0.07, 1.37])
    assert_allclose(layer.backward(DVALUES_123), [row, 2 * row, 3 * row], **EXACT)


def test_layer_dweights_and_dbiases_for_the_batch():
    layer = seed_layer()
    layer.forward(X)
    layer.backward(DVALUES_123)
    assert_allclose(layer.dweights, [[0.5] * 3, [20.1] * 3, [10.9] * 3, [4.1] * 3], **EXACT)
    assert_allclose(layer.dbiases, [[6, 6, 6]], **EXACT)


def test_dense_then_relu_forward():
    layer = seed_layer()
    layer.biases = [[2, 3, 0.5]]
    relu = cr.ReLU(dtype=np.float64)
    expected = [[4.8, 1.21, 2.385], [8.9, 0, 0.2], [1.41, 1.051, 0.026]]
    assert_allclose(relu.forward(layer.forward(X)), expected, **EXACT)


def test_softmax_jacobian_of_one_output():
    expected = [[0.21, -0.07, -0.14], [-0.07, 0.09, -0.02], [-0.14, -0.02, 0.16]]
    assert_allclose(cr.Softmax.jacobian([0.7, 0.1, 0.2]), expected, **EXACT)
