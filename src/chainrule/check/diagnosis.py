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


# What NumPy's floating-point errors mean in a learner's forward or backward pass, by the start of
# NumPy's message: the cause of a NaN or an inf, in the book's terms.
FLOATING_POINT_CAUSES = {
    "overflow encountered in exp": (
        "np.exp overflowed: subtract each row's maximum before np.exp, "
        "np.exp(inputs - np.max(inputs, axis=1, keepdims=True)), as the book's softmax does"
    ),
    "divide by zero encountered in log": (
        "np.log(0): clip the predictions first, np.clip(y_pred, 1e-7, 1 - 1e-7), as the book's losses do"
    ),
    "divide by zero": "a division by zero: clip what you divide by, as the book clips predictions to [1e-7, 1 - 1e-7]",
    "overflow": "a value overflowed float64 (about 1.8e308)",
    "invalid value": "an invalid operation: 0/0, inf - inf, 0 * inf or the log of a negative number",
}


def floating_point_cause(call: Callable[[], object]) -> str:
    """Run `call` with NumPy's floating-point errors raised, and say what the first one means
    ("" when there is none: the NaN or inf came in from outside, or from plain Python)."""
    try:
        with np.errstate(over="raise", divide="raise", invalid="raise", under="ignore"):
            call()
    except FloatingPointError as error:
        message = str(error)
        meaning = next((text for start, text in FLOATING_POINT_CAUSES.items() if message.startswith(start)), "")
        return f"{meaning} (NumPy: {message})" if meaning else f"NumPy: {message}"
    return ""


@dataclass
class Context:
    """What the check knows besides the gradients: the data a slip's gradient can be rebuilt from."""

    n_samples: int
    inputs: np.ndarray | None = None
    output: np.ndarray | None = None
    dvalues: np.ndarray | None = None  # the upstream gradient given to a layer's backward
    parameters: dict[str, np.ndarray] = field(default_factory=dict)
    is_loss: bool = False  # `inputs` are a loss's predictions, `dinputs` its gradient
    cause: str = ""  # what produced a NaN or an inf, when one was found (see floating_point_cause)


Index = tuple[int, ...]


@dataclass
class Verdict:
    """One array's result: its largest element error, the worst element, and what is wrong."""

    name: str
    error: float
    worst: tuple[Index, float, float] | None = None  # (index, analytic, numeric)
    problem: str = ""
    hint: str = ""
    kinks: tuple[Index, ...] = ()  # elements at a kink, checked as subgradients (see check.numeric)

    @property
    def skipped(self) -> int:
        """How many elements sit at kinks, where only the one-sided slopes could be compared."""
        return len(self.kinks)


def gradient_name(name: str) -> str:
    """What the book calls the gradient of array `name`: dinputs, dweights, layer0.Dense.dbiases;
    the forward `output` (and anything not a gradient) keeps its name."""
    if name in ("output", "loss", "dvalues"):
        return name
    owner, _, array = name.rpartition(".")
    return f"{owner}.d{array}" if owner else f"d{array}"


def first_non_finite(values: np.ndarray) -> tuple[Index, float] | None:
    """The index and value of the first NaN or inf in `values`, or None when all are finite."""
    bad = np.argwhere(~np.isfinite(values))
    if not len(bad):
        return None
    index = tuple(int(i) for i in bad[0])
    return index, float(values[index])


def non_finite_verdict(name: str, values: np.ndarray, what: str, context: Context) -> Verdict | None:
    """A failing verdict naming the first NaN or inf of `values` (`what` says what they are), or None."""
    found = first_non_finite(values)
    if found is None:
        return None
    index, value = found
    place = f"{list(index)}" if values.ndim else ""
    return Verdict(name, float("inf"), problem=f"{what}{place} is {value}", hint=context.cause)


def judge(name: str, analytic: object, numeric: np.ndarray, context: Context, kinks: tuple[Index, ...] = ()) -> Verdict:
    """Compare one gradient with its central differences and say what, if anything, is wrong.

    `kinks` are the elements whose nudges cross a point where the function has no derivative,
    and whose analytic value lies between the function's one-sided slopes there (a subgradient,
    whatever convention the learner chose at the kink): they count as agreeing and are listed.
    NaN or inf on either side is a failure that names the element and, where known, its cause.
    """
    gradient = gradient_name(name)
    if analytic is None:
        return Verdict(name, float("inf"), problem=f"backward set no {gradient}", kinks=kinks)
    analytic = np.asarray(analytic, dtype=np.float64)
    if analytic.shape != numeric.shape:
        return Verdict(
            name,
            float("inf"),
            problem=f"{gradient} has shape {analytic.shape}, expected {numeric.shape} (the shape of {name})",
            hint=_shape_hint(name, analytic.shape, numeric.shape, context),
            kinks=kinks,
        )
    broken = non_finite_verdict(name, analytic, gradient, context) or non_finite_verdict(
        name, numeric, f"the checked function is not finite when {name} is nudged: its central difference at ", context
    )
    if broken is not None:
        return broken
    errors = element_errors(analytic, numeric)
    for index in kinks:
        errors[index] = 0.0  # checked as a subgradient: between the one-sided slopes
    if not numeric.size:
        return Verdict(name, 0.0)
    worst = np.unravel_index(int(np.argmax(errors)), errors.shape)
    verdict = Verdict(
        name, float(errors[worst]), (tuple(int(i) for i in worst), float(analytic[worst]), float(numeric[worst]))
    )
    verdict.kinks = kinks
    checked = np.ones(errors.shape, dtype=bool)
    for index in kinks:
        checked[index] = False
    verdict.hint = _value_hint(name, analytic, numeric, context, checked)
    return verdict


