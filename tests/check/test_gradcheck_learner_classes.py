"""gradcheck on a learner's own classes, written as the book writes them: what passes, and what a slip looks like."""

import book_classes as book
import numpy as np
import pytest

import chainrule as cr

INPUTS = np.random.default_rng(7).standard_normal((5, 4))  # not the seed of gradcheck's random dvalues


def test_a_correct_book_dense_passes_with_inputs_weights_and_biases_checked():
    result = cr.gradcheck(book.Layer_Dense(4, 3), INPUTS)
    assert result.passed, str(result)
    assert set(result.errors) == {"inputs", "weights", "biases"}


@pytest.mark.parametrize("component", [book.Activation_ReLU(), book.Activation_Softmax()])
def test_correct_book_activations_pass(component):
    assert cr.gradcheck(component, INPUTS).passed


def test_correct_book_losses_pass_including_the_fused_one():
    probabilities = cr.Softmax().forward(INPUTS)
    labels = np.array([0, 1, 2, 3, 1])
    assert cr.gradcheck(book.Loss_CategoricalCrossentropy(), probabilities, labels).passed
    assert cr.gradcheck(book.Activation_Softmax_Loss_CategoricalCrossentropy(), INPUTS, labels).passed


def test_dbiases_summed_over_the_wrong_axis_is_a_wrong_shape_with_an_axis_hint():
    result = cr.gradcheck(book.DenseSummingOverNeurons(4, 3), INPUTS)
    assert not result.passed and result.errors["biases"] == np.inf
    assert result.errors["inputs"] < 1e-6 and result.errors["weights"] < 1e-6
    (failure,) = result.failures()
    assert "dbiases has shape (5, 1), expected (1, 3) (the shape of biases)" in failure
    assert "axis=0" in failure and "not axis=1" in failure


def test_dbiases_over_the_wrong_axis_is_a_wrong_shape_even_on_a_square_batch():
    result = cr.gradcheck(book.DenseSummingOverNeurons(3, 3), INPUTS[:3, :3])
    (failure,) = result.failures()
    assert "dbiases has shape (3, 1), expected (1, 3)" in failure and "not axis=1" in failure


def test_a_missing_transpose_on_a_square_layer_names_the_inputs():
    result = cr.gradcheck(book.DenseWithoutTranspose(4, 4), INPUTS)
    (failure,) = result.failures()
    assert failure.startswith("dinputs[") and "central differences give" in failure
    assert "hint: dinputs misses a .T: dinputs = dvalues @ weights.T" in failure


def test_the_worst_element_is_shown_with_both_values():
    result = cr.gradcheck(book.DenseWithoutTranspose(4, 4), INPUTS)
    index, analytic, numeric = result.verdicts["inputs"].worst
    assert result.analytic["inputs"][index] == analytic
    assert result.numeric["inputs"][index] == pytest.approx(numeric)
    assert f"dinputs{list(index)} is {analytic:.6g}" in str(result)


def test_the_seed_softmax_slip_fails_with_the_jacobian_hint():
    result = cr.gradcheck(book.SoftmaxWithDiagonalDerivative(), INPUTS)
    (failure,) = result.failures()
    assert "softmax's derivative is not s * (1 - s)" in failure


def test_a_loss_not_divided_by_the_number_of_samples():
    probabilities = cr.Softmax().forward(INPUTS)
    result = cr.gradcheck(book.CrossentropyNotDividedBySamples(), probabilities, np.array([0, 1, 2, 3, 1]))
    (failure,) = result.failures()
    assert "dinputs is 5 times too large: divide by the number of samples" in failure


def test_a_relu_mask_taken_from_dvalues():
    result = cr.gradcheck(book.ReLUMaskFromDvalues(), INPUTS)
    (failure,) = result.failures()
    assert "ReLU's mask comes from the forward inputs" in failure


def test_a_misspelt_gradient_is_named_not_skipped():
    result = cr.gradcheck(book.DenseWithTypo(4, 3), INPUTS)
    assert not result.passed
    (failure,) = result.failures()
    assert failure == "backward set no dweights; it set 'dweighhts': a typo?"


def test_the_learners_arrays_are_left_as_they_were():
    layer = book.Layer_Dense(4, 3)
    weights = layer.weights.copy()
    cr.gradcheck(layer, INPUTS)
    assert np.array_equal(layer.weights, weights)


def test_float32_learner_arrays_are_refused_with_the_fix():
    layer = book.Layer_Dense(4, 3)
    layer.weights = layer.weights.astype(np.float32)
    with pytest.raises(TypeError, match=r"Layer_Dense computes in \['float32'\]; central differences need float64"):
        cr.gradcheck(layer, INPUTS)


def test_an_object_without_backward_is_refused():
    class OnlyForward:
        def forward(self, inputs):
            return inputs

    with pytest.raises(TypeError, match="OnlyForward has no backward method"):
        cr.gradcheck(OnlyForward(), INPUTS)


def test_an_output_kept_as_outputs_is_found():
    class Doubling:
        def forward(self, inputs):
            self.outputs = 2 * inputs

        def backward(self, dvalues):
            self.dinputs = 2 * dvalues

    assert cr.gradcheck(Doubling(), INPUTS).passed


def test_book_regularizers_are_part_of_the_checked_function():
    class RegularizedDense(book.Layer_Dense):
        weight_regularizer_l2 = 0.3

        def backward(self, dvalues):
            super().backward(dvalues)
            self.dweights += 2 * self.weight_regularizer_l2 * self.weights

    assert cr.gradcheck(RegularizedDense(4, 3), INPUTS).passed
