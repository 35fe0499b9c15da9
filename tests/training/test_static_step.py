"""`fit(graph=True)`: the training step over buffers allocated once, as a CUDA graph captures it.

Its numbers are the eager step's up to rounding (checked in float64 and float32), and on the
stand-in device of `strict_device` every step runs as under a CUDA stream capture: an
allocation or a read back to the host inside it fails the test.
"""

import gc
import logging
import os
import signal
import weakref

import numpy as np
import pytest
from strict_device import STRICT, CaptureError, DeviceArray, Recording, StandInStream, capturing

import chainrule as cr
from chainrule.backend import kernels as compiled_kernels
from chainrule.backend.cuda_graph import AllocationInCapture, GraphRunner
from chainrule.training import loop, static_step, step_kernels

ENABLED = compiled_kernels.ENABLED  # before any test turns the compiled kernels off


def network(device="cpu", dtype=np.float64, optimizer=lambda: cr.Adam(0.02, decay=1e-3), hidden=(16, 16)):
    model = cr.Model(seed=2, dtype=dtype, device=device)
    widths = (2, *hidden)
    for n_inputs, n_neurons in zip(widths, widths[1:], strict=False):
        model.add(cr.Dense(n_inputs, n_neurons)).add(cr.ReLU())
    model.add(cr.Dense(widths[-1], 3)).add(cr.Softmax())
    return model.compile(loss="categorical_crossentropy", optimizer=optimizer())


def train(model, graph, epochs=8, batch_size=32):
    X, y = cr.datasets.spiral_data(50, 3, seed=0)  # 150 rows: four batches of 32 and one of 22
    X_val, y_val = cr.datasets.spiral_data(10, 3, seed=1)
    history = model.fit(
        X, y, epochs=epochs, batch_size=batch_size, validation_data=(X_val, y_val), verbose=0, graph=graph
    )
    return history.history, model.get_weights()


@pytest.fixture(params=["whole-step-compiled", "compiled-between-numpy-products", "numpy"])
def kernels(request, monkeypatch):
    """Every form of each step: one compiled call (small products), the compiled kernels between
    NumPy's products (large ones; here for every size), and NumPy's calls alone."""
    if request.param == "numpy":
        monkeypatch.setattr(compiled_kernels, "ENABLED", False)
    elif not compiled_kernels.ENABLED:
        pytest.skip("the compiled kernels need numba (extra 'fast')")
    elif request.param == "compiled-between-numpy-products":
        monkeypatch.setattr(static_step, "SMALL_WORK", -1)
    return request.param


@pytest.mark.parametrize("batch_size", [32, None], ids=["mini-batches", "full-batch"])
def test_graph_steps_give_the_eager_steps_numbers(batch_size, kernels):
    eager_model, graph_model = network(), network()
    eager, eager_weights = train(eager_model, False, batch_size=batch_size)
    graph, graph_weights = train(graph_model, True, batch_size=batch_size)
    assert graph.keys() == eager.keys()
    for key in eager:
        np.testing.assert_allclose(graph[key], eager[key], rtol=1e-9, err_msg=key)
    for graph_array, eager_array in zip(graph_weights, eager_weights, strict=True):
        np.testing.assert_allclose(graph_array, eager_array, rtol=1e-8, atol=1e-12)
    assert graph_model.optimizer.iterations == eager_model.optimizer.iterations


def test_graph_steps_in_float32_stay_within_rounding_of_eager_steps(kernels):
    eager, _ = train(network(dtype=np.float32), False)
    graph, _ = train(network(dtype=np.float32), True)
    np.testing.assert_allclose(graph["loss"], eager["loss"], rtol=1e-4)


def test_eager_training_continues_exactly_where_graph_steps_stopped(kernels):
    both, eager_only = network(), network()
    train(both, True, epochs=4)
    train(eager_only, False, epochs=4)
    for model in (both, eager_only):
        train(model, False, epochs=4)
    for resumed, eager in zip(both.get_weights(), eager_only.get_weights(), strict=True):
        np.testing.assert_allclose(resumed, eager, rtol=1e-8, atol=1e-12)


def test_a_captured_step_allocates_nothing_and_reads_nothing_back(monkeypatch):
    monkeypatch.setattr(compiled_kernels, "ENABLED", False)  # the CPU run takes NumPy's paths, as the device does
    on_device, on_cpu = network(STRICT), network()
    device_history, device_weights = train(on_device, True)
    cpu_history, cpu_weights = train(on_cpu, True)
    assert device_history == cpu_history
    for on_device_array, on_cpu_array in zip(device_weights, cpu_weights, strict=True):
        np.testing.assert_array_equal(on_device_array, on_cpu_array)


def test_the_stand_in_capture_refuses_allocations_and_host_reads():
    array = STRICT.to_device(np.ones(4))
    with capturing():
        np.multiply(array, 2.0, out=array)  # in place: allowed
        for allocating in (lambda: array * 2.0, lambda: array[[0, 1]], lambda: STRICT.module.empty(3)):
            with pytest.raises(AllocationInCapture):
                allocating()
    np.testing.assert_array_equal(array.view(np.ndarray), [2.0] * 4)
    for reading in (lambda: float(array[0]), array.get):
        with pytest.raises(CaptureError, match="inside a captured step"), capturing():
            reading()


