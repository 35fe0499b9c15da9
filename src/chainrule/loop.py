"""The training loop behind `Model.fit`: epochs of (shuffled) mini-batches, each one forward
pass, one backward pass and one optimizer step, with callbacks around every epoch."""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from typing import TYPE_CHECKING

import numpy as np

from chainrule.callbacks import Callback
from chainrule.history import History
from chainrule.runtime import training_guard

if TYPE_CHECKING:
    from chainrule.model import Model


class TrainingDivergedError(FloatingPointError):
    """The loss became NaN or infinite; the update that would have used it was not applied."""


def batches(n_samples: int, batch_size: int | None) -> Iterator[slice]:
    """Consecutive row ranges of `batch_size` rows (the last may be shorter); None: one batch."""
    size = n_samples if batch_size is None else batch_size
    for start in range(0, n_samples, size):
        yield slice(start, start + size)


def train(
    model: Model,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    batch_size: int | None,
    shuffle: bool,
    validation: tuple[np.ndarray, np.ndarray] | None,
    callbacks: Sequence[Callback],
) -> History:
    """Run `epochs` epochs over validated data; return the History (also kept as `model.history`)."""
    model.history = history = History()
    callbacks = [history, *callbacks]
    for callback in callbacks:
        callback.set_model(model)
    model.stop_training = False
    n_samples = len(inputs)
    store = model.parameter_store()
    shuffle = shuffle and batch_size is not None and batch_size < n_samples  # a full batch has no order
    for callback in callbacks:
        callback.on_train_begin()
    try:
        with training_guard(model.largest_matmul_work(batch_size or n_samples)) as interruption:
            for epoch in range(epochs):
                for callback in callbacks:
                    callback.on_epoch_begin(epoch)
                order = model.rng.permutation(n_samples) if shuffle else None
                totals: dict[str, float] = {}
                seen = 0
                for rows in batches(n_samples, batch_size):
                    if order is not None:  # gather one batch at a time: no shuffled copy of the data set
                        rows = order[rows]
                    batch_inputs, batch_targets = inputs[rows], targets[rows]
                    output = model.forward_trusted(batch_inputs, True)
                    batch_loss = model.score(output, batch_targets, totals)
                    if not math.isfinite(batch_loss):
                        raise TrainingDivergedError(
                            f"Model.fit: the loss became {batch_loss} in epoch {epoch + 1}; training "
                            "stopped before applying that update. Try a lower learning rate."
                        )
                    model.backward_trusted(output, batch_targets)
                    model.optimizer.step(store)
                    seen += len(batch_inputs)
                    if interruption.requested:
                        break
                logs = model.summarise(totals, seen)
                if validation is not None:
                    logs.update(model.evaluate_trusted(*validation, batch_size, prefix="val_"))
                for callback in callbacks:
                    callback.on_epoch_end(epoch, logs)
                if interruption.requested or model.stop_training:
                    break
            history.interrupted = interruption.requested
    finally:
        for callback in callbacks:
            callback.on_train_end()
    return history
