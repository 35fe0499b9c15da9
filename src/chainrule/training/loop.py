"""The training loop behind `Model.fit`: epochs of (shuffled) mini-batches, each one forward
pass, one backward pass and one optimizer step, with callbacks around every epoch."""

from __future__ import annotations

import math
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

from chainrule.backend.arrays import array_module
from chainrule.backend.runtime import Interruption, training_guard
from chainrule.engine.losses import regularization_loss
from chainrule.engine.parameter_store import ParameterStore
from chainrule.errors import TrainingDivergedError
from chainrule.training.callbacks import Callback, CallbackList
from chainrule.training.distributed import SINGLE_PROCESS, SingleProcess
from chainrule.training.history import History
from chainrule.training.protocol import TrainingModel
from chainrule.training.scoring import add_batch, empty_totals, evaluation_totals, log_names, summarise
from chainrule.training.static_step import StaticTraining

CHUNK_SECONDS = 0.02  # the time one call of several unobserved epochs aims at


class LastFiniteWeights:
    """The last weights known to give a finite loss, put back when training diverges.

    A copy is taken as each epoch begins and kept once that epoch's first batch gives a finite
    loss: the weights an epoch ends with are only known good when the next forward pass says so.
    """

    def __init__(self, store: ParameterStore) -> None:
        self.store = store
        self.good = store.snapshot()
        self.candidate = store.snapshot()  # this epoch's first weights, until a finite loss confirms them
        self.confirmed = True

    def epoch_begins(self) -> None:
        self.store.copy_into(self.candidate)
        self.confirmed = False

    def loss_was_finite(self) -> None:
        if not self.confirmed:
            self.good, self.candidate = self.candidate, self.good
            self.confirmed = True

    def diverged(self, what: str, epoch: int) -> TrainingDivergedError:
        """Put the good weights back; the error to raise."""
        self.store.restore(self.good)
        return TrainingDivergedError(
            f"Model.fit: {what} in epoch {epoch + 1}; training stopped, and the weights are the last ones whose "
            "loss was finite. Try a lower learning rate."
        )


def batches(n_samples: int, batch_size: int | None) -> Iterator[slice]:
    """Consecutive row ranges of `batch_size` rows (the last may be shorter); None: one batch."""
    return SINGLE_PROCESS.batches(n_samples, batch_size)


def train(
    model: TrainingModel,
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    epochs: int,
    batch_size: int | None,
    shuffle: bool,
    validation: tuple[np.ndarray, np.ndarray] | None,
    callbacks: Sequence[Callback],
    parallel: SingleProcess = SINGLE_PROCESS,
    static: StaticTraining | None = None,
) -> History:
    """Run `epochs` epochs over validated data; return the History (also kept as `model.history`).

    `parallel` shares the work with other processes (`chainrule.distributed`); alone, each of its
    hooks is the identity. `static` runs each epoch's steps over fixed buffers
    (`chainrule.training.static_step`, for `fit(graph=True)`); its loss is checked once per epoch.
    """
    model.history = history = History()
    hooks = CallbackList(
        [history, *(callback for callback in callbacks if parallel.is_root or not callback.root_only)], model
    )
    model.stop_training = False
    n_samples = inputs.shape[0]  # a sparse matrix has no len()
    store = model.parameter_store()
    parallel.start(model, inputs, targets, batch_size, epochs)
    weights = LastFiniteWeights(store)
    shuffle = shuffle and batch_size is not None and batch_size < n_samples  # a full batch has no order
    model.expected_logs = log_names(model, validation is not None)
    unobserved = (
        static is not None and validation is None and not hooks.needs_each_epoch and static.runs_epochs(inputs, targets)
    )
    with parallel.guard(), hooks.training():  # a callback failing on one rank stops every rank
        try:
            work = model.largest_matmul_work(batch_size or n_samples)
            with training_guard(work, parallel.stop_signals) as interruption:
                run = Epochs(
                    model, inputs, targets, batch_size, shuffle, validation, hooks, parallel, static, weights,
                    interruption,
                )  # fmt: skip
                last, stop = run.unobserved(epochs) if unobserved else run.observed(epochs)
                check_rows = inputs[: batch_size or n_samples]
                if parallel.any(not np.isfinite(model.forward_trusted(check_rows, False)).all()):
                    raise weights.diverged("the predictions became inf or NaN", last)
                history.interrupted = stop
        finally:
            if static is not None:
                static.finish()
    return history


