"""compare: run a learner's object and a chainrule component side by side on the same numbers.

The reference's parameters are copied into the learner's object, both run forward on the same
inputs and backward on the same `dvalues`, and the output and every gradient are judged as
`gradcheck` judges them, with the same diagnosis and hints.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

from chainrule.check.conditions import check_conditions
from chainrule.check.diagnosis import Context, Report, Verdict, gradient_name, judge
from chainrule.check.probe import Probe
from chainrule.display import html_table
from chainrule.engine.layers import Layer
from chainrule.engine.validation import float_array, require_same_shape

TOLERANCE = 1e-6
MAX_SHOWN = 24  # arrays up to this many elements are printed side by side


@dataclass(repr=False)
class Comparison(Report):
    """Verdicts on the output and each gradient of `mine` against `reference`, with both values."""

    mine: dict[str, Any] = field(default_factory=dict, repr=False)
    reference: dict[str, np.ndarray] = field(default_factory=dict, repr=False)

    def worst_line(self, verdict: Verdict) -> str:
        assert verdict.worst is not None
        index, mine, reference = verdict.worst
        return (
            f"{gradient_name(verdict.name)}{list(index)} is {mine:.6g}, the reference gives {reference:.6g} "
            f"(error {verdict.error:.2e} > tolerance {self.tolerance:g})"
        )

    def side_by_side(self) -> list[tuple[str, str, str]]:
        """(array, mine, reference) for every array small enough to show whole."""
        return [
            (name, _flat(self.mine[name]), _flat(values))
            for name, values in self.reference.items()
            if values.size <= MAX_SHOWN and self.mine.get(name) is not None
        ]

    def __str__(self) -> str:
        lines = [super().__str__()]
        lines += [f"\n{name}\n  mine:      {mine}\n  reference: {theirs}" for name, mine, theirs in self.side_by_side()]
        return "\n".join(lines)

    def _repr_html_(self) -> str:
        values = html_table(["array", "mine", "reference"], self.side_by_side()) if self.side_by_side() else ""
        return super()._repr_html_() + values


def _flat(values: Any) -> str:
    return np.array2string(np.asarray(values, dtype=np.float64), precision=6, separator=", ", max_line_width=200)


def compare(
    mine: Any,
    reference: Any,
    inputs: Any,
    y_true: Any = None,
    *,
    dvalues: Any = None,
    tolerance: float = TOLERANCE,
    seed: int = 0,
) -> Comparison:
    """Run `mine` (any object with forward/backward) and `reference` (a chainrule component) on
    the same `inputs` with the same weights, and compare the output and every gradient.

    The reference's parameters (`weights`, `biases`, ...) are copied into `mine` first, as
    attributes of the same names. Pass `y_true` for losses. Layers get random `dvalues` from
    `seed` unless given.
    """
    checked_inputs = float_array(inputs, np.float64, "inputs", "compare", ndim=None)
    with check_conditions([mine], type(mine).__name__) as conditions:
        result = _compare(Probe(mine), Probe(reference), checked_inputs, y_true, dvalues, tolerance, seed)
    result.notes += conditions.notes
    return result


def _compare(
    mine_probe: Probe,
    reference_probe: Probe,
    checked_inputs: np.ndarray,
    y_true: Any,
    dvalues: Any,
    tolerance: float,
    seed: int,
) -> Comparison:
    mine, reference = mine_probe.component, reference_probe.component
    if y_true is not None:
        return _compare_losses(mine_probe, reference_probe, checked_inputs, y_true, tolerance)
    _copy_parameters(reference, mine)
    output = reference_probe.forward(checked_inputs)
    theirs = {"output": np.array(output, copy=True)}
    ours: dict[str, np.ndarray | None] = {"output": np.array(mine_probe.forward(checked_inputs.copy()), copy=True)}
    if dvalues is None:
        upstream = np.random.default_rng(seed).standard_normal(output.shape)
    else:
        upstream = float_array(dvalues, np.float64, "dvalues", "compare", ndim=None)
        require_same_shape(upstream, output.shape, "dvalues (the gradient of the output)", "compare")
    theirs["inputs"] = np.array(reference_probe.backward(upstream), copy=True)
    ours["inputs"] = np.array(mine_probe.backward(upstream.copy()), copy=True)
    parameters = reference_probe.parameters()
    mine_gradients = mine_probe.gradients()
    for name, gradient in reference_probe.gradients().items():
        theirs[name] = np.array(gradient, copy=True)
        ours[name] = None if mine_gradients.get(name) is None else np.array(mine_gradients[name], copy=True)
    context = Context(len(checked_inputs), checked_inputs, ours["output"], upstream, dict(parameters))
    verdicts = {name: judge(name, ours[name], theirs[name], context) for name in theirs}
    expected = ["dinputs", *(f"d{name}" for name in parameters)]
    for name in parameters:
        if ours[name] is None:
            verdicts[name].problem = mine_probe.missing_gradient_hint(name, expected)
    return Comparison(verdicts, tolerance, ours, theirs)


def _compare_losses(
    mine: Probe, reference: Probe, predictions: np.ndarray, y_true: Any, tolerance: float
) -> Comparison:
    targets = reference.targets(y_true, predictions.shape, "compare")
    theirs = {"output": np.array(reference.loss(predictions, targets))}
    ours = {"output": np.array(mine.loss(predictions.copy(), targets))}
    theirs["inputs"] = np.array(reference.loss_backward(predictions, targets), copy=True)
    ours["inputs"] = np.array(mine.loss_backward(predictions.copy(), targets), copy=True)
    context = Context(len(predictions), predictions)
    return Comparison(
        {name: judge(name, ours[name], theirs[name], context) for name in theirs}, tolerance, ours, theirs
    )


def _copy_parameters(source: Any, target: Any) -> None:
    """Give `target` copies of `source`'s parameters, under the same attribute names."""
    for name, values in Probe(source).parameters().items():
        current = target.parameters().get(name) if isinstance(target, Layer) else getattr(target, name, None)
        if current is not None and np.shape(current) != values.shape:
            transposed = " (transposed: store weights as (n_inputs, n_neurons))" if np.ndim(current) == 2 else ""
            raise ValueError(
                f"compare: {type(target).__name__}.{name} has shape {np.shape(current)}, but the reference's "
                f"{name} have shape {values.shape}{transposed if np.shape(current) == values.shape[::-1] else ''}"
            )
        if isinstance(target, Layer) and current is not None:
            current[...] = values
        else:
            setattr(target, name, np.array(values, dtype=np.float64, copy=True))
