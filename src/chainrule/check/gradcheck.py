"""`gradcheck`, the one entry point of the numerical checks: a component (`chainrule.check.component`),
a list of layers ending with a loss (`chainrule.check.network`), or a Model (its own `gradcheck`),
each run under the conditions of `chainrule.check.conditions` and judged by the numbers of
`chainrule.check.numeric`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from chainrule.check.component import check_layer, check_loss, require_float64
from chainrule.check.conditions import check_conditions
from chainrule.check.network import gradcheck_network
from chainrule.check.numeric import EPSILON, TOLERANCE, GradcheckResult
from chainrule.check.probe import Probe
from chainrule.engine.validation import float_array


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

    `component` is anything with `forward` and `backward`: a chainrule layer or loss, your own
    class written as the book writes it, a Model, or a list of your objects in the book's order
    ending with a loss (checked layer by layer from the loss backwards; see `gradcheck_network`).
    Pass `y_true` for a loss (or a network). A layer gets random `dvalues` from `seed` unless
    given. `training=True` runs the forward in training mode; random draws (a dropout mask) are
    held fixed across the nudges. Print the result for a table and, for each failure, the worst
    element and a hint; its `notes` say what the check changed to run (NumPy's `np.dot` restored
    after `nnfs.init()`, float64 copies of float32 arrays, random draws held).
    """
    if callable(getattr(component, "gradcheck", None)):
        return component.gradcheck(inputs, y_true, epsilon=epsilon, tolerance=tolerance)
    if isinstance(component, (list, tuple)):
        return gradcheck_network(
            list(component), inputs, y_true, training=training, epsilon=epsilon, tolerance=tolerance
        )
    probe = Probe(component, training=training)
    require_float64(probe)
    checked_inputs = np.array(float_array(inputs, np.float64, "inputs", "gradcheck", ndim=None), copy=True)
    if y_true is None and probe.is_loss:
        raise ValueError(f"gradcheck: {probe.name}.forward takes (y_pred, y_true): pass y_true to check a loss")
    with check_conditions([component], probe.name) as conditions:
        probe.draws = conditions.draws
        if y_true is not None:
            result = check_loss(probe, checked_inputs, y_true, epsilon, tolerance)
        else:
            upstream = None if dvalues is None else float_array(dvalues, np.float64, "dvalues", "gradcheck", ndim=None)
            result = check_layer(probe, checked_inputs, upstream, conditions, epsilon, tolerance, seed=seed)
        result.notes += conditions.notes
    return result
