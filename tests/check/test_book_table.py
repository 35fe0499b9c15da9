"""The checker on a table of the book's classes: every correct one passes, every slip fails, naming the
array that is wrong and the hint that fits (or none), as plain NumPy and again after `nnfs.init()`.

Each row is (id, how to check it, the array the failure names or None for a pass, a hint's words
or None where no hint must appear). A slipped class differs from its correct parent in one line,
marked SLIP in `book_classes`.
"""

from collections.abc import Callable
from dataclasses import dataclass

import book_classes as book
import numpy as np
import pytest

import chainrule as cr

rng = np.random.default_rng(7)
INPUTS = rng.standard_normal((5, 4))  # 5 samples: no count of samples equals a count of outputs
SQUARE = INPUTS[:, :4]
LABELS = np.array([0, 1, 2, 3, 1])
PROBABILITIES = np.exp(INPUTS) / np.exp(INPUTS).sum(axis=1, keepdims=True)
SIGMOIDS = 1 / (1 + np.exp(-INPUTS[:, :3]))
BINARY = (rng.random((5, 3)) < 0.5).astype(float)
TARGETS = rng.standard_normal((5, 3))
ZERO_ROW = np.vstack([INPUTS[:3], np.zeros((1, 4)), INPUTS[3:]])


@dataclass
class Row:
    id: str
    check: Callable[[], cr.GradcheckResult]
    fails: str | None = None  # the array named by the (first) failure
    hint: str | None = None  # words of the hint; None: no hint at all


def layer(make: Callable[[], object], inputs=INPUTS, **options) -> Callable[[], cr.GradcheckResult]:
    return lambda: cr.gradcheck(make(), inputs, **options)


def loss(make: Callable[[], object], inputs, y_true) -> Callable[[], cr.GradcheckResult]:
    return lambda: cr.gradcheck(make(), inputs, y_true)


def network(*makes: Callable[[], object], inputs=INPUTS, y_true=LABELS) -> Callable[[], cr.GradcheckResult]:
    return lambda: cr.gradcheck([make() for make in makes], inputs, y_true)


def regularized(cls, **penalties):
    return lambda: cls(4, 3, **penalties)


def dropout(cls):
    return lambda: cls(0.3)


CORRECT = [
    Row("dense", layer(lambda: book.Layer_Dense(4, 3))),
    Row("dense-initialised-as-the-book-does", layer(lambda: book.Layer_Dense_With_Randn(4, 3))),
    Row("dense-square", layer(lambda: book.Layer_Dense(4, 4), SQUARE)),
    Row("dense-l1-l2", layer(regularized(book.Layer_Dense_Regularized, l1=5e-4, l2=5e-4, bias_l1=5e-4, bias_l2=5e-4))),
    Row("dense-bias-l1-at-zero", layer(regularized(book.Layer_Dense_Regularized, bias_l1=0.1))),
    Row("dense-weight-l1-at-zero", layer(lambda: _with_zero_weight(book.Layer_Dense_Regularized(4, 3, l1=0.1)))),
    Row("relu", layer(book.Activation_ReLU)),
    Row("relu-zero-row", layer(book.Activation_ReLU, ZERO_ROW)),
    Row("relu-under-another-name", layer(book.Rectifier, ZERO_ROW)),
    Row("softmax-jacobian-loop", layer(book.Activation_Softmax)),
    Row("softmax-large-inputs", layer(book.Activation_Softmax, 1000 * INPUTS)),
    Row("dropout-rate-0-training", layer(lambda: book.Layer_Dropout(0.0), training=True)),
    Row("sigmoid", layer(book.Activation_Sigmoid)),
    Row("tanh", layer(book.Activation_Tanh)),
    Row("linear", layer(book.Activation_Linear)),
    Row("dropout-training", layer(dropout(book.Layer_Dropout), training=True)),
    Row("dropout-own-generator", layer(dropout(book.DropoutWithItsOwnGenerator), training=True)),
    Row("crossentropy-labels", loss(book.Loss_CategoricalCrossentropy, PROBABILITIES, LABELS)),
    Row("crossentropy-one-hot", loss(book.Loss_CategoricalCrossentropy, PROBABILITIES, np.eye(4)[LABELS])),
    Row("softmax-crossentropy-fused", loss(book.Activation_Softmax_Loss_CategoricalCrossentropy, INPUTS, LABELS)),
    Row("binary-crossentropy", loss(book.Loss_BinaryCrossentropy, SIGMOIDS, BINARY)),
    Row("mean-squared-error", loss(book.Loss_MeanSquaredError, INPUTS[:, :3], TARGETS)),
    Row("mean-absolute-error", loss(book.Loss_MeanAbsoluteError, INPUTS[:, :3], TARGETS)),
    Row(
        "network-dense-relu-dense-fused",
        network(
            lambda: book.Layer_Dense(4, 5),
            book.Activation_ReLU,
            lambda: book.Layer_Dense(5, 4, seed=2),
            book.Activation_Softmax_Loss_CategoricalCrossentropy,
        ),
    ),
    Row(
        "network-zero-row-softmax-then-loss",
        network(
            lambda: book.Layer_Dense(4, 5),
            book.Rectifier,
            lambda: book.Layer_Dense(5, 4, seed=2),
            book.Activation_Softmax,
            book.Loss_CategoricalCrossentropy,
            inputs=ZERO_ROW,
            y_true=np.array([0, 1, 2, 3, 1, 0]),
        ),
    ),
]