def _shape_hint(name: str, got: tuple, expected: tuple, context: Context) -> str:
    if name == "biases" and len(expected) == 2 and got in ((context.n_samples, 1), (context.n_samples,)):
        return "dbiases sums over the samples: np.sum(dvalues, axis=0, keepdims=True), not axis=1"
    if name == "biases" and len(got) == 1:
        return "keep the row shape: np.sum(dvalues, axis=0, keepdims=True)"
    if got == tuple(reversed(expected)):
        return f"{gradient_name(name)} is transposed: check which factor needs .T"
    return ""


def _value_hint(name: str, analytic: np.ndarray, numeric: np.ndarray, context: Context, checked: np.ndarray) -> str:
    """The first typical slip that explains `analytic` where it disagrees with `numeric` (only the
    `checked` elements count): the slip's formula, evaluated on the learner's arrays, gives the
    learner's gradient, and that gradient is not the right one."""
    for slip, hint in _slips(name, numeric, context):
        candidate = slip()
        fits = candidate is not None and candidate.shape == analytic.shape
        if fits and _matches(analytic[checked], candidate[checked], numeric[checked]):  # type: ignore[index]
            return hint
    return ""


def _matches(analytic: np.ndarray, candidate: np.ndarray, numeric: np.ndarray) -> bool:
    """`analytic` equals the slip's gradient, and that gradient is not the right one too."""
    scale = max(1.0, float(np.abs(numeric).max(initial=0.0)))
    close = np.allclose(analytic, candidate, rtol=1e-6, atol=1e-9 * scale)
    return close and not np.allclose(candidate, numeric, rtol=1e-4, atol=1e-8 * scale)


Slip = tuple[Callable[[], "np.ndarray | None"], str]


