"""Callbacks: code that runs at the start and end of training and of each epoch.

A callback reads `model` and the epoch's `logs` (the same keys as the History) and may set
`model.stop_training = True` to end training after the current epoch.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterable, Iterator
from typing import Any

import numpy as np

from chainrule.engine.validation import whole_number
from chainrule.training.protocol import TrainingModel


class Callback:
    """Base class: every hook does nothing. In a distributed fit, callbacks marked `root_only`
    (those that print or write files) run on rank 0 alone; the others run on every rank and see
    the same logs there."""

    model: TrainingModel
    root_only = False
    # Whether the callback must run between epochs, as they happen. Those that only report the
    # logs (History, the progress output) set it False: a fit may then run several epochs in one
    # compiled call and hand them their epochs' logs afterwards, in order (a stop asked for then
    # takes effect after the call's last epoch).
    needs_each_epoch = True

    def set_model(self, model: TrainingModel) -> None:
        self.model = model

    def on_train_begin(self) -> None:
        """Called once before the first epoch."""

    def on_epoch_begin(self, epoch: int) -> None:
        """Called before each epoch (numbered from 0)."""

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        """Called after each epoch with that epoch's values."""

    def on_train_end(self) -> None:
        """Called once after training ends, however it ends."""


class CallbackList:
    """Callbacks driven as one, in order: what every training loop calls (`Model.fit`'s and the
    scikit-learn estimators'), so each calls the hooks the same way."""

    def __init__(self, callbacks: Iterable[Callback], model: TrainingModel) -> None:
        self.callbacks = list(callbacks)
        for callback in self.callbacks:
            callback.set_model(model)

    @property
    def needs_each_epoch(self) -> bool:
        """Whether any callback must run between epochs as they happen (`Callback.needs_each_epoch`)."""
        return any(callback.needs_each_epoch for callback in self.callbacks)

    @contextlib.contextmanager
    def training(self) -> Iterator[None]:
        """`on_train_begin` of each callback, then the training; `on_train_end` of each however it ends."""
        for callback in self.callbacks:
            callback.on_train_begin()
        try:
            yield
        finally:
            for callback in self.callbacks:
                callback.on_train_end()

    def on_epoch_begin(self, epoch: int) -> None:
        for callback in self.callbacks:
            callback.on_epoch_begin(epoch)

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        for callback in self.callbacks:
            callback.on_epoch_end(epoch, logs)


def _require_monitored(model: TrainingModel, monitor: str, owner: str) -> None:
    """At the start of training: refuse a monitored value this fit will not record."""
    expected = model.expected_logs
    if expected is not None and monitor not in expected:
        raise ValueError(f"{owner}: cannot monitor {monitor!r}; this fit records {sorted(expected)}")


def _monitored(logs: dict[str, float], monitor: str, owner: str) -> float:
    if monitor not in logs:
        raise ValueError(f"{owner}: cannot monitor {monitor!r}; this fit records {sorted(logs)}")
    return logs[monitor]


def _improves(mode: str, monitor: str) -> Callable[[float, float], bool]:
    if mode not in ("auto", "min", "max"):
        raise ValueError(f"mode must be 'auto', 'min' or 'max', got {mode!r}")
    maximise = mode == "max" or (mode == "auto" and "acc" in monitor)
    return (lambda new, best: new > best) if maximise else (lambda new, best: new < best)


class EarlyStopping(Callback):
    """Stop when `monitor` has not improved by `min_delta` for `patience` epochs.

    With `restore_best_weights=True` the model ends with the weights of its best epoch.
    """

    def __init__(
        self,
        monitor: str = "val_loss",
        patience: int = 0,
        *,
        min_delta: float = 0.0,
        mode: str = "auto",
        restore_best_weights: bool = False,
    ) -> None:
        self.monitor = monitor
        self.patience = whole_number(patience, "patience", "EarlyStopping", minimum=0)
        self.min_delta = abs(float(min_delta))
        self._better = _improves(mode, monitor)
        self._maximise = self._better(1.0, 0.0)
        self.restore_best_weights = restore_best_weights

    def on_train_begin(self) -> None:
        _require_monitored(self.model, self.monitor, "EarlyStopping")
        self.best = -np.inf if self._maximise else np.inf
        self.best_epoch = -1
        self.stopped_epoch: int | None = None
        self.wait = 0
        self._best_weights: list[np.ndarray] | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        value = _monitored(logs, self.monitor, "EarlyStopping")
        margin = self.min_delta if self._maximise else -self.min_delta
        if self._better(value, self.best + margin):
            self.best, self.best_epoch, self.wait = value, epoch, 0
            if self.restore_best_weights:
                self._best_weights = self.model.get_weights()
            return
        self.wait += 1
        if self.wait > self.patience:
            self.stopped_epoch = epoch
            self.model.stop_training = True

    def on_train_end(self) -> None:
        if self.restore_best_weights and self._best_weights is not None:
            self.model.set_weights(self._best_weights)


class LearningRateScheduler(Callback):
    """Set the optimizer's base learning rate each epoch from `schedule(epoch, learning_rate)`."""

    def __init__(self, schedule: Callable[[int, float], float]) -> None:
        self.schedule = schedule

    def on_epoch_begin(self, epoch: int) -> None:
        optimizer = self.model.optimizer
        rate = float(self.schedule(epoch, optimizer.learning_rate))
        if not np.isfinite(rate) or rate < 0:
            raise ValueError(f"LearningRateScheduler: schedule returned {rate!r} for epoch {epoch}")
        optimizer.learning_rate = rate


class ModelCheckpoint(Callback):
    """Save the model to `path` after each epoch, or only when `monitor` improves."""

    root_only = True

    def __init__(
        self,
        path: Any,
        monitor: str = "val_loss",
        save_best_only: bool = True,
        *,
        mode: str = "auto",
        include_optimizer: bool = False,
    ) -> None:
        self.path = path
        self.monitor = monitor
        self.save_best_only = save_best_only
        self._better = _improves(mode, monitor)
        self.include_optimizer = include_optimizer

    def on_train_begin(self) -> None:
        if self.save_best_only:
            _require_monitored(self.model, self.monitor, "ModelCheckpoint")
        self.best: float | None = None

    def on_epoch_end(self, epoch: int, logs: dict[str, float]) -> None:
        if self.save_best_only:
            value = _monitored(logs, self.monitor, "ModelCheckpoint")
            if self.best is not None and not self._better(value, self.best):
                return
            self.best = value
        self.model.save(self.path, include_optimizer=self.include_optimizer)