def _with_zero_weight(layer):
    layer.weights[0, 0] = 0.0
    layer.weights[2, 1] = 0.0
    return layer


SLIPS = [
    Row("dbiases-axis-1", layer(lambda: book.DenseSummingOverNeurons(4, 3)), "biases", "not axis=1"),
    Row("dbiases-no-keepdims", layer(lambda: book.DenseWithoutKeepdims(4, 3)), "biases", "keepdims=True"),
    Row("dbiases-mean", layer(lambda: book.DenseAveragingDbiases(4, 3)), "biases", "5 times too small: sum over"),
    Row("dinputs-no-transpose", layer(lambda: book.DenseWithoutTranspose(4, 4), SQUARE), "inputs", "misses a .T"),
    Row("dweights-transposed", layer(lambda: book.DenseTransposingDvalues(4, 3)), "weights", "is transposed"),
    Row(
        "dweights-transposed-square",
        layer(lambda: book.DenseTransposingDvalues(4, 4), SQUARE),
        "weights",
        "the .T belongs on the inputs",
    ),
    Row("dweighhts-typo", layer(lambda: book.DenseWithTypo(4, 3)), "weights", "it set 'dweighhts': a typo?"),
    Row("dweight-typo", layer(lambda: book.DenseWithAMisspeltDweights(4, 3)), "weights", "it set 'dweight': a typo?"),
    Row("dbiases-forgotten", layer(lambda: book.DenseForgettingDbiases(4, 3)), "biases", None),
    Row("dinputs-nan", layer(lambda: book.DenseWithNaNDinputs(4, 3)), "inputs", None),
    Row("dweights-nan", layer(lambda: book.DenseWithNaNDweights(4, 3)), "weights", None),
    Row("dinputs-sign", layer(lambda: book.DenseWithFlippedDinputs(4, 3)), "inputs", "the wrong sign"),
    Row("l2-without-2", layer(regularized(book.DenseWithL2WithoutTheTwo, l2=0.5)), "weights", None),
    Row("l1-sign", layer(regularized(book.DenseWithL1SignsFlipped, l1=0.5)), "weights", None),
    Row("relu-mask-from-dvalues", layer(book.ReLUMaskFromDvalues), "inputs", "mask comes from the forward inputs"),
    Row("relu-without-copy", layer(book.ReLUWithoutCopy), "backward", "dvalues.copy()"),
    Row("relu-from-outputs", layer(book.ReLUFromOutputs), "inputs", "starts from dvalues"),
    Row("relu-writing-into-inputs", layer(book.ReLUZeroingInputsInPlace), "forward", "instead of assigning into"),
    Row("relu-mask-inverted", layer(book.ReLUWithTheMaskInverted), "inputs", None),
    Row("softmax-diagonal", layer(book.SoftmaxWithDiagonalDerivative), "inputs", "not s * (1 - s)"),
    Row("softmax-overflow", layer(book.SoftmaxWithoutTheMaximum, 1000 * INPUTS), "output", "subtract each row's max"),
    Row("softmax-jacobian-reversed", layer(book.SoftmaxWithTheJacobianReversed), "inputs", "the wrong sign"),
    Row("softmax-no-jacobian", layer(book.SoftmaxPassingDvaluesThrough), "inputs", "dinputs is dvalues unchanged"),
    Row("sigmoid-without-one-minus", layer(book.SigmoidWithoutOneMinus), "inputs", "dvalues * output misses"),
    Row("sigmoid-without-output", layer(book.SigmoidWithoutTheOutput), "inputs", "sigmoid's derivative is output"),
    Row("tanh-without-square", layer(book.TanhWithoutTheSquare), "inputs", "tanh's"),
    Row(
        "crossentropy-not-divided",
        loss(book.CrossentropyNotDividedBySamples, PROBABILITIES, LABELS),
        "inputs",
        "5 times too large: divide by the number of samples",
    ),
    Row("crossentropy-divided-twice", loss(book.CrossentropyDividedTwice, PROBABILITIES, LABELS), "inputs", "twice"),
    Row("crossentropy-sign", loss(book.CrossentropyWithoutTheMinus, PROBABILITIES, LABELS), "inputs", "wrong sign"),
    Row(
        "crossentropy-log-0",
        loss(book.CrossentropyWithoutClipping, np.eye(5, 4)[::-1].copy(), LABELS),
        "loss",
        "np.log(0): clip the predictions",
    ),
    Row(
        "fused-not-divided",
        loss(book.FusedNotDividedBySamples, INPUTS, LABELS),
        "inputs",
        "5 times too large: divide by the number of samples",
    ),
    Row("fused-without-copy", loss(book.FusedWithoutCopy, INPUTS, LABELS), "backward", "dvalues.copy()"),
    Row("fused-subtracting-everywhere", loss(book.FusedSubtractingEverywhere, INPUTS, LABELS), "inputs", None),
    Row(
        "binary-crossentropy-no-outputs",
        loss(book.BinaryCrossentropyWithoutOutputs, SIGMOIDS, BINARY),
        "inputs",
        "divide by the number of outputs (3) too",
    ),
    Row(
        "binary-crossentropy-sign", loss(book.BinaryCrossentropyWithTheSignFlipped, SIGMOIDS, BINARY), "inputs", "sign"
    ),
    Row(
        "mse-no-outputs",
        loss(book.MeanSquaredErrorWithoutOutputs, INPUTS[:, :3], TARGETS),
        "inputs",
        "divide by the number of outputs (3) too",
    ),
    Row(
        "mse-no-outputs-square-batch",
        loss(book.MeanSquaredErrorWithoutOutputs, INPUTS[:3, :3], TARGETS[:3]),
        "inputs",
        "or by the number of samples, which is 3 as well",
    ),
    Row("mse-without-2", loss(book.MeanSquaredErrorWithoutTheTwo, INPUTS[:, :3], TARGETS), "inputs", "2 * x"),
    Row("mse-sign", loss(book.MeanSquaredErrorWithTheSignFlipped, INPUTS[:, :3], TARGETS), "inputs", "wrong sign"),
    Row("mae-sign", loss(book.MeanAbsoluteErrorWithTheSignFlipped, INPUTS[:, :3], TARGETS), "inputs", "wrong sign"),
    Row("dropout-redrawn-in-backward", layer(dropout(book.DropoutRedrawingInBackward), training=True), "inputs", None),
    Row("dropout-not-scaled", layer(dropout(book.DropoutNotScaled), training=True), "output", "divide the mask by"),
    Row(
        "dropout-no-mask-in-backward",
        layer(dropout(book.DropoutWithoutTheMaskInBackward), training=True),
        "inputs",
        "the same binary_mask",
    ),
    Row(
        "dropout-fresh-generator",
        layer(dropout(book.DropoutWithAFreshGenerator), training=True),
        "output",
        "a new generator without a seed",
    ),
    Row(
        "network-relu-slip-named",
        network(
            lambda: book.Layer_Dense(4, 5),
            book.ReLUMaskFromDvalues,
            lambda: book.Layer_Dense(5, 4, seed=2),
            book.Activation_Softmax_Loss_CategoricalCrossentropy,
        ),
        "layer1.ReLUMaskFromDvalues.inputs",
        "mask comes from the forward inputs",
    ),
    Row(
        "network-loss-slip-named",
        network(
            lambda: book.Layer_Dense(4, 5),
            book.Activation_ReLU,
            lambda: book.Layer_Dense(5, 4, seed=2),
            book.FusedNotDividedBySamples,
        ),
        "loss.FusedNotDividedBySamples.inputs",
        "times too large",
    ),
]