def test_the_stand_in_capture_records_operations_with_their_numbers_and_runs_them_at_each_launch():
    """As a CUDA graph: nothing runs while the step is captured, and a launch runs what was
    recorded, a Python number as it was then, an array as it is now."""
    array, factor = STRICT.to_device(np.ones(3)), STRICT.to_device(np.full((), 3.0))
    stream, scale = StandInStream(), 2.0
    stream.begin_capture()
    np.multiply(array, scale, out=array)
    np.multiply(array, factor, out=array)
    graph = stream.end_capture()
    np.testing.assert_array_equal(array.view(np.ndarray), [1.0] * 3)  # recorded, not run
    scale, factor[...] = 10.0, 5.0
    graph.launch()
    np.testing.assert_array_equal(array.view(np.ndarray), [10.0] * 3)  # 2.0 baked in, 5.0 read


class Doubling(cr.Layer):
    """A learner's own parameterised layer, written as the book writes one: x * scale, per column."""

    def __init__(self, width):
        super().__init__(np.float64)
        self.scale = np.full((1, width), 2.0)

    def forward(self, inputs, training=False):
        self.inputs = inputs
        self.output = inputs * self.scale
        return self.output

    def backward(self, dvalues):
        self.dscale = (dvalues * self.inputs).sum(axis=0, keepdims=True)
        self.dinputs = dvalues * self.scale
        return self.dinputs

    def parameters(self):
        return {"scale": self.scale}

    def gradients(self):
        return {"scale": self.dscale}


def stack(*layers, loss="categorical_crossentropy", optimizer=lambda: cr.Adam(0.01), device="cpu", **settings):
    """A float64 model of `layers` on `device`, compiled with `loss` and `optimizer`."""
    model = cr.Model(seed=0, dtype=np.float64, device=device)
    for layer in layers:
        model.add(layer)
    return model.compile(loss=loss, optimizer=optimizer(), **settings)


def classifier(*hidden, optimizer=lambda: cr.Adam(0.01), regularizers=None, device="cpu"):
    """Dense(2, 8), `hidden` layers, Dense(8, 3), Softmax."""
    first = cr.Dense(2, 8, **(regularizers or {}))
    return stack(first, *hidden, cr.Dense(8, 3), cr.Softmax(), optimizer=optimizer, device=device)


def sine_regression(device="cpu", loss="mse"):
    """The book's sine regression, smaller: 1-16-16-1, Linear output."""
    return stack(cr.Dense(1, 16), cr.Tanh(), cr.Dense(16, 16), cr.Sigmoid(), cr.Dense(16, 1), cr.Linear(),
                 loss=loss, metrics=["mae"], device=device)  # fmt: skip


def binary(device="cpu", fuse_sigmoid=False):
    """Two yes/no outputs through a Sigmoid, with binary cross-entropy."""
    return stack(cr.Dense(2, 8), cr.LeakyReLU(0.1), cr.Dense(8, 2), cr.Sigmoid(), loss="binary_crossentropy",
                 metrics=["binary_accuracy"], fuse_sigmoid=fuse_sigmoid, device=device)  # fmt: skip


def spiral(model):
    X, y = cr.datasets.spiral_data(30, 3, seed=0)
    return X, y


def sine(model):
    X, y = cr.datasets.sine_data(90)
    return X, y


def two_outputs(model):
    X, y = cr.datasets.spiral_data(30, 3, seed=0)
    return X, np.stack([y == 0, y == 1], axis=1).astype(np.float64)


