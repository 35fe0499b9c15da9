"""Explanations of a convolution and a batch normalisation: each written-out sum equals the engine's
value, an independent reference's (PyTorch autograd, float64) and a central difference."""

import subprocess
import sys

import numpy as np
import pytest
from numpy.testing import assert_allclose

from chainrule import explain

torch = pytest.importorskip("torch")  # the independent reference (the extra `dev` installs it)

IMAGE = np.array(
    [[8.0, 6, 5, 2, 3], [0, 0, 0, 1, 8], [6, 9, 5, 6, 9], [7, 6, 5, 5, 9], [2, 8, 6, 0, 3]]
)  # from the default seed, so the printed walkthrough and these agree
EDGE = np.array([[1.0, 0, -1], [1, 0, -1], [1, 0, -1]])


def torch_convolution(image, kernel, bias, dvalues, stride, padding):
    """output, dweights, dinputs of one channel and one filter through torch.nn.functional.conv2d."""
    x = torch.tensor(image[None, None], requires_grad=True)
    w = torch.tensor(kernel[None, None], requires_grad=True)
    out = torch.nn.functional.conv2d(x, w, torch.tensor([bias], dtype=torch.float64), stride=stride, padding=padding)
    out.backward(torch.tensor(dvalues[None, None]))
    return out.detach().numpy()[0, 0], w.grad.numpy()[0, 0], x.grad.numpy()[0, 0]


@pytest.mark.parametrize(
    ("stride", "padding", "position", "tap", "pixel"),
    [
        (1, 0, (0, 0), (0, 0), (2, 2)),
        (2, 1, (1, 2), (2, 1), (0, 4)),
        (1, 2, (6, 6), (1, 2), (4, 0)),
        (3, 1, (1, 0), (2, 2), (3, 3)),
    ],
)
def test_each_written_out_sum_of_a_convolution_equals_pytorch(stride, padding, position, tap, pixel):
    dvalues = np.random.default_rng(stride + padding).integers(-2, 3, (5 + 2 * padding - 3) // stride + 1).astype(float)
    dvalues = np.outer(dvalues, np.arange(1, len(dvalues) + 1) % 3 - 1.0)
    result = explain.convolution(
        IMAGE, EDGE, 0.5, dvalues, stride=stride, padding=padding, position=position, tap=tap, pixel=pixel
    )
    output, dweights, dinputs = torch_convolution(IMAGE, EDGE, 0.5, dvalues, stride, padding)
    assert_allclose(result["output"], output, rtol=0, atol=1e-12)
    assert_allclose(result["dweights"], dweights, rtol=0, atol=1e-12)
    assert_allclose(result["dinputs"], dinputs, rtol=0, atol=1e-12)
    sections = dict(result.sections)
    for title, expected in [
        (f"output[{position[0]}, {position[1]}]", output[position]),
        (f"dweights[{tap[0]}, {tap[1]}]", dweights[tap]),
        (f"dinputs[{pixel[0]}, {pixel[1]}]", dinputs[pixel]),
    ]:
        (rows,) = [rows for section, rows in sections.items() if section.startswith(title)]
        found = {name: value for name, _, value in rows}
        assert found["sum"] == pytest.approx(expected, abs=1e-12)
        assert found["engine"] == pytest.approx(expected, abs=1e-12)
        if "numerical" in found:
            assert found["numerical"] == pytest.approx(expected, abs=1e-5)


def test_the_default_convolution_is_the_printed_edge_detector():
    result = explain.convolution()
    assert_allclose(result["image"], IMAGE)
    # the first window: 8 - 5 + 0 - 0 + 6 - 5, by hand
    assert result["output"][0, 0] == 4


def test_each_written_out_path_of_batch_normalization_equals_pytorch():
    rng = np.random.default_rng(3)
    inputs, dvalues = rng.standard_normal((5, 3)), rng.standard_normal((5, 3))
    result = explain.batch_normalization(inputs, dvalues, gamma=1.5, beta=-0.25, sample=3, feature=2)
    x = torch.tensor(inputs, requires_grad=True)
    module = torch.nn.BatchNorm1d(3, dtype=torch.float64)
    with torch.no_grad():
        module.weight.fill_(1.5)
        module.bias.fill_(-0.25)
    out = module(x)
    out.backward(torch.tensor(dvalues))
    assert_allclose(result["output"], out.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert_allclose(result["dinputs"], x.grad.numpy(), rtol=1e-10, atol=1e-12)
    assert_allclose(result["dgamma"], module.weight.grad.numpy().reshape(1, 3), rtol=1e-12)
    assert_allclose(result["dbeta"], module.bias.grad.numpy().reshape(1, 3), rtol=1e-12)
    expected = x.grad.numpy()[3, 2]
    paths = result["direct"] + result["through_mean"] + result["through_variance"]
    assert paths == pytest.approx(expected, rel=1e-10)
    assert result["sum"] == pytest.approx(expected, rel=1e-10)
    assert result["numerical"] == pytest.approx(expected, rel=1e-5)


def test_batch_normalization_gradients_sum_to_zero_over_the_batch():
    # every x_hat column has mean 0 whatever the inputs: moving all of a column's inputs together
    # changes nothing, so its dinputs add up to 0
    result = explain.batch_normalization()
    assert_allclose(result["dinputs"].sum(axis=0), 0, atol=1e-12)


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: explain.batch_normalization([[1.0, 2.0]]), "at least 2 samples"),
        (
            lambda: explain.batch_normalization([[1.0], [2.0]], [[1.0, 2.0], [3.0, 4.0]]),
            "dvalues must have the inputs' shape",
        ),
        (
            lambda: explain.batch_normalization(sample=9),
            r"\(sample, feature\) \(9, 0\) lies outside the shape \(4, 2\)",
        ),
        (lambda: explain.convolution(dvalues=np.ones((2, 2))), r"dvalues must have the output's shape \(3, 3\)"),
        (lambda: explain.convolution(position=(3, 0)), r"position \(3, 0\) lies outside the shape \(3, 3\)"),
        (lambda: explain.convolution(kernel=[1.0, 2.0]), "kernel must be a 2-D array"),
    ],
)
def test_bad_arguments_are_named(call, message):
    with pytest.raises(ValueError, match=message):
        call()


def test_cli_explains_both_layers_and_refuses_bad_input_in_one_line():
    def chainrule(*args):
        return subprocess.run(
            [sys.executable, "-m", "chainrule", "explain", *args], capture_output=True, text=True, timeout=120
        )

    conv = chainrule("conv2d", "--stride", "2", "--padding", "1")
    assert conv.returncode == 0 and "Conv2D: a 5x5 image, a 3x3 kernel, stride 2, padding 1" in conv.stdout
    norm = chainrule("batchnorm", "--inputs", "1,2;3,4;5,7", "--dvalues", "1,0;0,1;1,1")
    assert norm.returncode == 0 and "engine           = dinputs[0, 0] = 0.2041237625" in norm.stdout
    bad = chainrule("batchnorm", "--inputs", "1,2")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "inputs must be a 2-D array" in bad.stderr
