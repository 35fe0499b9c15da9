"""Probe: drive any object with `forward`/`backward`, chainrule's own or a learner's, and find its arrays.

`gradcheck` and `compare` see every object through a Probe, so a learner's class written as the
book writes it, without subclassing chainrule, is checked like a built-in component:

- a layer has `forward(inputs[, training])` and `backward(dvalues)`; its output is what
  `forward` returns, or else `output` (or `outputs`); `backward` sets `dinputs`;
- a loss has `forward(y_pred, y_true)` (per-sample losses or their mean) and
  `backward(dvalues, y_true)`; a fused softmax + loss, as the book's, keeps its probabilities
  in `output` and receives them back as `dvalues`;
- parameters are `parameters()`/`gradients()` on a chainrule Layer, otherwise every array
  attribute `name` with a gradient `dname` after `backward` (`weights`/`dweights`,
  `biases`/`dbiases`, ...); the book's `weight_regularizer_l1` and friends add their penalty.
"""

from __future__ import annotations

import difflib
import inspect
from typing import Any

import numpy as np

from chainrule.check.conditions import HeldDraws
from chainrule.engine.layers import BOOK_PARAMETERS, Layer, penalty  # book names: expected whenever present

OUTPUT_NAMES = ("output", "outputs")
NOT_PARAMETERS = {"inputs", "output", "outputs", "values", "dvalues"}
BOOK_PENALTIES = {
    "weights": ("weight_regularizer_l1", "weight_regularizer_l2"),
    "biases": ("bias_regularizer_l1", "bias_regularizer_l2"),
}


