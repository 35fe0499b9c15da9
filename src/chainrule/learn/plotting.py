"""Pictures of training: loss/metric curves and a classifier's decision regions (matplotlib).

Figures are drawn as `chainrule.display` draws them and written straight to a file.
"""

from __future__ import annotations

import os

import numpy as np

from chainrule.display import curves_figure, new_figure
from chainrule.training.history import History
from chainrule.training.model import Model


def plot_history(history: History, path: str | os.PathLike) -> None:
    """Loss (and each metric) per epoch, training and validation, as a PNG."""
    curves_figure(history.epoch, history.history).savefig(path, dpi=100)


def plot_decision_boundary(
    model: Model, X: np.ndarray, y: np.ndarray, path: str | os.PathLike, resolution: int = 300, *, title: str = ""
) -> None:
    """The class a 2-feature classifier predicts at every point of the plane, with the data on top
    (`title` says which data: 'the validation points')."""
    if X.shape[1] != 2:
        raise ValueError(f"plot_decision_boundary: needs 2 features, got {X.shape[1]}")
    low, high = X.min(axis=0) - 0.1, X.max(axis=0) + 0.1
    grid_x, grid_y = np.meshgrid(np.linspace(low[0], high[0], resolution), np.linspace(low[1], high[1], resolution))
    classes = model.predict_classes(np.c_[grid_x.ravel(), grid_y.ravel()]).reshape(grid_x.shape)
    figure = new_figure(6, 6)
    axis = figure.subplots()
    axis.contourf(grid_x, grid_y, classes, alpha=0.3, cmap="brg")
    axis.scatter(X[:, 0], X[:, 1], c=np.ravel(y), s=12, cmap="brg", edgecolors="k", linewidths=0.3)
    axis.set_title(f"decision regions, with {title}" if title else "decision regions")
    figure.savefig(path, dpi=100)