def assert_verdict(row: Row) -> None:
    result = row.check()
    if row.fails is None:
        assert result.passed, str(result)
        return
    assert not result.passed, str(result)
    failing = [name for name, verdict in result.verdicts.items() if not verdict.error < result.tolerance]
    assert failing[0] == row.fails, str(result)
    failure = result.failures()[0]
    if row.hint is None:
        assert "hint:" not in failure, failure
    else:
        assert row.hint in failure, failure


def test_the_table_is_as_large_as_promised():
    assert len(CORRECT) >= 20 and len(SLIPS) >= 40


@pytest.mark.parametrize("row", CORRECT + SLIPS, ids=lambda row: row.id)
def test_the_book_classes(row):
    assert_verdict(row)


@pytest.fixture
def after_nnfs_init():
    """`nnfs.init()` as the book's first line runs it; NumPy's functions are put back afterwards."""
    nnfs = pytest.importorskip("nnfs")
    saved = [(np, "dot", np.dot), (np, "zeros", np.zeros), (np, "eye", np.eye), (np.random, "randn", np.random.randn)]
    state = np.random.get_state()
    nnfs.init()
    yield
    for owner, name, function in saved:
        setattr(owner, name, function)
    np.random.set_state(state)


@pytest.mark.parametrize("row", CORRECT + SLIPS, ids=lambda row: row.id)
def test_the_book_classes_after_nnfs_init(row, after_nnfs_init):
    assert np.dot(np.ones((1, 1)), np.ones((1, 1))).dtype == np.float32  # nnfs's dot is in place
    assert_verdict(row)
