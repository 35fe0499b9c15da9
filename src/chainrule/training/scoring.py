"""The bookkeeping of training and evaluation: each batch's loss and metrics added to running
sums, and the sums turned into an epoch's logs (means, with the regularisation penalty)."""

from __future__ import annotations

import math
from collections.abc import Iterator

import numpy as np

from chainrule.engine.losses import regularization_loss
from chainrule.training.distributed import SINGLE_PROCESS
from chainrule.training.protocol import TrainingModel

INFERENCE_ROWS = 8192  # rows per forward pass of predict/evaluate when no batch_size is given,
INFERENCE_VALUES = 1 << 24  # or fewer, so that no layer holds more values than this (64 MiB of float32)


def inference_rows(model: TrainingModel, sample_shape: tuple[int, ...]) -> int:
    """Rows per forward pass of predict/evaluate when no batch_size is given: INFERENCE_ROWS, or
    fewer where one sample's inputs (sparse rows are made dense a pass at a time) or its largest
    layer (`Layer.working_values`: a Conv2D's im2col rows) would otherwise hold more than
    INFERENCE_VALUES values at once."""
    widest, shape = math.prod(sample_shape), sample_shape
    for layer in model.layers:
        widest = max(widest, layer.working_values(shape))
        shape = layer.output_shape(shape)
    return max(1, min(INFERENCE_ROWS, INFERENCE_VALUES // widest))


def log_names(model: TrainingModel, with_validation: bool) -> list[str]:
    """The keys of each epoch's logs in `fit`, known before it starts."""
    names = ["loss", "data_loss", "regularization_loss", *model.metrics]
    return names + [f"val_{name}" for name in names] if with_validation else names


def empty_totals(model: TrainingModel) -> dict[str, float]:
    """Zero sums of the data loss and of every metric, for `add_batch` to add to."""
    return dict.fromkeys(["data_loss", *model.metrics], 0.0)


def add_batch(model: TrainingModel, output: np.ndarray, y_true: np.ndarray, totals: dict[str, float]) -> float:
    """Add a batch's summed loss and metrics to `totals`; return the batch's mean loss."""
    losses = model.loss.forward_trusted(output, y_true)
    batch_loss = float(losses.sum())
    totals["data_loss"] = totals.get("data_loss", 0.0) + batch_loss
    if model.metrics:
        predictions = model.layers[-1].predictions(output)
        for name, metric in model.metrics.items():
            totals[name] = totals.get(name, 0.0) + metric(predictions, y_true) * len(output)
    return batch_loss / len(output)


def summarise(
    model: TrainingModel, totals: dict[str, float], n_samples: int, prefix: str = "", penalty: float | None = None
) -> dict[str, float]:
    """Turn summed `totals` over `n_samples` into means, with the regularisation penalty added
    (`penalty`: already computed for the current weights)."""
    data_loss = totals["data_loss"] / n_samples
    if penalty is None:
        penalty = regularization_loss(model.layers)
    logs = {
        f"{prefix}loss": data_loss + penalty,
        f"{prefix}data_loss": data_loss,
        f"{prefix}regularization_loss": penalty,
    }
    logs.update({f"{prefix}{name}": totals[name] / n_samples for name in model.metrics})
    return logs


def evaluation_totals(
    model: TrainingModel, inputs: np.ndarray, targets: np.ndarray, batch_size: int | None
) -> tuple[dict[str, float], int]:
    """Summed loss and metrics on validated data, `batch_size` rows at a time (default
    `inference_rows`), and the number of rows."""
    totals = empty_totals(model)
    for rows, output in inference_passes(model, inputs, batch_size):
        add_batch(model, output, targets[rows], totals)
    return totals, inputs.shape[0]


def inference_passes(
    model: TrainingModel, inputs: np.ndarray, batch_size: int | None
) -> Iterator[tuple[slice, np.ndarray]]:
    """The forward pass on validated data, `batch_size` rows at a time (default `inference_rows`;
    one row needs no sizing): each pass's rows and output, valid until the next pass. What a pass
    keeps (a dense copy of sparse rows among it) is let go before the next one is made, so memory
    holds one pass at a time."""
    n_rows = inputs.shape[0]
    per_pass = batch_size or (1 if n_rows == 1 else inference_rows(model, inputs.shape[1:]))
    for index, rows in enumerate(SINGLE_PROCESS.batches(n_rows, per_pass)):
        if index:
            for layer in model.layers:
                layer.forget_last_pass()
        yield rows, model.forward_trusted(inputs[rows], False)


def evaluate(
    model: TrainingModel, inputs: np.ndarray, targets: np.ndarray, batch_size: int | None, prefix: str = ""
) -> dict[str, float]:
    """Loss and metrics on validated data, batch by batch."""
    return summarise(model, *evaluation_totals(model, inputs, targets, batch_size), prefix)
