"""Checking an optimizer written as the book writes it, step by step beside chainrule's.

Both optimizers update a layer of their own with the same weights, biases and, at every step,
the same random gradients, through the book's three calls (`pre_update_params`,
`update_params(layer)`, `post_update_params`). After each step the learning rate, the weights,
the biases and the state each keeps (the book's `weight_momentums`, `weight_cache`, ...) are
compared; the first step and array that differ are named, with a hint when a usual slip
reproduces the learner's numbers from the state both shared before that step.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from chainrule.backend import kernels
from chainrule.check.diagnosis import Report, Verdict, element_errors
from chainrule.engine.optimizers import SGD, Adagrad, Adam, Optimizer, RMSprop

TOLERANCE = 1e-9  # the same arithmetic in another order agrees to rounding
BOOK_SLOTS = {"velocity": "momentums", "momentum": "momentums", "cache": "cache"}  # chainrule's slot: the book's
BOOK_OWNERS = {"weights": "weight", "biases": "bias"}


class BookLayer:
    """A layer's trainable arrays under the book's names, for an optimizer to update."""

    def __init__(self, weights: np.ndarray, biases: np.ndarray) -> None:
        self.weights, self.biases = weights.copy(), biases.copy()
        self.dweights, self.dbiases = np.zeros_like(weights), np.zeros_like(biases)


@dataclass(repr=False)
class OptimizerCheck(Report):
    """The verdict per array after the first step where the optimizers differ (or after the last
    step), with `step`: the step at which they first differ (None when they never do)."""

    step: int | None = None

    def worst_line(self, verdict: Verdict) -> str:
        assert verdict.worst is not None
        index, mine, reference = verdict.worst
        where = list(index) if index else ""
        return (
            f"{verdict.name}{where} is {mine:.6g} after step {self.step}, the reference gives {reference:.6g} "
            f"(error {verdict.error:.2e} > tolerance {self.tolerance:g})"
        )


@kernels.numpy_only()  # chainrule's side runs the textbook arithmetic, as every check does
def check_optimizer(
    mine: Any,
    reference: Optimizer,
    *,
    steps: int = 5,
    shape: tuple[int, int] = (4, 3),
    seed: int = 0,
    tolerance: float = TOLERANCE,
) -> OptimizerCheck:
    """Run `mine` (an optimizer written as the book writes it) and `reference` (chainrule's, with
    the same settings) side by side for `steps` steps, and say where they first differ.

    Print the result for a table of the compared arrays and, at the first step that differs,
    the worst element of each differing array and a hint where a usual slip fits.
    """
    for method in ("pre_update_params", "update_params", "post_update_params"):
        if not callable(getattr(mine, method, None)):
            raise TypeError(
                f"check_optimizer: {type(mine).__name__} has no {method} method, as the book's optimizers do"
            )
    if not isinstance(reference, Optimizer):
        raise TypeError(f"check_optimizer: the reference must be a chainrule optimizer, got {type(reference).__name__}")
    rng = np.random.default_rng(seed)
    weights, biases = rng.standard_normal(shape), rng.standard_normal((1, shape[1]))
    ours, theirs = BookLayer(weights, biases), BookLayer(weights, biases)
    verdicts: dict[str, Verdict] = {}
    for step in range(1, steps + 1):
        before = _snapshot(theirs, reference)
        gradients = rng.standard_normal(shape), rng.standard_normal((1, shape[1]))
        for layer in (ours, theirs):
            layer.dweights, layer.dbiases = (gradient.copy() for gradient in gradients)
        for optimizer, layer in ((mine, ours), (reference, theirs)):
            optimizer.pre_update_params()
            optimizer.update_params(layer)
            optimizer.post_update_params()
        verdicts = _compare(mine, ours, reference, theirs)
        if any(not verdict.error < tolerance for verdict in verdicts.values()):
            _hint(verdicts, reference, before, gradients, mine, ours, tolerance)
            return OptimizerCheck(verdicts, tolerance, step=step, notes=[f"the optimizers first differ at step {step}"])
    return OptimizerCheck(verdicts, tolerance, notes=[f"{steps} steps compared"])


def _arrays(optimizer: Any, layer: BookLayer, reference: Optimizer) -> dict[str, Any]:
    """The compared arrays under the book's names, from a book-style optimizer (`reference` says
    which state to look for) or from chainrule's."""
    arrays: dict[str, Any] = {"current_learning_rate": np.asarray(getattr(optimizer, "current_learning_rate", np.nan))}
    arrays.update({"weights": layer.weights, "biases": layer.biases})
    state = optimizer.get_state([layer]) if optimizer is reference else None
    for name, owner in BOOK_OWNERS.items():
        for slot in reference.slots:
            book_name = f"{owner}_{BOOK_SLOTS[slot]}"
            arrays[book_name] = state.get(f"0.{name}.{slot}") if state is not None else getattr(layer, book_name, None)
    return arrays


