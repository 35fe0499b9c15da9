"""What the loop, the static step and callbacks use of a model, named as a protocol so that these
modules sit below `chainrule.training.model.Model`, which implements it."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any, Protocol

import numpy as np

from chainrule.engine.layers import Layer
from chainrule.engine.losses import FusedLoss, Loss
from chainrule.engine.metrics import Metric
from chainrule.engine.optimizers import Optimizer
from chainrule.engine.parameter_store import ParameterStore


class TrainingModel(Protocol):
    """A compiled sequential network as training sees it (chainrule's Model)."""

    layers: list[Layer]
    loss: Loss
    fused_loss: FusedLoss | None
    optimizer: Optimizer
    metrics: dict[str, Metric]
    rng: np.random.Generator
    stop_training: bool
    history: Any
    expected_logs: list[str] | None

    def forward_trusted(self, inputs: np.ndarray, training: bool) -> np.ndarray: ...

    def backward_trusted(
        self, output: np.ndarray, y_true: np.ndarray, row_weights: np.ndarray | float | None = None
    ) -> None: ...

    def parameter_store(self) -> ParameterStore: ...

    def largest_matmul_work(self, batch_rows: int) -> int: ...

    def get_weights(self) -> list[np.ndarray]: ...

    def set_weights(self, weights: Sequence[np.ndarray]) -> None: ...

    def save(self, path: Any, *, include_optimizer: bool = False) -> None: ...
