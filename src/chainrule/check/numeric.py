"""The numbers of a gradient check: central differences, kinks, and the verdict on each array.

For every array that a backward pass differentiates (the inputs, and each parameter), each
element is nudged by +-epsilon and the change of a scalar function is measured:

    numeric = (f(x + eps) - f(x - eps)) / (2 eps)

The scalar is the mean loss for a loss, and `sum(output * dvalues)` for a layer with fixed
random `dvalues` (whose gradient with respect to the output is exactly `dvalues`), plus the
layer's L1/L2 penalty, which its backward also differentiates.

Each element's error is relative, with a floor for gradients near zero (see
`chainrule.check.diagnosis`). A nudge that crosses a kink measures the kink, not the slope: such
an element is examined further (`at_kink`) and accepted only as a subgradient.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.check.diagnosis import ERROR_FLOOR, Context, Index, Report, element_errors, floating_point_cause, judge
from chainrule.engine.validation import finite_number

EPSILON = 1e-5
TOLERANCE = 1e-6
NOISE = 64 * float(np.finfo(np.float64).eps)  # rounding of a function value, relative to its size


@dataclass(repr=False)
class GradcheckResult(Report):
    """The verdict per checked array (`errors`, `passed`, `failures()`, and a table when printed),
    with the gradients behind it: `analytic[name]` from the backward pass, `numeric[name]` from
    central differences."""

    analytic: dict[str, Any] = field(default_factory=dict, repr=False)
    numeric: dict[str, np.ndarray] = field(default_factory=dict, repr=False)


def numerical_gradient(function: Callable[[], float], array: np.ndarray, epsilon: float) -> np.ndarray:
    """d function / d array by central differences, nudging `array` in place and restoring it."""
    gradient = np.zeros_like(array, dtype=np.float64)
    for index in np.ndindex(array.shape):
        original = array[index]
        try:
            array[index] = original + epsilon
            above = function()
            array[index] = original - epsilon
            below = function()
        finally:
            array[index] = original
        gradient[index] = (above - below) / (2 * epsilon)
    return gradient


def at_kink(function: Callable[[], float], array: np.ndarray, index: Index, epsilon: float, analytic: float) -> bool:
    """Whether element `index` sits at a kink that explains its disagreement: the function is not
    smooth within a step of it, and `analytic` lies between its one-sided slopes (a subgradient).

    Not smooth means the central difference changes with the step (a kink crossed between the
    point and a nudge), or the jump between the one-sided slopes does not shrink with the step
    (a kink at the point itself: ReLU at 0, |w| at 0 in L1, a tie in a max). On a smooth function
    the central difference agrees with itself to O(step^2), and the jump shrinks with the step.
    """
    original = array[index]
    values = {}
    try:
        for offset in (-1.0, -0.5, 0.0, 0.5, 1.0):
            array[index] = original + offset * epsilon
            values[offset] = function()
    finally:
        array[index] = original
    noise = NOISE * max(1.0, abs(values[0.0])) / epsilon

    def slopes(step: float) -> tuple[float, float]:
        return (values[0.0] - values[-step]) / (step * epsilon), (values[step] - values[0.0]) / (step * epsilon)

    (left, right), (left_half, right_half) = slopes(1.0), slopes(0.5)
    central, central_half = (left + right) / 2, (left_half + right_half) / 2
    jump, jump_half = abs(right - left), abs(right_half - left_half)
    scale = max(abs(left) + abs(right), ERROR_FLOOR)
    crossed = abs(central - central_half) > max(TOLERANCE / 4 * scale, noise)
    at_point = jump > max(TOLERANCE * scale, 100 * noise) and jump_half > 0.75 * jump
    low, high = min(left, right), max(left, right)
    slack = TOLERANCE * scale
    return (crossed or at_point) and low - slack <= analytic <= high + slack


def find_kinks(
    function: Callable[[], float],
    array: np.ndarray,
    analytic: Any,
    numeric: np.ndarray,
    epsilon: float,
    tolerance: float,
) -> tuple[Index, ...]:
    """The elements whose disagreement a kink explains (see `at_kink`); only disagreeing elements
    are examined, so a smooth function costs nothing more."""
    if analytic is None or np.shape(analytic) != numeric.shape:
        return ()
    given = np.asarray(analytic, dtype=np.float64)
    if not (np.isfinite(given).all() and np.isfinite(numeric).all()):
        return ()
    suspects = np.argwhere(element_errors(given, numeric) >= tolerance)
    return tuple(
        index
        for index in (tuple(int(i) for i in row) for row in suspects)
        if at_kink(function, array, index, epsilon, float(given[index]))
    )


def check_arrays(
    function: Callable[[], float],
    analytic: dict[str, Any],
    arrays: dict[str, np.ndarray],
    context: Context,
    *,
    epsilon: float = EPSILON,
    tolerance: float = TOLERANCE,
) -> GradcheckResult:
    """Numerically differentiate `function` with respect to each of `arrays` and judge `analytic`;
    elements at a kink (see `at_kink`) are left out and listed."""
    epsilon = finite_number(epsilon, "epsilon", "gradcheck", minimum=1e-12)
    tolerance = finite_number(tolerance, "tolerance", "gradcheck", minimum=0)
    numeric, verdicts = {}, {}
    for name, array in arrays.items():
        numeric[name] = numerical_gradient(function, array, epsilon)
        kinks = find_kinks(function, array, analytic[name], numeric[name], epsilon, tolerance)
        if context.cause == "" and not _finite(analytic[name], numeric[name]):
            context.cause = floating_point_cause(function)
        verdicts[name] = judge(name, analytic[name], numeric[name], context, kinks)
    return GradcheckResult(verdicts, tolerance, analytic, numeric)


def _finite(analytic: Any, numeric: np.ndarray) -> bool:
    return bool(np.isfinite(numeric).all()) and (analytic is None or bool(np.isfinite(np.asarray(analytic)).all()))
