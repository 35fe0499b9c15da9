"""check_optimizer: the book's optimizers beside chainrule's, step by step."""

import book_classes as book
import numpy as np
import pytest

import chainrule as cr

ARRAYS = ["current_learning_rate", "weights", "biases"]
MOMENTUMS, CACHES = ["weight_momentums", "bias_momentums"], ["weight_cache", "bias_cache"]
CORRECT = [
    (lambda: book.Optimizer_SGD(learning_rate=0.5), lambda: cr.SGD(learning_rate=0.5), []),
    (lambda: book.Optimizer_SGD(1.0, decay=0.1, momentum=0.9), lambda: cr.SGD(1.0, decay=0.1, momentum=0.9), MOMENTUMS),
    (lambda: book.Optimizer_Adagrad(decay=1e-2), lambda: cr.Adagrad(decay=1e-2), CACHES),
    (
        lambda: book.Optimizer_RMSprop(0.02, decay=1e-3, rho=0.99),
        lambda: cr.RMSprop(0.02, decay=1e-3, rho=0.99),
        CACHES,
    ),
    (
        lambda: book.Optimizer_Adam(0.05, decay=5e-4),
        lambda: cr.Adam(0.05, decay=5e-4),
        ["weight_momentums", "weight_cache", "bias_momentums", "bias_cache"],
    ),
]


@pytest.mark.parametrize("mine, reference, state", CORRECT, ids=["sgd", "sgd-momentum", "adagrad", "rmsprop", "adam"])
def test_the_books_optimizers_agree_with_chainrules_in_every_array(mine, reference, state):
    result = cr.check_optimizer(mine(), reference(), steps=6)
    assert result.passed and result.step is None, str(result)
    assert sorted(result.verdicts) == sorted(ARRAYS + state)


SLIPS = [
    (
        "adam-correction-ahead",
        lambda: book.AdamCorrectedOneStepAhead(0.05),
        lambda: cr.Adam(0.05),
        "weights",
        "one step ahead: use 1 - beta ** (iterations + 1)",
    ),
    (
        "adam-epsilon-inside",
        lambda: book.AdamWithEpsilonInsideTheRoot(0.05, epsilon=1e-2),
        lambda: cr.Adam(0.05, epsilon=1e-2),
        "weights",
        "epsilon goes outside the square root",
    ),
    (
        "sgd-momentum-sign",
        lambda: book.SGDWithMomentumSignFlipped(1.0, momentum=0.9),
        lambda: cr.SGD(1.0, momentum=0.9),
        "weights",
        "momentum's update subtracts the gradient",
    ),
    (
        "sgd-decay-ahead",
        lambda: book.SGDDecayingWithTheNextIteration(1.0, decay=0.1),
        lambda: cr.SGD(1.0, decay=0.1),
        "current_learning_rate",
        "one step ahead",
    ),
]


@pytest.mark.parametrize("mine, reference, array, hint", [s[1:] for s in SLIPS], ids=[s[0] for s in SLIPS])
def test_a_slipped_optimizer_is_named_at_its_first_step_with_a_hint(mine, reference, array, hint):
    result = cr.check_optimizer(mine(), reference(), steps=6)
    assert not result.passed and result.step == 1, str(result)
    failing = [name for name, verdict in result.verdicts.items() if not verdict.error < result.tolerance]
    assert failing[0] == array
    assert hint in result.failures()[0]
    assert "first differ at step 1" in str(result)


def test_chainrules_optimizers_update_a_book_style_layer():
    layer = book.Layer_Dense(4, 3)
    layer.forward(np.ones((2, 4)))
    layer.backward(np.ones((2, 3)))
    weights = layer.weights.copy()
    optimizer = cr.Adam(learning_rate=0.1)
    optimizer.pre_update_params()
    optimizer.update_params(layer)
    optimizer.post_update_params()
    # Adam's first step moves every weight by the learning rate, against the sign of its gradient
    np.testing.assert_allclose(layer.weights, weights - 0.1 * np.sign(layer.dweights), rtol=1e-6)


def test_an_object_without_the_books_methods_is_refused():
    with pytest.raises(TypeError, match="has no pre_update_params method"):
        cr.check_optimizer(object(), cr.SGD())