NETWORKS = {
    "sigmoid-and-tanh": (
        lambda device="cpu": classifier(cr.Sigmoid(), cr.Dense(8, 8), cr.Tanh(), device=device),
        spiral,
    ),
    "dropout": (lambda device="cpu": classifier(cr.ReLU(), cr.Dropout(0.2, seed=3), device=device), spiral),
    "l1-l2-penalties": (
        lambda device="cpu": classifier(
            cr.ReLU(),
            regularizers={"weight_regularizer_l2": 5e-4, "bias_regularizer_l2": 5e-4, "weight_regularizer_l1": 1e-4},
            device=device,
        ),  # fmt: skip
        spiral,
    ),
    "sgd-momentum": (
        lambda device="cpu": classifier(cr.ReLU(), optimizer=lambda: cr.SGD(0.5, 1e-3, 0.9), device=device),
        spiral,
    ),
    "sgd-nesterov": (
        lambda device="cpu": classifier(cr.ReLU(), optimizer=lambda: cr.SGD(0.5, 0, 0.9, nesterov=True), device=device),
        spiral,
    ),
    "rmsprop": (
        lambda device="cpu": classifier(cr.ReLU(), optimizer=lambda: cr.RMSprop(0.01, 1e-3), device=device),
        spiral,
    ),
    "adagrad": (lambda device="cpu": classifier(cr.ReLU(), optimizer=lambda: cr.Adagrad(0.5), device=device), spiral),
    "linear-output-mse": (sine_regression, sine),
    "mae": (lambda device="cpu": sine_regression(device, loss="mae"), sine),
    "sigmoid-binary-crossentropy": (binary, two_outputs),
    "fused-sigmoid-crossentropy": (lambda device="cpu": binary(device, fuse_sigmoid=True), two_outputs),
    "learners-own-layer": (lambda device="cpu": classifier(cr.ReLU(), Doubling(8), device=device), spiral),
    "conv-maxpool-flatten": (
        lambda device="cpu": stack(
            cr.Conv2D(1, 4, 3),
            cr.ReLU(),
            cr.MaxPool2D(2),
            cr.Conv2D(4, 6, 2, stride=2, padding=1),
            cr.Flatten(),
            cr.Dense(24, 3),
            cr.Softmax(),
            device=device,
        ),  # fmt: skip
        lambda model: small_images(1),
    ),
    "same-padding-averagepool-global": (
        lambda device="cpu": stack(
            cr.Conv2D(2, 5, 3, padding="same", dilation=(1, 2)),
            cr.Tanh(),
            cr.AveragePool2D(3, stride=2, padding=1),
            cr.MaxPool2D((2, 1), padding="same"),
            cr.GlobalAveragePool2D(),
            cr.Dense(5, 3),
            cr.Softmax(),
            device=device,
        ),  # fmt: skip
        lambda model: small_images(2),
    ),
    "batchnorm-over-channels-and-features": (
        lambda device="cpu": stack(
            cr.Conv2D(1, 3, 3),
            cr.ReLU(),
            cr.BatchNormalization(3),
            cr.Flatten(),
            cr.Dense(75, 8),
            cr.Tanh(),
            cr.BatchNormalization(8),
            cr.Dense(8, 3),
            cr.Softmax(),
            device=device,
        ),  # fmt: skip
        lambda model: small_images(1),
    ),
    "layernorm-reshape": (
        lambda device="cpu": stack(
            cr.Dense(2, 12),
            cr.LayerNormalization(12),
            cr.Reshape((2, 2, 3)),
            cr.LayerNormalization(3),
            cr.Flatten(),
            cr.Dense(12, 3),
            cr.Softmax(),
            device=device,
        ),  # fmt: skip
        spiral,
    ),
    "embedding": (
        lambda device="cpu": stack(cr.Embedding(10, 4), cr.Flatten(), cr.Dense(8, 3), cr.Softmax(), device=device),
        lambda model: (np.random.default_rng(4).integers(0, 10, (90, 2)), np.random.default_rng(5).integers(0, 3, 90)),
    ),
}


def small_images(channels):
    """90 random 7x7 images with `channels` channels, and 3 classes."""
    rng = np.random.default_rng(6)
    return rng.standard_normal((90, 7, 7, channels)), rng.integers(0, 3, 90)


@pytest.fixture
def static_steps(monkeypatch):
    """The number of general static steps run."""
    calls = []
    run = static_step.StaticStep.run
    monkeypatch.setattr(static_step.StaticStep, "run", lambda step: calls.append(1) or run(step))
    return calls


