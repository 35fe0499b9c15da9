"""Model files: exact round trips, exact resumption, and safe refusal of damaged or hostile files."""

import io
import json
import os
import pickle
import zipfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import chainrule as cr


def every_layer_model(dtype, seed=0):
    model = cr.Model(seed=seed)
    model.add(cr.Dense(2, 8, weight_regularizer_l1=1e-4, bias_regularizer_l2=1e-3, dtype=dtype))
    model.add(cr.LeakyReLU(0.05, dtype=dtype))
    model.add(cr.Dropout(0.1, dtype=dtype))
    model.add(cr.Dense(8, 8, dtype=dtype))
    model.add(cr.Tanh(dtype=dtype))
    model.add(cr.Dense(8, 8, dtype=dtype))
    model.add(cr.Sigmoid(dtype=dtype))
    model.add(cr.Dense(8, 8, dtype=dtype))
    model.add(cr.Linear(dtype=dtype))
    model.add(cr.Dense(8, 8, dtype=dtype))
    model.add(cr.ReLU(dtype=dtype))
    model.add(cr.Dense(8, 3, dtype=dtype))
    model.add(cr.Softmax(dtype=dtype))
    return model.compile(loss="categorical_crossentropy", optimizer=cr.SGD(0.1, momentum=0.9, nesterov=True))


DATA = cr.datasets.spiral_data(20, 3, seed=0)


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("include_optimizer", [False, True])
def test_round_trip_predicts_bit_identically(tmp_path, dtype, include_optimizer):
    X, y = DATA
    model = every_layer_model(dtype)
    model.fit(X, y, epochs=3, batch_size=16, verbose=0)
    path = tmp_path / "model.npz"
    model.save(path, include_optimizer=include_optimizer)
    loaded = cr.load_model(path)
    assert [repr(layer) for layer in loaded.layers] == [repr(layer) for layer in model.layers]
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert loaded.predict(X).dtype == dtype
    assert loaded.optimizer.get_config() == model.optimizer.get_config()
    assert loaded.optimizer.iterations == (model.optimizer.iterations if include_optimizer else 0)


def assert_resumes_exactly(tmp_path, build, first_epochs, more_epochs):
    """first_epochs, a file, more_epochs more: the same weights as all the epochs straight."""
    X, y = DATA
    straight = build()
    straight.fit(X, y, epochs=first_epochs + more_epochs, batch_size=16, verbose=0)
    first = build()
    first.fit(X, y, epochs=first_epochs, batch_size=16, verbose=0)
    first.save(tmp_path / "part.npz", include_optimizer=True)
    resumed = cr.load_model(tmp_path / "part.npz")
    resumed.fit(X, y, epochs=more_epochs, batch_size=16, verbose=0)
    for a, b in zip(straight.get_weights(), resumed.get_weights(), strict=True):
        assert np.array_equal(a, b)
    return resumed


@pytest.mark.parametrize(
    "optimizer",
    [
        lambda: cr.Adam(0.01, decay=1e-3),
        lambda: cr.AdamW(0.01, decay=1e-3, weight_decay=0.1),
        lambda: cr.RMSprop(0.01),
        cr.Adagrad,
    ],
)
def test_training_resumes_exactly_where_it_stopped(tmp_path, optimizer):
    def build():
        model = cr.Model(seed=3)
        model.add(cr.Dense(2, 16)).add(cr.ReLU()).add(cr.Dropout(0.2)).add(cr.Dense(16, 3)).add(cr.Softmax())
        return model.compile(loss="categorical_crossentropy", optimizer=optimizer())

    assert_resumes_exactly(tmp_path, build, 50, 50)


def test_a_seeded_dropout_resumes_exactly(tmp_path):
    def build():
        model = cr.Model(seed=3)
        model.add(cr.Dense(2, 16)).add(cr.ReLU()).add(cr.Dropout(0.3, seed=11)).add(cr.Dense(16, 3)).add(cr.Softmax())
        return model.compile(loss="categorical_crossentropy", optimizer=cr.Adam(0.01))

    resumed = assert_resumes_exactly(tmp_path, build, 10, 20)
    assert resumed.layers[2].seed == 11 and resumed.layers[2].rng is not resumed.rng


def test_a_fused_sigmoid_output_resumes_through_the_same_gradient(tmp_path):
    def build():
        model = cr.Model(seed=3)
        model.add(cr.Dense(2, 16)).add(cr.Tanh()).add(cr.Dense(16, 1)).add(cr.Sigmoid())
        return model.compile(loss="binary_crossentropy", optimizer=cr.Adam(0.01), fuse_sigmoid=True)

    resumed = assert_resumes_exactly(tmp_path, build, 20, 20)
    assert isinstance(resumed.fused_loss, cr.SigmoidBinaryCrossentropy)


