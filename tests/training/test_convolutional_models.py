"""Convolutional networks in a Model: they train on images (the digits), through eager and
static steps alike, save and load, and a BatchNormalization network trains in fewer epochs."""

import numpy as np
import pytest
from numpy.testing import assert_allclose

import chainrule as cr

pytest.importorskip("sklearn")
from sklearn.model_selection import train_test_split


def small_cnn(seed=0, dtype=np.float32):
    """Two convolutions with ReLU and pooling, then Dense: (8, 8, 1) digits to 10 classes."""
    model = cr.Model(seed=seed, dtype=dtype)
    model.add(cr.Conv2D(1, 32, 3, padding="same")).add(cr.ReLU()).add(cr.MaxPool2D(2))
    model.add(cr.Conv2D(32, 64, 3, padding="same")).add(cr.ReLU()).add(cr.MaxPool2D(2))
    model.add(cr.Flatten()).add(cr.Dropout(0.3)).add(cr.Dense(2 * 2 * 64, 10)).add(cr.Softmax())
    return model.compile(
        loss="categorical_crossentropy", optimizer=cr.Adam(learning_rate=0.003, decay=1e-3), metrics="accuracy"
    )


def digits_split(seed, images=True):
    X, y = cr.datasets.load_digits(images=images)
    return train_test_split(X, y, test_size=0.25, stratify=y, random_state=seed)


def test_a_cnn_trains_the_same_through_static_and_eager_steps_in_float64():
    X_train, _, y_train, _ = digits_split(0)
    histories, weights = [], []
    for graph in (False, True):
        model = small_cnn(seed=1, dtype=np.float64)
        histories.append(model.fit(X_train[:96], y_train[:96], epochs=2, batch_size=32, verbose=0, graph=graph))
        weights.append(model.get_weights())
    assert_allclose(histories[0].history["loss"], histories[1].history["loss"], rtol=1e-10)
    for eager, static in zip(*weights, strict=True):
        assert_allclose(eager, static, rtol=1e-9, atol=1e-12)


def test_a_trained_cnn_saves_and_loads_with_the_same_predictions(tmp_path):
    X_train, X_test, y_train, _ = digits_split(0)
    model = small_cnn()
    model.fit(X_train[:64], y_train[:64], epochs=1, verbose=0)
    model.save(tmp_path / "cnn.crm")
    loaded = cr.load_model(tmp_path / "cnn.crm")
    assert [type(layer) for layer in loaded.layers] == [type(layer) for layer in model.layers]
    assert_allclose(loaded.predict(X_test), model.predict(X_test))
    assert model.predict(X_test[:0]).shape == (0, 10)


def test_images_of_the_wrong_shape_are_refused_naming_the_layer():
    model = small_cnn()
    with pytest.raises(
        ValueError, match=r"Model.predict: X must be a 4-D array \(n_samples, height, width, channels\)"
    ):
        model.predict(np.ones((3, 64)))
    with pytest.raises(
        ValueError,
        match=r"samples of X of shape \(16, 16, 1\) reach layer 8 \(Dense\) with shape \(1024,\), but its inputs "
        "must have 256 columns",
    ):
        model.predict(np.ones((3, 16, 16, 1)))


@pytest.mark.slow
def test_a_small_cnn_reaches_98_5_percent_on_the_digits_median_of_three_seeds():
    accuracies = []
    for seed in range(3):
        X_train, X_test, y_train, y_test = digits_split(seed)
        model = small_cnn(seed)
        model.fit(X_train, y_train, epochs=20, batch_size=32, verbose=0)
        accuracies.append(model.evaluate(X_test, y_test)["accuracy"])
    assert np.median(accuracies) >= 0.985, accuracies


def epochs_to_97_percent(batch_normalization, seed, limit=60):
    X_train, X_test, y_train, y_test = digits_split(seed, images=False)
    model = cr.Model(seed=seed)
    for _ in range(2):
        model.add(cr.Dense(64, 64))
        if batch_normalization:
            model.add(cr.BatchNormalization(64))
        model.add(cr.ReLU())
    model.add(cr.Dense(64, 10)).add(cr.Softmax())
    model.compile(
        loss="categorical_crossentropy", optimizer=cr.SGD(learning_rate=0.1, momentum=0.9), metrics="accuracy"
    )
    for epoch in range(1, limit + 1):
        model.fit(X_train, y_train, epochs=1, batch_size=32, verbose=0)
        if model.evaluate(X_test, y_test)["accuracy"] >= 0.97:
            return epoch
    return limit + 1


@pytest.mark.slow
def test_batch_normalization_reaches_97_percent_in_fewer_epochs():
    with_batch_normalization = [epochs_to_97_percent(True, seed) for seed in range(3)]
    without = [epochs_to_97_percent(False, seed) for seed in range(3)]
    assert np.median(with_batch_normalization) < np.median(without), (with_batch_normalization, without)