@pytest.mark.parametrize("name", NETWORKS)
def test_networks_beyond_the_compiled_pattern_train_on_the_static_path_with_the_eager_numbers(
    name, static_steps, caplog
):
    build, data = NETWORKS[name]
    X, y = data(build)
    eager, static = build(), build()
    eager_history = eager.fit(X, y, epochs=6, batch_size=32, verbose=0, graph=False).history
    with caplog.at_level(logging.WARNING, logger="chainrule"):
        static_history = static.fit(X, y, epochs=6, batch_size=32, verbose=0, graph=True).history
    assert caplog.text == ""
    assert len(static_steps) == 6 * -(-len(X) // 32)  # every step took the static path
    assert static_history.keys() == eager_history.keys()
    for key in eager_history:  # sums as products with ones, biases added after the product: rounding
        np.testing.assert_allclose(static_history[key], eager_history[key], rtol=1e-9, atol=1e-15, err_msg=key)
    for static_array, eager_array in zip(static.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_allclose(static_array, eager_array, rtol=1e-8, atol=1e-12)
    assert static.optimizer.iterations == eager.optimizer.iterations


@pytest.mark.parametrize("name", NETWORKS)
def test_static_steps_are_captured_by_the_stand_in_device_where_every_layer_has_a_static_form(name, monkeypatch):
    monkeypatch.setattr(compiled_kernels, "ENABLED", False)  # the CPU run takes NumPy's paths, as the device does
    build, data = NETWORKS[name]
    X, y = data(build)
    captured = []
    prepare = STRICT.prepare_graph
    monkeypatch.setattr(STRICT, "prepare_graph", lambda training, tf32: captured.append(1) or prepare(training, tf32))
    on_device, on_cpu = build(STRICT), build()
    device_history = on_device.fit(X, y, epochs=3, batch_size=32, verbose=0, graph=True).history
    cpu_history = on_cpu.fit(X, y, epochs=3, batch_size=32, verbose=0, graph=True).history
    assert device_history == cpu_history
    for on_device_array, on_cpu_array in zip(on_device.get_weights(), on_cpu.get_weights(), strict=True):
        np.testing.assert_array_equal(on_device_array, on_cpu_array)
    expected = static_step.not_capturable(on_cpu)
    assert (expected is None) == bool(captured), expected
    if name in ("dropout", "learners-own-layer"):
        assert expected is not None  # the host draws Dropout's masks; the learner's layer has no forward_into
    else:
        assert expected is None  # every built-in layer, CNN and normalisation layers included, has a static form


class OwnOptimizer(cr.Optimizer):
    """An optimizer of a learner's own, updating through the textbook `update_params`."""

    def update_params(self, layer, scalars=None):
        for name, parameter in layer.parameters().items():
            parameter -= self.current_learning_rate * layer.gradients()[name]


@pytest.mark.parametrize(
    "build, reason",
    [
        (
            lambda: stack(cr.Dense(2, 3), cr.Exponential(), loss="poisson"),
            "the loss PoissonDeviance has no static form",
        ),
        (
            lambda: classifier(cr.ReLU(), optimizer=lambda: OwnOptimizer(0.1, 0.0)),
            "the optimizer OwnOptimizer has no update rule",
        ),
        (lambda: classifier(cr.Softmax()), "layer 1 is Softmax"),
    ],
    ids=["poisson-loss", "own-optimizer", "hidden-softmax"],
)
def test_networks_a_static_step_cannot_take_train_eagerly_and_the_log_says_why(build, reason, caplog):
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    with caplog.at_level(logging.WARNING, logger="chainrule"):
        static_step.static_training(build(), X, y, 16, True, build().device, False, False)
    assert f"Model.fit(graph=True) runs eager steps: {reason}" in caplog.text


def test_one_hot_targets_train_eagerly(caplog):
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    with caplog.at_level(logging.WARNING, logger="chainrule"):
        network().fit(X, np.eye(3)[y], epochs=1, verbose=0, graph=True)
    assert "the targets are one-hot rows; pass class labels" in caplog.text


def test_a_diverging_graph_run_stops_with_the_last_finite_weights():
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    model = network(dtype=np.float32, optimizer=lambda: cr.Adam(1e30))
    with pytest.raises(cr.TrainingDivergedError, match="the loss became"):
        model.fit(X * 1e20, y, epochs=5, verbose=0, graph=True)
    assert all(np.isfinite(weights).all() for weights in model.get_weights())


def test_fit_takes_the_compiled_whole_step_by_default_for_small_networks_and_numpy_products_for_large(monkeypatch):
    if not compiled_kernels.ENABLED:
        pytest.skip("the compiled kernels need numba (extra 'fast')")
    calls = []
    for name in ("static_step", "adam_step"):  # the whole step, and Adam (one call in either form)
        kernel = getattr(step_kernels, name)
        monkeypatch.setattr(
            step_kernels, name, lambda *arguments, kernel=kernel, name=name: calls.append(name) or kernel(*arguments)
        )
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    watched = [cr.callbacks.Callback()]  # a callback between epochs: one compiled call per step
    network().fit(X, y, epochs=2, verbose=0, callbacks=watched)
    assert calls == ["static_step"] * 2
    network().fit(X, y, epochs=2, verbose=0, callbacks=watched, graph=False)
    assert calls == ["static_step"] * 2
    wide = network(hidden=(2048, 1024))  # 60 x 2048 x 1024 multiply-adds per batch: above SMALL_WORK
    wide.fit(X, y, epochs=1, verbose=0, callbacks=watched)
    assert calls == ["static_step"] * 2 + ["adam_step"]
    # Beyond WHOLE_STEP_LAYERS Dense layers the whole step would compile anew for each depth.
    deep = network(hidden=(16,) * static_step.WHOLE_STEP_LAYERS)
    deep.fit(X, y, epochs=1, verbose=0, callbacks=watched)
    assert calls == ["static_step"] * 2 + ["adam_step"] * 2


@pytest.fixture
def epoch_calls(monkeypatch):
    """The calls of the several-epochs kernel, counted; each may run up to 10 s of epochs, so
    the chunks double from one epoch (a call may be longer than 10 s only while it compiles)."""
    if not compiled_kernels.ENABLED:
        pytest.skip("the compiled kernels need numba (extra 'fast')")
    calls = []  # the number of epochs each call ran
    several_epochs = step_kernels.static_epochs
    monkeypatch.setattr(
        step_kernels, "static_epochs", lambda *arguments: calls.append(several_epochs(*arguments)) or calls[-1]
    )
    monkeypatch.setattr(loop, "CHUNK_SECONDS", 10.0)
    return calls


def fit_twice(build, X, y, **settings):
    """The same fit watched by a callback (epoch by epoch) and unwatched: (watched, unwatched) models."""
    watched, unwatched = build(), build()
    watched.fit(X, y, verbose=0, callbacks=[cr.callbacks.Callback()], **settings)
    unwatched.fit(X, y, verbose=0, **settings)
    return watched, unwatched


@pytest.mark.parametrize(
    "batch_size, shuffle",
    [(None, True), (32, True), (32, False), (50, True)],
    ids=["full-batch", "shuffled-with-a-short-last-batch", "in-order", "equal-batches"],
)
def test_unwatched_epochs_run_several_per_call_with_the_watched_numbers(epoch_calls, batch_size, shuffle):
    X, y = cr.datasets.spiral_data(50, 3, seed=0)  # 150 rows
    watched, unwatched = fit_twice(network, X, y, epochs=12, batch_size=batch_size, shuffle=shuffle)
    assert sum(epoch_calls) == 12
    assert len(epoch_calls) <= 5  # chunks of 1, 2, 4, 5 epochs (1, 1, 2, 4, 4 when compiling takes 5 s)
    assert unwatched.history.history == watched.history.history
    assert unwatched.history.epoch == list(range(12))
    for unwatched_array, watched_array in zip(unwatched.get_weights(), watched.get_weights(), strict=True):
        np.testing.assert_array_equal(unwatched_array, watched_array)
    assert unwatched.optimizer.iterations == watched.optimizer.iterations
    assert unwatched.optimizer.current_learning_rate == watched.optimizer.current_learning_rate
    assert unwatched.rng.integers(1 << 30) == watched.rng.integers(1 << 30)  # the same orders were drawn


def test_callbacks_that_only_report_logs_get_every_epoch_of_a_run_of_several(epoch_calls, capsys):
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    network().fit(X, y, epochs=12, verbose=2, callbacks=[cr.callbacks.Callback()])  # watched: epoch by epoch
    watched_lines = capsys.readouterr().out
    assert epoch_calls == []
    network().fit(X, y, epochs=12, verbose=2)  # the printed lines report the logs only
    assert len(epoch_calls) <= 5
    assert capsys.readouterr().out == watched_lines
    assert watched_lines.count("\n") == 12


def test_a_stop_asked_for_by_a_reporting_callback_takes_effect_after_that_call(epoch_calls):
    class StopAfterTheThirdEpoch(cr.callbacks.Callback):
        needs_each_epoch = False

        def on_epoch_end(self, epoch, logs):
            if epoch == 2:
                self.model.stop_training = True

    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    history = network().fit(X, y, epochs=50, verbose=0, callbacks=[StopAfterTheThirdEpoch()])
    assert sum(epoch_calls[:-1]) <= 2 < sum(epoch_calls)  # the last call ran the third epoch
    assert history.epoch == list(range(sum(epoch_calls)))
    assert not history.interrupted


def test_unwatched_epochs_stop_at_the_same_divergence_as_watched_ones(epoch_calls):
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    errors = []
    for callbacks in ([cr.callbacks.Callback()], []):
        model = network(dtype=np.float32, optimizer=lambda: cr.Adam(1e6))
        with pytest.raises(cr.TrainingDivergedError) as error:
            model.fit(X * 1e30, y, epochs=40, verbose=0, callbacks=callbacks)
        errors.append((str(error.value), model))
    (watched_message, watched), (unwatched_message, unwatched) = errors
    assert "in epoch 6;" in watched_message  # the third of the call that runs epochs 4 to 7
    assert unwatched_message == watched_message
    assert unwatched.history.history == watched.history.history
    for unwatched_array, watched_array in zip(unwatched.get_weights(), watched.get_weights(), strict=True):
        np.testing.assert_array_equal(unwatched_array, watched_array)


def test_a_ctrl_c_during_unwatched_epochs_ends_training_after_that_call(epoch_calls, monkeypatch):
    several_epochs = step_kernels.static_epochs  # the counting one

    def pressed_during_the_second_call(*arguments):
        if len(epoch_calls) == 1:
            os.kill(os.getpid(), signal.SIGINT)
        return several_epochs(*arguments)

    monkeypatch.setattr(step_kernels, "static_epochs", pressed_during_the_second_call)
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    history = network().fit(X, y, epochs=50, verbose=0)
    assert history.interrupted
    assert len(epoch_calls) == 2
    assert history.epoch == list(range(sum(epoch_calls)))


ONE_STEP_OPTIMIZERS = {
    "sgd": lambda: cr.SGD(0.5, decay=0.01),
    "sgd-momentum": lambda: cr.SGD(0.5, decay=0.01, momentum=0.9),
    "sgd-nesterov": lambda: cr.SGD(0.5, momentum=0.9, nesterov=True),
    "adagrad": lambda: cr.Adagrad(0.5),
    "rmsprop": lambda: cr.RMSprop(0.01),
    "adam": lambda: cr.Adam(0.02, decay=1e-3),
    "adamw": lambda: cr.AdamW(0.02, decay=1e-3, weight_decay=0.1),
}


@pytest.mark.parametrize("name", ONE_STEP_OPTIMIZERS)
def test_one_step_of_each_optimizer_on_every_path(name, monkeypatch):
    """The same step on every path: eager; static (NumPy); the stand-in device's captured graph;
    and, for Adam, the compiled whole step. Static against eager and compiled against static:
    within rounding (sums as products with ones, biases added after the product, the compiled
    kernels' own loops; the adaptive rules divide by a gradient's own size, so a rounding of a
    near-zero gradient shows at 1e-10 relative); the captured graph against the static step: the
    same bits."""
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    optimizer = ONE_STEP_OPTIMIZERS[name]

    def one_step(graph, device="cpu", compiled=False):
        monkeypatch.setattr(compiled_kernels, "ENABLED", compiled and ENABLED)
        model = network(device, optimizer=optimizer)
        model.fit(X, y, epochs=1, verbose=0, graph=graph)
        return [np.asarray(array) for array in model.get_weights()]

    paths = {"eager": one_step(False), "static": one_step(True), "stand-in graph": one_step(True, STRICT)}
    if name == "adam" and ENABLED:
        paths["compiled whole step"] = one_step(True, compiled=True)
    start = network(optimizer=optimizer).get_weights()
    assert not np.array_equal(paths["eager"][0], start[0])  # the step moved the weights
    for static, eager in zip(paths["static"], paths["eager"], strict=True):
        np.testing.assert_allclose(static, eager, rtol=1e-9, atol=1e-13)
    for captured, static in zip(paths["stand-in graph"], paths["static"], strict=True):
        np.testing.assert_array_equal(captured, static)
    for compiled, static in zip(paths.get("compiled whole step", paths["static"]), paths["static"], strict=True):
        np.testing.assert_allclose(compiled, static, rtol=1e-9, atol=1e-13)


class AllocatingLinear(cr.Linear):
    """The identity with a static form that takes a temporary array each step (what must not be
    captured: the graph would keep writing into memory the pool gives to other arrays)."""

    def forward_into(self, inputs, buffers):
        np.copyto(buffers.output, inputs + 0.0)


def test_a_step_that_allocates_is_not_captured_and_runs_eagerly_with_one_warning(monkeypatch, caplog):
    monkeypatch.setattr(compiled_kernels, "ENABLED", False)  # the CPU run takes NumPy's paths, as the device does

    def build(device="cpu"):
        model = cr.Model(seed=2, dtype=np.float64, device=device)
        model.add(cr.Dense(2, 8)).add(cr.ReLU()).add(AllocatingLinear()).add(cr.Dense(8, 3)).add(cr.Softmax())
        return model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.02))

    X, y = cr.datasets.spiral_data(30, 3, seed=0)
    with caplog.at_level(logging.WARNING, logger="chainrule"):
        device_history = build(STRICT).fit(X, y, epochs=4, verbose=0, graph=True).history
    assert len(caplog.records) == 1
    assert "could not be captured, it runs eagerly" in caplog.text and "allocated" in caplog.text
    assert device_history == build().fit(X, y, epochs=4, verbose=0, graph=True).history