@dataclass(frozen=True)
class Epochs:
    """What every epoch of one `fit` reads: the model, the validated data, the callbacks, and
    the guards (`parallel`, the last finite weights, the Ctrl-C flag). `static`: the epoch's
    steps run over fixed buffers instead of eagerly."""

    model: TrainingModel
    inputs: np.ndarray
    targets: np.ndarray
    batch_size: int | None
    shuffle: bool
    validation: tuple[np.ndarray, np.ndarray] | None
    callbacks: CallbackList
    parallel: SingleProcess
    static: StaticTraining | None
    weights: LastFiniteWeights
    interruption: Interruption

    def observed(self, epochs: int) -> tuple[int, bool]:
        """Epoch by epoch, the callbacks around each. Returns the last epoch run and whether a
        Ctrl-C (agreed by every process) stopped training."""
        model, parallel, weights, n_samples = self.model, self.parallel, self.weights, self.inputs.shape[0]
        for epoch in range(epochs):
            self.callbacks.on_epoch_begin(epoch)
            weights.epoch_begins()
            order = parallel.epoch_order(model.rng, n_samples, self.shuffle)
            if order is not None:  # drawn on the CPU (one seed, one order anywhere), used where the data is
                order = array_module(self.inputs).asarray(order)
            batches = parallel.batches(n_samples, self.batch_size)
            if self.static is None:
                totals, seen = self.eager(order, batches, epoch)
            else:
                totals, seen = self.static.epoch(self.inputs, self.targets, order, batches, self.interruption)
                if not math.isfinite(totals["data_loss"]):  # the loss is read once per epoch
                    raise weights.diverged(f"the loss became {totals['data_loss'] / seen}", epoch)
                weights.loss_was_finite()
            logs = summarise(model, *parallel.reduce_totals(totals, seen))
            if self.validation is not None:
                inputs, targets = self.validation
                rows = parallel.validation_rows(inputs.shape[0])
                validation_totals = evaluation_totals(model, inputs[rows], targets[rows], self.batch_size)
                logs.update(summarise(model, *parallel.reduce_totals(*validation_totals), prefix="val_"))
                if not math.isfinite(logs["val_loss"]):
                    raise weights.diverged(f"the validation loss became {logs['val_loss']}", epoch)
            self.callbacks.on_epoch_end(epoch, logs)
            stop = parallel.any(self.interruption.requested)  # a press during the epoch's callbacks counts too
            if stop or model.stop_training:
                break
        return epoch, stop

    def eager(self, order: np.ndarray | None, batches: Iterator[slice], epoch: int) -> tuple[dict[str, float], int]:
        """One epoch of eager steps; returns the summed totals and the rows seen. A Ctrl-C
        (agreed by every process) ends it after the step it interrupted."""
        model, parallel, weights = self.model, self.parallel, self.weights
        store = model.parameter_store()
        totals = empty_totals(model)
        seen = 0
        for batch in batches:
            # gather one batch at a time: no shuffled copy of the data set
            rows = batch if order is None else order[batch]
            batch_inputs, batch_targets = self.inputs[rows], self.targets[rows]
            n_rows = batch_inputs.shape[0]
            output, loss_sum = None, 0.0  # an empty share of a distributed batch computes nothing
            if n_rows:
                output = model.forward_trusted(batch_inputs, True)
                loss_sum = add_batch(model, output, batch_targets, totals) * n_rows
            loss_sum, n_batch, stop = parallel.agree(loss_sum, n_rows, self.interruption.requested)
            if not math.isfinite(loss_sum):
                raise weights.diverged(f"the loss became {loss_sum / n_batch}", epoch)
            weights.loss_was_finite()
            if output is not None:
                model.backward_trusted(output, batch_targets)
            parallel.combine_gradients(store, n_rows / n_batch)
            model.optimizer.step(store)
            seen += n_rows
            if stop:
                break
        return totals, seen

    def unobserved(self, epochs: int) -> tuple[int, bool]:
        """Epochs that nothing watches as they happen (no validation; callbacks that only report the
        logs, `Callback.needs_each_epoch`), several per call of `StaticTraining.run_epochs` (one
        compiled call, or replayed graphs read back once): the same steps, orders, logs and
        divergence handling as epoch by epoch, without the work between epochs. The callbacks get
        each epoch's logs after the call. A call runs about CHUNK_SECONDS, so a Ctrl-C is answered
        as quickly. Returns the last epoch and whether a Ctrl-C stopped training."""
        model, weights, static, n_samples = self.model, self.weights, self.static, self.inputs.shape[0]
        assert static is not None  # `train` runs unobserved epochs only with static steps
        batch_rows = min(self.batch_size or n_samples, n_samples)
        penalty = regularization_loss(model.layers)  # the compiled pattern has no L1/L2 penalties: 0 at every epoch
        # The columns of a row of totals: the summed loss, then each metric's sum (the compiled
        # pattern's only metric is the accuracy).
        names = ["data_loss", *model.metrics]
        epoch, chunk = 0, 1
        while epoch < epochs:
            count = min(chunk, epochs - epoch)
            orders = np.array([model.rng.permutation(n_samples) for _ in range(count) if self.shuffle], np.int64)
            orders = orders.reshape(len(orders), n_samples)  # (0, n_samples) without shuffling
            epoch_totals = np.empty((count, static.total_columns()))
            started = time.perf_counter()
            run = static.run_epochs(
                self.inputs, self.targets, orders, batch_rows, epoch_totals, weights.good[0], weights.candidate[0],
                self.interruption,
            )  # fmt: skip
            elapsed = time.perf_counter() - started
            for offset in range(run):
                totals = dict(zip(names, epoch_totals[offset].tolist(), strict=False))
                if not math.isfinite(totals["data_loss"]):
                    raise weights.diverged(f"the loss became {totals['data_loss'] / n_samples}", epoch + offset)
                logs = summarise(model, totals, n_samples, penalty=penalty)
                self.callbacks.on_epoch_begin(epoch + offset)
                self.callbacks.on_epoch_end(epoch + offset, logs)
            epoch += run
            if self.interruption.requested:
                return epoch - 1, True
            if model.stop_training:  # asked for during the call's epochs: honoured once it ends
                break
            chunk = max(1, min(2 * chunk, int(count * CHUNK_SECONDS / max(elapsed, 1e-9))))
        return epoch - 1, False
