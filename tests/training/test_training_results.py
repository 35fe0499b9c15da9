"""Training reaches the book's results, judged over seeds 0 to 4 rather than one lucky seed."""

import numpy as np
import pytest

import chainrule as cr

SEEDS = range(5)


def train(model, X, y, loss, optimizer, metrics=None):
    model.compile(loss=loss, optimizer=optimizer, metrics=metrics)
    return model.fit(X, y, epochs=10_000, verbose=0).history


def spiral_accuracy(seed, l2=0.0, learning_rate=0.05):
    X, y = cr.datasets.spiral_data(100, 3, seed=seed)
    model = cr.Model(seed=seed)
    model.add(cr.Dense(2, 64, weight_regularizer_l2=l2, bias_regularizer_l2=l2)).add(cr.ReLU())
    model.add(cr.Dense(64, 3)).add(cr.Softmax())
    return train(model, X, y, "categorical_crossentropy", cr.Adam(learning_rate, decay=5e-7))["accuracy"][-1]


@pytest.mark.slow
def test_spiral_with_the_default_recipe():
    accuracies = [spiral_accuracy(seed) for seed in SEEDS]
    # The median: one seed in five may settle in a poor optimum (seed 3: 0.69 to 0.77), and the
    # rounding of the machine's BLAS and of the compiled kernels decides how poor, so a mean
    # over five seeds passes on one machine and fails on another.
    assert np.median(accuracies) >= 0.90, accuracies


@pytest.mark.slow
def test_spiral_with_l2_regularisation():
    accuracies = [spiral_accuracy(seed, l2=5e-4, learning_rate=0.02) for seed in SEEDS]
    assert np.mean(accuracies) >= 0.85, accuracies


@pytest.mark.slow
def test_binary_spiral_with_the_books_chapter_16_recipe():
    """Over ten seeds: which local optimum each seed settles in turns on the last bits of the
    sigmoid, so five seeds' mean moved from 0.86 to 0.90 between equivalent formulas of it
    (SciPy's expit, the book's, 0.5 + 0.5 tanh(x / 2), e^-|x| over 1 + e^-|x|), while ten
    seeds' stayed between 0.875 and 0.894 for all four."""
    accuracies = []
    for seed in range(10):
        X, y = cr.datasets.spiral_data(100, 2, seed=seed)
        model = cr.Model(seed=seed)
        model.add(cr.Dense(2, 64, weight_regularizer_l2=5e-4, bias_regularizer_l2=5e-4)).add(cr.ReLU())
        model.add(cr.Dense(64, 1)).add(cr.Sigmoid())
        history = train(model, X, y.reshape(-1, 1), "binary_crossentropy", cr.Adam(decay=5e-7))
        accuracies.append(history["accuracy"][-1])
    assert np.mean(accuracies) >= 0.86, accuracies


@pytest.mark.slow
def test_sine_regression():
    X, y = cr.datasets.sine_data()
    errors = []
    for seed in SEEDS:
        model = cr.Model(seed=seed)
        model.add(cr.Dense(1, 64)).add(cr.ReLU()).add(cr.Dense(64, 64)).add(cr.ReLU()).add(cr.Dense(64, 1))
        model.add(cr.Linear())
        train(model, X, y, "mse", cr.Adam(0.005, decay=1e-3))
        errors.append(float(np.abs(model.predict(X) - y).mean()))
    assert np.mean(errors) < 0.05, errors
