"""Checking one object, a layer or a loss, chainrule's or a learner's: its gradients against central
differences, and what central differences cannot see: a forward that writes into its inputs, a
backward that writes into its dvalues, a forward that is not one fixed function, a NaN and its
cause, a dropout that does not scale what it keeps."""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.check.conditions import Conditions
from chainrule.check.diagnosis import Context, Verdict, floating_point_cause, non_finite_verdict
from chainrule.check.numeric import GradcheckResult, check_arrays
from chainrule.check.probe import Probe
from chainrule.engine.validation import require_same_shape

CHANGED_DVALUES = (
    "backward wrote into the dvalues it was given (for example self.dinputs = dvalues, then "
    "self.dinputs[...] = 0): in a network those are the next layer's dinputs, still held there, and a "
    "changed copy of them misleads whatever reads them later"
)
CHANGED_DVALUES_HINT = "start from a copy, self.dinputs = dvalues.copy(), as the book does"
CHANGED_INPUTS = (
    "forward wrote into its inputs: in a network those are the previous layer's output, which that "
    "layer's backward (and any other reader) still needs"
)
CHANGED_INPUTS_HINT = "compute into a new array (np.maximum(0, inputs) returns one) instead of assigning into inputs"
UNSCALED_DROPOUT = "the values dropout keeps are not scaled: each kept output equals its input"
UNSCALED_DROPOUT_HINT = (
    "divide the mask by the keep rate, self.binary_mask = np.random.binomial(1, self.rate, size=inputs.shape) "
    "/ self.rate, so that the expected output equals the input and nothing changes at inference"
)


def require_float64(probe: Probe) -> None:
    """Refuse a component that declares a dtype other than float64 (a chainrule layer or loss):
    central differences of 1e-5 vanish in float32's rounding."""
    dtypes = probe.float_dtypes() - {np.dtype(np.float64)}
    if dtypes:
        raise TypeError(
            f"gradcheck: {probe.name} computes in {sorted(d.name for d in dtypes)}; central differences need "
            "float64 (construct it with dtype=np.float64)"
        )


def check_loss(probe: Probe, predictions: np.ndarray, y_true: Any, epsilon: float, tolerance: float) -> GradcheckResult:
    """Check a loss's `dinputs` against the mean loss's central differences."""
    targets = probe.targets(y_true, predictions.shape, "gradcheck")
    given = predictions.copy()

    def function() -> float:
        return probe.loss(predictions.copy(), targets)

    value = probe.loss(given, targets)
    context = Context(n_samples=len(predictions), inputs=predictions, is_loss=True)
    early: dict[str, Verdict] = {}
    if not np.array_equal(given, predictions):
        early["forward"] = Verdict("forward", float("inf"), problem=CHANGED_INPUTS, hint=CHANGED_INPUTS_HINT)
    if not np.isfinite(value):
        context.cause = floating_point_cause(function)
        early["loss"] = non_finite_verdict("loss", np.asarray(value), "the loss", context)  # type: ignore[assignment]
        return GradcheckResult(early, tolerance)
    analytic = {"inputs": np.array(probe.loss_backward(predictions, targets), copy=True)}
    result = check_arrays(function, analytic, {"inputs": predictions}, context, epsilon=epsilon, tolerance=tolerance)
    if probe.changed_dvalues:
        early["backward"] = Verdict("backward", float("inf"), problem=CHANGED_DVALUES, hint=CHANGED_DVALUES_HINT)
    result.verdicts.update(early)
    return result


def check_layer(
    probe: Probe,
    inputs: np.ndarray,
    dvalues: np.ndarray | None,
    conditions: Conditions,
    epsilon: float,
    tolerance: float,
    *,
    seed: int = 0,
) -> GradcheckResult:
    """Check a layer's `dinputs` and parameter gradients against the central differences of
    sum(output * dvalues) + its penalty (random `dvalues` from `seed` when None)."""
    given = inputs.copy()
    output = np.array(probe.forward(given), copy=True)
    conditions.note_draws(probe.name)
    early: dict[str, Verdict] = {}
    if not np.array_equal(given, inputs, equal_nan=True):
        early["forward"] = Verdict("forward", float("inf"), problem=CHANGED_INPUTS, hint=CHANGED_INPUTS_HINT)
    again = np.asarray(probe.forward(inputs.copy()))
    context = Context(len(inputs), inputs, output)
    if again.shape != output.shape or not np.array_equal(again, output, equal_nan=True):
        early["output"] = _not_one_function(output, again)
        return GradcheckResult(early, tolerance)
    if not np.isfinite(output).all():
        context.cause = floating_point_cause(lambda: probe.forward(inputs.copy()))
        early["output"] = non_finite_verdict("output", output, "output", context)  # type: ignore[assignment]
        return GradcheckResult(early, tolerance)
    if conditions.drawn and _unscaled_dropout(inputs, output):
        early["output"] = Verdict("output", float("inf"), problem=UNSCALED_DROPOUT, hint=UNSCALED_DROPOUT_HINT)
    if dvalues is None:
        upstream = np.random.default_rng(seed).standard_normal(output.shape)
    else:
        upstream = dvalues
        require_same_shape(upstream, output.shape, "dvalues (the gradient of the output)", "gradcheck")
    analytic: dict[str, Any] = {"inputs": np.array(probe.backward(upstream.copy()), copy=True)}
    if probe.changed_dvalues:
        early["backward"] = Verdict("backward", float("inf"), problem=CHANGED_DVALUES, hint=CHANGED_DVALUES_HINT)
    parameters = probe.parameters()
    gradients = probe.gradients()
    for name in parameters:
        gradient = gradients.get(name)
        analytic[name] = None if gradient is None else np.array(gradient, copy=True)

    def function() -> float:
        return float((probe.forward(inputs.copy()) * upstream).sum()) + probe.penalty()

    context.dvalues, context.parameters = upstream, dict(parameters)
    result = check_arrays(
        function, analytic, {"inputs": inputs, **parameters}, context, epsilon=epsilon, tolerance=tolerance
    )
    expected = ["dinputs", *(f"d{name}" for name in parameters)]
    for name in parameters:
        if analytic[name] is None:
            result.verdicts[name].problem = probe.missing_gradient_hint(name, expected)
    result.verdicts = {**early, **result.verdicts}
    return result


def _not_one_function(first: np.ndarray, second: np.ndarray) -> Verdict:
    """Two forwards on the same inputs disagreed, with the generators reset before each."""
    where = ""
    if first.shape == second.shape:
        index = tuple(int(i) for i in np.argwhere(~((first == second) | (np.isnan(first) & np.isnan(second))))[0])
        where = f" (output{list(index)}: {first[index]:.6g}, then {second[index]:.6g})"
    return Verdict(
        "output",
        float("inf"),
        problem=f"two forward passes on the same inputs gave different outputs{where}, though NumPy's and the "
        "object's generators were reset before each: central differences need one fixed function",
        hint="it draws random numbers some other way (a new generator without a seed inside forward?); "
        "draw from np.random or a generator kept in self, or check it with training=False",
    )


def _unscaled_dropout(inputs: np.ndarray, output: np.ndarray) -> bool:
    """A forward that drew random numbers zeroed some values and passed the others unchanged."""
    if inputs.shape != output.shape:
        return False
    kept = output != 0
    return bool(kept.any() and (~kept).any() and (inputs != 0).all() and np.array_equal(output[kept], inputs[kept]))