def test_a_sigmoid_output_saved_unfused_loads_unfused(tmp_path):
    model = cr.Model(seed=3).add(cr.Dense(2, 1)).add(cr.Sigmoid())
    model.compile(loss="binary_crossentropy", optimizer="adam").save(tmp_path / "m.npz")
    assert cr.load_model(tmp_path / "m.npz").fused_loss is None


def test_numpy_integer_seeds_save(tmp_path):
    model = cr.Model(seed=np.int64(3)).add(cr.Dense(2, 3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer="sgd").save(tmp_path / "m.npz")
    assert cr.load_model(tmp_path / "m.npz").seed == 3


def test_saving_replaces_the_file_atomically(tmp_path, monkeypatch):
    X, y = DATA
    model = every_layer_model(np.float32)
    path = tmp_path / "model.npz"
    model.save(path)
    before = path.read_bytes()

    def crash(*args, **kwargs):
        raise OSError("disk full")

    monkeypatch.setattr(np, "savez", crash)
    with pytest.raises(OSError, match="disk full"):
        model.save(path)
    assert path.read_bytes() == before
    assert list(tmp_path.iterdir()) == [path]  # no temporary file left behind


class Payload:
    """Unpickling this would create a file: proof that code ran."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (Path.touch, (self.marker,))


def test_a_file_with_a_pickle_payload_is_refused_without_running_it(tmp_path):
    marker = tmp_path / "code-ran"
    hostile = tmp_path / "hostile.npz"
    np.savez(hostile, architecture=np.array([Payload(marker)], dtype=object))
    with pytest.raises(ValueError, match="hostile.npz"):
        cr.load_model(hostile)
    raw = tmp_path / "raw.npz"
    raw.write_bytes(pickle.dumps(Payload(marker)))
    with pytest.raises(ValueError, match="raw.npz"):
        cr.load_model(raw)
    assert not marker.exists()


def rewrite(source, target, change):
    """Copy a model archive, letting `change(name, array)` replace or drop (None) members."""
    with np.load(source) as archive:
        arrays = {name: change(name, archive[name]) for name in archive.files}
    np.savez(target, **{name: array for name, array in arrays.items() if array is not None})


def architecture_with(**changes):
    def change(name, array):
        if name != "architecture":
            return array
        record = json.loads(array.tobytes()) | changes
        return np.frombuffer(json.dumps(record).encode(), dtype=np.uint8)

    return change


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (architecture_with(version=99), "format version 99"),
        (architecture_with(format="other"), "not a chainrule model file"),
        (architecture_with(fuse_sigmoid="yes"), "its fuse_sigmoid 'yes' is not true or false"),
        (architecture_with(layers=[{"class": "Conv3D", "config": {}}]), "not built into chainrule"),
        (
            architecture_with(layers=[{"class": "Conv2D", "config": {"in_channels": 1, "filters": 2}}]),
            "layer 0 declares a Conv2D layer that cannot be built: 'Conv2D: kernel_size must be a positive integer",
        ),
        (
            architecture_with(
                layers=[{"class": "Conv2D", "config": {"in_channels": 4096, "filters": 4096, "kernel_size": 9}}]
            ),
            "it declares 1358958592 parameters, more than max_parameters",
        ),
        (lambda name, a: None if name == "layer0.weights" else a, r"the member layer0.weights is missing"),
        (
            lambda name, a: a[:, :2] if name == "layer0.weights" else a,
            r"the member layer0.weights has shape \(2, 2\); expected \(2, 8\)",
        ),
        (lambda name, a: a.astype(np.float64) if name == "layer3.weights" else a, r"layer3.weights are float64"),
        (
            architecture_with(layers=[{"class": "Dense", "config": {"n_inputs": 10**6, "n_neurons": 10**6}}]),
            "it declares 1000001000000 parameters, more than max_parameters=10000000",
        ),
        (lambda name, a: a * np.nan if name == "layer3.biases" else a, "NaN"),
        (lambda name, a: None if name == "architecture" else a, "no architecture record"),
    ],
)
def test_a_file_that_does_not_match_its_architecture_is_refused(tmp_path, change, message):
    every_layer_model(np.float32).save(tmp_path / "good.npz")
    rewrite(tmp_path / "good.npz", tmp_path / "bad.npz", change)
    with pytest.raises(ValueError, match=rf"load_model: cannot load .*bad.npz: .*{message}"):
        cr.load_model(tmp_path / "bad.npz")


def test_truncated_and_foreign_files_are_refused(tmp_path):
    every_layer_model(np.float32).save(tmp_path / "good.npz")
    data = (tmp_path / "good.npz").read_bytes()
    (tmp_path / "short.npz").write_bytes(data[: len(data) // 2])
    (tmp_path / "text.npz").write_text("hello")
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        archive.writestr("readme.txt", "not a model")
    (tmp_path / "zip.npz").write_bytes(buffer.getvalue())
    for name in ("short.npz", "text.npz", "zip.npz"):
        with pytest.raises(ValueError, match=name):
            cr.load_model(tmp_path / name)
    with pytest.raises(FileNotFoundError):
        cr.load_model(tmp_path / "missing.npz")


@pytest.fixture(scope="module")
def model_bytes(tmp_path_factory):
    path = tmp_path_factory.mktemp("fuzz") / "model.npz"
    every_layer_model(np.float32).save(path, include_optimizer=True)
    return path.read_bytes()


@settings(max_examples=150, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(data=st.data())
def test_mutated_files_load_or_raise_value_error(tmp_path, model_bytes, data):
    mutated = bytearray(model_bytes)
    for _ in range(data.draw(st.integers(1, 8))):
        position = data.draw(st.integers(0, len(mutated) - 1))
        mutated[position] = data.draw(st.integers(0, 255))
    if data.draw(st.booleans()):
        mutated = mutated[: data.draw(st.integers(0, len(mutated)))]
    path = tmp_path / "fuzzed.npz"
    path.write_bytes(bytes(mutated))
    try:
        model = cr.load_model(path)
    except ValueError as error:
        assert "fuzzed.npz" in str(error)
    else:
        assert isinstance(model, cr.Model)


def test_model_checkpoint_keeps_the_best_epoch(tmp_path):
    X, y = DATA
    model = every_layer_model(np.float32)
    path = tmp_path / "best.npz"
    checkpoint = cr.callbacks.ModelCheckpoint(path, monitor="val_loss", save_best_only=True)
    history = model.fit(X, y, epochs=8, validation_data=(X, y), callbacks=[checkpoint], verbose=0)
    best = cr.load_model(path)
    assert best.evaluate(X, y)["loss"] == pytest.approx(min(history.history["val_loss"]), rel=1e-5)


@pytest.mark.parametrize(
    ("change", "message"),
    [
        (lambda name, a: -a if name == "layer1.running_var" else a, "layer1.running_var holds a negative variance"),
        (lambda name, a: None if name == "layer1.running_mean" else a, "the member layer1.running_mean is missing"),
        (lambda name, a: np.full_like(a, np.inf) if name == "layer1.running_mean" else a, "NaN or inf"),
    ],
)
def test_hostile_running_statistics_are_refused(tmp_path, change, message):
    model = cr.Model(seed=0).add(cr.Dense(2, 3)).add(cr.BatchNormalization(3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer="sgd").save(tmp_path / "good.npz")
    rewrite(tmp_path / "good.npz", tmp_path / "bad.npz", change)
    with pytest.raises(ValueError, match=rf"load_model: cannot load .*bad.npz: .*{message}"):
        cr.load_model(tmp_path / "bad.npz")


def test_a_learners_layer_that_could_not_be_loaded_again_is_refused_before_anything_is_written(tmp_path):
    from book_classes import Layer_Dense

    class MyDense(Layer_Dense, cr.Layer):  # the book's Dense, mixed into a chainrule Layer
        pass

    model = cr.Model(seed=0).add(cr.Dense(2, 3)).add(MyDense(3, 3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    path = tmp_path / "model.npz"
    with pytest.raises(ValueError, match=r"layer 1 \(MyDense\) could not be loaded again: MyDense\(\*\*\{\}\) fails"):
        model.save(path)
    assert not path.exists()


def test_a_learners_layer_whose_weights_are_not_its_parameters_is_refused(tmp_path):
    from book_classes import Layer_Dense

    class MyDense(Layer_Dense, cr.Layer):
        def __init__(self, n_inputs=3, n_neurons=3):
            super().__init__(n_inputs, n_neurons)

    model = cr.Model(seed=0).add(cr.Dense(2, 3)).add(MyDense()).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    with pytest.raises(ValueError, match="holds weights, biases that its parameters\\(\\) does not return"):
        model.save(tmp_path / "model.npz")
    assert not (tmp_path / "model.npz").exists()


def test_a_path_that_is_not_a_regular_file_is_named_for_what_it_is(tmp_path):
    os.mkfifo(tmp_path / "fifo.npz")  # opening it would wait for a writer forever
    for path, kind in [
        (tmp_path, "a folder"),
        ("/dev/zero", "not a regular file"),
        (tmp_path / "fifo.npz", "not a regular"),
    ]:
        with pytest.raises(ValueError, match=rf"load_model: {path} is {kind}"):
            cr.load_model(path)
    with pytest.raises(FileNotFoundError, match="load_model: no such file"):
        cr.load_model(tmp_path / "missing.npz")
