"""`chainrule.metrics`, the documented path of `chainrule.engine.metrics`."""

from chainrule.engine.metrics import (
    METRICS,
    binary_accuracy,
    categorical_accuracy,
    mean_absolute_error,
)

__all__ = [
    "METRICS",
    "binary_accuracy",
    "categorical_accuracy",
    "mean_absolute_error",
]
