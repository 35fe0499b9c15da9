"""One engine, any NumPy-like array module: what `chainrule.backend` promises, checked on the CPU.

A GPU is not needed: `strict_device` provides arrays that refuse to mix with NumPy's, as CuPy's
do. A model trained on that device must give exactly the CPU's numbers (the arithmetic is
NumPy's in both), so every host array that slips into device work fails these tests.
"""

import contextlib
import sys
import types

import numpy as np
import pytest
from strict_device import STRICT, DeviceArray, HostArrayError

import chainrule as cr
from chainrule.backend import arrays, kernels


@pytest.fixture(autouse=True)
def numpy_kernels(monkeypatch):
    """The compiled kernels take only NumPy arrays: compare device runs with the NumPy paths."""
    monkeypatch.setattr(kernels, "ENABLED", False)


def spiral_model(device, *, dropout=0.0, optimizer=lambda: cr.Adam(0.02, decay=1e-3), l1=0.0, l2=0.0):
    model = cr.Model(seed=3, dtype=np.float64, device=device)
    model.add(cr.Dense(2, 16, weight_regularizer_l1=l1, weight_regularizer_l2=l2)).add(cr.ReLU())
    if dropout:
        model.add(cr.Dropout(dropout))
    model.add(cr.Dense(16, 3)).add(cr.Softmax())
    return model.compile(loss="categorical_crossentropy", optimizer=optimizer())


def test_the_stand_in_device_refuses_host_arrays():
    device_array = STRICT.to_device(np.ones(3))
    assert isinstance(device_array, DeviceArray)
    with pytest.raises(HostArrayError):
        device_array + np.ones(3)
    with pytest.raises(HostArrayError):
        np.multiply(device_array, 2.0, out=np.empty(3))
    with pytest.raises(HostArrayError):
        device_array[np.arange(2)]
    assert isinstance(device_array * 2.0 + device_array, DeviceArray)


@pytest.mark.parametrize("to_device", [lambda array: array, STRICT.to_device], ids=["numpy", "device"])
def test_take_rows_gathers_rows_in_the_given_order_where_the_data_lives(to_device):
    rng = np.random.default_rng(0)
    data, labels = rng.standard_normal((50, 7)), rng.integers(0, 3, 50)
    order = rng.permutation(50)[:20]
    rows, picked = to_device(np.empty((20, 7))), to_device(np.empty(20, np.int64))
    arrays.take_rows(to_device(data), to_device(order), rows)
    arrays.take_rows(to_device(labels), to_device(order), picked)
    np.testing.assert_array_equal(arrays.to_host(rows), data[order])
    np.testing.assert_array_equal(arrays.to_host(picked), labels[order])


@pytest.mark.parametrize(
    "settings",
    [
        {},
        {"dropout": 0.2},
        {"optimizer": lambda: cr.SGD(0.5, momentum=0.9, decay=1e-3), "l1": 1e-4, "l2": 1e-3},
        {"optimizer": lambda: cr.RMSprop(0.01)},
        {"optimizer": lambda: cr.Adagrad(0.5)},
    ],
    ids=["adam", "dropout", "sgd-momentum-penalties", "rmsprop", "adagrad"],
)
def test_training_on_a_device_gives_the_cpus_numbers(settings):
    X, y = cr.datasets.spiral_data(60, 3, seed=0)
    X_val, y_val = cr.datasets.spiral_data(20, 3, seed=1)
    runs = {}
    for device in ("cpu", STRICT):
        model = spiral_model(device, **settings)
        history = model.fit(X, y, epochs=6, batch_size=32, validation_data=(X_val, y_val), verbose=0)
        runs[model.device.name] = (model, history.history)
    (cpu, cpu_history), (strict, strict_history) = runs["cpu"], runs["strict"]
    assert strict_history == cpu_history
    for on_cpu, on_device in zip(cpu.get_weights(), strict.get_weights(), strict=True):
        assert type(on_device) is np.ndarray
        np.testing.assert_array_equal(on_device, on_cpu)
    assert all(
        isinstance(parameter, DeviceArray) for layer in strict.layers for parameter in layer.parameters().values()
    )


def test_other_losses_and_outputs_on_a_device():
    X, y = cr.datasets.spiral_data(40, 2, seed=0)
    results = []
    for device in ("cpu", STRICT):
        for loss, output, targets in (("binary_crossentropy", cr.Sigmoid(), y), ("mse", cr.Linear(), X[:, :1])):
            model = cr.Model(seed=1, dtype=np.float64, device=device)
            model.add(cr.Dense(2, 8)).add(cr.Tanh()).add(cr.Dense(8, 1)).add(output)
            model.compile(loss=loss, optimizer="adam")
            model.fit(X, targets, epochs=3, batch_size=16, verbose=0)
            results.append((model.get_weights(), model.evaluate(X, targets)))
    for (cpu_weights, cpu_logs), (device_weights, device_logs) in zip(results[:2], results[2:], strict=True):
        assert device_logs == cpu_logs
        for on_cpu, on_device in zip(cpu_weights, device_weights, strict=True):
            np.testing.assert_array_equal(on_device, on_cpu)


def test_fit_accepts_device_arrays_and_predict_returns_numpy():
    X, y = cr.datasets.spiral_data(30, 3, seed=0)
    on_cpu, on_device = spiral_model("cpu"), spiral_model(STRICT)
    on_cpu.fit(X, y, epochs=2, verbose=0)
    on_device.fit(STRICT.to_device(X), STRICT.to_device(y), epochs=2, verbose=0)
    predictions = on_device.predict(X)
    assert type(predictions) is np.ndarray
    np.testing.assert_array_equal(predictions, on_cpu.predict(X))
    assert isinstance(on_device.predict(X, as_numpy=False), DeviceArray)
    np.testing.assert_array_equal(on_device.predict_classes(X), on_cpu.predict_classes(X))


