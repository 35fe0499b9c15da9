"""The engine on a CUDA GPU through CuPy, against the same engine on the CPU.

These tests need CuPy (the extra `gpu`) and a CUDA GPU; without either they are skipped with
the reason. `tests/backend/test_backend.py` checks the device-generic engine on every machine.
"""

import copy
import ctypes
import logging

import numpy as np
import pytest

import chainrule as cr
from benchmarks import gpu_verify
from chainrule.backend import arrays, cuda_graph

pytestmark = pytest.mark.gpu


def _cuda_or_skip() -> arrays.Device:
    try:
        return arrays.find_device("cuda", "tests")
    except arrays.DeviceUnavailableError as error:
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
            np.testing.assert_allclose(arrays.to_host(gpu_layer.gradients()[name]), gradient, rtol=1e-10, atol=1e-12)


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


def graph_run(device, dtype=np.float64, graph=True, epochs=20):
    X, y = cr.datasets.spiral_data(100, 3, seed=0)
    model = spiral_model(dtype, device)
    history = model.fit(X, y, epochs=epochs, batch_size=64, verbose=0, graph=graph)
    return history.history, model.get_weights()


def test_a_captured_step_replays_the_eager_static_step_exactly(cuda, caplog):
    with caplog.at_level(logging.WARNING, logger="chainrule"):
        captured_history, captured_weights = graph_run(cuda)
    assert "could not be captured" not in caplog.text  # a host read or allocation would fail the capture

    uncaptured = gpu_verify.cuda_target()[0].uncaptured  # the same cuBLAS products, every step run eagerly
    eager_history, eager_weights = graph_run(uncaptured)
    assert captured_history == eager_history
    for captured, eager in zip(captured_weights, eager_weights, strict=True):
        np.testing.assert_array_equal(captured, eager)


@pytest.mark.parametrize("dtype, rtol", [(np.float64, 1e-9), (np.float32, 1e-3)])
def test_captured_steps_match_the_cpus_static_steps(cuda, dtype, rtol):
    gpu_history, _ = graph_run(cuda, dtype)
    cpu_history, _ = graph_run("cpu", dtype)
    np.testing.assert_allclose(gpu_history["loss"], cpu_history["loss"], rtol=rtol)


def test_the_binding_is_cupys_cublas_and_sets_tf32_per_product(cuda):
    import cupy
    from cupy_backends.cuda.libs import cublas as cupys

    _, cublas = cuda_graph.device_resources(cupy.cuda.Device().id)
    version = ctypes.c_int()
    cublas.library.cublasGetVersion_v2(cublas.handle, ctypes.byref(version))
    assert version.value == cupys.getVersion(cupy.cuda.device.get_cublas_handle())
    a = cupy.ones((4, 4), np.float32)
    cublas.tf32_matmul(a, a, cupy.empty((4, 4), np.float32))
    assert cublas.read_math_mode() == cuda_graph.TF32_TENSOR_OP_MATH
    cublas.matmul(a, a, cupy.empty((4, 4), np.float32))
    assert cublas.read_math_mode() == cuda_graph.DEFAULT_MATH


def test_a_step_that_allocates_falls_back_to_eager_with_one_warning(cuda, caplog):
    import cupy

    class AllocatingLinear(cr.Linear):
        def forward_into(self, inputs, buffers):
            cupy.copyto(buffers.output, inputs + 0.0)

    X, y = cr.datasets.spiral_data(30, 3, seed=0)
    model = cr.Model(seed=0, device=cuda)
    model.add(cr.Dense(2, 8)).add(cr.ReLU()).add(AllocatingLinear()).add(cr.Dense(8, 3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.02))
    with caplog.at_level(logging.WARNING, logger="chainrule"):
        model.fit(X, y, epochs=3, verbose=0, graph=True)
    assert caplog.text.count("could not be captured") == 1 and "allocated" in caplog.text
