"""`fit(graph=True)`: the training step over buffers allocated once, as a CUDA graph captures it.

Its numbers are the eager step's up to rounding (checked in float64 and float32), and on the
stand-in device of `strict_device` every step runs as under a CUDA stream capture: an
allocation or a read back to the host inside it fails the test.
"""

import logging

import numpy as np
import pytest
from strict_device import STRICT, CaptureError, capturing

import chainrule as cr
from chainrule import compiled


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


@pytest.fixture(params=["compiled", "numpy"])
def kernels(request, monkeypatch):
    """Both forms of each step: the compiled kernels (extra `fast`) and NumPy's calls."""
    if request.param == "numpy":
        monkeypatch.setattr(compiled, "ENABLED", False)
    elif not compiled.ENABLED:
        pytest.skip("the compiled kernels need numba (extra 'fast')")
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
    monkeypatch.setattr(compiled, "ENABLED", False)  # the CPU run takes NumPy's paths, as the device does
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
        for forbidden in (lambda: array * 2.0, lambda: float(array[0]), lambda: array[[0, 1]], array.get):
            with pytest.raises(CaptureError):
                forbidden()


def hidden_layer(layer):
    """Dense, ReLU, `layer`, Dense, Softmax."""
    model = cr.Model(seed=0, dtype=np.float64).add(cr.Dense(2, 8)).add(cr.ReLU()).add(layer)
    model.add(cr.Dense(8, 3)).add(cr.Softmax())
    return model.compile(loss="categorical_crossentropy", optimizer="adam")


@pytest.mark.parametrize(
    "build, reason",
    [
        (lambda: network(optimizer=lambda: cr.SGD(0.1)), "the optimizer is SGD, not Adam"),
        (lambda: hidden_layer(cr.Dropout(0.1)), "layer 2 is Dropout"),
        (lambda: hidden_layer(cr.Tanh()), "layer 2 is Tanh"),
    ],
    ids=["sgd", "dropout", "tanh"],
)
def test_networks_a_static_step_cannot_take_train_eagerly_and_the_log_says_why(build, reason, caplog):
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    eager, graph = build(), build()
    eager.fit(X, y, epochs=3, batch_size=16, verbose=0)
    with caplog.at_level(logging.WARNING, logger="chainrule"):
        graph.fit(X, y, epochs=3, batch_size=16, verbose=0, graph=True)
    assert f"Model.fit(graph=True) runs eager steps: {reason}" in caplog.text
    for graph_array, eager_array in zip(graph.get_weights(), eager.get_weights(), strict=True):
        np.testing.assert_array_equal(graph_array, eager_array)


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


def test_fit_takes_the_compiled_whole_step_by_default_for_small_networks_only(monkeypatch):
    if not compiled.ENABLED:
        pytest.skip("the compiled kernels need numba (extra 'fast')")
    calls = []
    whole_step = compiled.static_step
    monkeypatch.setattr(compiled, "static_step", lambda *arguments: calls.append(1) or whole_step(*arguments))
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    network().fit(X, y, epochs=2, verbose=0)
    assert len(calls) == 2
    network().fit(X, y, epochs=2, verbose=0, graph=False)
    wide = network(hidden=(2048, 1024))  # 60 x 2048 x 1024 multiply-adds per batch: above SMALL_WORK
    wide.fit(X, y, epochs=1, verbose=0)
    assert len(calls) == 2