def test_a_model_moved_during_training_continues_as_on_the_cpu():
    X, y = cr.datasets.spiral_data(40, 3, seed=0)
    stays, moves = spiral_model("cpu"), spiral_model("cpu")
    for model in (stays, moves):
        model.fit(X, y, epochs=3, batch_size=32, verbose=0)
    moves.to(STRICT)
    for model in (stays, moves):
        model.fit(X, y, epochs=3, batch_size=32, verbose=0)
    moves.to("cpu")
    for on_cpu, moved in zip(stays.get_weights(), moves.get_weights(), strict=True):
        np.testing.assert_array_equal(moved, on_cpu)
    assert all(type(parameter) is np.ndarray for parameter in moves.layers[0].parameters().values())


def test_a_device_model_saves_a_file_the_cpu_loads(tmp_path):
    X, y = cr.datasets.spiral_data(30, 3, seed=0)
    model = spiral_model(STRICT)
    model.fit(X, y, epochs=2, verbose=0)
    model.save(tmp_path / "model.npz", include_optimizer=True)
    loaded = cr.load_model(tmp_path / "model.npz")
    np.testing.assert_array_equal(loaded.predict(X), model.predict(X))


def test_unknown_devices_and_gradcheck_off_the_cpu_are_refused():
    with pytest.raises(ValueError, match=r"device must be one of \['cpu', 'cuda'\], got 'tpu'"):
        cr.Model(device="tpu")
    X, y = cr.datasets.spiral_data(5, 3, seed=0)
    with pytest.raises(ValueError, match=r"runs on the CPU: call model.to\('cpu'\) first"):
        spiral_model(STRICT).gradcheck(X, y)


def test_cuda_without_cupy_names_the_extra_to_install(monkeypatch):
    monkeypatch.setitem(sys.modules, "cupy", None)  # import cupy raises ImportError
    with pytest.raises(arrays.DeviceUnavailableError, match=r"needs CuPy, which is not installed: pip install"):
        cr.Model(device="cuda")


def test_cuda_without_a_gpu_says_so(monkeypatch):
    def no_driver():
        raise RuntimeError("cudaErrorInsufficientDriver: CUDA driver version is insufficient")

    runtime = types.SimpleNamespace(getDeviceCount=no_driver)
    monkeypatch.setitem(sys.modules, "cupy", types.SimpleNamespace(cuda=types.SimpleNamespace(runtime=runtime)))
    with pytest.raises(arrays.DeviceUnavailableError, match="found no usable CUDA driver or GPU"):
        cr.Model(device="cuda")
    runtime.getDeviceCount = lambda: 0
    with pytest.raises(arrays.DeviceUnavailableError, match="has no CUDA GPU"):
        cr.Model().to("cuda")


def test_callbacks_and_divergence_recovery_on_a_device(tmp_path):
    X, y = cr.datasets.spiral_data(40, 3, seed=0)
    X_val, y_val = cr.datasets.spiral_data(10, 3, seed=1)
    results = []
    for device in ("cpu", STRICT):
        model = spiral_model(device)
        stopper = cr.callbacks.EarlyStopping(patience=1, restore_best_weights=True)
        checkpoint = cr.callbacks.ModelCheckpoint(tmp_path / f"{model.device.name}.npz")
        history = model.fit(
            X, y, epochs=30, batch_size=32, validation_data=(X_val, y_val), verbose=0, callbacks=[stopper, checkpoint]
        )
        diverging = spiral_model(device, optimizer=lambda: cr.SGD(1e30))
        with pytest.raises(cr.TrainingDivergedError):
            diverging.fit(X * 1e20, y, epochs=3, verbose=0)
        results.append((history.history, model.get_weights(), diverging.get_weights()))
    (cpu_history, *cpu_weights), (device_history, *device_weights) = results
    assert device_history == cpu_history
    for on_cpu, on_device in zip(sum(cpu_weights, []), sum(device_weights, []), strict=True):
        np.testing.assert_array_equal(on_device, on_cpu)
    saved = [cr.load_model(tmp_path / f"{name}.npz").get_weights() for name in ("cpu", "strict")]
    for on_cpu, on_device in zip(*saved, strict=True):
        np.testing.assert_array_equal(on_device, on_cpu)


def test_data_parallel_training_of_a_device_model_is_refused_in_one_line():
    X, y = cr.datasets.spiral_data(10, 3, seed=0)
    model = spiral_model(STRICT)
    before = [np.asarray(array).copy() for array in model.get_weights()]
    with pytest.raises(ValueError, match=r"distributed='mpi' trains on the CPU only .* call model.to\('cpu'\) first"):
        model.fit(X, y, epochs=1, verbose=0, distributed="mpi")
    for unchanged, start in zip(model.get_weights(), before, strict=True):
        np.testing.assert_array_equal(np.asarray(unchanged), start)


class OnDevice:
    """An array as CuPy's says where it lives: `device.id`."""

    def __init__(self, device_id):
        self.device = types.SimpleNamespace(id=device_id)


def test_cached_ones_are_kept_per_device():
    made_on = []

    class Module:
        cuda = types.SimpleNamespace(Device=lambda device_id: contextlib.nullcontext(made_on.append(device_id)))

        @staticmethod
        def ones(length, dtype):
            return ("ones", made_on[-1], length)

    arrays.register(OnDevice, Module)
    float32 = np.dtype(np.float32)
    first, second = arrays.cached_ones(3, float32, OnDevice(0)), arrays.cached_ones(3, float32, OnDevice(1))
    assert first == ("ones", 0, 3) and second == ("ones", 1, 3)
    assert arrays.cached_ones(3, float32, OnDevice(0)) is first
