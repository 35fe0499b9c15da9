"""The engine on a CUDA GPU through CuPy, against the same engine on the CPU.

These tests need CuPy (the extra `gpu`) and a CUDA GPU; without either they are skipped with
the reason. `tests/test_backend.py` checks the device-generic engine on every machine.
"""

import copy

import numpy as np
import pytest

import chainrule as cr
from chainrule import backend

pytestmark = pytest.mark.gpu


def _cuda_or_skip() -> backend.Device:
    try:
        return backend.device("cuda", "tests")
    except backend.DeviceUnavailableError as error:
        pytest.skip(str(error))


@pytest.fixture(scope="module")
def cuda():
    return _cuda_or_skip()


def spiral_model(dtype, device="cpu"):
    model = cr.Model(seed=0, dtype=dtype, device=device)
    model.add(cr.Dense(2, 64)).add(cr.ReLU()).add(cr.Dense(64, 3)).add(cr.Softmax())
    return model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.02, decay=5e-7))


def test_every_float64_gradient_equals_the_cpus(cuda):
    X, y = cr.datasets.spiral_data(100, 3, seed=0)
    on_cpu = spiral_model(np.float64)
    on_gpu = copy.deepcopy(on_cpu).to(cuda)
    for model in (on_cpu, on_gpu):
        inputs, targets = model.validated(X, y, "test")
        model.backward_trusted(model.forward_trusted(inputs, True), targets)
    for cpu_layer, gpu_layer in zip(on_cpu.layers, on_gpu.layers, strict=True):
        for name, gradient in cpu_layer.gradients().items():
            np.testing.assert_allclose(backend.to_host(gpu_layer.gradients()[name]), gradient, rtol=1e-10, atol=1e-12)


def test_200_float32_steps_match_the_cpu(cuda):
    X, y = cr.datasets.spiral_data(100, 3, seed=0)
    on_cpu, on_gpu = spiral_model(np.float32), spiral_model(np.float32, cuda)
    cpu_history = on_cpu.fit(X, y, epochs=200, verbose=0).history
    gpu_history = on_gpu.fit(X, y, epochs=200, verbose=0).history
    np.testing.assert_allclose(gpu_history["loss"], cpu_history["loss"], rtol=1e-4)
    for on_cpu_weights, on_gpu_weights in zip(on_cpu.get_weights(), on_gpu.get_weights(), strict=True):
        assert type(on_gpu_weights) is np.ndarray
        np.testing.assert_allclose(on_gpu_weights, on_cpu_weights, rtol=1e-3, atol=1e-4)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
def test_fit_takes_cupy_arrays_and_predict_returns_numpy(cuda, dtype):
    import cupy

    X, y = cr.datasets.spiral_data(50, 3, seed=1)
    model = spiral_model(dtype, cuda)
    model.fit(cupy.asarray(X), cupy.asarray(y), epochs=5, batch_size=32, verbose=0)
    predictions = model.predict(X)
    assert type(predictions) is np.ndarray and predictions.dtype == dtype
    assert isinstance(model.predict(X, as_numpy=False), cupy.ndarray)