def change_settings(optimizer):
    """What a callback might change between epochs, each setting the rule or its scalars read."""
    if isinstance(optimizer, cr.SGD):
        optimizer.momentum = 0.5
    if isinstance(optimizer, cr.RMSprop):
        optimizer.rho, optimizer.epsilon = 0.5, 1e-2
    if isinstance(optimizer, cr.Adam):
        optimizer.beta_1, optimizer.beta_2, optimizer.epsilon = 0.5, 0.9, 1e-2
    if isinstance(optimizer, cr.AdamW):
        optimizer.weight_decay = 0.5
    optimizer.decay = 0.1


class ChangeSettings(cr.callbacks.Callback):
    def on_epoch_end(self, epoch, logs):
        if epoch == 1:
            change_settings(self.model.optimizer)


@pytest.mark.parametrize(
    "make_optimizer",
    [
        lambda: cr.SGD(0.1, momentum=0.9),
        lambda: cr.RMSprop(0.01),
        lambda: cr.Adam(0.02),
        lambda: cr.AdamW(0.02, weight_decay=0.01),
    ],
    ids=["sgd-momentum", "rmsprop", "adam", "adamw"],
)
def test_a_callbacks_change_to_the_optimizers_settings_reaches_the_captured_step(make_optimizer, monkeypatch):
    """The captured step reads every setting from device scalars refreshed between epochs, so it
    follows a change as the uncaptured step does (a number baked into the graph would not)."""
    monkeypatch.setattr(compiled_kernels, "ENABLED", False)  # the CPU run takes NumPy's paths, as the device does
    X, y = cr.datasets.spiral_data(30, 3, seed=0)
    runs = []
    for device in (STRICT, "cpu"):
        model = network(device, optimizer=make_optimizer)
        history = model.fit(X, y, epochs=4, verbose=0, graph=True, callbacks=[ChangeSettings()]).history
        runs.append((history, [np.asarray(array) for array in model.get_weights()]))
    (device_history, device_weights), (cpu_history, cpu_weights) = runs
    assert device_history == cpu_history
    for on_device, on_cpu in zip(device_weights, cpu_weights, strict=True):
        np.testing.assert_array_equal(on_device, on_cpu)
    unchanged = network(optimizer=make_optimizer)
    unchanged_history = unchanged.fit(X, y, epochs=4, verbose=0, graph=True).history
    assert unchanged_history["loss"][3] != cpu_history["loss"][3]  # the change made a difference


