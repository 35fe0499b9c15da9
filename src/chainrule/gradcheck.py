"""Numerical gradient checks: central differences against the hand-written backward passes.

For every array that a backward pass differentiates (the inputs, and each parameter), each
element is nudged by +-epsilon and the change of a scalar function is measured:

    numeric = (f(x + eps) - f(x - eps)) / (2 eps)

The scalar is the loss itself for a loss, and `sum(output * dvalues)` for a layer with fixed
random `dvalues` (whose gradient with respect to the output is exactly `dvalues`), plus the
layer's L1/L2 penalty, which its backward also differentiates. The relative error of an array
is `|analytic - numeric| / max(|analytic| + |numeric|, tiny)` in the Euclidean norm.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule._checks import float_array, require_same_shape
from chainrule.layers import Layer
from chainrule.losses import Loss, SoftmaxCategoricalCrossentropy


@dataclass
class GradcheckResult:
    """Relative error per checked array, with the analytic and numeric gradients behind it."""

    errors: dict[str, float]
    analytic: dict[str, np.ndarray] = field(repr=False)
    numeric: dict[str, np.ndarray] = field(repr=False)
    tolerance: float = 1e-6

    @property
    def max_error(self) -> float:
        """The largest relative error over all arrays."""
        return max(self.errors.values(), default=0.0)

    @property
    def passed(self) -> bool:
        """True when every relative error is below `tolerance`."""
        return self.max_error < self.tolerance

    def __str__(self) -> str:
        width = max((len(name) for name in self.errors), default=5)
        lines = [f"{'array':<{width}}  relative error  status"]
        for name, error in self.errors.items():
            status = "ok" if error < self.tolerance else "FAIL"
            lines.append(f"{name:<{width}}  {error:14.3e}  {status}")
        return "\n".join(lines)


def relative_error(analytic: np.ndarray, numeric: np.ndarray) -> float:
    """||a - n|| / max(||a|| + ||n||, 1e-300): 0 when equal, ~1 when unrelated."""
    scale = np.linalg.norm(analytic) + np.linalg.norm(numeric)
    return float(np.linalg.norm(analytic - numeric) / max(scale, 1e-300))


def numerical_gradient(function: Callable[[], float], array: np.ndarray, epsilon: float) -> np.ndarray:
    """d function / d array by central differences, nudging `array` in place and restoring it."""
    gradient = np.zeros_like(array)
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + epsilon
        above = function()
        array[index] = original - epsilon
        below = function()
        array[index] = original
        gradient[index] = (above - below) / (2 * epsilon)
    return gradient


def _require_float64(component: Any) -> None:
    if getattr(component, "dtype", None) not in (None, np.float64):
        raise TypeError(
            f"gradcheck: {type(component).__name__} computes in {getattr(component, 'dtype', None)}; "
            "central differences need float64 (construct it with dtype=np.float64)"
        )


def gradcheck(
    component: Any,
    inputs: Any,
    y_true: Any = None,
    *,
    dvalues: Any = None,
    training: bool = False,
    epsilon: float = 1e-6,
    tolerance: float = 1e-6,
    seed: int = 0,
) -> GradcheckResult:
    """Compare a component's analytic gradients with central differences.

    `component` is a Layer (Dense, an activation, Dropout), a Loss or the fused
    SoftmaxCategoricalCrossentropy (both need `y_true`), or a Model (needs `y_true`; checks every
    layer's parameters through the whole network). Layers get random `dvalues` from `seed`
    unless given. Components must compute in float64. `training=True` checks a Dropout layer
    with one fixed mask.
    """
    if callable(getattr(component, "gradcheck", None)):
        return component.gradcheck(inputs, y_true, epsilon=epsilon, tolerance=tolerance)
    _require_float64(component)
    checked_inputs = np.array(float_array(inputs, np.float64, "inputs", "gradcheck"), copy=True)
    if isinstance(component, (Loss, SoftmaxCategoricalCrossentropy)):
        if y_true is None:
            raise ValueError(f"gradcheck: {type(component).__name__} needs y_true")
        targets = component.prepare_targets(y_true, checked_inputs.shape, "gradcheck", np.float64)
        function, analytic = _loss_problem(component, checked_inputs, targets)
        arrays = {"inputs": checked_inputs}
    elif isinstance(component, Layer):
        fixed_mask = getattr(component, "frozen_mask", contextlib.nullcontext)
        with fixed_mask() if training else contextlib.nullcontext():
            function, analytic, arrays = _layer_problem(component, checked_inputs, dvalues, training, seed)
            return compare(function, analytic, arrays, epsilon, tolerance)
    else:
        raise TypeError(f"gradcheck: cannot check a {type(component).__name__}; pass a Layer, Loss or Model")
    return compare(function, analytic, arrays, epsilon, tolerance)


def compare(
    function: Callable[[], float],
    analytic: dict[str, np.ndarray],
    arrays: dict[str, np.ndarray],
    epsilon: float,
    tolerance: float,
) -> GradcheckResult:
    """Numerically differentiate `function` with respect to each of `arrays` and compare."""
    numeric = {name: numerical_gradient(function, array, epsilon) for name, array in arrays.items()}
    errors = {name: relative_error(analytic[name], numeric[name]) for name in arrays}
    return GradcheckResult(errors, analytic, numeric, tolerance)


def _loss_problem(
    loss: Loss | SoftmaxCategoricalCrossentropy, predictions: np.ndarray, targets: np.ndarray
) -> tuple[Callable[[], float], dict[str, np.ndarray]]:
    if isinstance(loss, SoftmaxCategoricalCrossentropy):

        def function() -> float:
            probabilities = loss.activation.forward_trusted(predictions, False)
            return float(np.mean(loss.loss.forward_trusted(probabilities, targets)))

        analytic = loss.backward_trusted(loss.activation.forward_trusted(predictions, False), targets).copy()
    else:

        def function() -> float:
            return float(np.mean(loss.forward_trusted(predictions, targets)))

        loss.backward_trusted(predictions, targets)
        analytic = np.array(loss.dinputs, copy=True)
    return function, {"inputs": analytic}


def _layer_problem(
    layer: Layer, inputs: np.ndarray, dvalues: Any, training: bool, seed: int
) -> tuple[Callable[[], float], dict[str, np.ndarray], dict[str, np.ndarray]]:
    layer.forward_trusted(inputs, training)
    output = layer.output
    if dvalues is None:
        upstream = np.random.default_rng(seed).standard_normal(output.shape)
    else:
        upstream = float_array(dvalues, np.float64, "dvalues", "gradcheck")
        require_same_shape(upstream, output.shape, "dvalues (the gradient of the output)", "gradcheck")
    layer.backward_trusted(upstream)
    analytic = {"inputs": np.array(layer.dinputs, copy=True)}
    analytic.update({name: np.array(gradient, copy=True) for name, gradient in layer.gradients().items()})

    def function() -> float:
        layer.forward_trusted(inputs, training)
        return float((layer.output * upstream).sum()) + layer.regularization_penalty()

    return function, analytic, {"inputs": inputs, **layer.parameters()}
