"""Diagnosis of a wrong gradient, in words a learner can act on.

Each checked array gets a verdict: a wrong shape is reported as a shape (never broadcast into
numbers), wrong values by their worst element, and either by a one-line hint when the
gradient matches a typical slip: a sum over the wrong axis, a missing `.T`, a missing or
doubled division by the number of samples, softmax's derivative taken as `s * (1 - s)`, or a
ReLU mask taken from the wrong array.
"""

from __future__ import annotations

import html
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np

from chainrule.display import html_table

# An element's error is |analytic - numeric| / max(|analytic| + |numeric|, ERROR_FLOOR): relative for
# ordinary gradients, and an absolute error (limit ERROR_FLOOR * tolerance, 1e-9 by default) for
# gradients near zero, where the central difference's own rounding (up to about 3e-11 at a step of
# 1e-5 on the networks of the command line's gradcheck) would otherwise dominate.
ERROR_FLOOR = 1e-3


def element_errors(analytic: np.ndarray, numeric: np.ndarray) -> np.ndarray:
    """Element-wise relative error with a floor (see ERROR_FLOOR); NaN where `numeric` is NaN (skipped)."""
    return np.abs(analytic - numeric) / np.maximum(np.abs(analytic) + np.abs(numeric), ERROR_FLOOR)


@dataclass
class Context:
    """What the check knows besides the gradients: the data a slip's gradient can be rebuilt from."""

    n_samples: int
    inputs: np.ndarray | None = None
    output: np.ndarray | None = None
    dvalues: np.ndarray | None = None  # the upstream gradient given to a layer's backward
    parameters: dict[str, np.ndarray] = field(default_factory=dict)


@dataclass
class Verdict:
    """One array's result: its largest element error, the worst element, and what is wrong."""

    name: str
    error: float
    worst: tuple[tuple[int, ...], float, float] | None = None  # (index, analytic, numeric)
    problem: str = ""
    hint: str = ""
    skipped: int = 0  # elements within a step of a kink (ReLU), left out


def gradient_name(name: str) -> str:
    """What the book calls the gradient of array `name`: dinputs, dweights, layer0.Dense.dbiases;
    the forward `output` compared by `compare` keeps its name."""
    if name == "output":
        return name
    owner, _, array = name.rpartition(".")
    return f"{owner}.d{array}" if owner else f"d{array}"


def judge(name: str, analytic: object, numeric: np.ndarray, context: Context, skipped: int = 0) -> Verdict:
    """Compare one gradient with its central differences and say what, if anything, is wrong."""
    if analytic is None:
        return Verdict(name, float("inf"), problem=f"backward set no {gradient_name(name)}", skipped=skipped)
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.shape != numeric.shape:
        return Verdict(
            name,
            float("inf"),
            problem=f"{gradient_name(name)} has shape {analytic.shape}, expected {numeric.shape} (the shape of {name})",
            hint=_shape_hint(name, analytic.shape, numeric.shape, context),
            skipped=skipped,
        )
    errors = element_errors(analytic, numeric)
    if np.isnan(errors).all():
        return Verdict(name, 0.0, skipped=skipped)
    worst = np.unravel_index(int(np.nanargmax(errors)), errors.shape)
    error = float(errors[worst])
    verdict = Verdict(name, error, (tuple(int(i) for i in worst), float(analytic[worst]), float(numeric[worst])))
    verdict.skipped = skipped
    verdict.hint = _value_hint(name, analytic, numeric, context)
    return verdict


def _shape_hint(name: str, got: tuple, expected: tuple, context: Context) -> str:
    if name == "biases" and len(expected) == 2 and got in ((context.n_samples, 1), (context.n_samples,)):
        return "dbiases sums over the samples: np.sum(dvalues, axis=0, keepdims=True), not axis=1"
    if name == "biases" and len(got) == 1:
        return "keep the row shape: np.sum(dvalues, axis=0, keepdims=True)"
    if got == tuple(reversed(expected)):
        return f"{gradient_name(name)} is transposed: check which factor needs .T"
    return ""


def _value_hint(name: str, analytic: np.ndarray, numeric: np.ndarray, context: Context) -> str:
    """The first typical slip whose gradient `analytic` matches."""
    for slip, hint in _slips(name, numeric, context):
        candidate = slip()
        if candidate is not None and candidate.shape == analytic.shape and _matches(analytic, candidate, numeric):
            return hint
    return ""


