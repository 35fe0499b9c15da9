"""Numerical gradient checks: central differences against the hand-written backward passes.

For every array that a backward pass differentiates (the inputs, and each parameter), each
element is nudged by +-epsilon and the change of a scalar function is measured:

    numeric = (f(x + eps) - f(x - eps)) / (2 eps)

The scalar is the mean loss for a loss, and `sum(output * dvalues)` for a layer with fixed
random `dvalues` (whose gradient with respect to the output is exactly `dvalues`), plus the
layer's L1/L2 penalty, which its backward also differentiates.

Each element's error is relative, with a floor for gradients near zero (see
`chainrule.check.diagnosis`). A nudge that moves a ReLU's input across zero measures the kink, not the
slope; such elements are skipped and counted. Anything with `forward`/`backward` can be checked:
chainrule's components, a Model, or a learner's own class (see `chainrule.check.probe`).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.check.diagnosis import Context, Report, judge
from chainrule.check.probe import Probe
from chainrule.engine.activations import LeakyReLU, ReLU
from chainrule.engine.validation import finite_number, float_array, require_same_shape

EPSILON = 1e-5
TOLERANCE = 1e-6
Signature = Callable[[], tuple]


@dataclass(repr=False)
class GradcheckResult(Report):
    """The verdict per checked array (`errors`, `passed`, `failures()`, and a table when printed),
    with the gradients behind it: `analytic[name]` from the backward pass, `numeric[name]` from
    central differences (NaN where an element was skipped at a ReLU kink)."""

    analytic: dict[str, Any] = field(default_factory=dict, repr=False)
    numeric: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def numerical_gradient(
    function: Callable[[], float], array: np.ndarray, epsilon: float, signature: Signature | None = None
) -> np.ndarray:
    """d function / d array by central differences, nudging `array` in place and restoring it.

    With `signature` (the on/off pattern of the network's kinks), an element whose nudges change
    that pattern gets NaN: its difference would straddle a kink.
    """
    gradient = np.zeros_like(array, dtype=np.float64)
    baseline: tuple[Any, ...] = ()
    if signature is not None:
        function()
        baseline = signature()
    for index in np.ndindex(array.shape):
        original = array[index]
        array[index] = original + epsilon
        above = function()
        crossed = signature is not None and not _same(signature(), baseline)
        array[index] = original - epsilon
        below = function()
        crossed = crossed or (signature is not None and not _same(signature(), baseline))
        array[index] = original
        gradient[index] = np.nan if crossed else (above - below) / (2 * epsilon)
    return gradient


def _same(first: tuple, second: tuple) -> bool:
    return all(np.array_equal(a, b) for a, b in zip(first, second, strict=True))


def relu_signature(layers: list[Any]) -> Signature | None:
    """The sign pattern of every ReLU-type layer's inputs, or None when there is no such layer."""
    kinked = [
        layer for layer in layers if isinstance(layer, (ReLU, LeakyReLU)) or "relu" in type(layer).__name__.lower()
    ]
    if not kinked:
        return None
    return lambda: tuple(np.asarray(layer.inputs) > 0 for layer in kinked)


def check_arrays(
    function: Callable[[], float],
    analytic: dict[str, Any],
    arrays: dict[str, np.ndarray],
    context: Context,
    *,
    epsilon: float = EPSILON,
    tolerance: float = TOLERANCE,
    signature: Signature | None = None,
) -> GradcheckResult:
    """Numerically differentiate `function` with respect to each of `arrays` and judge `analytic`."""
    epsilon = finite_number(epsilon, "epsilon", "gradcheck", minimum=1e-12)
    tolerance = finite_number(tolerance, "tolerance", "gradcheck", minimum=0)
    numeric = {name: numerical_gradient(function, array, epsilon, signature) for name, array in arrays.items()}
    verdicts = {
        name: judge(name, analytic[name], numeric[name], context, skipped=int(np.isnan(numeric[name]).sum()))
        for name in arrays
    }
    return GradcheckResult(verdicts, tolerance, analytic, numeric)


def _require_float64(probe: Probe) -> None:
    dtypes = probe.float_dtypes() - {np.dtype(np.float64)}
    if dtypes:
        raise TypeError(
            f"gradcheck: {probe.name} computes in {sorted(d.name for d in dtypes)}; central differences need "
            "float64 (construct it with dtype=np.float64, or give it float64 arrays)"
        )


def gradcheck(
    component: Any,
    inputs: Any,
    y_true: Any = None,
    *,
    dvalues: Any = None,
    training: bool = False,
    epsilon: float = EPSILON,
    tolerance: float = TOLERANCE,
    seed: int = 0,
) -> GradcheckResult:
    """Compare a component's analytic gradients with central differences.

    `component` is anything with `forward` and `backward`: a chainrule layer or loss, a Model
    (checks every parameter through the whole network), or your own class written as the book
    writes it. Pass `y_true` for a loss (or a Model). A layer gets random `dvalues` from `seed`
    unless given. Everything must compute in float64. `training=True` checks a Dropout layer
    with one fixed mask. Print the result for a table and, for each failure, the worst element
    and a hint.
    """
    if callable(getattr(component, "gradcheck", None)):
        return component.gradcheck(inputs, y_true, epsilon=epsilon, tolerance=tolerance)
    probe = Probe(component, training=training)
    _require_float64(probe)
    checked_inputs = np.array(float_array(inputs, np.float64, "inputs", "gradcheck"), copy=True)
    if y_true is not None:
        return _check_loss(probe, checked_inputs, y_true, epsilon, tolerance)
    if probe.is_loss:
        raise ValueError(f"gradcheck: {probe.name}.forward takes (y_pred, y_true): pass y_true to check a loss")
    fixed_mask = getattr(component, "frozen_mask", contextlib.nullcontext)
    with fixed_mask() if training else contextlib.nullcontext():
        return _check_layer(probe, checked_inputs, dvalues, seed, epsilon, tolerance)


def _check_loss(
    probe: Probe, predictions: np.ndarray, y_true: Any, epsilon: float, tolerance: float
) -> GradcheckResult:
    targets = probe.targets(y_true, predictions.shape, "gradcheck")

    def function() -> float:
        return probe.loss(predictions, targets)

    function()
    analytic = {"inputs": np.array(probe.loss_backward(predictions, targets), copy=True)}
    context = Context(n_samples=len(predictions), inputs=predictions)
    return check_arrays(function, analytic, {"inputs": predictions}, context, epsilon=epsilon, tolerance=tolerance)


def _check_layer(
    probe: Probe, inputs: np.ndarray, dvalues: Any, seed: int, epsilon: float, tolerance: float
) -> GradcheckResult:
    output = np.array(probe.forward(inputs), copy=True)
    if dvalues is None:
        upstream = np.random.default_rng(seed).standard_normal(output.shape)
    else:
        upstream = float_array(dvalues, np.float64, "dvalues", "gradcheck")
        require_same_shape(upstream, output.shape, "dvalues (the gradient of the output)", "gradcheck")
    analytic: dict[str, Any] = {"inputs": np.array(probe.backward(upstream), copy=True)}
    parameters = probe.parameters()
    gradients = probe.gradients()
    for name in parameters:
        gradient = gradients.get(name)
        analytic[name] = None if gradient is None else np.array(gradient, copy=True)

    def function() -> float:
        return float((probe.forward(inputs) * upstream).sum()) + probe.penalty()

    context = Context(len(inputs), inputs, output, upstream, dict(parameters))
    result = check_arrays(
        function,
        analytic,
        {"inputs": inputs, **parameters},
        context,
        epsilon=epsilon,
        tolerance=tolerance,
        signature=relu_signature([probe.component]),
    )
    for name in parameters:
        if analytic[name] is None:
            result.verdicts[name].problem = probe.missing_gradient_hint(name)
    return result
