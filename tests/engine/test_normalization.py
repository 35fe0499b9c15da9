"""BatchNormalization and LayerNormalization: their forward, backward and running statistics equal
PyTorch autograd's in float64, their gradients agree with central differences, and they train,
save and load like every other layer."""

import itertools

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr

torch = pytest.importorskip("torch")  # the independent reference (the extra `dev` installs it)
RTOL = 1e-7


def random_case(seed, n_samples, n_features, scale=3.0):
    rng = np.random.default_rng(seed)
    inputs = scale * rng.standard_normal((n_samples, n_features)) + rng.standard_normal(n_features)
    gamma = rng.standard_normal((1, n_features))
    beta = rng.standard_normal((1, n_features))
    dvalues = rng.standard_normal((n_samples, n_features))
    return inputs, gamma, beta, dvalues


def torch_pass(module, inputs, gamma, beta, dvalues):
    """PyTorch's output and gradients for the same numbers."""
    with torch.no_grad():
        module.weight.copy_(torch.from_numpy(gamma.ravel()))
        module.bias.copy_(torch.from_numpy(beta.ravel()))
    x = torch.from_numpy(inputs.copy()).requires_grad_(True)
    output = module(x)
    output.backward(torch.from_numpy(dvalues))
    return output.detach().numpy(), x.grad.numpy(), module.weight.grad.numpy(), module.bias.grad.numpy()


def assert_same(ours, theirs):
    for name, mine, reference in zip(("output", "dinputs", "dgamma", "dbeta"), ours, theirs, strict=True):
        assert_allclose(np.ravel(mine), np.ravel(reference), rtol=RTOL, atol=1e-12, err_msg=name)


BATCH_CASES = list(itertools.product([2, 3, 8, 33], [1, 4, 7], [1e-5, 1e-3], [0.1, 0.5]))[:24]


@pytest.mark.parametrize("n_samples, n_features, epsilon, momentum", BATCH_CASES)
def test_batch_normalization_in_training_equals_pytorchs(n_samples, n_features, epsilon, momentum):
    inputs, gamma, beta, dvalues = random_case(n_samples * 10 + n_features, n_samples, n_features)
    layer = cr.BatchNormalization(n_features, momentum=momentum, epsilon=epsilon, dtype=np.float64)
    layer.gamma, layer.beta = gamma.copy(), beta.copy()
    output = layer.forward(inputs, training=True).copy()
    layer.backward(dvalues)
    reference = torch.nn.BatchNorm1d(n_features, eps=epsilon, momentum=momentum, dtype=torch.float64).train()
    assert_same((output, layer.dinputs, layer.dgamma, layer.dbeta), torch_pass(reference, inputs, gamma, beta, dvalues))
    assert_allclose(layer.running_mean.ravel(), reference.running_mean.numpy(), rtol=RTOL)
    assert_allclose(layer.running_var.ravel(), reference.running_var.numpy(), rtol=RTOL)


@pytest.mark.parametrize("n_samples, n_features", [(1, 3), (5, 1), (6, 4), (40, 7)])
def test_batch_normalization_at_inference_equals_pytorchs_eval_with_the_same_statistics(n_samples, n_features):
    inputs, gamma, beta, dvalues = random_case(n_samples + 100 * n_features, n_samples, n_features)
    rng = np.random.default_rng(n_features)
    layer = cr.BatchNormalization(n_features, dtype=np.float64)
    layer.gamma, layer.beta = gamma.copy(), beta.copy()
    layer.running_mean, layer.running_var = rng.standard_normal((1, n_features)), rng.uniform(0.5, 2, (1, n_features))
    output = layer.forward(inputs).copy()
    layer.backward(dvalues)
    reference = torch.nn.BatchNorm1d(n_features, dtype=torch.float64).eval()
    with torch.no_grad():
        reference.running_mean.copy_(torch.from_numpy(layer.running_mean.ravel()))
        reference.running_var.copy_(torch.from_numpy(layer.running_var.ravel()))
    assert_same((output, layer.dinputs, layer.dgamma, layer.dbeta), torch_pass(reference, inputs, gamma, beta, dvalues))


LAYER_CASES = list(itertools.product([1, 2, 5, 16], [1, 2, 3, 9, 31], [1e-5, 1e-2]))[:24]


@pytest.mark.parametrize("n_samples, n_features, epsilon", LAYER_CASES)
def test_layer_normalization_equals_pytorchs(n_samples, n_features, epsilon):
    inputs, gamma, beta, dvalues = random_case(n_samples * 7 + n_features, n_samples, n_features)
    layer = cr.LayerNormalization(n_features, epsilon=epsilon, dtype=np.float64)
    layer.gamma, layer.beta = gamma.copy(), beta.copy()
    output = layer.forward(inputs).copy()
    layer.backward(dvalues)
    reference = torch.nn.LayerNorm(n_features, eps=epsilon, dtype=torch.float64)
    assert_same((output, layer.dinputs, layer.dgamma, layer.dbeta), torch_pass(reference, inputs, gamma, beta, dvalues))


@pytest.mark.parametrize("training", [True, False])
@pytest.mark.parametrize("make", [cr.BatchNormalization, cr.LayerNormalization], ids=["batch", "layer"])
def test_gradients_agree_with_central_differences(make, training):
    inputs, gamma, beta, _ = random_case(3, 6, 4)
    layer = make(4, dtype=np.float64)
    layer.gamma, layer.beta = gamma, beta
    if isinstance(layer, cr.BatchNormalization):
        layer.running_mean, layer.running_var = np.full((1, 4), 0.3), np.full((1, 4), 2.0)
    running = {name: array.copy() for name, array in layer.non_trainable().items()}
    result = cr.gradcheck(layer, inputs, training=training)
    assert result.passed and set(result.verdicts) == {"inputs", "gamma", "beta"}, str(result)
    for name, array in layer.non_trainable().items():  # the check leaves the running statistics alone
        assert np.array_equal(array, running[name]), name


