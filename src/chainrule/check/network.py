"""Checking a whole network, layer by layer from the loss backwards.

The network runs forward once and backward once, as in training; each layer then gets its own
check, with the inputs it saw and the `dvalues` it was handed: its `dinputs` and parameter
gradients against central differences of sum(output * dvalues). If every layer is right for the
`dvalues` it was handed, and the loss is right, the whole network's gradients are right (that is
the chain rule); and a slip is named where it is, not in the layers before it, which only
receive its wrong `dvalues`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.check.component import check_layer, check_loss, require_float64
from chainrule.check.conditions import check_conditions
from chainrule.check.numeric import EPSILON, TOLERANCE, GradcheckResult
from chainrule.check.probe import Probe
from chainrule.engine.validation import float_array


def gradcheck_network(
    components: list[Any],
    inputs: Any,
    y_true: Any,
    *,
    training: bool = False,
    epsilon: float = EPSILON,
    tolerance: float = TOLERANCE,
) -> GradcheckResult:
    """Check `components`: layers in the book's order, the last one a loss (`forward(y_pred,
    y_true)`, a fused softmax-and-loss included), on `inputs` and `y_true`.

    The result's arrays are named `layer{i}.{Class}.{array}` and `loss.{Class}.inputs`, in the
    order of the backward pass; its first note names the first layer, from the loss backwards,
    whose gradients disagree.
    """
    if len(components) < 2 or y_true is None:
        raise ValueError("gradcheck: a network is a list of layers ending with a loss, checked with y_true")
    probes = [Probe(component, training=training) for component in components]
    *layers, loss = probes
    if not loss.is_loss:
        raise ValueError(
            f"gradcheck: the last object of a network must be a loss, forward(y_pred, y_true); got {loss.name}"
        )
    for probe in probes:
        require_float64(probe)
    values = np.array(float_array(inputs, np.float64, "inputs", "gradcheck", ndim=None), copy=True)
    with check_conditions(components, "the network") as conditions:
        for probe in probes:
            probe.draws = conditions.draws
        seen = []
        for probe in layers:
            seen.append(values)
            values = np.array(probe.forward(values.copy()), copy=True)
        targets = loss.targets(y_true, values.shape, "gradcheck")
        parts = [("loss", loss, check_loss(loss, values, targets, epsilon, tolerance))]
        dvalues = np.array(loss.loss_backward(values, targets), copy=True)
        for index in reversed(range(len(layers))):
            probe = layers[index]
            probe.forward(seen[index].copy())  # the layer's state as it was for this backward
            handed = dvalues
            dvalues = np.array(probe.backward(handed.copy()), copy=True)
            parts.append(
                (f"layer{index}", probe, check_layer(probe, seen[index], handed, conditions, epsilon, tolerance))
            )
    verdicts, notes = {}, []
    for prefix, probe, result in parts:
        for name, verdict in result.verdicts.items():
            verdict.name = f"{prefix}.{probe.name}.{name}"
            verdicts[verdict.name] = verdict
    failing = next((f"{prefix} ({probe.name})" for prefix, probe, result in parts if not result.passed), None)
    if failing is not None:
        notes.append(
            f"the first disagreement from the loss backwards is in {failing}: look there first; the layers "
            "before it are checked with the dvalues it hands them"
        )
    notes += list(dict.fromkeys(conditions.notes))
    analytic = {f"{p}.{probe.name}.{n}": g for p, probe, result in parts for n, g in result.analytic.items()}
    numeric = {f"{p}.{probe.name}.{n}": g for p, probe, result in parts for n, g in result.numeric.items()}
    return GradcheckResult(verdicts, tolerance, analytic, numeric, notes=notes)