def _compare(mine: Any, ours: BookLayer, reference: Optimizer, theirs: BookLayer) -> dict[str, Verdict]:
    expected, given = _arrays(reference, theirs, reference), _arrays(mine, ours, reference)
    verdicts = {}
    for name, values in expected.items():
        value = given[name]
        if value is None:
            verdicts[name] = Verdict(name, float("inf"), problem=f"update_params set no layer.{name}")
            continue
        value = np.asarray(value, dtype=np.float64)
        if value.shape != values.shape:
            problem = f"layer.{name} has shape {value.shape}, expected {values.shape}"
            verdicts[name] = Verdict(name, float("inf"), problem=problem)
            continue
        errors = np.where(np.isfinite(value), element_errors(value, values), np.inf)
        worst = np.unravel_index(int(np.argmax(errors)), errors.shape) if errors.size else ()
        verdicts[name] = Verdict(
            name,
            float(errors[worst]) if errors.size else 0.0,
            (tuple(int(i) for i in worst), float(value[worst]), float(values[worst])),
        )
    return verdicts


def _snapshot(layer: BookLayer, reference: Optimizer) -> dict[str, Any]:
    """What both optimizers held before a step (they agreed until then): arrays and counters."""
    state = {key: array.copy() for key, array in reference.get_state([layer]).items()}
    return {
        "weights": layer.weights.copy(),
        "state": state,
        "iterations": reference.iterations,
    }


def _hint(
    verdicts: dict[str, Verdict],
    reference: Optimizer,
    before: dict[str, Any],
    gradients: tuple[np.ndarray, np.ndarray],
    mine: Any,
    ours: BookLayer,
    tolerance: float,
) -> None:
    """Attach the first slip that reproduces the learner's numbers for this step."""
    rate = verdicts["current_learning_rate"]
    if not rate.error < tolerance:
        rate.hint = _decay_hint(reference, float(np.asarray(getattr(mine, "current_learning_rate", np.nan))))
        return
    weights = verdicts["weights"]
    if weights.error < tolerance:
        return
    for slip, hint in _slips(reference, before, gradients[0]):
        candidate = slip()
        if candidate is not None and np.allclose(ours.weights, candidate, rtol=1e-9, atol=1e-12):
            weights.hint = hint
            return


def _decay_hint(reference: Optimizer, learning_rate: float) -> str:
    iterations = reference.iterations - 1  # the step just taken used the count before it
    book = reference.learning_rate * (1.0 / (1.0 + reference.decay * iterations))
    if np.isclose(learning_rate, reference.learning_rate * (1.0 / (1.0 + reference.decay * (iterations + 1)))):
        return "the decay uses the iterations one step ahead: pre_update_params runs before post_update_params counts"
    if np.isclose(learning_rate, reference.learning_rate):
        return (
            "the learning rate does not decay: current_learning_rate = learning_rate * (1. / (1. + decay * iterations))"
        )
    return f"current_learning_rate = learning_rate * (1. / (1. + decay * iterations)), here {book:.6g}"


def _slips(
    reference: Optimizer, before: dict[str, Any], gradient: np.ndarray
) -> list[tuple[Callable[[], np.ndarray | None], str]]:
    """(the weights after a slipped step from the shared state, the hint) for the reference's kind."""
    weights, state, t = before["weights"], before["state"], before["iterations"] + 1
    rate = reference.learning_rate * (1.0 / (1.0 + reference.decay * before["iterations"]))
    if isinstance(reference, Adam):
        b1, b2, eps = reference.beta_1, reference.beta_2, reference.epsilon
        momentum = b1 * state.get("0.weights.momentum", 0.0) + (1 - b1) * gradient
        cache = b2 * state.get("0.weights.cache", 0.0) + (1 - b2) * gradient**2

        def adam(t_used: float, inside: bool = False) -> np.ndarray:
            corrected_m, corrected_v = momentum / (1 - b1**t_used), cache / (1 - b2**t_used)
            root = np.sqrt(corrected_v + eps) if inside else np.sqrt(corrected_v) + eps
            return weights - rate * corrected_m / root

        return [
            (lambda: adam(t + 1), "the bias correction is one step ahead: use 1 - beta ** (iterations + 1)"),
            (
                lambda: adam(t - 1) if t > 1 else None,
                "the bias correction is one step behind: use 1 - beta ** (iterations + 1)",
            ),
            (lambda: adam(t, inside=True), "epsilon goes outside the square root: np.sqrt(cache_corrected) + epsilon"),
        ]
    if isinstance(reference, SGD) and reference.momentum:
        velocity = state.get("0.weights.velocity", 0.0)
        return [
            (
                lambda: weights + (reference.momentum * velocity + rate * gradient),
                "momentum's update subtracts the gradient: "
                "weight_updates = momentum * weight_momentums - current_learning_rate * dweights",
            ),
            (
                lambda: weights - (reference.momentum * velocity - rate * gradient),
                "add the update to the weights: layer.weights += weight_updates",
            ),
        ]
    if isinstance(reference, (Adagrad, RMSprop)):
        eps = reference.epsilon
        cache = state.get("0.weights.cache", 0.0)
        cache = (
            cache + gradient**2
            if isinstance(reference, Adagrad)
            else reference.rho * cache + (1 - reference.rho) * gradient**2
        )
        return [
            (
                lambda: weights - rate * gradient / np.sqrt(cache + eps),
                "epsilon goes outside the square root: np.sqrt(layer.weight_cache) + epsilon",
            )
        ]
    return [
        (lambda: weights + rate * gradient, "the update goes against the gradient: weights -= learning_rate * dweights")
    ]
