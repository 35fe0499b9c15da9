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
    assert "hint: dinputs misses a .T: dinputs = np.dot(dvalues, self.weights.T)" in failure


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


def test_float32_learner_arrays_are_checked_on_float64_copies_and_left_as_they_were():
    layer = book.Layer_Dense(4, 3)
    layer.weights = float32_weights = layer.weights.astype(np.float32)
    result = cr.gradcheck(layer, INPUTS)
    assert result.passed, str(result)
    assert layer.weights is float32_weights
    assert "Layer_Dense's weights are not float64" in str(result) and "float64 copies" in str(result)


def test_a_chainrule_layer_in_float32_is_refused_with_the_fix():
    with pytest.raises(TypeError, match=r"Dense computes in \['float32'\]; central differences need float64"):
        cr.gradcheck(cr.Dense(4, 3, dtype=np.float32), INPUTS)


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


def test_nan_in_a_gradient_is_a_failure_that_names_the_element():
    result = cr.gradcheck(book.DenseWithNaNDinputs(4, 3), INPUTS)
    assert not result.passed and result.errors["inputs"] == np.inf
    assert "dinputs[0, 0] is nan" in result.failures()[0]


def test_nan_from_an_overflowing_softmax_names_the_cause_and_is_no_kink():
    result = cr.gradcheck(book.SoftmaxWithoutTheMaximum(), 1000 * INPUTS)
    assert not result.passed and list(result.verdicts) == ["output"]
    assert "is nan" in str(result) and "subtract each row's maximum before np.exp" in str(result)
    assert "kink" not in str(result)


def test_compare_fails_on_a_nan_gradient_too():
    result = cr.compare(book.DenseWithNaNDinputs(4, 3), cr.Dense(4, 3, dtype=np.float64), INPUTS)
    assert not result.passed and "dinputs[0, 0] is nan" in "\n".join(result.failures())


def test_relu_kinks_are_found_by_the_numbers_listed_and_accepted():
    zero_row = np.vstack([INPUTS, np.zeros((1, 4))])
    result = cr.gradcheck(book.Rectifier(), zero_row)
    assert result.passed and result.verdicts["inputs"].kinks == ((5, 0), (5, 1), (5, 2), (5, 3))
    assert "4 elements at a kink, within the one-sided slopes: [5, 0], [5, 1], [5, 2], [5, 3]" in str(result)


def test_a_wrong_gradient_at_a_kink_is_not_accepted():
    class ReLUWithSlopeTwoAtZero(book.Activation_ReLU):
        def backward(self, dvalues):
            super().backward(dvalues)
            self.dinputs[self.inputs == 0] = 2 * dvalues[self.inputs == 0]  # outside [0, dvalues]

    result = cr.gradcheck(ReLUWithSlopeTwoAtZero(), np.vstack([INPUTS, np.zeros((1, 4))]))
    assert not result.passed and result.verdicts["inputs"].worst[0][0] == 5


def test_random_draws_are_held_fixed_said_and_left_as_they_were():
    state = np.random.get_state()
    result = cr.gradcheck(book.Layer_Dropout(0.3), INPUTS, training=True)
    assert result.passed, str(result)
    assert "draws random numbers (NumPy's global generator)" in str(result)
    after = np.random.get_state()
    assert np.array_equal(after[1], state[1]) and after[2] == state[2]


def test_a_chainrule_dropout_with_its_own_generator_passes_in_training():
    result = cr.gradcheck(cr.Dropout(0.4, dtype=np.float64, seed=1), INPUTS, training=True)
    assert result.passed and "self.rng" in str(result)


def test_after_nnfs_init_the_check_says_it_restored_numpys_dot(request):
    nnfs = pytest.importorskip("nnfs")
    saved = np.dot, np.zeros, np.eye, np.random.randn, np.random.get_state()
    nnfs.init()
    try:
        result = cr.gradcheck(book.Layer_Dense_With_Randn(4, 3), INPUTS)
        assert np.dot(np.ones((1, 1)), np.ones((1, 1))).dtype == np.float32  # nnfs's dot is back afterwards
    finally:
        np.dot, np.zeros, np.eye, np.random.randn = saved[:4]
        np.random.set_state(saved[4])
    assert result.passed, str(result)
    assert "np.dot had been replaced (nnfs.init() does that" in str(result)
    assert "biases, weights are not float64" in str(result)


def test_a_model_with_a_learners_parameter_free_layer_names_that_layer():
    class HalfReLU(cr.Layer):
        def forward(self, inputs, training=False):
            self.inputs = inputs
            self.output = np.maximum(0, inputs)
            return self.output

        def backward(self, dvalues):
            self.dinputs = 0.5 * dvalues * (self.inputs > 0)  # the slip: half the slope
            return self.dinputs

    X, y = cr.datasets.spiral_data(4, 3, seed=0)
    model = cr.Model(seed=0).add(cr.Dense(2, 5, dtype=np.float64)).add(HalfReLU(dtype=np.float64))
    model.add(cr.Dense(5, 3, dtype=np.float64)).add(cr.Softmax(dtype=np.float64))
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    result = cr.gradcheck(model, X, y)
    assert not result.passed
    first = next(name for name, verdict in result.verdicts.items() if not verdict.error < result.tolerance)
    assert first == "layer1.HalfReLU.inputs"
    assert "the first disagreement from the loss backwards is in layer1 (HalfReLU)" in str(result)
