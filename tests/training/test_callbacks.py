"""Callbacks: every training loop drives them through one CallbackList, in order, and ends them
however training ends."""

import numpy as np
import pytest

import chainrule as cr
from chainrule.sklearn import MLPClassifier
from chainrule.training.callbacks import CallbackList


class Recorder(cr.callbacks.Callback):
    """Writes each hook it receives into a shared list, with its own name."""

    def __init__(self, name, calls, fail_at_epoch=None):
        self.name, self.calls, self.fail_at_epoch = name, calls, fail_at_epoch

    def on_train_begin(self):
        self.calls.append((self.name, "train_begin"))

    def on_epoch_begin(self, epoch):
        self.calls.append((self.name, "epoch_begin", epoch))

    def on_epoch_end(self, epoch, logs):
        self.calls.append((self.name, "epoch_end", epoch))
        if epoch == self.fail_at_epoch:
            raise RuntimeError("a callback failed")

    def on_train_end(self):
        self.calls.append((self.name, "train_end"))


def spiral_model():
    model = cr.Model(seed=0)
    model.add(cr.Dense(2, 8))
    model.add(cr.ReLU())
    model.add(cr.Dense(8, 3))
    model.add(cr.Softmax())
    return model.compile(loss="categorical_crossentropy", optimizer="adam")


def test_a_callback_list_calls_each_hook_of_each_callback_in_order():
    calls = []
    model = object()
    hooks = CallbackList([Recorder("a", calls), Recorder("b", calls)], model)
    assert all(callback.model is model for callback in hooks.callbacks)
    with hooks.training():
        hooks.on_epoch_begin(0)
        hooks.on_epoch_end(0, {"loss": 1.0})
    assert calls == [
        ("a", "train_begin"), ("b", "train_begin"),
        ("a", "epoch_begin", 0), ("b", "epoch_begin", 0),
        ("a", "epoch_end", 0), ("b", "epoch_end", 0),
        ("a", "train_end"), ("b", "train_end"),
    ]  # fmt: skip


def test_a_callback_list_ends_every_callback_when_training_raises():
    calls = []
    hooks = CallbackList([Recorder("a", calls), Recorder("b", calls)], object())
    with pytest.raises(ValueError, match="boom"), hooks.training():
        raise ValueError("boom")
    assert calls[-2:] == [("a", "train_end"), ("b", "train_end")]


def test_a_callback_list_needs_each_epoch_when_any_callback_does():
    assert not CallbackList([cr.History()], object()).needs_each_epoch
    assert CallbackList([cr.History(), cr.callbacks.Callback()], object()).needs_each_epoch


@pytest.mark.parametrize("graph", [False, None])
def test_fit_ends_its_callbacks_when_one_raises_mid_training(graph):
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    calls = []
    with pytest.raises(RuntimeError, match="a callback failed"):
        spiral_model().fit(X, y, epochs=5, verbose=0, graph=graph, callbacks=[Recorder("a", calls, fail_at_epoch=1)])
    assert calls == [
        ("a", "train_begin"), ("a", "epoch_begin", 0), ("a", "epoch_end", 0),
        ("a", "epoch_begin", 1), ("a", "epoch_end", 1), ("a", "train_end"),
    ]  # fmt: skip


def test_the_estimators_end_their_callbacks_when_one_raises_mid_training():
    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    calls = []
    classifier = MLPClassifier(hidden_layer_sizes=(8,), max_iter=5, random_state=0, callbacks=[Recorder("a", calls, 1)])
    with pytest.raises(RuntimeError, match="a callback failed"):
        classifier.fit(X, y)
    assert calls[-1] == ("a", "train_end")
    assert calls.count(("a", "train_end")) == 1


@pytest.mark.parametrize(
    "change",
    [
        lambda model: model.add(cr.Dense(3, 3)),
        lambda model: model.compile(loss="mse", optimizer="sgd"),
        lambda model: model.to("cpu"),
    ],
)
@pytest.mark.parametrize("graph", [False, None])
def test_a_callback_that_changes_the_network_mid_fit_is_refused(change, graph):
    class Changer(cr.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            change(self.model)

    X, y = cr.datasets.spiral_data(20, 3, seed=0)
    model = cr.Model(seed=0).add(cr.Dense(2, 8)).add(cr.ReLU()).add(cr.Dense(8, 3)).add(cr.Softmax())
    model.compile(loss="categorical_crossentropy", optimizer="adam")
    with pytest.raises(RuntimeError, match="the model is training"):
        model.fit(X, y, epochs=3, verbose=0, callbacks=[Changer()], graph=graph)
    assert len(model.layers) == 4 and type(model.loss).__name__ == "CategoricalCrossentropy"
    model.add(cr.Dense(3, 3))  # after fit, the network is the user's to change again
    assert len(model.layers) == 5


def test_early_stopping_restores_its_best_weights_at_the_end():
    X, y = cr.datasets.spiral_data(30, 3, seed=0)
    model = spiral_model()
    weights = []

    class Snapshot(cr.callbacks.Callback):
        def on_epoch_end(self, epoch, logs):
            weights.append((logs["loss"], [array.copy() for array in self.model.get_weights()]))

    stopper = cr.callbacks.EarlyStopping(monitor="loss", patience=100, restore_best_weights=True)
    model.fit(X, y, epochs=40, verbose=0, callbacks=[Snapshot(), stopper], graph=False)
    best_loss, best_weights = min(weights, key=lambda pair: pair[0])
    assert stopper.best == best_loss
    for restored, expected in zip(model.get_weights(), best_weights, strict=True):
        np.testing.assert_array_equal(restored, expected)
