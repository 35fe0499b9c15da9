"""Losses: values computed from their definitions, clipping, regularisation, label forms."""

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr

F64 = np.float64
PROBS = np.array([[0.7, 0.1, 0.2], [0.1, 0.5, 0.4], [0.02, 0.9, 0.08]])


def test_categorical_crossentropy_is_minus_log_of_the_true_class_probability():
    expected = [-math.log(0.7), -math.log(0.5), -math.log(0.9)]
    loss = cr.CategoricalCrossentropy(dtype=F64)
    assert_allclose(loss.forward(PROBS, [0, 1, 1]), expected, rtol=1e-14)
    assert_allclose(loss.forward(PROBS, np.eye(3)[[0, 1, 1]]), expected, rtol=1e-14)
    assert loss.calculate(PROBS, [0, 1, 1]) == pytest.approx(sum(expected) / 3, rel=1e-14)


def test_log_losses_clip_certain_predictions():
    loss = cr.CategoricalCrossentropy(dtype=F64)
    assert loss.forward([[0.0, 1.0]], [0]) == pytest.approx(-math.log(1e-7))
    assert loss.forward([[0.0, 1.0]], [1]) == pytest.approx(-math.log(1 - 1e-7))
    assert np.isfinite(loss.backward([[0.0, 1.0]], [0])).all()
    binary = cr.BinaryCrossentropy(dtype=F64)
    assert binary.forward([[0.0], [1.0]], [[1], [0]]) == pytest.approx([-math.log(1e-7)] * 2)
    assert np.isfinite(binary.backward([[0.0], [1.0]], [[1], [0]])).all()


def test_binary_crossentropy_averages_over_outputs():
    y_pred, y_true = np.array([[0.8, 0.3]]), np.array([[1, 0]])
    expected = (-math.log(0.8) - math.log(0.7)) / 2
    assert_allclose(cr.BinaryCrossentropy(dtype=F64).forward(y_pred, y_true), [expected], rtol=1e-14)


def test_regression_losses():
    y_pred, y_true = np.array([[1.0, 2.0], [0.0, -1.0]]), np.array([[0.0, 4.0], [0.0, 0.0]])
    assert_allclose(cr.MeanSquaredError(dtype=F64).forward(y_pred, y_true), [2.5, 0.5])
    assert_allclose(cr.MeanAbsoluteError(dtype=F64).forward(y_pred, y_true), [1.5, 0.5])
    assert_allclose(cr.MeanSquaredError(dtype=F64).backward(y_pred, y_true), [[0.5, -1], [0, -0.5]])
    assert_allclose(cr.MeanAbsoluteError(dtype=F64).backward(y_pred, y_true), [[0.25, -0.25], [0, -0.25]])


def test_fused_loss_value_and_gradient():
    logits = np.log(PROBS)  # softmax(log p) = p, since each row sums to 1
    fused = cr.SoftmaxCategoricalCrossentropy(dtype=F64)
    assert fused.forward(logits, [0, 1, 1]) == pytest.approx((-math.log(0.7) - math.log(0.5) - math.log(0.9)) / 3)
    assert_allclose(fused.output, PROBS, rtol=1e-14)
    expected = (PROBS - np.eye(3)[[0, 1, 1]]) / 3
    assert_allclose(fused.backward(fused.output, [0, 1, 1]), expected, atol=1e-15)


def test_fused_sigmoid_crossentropy_gradient_is_the_derivative_of_its_mean_loss():
    """(s - y) / (n_outputs * n_samples), checked against central differences of the mean
    binary cross-entropy of the sigmoid, written here in plain NumPy."""
    z = np.array([[0.3, -1.2], [2.0, 0.1], [-0.5, 4.0]])
    y = np.array([[1.0, 0.0], [0.0, 0.0], [1.0, 1.0]])

    def mean_loss(scores):
        s = 1 / (1 + np.exp(-scores))
        return -np.mean(y * np.log(s) + (1 - y) * np.log(1 - s))

    fused = cr.SigmoidBinaryCrossentropy(dtype=F64)
    assert fused.forward(z, y) == pytest.approx(mean_loss(z), rel=1e-12)
    numerical = np.zeros_like(z)
    for index in np.ndindex(z.shape):
        step = np.zeros_like(z)
        step[index] = 1e-6
        numerical[index] = (mean_loss(z + step) - mean_loss(z - step)) / 2e-6
    assert_allclose(fused.backward(fused.output, y), numerical, rtol=1e-7, atol=1e-10)


