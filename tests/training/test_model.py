"""Model: compile defaults, fit/evaluate/predict, determinism, callbacks, stopping and bad input."""

import os
import pickle
import signal

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr


def classifier(seed=0, dtype=np.float32, dropout=0.0):
    model = cr.Model(seed=seed)
    model.add(cr.Dense(2, 16, dtype=dtype))
    model.add(cr.ReLU(dtype=dtype))
    if dropout:
        model.add(cr.Dropout(dropout, dtype=dtype))
    model.add(cr.Dense(16, 3, dtype=dtype))
    model.add(cr.Softmax(dtype=dtype))
    return model.compile(loss=cr.CategoricalCrossentropy(), optimizer=cr.Adam(0.02))


@pytest.fixture
def spiral():
    return cr.datasets.spiral_data(30, 3, seed=0)


def test_fit_records_every_quantity_per_epoch(spiral):
    X, y = spiral
    history = classifier().fit(
        X, y, epochs=5, batch_size=32, validation_data=cr.datasets.spiral_data(10, 3, seed=1), verbose=0
    )
    expected = {
        "loss",
        "data_loss",
        "regularization_loss",
        "accuracy",
        "val_loss",
        "val_data_loss",
        "val_regularization_loss",
        "val_accuracy",
    }
    assert set(history.history) == expected
    assert all(len(values) == 5 for values in history.history.values())
    assert history.epoch == [0, 1, 2, 3, 4]


def test_training_lowers_the_loss(spiral):
    X, y = spiral
    history = classifier().fit(X, y, epochs=100, batch_size=16, verbose=0)
    assert history.history["loss"][-1] < 0.9 * history.history["loss"][0]


def test_a_softmax_output_with_crossentropy_trains_through_the_fused_gradient():
    model = classifier()
    assert isinstance(model.fused_loss, cr.SoftmaxCategoricalCrossentropy)
    regression = cr.Model().add(cr.Dense(1, 1)).add(cr.Linear()).compile(loss="mse", optimizer="sgd")
    assert regression.fused_loss is None and regression.metrics == {}


def test_the_loss_in_history_matches_evaluate_before_the_epoch(spiral):
    X, y = spiral
    model = classifier()
    before = model.evaluate(X, y)
    history = model.fit(X, y, epochs=1, verbose=0, shuffle=False)  # full batch: scored before the update
    assert history.history["data_loss"][0] == pytest.approx(before["loss"], rel=1e-6)
    assert history.history["accuracy"][0] == pytest.approx(before["accuracy"])


def test_metrics_default_from_the_loss():
    binary = cr.Model().add(cr.Dense(2, 1)).add(cr.Sigmoid()).compile(loss="binary_crossentropy", optimizer="adam")
    assert list(binary.metrics) == ["accuracy"]
    assert list(classifier().metrics) == ["accuracy"]
    with pytest.raises(ValueError, match="'accuracy' needs a classification loss"):
        cr.Model().add(cr.Dense(1, 1)).compile(loss="mse", optimizer="adam", metrics=["accuracy"])


def test_mini_batches_keep_the_last_partial_batch(spiral):
    X, y = spiral  # 90 samples, batches of 40: 40 + 40 + 10
    model = classifier()
    model.fit(X, y, epochs=1, batch_size=40, verbose=0)
    assert model.optimizer.iterations == 3


def test_same_seed_gives_bit_identical_weights_and_history(spiral):
    X, y = spiral
    runs = []
    for _ in range(2):
        model = classifier(seed=7, dropout=0.2)
        history = model.fit(X, y, epochs=5, batch_size=16, verbose=0)
        runs.append((model.get_weights(), history.history))
    for a, b in zip(runs[0][0], runs[1][0], strict=True):
        assert np.array_equal(a, b)
    assert runs[0][1] == runs[1][1]
    other = classifier(seed=8, dropout=0.2)
    other.fit(X, y, epochs=5, batch_size=16, verbose=0)
    assert not np.array_equal(other.get_weights()[0], runs[0][0][0])


def test_fit_leaves_numpy_global_random_state_alone(spiral):
    X, y = spiral
    state = np.random.get_state()[1].copy()
    classifier(dropout=0.3).fit(X, y, epochs=2, batch_size=8, verbose=0)
    assert np.array_equal(np.random.get_state()[1], state)


def test_predict_and_evaluate(spiral):
    X, y = spiral
    model = classifier()
    model.fit(X, y, epochs=50, verbose=0)
    probabilities = model.predict(X, batch_size=7)
    assert probabilities.shape == (90, 3)
    assert_allclose(probabilities.sum(axis=1), 1, rtol=1e-5)
    assert_allclose(probabilities, model.predict(X), rtol=1e-6)
    scores = model.evaluate(X, y, batch_size=13)
    assert set(scores) == {"loss", "accuracy"}
    assert scores["accuracy"] == pytest.approx(np.mean(model.predict_classes(X) == y))