def count_host_reads(monkeypatch) -> list[str]:
    """Every value the stand-in device is asked to hand back to the host, from now on."""
    reads: list[str] = []
    host_read, get = DeviceArray._host_read, DeviceArray.get
    monkeypatch.setattr(
        DeviceArray, "_host_read", lambda self, conversion: reads.append("value") or host_read(self, conversion)
    )
    monkeypatch.setattr(DeviceArray, "get", lambda self: reads.append("copy") or get(self))
    return reads


def test_replayed_full_batch_epochs_read_back_once_per_chunk_not_once_per_epoch(monkeypatch):
    monkeypatch.setattr(compiled_kernels, "ENABLED", False)  # the CPU run takes NumPy's paths, as the device does
    X, y = cr.datasets.spiral_data(30, 3, seed=0)
    on_device, on_cpu = network(STRICT), network()
    reads = count_host_reads(monkeypatch)
    device_history = on_device.fit(X, y, epochs=300, verbose=0, graph=True).history
    assert 0 < len(reads) < 300 / 10
    assert device_history == on_cpu.fit(X, y, epochs=300, verbose=0, graph=True).history


def count_launches(monkeypatch) -> list[int]:
    """The operations of every graph the stand-in device launches, from now on."""
    launches: list[int] = []
    launch = Recording.launch
    monkeypatch.setattr(
        Recording, "launch", lambda self, stream=None: launches.append(len(self.operations)) or launch(self)
    )
    return launches


