"""Each built-in component's static form (`forward_into`/`backward_into`, `losses_into`) computes
what its textbook methods compute, into the buffers a static training step gives it.

Where the arithmetic is the same operation for operation the bits are the same; Dense sums its
bias gradient as a product with ones (BLAS) instead of `np.sum`, so that one is within rounding.
"""

from dataclasses import dataclass, field

import numpy as np
import pytest

import chainrule as cr
from chainrule.engine.losses import BinaryCrossentropy, MeanAbsoluteError, MeanSquaredError, SigmoidBinaryCrossentropy
from chainrule.engine.metrics import ELEMENTWISE_METRICS, METRICS


@dataclass
class Buffers:
    """The `StepBuffers` a static step gives a layer, for a batch of `rows` rows."""

    rows: int
    input_width: int
    output_width: int
    training: bool = True
    first: bool = False
    output: np.ndarray = field(init=False)
    dinputs: np.ndarray = field(init=False)

    def __post_init__(self):
        self.output = np.full((self.rows, self.output_width), np.nan)
        self.dinputs = np.full((self.rows, self.input_width), np.nan)

    def matmul(self, a, b, out):
        np.matmul(a, b, out=out)

    def column_sums(self, values, out):
        np.matmul(np.ones((1, len(values))), values, out=out)

    def scratch(self, name, shape, *, dtype=None, order="C", fill=None):
        scratches = self.__dict__.setdefault("scratches", {})
        if name not in scratches:
            scratches[name] = np.empty(shape, dtype or np.float64, order=order)
            if fill is not None:
                scratches[name].fill(fill)
        return scratches[name]


LAYERS = {
    "relu": lambda: cr.ReLU(),
    "leaky-relu": lambda: cr.LeakyReLU(0.1),
    "sigmoid": lambda: cr.Sigmoid(),
    "tanh": lambda: cr.Tanh(),
    "exponential": lambda: cr.Exponential(),
    "linear": lambda: cr.Linear(),
    "dropout": lambda: cr.Dropout(0.3, seed=5, dtype=np.float64),
}


def batch(rows=7, columns=5, seed=0):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((rows, columns)), rng.standard_normal((rows, columns))


@pytest.mark.parametrize("name", LAYERS)
def test_each_activations_static_form_gives_its_textbook_passes_bit_for_bit(name):
    inputs, dvalues = batch()
    inputs[0, 0] = 0.0  # the kink of ReLU and LeakyReLU: the textbook's gradient there is 0 (x > 0 only)
    textbook, static = LAYERS[name](), LAYERS[name]()
    expected_output = textbook.forward(inputs, training=True).copy()
    expected_dinputs = textbook.backward(dvalues).copy()
    buffers = Buffers(len(inputs), inputs.shape[1], inputs.shape[1])
    static.forward_into(inputs, buffers)
    static.backward_into(dvalues, buffers)
    np.testing.assert_array_equal(buffers.output, expected_output)
    np.testing.assert_array_equal(buffers.dinputs, expected_dinputs)


def test_dense_static_form_gives_its_textbook_passes():
    inputs, _ = batch(columns=4)
    dvalues = np.random.default_rng(1).standard_normal((7, 3))
    textbook, static = (cr.Dense(4, 3, dtype=np.float64, seed=2) for _ in range(2))
    expected_output = textbook.forward(inputs).copy()
    textbook.backward(dvalues)
    buffers = Buffers(7, 4, 3)
    static.forward_into(inputs, buffers)
    static.backward_into(dvalues, buffers)
    np.testing.assert_array_equal(buffers.output, expected_output)  # the same product, then the same sum
    np.testing.assert_array_equal(static.dweights, textbook.dweights)
    np.testing.assert_allclose(static.dbiases, textbook.dbiases, rtol=1e-14)  # a product with ones, not np.sum
    np.testing.assert_array_equal(buffers.dinputs, textbook.dinputs)
    first = Buffers(7, 4, 3, first=True)  # nothing reads a first layer's dinputs: not computed
    static.forward_into(inputs, first)
    static.backward_into(dvalues, first)
    assert np.isnan(first.dinputs).all()


def regression_targets(rows=7, columns=3):
    rng = np.random.default_rng(3)
    predictions = rng.uniform(0.01, 0.99, (rows, columns))
    targets = (rng.random((rows, columns)) < 0.5).astype(np.float64)
    return predictions, targets


@pytest.mark.parametrize("loss", [MeanSquaredError, MeanAbsoluteError, BinaryCrossentropy])
def test_each_losss_static_form_gives_its_textbook_losses_and_gradient_bit_for_bit(loss):
    predictions, targets = regression_targets()
    textbook, static = loss(), loss()
    out, scratch = np.empty_like(predictions), (np.empty_like(predictions), np.empty_like(predictions))
    static.losses_into(predictions, targets, out, scratch)
    np.testing.assert_array_equal(out.mean(axis=1), textbook.forward(predictions, targets))
    static.backward_into(predictions, targets, out, scratch)
    np.testing.assert_array_equal(out, textbook.backward(predictions, targets))


def test_the_fused_sigmoid_crossentropys_static_gradient_is_its_textbook_one():
    probabilities, targets = regression_targets()
    out = np.empty_like(probabilities)
    SigmoidBinaryCrossentropy().backward_into(probabilities, targets, out, None)
    np.testing.assert_array_equal(out, SigmoidBinaryCrossentropy().backward(probabilities, targets))


@pytest.mark.parametrize("name", ["binary_accuracy", "mae"])
def test_elementwise_metrics_static_forms_average_to_the_metric(name):
    predictions, targets = regression_targets()
    predictions = (predictions > 0.5).astype(np.float64) if name == "binary_accuracy" else predictions
    out = np.empty_like(predictions)
    ELEMENTWISE_METRICS[METRICS[name]](predictions, targets, out)
    assert out.mean() == pytest.approx(METRICS[name](predictions, targets), rel=1e-15)


def test_a_learners_subclass_that_rewrites_forward_loses_the_parents_static_form():
    class Halved(cr.Tanh):
        def forward(self, inputs, training=False):
            self.output = np.tanh(inputs) / 2
            return self.output

    class Squared(MeanSquaredError):
        def backward(self, dvalues, y_true):
            self.dinputs = dvalues - y_true
            return self.dinputs

    assert Halved.forward_into is None and Halved.backward_into is None
    assert Squared.losses_into is None and Squared.backward_into is None
    assert cr.Tanh.forward_into is not None