def test_fused_sigmoid_gradient_stays_exact_where_the_sigmoid_saturates():
    fused = cr.SigmoidBinaryCrossentropy(dtype=F64)
    fused.forward([[40.0]], [[0.0]])  # certain and wrong: the gradient is s - y = 1 (divided by n = 1)
    assert fused.backward(fused.output, [[0.0]])[0, 0] == pytest.approx(1.0)


def test_poisson_deviance_is_half_the_deviance_and_refuses_negative_counts():
    y_pred, y_true = np.array([[2.0, 0.5]]), np.array([[3.0, 0.0]])
    expected = ((3 * math.log(3 / 2) - 3 + 2) + (0 - 0 + 0.5)) / 2
    assert_allclose(cr.PoissonDeviance(dtype=F64).forward(y_pred, y_true), [expected], rtol=1e-14)
    with pytest.raises(ValueError, match="needs targets >= 0"):
        cr.PoissonDeviance().forward([[1.0]], [[-1.0]])


def test_the_clip_of_a_log_loss_can_be_chosen():
    loss = cr.CategoricalCrossentropy(dtype=F64, clip=1e-12)
    assert loss.forward([[0.0, 1.0]], [0]) == pytest.approx(-math.log(1e-12))
    assert loss.get_config() == {"dtype": "float64", "clip": 1e-12}
    assert cr.BinaryCrossentropy(clip=1e-3).forward([[1.0]], [[0.0]]) == pytest.approx([-math.log(1e-3)])
    with pytest.raises(ValueError, match="clip must be a finite number >= 0 and below 0.5"):
        cr.BinaryCrossentropy(clip=0.5)


def test_regularization_loss_sums_l1_and_l2_of_the_given_layers():
    layer = cr.Dense(
        2,
        2,
        weight_regularizer_l1=0.1,
        weight_regularizer_l2=0.01,
        bias_regularizer_l1=0.5,
        bias_regularizer_l2=0.2,
        dtype=F64,
    )
    layer.weights = [[1.0, -2.0], [3.0, 0.0]]
    layer.biases = [[-1.0, 1.0]]
    expected = 0.1 * 6 + 0.01 * 14 + 0.5 * 2 + 0.2 * 2
    assert cr.CategoricalCrossentropy().regularization_loss([layer, cr.ReLU()]) == pytest.approx(expected)
    assert cr.SoftmaxCategoricalCrossentropy().regularization_loss([layer]) == pytest.approx(expected)


def test_float_class_labels_with_whole_values_are_accepted():
    loss = cr.CategoricalCrossentropy(dtype=F64)
    assert_allclose(loss.forward(PROBS, [0.0, 1.0, 1.0]), loss.forward(PROBS, [0, 1, 1]))


@pytest.mark.parametrize(
    ("y_true", "message"),
    [
        ([0, 1], r"expected \(3,\)"),
        ([0, 1, 3], "class index 3 is out of range for 3 classes"),
        ([0, -1, 1], "class index -1 is out of range"),
        ([0.5, 1, 1], "whole numbers"),
        ([0, np.nan, 1], "NaN"),
        (np.eye(2)[[0, 1, 1]], r"one-hot y_true must have shape \(3, 3\)"),
    ],
)
def test_categorical_label_errors_name_the_problem(y_true, message):
    with pytest.raises(ValueError, match=message) as raised:
        cr.CategoricalCrossentropy().forward(PROBS, y_true)
    assert "CategoricalCrossentropy.forward" in str(raised.value)


def test_text_labels_are_a_type_error():
    with pytest.raises(TypeError, match="CategoricalCrossentropy.backward: y_true must be numeric"):
        cr.CategoricalCrossentropy().backward(PROBS, ["a", "b", "c"])


def test_binary_targets_of_shape_n_get_the_books_column_fix():
    with pytest.raises(ValueError, match=r"y_true.reshape\(-1, 1\)"):
        cr.BinaryCrossentropy().forward(np.full((4, 1), 0.5), np.array([0, 1, 0, 1]))