@pytest.mark.parametrize("epochs_per_graph, groups", [(16, 0), (2, 2)], ids=["epoch-by-epoch", "in-groups-of-two"])
def test_a_divergence_inside_a_chunk_of_replayed_epochs_stops_where_the_cpu_stops_with_the_same_weights(
    epochs_per_graph, groups, monkeypatch
):
    """The loss becomes infinite in epoch 5, inside the third chunk (epochs 3 to 6): replayed epoch
    by epoch, or in groups of two epochs recorded as one graph (epochs 1-2 run uncaptured, 3-4
    are captured and launched, 5-6 replay that graph)."""
    monkeypatch.setattr(compiled_kernels, "ENABLED", False)  # the CPU run takes NumPy's paths, as the device does
    monkeypatch.setattr(static_step, "EPOCHS_PER_GRAPH", epochs_per_graph)
    monkeypatch.setattr(loop, "CHUNK_SECONDS", 1e9)  # chunks of 1, 2, 4, ... epochs whatever the machine's speed
    launches = count_launches(monkeypatch)
    X, y = cr.datasets.sine_data(100)
    errors, weights = [], []
    for device in (STRICT, "cpu"):
        model = cr.Model(seed=0, device=device)
        model.add(cr.Dense(1, 16)).add(cr.ReLU()).add(cr.Dense(16, 1)).add(cr.Linear())
        model.compile(loss="mse", optimizer=cr.SGD(10.0))
        with pytest.raises(cr.TrainingDivergedError) as caught:
            model.fit(X, y, epochs=100, batch_size=32, verbose=0, graph=True)
        errors.append(str(caught.value))
        weights.append([np.asarray(array) for array in model.get_weights()])
    assert errors[0] == errors[1] and "epoch 5;" in errors[0]
    assert len([count for count in launches if count > 4 * min(launches)]) == groups
    for on_device, on_cpu in zip(*weights, strict=True):
        assert np.isfinite(on_cpu).all()
        np.testing.assert_array_equal(on_device, on_cpu)


@pytest.mark.parametrize("batch_size", [None, 32], ids=["full-batch", "shuffled-mini-batches"])
def test_replayed_epochs_launch_one_graph_for_each_group_of_epochs_with_the_cpus_numbers(
    batch_size, monkeypatch, caplog
):
    """300 unobserved epochs in chunks of 1, 2, 4, ... 128 and 45: the chunks' whole groups of 16
    epochs replay as one graph each (the first group runs uncaptured, the second is captured),
    the rest step by step; Histories and weights equal the CPU's bit for bit."""
    monkeypatch.setattr(compiled_kernels, "ENABLED", False)  # the CPU run takes NumPy's paths, as the device does
    monkeypatch.setattr(loop, "CHUNK_SECONDS", 1e9)  # chunks double whatever the machine's speed
    X, y = cr.datasets.spiral_data(30, 3, seed=0)
    runs = []
    for device in ("cpu", STRICT):
        launches = count_launches(monkeypatch)
        model = network(device)
        with caplog.at_level(logging.WARNING, logger="chainrule"):
            history = model.fit(X, y, epochs=300, batch_size=batch_size, verbose=0, graph=True).history
        runs.append((history, [np.asarray(array) for array in model.get_weights()], model.optimizer.iterations))
    (cpu_history, cpu_weights, cpu_steps), (device_history, device_weights, device_steps) = runs
    assert device_history == cpu_history and device_steps == cpu_steps
    for on_device, on_cpu in zip(device_weights, cpu_weights, strict=True):
        np.testing.assert_array_equal(on_device, on_cpu)
    assert caplog.records == []  # every graph was captured
    # 90 rows: one step of 90 rows an epoch, or steps of 32, 32 and 26 rows (two step sizes)
    steps_per_epoch, step_sizes = (1, 1) if batch_size is None else (3, 2)
    step_graphs = [count for count in launches if count < max(launches) / 4]
    epoch_graphs = [count for count in launches if count >= max(launches) / 4]
    assert len(epoch_graphs) == (32 + 64 + 128 + 32) // 16  # every group but the first (uncaptured)
    single_epochs = 1 + 2 + 4 + 8 + 45 % 16  # each size's first step runs uncaptured
    assert len(step_graphs) == single_epochs * steps_per_epoch - step_sizes


