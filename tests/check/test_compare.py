"""compare: a learner's class beside chainrule's, on the same inputs and weights."""

import book_classes as book
import numpy as np
import pytest

import chainrule as cr

INPUTS = np.random.default_rng(1).standard_normal((4, 3))


def test_a_correct_book_dense_matches_chainrules_dense():
    mine, reference = book.Layer_Dense(3, 2), cr.Dense(3, 2, dtype=np.float64, seed=5)
    result = cr.compare(mine, reference, INPUTS)
    assert result.passed, str(result)
    assert set(result.verdicts) == {"output", "inputs", "weights", "biases"}
    assert np.array_equal(mine.weights, reference.weights)  # the reference's weights were copied in
    assert "mine:" in str(result) and "reference:" in str(result)


def test_a_slip_is_shown_with_the_same_diagnosis_as_gradcheck():
    result = cr.compare(book.DenseSummingOverNeurons(3, 2), cr.Dense(3, 2, dtype=np.float64), INPUTS)
    assert not result.passed and result.errors["output"] == 0
    (failure,) = result.failures()
    assert "dbiases has shape (4, 1), expected (1, 2)" in failure and "axis=0" in failure


def test_softmax_and_relu_and_the_losses_compare():
    assert cr.compare(book.Activation_Softmax(), cr.Softmax(), INPUTS).passed
    assert cr.compare(book.Activation_ReLU(), cr.ReLU(), INPUTS).passed
    probabilities = cr.Softmax().forward(INPUTS)
    labels = np.array([0, 2, 1, 1])
    assert cr.compare(book.Loss_CategoricalCrossentropy(), cr.CategoricalCrossentropy(), probabilities, labels).passed
    fused = cr.compare(
        book.Activation_Softmax_Loss_CategoricalCrossentropy(), cr.SoftmaxCategoricalCrossentropy(), INPUTS, labels
    )
    assert fused.passed, str(fused)


def test_weights_of_the_wrong_shape_are_refused_with_the_layout():
    mine = book.Layer_Dense(2, 3)  # (2, 3): the reference below is (3, 2)
    with pytest.raises(ValueError, match=r"Layer_Dense.weights has shape \(2, 3\), .* \(3, 2\) \(transposed"):
        cr.compare(mine, cr.Dense(3, 2, dtype=np.float64), INPUTS)