def test_early_stopping_restores_the_best_weights(spiral):
    X, y = spiral
    model = classifier()
    model.optimizer = cr.SGD(5.0)  # far too high: validation loss soon stops improving
    stopper = cr.callbacks.EarlyStopping(monitor="val_loss", patience=2, restore_best_weights=True)
    history = model.fit(X, y, epochs=100, validation_data=(X, y), callbacks=[stopper], verbose=0)
    assert stopper.stopped_epoch is not None and len(history.epoch) == stopper.stopped_epoch + 1
    assert len(history.epoch) == stopper.best_epoch + 2 + 2
    assert model.evaluate(X, y)["loss"] == pytest.approx(min(history.history["val_loss"]), rel=1e-5)


def test_learning_rate_scheduler_sets_the_rate_each_epoch(spiral):
    X, y = spiral
    model = classifier()
    rates = []

    class Record(cr.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            rates.append(self.model.optimizer.current_learning_rate)

    schedule = cr.callbacks.LearningRateScheduler(lambda epoch, rate: 0.1 / (epoch + 1))
    model.fit(X, y, epochs=3, callbacks=[schedule, Record()], verbose=0)
    assert_allclose(rates, [0.1, 0.05, 0.1 / 3])


def test_a_diverging_loss_stops_with_a_clear_error(spiral):
    X, y = spiral
    model = cr.Model(seed=0).add(cr.Dense(2, 1)).add(cr.Linear())
    model.compile(loss="mse", optimizer=cr.SGD(1e6))
    with pytest.raises(cr.TrainingDivergedError, match=r"epoch \d+.*lower learning rate"):
        model.fit(X * 100, y.astype(float), epochs=50, verbose=0)
    assert len(model.history.epoch) >= 1  # the epochs before it are kept


def test_ctrl_c_stops_after_the_current_step_and_keeps_the_history(spiral):
    X, y = spiral
    model = classifier()

    class PressCtrlC(cr.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            if epoch == 2:
                os.kill(os.getpid(), signal.SIGINT)

    history = model.fit(X, y, epochs=50, callbacks=[PressCtrlC()], verbose=0)
    assert history.interrupted and history.epoch == [0, 1, 2]
    assert model.optimizer.iterations == len(history.epoch)
    assert all(np.isfinite(w).all() for w in model.get_weights())
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_verbose_2_prints_one_line_per_epoch(spiral, capsys):
    X, y = spiral
    classifier().fit(X, y, epochs=3, verbose=2)
    lines = capsys.readouterr().out.strip().splitlines()
    assert len(lines) == 3 and lines[0].startswith("epoch 1/3  loss ")


def test_model_gradcheck_covers_every_parameter():
    X, y = cr.datasets.spiral_data(5, 3, seed=0)
    model = cr.Model(seed=0)
    model.add(cr.Dense(2, 4, weight_regularizer_l2=0.1, bias_regularizer_l1=0.1, dtype=np.float64))
    model.add(cr.Tanh(dtype=np.float64))
    model.add(cr.Dense(4, 3, dtype=np.float64))
    model.add(cr.Softmax(dtype=np.float64))
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    model.layers[0].biases = np.random.default_rng(0).standard_normal((1, 4))
    result = cr.gradcheck(model, X, y)
    assert result.passed, str(result)
    as_trained = [name for name in result.errors if name.startswith("model.")]
    assert as_trained == [f"model.layer{i}.Dense.{p}" for i in (0, 2) for p in ("weights", "biases")]
    layer_by_layer = [name for name in result.errors if not name.startswith("model.")]
    assert layer_by_layer[0] == "loss.CategoricalCrossentropy.inputs" and layer_by_layer[-1] == "layer0.Dense.biases"
    assert {"layer3.Softmax.inputs", "layer1.Tanh.inputs", "layer0.Dense.inputs"} <= set(layer_by_layer)


def test_model_gradcheck_covers_a_sigmoid_output_trained_through_its_fused_gradient():
    rng = np.random.default_rng(1)
    X, y = rng.standard_normal((6, 3)), rng.integers(0, 2, (6, 2))
    model = cr.Model(seed=0).add(cr.Dense(3, 4, dtype=np.float64)).add(cr.Tanh(dtype=np.float64))
    model.add(cr.Dense(4, 2, dtype=np.float64)).add(cr.Sigmoid(dtype=np.float64))
    assert model.compile(loss="binary_crossentropy", optimizer="adam").fused_loss is None  # the book's steps
    model.compile(loss="binary_crossentropy", optimizer="adam", fuse_sigmoid=True)
    assert isinstance(model.fused_loss, cr.SigmoidBinaryCrossentropy)
    result = cr.gradcheck(model, X, y)
    assert result.passed, str(result)
    assert len([name for name in result.errors if name.startswith("model.")]) == 4


def test_row_weights_give_the_gradient_of_the_weighted_mean_loss():
    """backward_trusted(..., row_weights = w * n / sum(w)) against central differences of
    sum(w_i * loss_i) / sum(w), in plain NumPy over the first layer's weights."""
    rng = np.random.default_rng(2)
    X, y, w = rng.standard_normal((5, 3)), np.array([0, 2, 1, 1, 0]), np.array([0.5, 0.0, 2.0, 1.0, 1.5])
    model = cr.Model(seed=0).add(cr.Dense(3, 4, dtype=np.float64)).add(cr.Tanh(dtype=np.float64))
    model.add(cr.Dense(4, 3, dtype=np.float64)).add(cr.Softmax(dtype=np.float64))
    model.compile(loss="categorical_crossentropy", optimizer="sgd")
    inputs, targets = model.validated(X, y, "test")
    model.backward_trusted(model.forward_trusted(inputs, True), targets, w * len(w) / w.sum())
    analytic = model.layers[0].dweights.copy()

    def weighted_loss():
        return w @ model.loss.forward(model.forward_trusted(inputs, False), targets) / w.sum()

    weights = model.layers[0].weights
    numerical = np.zeros_like(weights)
    for index in np.ndindex(weights.shape):
        saved = weights[index]
        weights[index] = saved + 1e-6
        above = weighted_loss()
        weights[index] = saved - 1e-6
        below = weighted_loss()
        weights[index] = saved
        numerical[index] = (above - below) / 2e-6
    assert_allclose(analytic, numerical, rtol=1e-6, atol=1e-9)


BAD_FIT = [
    (
        lambda m, X, y: m.fit(X[:, :1], y, verbose=0),
        ValueError,
        r"Model.fit: X must have 2 columns, got \S+ \(90, 1\)",
    ),
    (lambda m, X, y: m.fit(X, y[:-1], verbose=0), ValueError, r"y_true holds 89 labels"),
    (lambda m, X, y: m.fit(X, y + 1, verbose=0), ValueError, "class index 3 is out of range for 3 classes"),
    (lambda m, X, y: m.fit(np.where(X > 0.9, np.nan, X), y, verbose=0), ValueError, "X contains NaN"),
    (lambda m, X, y: m.fit(X, y, epochs=0, verbose=0), ValueError, "epochs must be a positive integer"),
    (lambda m, X, y: m.fit(X, y, batch_size=0, verbose=0), ValueError, "batch_size must be a positive integer"),
    (lambda m, X, y: m.fit(X, y, validation_data=(X, y[:3]), verbose=0), ValueError, r"validation_data.*labels"),
    (lambda m, X, y: m.predict(X[:, :1]), ValueError, "Model.predict: X must have 2 columns"),
    (lambda m, X, y: m.add("dense"), TypeError, "Model.add: expected a Layer"),
]


@pytest.mark.parametrize(("call", "error", "message"), BAD_FIT)
def test_bad_input_fails_before_any_training_step(spiral, call, error, message):
    X, y = spiral
    model = classifier()
    before = model.get_weights()
    with pytest.raises(error, match=message):
        call(model, X, y)
    assert model.optimizer.iterations == 0
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_compile_checks_the_architecture():
    with pytest.raises(ValueError, match="layer 2 .* takes 5 inputs but the layer before it gives 4"):
        cr.Model().add(cr.Dense(2, 4)).add(cr.ReLU()).add(cr.Dense(5, 1)).compile(loss="mse", optimizer="adam")
    with pytest.raises(
        TypeError, match=r"layer 1 \(ReLU\) computes in float64, but layer 0 \(Dense\) .*cr.Model\(dtype="
    ):
        cr.Model().add(cr.Dense(2, 4)).add(cr.ReLU(dtype=np.float64)).compile(loss="mse", optimizer="adam")
    with pytest.raises(ValueError, match="call compile"):
        cr.Model().add(cr.Dense(2, 1)).fit(np.ones((2, 2)), np.ones((2, 1)))
    with pytest.raises(ValueError, match="unknown optimizer 'adamax'"):
        cr.Model().add(cr.Dense(2, 1)).compile(loss="mse", optimizer="adamax")


def test_reinitialising_a_layer_after_fit_keeps_training_it(spiral):
    X, y = spiral
    model = classifier()
    model.fit(X, y, epochs=2, verbose=0)
    model.layers[0].initialize(np.random.default_rng(1))
    before = model.layers[0].weights.copy()
    model.fit(X, y, epochs=1, verbose=0)
    assert not np.array_equal(model.layers[0].weights, before)
    assert np.shares_memory(model.layers[0].weights, model.parameter_store().values)


def test_a_pickled_model_goes_on_training_exactly_like_the_original(spiral):
    X, y = spiral
    model = classifier(dropout=0.1)
    model.fit(X, y, epochs=5, batch_size=16, verbose=0)
    copy = pickle.loads(pickle.dumps(model))
    expected, resumed = (
        model.fit(X, y, epochs=5, batch_size=16, verbose=0),
        copy.fit(X, y, epochs=5, batch_size=16, verbose=0),
    )
    assert resumed.history == expected.history
    for a, b in zip(model.get_weights(), copy.get_weights(), strict=True):
        assert np.array_equal(a, b)


@pytest.mark.parametrize(
    ("loss", "output_layer"), [("categorical_crossentropy", "Softmax"), ("binary_crossentropy", "Sigmoid")]
)
def test_a_crossentropy_after_a_dense_output_names_the_missing_layer(loss, output_layer):
    with pytest.raises(ValueError, match=rf"the model ends in Dense: add cr.{output_layer}\(\) as the last layer"):
        cr.Model().add(cr.Dense(2, 3)).compile(loss=loss, optimizer="sgd")


def test_the_fused_loss_object_points_to_the_softmax_layer():
    model = cr.Model().add(cr.Dense(2, 3))
    with pytest.raises(
        TypeError, match=r"end the model with a cr.Softmax\(\) layer and use loss='categorical_crossentropy'"
    ):
        model.compile(loss=cr.SoftmaxCategoricalCrossentropy(), optimizer="sgd")


@pytest.mark.parametrize("call", ["fit", "evaluate"])
def test_empty_data_is_named(call):
    model = classifier()
    with pytest.raises(ValueError, match=rf"Model.{call}: X has no samples \(shape \(0, 2\)\)"):
        getattr(model, call)(np.empty((0, 2)), np.empty(0, dtype=int))


def test_predicting_nothing_gives_an_empty_array():
    assert classifier().predict(np.empty((0, 2))).shape == (0, 3)


def test_after_divergence_the_weights_are_the_last_finite_ones(spiral):
    X, y = spiral
    model = cr.Model(seed=0).add(cr.Dense(2, 1)).add(cr.Linear())
    model.compile(loss="mse", optimizer=cr.SGD(1e6))
    with pytest.raises(cr.TrainingDivergedError):
        model.fit(X * 100, y.astype(float), epochs=50, verbose=0)
    assert np.isfinite(model.evaluate(X * 100, y.astype(float))["loss"])


def test_a_huge_learning_rate_never_returns_nan_predictions(spiral):
    X, y = spiral
    model = classifier()
    model.optimizer = cr.SGD(1e30)
    with pytest.raises(cr.TrainingDivergedError, match="epoch 1"):
        model.fit(X, y, epochs=1, verbose=0)
    assert np.isfinite(model.predict(X)).all()


def test_a_nan_validation_loss_stops_training(spiral):
    X, y = spiral
    model = cr.Model(seed=0).add(cr.Dense(2, 1)).add(cr.Linear()).compile(loss="mse", optimizer="sgd")
    X_val = np.full((3, 2), 1e30, dtype=np.float32)  # finite inputs whose predictions overflow
    model.layers[0].weights = [[1e10], [1e10]]
    with pytest.raises(cr.TrainingDivergedError, match="the validation loss became"):
        model.fit(np.zeros((4, 2)), np.zeros(4), epochs=3, validation_data=(X_val, np.zeros(3)), verbose=0)


def test_one_hot_rows_must_be_probabilities(spiral):
    X, _ = spiral
    with pytest.raises(ValueError, match=r"one-hot .* values in \[0, 1\] summing to 1"):
        classifier().fit(X, np.ones((len(X), 3)), epochs=1, verbose=0)


def test_an_out_of_range_unsigned_label_is_reported_as_itself(spiral):
    X, _ = spiral
    labels = np.zeros(len(X), dtype=np.uint64)
    labels[0] = 2**63 + 5
    with pytest.raises(ValueError, match=f"class index {2**63 + 5} is out of range"):
        classifier().fit(X, labels, epochs=1, verbose=0)


def test_numpy_integers_are_accepted_as_settings():
    assert cr.callbacks.EarlyStopping(patience=np.int64(3)).patience == 3
    assert cr.Model(seed=np.int64(3)).seed == 3


@pytest.mark.parametrize(
    "callback",
    [
        lambda path: cr.callbacks.ModelCheckpoint(path, monitor="val_accuracy"),
        lambda path: cr.callbacks.EarlyStopping(),
    ],
)
def test_a_monitored_value_fit_will_not_record_is_refused_before_training(spiral, tmp_path, callback):
    X, y = spiral
    model = classifier()
    before = model.get_weights()
    with pytest.raises(ValueError, match="cannot monitor 'val_"):
        model.fit(X, y, epochs=5, verbose=0, callbacks=[callback(tmp_path / "best.npz")])
    assert all(np.array_equal(a, b) for a, b in zip(before, model.get_weights(), strict=True))


def test_a_column_with_missing_values_is_refused_by_its_own_dtype_name(spiral):
    X, y = spiral

    class NullableColumn:
        """Stands in for a pandas Float64 column with a missing value: NumPy sees objects."""

        dtype = "Float64"

        def __array__(self, dtype=None, copy=None):
            return np.array([0.5, None, 1.0], dtype=object)

    with pytest.raises(TypeError, match="must be numeric without missing values, got dtype Float64"):
        classifier().fit(X[:3], NullableColumn(), epochs=1, verbose=0)


@pytest.mark.parametrize("batch_size", [None, 32])
@pytest.mark.parametrize("graph", [None, False])
def test_read_only_and_memory_mapped_data_train_like_ordinary_arrays(spiral, tmp_path, batch_size, graph):
    X, y = spiral
    expected = classifier().fit(X, y, epochs=4, batch_size=batch_size, graph=graph, verbose=0).history["loss"]
    read_only_X, read_only_y = X.copy(), y.copy()
    read_only_X.flags.writeable = read_only_y.flags.writeable = False
    np.save(tmp_path / "X.npy", X)
    np.save(tmp_path / "y.npy", y)
    mapped = np.load(tmp_path / "X.npy", mmap_mode="r"), np.load(tmp_path / "y.npy", mmap_mode="r")
    for data in [(read_only_X, read_only_y), mapped]:
        history = classifier().fit(*data, epochs=4, batch_size=batch_size, graph=graph, verbose=0)
        assert history.history["loss"] == expected
    assert not read_only_X.flags.writeable  # the caller's arrays are left as they were


@pytest.mark.parametrize("value", [np.nan, np.inf])
def test_a_non_finite_weight_is_refused_before_training_and_saving(spiral, tmp_path, value):
    X, y = spiral
    model = classifier()
    model.layers[0].weights[1, 3] = value  # ReLU would hide it from the loss: training would go on
    before = [array.copy() for array in model.get_weights()]
    with pytest.raises(ValueError, match=r"Model.fit: layer 0 \(Dense\) weights contain NaN or inf"):
        model.fit(X, y, epochs=2, verbose=0)
    for kept, now in zip(before, model.get_weights(), strict=True):
        np.testing.assert_array_equal(kept, now)  # nothing trained
    with pytest.raises(ValueError, match=r"Model.save: layer 0 \(Dense\) weights contain NaN or inf"):
        model.save(tmp_path / "model.npz")
    assert not (tmp_path / "model.npz").exists()


def test_sparse_rows_train_and_predict_exactly_as_their_dense_copy():
    sparse = pytest.importorskip("scipy.sparse")
    X = sparse.random(300, 20, density=0.1, format="csr", random_state=0)
    y = np.random.default_rng(0).integers(0, 3, 300)

    def trained(inputs):
        model = cr.Model(seed=0).add(cr.Dense(20, 8)).add(cr.ReLU()).add(cr.Dense(8, 3)).add(cr.Softmax())
        model.compile(loss="categorical_crossentropy", optimizer="adam")
        validation = (inputs[:50], y[:50])
        history = model.fit(inputs, y, epochs=3, batch_size=64, validation_data=validation, verbose=0, graph=False)
        return model, history  # eager steps, as sparse rows always take

    (model, history), (dense_model, dense_history) = trained(X), trained(X.toarray())
    assert history.history == dense_history.history
    np.testing.assert_array_equal(model.predict(sparse.csc_array(X)), dense_model.predict(X.toarray()))
    assert model.evaluate(X, y) == dense_model.evaluate(X.toarray(), y)
    X.data[0] = np.nan
    with pytest.raises(ValueError, match="Model.fit: X contains NaN or inf"):
        model.fit(X, y, verbose=0)