def _slips(name: str, numeric: np.ndarray, context: Context) -> list[Slip]:
    """(the gradient a slip gives, the hint) for the slips the book's readers make most often."""
    gradient = gradient_name(name)
    dvalues, inputs, output = context.dvalues, context.inputs, context.output
    slips: list[Slip] = [(lambda: -numeric, f"{gradient} has the wrong sign: check the minus signs")]
    slips += _count_slips(name, numeric, context)
    weights = context.parameters.get("weights")
    if name == "inputs" and dvalues is not None and weights is not None and weights.ndim == 2:
        slips.append(
            (
                lambda: dvalues @ weights if dvalues.shape[1] == weights.shape[0] else None,
                "dinputs misses a .T: dinputs = np.dot(dvalues, self.weights.T)",
            )
        )
    if name == "weights" and dvalues is not None and inputs is not None and dvalues.ndim == inputs.ndim == 2:
        slips.append(
            (
                lambda: dvalues.T @ inputs if dvalues.shape[0] == inputs.shape[0] else None,
                "the .T belongs on the inputs: dweights = np.dot(self.inputs.T, dvalues)",
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
            (
                lambda: dvalues * (1 - output),
                "dinputs = dvalues * (1 - output) misses a factor: sigmoid's derivative is output * (1 - output), "
                "tanh's is 1 - output ** 2",
            ),
            (
                lambda: dvalues * output,
                "dinputs = dvalues * output misses a factor: sigmoid's derivative is output * (1 - output)",
            ),
            (
                lambda: dvalues.copy(),
                "dinputs is dvalues unchanged: multiply by the forward's derivative "
                "(for dropout, by the same binary_mask)",
            ),
        ]
    return slips


def _count_slips(name: str, numeric: np.ndarray, context: Context) -> list[Slip]:
    """A gradient off by the number of samples (or, for a loss, of outputs): divided once too
    often, or not at all."""
    gradient, samples = gradient_name(name), context.n_samples
    outputs = (
        context.inputs.shape[1] if context.is_loss and context.inputs is not None and context.inputs.ndim == 2 else 1
    )
    slips: list[Slip] = []
    if context.is_loss and outputs > 1:
        missing = "the number of samples" if outputs == samples else ""
        slips.append(
            (
                lambda: numeric * outputs,
                f"{gradient} is {outputs} times too large: divide by the number of outputs ({outputs}) too, "
                "since each sample's loss is the mean over its outputs"
                + (f" (or by {missing}, which is {samples} as well)" if missing else ""),
            )
        )
    if samples > 1 and not (context.is_loss and outputs == samples):
        slips.append(
            (
                lambda: numeric * samples,
                f"{gradient} is {samples} times too large: divide by the number of samples ({samples})",
            )
        )
    if context.is_loss and 2 not in (samples, outputs):
        slips.append((lambda: numeric / 2, f"{gradient} is half the gradient: the derivative of x ** 2 is 2 * x"))
    if samples > 1 and context.is_loss:
        slips.append((lambda: numeric / samples, f"{gradient} is divided by the number of samples ({samples}) twice"))
    elif samples > 1:
        slips.append(
            (
                lambda: numeric / samples,
                f"{gradient} is {samples} times too small: sum over the samples, np.sum(..., axis=0) or np.dot, "
                "not a mean (the loss's backward has already divided by the number of samples)",
            )
        )
    return slips


MAX_LISTED_KINKS = 4


def kinks_note(verdict: Verdict) -> str:
    """'(2 elements at a kink, within the one-sided slopes: [0, 1], [3, 2])'."""
    if not verdict.kinks:
        return ""
    listed = ", ".join(str(list(index)) for index in verdict.kinks[:MAX_LISTED_KINKS])
    more = ", ..." if verdict.skipped > MAX_LISTED_KINKS else ""
    plural = "s" if verdict.skipped > 1 else ""
    return f"({verdict.skipped} element{plural} at a kink, within the one-sided slopes: {listed}{more})"


@dataclass(repr=False)
class Report:
    """Verdicts on several arrays, judged against one tolerance: prints as a table plus the
    failures, and `notes` on how the check ran (random draws held fixed, NumPy restored)."""

    verdicts: dict[str, Verdict]
    tolerance: float
    notes: list[str] = field(default_factory=list, kw_only=True)

    @property
    def errors(self) -> dict[str, float]:
        """The largest element error of each array (inf for a wrong shape, a missing gradient, a
        NaN, or an array of which nothing could be compared)."""
        return {name: verdict.error for name, verdict in self.verdicts.items()}

    @property
    def max_error(self) -> float:
        """The largest error over all arrays."""
        return max(self.errors.values(), default=0.0)

    @property
    def passed(self) -> bool:
        """True when something was checked and every array's error is below `tolerance`."""
        return bool(self.verdicts) and self.max_error < self.tolerance

    def failures(self) -> list[str]:
        """What is wrong with each failing array, with a hint where a typical slip fits (a hint
        shared by several arrays, as a NaN's cause, is said once)."""
        shown: set[str] = set()
        return [self.describe(v, shown) for v in self.verdicts.values() if not v.error < self.tolerance]

    def describe(self, verdict: Verdict, shown_hints: set[str]) -> str:
        """One or two lines for a failing array: what is wrong, where, and the hint."""
        line = verdict.problem or self.worst_line(verdict)
        if not verdict.hint or verdict.hint in shown_hints:
            return line
        shown_hints.add(verdict.hint)
        return f"{line}\n    hint: {verdict.hint}"

    def worst_line(self, verdict: Verdict) -> str:
        """The worst element of an array whose values disagree, both values and the error."""
        assert verdict.worst is not None  # a failing verdict without a problem has a worst element
        index, analytic, numeric = verdict.worst
        return (
            f"{gradient_name(verdict.name)}{list(index)} is {analytic:.6g}, central differences give {numeric:.6g} "
            f"(error {verdict.error:.2e} > tolerance {self.tolerance:g})"
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(passed={self.passed}, max_error={self.max_error:.3e}, arrays={list(self.verdicts)})"
        )

    def _rows(self) -> list[tuple[str, str, str]]:
        return [
            (
                name,
                "-" if verdict.problem else f"{verdict.error:.3e}",
                ("ok" if verdict.error < self.tolerance else "FAIL")
                + (f"  {kinks_note(verdict)}" if verdict.kinks else ""),
            )
            for name, verdict in self.verdicts.items()
        ]

    def _repr_html_(self) -> str:
        failures = "".join(f"<pre>{html.escape(failure)}</pre>" for failure in self.failures())
        notes = "".join(f"<p>{html.escape(note)}</p>" for note in self.notes)
        return html_table(["array", "largest error", "status"], self._rows()) + failures + notes

    def __str__(self) -> str:
        width = max((len(name) for name in self.verdicts), default=5)
        lines = [f"{'array':<{width}}  largest error  status"]
        lines += [f"{name:<{width}}  {error:>13}  {status}" for name, error, status in self._rows()]
        lines += self.failures()
        lines += [f"note: {note}" for note in self.notes]
        return "\n".join(lines)
