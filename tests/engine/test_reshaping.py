"""Flatten and Reshape move values without changing them, forward and back, in C order (as
PyTorch's flatten of a channels-last tensor)."""

import numpy as np
import pytest
from numpy.testing import assert_array_equal

import chainrule as cr

torch = pytest.importorskip("torch")


@pytest.mark.parametrize("shape", [(1, 2, 3, 4), (5, 1, 1, 7), (3, 6), (2, 4, 4)])
def test_flatten_equals_pytorchs_flatten_and_its_gradient(shape):
    rng = np.random.default_rng(len(shape))
    inputs = rng.standard_normal(shape)
    layer = cr.Flatten()
    output = layer.forward(inputs)
    dvalues = rng.standard_normal(output.shape)
    layer.backward(dvalues)
    x = torch.from_numpy(inputs.copy()).requires_grad_(True)
    reference = torch.flatten(x, start_dim=1)
    reference.backward(torch.from_numpy(dvalues))
    assert_array_equal(output, reference.detach().numpy())
    assert_array_equal(layer.dinputs, x.grad.numpy())


def test_reshape_and_flatten_are_inverse_and_the_size_is_checked():
    inputs = np.arange(2 * 48, dtype=np.float64).reshape(2, 48)
    images = cr.Reshape((4, 4, 3)).forward(inputs)
    assert images.shape == (2, 4, 4, 3)
    assert_array_equal(cr.Flatten().forward(images), inputs)
    layer = cr.Reshape((4, 4, 3))
    layer.forward(inputs)
    assert_array_equal(layer.backward(images), inputs)
    with pytest.raises(ValueError, match=r"Reshape.forward: inputs must hold 48 values per sample"):
        cr.Reshape((4, 4, 3)).forward(np.ones((2, 47)))
    with pytest.raises(ValueError, match="target_shape"):
        cr.Reshape(())
