"""Conv2D: the im2col forward and backward equal the loop over output positions and PyTorch
autograd's conv2d in float64 over strides, paddings, dilations, odd sizes and a batch of one;
central differences agree; wrong shapes get a clear error."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr
from chainrule.engine.convolution import convolve_naive, convolve_naive_backward

torch = pytest.importorskip("torch")  # the independent reference (the extra `dev` installs it)
functional = torch.nn.functional
RTOL = 1e-7

# (n, height, width, in_channels, filters, kernel, stride, padding, dilation)
CASES = [
    (1, 5, 5, 1, 1, 3, 1, "valid", 1),
    (2, 7, 8, 3, 4, 3, 1, "valid", 1),
    (2, 7, 8, 3, 4, 3, 1, "same", 1),
    (3, 9, 9, 2, 5, 3, 2, "valid", 1),
    (3, 9, 9, 2, 5, 3, 2, "same", 1),
    (2, 8, 8, 2, 3, 2, 2, "same", 1),
    (1, 6, 7, 4, 2, 1, 1, "valid", 1),
    (2, 6, 7, 4, 2, 5, 1, 2, 1),
    (2, 10, 10, 1, 3, 3, 1, 1, 2),
    (2, 11, 9, 3, 2, 3, 3, 1, 1),
    (1, 12, 12, 2, 2, 3, 2, "same", 2),
    (2, 5, 9, (3), 4, (2, 3), (1, 2), 0, (2, 1)),
    (1, 4, 4, 1, 1, 4, 1, "valid", 1),
    (4, 6, 6, 3, 8, 3, 1, "same", 1),
    (2, 13, 7, 2, 3, (3, 1), 2, 1, 1),
    (1, 9, 9, 2, 2, 2, 3, 0, 3),
    (2, 7, 7, 5, 1, 3, 2, 1, 2),
    (3, 8, 5, 1, 6, (1, 3), 1, "same", 1),
    (1, 15, 15, 2, 3, 5, 2, 2, 1),
    (2, 6, 6, 2, 2, 3, 1, 3, 1),
    (1, 3, 3, 2, 2, 3, 1, "same", 1),
    (2, 10, 6, 3, 2, 4, 3, "same", 1),
]
IDS = [f"n{c[0]}-{c[1]}x{c[2]}x{c[3]}-f{c[4]}-k{c[5]}-s{c[6]}-p{c[7]}-d{c[8]}" for c in CASES]


def build(case, seed=0):
    n, height, width, channels, filters, kernel, stride, padding, dilation = case
    rng = np.random.default_rng(seed)
    layer = cr.Conv2D(channels, filters, kernel, stride=stride, padding=padding, dilation=dilation, dtype=np.float64)
    layer.biases = rng.standard_normal((1, filters))
    inputs = rng.standard_normal((n, height, width, channels))
    return layer, inputs, rng


def torch_conv(layer, inputs, dvalues):
    """PyTorch's output and gradients (channels-first inside, channels-last outside); the padding
    is applied with F.pad, so the odd pixel of "same" goes after, as in chainrule."""
    (top, bottom), (left, right) = layer.windows.pads(*inputs.shape[1:3])
    x = torch.from_numpy(inputs.copy()).requires_grad_(True)
    weights = torch.from_numpy(layer.weights.transpose(3, 2, 0, 1).copy()).requires_grad_(True)  # (F, C, kh, kw)
    biases = torch.from_numpy(layer.biases.ravel().copy()).requires_grad_(True)
    padded = functional.pad(x.permute(0, 3, 1, 2), (left, right, top, bottom))
    output = functional.conv2d(padded, weights, biases, stride=layer.windows.stride, dilation=layer.windows.dilation)
    output = output.permute(0, 2, 3, 1)
    output.backward(torch.from_numpy(dvalues))
    return (
        output.detach().numpy(),
        x.grad.numpy(),
        weights.grad.numpy().transpose(2, 3, 1, 0),
        biases.grad.numpy().reshape(1, -1),
    )


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_conv2d_equals_pytorchs_conv2d_and_its_gradients(case):
    layer, inputs, rng = build(case)
    output = layer.forward(inputs).copy()
    dvalues = rng.standard_normal(output.shape)
    layer.backward(dvalues)
    expected = torch_conv(layer, inputs, dvalues)
    for name, ours, theirs in zip(
        ("output", "dinputs", "dweights", "dbiases"),
        (output, layer.dinputs, layer.dweights, layer.dbiases),
        expected,
        strict=True,
    ):
        assert ours.shape == theirs.shape, name
        assert_allclose(ours, theirs, rtol=RTOL, atol=1e-12, err_msg=name)


def test_conv2d_penalties_add_to_the_loss_and_the_gradients_as_pytorchs_autograd_finds():
    rng = np.random.default_rng(7)
    coefficients = {"weight_regularizer_l1": 0.01, "weight_regularizer_l2": 0.02, "bias_regularizer_l1": 0.03,
                    "bias_regularizer_l2": 0.04}  # fmt: skip
    layer = cr.Conv2D(2, 3, 3, padding=1, dtype=np.float64, **coefficients)
    layer.biases = rng.standard_normal((1, 3))
    inputs = rng.standard_normal((2, 5, 5, 2))
    dvalues = rng.standard_normal(layer.forward(inputs).shape)
    layer.backward(dvalues)
    weights = torch.from_numpy(layer.weights.copy()).requires_grad_(True)
    biases = torch.from_numpy(layer.biases.copy()).requires_grad_(True)
    penalty = (
        0.01 * weights.abs().sum() + 0.02 * (weights**2).sum() + 0.03 * biases.abs().sum() + 0.04 * (biases**2).sum()
    )
    penalty.backward()
    _, _, dweights, dbiases = torch_conv(layer, inputs, dvalues)  # the unpenalised gradients
    assert layer.regularization_penalty() == pytest.approx(penalty.item(), rel=1e-12)
    assert_allclose(layer.dweights, dweights + weights.grad.numpy(), rtol=RTOL)
    assert_allclose(layer.dbiases, dbiases + biases.grad.numpy(), rtol=RTOL)
    assert cr.gradcheck(layer, inputs).passed


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_the_im2col_convolution_equals_the_loop_over_positions(case):
    layer, inputs, rng = build(case, seed=1)
    output = layer.forward(inputs).copy()
    dvalues = rng.standard_normal(output.shape)
    layer.backward(dvalues)
    dinputs, dweights, dbiases = convolve_naive_backward(inputs, layer, dvalues)
    assert_allclose(output, convolve_naive(inputs, layer), rtol=1e-12, atol=1e-12)
    assert_allclose(layer.dinputs, dinputs, rtol=1e-12, atol=1e-12)
    assert_allclose(layer.dweights, dweights, rtol=1e-12, atol=1e-12)
    assert_allclose(layer.dbiases, dbiases, rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES[:6], ids=IDS[:6])
def test_the_first_layers_backward_sets_the_same_parameter_gradients(case):
    layer, inputs, rng = build(case, seed=3)
    dvalues = rng.standard_normal(layer.forward(inputs).shape)
    layer.backward(dvalues)
    dweights, dbiases = layer.dweights.copy(), layer.dbiases.copy()
    layer.backward_parameters(dvalues)  # what a Model runs for its first layer: no dinputs
    assert_allclose(layer.dweights, dweights, rtol=0, atol=0)
    assert_allclose(layer.dbiases, dbiases, rtol=0, atol=0)


@pytest.mark.parametrize("case", CASES[:6], ids=IDS[:6])
def test_conv2d_passes_the_numerical_gradient_check(case):
    layer, inputs, _ = build(case, seed=2)
    result = cr.gradcheck(layer, inputs)
    assert result.passed, result


def test_a_broken_conv2d_backward_fails_the_check():
    class RowsReversed(cr.Conv2D):
        """dinputs with the image's rows in reverse order."""

        def backward(self, dvalues):
            super().backward(dvalues)
            self.dinputs = self.dinputs[:, ::-1]  # the rows in the wrong order
            return self.dinputs

    layer = RowsReversed(2, 3, 3, stride=1, padding="same", dtype=np.float64, seed=0)
    result = cr.gradcheck(layer, np.random.default_rng(0).standard_normal((2, 5, 5, 2)))
    assert not result.passed


