"""The objective scikit-learn's MLP minimises, computed by a chainrule Model.

For a batch with sample weights w (all ones without them) and S = sum(w):

    loss = scale * sum(w_i * loss_i) / S  +  alpha / 2 * sum of every ||W||^2 / S

`scale` turns chainrule's per-sample loss into scikit-learn's: 1/2 for the squared error (it
halves the mean), the number of outputs for the logistic output (it sums the binary
log-losses of a sample's outputs where chainrule averages them). Biases carry no penalty.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from chainrule.backend.arrays import array_module, on_host
from chainrule.engine.layers import Dense
from chainrule.engine.losses import regularization_loss
from chainrule.training.model import Model


@dataclass(frozen=True)
class Rows:
    """Validated training rows: model inputs and targets, sample weights (None: all 1) and the
    labels as the user gave them (what `score` compares predictions with)."""

    inputs: np.ndarray
    targets: np.ndarray
    weights: np.ndarray | None
    labels: np.ndarray

    def __len__(self) -> int:
        return self.inputs.shape[0]  # a sparse matrix has no len()

    def take(self, rows: np.ndarray | slice) -> Rows:
        """The rows at `rows` (NumPy indices or a slice), the indices copied to where the data lives."""
        at = rows if isinstance(rows, slice) or on_host(self.targets) else array_module(self.targets).asarray(rows)
        weights = None if self.weights is None else self.weights[at]
        return Rows(self.inputs[at], self.targets[at], weights, self.labels[rows])


class Objective:
    """scikit-learn's loss on a chainrule model; with `gradients=True` its gradient is left in
    the model's parameter store, ready for an optimizer step."""

    def __init__(self, model: Model, alpha: float, scale: float) -> None:
        self.model = model
        self.alpha = alpha
        self.scale = scale
        self.dense_layers = [layer for layer in model.layers if isinstance(layer, Dense)]

    def __call__(self, batch: Rows, *, gradients: bool) -> float:
        """The objective on `batch` (training-mode forward pass when `gradients`)."""
        total = len(batch) if batch.weights is None else float(batch.weights.sum())
        for layer in self.dense_layers:  # lambda * ||W||^2 with lambda = alpha / (2 S): Dense adds 2 lambda W
            layer.weight_regularizer_l2 = self.alpha / (2 * total)
        output = self.model.forward_trusted(batch.inputs, gradients)
        losses = self.model.loss.forward_trusted(output, batch.targets)
        summed = losses.sum() if batch.weights is None else batch.weights @ losses
        if gradients:
            self.model.backward_trusted(output, batch.targets, self.row_weights(batch, total))
        return self.scale * float(summed) / total + regularization_loss(self.model.layers)

    def row_weights(self, batch: Rows, total: float) -> np.ndarray | float | None:
        """What each sample's gradient of the mean loss is multiplied by: scale * w_i * n / S."""
        if batch.weights is None:
            return None if self.scale == 1 else self.scale
        return batch.weights * (self.scale * len(batch) / total)
