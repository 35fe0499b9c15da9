"""The bookkeeping of `fit` and `evaluate`: running sums of the loss and metrics, then means."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.training import scoring


def classifier(l2=0.0):
    model = cr.Model(seed=0, dtype=np.float64)
    model.add(cr.Dense(2, 3, weight_regularizer_l2=l2)).add(cr.Softmax())
    return model.compile(loss="categorical_crossentropy", optimizer="adam", metrics=["accuracy"])


def reference(model, X, y):
    """Cross-entropy and accuracy computed here from the weights, by the formulas."""
    dense = model.layers[0]
    logits = X @ dense.weights + dense.biases
    probabilities = np.exp(logits - logits.max(axis=1, keepdims=True))
    probabilities /= probabilities.sum(axis=1, keepdims=True)
    losses = -np.log(np.clip(probabilities[np.arange(len(y)), y], 1e-7, 1 - 1e-7))
    return losses, (probabilities.argmax(axis=1) == y)


def test_batches_add_their_sums_and_the_summary_divides_by_the_rows():
    model = classifier()
    X, y = cr.datasets.spiral_data(10, 3, seed=0)
    losses, hits = reference(model, X, y)
    totals = scoring.empty_totals(model)
    assert totals == {"data_loss": 0.0, "accuracy": 0.0}
    mean = scoring.add_batch(model, model.forward_trusted(X[:12], False), y[:12], totals)
    assert mean == pytest.approx(losses[:12].mean(), rel=1e-12)
    scoring.add_batch(model, model.forward_trusted(X[12:], False), y[12:], totals)
    assert totals["data_loss"] == pytest.approx(losses.sum(), rel=1e-12)
    assert totals["accuracy"] == hits.sum()
    logs = scoring.summarise(model, totals, len(X))
    assert logs == pytest.approx(
        {"loss": losses.mean(), "data_loss": losses.mean(), "regularization_loss": 0.0, "accuracy": hits.mean()},
        rel=1e-12,
    )


def test_the_summary_adds_the_penalty_of_the_current_weights():
    model = classifier(l2=0.01)
    X, y = cr.datasets.spiral_data(10, 3, seed=0)
    penalty = 0.01 * float((model.layers[0].weights ** 2).sum())
    logs = scoring.evaluate(model, X, y, batch_size=7, prefix="val_")
    assert logs["val_regularization_loss"] == pytest.approx(penalty, rel=1e-12)
    assert logs["val_loss"] == pytest.approx(logs["val_data_loss"] + penalty, rel=1e-12)
    assert scoring.summarise(model, {"data_loss": 3.0, "accuracy": 1.0}, 3, penalty=0.5)["loss"] == 1.5


def test_evaluation_in_batches_gives_the_whole_data_sets_means():
    model = classifier()
    X, y = cr.datasets.spiral_data(10, 3, seed=0)
    losses, hits = reference(model, X, y)
    totals, rows = scoring.evaluation_totals(model, X, y, batch_size=4)
    assert rows == len(X)
    assert totals["data_loss"] == pytest.approx(losses.sum(), rel=1e-12)
    assert totals["accuracy"] == hits.sum()


def test_log_names_are_known_before_training():
    model = classifier()
    assert scoring.log_names(model, False) == ["loss", "data_loss", "regularization_loss", "accuracy"]
    assert scoring.log_names(model, True)[4:] == [
        "val_loss",
        "val_data_loss",
        "val_regularization_loss",
        "val_accuracy",
    ]