class Probe:
    """One object under check, run through its own `forward` and `backward`."""

    def __init__(self, component: Any, *, training: bool = False) -> None:
        for method in ("forward", "backward"):
            if not callable(getattr(component, method, None)):
                raise TypeError(
                    f"{type(component).__name__} has no {method} method; gradcheck and compare need an object "
                    "with forward and backward, as the book writes them"
                )
        self.component = component
        self.name = type(component).__name__
        self.training = training
        self.draws: HeldDraws | None = None  # when set, reset before every forward (see check.conditions)
        self.set_by_backward: list[str] = []  # the attributes the last backward set
        self.changed_dvalues = False  # whether the last backward wrote into the dvalues it was given
        try:
            parameters = list(inspect.signature(component.forward).parameters.values())
        except (TypeError, ValueError):
            parameters = []
        self.takes_training = any(parameter.name == "training" for parameter in parameters)
        required = [
            p
            for p in parameters
            if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD) and p.name != "training"
        ]
        self.is_loss = len(required) >= 2  # forward(y_pred, y_true)

    # -- running --------------------------------------------------------------------------------

    def forward(self, inputs: np.ndarray) -> np.ndarray:
        """Run a layer's forward pass and return its output."""
        component = self.component
        if self.draws is not None:
            self.draws.restore()
        returned = (
            component.forward(inputs, training=self.training) if self.takes_training else component.forward(inputs)
        )
        output = returned if returned is not None else self.attribute(OUTPUT_NAMES)
        if output is None:
            raise ValueError(f"{self.name}.forward returned nothing and set no self.output")
        return np.asarray(output)

    def backward(self, dvalues: np.ndarray) -> np.ndarray:
        """Run a layer's backward pass and return `dinputs`."""
        before, original = self._attributes(), np.array(dvalues, copy=True)
        returned = self.component.backward(dvalues)
        self._note_set_attributes(before)
        self.changed_dvalues = not np.array_equal(original, dvalues, equal_nan=True)
        return self.dinputs(returned)

    def loss(self, predictions: np.ndarray, y_true: Any) -> float:
        """The mean loss: what a loss's forward returns, averaged over samples if it is per sample."""
        value = self.component.forward(predictions, y_true)
        if value is None:
            raise ValueError(f"{self.name}.forward(y_pred, y_true) returned nothing; it should return the losses")
        return float(np.mean(value))

    def loss_backward(self, predictions: np.ndarray, y_true: Any) -> np.ndarray:
        """d(mean loss)/d(predictions): a fused loss gets back the probabilities it kept in `output`."""
        kept = self.attribute(OUTPUT_NAMES)
        fused = kept is not None and np.shape(kept) == predictions.shape and kept is not predictions
        source = np.asarray(kept) if fused else predictions
        given, before = np.array(source, copy=True), self._attributes()
        returned = self.component.backward(given, y_true)
        self._note_set_attributes(before)
        self.changed_dvalues = not np.array_equal(given, source, equal_nan=True)
        return self.dinputs(returned)

    def _attributes(self) -> dict[str, int]:
        return {name: id(value) for name, value in getattr(self.component, "__dict__", {}).items()}

    def _note_set_attributes(self, before: dict[str, int]) -> None:
        after = self._attributes()
        self.set_by_backward = [name for name, identity in after.items() if before.get(name) != identity]

    def targets(self, y_true: Any, shape: tuple, owner: str) -> np.ndarray:
        """chainrule's losses validate their targets (as float64); a learner's loss gets NumPy arrays."""
        prepare = getattr(self.component, "prepare_targets", None)
        return prepare(y_true, shape, owner, np.float64) if callable(prepare) else np.asarray(y_true)

    def dinputs(self, returned: Any) -> np.ndarray:
        dinputs = getattr(self.component, "dinputs", None)
        dinputs = returned if dinputs is None else dinputs
        if dinputs is None:
            raise ValueError(f"{self.name}.backward set no self.dinputs")
        return np.asarray(dinputs)

    def attribute(self, names: tuple[str, ...]) -> Any:
        """The first of `names` the component has set (and not None)."""
        for name in names:
            value = getattr(self.component, name, None)
            if value is not None:
                return value
        return None

    # -- arrays ---------------------------------------------------------------------------------

    def parameters(self) -> dict[str, np.ndarray]:
        """Trainable arrays by name (call after a backward pass, which sets the gradients)."""
        if isinstance(self.component, Layer):
            return self.component.parameters()
        found = vars(self.component)
        names = [name for name in BOOK_PARAMETERS if isinstance(found.get(name), np.ndarray)]
        names += sorted(
            name
            for name, value in found.items()
            if name not in names
            and name not in NOT_PARAMETERS
            and isinstance(value, np.ndarray)
            and isinstance(found.get(f"d{name}"), np.ndarray)
        )
        return {name: found[name] for name in names}

    def gradients(self) -> dict[str, Any]:
        """The gradient of each parameter as `backward` left it (None where it set none)."""
        if isinstance(self.component, Layer):
            return self.component.gradients()
        return {name: getattr(self.component, f"d{name}", None) for name in self.parameters()}

    def missing_gradient_hint(self, name: str, expected: list[str]) -> str:
        """What to say when `backward` set no `d{name}`: an attribute it did set whose name is a
        near miss (not one of the `expected` names), if there is one."""
        unexpected = [attribute for attribute in self.set_by_backward if attribute not in expected]
        close = difflib.get_close_matches(f"d{name}", unexpected, n=1, cutoff=0.75)
        spelled = f"; it set {close[0]!r}: a typo?" if close else ""
        return f"backward set no d{name}{spelled}"

    def penalty(self) -> float:
        """The L1/L2 penalty the component adds to the loss (its backward adds the gradient)."""
        if isinstance(self.component, Layer):
            return self.component.regularization_penalty()
        total = 0.0
        for name, (l1_name, l2_name) in BOOK_PENALTIES.items():
            values = getattr(self.component, name, None)
            if not isinstance(values, np.ndarray):
                continue
            total += penalty(values, getattr(self.component, l1_name, 0) or 0, getattr(self.component, l2_name, 0) or 0)
        return total

    def float_dtypes(self) -> set[np.dtype]:
        """The dtype the component computes in, when it declares one (chainrule's components do; a
        learner's arrays of other float dtypes are checked on float64 copies, see check.conditions)."""
        dtype = getattr(self.component, "dtype", None)
        return set() if dtype is None else {np.dtype(dtype)}