def test_a_column_of_class_labels_is_named_as_such_not_as_one_hot():
    with pytest.raises(ValueError, match=r"y_true is a column of shape \(4, 1\): class labels are a 1-D array"):
        cr.CategoricalCrossentropy().forward(np.full((4, 3), 1 / 3), np.array([[0], [1], [2], [1]]))


def torch_losses(torch):
    """(chainrule loss, PyTorch's per-sample loss of (predictions, targets), targets) per loss; the
    per-sample loss is the mean over each sample's outputs, as chainrule's forward gives it."""
    functional = torch.nn.functional
    rng = np.random.default_rng(11)
    labels = rng.integers(0, 4, 6)
    binary = rng.integers(0, 2, (6, 3)).astype(F64)
    real = rng.standard_normal((6, 3))
    counts = rng.poisson(2.0, (6, 3)).astype(F64)
    return {
        "categorical": (
            cr.CategoricalCrossentropy(dtype=F64),
            lambda p, y: functional.nll_loss(torch.log(p), y, reduction="none"),
            labels,
        ),
        "binary": (
            cr.BinaryCrossentropy(dtype=F64),
            lambda p, y: functional.binary_cross_entropy(p, y, reduction="none").mean(dim=1),
            binary,
        ),
        "squared": (
            cr.MeanSquaredError(dtype=F64),
            lambda p, y: functional.mse_loss(p, y, reduction="none").mean(dim=1),
            real,
        ),
        "absolute": (
            cr.MeanAbsoluteError(dtype=F64),
            lambda p, y: functional.l1_loss(p, y, reduction="none").mean(dim=1),
            real,
        ),
        # PyTorch's Poisson loss p - y log p leaves out y log y - y, which does not depend on p.
        "poisson": (
            cr.PoissonDeviance(dtype=F64),
            lambda p, y: (
                functional.poisson_nll_loss(p, y, log_input=False, full=False, eps=0.0, reduction="none")
                + torch.special.xlogy(y, y)
                - y
            ).mean(dim=1),
            counts,
        ),
    }


@pytest.mark.parametrize("name", ["categorical", "binary", "squared", "absolute", "poisson"])
def test_each_loss_and_its_gradient_equal_pytorch_autograd_in_float64(name):
    torch = pytest.importorskip("torch")  # the independent reference
    loss, theirs, targets = torch_losses(torch)[name]
    rng = np.random.default_rng(len(name))
    if name == "categorical":
        predictions = rng.dirichlet(np.ones(4), 6)
    elif name == "squared" or name == "absolute":
        predictions = rng.standard_normal((6, 3))
    else:
        predictions = rng.uniform(0.05, 0.95, (6, 3)) * (3 if name == "poisson" else 1)
    per_sample = loss.forward(predictions, targets)
    loss.backward(predictions, targets)
    p = torch.from_numpy(predictions.copy()).requires_grad_(True)
    reference = theirs(p, torch.from_numpy(targets))
    reference.mean().backward()
    assert_allclose(per_sample, reference.detach().numpy(), rtol=1e-12, atol=1e-15)
    assert_allclose(loss.dinputs, p.grad.numpy(), rtol=1e-12, atol=1e-15)


def test_the_fused_losses_equal_pytorchs_losses_on_logits_in_float64():
    torch = pytest.importorskip("torch")  # the independent reference
    functional = torch.nn.functional
    rng = np.random.default_rng(5)
    logits, labels, binary = 4 * rng.standard_normal((8, 5)), rng.integers(0, 5, 8), rng.integers(0, 2, (8, 5))
    for fused, reference_loss, targets in [
        (cr.SoftmaxCategoricalCrossentropy(dtype=F64), functional.cross_entropy, labels),
        (cr.SigmoidBinaryCrossentropy(dtype=F64), functional.binary_cross_entropy_with_logits, binary.astype(F64)),
    ]:
        value = fused.forward(logits, targets)
        fused.backward(fused.output, targets)
        z = torch.from_numpy(logits.copy()).requires_grad_(True)
        reference = reference_loss(z, torch.from_numpy(targets))
        reference.backward()
        assert value == pytest.approx(reference.item(), rel=1e-12)
        assert_allclose(fused.dinputs, z.grad.numpy(), rtol=1e-10, atol=1e-15)