def count_captures(monkeypatch) -> list[object]:
    """Every step or group of epochs the stand-in device captures, from now on."""
    captures: list[object] = []
    capture = GraphRunner._capture
    monkeypatch.setattr(GraphRunner, "_capture", lambda self, step: captures.append(step) or capture(self, step))
    return captures


def two_fits(device, between=lambda model: None, batch_sizes=(32, 32)):
    """Two fits of one model (observed epochs: with validation data), `between` changing it
    between them: both Histories and the final weights."""
    X, y = cr.datasets.spiral_data(50, 3, seed=0)
    X_val, y_val = cr.datasets.spiral_data(10, 3, seed=1)
    model = network(device)
    histories = []
    for fit, batch_size in enumerate(batch_sizes):
        if fit:
            between(model)
        history = model.fit(
            X, y, epochs=3, batch_size=batch_size, validation_data=(X_val, y_val), verbose=0, graph=True
        )
        histories.append(history.history)
    return histories, [np.asarray(array) for array in model.get_weights()]


def assert_same_fits(first, second):
    assert first[0] == second[0]
    for one, other in zip(first[1], second[1], strict=True):
        np.testing.assert_array_equal(one, other)


def test_a_second_fit_of_the_same_model_replays_the_graphs_the_first_captured(monkeypatch):
    monkeypatch.setattr(compiled_kernels, "ENABLED", False)  # the CPU run takes NumPy's paths, as the device does
    captures = count_captures(monkeypatch)
    launches = count_launches(monkeypatch)
    on_device = two_fits(STRICT)
    assert len(captures) == 2  # the steps of 32 and of 22 rows, in the first fit only
    assert len(launches) == 3 * 5 * 2 - 2  # every step of both fits but the first of each size
    assert_same_fits(on_device, two_fits("cpu"))


def compile_again(model):
    model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.01))


def penalise(model):
    model.layers[0].weight_regularizer_l2 = 1e-3


@pytest.mark.parametrize(
    "between, batch_sizes",
    [(compile_again, (32, 32)), (penalise, (32, 32)), (lambda model: None, (32, 64))],
    ids=["compiled-again", "a-penalty-added", "another-batch-size"],
)
def test_a_second_fit_that_changes_what_the_steps_were_built_from_captures_anew(between, batch_sizes, monkeypatch):
    monkeypatch.setattr(compiled_kernels, "ENABLED", False)
    captures = count_captures(monkeypatch)
    on_device = two_fits(STRICT, between, batch_sizes)
    assert len(captures) == 4  # two step sizes in each fit
    assert_same_fits(on_device, two_fits("cpu", between, batch_sizes))


def test_a_kept_full_batch_step_does_not_train_on_or_hold_the_last_fits_data(monkeypatch):
    monkeypatch.setattr(compiled_kernels, "ENABLED", False)
    data_sets = [cr.datasets.spiral_data(30, 3, seed=seed) for seed in (0, 1)]
    held = []
    validated = cr.Model.validated

    def remember_inputs(self, X, y, owner):
        inputs, targets = validated(self, X, y, owner)
        held.append(weakref.ref(inputs))
        return inputs, targets

    runs = []
    for device in (STRICT, "cpu"):
        model = network(device)
        monkeypatch.setattr(cr.Model, "validated", remember_inputs)
        histories = [model.fit(X, y, epochs=40, verbose=0, graph=True).history for X, y in data_sets]
        monkeypatch.setattr(cr.Model, "validated", validated)
        runs.append((histories, [np.asarray(array) for array in model.get_weights()]))
        gc.collect()
        assert held[0]() is None  # the first data set's device copy went with the first fit
        held.clear()
    assert_same_fits(*runs)


def test_asking_for_tf32_where_it_cannot_apply_says_so(caplog):
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    with caplog.at_level(logging.WARNING, logger="chainrule"):
        network().fit(X, y, epochs=2, verbose=0, graph=True, allow_tf32=True)
    assert len(caplog.records) == 1
    assert "TF32 applies only to the layer products of captured steps on a CUDA device" in caplog.text