def test_same_padding_keeps_the_size_and_stride_divides_it_rounding_up():
    layer = cr.Conv2D(1, 2, 3, padding="same")
    assert layer.output_shape((28, 28, 1)) == (28, 28, 2)
    assert cr.Conv2D(1, 2, 3, stride=2, padding="same").output_shape((7, 7, 1)) == (4, 4, 2)
    assert cr.Conv2D(1, 2, 5).output_shape((28, 28, 1)) == (24, 24, 2)


@pytest.mark.parametrize(
    "call, message",
    [
        (
            lambda: cr.Conv2D(1, 2, 3).forward(np.ones((4, 9))),
            r"inputs must be a 4-D array \(n_samples, height, width, channels\)",
        ),
        (lambda: cr.Conv2D(3, 2, 3).forward(np.ones((1, 5, 5, 1))), "inputs must have 3 channels"),
        (lambda: cr.Conv2D(1, 2, 5).forward(np.ones((1, 3, 3, 1))), "too small"),
        (lambda: cr.Conv2D(1, 2, 3, padding="full"), "padding"),
        (lambda: cr.Conv2D(1, 2, 0), "kernel_size must be a positive integer"),
        (lambda: cr.Conv2D(1, 2, 3, stride=(1, 2, 3)), "stride must be a whole number or a pair"),
    ],
    ids=["2-D", "channels", "too-small", "padding", "kernel", "stride"],
)
def test_wrong_shapes_and_settings_get_a_clear_error(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_a_seeded_model_fixes_unseeded_convolutions_and_keeps_assigned_weights():
    def first_weights(dtype, assign=None):
        layer = cr.Conv2D(1, 2, 3)
        if assign is not None:
            layer.weights = assign
        return cr.Model(seed=4, dtype=dtype).add(layer).layers[0].weights

    assert_allclose(first_weights(np.float64), first_weights(np.float64))
    assert_allclose(first_weights(np.float32), first_weights(np.float32))
    chosen = np.arange(18.0).reshape(3, 3, 1, 2)
    assert_allclose(first_weights(np.float64, assign=chosen), chosen)
    with pytest.raises(
        ValueError, match=r"Conv2D.weights: weights must be a 4-D array \(3, 3, 1, 2\), got shape \(3, 3, 2\)"
    ):
        cr.Conv2D(1, 2, 3).weights = np.ones((3, 3, 2))