def _matches(analytic: np.ndarray, candidate: np.ndarray, numeric: np.ndarray) -> bool:
    """`analytic` equals the slip's gradient, and that gradient is not the right one too."""
    close = np.allclose(analytic, candidate, rtol=1e-6, atol=1e-9 * max(1.0, float(np.abs(numeric).max())))
    return close and not np.allclose(candidate, numeric, rtol=1e-4, atol=1e-8)


def _slips(name: str, numeric: np.ndarray, context: Context) -> list[tuple[Callable[[], np.ndarray | None], str]]:
    n = context.n_samples
    dvalues, inputs, output = context.dvalues, context.inputs, context.output
    weights = context.parameters.get("weights")
    slips: list[tuple[Callable[[], np.ndarray | None], str]] = [
        (lambda: numeric * n, f"{gradient_name(name)} is {n} times too large: divide by the number of samples"),
        (lambda: numeric / n, f"{gradient_name(name)} is divided by the number of samples ({n}) twice"),
    ]
    if name == "inputs" and dvalues is not None and weights is not None:
        slips.append(
            (
                lambda: dvalues @ weights if dvalues.shape[1] == weights.shape[0] else None,
                "dinputs misses a .T: dinputs = dvalues @ weights.T",
            )
        )
    if name == "weights" and dvalues is not None and inputs is not None:
        slips.append(
            (
                lambda: (dvalues.T @ inputs).T if dvalues.shape[0] == inputs.shape[0] else None,
                "dweights = inputs.T @ dvalues (the inputs are transposed, not dvalues)",
            )
        )
    if name == "inputs" and dvalues is not None and output is not None and output.shape == dvalues.shape:
        slips += [
            (
                lambda: dvalues * output * (1 - output),
                "softmax's derivative is not s * (1 - s), which is only its Jacobian's diagonal: "
                "dinputs = s * (dvalues - np.sum(dvalues * s, axis=1, keepdims=True))",
            ),
            (
                lambda: dvalues * (dvalues > 0),
                "ReLU's mask comes from the forward inputs (inputs <= 0), not from dvalues",
            ),
            (
                lambda: output * (output > 0),
                "ReLU's backward starts from dvalues (a copy of them), not from the outputs",
            ),
        ]
    return slips


def describe(verdict: Verdict, tolerance: float) -> str:
    """One or two lines for a failing array: what is wrong, where, and the hint."""
    if verdict.problem:
        line = verdict.problem
    else:
        assert verdict.worst is not None  # a failing verdict without a problem has a worst element
        index, analytic, numeric = verdict.worst
        line = (
            f"{gradient_name(verdict.name)}{list(index)} is {analytic:.6g}, central differences give {numeric:.6g} "
            f"(error {verdict.error:.2e} > tolerance {tolerance:g})"
        )
    return f"{line}\n    hint: {verdict.hint}" if verdict.hint else line


@dataclass(repr=False)
class Report:
    """Verdicts on several arrays, judged against one tolerance: prints as a table plus the failures."""

    verdicts: dict[str, Verdict]
    tolerance: float

    @property
    def errors(self) -> dict[str, float]:
        """The largest element error of each array (inf for a wrong shape or a missing gradient)."""
        return {name: verdict.error for name, verdict in self.verdicts.items()}

    @property
    def max_error(self) -> float:
        """The largest error over all arrays."""
        return max(self.errors.values(), default=0.0)

    @property
    def passed(self) -> bool:
        """True when every array's error is below `tolerance`."""
        return self.max_error < self.tolerance

    def failures(self) -> list[str]:
        """What is wrong with each failing array, with a hint where a typical slip fits."""
        return [describe(v, self.tolerance) for v in self.verdicts.values() if not v.error < self.tolerance]

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(passed={self.passed}, max_error={self.max_error:.3e}, arrays={list(self.verdicts)})"
        )

    def _repr_html_(self) -> str:
        rows = [
            (name, f"{verdict.error:.3e}", "ok" if verdict.error < self.tolerance else "FAIL")
            for name, verdict in self.verdicts.items()
        ]
        failures = "".join(f"<pre>{html.escape(failure)}</pre>" for failure in self.failures())
        return html_table(["array", "largest error", "status"], rows) + failures

    def __str__(self) -> str:
        width = max((len(name) for name in self.verdicts), default=5)
        lines = [f"{'array':<{width}}  largest error  status"]
        for name, verdict in self.verdicts.items():
            status = "ok" if verdict.error < self.tolerance else "FAIL"
            skipped = f"  ({verdict.skipped} elements at a ReLU kink skipped)" if verdict.skipped else ""
            lines.append(f"{name:<{width}}  {verdict.error:13.3e}  {status}{skipped}")
        lines += self.failures()
        return "\n".join(lines)
