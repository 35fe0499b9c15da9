"""History: a callback that keeps every epoch's values."""

from chainrule.training.history import History


def test_history_keeps_each_key_per_epoch():
    history = History()
    history.on_epoch_end(0, {"loss": 1.0, "accuracy": 0.5})
    history.on_epoch_end(1, {"loss": 0.5, "accuracy": 0.75})
    assert history.epoch == [0, 1]
    assert history.history == {"loss": [1.0, 0.5], "accuracy": [0.5, 0.75]}
    assert repr(history) == "History(epochs=2, keys=['loss', 'accuracy'])"
