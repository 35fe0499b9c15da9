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


def test_inference_batches_hold_at_most_inference_values_in_a_convolutions_im2col_rows(monkeypatch):
    model = cr.Model(seed=0, dtype=np.float64)
    model.add(cr.Conv2D(1, 4, 3)).add(cr.Flatten()).add(cr.Dense(4 * 6 * 6, 3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer=cr.SGD())
    # one 8x8 image: 36 windows of 9 values and 36 x 4 outputs = 468 values, the most of any layer
    monkeypatch.setattr(scoring, "INFERENCE_VALUES", 468 * 7)  # 7 images per forward pass
    X, y = np.random.default_rng(0).standard_normal((30, 8, 8, 1)), np.arange(30) % 3
    rows_seen = []
    forward = model.forward_trusted
    monkeypatch.setattr(
        model, "forward_trusted", lambda inputs, training: rows_seen.append(len(inputs)) or forward(inputs, training)
    )
    predictions = model.predict(X)
    logs = model.evaluate(X, y)
    assert rows_seen == [7, 7, 7, 7, 2] * 2
    np.testing.assert_allclose(predictions, model.predict(X, batch_size=30), rtol=1e-15)
    assert logs == pytest.approx(model.evaluate(X, y, batch_size=30), rel=1e-13)


def test_inference_takes_inference_rows_when_every_layer_is_small():
    model = cr.Model().add(cr.Dense(4, 8)).add(cr.ReLU()).add(cr.Dense(8, 2)).add(cr.Softmax())
    assert scoring.inference_rows(model, (4,)) == scoring.INFERENCE_ROWS