def digits_like(seed=0, n=240):
    rng = np.random.default_rng(seed)
    centres = 4 * rng.standard_normal((3, 6))
    y = np.arange(n) % 3
    return 10 * (centres[y] + rng.standard_normal((n, 6))) + 50, y  # badly scaled inputs


@pytest.mark.parametrize("make", [cr.BatchNormalization, cr.LayerNormalization], ids=["batch", "layer"])
def test_a_model_with_normalization_trains_saves_and_loads_with_its_statistics(make, tmp_path):
    X, y = digits_like()
    model = cr.Model(seed=0).add(cr.Dense(6, 16)).add(make(16)).add(cr.ReLU()).add(cr.Dense(16, 3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.01), metrics=["accuracy"])
    model.fit(X, y, epochs=40, batch_size=32, verbose=0)
    assert model.evaluate(X, y)["accuracy"] > 0.9
    model.save(tmp_path / "model.npz")
    loaded = cr.load_model(tmp_path / "model.npz")
    assert np.array_equal(loaded.predict(X), model.predict(X))
    for name, array in model.layers[1].non_trainable().items():
        assert np.array_equal(loaded.layers[1].non_trainable()[name], array), name


def test_float32_and_float64_models_convert_the_running_statistics():
    model = cr.Model(seed=0, dtype=np.float64).add(cr.Dense(3, 4)).add(cr.BatchNormalization(4)).add(cr.Linear())
    model.compile(loss="mse", optimizer="adam")
    assert {array.dtype for array in model.layers[1].non_trainable().values()} == {np.dtype(np.float64)}


def test_settings_are_validated_and_the_width_is_checked():
    with pytest.raises(ValueError, match="momentum"):
        cr.BatchNormalization(3, momentum=1.5)
    with pytest.raises(ValueError, match="n_features"):
        cr.LayerNormalization(0)
    model = cr.Model().add(cr.Dense(2, 4)).add(cr.BatchNormalization(5))
    with pytest.raises(
        ValueError, match=r"layer 1 \(BatchNormalization\) takes 5 inputs but the layer before it gives 4"
    ):
        model.compile(loss="mse", optimizer="adam")


IMAGE_CASES = list(itertools.product([1, 2, 5], [(1, 1), (3, 4), (5, 5)], [1, 3, 6], [0.1]))[:24]


def channels_first(array):
    return np.ascontiguousarray(array.transpose(0, 3, 1, 2))


def channels_last(array):
    return np.ascontiguousarray(np.asarray(array).transpose(0, 2, 3, 1))


@pytest.mark.parametrize(
    "n_samples, size, channels, momentum", [case for case in IMAGE_CASES if case[0] * case[1][0] * case[1][1] > 1]
)
def test_batch_normalization_of_images_equals_pytorchs_batchnorm2d(n_samples, size, channels, momentum):
    rng = np.random.default_rng(n_samples * 100 + size[0] * 10 + channels)
    inputs = 2.0 * rng.standard_normal((n_samples, *size, channels)) + rng.standard_normal(channels)
    gamma, beta = rng.standard_normal((1, channels)), rng.standard_normal((1, channels))
    dvalues = rng.standard_normal(inputs.shape)
    layer = cr.BatchNormalization(channels, momentum=momentum, dtype=np.float64)
    layer.gamma, layer.beta = gamma.copy(), beta.copy()
    output = layer.forward(inputs, training=True).copy()
    layer.backward(dvalues)
    reference = torch.nn.BatchNorm2d(channels, momentum=momentum, dtype=torch.float64).train()
    theirs = torch_pass(reference, channels_first(inputs), gamma, beta, channels_first(dvalues))
    assert_same((channels_first(output), channels_first(layer.dinputs), layer.dgamma, layer.dbeta), theirs)
    assert_allclose(layer.running_mean.ravel(), reference.running_mean.numpy(), rtol=RTOL)
    assert_allclose(layer.running_var.ravel(), reference.running_var.numpy(), rtol=RTOL)
    reference.eval()  # inference with the same running statistics
    layer_output = layer.forward(inputs)
    assert_allclose(
        layer_output, channels_last(reference(torch.from_numpy(channels_first(inputs))).detach()), rtol=RTOL
    )


@pytest.mark.parametrize("shape", [(2, 3, 4, 5), (1, 1, 1, 3), (3, 2, 2, 1)])
def test_layer_normalization_of_images_normalises_each_position_over_its_channels_as_pytorch(shape):
    rng = np.random.default_rng(sum(shape))
    inputs, dvalues = rng.standard_normal(shape), rng.standard_normal(shape)
    gamma, beta = rng.standard_normal((1, shape[-1])), rng.standard_normal((1, shape[-1]))
    layer = cr.LayerNormalization(shape[-1], dtype=np.float64)
    layer.gamma, layer.beta = gamma.copy(), beta.copy()
    output = layer.forward(inputs).copy()
    layer.backward(dvalues)
    reference = torch.nn.LayerNorm(shape[-1], dtype=torch.float64)
    assert_same((output, layer.dinputs, layer.dgamma, layer.dbeta), torch_pass(reference, inputs, gamma, beta, dvalues))


def test_batch_normalization_of_images_passes_the_numerical_gradient_check():
    inputs = np.random.default_rng(0).standard_normal((3, 4, 4, 2))
    result = cr.gradcheck(cr.BatchNormalization(2, dtype=np.float64), inputs)
    assert result.passed, result
