"""Pictures of training: loss/metric curves and a classifier's decision regions (matplotlib).

Figures are drawn with matplotlib's object API and written straight to a file, so no GUI
backend or global pyplot state is involved.
"""

from __future__ import annotations

import os
from typing import Any

import numpy as np

from chainrule.history import History
from chainrule.model import Model


def new_figure(width: float, height: float) -> Any:
    """A matplotlib Figure, or an ImportError that says how to install the extra."""
    try:
        from matplotlib.figure import Figure
    except ImportError as error:  # pragma: no cover - exercised only without the extra
        raise ImportError("plotting needs matplotlib: pip install 'chainrule[plot]'") from error
    return Figure(figsize=(width, height), layout="constrained")


def plot_history(history: History, path: str | os.PathLike) -> None:
    """Loss (and each metric) per epoch, training and validation, as a PNG."""
    history_figure(history).savefig(path, dpi=100)


def history_figure(history: History) -> Any:
    """The figure of `plot_history`: loss (and each metric) per epoch, training and validation."""
    values = history.history
    metrics = [key for key in values if not key.startswith("val_") and "loss" not in key]
    figure = new_figure(5 * (1 + len(metrics)), 4)
    axes = figure.subplots(1, 1 + len(metrics), squeeze=False)[0]
    epochs = np.asarray(history.epoch) + 1
    for axis, key in zip(axes, ["loss", *metrics], strict=True):
        axis.plot(epochs, values[key], label=f"training {key}")
        if f"val_{key}" in values:
            axis.plot(epochs, values[f"val_{key}"], label=f"validation {key}")
        axis.set_xlabel("epoch")
        axis.set_ylabel(key)
        axis.legend()
    if len(epochs) > 100:
        axes[0].set_yscale("log")
    return figure


def plot_decision_boundary(
    model: Model, X: np.ndarray, y: np.ndarray, path: str | os.PathLike, resolution: int = 300
) -> None:
    """The class a 2-feature classifier predicts at every point of the plane, with the data on top."""
    if X.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary: needs 2 features, got {X.shape[1]}")
    low, high = X.min(axis=0) - 0.1, X.max(axis=0) + 0.1
    grid_x, grid_y = np.meshgrid(np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution))
    classes = model.predict_classes(np.c_[grid_x.ravel(), grid_y.ravel()]).reshape(grid_x.shape)
    figure = new_figure(6, 6)
    axis = figure.subplots()
    axis.contourf(grid_x, grid_y, classes, alpha=0.3, cmap="brg")
    axis.scatter(X[:, 0], X[:, 1], c=np.ravel(y), s=12, cmap="brg", edgecolors="k", linewidths=0.3)
    axis.set_title("decision regions")
    figure.savefig(path, dpi=100)
