"""MaxPool2D, AveragePool2D and GlobalAveragePool2D equal PyTorch autograd's pooling in float64
over pool sizes, strides (overlapping windows included) and paddings; ties send the gradient to
the window's first maximum."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr

torch = pytest.importorskip("torch")  # the independent reference (the extra `dev` installs it)
functional = torch.nn.functional

# (n, height, width, channels, pool, stride, padding)
CASES = [
    (1, 4, 4, 1, 2, None, 0),
    (2, 6, 6, 3, 2, None, 0),
    (2, 7, 7, 3, 2, None, 0),
    (2, 7, 9, 2, 3, None, 0),
    (3, 8, 8, 2, 3, 2, 0),
    (2, 8, 8, 2, 3, 1, 0),
    (2, 9, 7, 4, 3, 2, 1),
    (1, 5, 5, 2, 2, 1, 1),
    (2, 10, 10, 1, (2, 3), (2, 1), 0),
    (2, 6, 8, 3, (3, 2), (1, 2), (1)),
    (1, 3, 3, 1, 3, None, 0),
    (4, 12, 12, 2, 4, 4, 2),
    (2, 5, 6, 5, 2, 3, 0),
    (1, 11, 11, 1, 5, 2, 2),
    (3, 4, 7, 2, (1, 2), None, 0),
    (2, 9, 9, 3, 3, 3, 1),
    (1, 6, 6, 2, 4, 1, 2),
    (2, 8, 5, 2, 2, (3, 2), 1),
    (2, 16, 16, 1, 2, None, 0),
    (1, 7, 7, 6, 3, 2, 0),
]
IDS = [f"n{c[0]}-{c[1]}x{c[2]}x{c[3]}-p{c[4]}-s{c[5]}-pad{c[6]}" for c in CASES]


def run_both(layer, torch_pool, case, seed):
    n, height, width, channels, pool, stride, padding = case
    rng = np.random.default_rng(seed)
    inputs = rng.standard_normal((n, height, width, channels))
    output = layer.forward(inputs).copy()
    dvalues = rng.standard_normal(output.shape)
    layer.backward(dvalues)
    x = torch.from_numpy(inputs.copy()).requires_grad_(True)
    reference = torch_pool(x.permute(0, 3, 1, 2), pool, stride=stride or pool, padding=padding).permute(0, 2, 3, 1)
    reference.backward(torch.from_numpy(dvalues))
    assert output.shape == reference.shape
    assert_allclose(output, reference.detach().numpy(), rtol=1e-12, atol=1e-12)
    assert_allclose(layer.dinputs, x.grad.numpy(), rtol=1e-12, atol=1e-12)


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_max_pooling_equals_pytorchs(case):
    _, _, _, _, pool, stride, padding = case
    run_both(cr.MaxPool2D(pool, stride=stride, padding=padding), functional.max_pool2d, case, seed=len(IDS[0]))


@pytest.mark.parametrize("case", CASES, ids=IDS)
def test_average_pooling_equals_pytorchs_counting_the_padding(case):
    _, _, _, _, pool, stride, padding = case
    run_both(cr.AveragePool2D(pool, stride=stride, padding=padding), functional.avg_pool2d, case, seed=3)


@pytest.mark.parametrize("shape", [(1, 1, 1, 1), (2, 3, 5, 4), (3, 7, 7, 2), (1, 8, 2, 6)])
def test_global_average_pooling_equals_the_mean_over_positions_in_pytorch(shape):
    rng = np.random.default_rng(sum(shape))
    inputs = rng.standard_normal(shape)
    layer = cr.GlobalAveragePool2D()
    output = layer.forward(inputs)
    dvalues = rng.standard_normal(output.shape)
    layer.backward(dvalues)
    x = torch.from_numpy(inputs.copy()).requires_grad_(True)
    reference = x.mean(dim=(1, 2))
    reference.backward(torch.from_numpy(dvalues))
    assert_allclose(output, reference.detach().numpy(), rtol=1e-12)
    assert_allclose(layer.dinputs, x.grad.numpy(), rtol=1e-12)


def test_a_tie_sends_the_whole_gradient_to_the_first_maximum_of_the_window():
    inputs = np.array([[1.0, 3.0], [3.0, 0.0]]).reshape(1, 2, 2, 1)
    layer = cr.MaxPool2D(2)
    layer.forward(inputs)
    layer.backward(np.ones((1, 1, 1, 1)))
    assert layer.dinputs.reshape(2, 2).tolist() == [[0.0, 1.0], [0.0, 0.0]]


@pytest.mark.parametrize("layer", [cr.MaxPool2D(2), cr.AveragePool2D(3, stride=1, padding=1), cr.GlobalAveragePool2D()])
def test_pooling_passes_the_numerical_gradient_check(layer):
    inputs = np.random.default_rng(0).standard_normal((2, 6, 6, 3))  # distinct values: no ties
    result = cr.gradcheck(layer, inputs)
    assert result.passed, result


def test_pooling_settings_and_shapes_are_checked():
    with pytest.raises(ValueError, match="padding must be at most half the pool size"):
        cr.MaxPool2D(2, padding=2)
    with pytest.raises(ValueError, match=r"MaxPool2D.forward: inputs must be a 4-D array"):
        cr.MaxPool2D(2).forward(np.ones((3, 4)))
    with pytest.raises(ValueError, match=r"GlobalAveragePool2D.forward: inputs must be a 4-D array"):
        cr.GlobalAveragePool2D().forward(np.ones((3, 4, 4)))
