"""The error measure and the verdicts behind gradcheck and compare."""

import numpy as np
import pytest

from chainrule.check.diagnosis import ERROR_FLOOR, Context, element_errors, gradient_name, judge


def test_element_errors_are_relative_with_a_floor_near_zero():
    a = np.array([1.0, 2.0, 0.0])
    assert element_errors(a, a).tolist() == [0, 0, 0]
    assert element_errors(a, -a)[:2] == pytest.approx([1.0, 1.0])
    tiny = np.array([1e-9])
    assert element_errors(tiny, 2 * tiny)[0] == pytest.approx(1e-9 / ERROR_FLOOR)  # absolute below the floor


def test_a_wrong_shape_is_never_broadcast():
    verdict = judge("biases", np.ones((5, 1)), np.ones((1, 5)), Context(n_samples=5))
    assert (
        verdict.error == np.inf and verdict.problem == "dbiases has shape (5, 1), expected (1, 5) (the shape of biases)"
    )


def test_elements_at_kinks_do_not_count_and_the_worst_is_named():
    numeric = np.array([[1.0, 0.5], [3.0, 4.0]])
    analytic = np.array([[1.0, 99.0], [3.0, 5.0]])
    verdict = judge("weights", analytic, numeric, Context(n_samples=2), kinks=((0, 1),))
    assert verdict.worst == ((1, 1), 5.0, 4.0) and verdict.error == pytest.approx(1 / 9)
    assert verdict.skipped == 1


def test_gradient_names_follow_the_book():
    assert [gradient_name(n) for n in ("inputs", "weights", "layer0.Dense.biases", "output")] == [
        "dinputs",
        "dweights",
        "layer0.Dense.dbiases",
        "output",
    ]
