"""solver='lbfgs': SciPy's L-BFGS-B on the model's flat parameter vector, with chainrule's gradients."""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import scipy.optimize
from sklearn.exceptions import ConvergenceWarning

from chainrule.sklearn.objective import Objective, Rows


@dataclass(frozen=True)
class LbfgsResult:
    n_iter: int
    loss: float


def minimize(objective: Objective, data: Rows, *, max_iter: int, max_fun: int, tol: float) -> LbfgsResult:
    """Full-batch L-BFGS-B from the model's current parameters, for at most `max_iter` iterations
    and `max_fun` evaluations of the loss; the model ends with the minimiser."""
    store = objective.model.parameter_store()

    def loss_and_gradient(flat: np.ndarray) -> tuple[float, np.ndarray]:
        store.values[...] = flat
        loss = objective(data, gradients=True)
        return loss, store.gradients.astype(np.float64)

    result = scipy.optimize.minimize(
        loss_and_gradient,
        store.values.astype(np.float64),
        method="L-BFGS-B",
        jac=True,
        options={"maxfun": max_fun, "maxiter": max_iter, "gtol": tol},
    )
    store.values[...] = result.x
    if result.status != 0:
        warnings.warn(
            f"lbfgs failed to converge after {result.nit} iterations ({result.message}); increase max_iter or "
            "scale the data",
            ConvergenceWarning,
            stacklevel=3,
        )
    return LbfgsResult(min(int(result.nit), max_iter), float(result.fun))
